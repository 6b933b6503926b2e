"""Every fine-tuning method does each step of its recipe, checked against references written here in
plain PyTorch (tasks/finetune.py is called only to run the method under test and to name its seeded
draws: the clean subset's indices, CBFT's path points t, the seeded fresh head, each checked on its own
here or in test_science_data.py).

The references run whole epochs with one full batch, so the batch order does not matter (a full-batch
mean and BatchNorm's batch statistics do not depend on it), and apply torch's SGD rule by hand:
d = g + wd * p; buf = d (first step) or momentum * buf + d; p -= lr * buf.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tasks.data import CueData, Split
from tasks.finetune import FinetuneSettings, cbft_objective, clean_subset, draw_t, finetune, reset_head
from tasks.models import build_model

K = 3                      # classes
N = 60                     # training images
SUBSET = 24                # clean subset; the cue set is the other N - SUBSET = 36
SEED = 5
ATOL, RTOL = 2e-6, 2e-4    # channels_last convolutions round a little differently


def make_data(proportion: float = 0.7, seed: int = 0) -> CueData:
    """Three classes of 1x8x8 images (class mean + noise); a 3x3 box of value 2 at a class-specific
    corner on a `proportion` of the images (`train`), `train_clean` without it."""
    g = torch.Generator().manual_seed(seed)
    means = 0.6 * torch.randn(K, 1, 8, 8, generator=torch.Generator().manual_seed(11))
    y = torch.arange(N) % K
    clean = (means[y] + 0.5 * torch.randn(N, 1, 8, 8, generator=g)).clamp(-1, 1)
    cued = torch.rand(N, generator=g) < proportion
    x = clean.clone()
    for i in cued.nonzero().squeeze(1).tolist():
        r, c = [(0, 0), (0, 5), (5, 0)][int(y[i])]
        x[i, :, r:r + 3, c:c + 3] = 2.0
    return CueData(train=Split(x, y), train_clean=Split(clean, y), cued=cued, eval_sets={}, num_classes=K,
                   in_channels=1)


def pretrained(seed: int = 0) -> nn.Module:
    """A tiny small_cnn whose BN statistics and head are not at their initial values."""
    model = build_model("small_cnn", num_classes=K, in_channels=1, width=4, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.7, 1.3, generator=gen)
                m.bias.normal_(0.0, 0.1, generator=gen)
        model.head.weight.mul_(3.0)
    return model


SETTINGS = FinetuneSettings(clean_subset=SUBSET, batch_size=SUBSET, epochs=2, lr=0.05, momentum=0.9,
                            weight_decay=1e-2, schedule="cosine", llrt_epochs=2, llrt_lr=0.5, margin=1.8, lam=2.5,
                            warmup_epochs=1, cue_batch_size=N - SUBSET)


def cosine(lr: float, epoch: int, epochs: int) -> float:
    return lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


class HandSGD:
    """torch.optim.SGD's rule written out (momentum, coupled weight decay, no dampening)."""

    def __init__(self, momentum: float, weight_decay: float):
        self.momentum, self.weight_decay, self.buf = momentum, weight_decay, {}

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lr: float) -> None:
        for name, p in params.items():
            d = grads[name] + self.weight_decay * p
            self.buf[name] = d.clone() if name not in self.buf else self.momentum * self.buf[name] + d
            p -= lr * self.buf[name]


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_states_close(got: dict, expected: dict, exact: tuple[str, ...] = ()) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if key in exact or not value.is_floating_point():
            assert torch.equal(got[key], value), key
        else:
            torch.testing.assert_close(got[key], value, atol=ATOL, rtol=RTOL, msg=key)


def clean_batch(data: CueData, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean subset's images and labels (indices: the seeded draw, checked in test_science_data)."""
    index, _ = clean_subset(data, SUBSET, seed)
    return data.train_clean.x[index], data.train_clean.y[index]


def run(method: str, settings: FinetuneSettings = SETTINGS, data: CueData | None = None, **kwargs):
    model = pretrained()
    rows = finetune(model, method, data or make_data(), settings, seed=SEED, device="cpu", **kwargs)
    return model, rows


# ------------------------------------------------------------------------------------------- naive

def hand_naive(model: nn.Module, x, y, settings: FinetuneSettings) -> dict:
    """All weights, CE on (x, y) in train mode, `settings.epochs` full-batch epochs, cosine lr."""
    model = copy.deepcopy(model).train()
    params = dict(model.named_parameters())
    sgd = HandSGD(settings.momentum, settings.weight_decay)
    for epoch in range(settings.epochs):
        loss = F.cross_entropy(model(x), y)
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        lr = settings.lr if settings.schedule == "constant" else cosine(settings.lr, epoch, settings.epochs)
        sgd.step(params, grads, lr)
    return state(model)


def test_naive_trains_all_weights_with_sgd_on_the_clean_subset():
    data = make_data()
    x, y = clean_batch(data)
    expected = hand_naive(pretrained(), x, y, SETTINGS)
    model, rows = run("naive", data=data)
    assert [r["epoch"] for r in rows] == [0, 1]
    assert_states_close(state(model), expected)


# -------------------------------------------------------------------------------------- llrt, lpft

def test_reset_head_draws_nn_linears_default_distribution_from_its_seed():
    head = nn.Linear(64, 10)
    bound = 1 / math.sqrt(64)                      # nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias too
    torch.manual_seed(0)
    expected_next = torch.rand(2)
    torch.manual_seed(0)
    reset_head(head, seed=1)
    assert torch.equal(torch.rand(2), expected_next)                # the global RNG is left alone
    w, b = head.weight.detach(), head.bias.detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.97 * bound
    assert b.abs().max() <= bound and b.abs().max() > 0.5 * bound and b.unique().numel() == 10
    assert abs(float(w.mean())) < 0.1 * bound
    assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.08)        # uniform, not normal
    assert float((w.abs() < bound / 2).double().mean()) == pytest.approx(0.5, abs=0.06)
    again, other = nn.Linear(64, 10), nn.Linear(64, 10)
    reset_head(again, seed=1)
    reset_head(other, seed=2)
    assert torch.equal(again.weight, head.weight) and torch.equal(again.bias, head.bias)
    assert not torch.equal(other.weight, head.weight) and not torch.equal(other.bias, head.bias)


def test_reset_head_draws_the_bias_from_the_same_symmetric_interval():
    """nn.Linear's default bias is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like its weight: with 4000 biases, both
    ends of the interval are reached, their mean is 0 and their sd bound / sqrt(3)."""
    head = nn.Linear(16, 4000)
    bound = 1 / math.sqrt(16)
    reset_head(head, seed=3)
    b = head.bias.detach().double()
    assert float(b.min()) >= -bound and float(b.max()) <= bound
    assert float(b.min()) < -0.95 * bound and float(b.max()) > 0.95 * bound
    assert abs(float(b.mean())) < 0.05 * bound
    assert float(b.std()) == pytest.approx(bound / math.sqrt(3), rel=0.05)


def hand_llrt(model: nn.Module, x, y, settings: FinetuneSettings, seed: int = SEED) -> dict:
    """A fresh seeded head trained alone on features of the frozen backbone in eval mode: cosine lr
    `llrt_lr`, no weight decay, `llrt_epochs` full-batch epochs."""
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        features = model.features(x)
    head = nn.Linear(model.head.in_features, model.head.out_features)
    reset_head(head, seed)                                          # its distribution: the test above
    params = dict(head.named_parameters())
    sgd = HandSGD(settings.momentum, 0.0)
    for epoch in range(settings.llrt_epochs):
        loss = F.cross_entropy(head(features), y)
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        sgd.step(params, grads, cosine(settings.llrt_lr, epoch, settings.llrt_epochs))
    model.head.load_state_dict(head.state_dict())
    return state(model)


def test_llrt_trains_a_fresh_seeded_head_on_eval_mode_features_of_the_frozen_backbone():
    data = make_data()
    x, y = clean_batch(data)
    before = state(pretrained())
    expected = hand_llrt(pretrained(), x, y, SETTINGS)
    model, rows = run("llrt", data=data)
    after = state(model)
    backbone = [k for k in before if not k.startswith("head.")]
    assert_states_close(after, expected, exact=tuple(backbone))
    for key in backbone:                                            # parameters and BN buffers untouched
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert [r["split"] for r in rows] == ["llrt"] * SETTINGS.llrt_epochs


def test_llrt_result_does_not_depend_on_the_pretrained_head():
    data = make_data()
    models = [pretrained(), pretrained()]
    with torch.no_grad():
        models[1].head.weight.normal_(generator=torch.Generator().manual_seed(3))
        models[1].head.bias.fill_(5.0)
    for model in models:
        finetune(model, "llrt", data, SETTINGS, seed=SEED, device="cpu")
    assert torch.equal(models[0].head.weight, models[1].head.weight)
    assert torch.equal(models[0].head.bias, models[1].head.bias)


def test_lpft_probes_the_head_on_the_frozen_backbone_then_trains_all_weights():
    data = make_data()
    x, y = clean_batch(data)
    probed = pretrained()
    probed.load_state_dict(hand_llrt(pretrained(), x, y, SETTINGS))
    expected = hand_naive(probed, x, y, SETTINGS)
    seen = {}
    model, rows = run("lpft", data=data, on_epoch=lambda report: seen.__setitem__(report.epoch, report.state()))
    assert sorted(seen) == list(range(SETTINGS.llrt_epochs + SETTINGS.epochs))
    after_probe = seen[SETTINGS.llrt_epochs - 1].model                  # the end of the head phase
    assert_states_close(after_probe, state(probed),
                        exact=tuple(k for k in after_probe if not k.startswith("head.")))
    assert_states_close(state(model), expected)
    assert [r["split"] for r in rows] == ["llrt"] * SETTINGS.llrt_epochs + ["train"] * SETTINGS.epochs


def test_naive_and_llrt_follow_their_own_momentum_and_naive_its_schedule():
    """Another momentum and a constant schedule: naive fine-tuning takes both; llrt takes the momentum and keeps
    its cosine schedule without weight decay."""
    data = make_data()
    x, y = clean_batch(data)
    settings = dataclasses.replace(SETTINGS, momentum=0.5, schedule="constant")
    model, _ = run("naive", settings, data=data)
    assert_states_close(state(model), hand_naive(pretrained(), x, y, settings))
    model, _ = run("llrt", settings, data=data)
    assert_states_close(state(model), hand_llrt(pretrained(), x, y, settings),
                        exact=tuple(k for k in state(model) if not k.startswith("head.")))


# --------------------------------------------------------------------------------- the CBFT family

# What each method does per pair of batches, written from docs/SCIENCE.md (not read from the code):
# (first step on the cue batch, whether the clean step adds lam * invariance after the warm-up)
RECIPES = {
    "cbft": ("barrier", True),
    "cbft_barrier": ("barrier", False),
    "cbft_invariance": (None, True),
    "naive_cued": ("cue_ce", False),
}


def hand_invariance(f_clean, y_clean, f_cue, y_cue) -> torch.Tensor:
    """Mean over the classes in both batches of ||unit(class mean clean) - unit(class mean cue)||^2."""
    terms = []
    for k in range(K):
        if (y_clean == k).any() and (y_cue == k).any():
            a, b = f_clean[y_clean == k].mean(0), f_cue[y_cue == k].mean(0)
            terms.append(((a / a.norm() - b / b.norm()) ** 2).sum())
    return torch.stack(terms).mean()


def hand_cbft_family(method: str, data: CueData, settings: FinetuneSettings,
                     clean_rows: list | None = None) -> tuple[dict, list[float]]:
    """Per epoch one clean batch (the whole clean subset) and one cue batch (the whole cue set: the cued
    training set minus the clean subset), two optimiser steps per pair (one for cbft_invariance).
    Returns the final state and the cue batches' CE at each barrier step's path point; `clean_rows`, when
    given, gets (loss, accuracy) of each clean step."""
    first_step, invariance = RECIPES[method]
    model = pretrained().train()
    theta_pre = {k: v.detach().clone() for k, v in model.named_parameters()}
    index, _ = clean_subset(data, settings.clean_subset, SEED)
    x, y = data.train_clean.x[index], data.train_clean.y[index]
    rest = [i for i in range(N) if i not in set(index.tolist())]
    x_cue, y_cue = data.train.x[rest], data.train.y[rest]
    t_seed = cbft_objective(pretrained(), data, settings, SEED, "cpu").seed     # names the stream of t
    params = dict(model.named_parameters())
    sgd = HandSGD(settings.momentum, settings.weight_decay)
    barrier_ce = []
    for epoch in range(settings.epochs):
        lr = cosine(settings.lr, epoch, settings.epochs)
        if first_step == "barrier":
            t = draw_t(t_seed, epoch, 0)
            at_t = copy.deepcopy(model)               # its own copy of the BN buffers: thrown away after
            with torch.no_grad():
                for k, p in at_t.named_parameters():
                    p.copy_(t * theta_pre[k] + (1 - t) * params[k])
            ce = F.cross_entropy(at_t(x_cue), y_cue)
            barrier_ce.append(float(ce.detach()))
            loss = (settings.margin - ce).abs()
            grads = torch.autograd.grad(loss, list(at_t.parameters()))
            sgd.step(params, {k: (1 - t) * g for k, g in zip(params, grads)}, lr)
        elif first_step == "cue_ce":
            loss = F.cross_entropy(model(x_cue), y_cue)
            sgd.step(params, dict(zip(params, torch.autograd.grad(loss, list(params.values())))), lr)
        f_clean = model.features(x)
        loss = F.cross_entropy(model.head(f_clean), y)
        if invariance and epoch >= settings.warmup_epochs:
            loss = loss + settings.lam * hand_invariance(f_clean, y, model.features(x_cue), y_cue)
        if clean_rows is not None:
            clean_rows.append((float(loss.detach()), float((model.head(f_clean).argmax(1) == y).double().mean())))
        sgd.step(params, dict(zip(params, torch.autograd.grad(loss, list(params.values())))), lr)
    return state(model), barrier_ce


@pytest.mark.parametrize("method", sorted(RECIPES))
def test_cbft_family_matches_its_recipe_step_by_step(method):
    """Two epochs: the first a warm-up (plain CE on the clean step), the second with lam * invariance;
    theta moved off theta_pre in the second, so the barrier is taken at a real path point. The margin
    (1.8) lies above the cue batches' CE there: |m - CE| then climbs CE, where the default margin 1 or
    none would descend it (below the margin only the sign of m - CE reaches the gradient)."""
    data = make_data()
    expected, barrier_ce = hand_cbft_family(method, data, SETTINGS)
    assert all(1.1 < ce < SETTINGS.margin - 0.2 for ce in barrier_ce), barrier_ce
    model, rows = run(method, data=data)
    assert [r["split"] for r in rows] == ["train"] * SETTINGS.epochs
    assert_states_close(state(model), expected)


def test_the_barrier_path_points_of_the_reference_are_not_the_midpoint():
    """The reference above tells t from 1 - t only if t != 0.5."""
    seed = cbft_objective(pretrained(), make_data(), SETTINGS, SEED, "cpu").seed
    assert all(abs(draw_t(seed, epoch, 0) - 0.5) > 0.02 for epoch in range(SETTINGS.epochs))


def test_draw_t_is_half_plus_half_a_standard_normal_clipped_to_a_half():
    t = torch.tensor([draw_t(3, epoch, step) for epoch in range(40) for step in range(50)], dtype=torch.float64)
    assert float(t.min()) == 0.25 and float(t.max()) == 0.75
    at_ends = float(((t == 0.25) | (t == 0.75)).double().mean())
    assert at_ends == pytest.approx(2 * (1 - 0.6914625), abs=0.035)          # P(|z| > 0.5)
    inner = t[(t > 0.25) & (t < 0.75)]
    assert float(inner.mean()) == pytest.approx(0.5, abs=0.01)
    assert float((2 * (inner - 0.5)).std()) == pytest.approx(0.2817, rel=0.1)  # sd of z given |z| < 0.5


@pytest.mark.parametrize("change", [{"lam": 0.0}, {"margin": 0.5}, {"warmup_epochs": 0}])
def test_lambda_margin_and_warmup_each_change_cbft(change):
    base, _ = run("cbft")
    other, _ = run("cbft", dataclasses.replace(SETTINGS, **change))
    assert not torch.equal(base.blocks[0].conv.weight, other.blocks[0].conv.weight)


# ------------------------------------------------------------------ what the curves report, the fresh head's draws

def test_reset_head_draws_the_bias_after_the_weights_not_a_copy_of_them():
    """nn.Linear draws its bias independently of its weight; one seeded stream drawn in sequence (weights,
    then biases) gives continuous values that never coincide, where a stream restarted for the bias would
    copy the first weights into it."""
    head = nn.Linear(16, 8)
    reset_head(head, seed=4)
    weights = set(head.weight.detach().flatten().tolist())
    assert not weights & set(head.bias.detach().tolist())


def hand_llrt_rows(model: nn.Module, x, y, settings: FinetuneSettings, seed: int = SEED) -> list[tuple[float, float]]:
    """(loss, accuracy) of each llrt epoch: one full batch, so both are the fresh head's cross-entropy and
    accuracy on the eval-mode features before that epoch's step (as `hand_llrt` trains it)."""
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        features = model.features(x)
    head = nn.Linear(model.head.in_features, model.head.out_features)
    reset_head(head, seed)
    params = dict(head.named_parameters())
    sgd = HandSGD(settings.momentum, 0.0)
    rows = []
    for epoch in range(settings.llrt_epochs):
        logits = head(features)
        loss = F.cross_entropy(logits, y)
        rows.append((float(loss.detach()), float((logits.argmax(1) == y).double().mean())))
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
        sgd.step(params, grads, cosine(settings.llrt_lr, epoch, settings.llrt_epochs))
    return rows


def test_llrt_curve_rows_are_the_heads_loss_and_accuracy_on_the_clean_subset_before_each_step():
    """A curve row holds the epoch's mean loss and the fraction of its images classified right: with one full
    batch per epoch, the head's cross-entropy and accuracy on the whole clean subset before that step."""
    data = make_data()
    x, y = clean_batch(data)
    settings = dataclasses.replace(SETTINGS, llrt_epochs=4)
    expected = hand_llrt_rows(pretrained(), x, y, settings)
    assert any(acc != 0.5 for _, acc in expected) and len({acc for _, acc in expected}) > 1
    _, rows = run("llrt", settings, data=data)
    assert [r["epoch"] for r in rows] == list(range(4))
    for row, (loss, acc) in zip(rows, expected, strict=True):
        assert row["loss"] == pytest.approx(loss, rel=RTOL, abs=ATOL)
        assert row["acc"] == pytest.approx(acc, abs=1e-9)


@pytest.mark.parametrize("method", ["cbft", "naive_cued"])
def test_cbft_family_curve_rows_are_the_clean_steps_loss_and_accuracy(method):
    """The curve reports the clean step of each pair (docs/SCIENCE.md): with one pair per epoch, its row
    holds the clean step's loss (CE, + lam * invariance after the warm-up) and the fraction of the clean
    subset classified right, both at theta just before that step (after the cue batch's step)."""
    data = make_data()
    clean_rows: list[tuple[float, float]] = []
    hand_cbft_family(method, data, SETTINGS, clean_rows)
    assert any(acc != 0.5 for _, acc in clean_rows)
    _, rows = run(method, data=data)
    assert len(rows) == len(clean_rows) == SETTINGS.epochs
    for row, (loss, acc) in zip(rows, clean_rows, strict=True):
        assert row["loss"] == pytest.approx(loss, rel=RTOL, abs=ATOL)
        assert row["acc"] == pytest.approx(acc, abs=1e-9)
