"""Fine-tuning methods on tiny synthetic CueData with a tiny CNN."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from tasks.data import CueData, Split
from tasks.finetune import (
    CBFT_FAMILY,
    FINETUNE_METHODS,
    FinetuneSettings,
    cbft_objective,
    class_mean_invariance,
    clean_subset,
    cue_set,
    compute_features,
    cued_twins,
    curve_split,
    draw_t,
    finetune,
    invariance_loss,
)
from tasks.models import build_model
from tasks.train import DivergenceError
import tasks.finetune as ft

NUM_CLASSES = 3
CORNERS = {0: (0, 0), 1: (0, 5), 2: (5, 0)}       # box location per class on an 8x8 image


def paint_box(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    for i, label in enumerate(y.tolist()):
        r, c = CORNERS[label]
        out[i, :, r:r + 3, c:c + 3] = 2.0
    return out


def synthetic_data(n: int = 90, proportion: float = 0.8, seed: int = 0) -> CueData:
    g = torch.Generator().manual_seed(seed)
    means = 0.5 * torch.randn(NUM_CLASSES, 1, 8, 8, generator=torch.Generator().manual_seed(99))
    y = torch.arange(n) % NUM_CLASSES
    clean = (means[y] + 0.5 * torch.randn(n, 1, 8, 8, generator=g)).clamp(-1, 1)
    cued = torch.rand(n, generator=g) < proportion
    train_x = clean.clone()
    train_x[cued] = paint_box(clean[cued], y[cued])
    test_y = torch.arange(30) % NUM_CLASSES
    test_x = (means[test_y] + 0.5 * torch.randn(30, 1, 8, 8, generator=g)).clamp(-1, 1)
    return CueData(train=Split(train_x, y), train_clean=Split(clean, y), cued=cued,
                   eval_sets={"nocue": Split(test_x, test_y), "cue": Split(paint_box(test_x, test_y), test_y)},
                   num_classes=NUM_CLASSES, in_channels=1)


def tiny_model(seed: int = 0):
    return build_model("small_cnn", num_classes=NUM_CLASSES, in_channels=1, width=4, seed=seed)


SETTINGS = FinetuneSettings(clean_subset=24, epochs=2, lr=0.05, batch_size=8, llrt_epochs=3, llrt_lr=0.5,
                            warmup_epochs=1, cue_batch_size=8)
TWINS = dataclasses.replace(SETTINGS, cbft_invariance="twins")
EPOCHS = {"naive": SETTINGS.epochs, "llrt": SETTINGS.llrt_epochs, "lpft": SETTINGS.llrt_epochs + SETTINGS.epochs,
          **{method: SETTINGS.epochs for method in CBFT_FAMILY}}


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", sorted(FINETUNE_METHODS))
def test_each_method_runs_and_changes_the_model(method):
    data = synthetic_data()
    model = tiny_model()
    before = snapshot(model)
    rows = finetune(model, method, data, SETTINGS, seed=1, device="cpu")
    after = snapshot(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "head.weight" in changed and "head.bias" in changed
    if method == "llrt":
        assert changed == {"head.weight", "head.bias"}
        assert len(rows) == SETTINGS.llrt_epochs and {r["split"] for r in rows} == {"llrt"}
    else:
        assert "blocks.0.conv.weight" in changed
    expected_rows = EPOCHS[method]
    assert len(rows) == expected_rows
    assert [r["epoch"] for r in rows] == list(range(expected_rows))
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)


def test_clean_subset_is_distinct_seeded_and_method_independent():
    data = synthetic_data()
    index, split = clean_subset(data, 40, seed=3)
    assert index.unique().numel() == 40
    assert torch.equal(split.x, data.train_clean.x[index]) and torch.equal(split.y, data.train.y[index])
    assert torch.equal(clean_subset(data, 40, seed=3)[0], index)
    assert not torch.equal(clean_subset(data, 40, seed=4)[0], index)


def record_objectives(monkeypatch) -> list:
    """The objectives `finetune` hands to `fit`, one per phase (lpft has two), in order; training runs as usual."""
    import tasks.finetune as finetune_module
    objectives = []
    original = finetune_module.fit

    def recording_fit(model, objective, *args, **kwargs):
        objectives.append(objective)
        return original(model, objective, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "fit", recording_fit)
    return objectives


@pytest.mark.parametrize("method", ["naive", "llrt", "lpft"])
def test_naive_llrt_and_lpft_train_on_batches_of_batch_size_that_cover_the_clean_subset(monkeypatch, method):
    """`batch_size` is the clean batch of every phase (`FinetuneSettings.batch_size`): with 24 clean images and
    batches of 8, each epoch takes three optimiser steps on batches of 8, every clean image once (not one full
    batch)."""
    objectives = record_objectives(monkeypatch)
    data = synthetic_data()
    finetune(tiny_model(), method, data, SETTINGS, seed=1, device="cpu")
    assert len(objectives) == (2 if method == "lpft" else 1)
    _, clean = clean_subset(data, SETTINGS.clean_subset, seed=1)
    for objective in objectives:
        batches = list(objective.batches(0))
        assert [len(y) for _, y in batches] == [SETTINGS.batch_size] * (SETTINGS.clean_subset // SETTINGS.batch_size)
        assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(clean.y.tolist())


def test_backbone_features_are_computed_in_eval_mode_whatever_the_batching_and_leave_the_mode_alone():
    """Penultimate features of every image, in eval mode, in batches of `batch_size`: the same as one eval-mode
    pass over all of them; the model keeps the mode it had."""
    model = tiny_model(0)
    split = synthetic_data().train_clean.subset(torch.arange(13))
    with torch.no_grad():
        expected = copy.deepcopy(model).eval().features(split.x)
    for training in (True, False):
        model.train(training)
        got = compute_features(model, split, torch.device("cpu"), batch_size=5)      # 5 + 5 + 3
        assert model.training == training
        assert torch.equal(got.y, split.y)
        torch.testing.assert_close(got.x, expected, rtol=1e-5, atol=1e-6)


def test_unknown_method_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="naive, llrt, lpft, cbft"):
        finetune(tiny_model(), "sgd", synthetic_data(), SETTINGS, seed=0, device="cpu")


def test_settings_validate():
    with pytest.raises(ValueError, match="clean_subset"):
        FinetuneSettings(clean_subset=10, batch_size=64)
    with pytest.raises(ValueError, match="schedule"):
        FinetuneSettings(schedule="linear")


def test_cued_twins_are_the_same_clean_images_with_their_class_cue():
    data = synthetic_data()
    index = torch.arange(30)
    twins, classes = cued_twins(data, index, seed=0)
    assert classes.tolist() == [True] * NUM_CLASSES
    expected = paint_box(data.train_clean.x[index], data.train_clean.y[index])
    torch.testing.assert_close(twins, expected, rtol=0, atol=0)
    # a class with no cued sample has no twins (and is flagged)
    no_cue = synthetic_data(proportion=0.0)
    twins, classes = cued_twins(no_cue, index, seed=0)
    assert not classes.any() and torch.equal(twins, no_cue.train_clean.x[index])


def test_a_cued_image_is_its_own_twin_and_every_donor_of_a_class_is_drawn():
    """Each cued image here carries a cue of its own colour, so a twin shows which donor it came from: a cued
    image keeps its own cue; an uncued one gets the cue of a cued image of its class, drawn among all of them."""
    n = 60
    y = torch.arange(n) % NUM_CLASSES
    clean = (0.3 * torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    cued = torch.arange(n) < 2 * NUM_CLASSES                  # two cued images per class
    train = clean.clone()
    colour = {}
    for i in cued.nonzero().squeeze(1).tolist():
        r, c = CORNERS[int(y[i])]
        colour[i] = 2.0 + 0.5 * i
        train[i, :, r:r + 3, c:c + 3] = colour[i]
    data = CueData(train=Split(train, y), train_clean=Split(clean, y), cued=cued, eval_sets={},
                   num_classes=NUM_CLASSES, in_channels=1)
    twins, classes = cued_twins(data, torch.arange(n), seed=0)
    assert classes.all()
    drawn = {k: set() for k in range(NUM_CLASSES)}
    for i in range(n):
        k = int(y[i])
        r, c = CORNERS[k]
        box = twins[i, 0, r:r + 3, c:c + 3]
        assert bool((box == box[0, 0]).all()), i
        if cued[i]:
            assert torch.equal(twins[i], train[i]), i
        else:
            donors = [j for j in colour if int(y[j]) == k and colour[j] == float(box[0, 0])]
            assert len(donors) == 1, i
            drawn[k].add(donors[0])
            outside = torch.ones(8, 8, dtype=torch.bool)
            outside[r:r + 3, c:c + 3] = False
            assert torch.equal(twins[i, 0][outside], clean[i, 0][outside]), i
    assert all(drawn[k] == {j for j in colour if int(y[j]) == k} for k in range(NUM_CLASSES)), drawn


def test_cue_batches_are_reshuffled_each_time_the_cue_set_is_exhausted():
    """More clean batches than cue batches: the cue set is gone through again, each time in a new order."""
    data = synthetic_data(n=40)
    settings = dataclasses.replace(SETTINGS, clean_subset=32, batch_size=8, cue_batch_size=4)
    objective = cbft_objective(tiny_model(0), data, settings, seed=0, device="cpu")
    assert len(objective.cue) == 8
    for epoch in (0, 1):
        cue = [x_cue for _, _, (x_cue, _) in objective.batches(epoch)]
        assert len(cue) == 4                                  # one per clean batch: two passes over the cue set
        passes = [torch.cat(cue[:2]).flatten(1), torch.cat(cue[2:]).flatten(1)]
        pool = objective.cue.x.flatten(1)
        for seen in passes:                                    # each pass: every cue image once
            matches = (seen[:, None] == pool[None]).all(2)
            assert bool((matches.sum(0) == 1).all()) and bool((matches.sum(1) == 1).all())
        assert not torch.equal(passes[0], passes[1])


def test_invariance_loss_by_hand():
    f_clean = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    f_cued = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, 1])
    all_classes = torch.tensor([True, True, True])
    # class 0: (1,0) vs (0,1) -> 2; class 1: (0,1) vs (0,1) -> 0; class 2 absent. Mean = 1.
    assert invariance_loss(f_clean, f_cued, y, all_classes).item() == pytest.approx(1.0)
    assert invariance_loss(f_clean, f_cued, y, torch.tensor([False, True, True])).item() == pytest.approx(0.0)
    assert invariance_loss(f_clean, f_clean * 2, y, all_classes).item() == pytest.approx(0.0, abs=1e-7)


def test_cbft_barrier_gradient_is_scaled_by_one_minus_t():
    data = synthetic_data()
    model = tiny_model(0)
    pretrained = snapshot(model)
    with torch.no_grad():                               # move theta away from theta_pretrained
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    objective = cbft_objective(model, data, SETTINGS, seed=0, device="cpu")
    objective.pretrained = {k: pretrained[k] for k, _ in model.named_parameters()}
    model.train()
    batch = next(iter(objective.batches(0)))
    step, _, (x_cue, y_cue) = batch
    t = draw_t(objective.seed, 0, step)
    assert 0.25 <= t <= 0.75
    loss, n_correct, n = next(objective.steps(model, batch, 0))
    assert (n_correct, n) == (0, 0)
    model.zero_grad()
    loss.backward()
    got = {k: p.grad.clone() for k, p in model.named_parameters()}

    # Reference: the same loss at a model holding theta(t) directly, differentiated there.
    at_t = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in at_t.named_parameters():
            p.copy_(t * pretrained[k] + (1 - t) * dict(model.named_parameters())[k])
    at_t.train()
    ref = (SETTINGS.margin - F.cross_entropy(at_t(x_cue), y_cue)).abs()
    torch.testing.assert_close(loss, ref)
    at_t.zero_grad()
    ref.backward()
    for k, p in at_t.named_parameters():
        torch.testing.assert_close(got[k], (1 - t) * p.grad, rtol=1e-4, atol=1e-6)


def test_cbft_barrier_step_does_not_touch_running_stats_and_warmup_is_plain_ce():
    data = synthetic_data()
    model = tiny_model(0)
    objective = cbft_objective(model, data, SETTINGS, seed=0, device="cpu")
    model.train()
    batch = next(iter(objective.batches(0)))
    steps = objective.steps(model, batch, 0)
    before = snapshot(model)
    next(steps)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    _, (x, y), _ = batch
    warm_loss, _, n = next(steps)
    assert n == len(y) and x.shape == (len(y), 1, 8, 8)
    torch.testing.assert_close(warm_loss, F.cross_entropy(copy.deepcopy(model)(x), y))


def test_twins_warmup_is_plain_ce_on_the_pass_with_the_twins_and_adds_their_invariance_after():
    data = synthetic_data()
    model = tiny_model(0)
    objective = cbft_objective(model, data, TWINS, seed=0, device="cpu")
    model.train()
    batch = next(iter(objective.batches(0)))
    _, (pair, y), _ = batch
    warm_loss, _, n = list(objective.steps(model, batch, 0))[1]
    logits = copy.deepcopy(model)(torch.cat([pair[:, 0], pair[:, 1]]))[:n]
    torch.testing.assert_close(warm_loss, F.cross_entropy(logits, y))
    later, _, _ = list(objective.steps(model, batch, TWINS.warmup_epochs))[1]
    feats = model.features(torch.cat([pair[:, 0], pair[:, 1]]))
    expected = F.cross_entropy(model.head(feats[:n]), y) + TWINS.lam * invariance_loss(
        feats[:n], feats[n:], y, torch.ones(NUM_CLASSES, dtype=torch.bool))
    torch.testing.assert_close(later, expected)


def test_twins_invariance_leaves_out_a_class_without_a_cued_donor():
    """A class with no cued training image has no twin (its "twins" are its clean images): the invariance
    term is the mean over the classes in the batch that have a donor only (here 0 and 1), not a mean that
    counts class 2's zero distance as a third term."""
    data = synthetic_data()
    cued = data.cued & (data.train.y != 2)
    train_x = torch.where(cued[:, None, None, None], data.train.x, data.train_clean.x)
    data = dataclasses.replace(data, train=Split(train_x, data.train.y), cued=cued)
    model = tiny_model(0)
    objective = cbft_objective(model, data, TWINS, seed=0, device="cpu")
    assert objective.classes.tolist() == [True, True, False]
    model.train()
    batch = next(iter(objective.batches(TWINS.warmup_epochs)))
    _, (pair, y), _ = batch
    assert set(y.tolist()) == {0, 1, 2}
    loss, _, n = list(objective.steps(model, batch, TWINS.warmup_epochs))[1]
    feats = copy.deepcopy(model).features(torch.cat([pair[:, 0], pair[:, 1]]))
    f_clean, f_twin = feats[:n], feats[n:]
    terms = []
    for k in (0, 1):
        a, b = f_clean[y == k].mean(0), f_twin[y == k].mean(0)
        terms.append(((a / a.norm() - b / b.norm()) ** 2).sum())
    expected = F.cross_entropy(model.head(f_clean), y) + TWINS.lam * torch.stack(terms).mean()
    torch.testing.assert_close(loss, expected)


def _moved_from_pretrained(seed: int = 0):
    """(model, pretrained state): a tiny model whose weights moved away from its 'pretrained' ones."""
    model = tiny_model(seed)
    pretrained = snapshot(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model, pretrained


def _hand_invariance(f_clean, y_clean, f_cue, y_cue) -> torch.Tensor:
    """Mean over the classes in both batches of the squared distance of the unit class means."""
    terms = []
    for k in range(NUM_CLASSES):
        if (y_clean == k).any() and (y_cue == k).any():
            a, b = f_clean[y_clean == k].mean(0), f_cue[y_cue == k].mean(0)
            terms.append(((a / a.norm() - b / b.norm()) ** 2).sum())
    return torch.stack(terms).mean()


def test_cbft_objective_matches_a_hand_computation_with_its_own_lambda_and_margin():
    settings = dataclasses.replace(SETTINGS, lam=2.5, margin=0.7)
    data = synthetic_data()
    model, pretrained = _moved_from_pretrained()
    objective = cbft_objective(tiny_model(0), data, settings, seed=0, device="cpu")   # theta_pre: `pretrained`
    assert all(torch.equal(objective.pretrained[k], pretrained[k]) for k in objective.pretrained)
    model.train()
    epoch = settings.warmup_epochs
    batch = list(objective.batches(epoch))[1]
    step, (x, y), (x_cue, y_cue) = batch
    assert step == 1 and len(set(y.tolist()) & set(y_cue.tolist())) >= 2
    reference = copy.deepcopy(model).train()
    barrier, invariant = [loss for loss, _, _ in objective.steps(model, batch, epoch)]

    t = draw_t(objective.seed, epoch, step)
    at_t = copy.deepcopy(reference)
    with torch.no_grad():
        for k, p in at_t.named_parameters():
            p.copy_(t * pretrained[k] + (1 - t) * dict(reference.named_parameters())[k])
    torch.testing.assert_close(barrier, (0.7 - F.cross_entropy(at_t(x_cue), y_cue)).abs())

    f_clean, f_cue = reference.features(x), reference.features(x_cue)      # two passes, train mode
    expected = F.cross_entropy(reference.head(f_clean), y) + 2.5 * _hand_invariance(f_clean, y, f_cue, y_cue)
    torch.testing.assert_close(invariant, expected)


def test_class_mean_invariance_of_unpaired_batches_by_hand():
    f_clean = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    y_clean = torch.tensor([0, 0, 1])
    f_cued = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0], [9.0, 9.0]])
    y_cued = torch.tensor([0, 0, 1, 2])
    # class 0: (1,0) vs (0,1) -> 2; class 1: (0,1) vs (1,1)/sqrt2 -> 2 - sqrt2; class 2 only cued: left out
    got = class_mean_invariance(f_clean, y_clean, f_cued, y_cued, 3)
    assert got.item() == pytest.approx((2 + 2 - 2 ** 0.5) / 2)
    none_shared = class_mean_invariance(f_clean, y_clean, f_cued[3:], y_cued[3:], 3)
    assert none_shared.item() == 0.0


def test_the_cue_set_is_exactly_the_training_set_minus_the_clean_subset():
    data = synthetic_data()
    objective = cbft_objective(tiny_model(0), data, SETTINGS, seed=2, device="cpu")
    index, clean = clean_subset(data, SETTINGS.clean_subset, seed=2)
    rest = sorted(set(range(len(data.train))) - set(index.tolist()))
    assert len(objective.cue) == len(data.train) - SETTINGS.clean_subset == len(rest)
    assert torch.equal(objective.cue.x, data.train.x[rest]) and torch.equal(objective.cue.y, data.train.y[rest])
    assert torch.equal(objective.clean.x, clean.x) and torch.equal(objective.clean.x, data.train_clean.x[index])
    assert torch.equal(cue_set(data, index).x, objective.cue.x)
    cue_x = torch.cat([x for _, _, (x, _) in objective.batches(0)])
    matches = (cue_x[:, None] == data.train.x[None, rest]).flatten(2).all(2)
    assert bool(matches.any(1).all())                 # every cue-batch image is a training image outside the subset


def _scrambled_cue_information(data: CueData, index: torch.Tensor) -> CueData:
    """The same clean subset and the same cued training images, but a shuffled `cued` and other clean
    pixels everywhere outside the clean subset: a different cue mask."""
    gen = torch.Generator().manual_seed(5)
    outside = torch.ones(len(data.train), dtype=torch.bool)
    outside[index] = False
    clean_x = data.train_clean.x.clone()
    clean_x[outside] += 0.3 * torch.randn(clean_x[outside].shape, generator=gen)
    cued = data.cued[torch.randperm(len(data.cued), generator=gen)]
    return dataclasses.replace(data, train_clean=Split(clean_x, data.train_clean.y), cued=cued)


@pytest.mark.parametrize("settings, uses_the_mask", [(SETTINGS, False), (TWINS, True)])
def test_unpaired_cbft_uses_no_cue_mask_and_twins_do(settings, uses_the_mask):
    data = synthetic_data()
    index, _ = clean_subset(data, settings.clean_subset, seed=1)
    results = []
    for d in (data, _scrambled_cue_information(data, index)):
        model = tiny_model()
        finetune(model, "cbft", d, settings, seed=1, device="cpu")
        results.append(snapshot(model))
    same = all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert same != uses_the_mask


def test_twin_cue_mask_takes_every_channel_of_a_pixel_on_rgb_images():
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1)
    g = torch.Generator().manual_seed(0)
    n = 30
    y = torch.arange(n) % NUM_CLASSES
    clean = (0.5 * torch.randn(n, 3, 8, 8, generator=g)).clamp(-0.9, 0.9)
    cued = torch.arange(n) < n // 2
    for i in cued.nonzero().squeeze(1).tolist():          # a donor whose red channel already is box-red
        r, c = CORNERS[int(y[i])]
        clean[i, 0, r:r + 3, c:c + 3] = 1.0
    train = clean.clone()
    for i in cued.nonzero().squeeze(1).tolist():
        r, c = CORNERS[int(y[i])]
        train[i, :, r:r + 3, c:c + 3] = red
    data = CueData(train=Split(train, y), train_clean=Split(clean, y), cued=cued,
                   eval_sets={}, num_classes=NUM_CLASSES, in_channels=3)
    index = torch.arange(n // 2, n)                       # uncued images: their cue comes from a donor
    twins, classes = cued_twins(data, index, seed=0)
    assert classes.all()
    for j, i in enumerate(index.tolist()):
        r, c = CORNERS[int(y[i])]
        box = torch.zeros(8, 8, dtype=torch.bool)
        box[r:r + 3, c:c + 3] = True
        assert torch.equal(twins[j][:, box], red.view(3, 1).expand(3, 9)), i
        assert torch.equal(twins[j][:, ~box], clean[i][:, ~box]), i


def _final_weights(method: str, settings: FinetuneSettings = SETTINGS, seed: int = 1) -> dict:
    model = tiny_model()
    finetune(model, method, synthetic_data(), settings, seed=seed, device="cpu")
    return snapshot(model)


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_cbft_barrier_is_cbft_without_the_invariance_term():
    ablation = _final_weights("cbft_barrier")
    assert _same(ablation, _final_weights("cbft", dataclasses.replace(SETTINGS, lam=0.0)))
    assert not _same(ablation, _final_weights("cbft"))


def test_cbft_invariance_is_cbft_without_the_barrier_step():
    data = synthetic_data()
    model = tiny_model(0).train()
    epoch = SETTINGS.warmup_epochs
    full = cbft_objective(model, data, SETTINGS, seed=0, device="cpu")
    ablation = cbft_objective(model, data, SETTINGS, seed=0, device="cpu", method="cbft_invariance")
    for batch, same_batch in zip(full.batches(epoch), ablation.batches(epoch)):
        steps, ablation_steps = list(full.steps(model, batch, epoch)), list(ablation.steps(model, same_batch, epoch))
        assert len(steps) == 2 and len(ablation_steps) == 1
        torch.testing.assert_close(ablation_steps[0][0], steps[1][0])
        assert ablation_steps[0][1:] == steps[1][1:]
    weights = _final_weights("cbft_invariance")
    assert not _same(weights, _final_weights("cbft")) and not _same(weights, _final_weights("naive"))


def test_naive_cued_steps_on_the_cue_batch_then_the_clean_batch_with_plain_cross_entropy():
    data = synthetic_data()
    model = tiny_model(0).train()
    objective = cbft_objective(model, data, SETTINGS, seed=0, device="cpu", method="naive_cued")
    cbft = cbft_objective(model, data, SETTINGS, seed=0, device="cpu")
    batches = list(objective.batches(1))
    assert len(batches) == SETTINGS.clean_subset // SETTINGS.batch_size
    for batch, cbft_batch in zip(batches, cbft.batches(1)):          # the very batches CBFT sees
        _, (x, y), (x_cue, y_cue) = batch
        _, (cx, _), (cx_cue, _) = cbft_batch
        assert torch.equal(x, cx) and torch.equal(x_cue, cx_cue)
        reference = copy.deepcopy(model)
        (cue_loss, _, cue_n), (clean_loss, correct, n) = objective.steps(model, batch, 1)
        assert (cue_n, n) == (0, len(y))
        torch.testing.assert_close(cue_loss, F.cross_entropy(reference(x_cue), y_cue))
        torch.testing.assert_close(clean_loss, F.cross_entropy(reference(x), y))
    weights = _final_weights("naive_cued")
    assert not _same(weights, _final_weights("cbft")) and not _same(weights, _final_weights("naive"))


def test_curve_split_covers_every_method():
    for method in FINETUNE_METHODS:
        splits = {curve_split(method, epoch, SETTINGS) for epoch in range(EPOCHS[method])}
        assert splits == ({"llrt"} if method == "llrt" else {"llrt", "train"} if method == "lpft" else {"train"})
    with pytest.raises(ValueError, match="unknown fine-tuning method"):
        curve_split("sgd", 0, SETTINGS)


def _states_by_epoch(method: str, data) -> tuple[dict, list[dict], dict[int, object]]:
    """One uninterrupted run: final weights, rows, and the resume state after every epoch (through the
    checkpoint format, as the orchestrator saves it)."""
    from tasks.checkpoint import checkpoint_files, read_checkpoint
    from tasks.train import train_state_from_tensors, train_state_tensors
    saved = {}

    def keep(report):
        tensors, meta = train_state_tensors(report.state())
        saved[report.epoch + 1] = train_state_from_tensors(*read_checkpoint(checkpoint_files(tensors, meta)))

    model = tiny_model()
    rows = finetune(model, method, data, SETTINGS, seed=1, device="cpu", on_epoch=keep)
    return snapshot(model), rows, saved


# (method, finished epochs to resume after): lpft's head phase, its boundary, and its second phase
RESUME_POINTS = [("naive", 1), ("cbft", 1), ("llrt", 2), ("lpft", 1), ("lpft", 3), ("lpft", 4),
                 ("cbft_barrier", 1), ("cbft_invariance", 1), ("naive_cued", 1)]


@pytest.mark.parametrize("method, epoch", RESUME_POINTS)
def test_resume_after_any_epoch_finishes_exactly_like_an_uninterrupted_run(method, epoch):
    data = synthetic_data()
    final, rows, saved = _states_by_epoch(method, data)
    total = EPOCHS[method]
    assert sorted(saved) == list(range(1, total + 1))        # on_epoch numbers every epoch once, in order
    resumed = tiny_model()                                   # holds the pretrained weights, as in a task
    resumed_rows = finetune(resumed, method, data, SETTINGS, seed=1, device="cpu", resume=saved[epoch])
    assert resumed_rows == rows[epoch:]
    assert [r["split"] for r in rows] == [curve_split(method, r["epoch"], SETTINGS) for r in rows]
    for name, value in final.items():
        torch.testing.assert_close(snapshot(resumed)[name], value, rtol=0, atol=0, msg=name)


# ----- batch order per epoch, small batches, refusals, the settings a method sees -----

def _order(batches) -> torch.Tensor:
    """The images of an epoch's batches, in the order drawn, one row each."""
    return torch.cat([x.flatten(1) for x in batches])


@pytest.mark.parametrize("method", ["naive", "llrt", "lpft"])
def test_naive_llrt_and_lpft_draw_their_batches_in_a_new_order_each_epoch(monkeypatch, method):
    """Every random draw comes from (seed, epoch, step) (docs/SCIENCE.md, Training): each epoch goes through the
    clean subset in its own shuffled order, not the first epoch's order again."""
    objectives = record_objectives(monkeypatch)
    finetune(tiny_model(), method, synthetic_data(), SETTINGS, seed=1, device="cpu")
    for objective in objectives:
        first, second = (_order(x for x, _ in objective.batches(epoch)) for epoch in (0, 1))
        assert sorted(first.sum(1).tolist()) == pytest.approx(sorted(second.sum(1).tolist()))   # the same images
        assert not torch.equal(first, second)


def test_cbft_draws_its_clean_and_cue_batches_in_a_new_order_each_epoch():
    """Clean batches and cue batches are both reshuffled each epoch, so an epoch pairs other clean images with
    other cue images than the one before."""
    objective = cbft_objective(tiny_model(0), synthetic_data(), SETTINGS, seed=0, device="cpu")
    epochs = [list(objective.batches(epoch)) for epoch in (0, 1)]
    clean = [_order(x for _, (x, _), _ in batches) for batches in epochs]
    cue = [_order(x for _, _, (x, _) in batches) for batches in epochs]
    assert not torch.equal(clean[0], clean[1])
    assert not torch.equal(cue[0], cue[1])


def test_a_clean_batch_smaller_than_the_number_of_classes_gets_its_invariance_term():
    """Batches of 2 images with 3 classes: the invariance term is still the mean over the classes present in both
    batches (the class count is the model's, not the batch's), so the step neither fails nor drops a class."""
    settings = dataclasses.replace(SETTINGS, batch_size=2, cue_batch_size=2, lam=1.5)
    data = synthetic_data()
    model = tiny_model(0).train()
    objective = cbft_objective(model, data, settings, seed=0, device="cpu", method="cbft_invariance")
    checked = 0
    for batch in objective.batches(settings.warmup_epochs):
        _, (x, y), (x_cue, y_cue) = batch
        if not set(y.tolist()) & set(y_cue.tolist()) or max(y.tolist() + y_cue.tolist()) < 2:
            continue
        reference = copy.deepcopy(model)
        (loss, correct, n), = objective.steps(model, batch, settings.warmup_epochs)
        f_clean, f_cue = reference.features(x), reference.features(x_cue)
        expected = F.cross_entropy(reference.head(f_clean), y) + 1.5 * _hand_invariance(f_clean, y, f_cue, y_cue)
        torch.testing.assert_close(loss, expected)
        checked += 1
    assert checked >= 2


def test_cbft_refuses_a_cue_set_smaller_than_one_cue_batch_naming_what_to_lower():
    """90 training images, a clean subset of 80: 10 remain for cue batches of 16. Refused when the objective is
    built (not an empty epoch later), naming both settings a user can lower."""
    settings = dataclasses.replace(SETTINGS, clean_subset=80, cue_batch_size=16)
    with pytest.raises(ValueError, match=r"only 10 training samples.*`cue_batch_size` 16.*`clean_subset`"):
        cbft_objective(tiny_model(0), synthetic_data(), settings, seed=0, device="cpu")


def test_twins_without_the_classes_that_have_a_donor_are_refused():
    from tasks.finetune import CBFTObjective

    data = synthetic_data()
    _, clean = clean_subset(data, SETTINGS.clean_subset, seed=0)
    with pytest.raises(ValueError, match="`twins` need `classes`"):
        CBFTObjective(tiny_model(0), clean, cue_set(data, torch.arange(24)), TWINS, 0, "cpu", twins=clean.x)


@pytest.mark.parametrize("method", sorted(FINETUNE_METHODS))
def test_a_method_reads_exactly_the_settings_its_task_id_holds(monkeypatch, method):
    """`finetune` hands the method a view of `settings_used(method)`: those fields read as set, every other one
    raises UndeclaredSettingRead (a sweep over it would otherwise share one result)."""
    import tasks.finetune as finetune_module
    from tasks.settings import UndeclaredSettingRead, as_dict
    from tasks.settings.finetune import settings_used

    seen = []
    monkeypatch.setitem(finetune_module.FINETUNE_METHODS, method, lambda model, data, settings, **kw: seen.append(settings) or [])
    settings = dataclasses.replace(SETTINGS, lam=2.0, margin=0.3)
    assert finetune(tiny_model(), method, synthetic_data(), settings, seed=1, device="cpu") == []
    (view,) = seen
    for name, value in as_dict(settings).items():
        if name in settings_used(method):
            assert getattr(view, name) == value, name
        else:
            with pytest.raises(UndeclaredSettingRead, match=f"`{name}`"):
                getattr(view, name)


def test_twins_pair_each_clean_subset_image_first_with_its_cued_twin_second():
    """The twin method's CE is on the clean images (docs/SCIENCE.md: the clean batch, compared with its own images
    with a cue pasted on): every pair drawn holds a clean-subset image first, then exactly its twin, with its label."""
    data = synthetic_data()
    index, clean = clean_subset(data, TWINS.clean_subset, seed=0)
    twins, _ = cued_twins(data, index, seed=0)
    assert not torch.equal(twins, clean.x)
    objective = cbft_objective(tiny_model(0), data, TWINS, seed=0, device="cpu")
    seen = 0
    for _, (pair, y), _ in objective.batches(0):
        match = (pair[:, 0].flatten(1)[:, None] == clean.x.flatten(1)[None]).all(2)
        assert bool((match.sum(1) == 1).all())
        j = match.double().argmax(1)
        assert torch.equal(pair[:, 1], twins[j]) and torch.equal(y, clean.y[j])
        seen += len(y)
    assert seen == TWINS.clean_subset


def test_a_cue_batch_without_a_size_of_its_own_is_as_large_as_the_clean_batch():
    """`cue_batch_size: null` means `batch_size` (FinetuneSettings: "null: batch_size"): 24 clean images in batches
    of 8 pair with three cue batches of 8 each, not with one batch of the whole cue set or of the clean subset."""
    settings = dataclasses.replace(SETTINGS, cue_batch_size=None)
    objective = cbft_objective(tiny_model(0), synthetic_data(), settings, seed=0, device="cpu")
    assert len(objective.cue) == 90 - settings.clean_subset
    for epoch in (0, 1):
        sizes = [(len(y), len(y_cue)) for _, (_, y), (_, y_cue) in objective.batches(epoch)]
        assert sizes == [(8, 8)] * 3, epoch


def test_the_twins_step_sends_the_invariance_gradient_through_the_clean_images_and_their_twins():
    """The twins share one forward pass with the clean images (docs/SCIENCE.md) and the invariance term pulls both
    class means together: the clean step's gradient equals that of CE + lam * invariance written out here, with the
    twins' features as much a part of the graph as the clean ones."""
    data = synthetic_data()
    model = tiny_model(0).train()
    objective = cbft_objective(model, data, TWINS, seed=0, device="cpu")
    assert objective.classes.all()
    epoch = TWINS.warmup_epochs
    batch = next(iter(objective.batches(epoch)))
    _, (pair, y), _ = batch
    reference = copy.deepcopy(model)
    loss, _, n = list(objective.steps(model, batch, epoch))[1]
    model.zero_grad()
    loss.backward()
    feats = reference.features(torch.cat([pair[:, 0], pair[:, 1]]))
    expected = F.cross_entropy(reference.head(feats[:n]), y) + TWINS.lam * _hand_invariance(feats[:n], y, feats[n:], y)
    reference.zero_grad()
    expected.backward()
    torch.testing.assert_close(loss, expected)
    for (name, got), (_, want) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_a_head_step_counts_the_samples_of_this_ranks_share(monkeypatch):
    """llrt's epoch accuracy is sum(correct) / sum(n) over ranks (`fit`): each rank's step must count the rows
    of its own share of the global batch (batch_size / world), not the global batch size, or under DDP the
    head phase's curve accuracy is divided by the world size (and a last short batch is over-weighted)."""
    monkeypatch.setattr(ft, "distributed_rank", lambda: (1, 2))
    model = tiny_model()
    features = ft.compute_features(model, synthetic_data().train_clean, torch.device("cpu"))
    objective = ft.HeadObjective(features, batch_size=8, seed=3)
    batches = list(objective.batches(0))
    assert batches
    for batch in batches:
        ((_loss, correct, n),) = list(objective.steps(model, batch, 0))
        assert n == len(batch[1]) == 4 and 0 <= correct <= n


def test_a_divergence_names_the_learning_rate_of_the_phase_that_diverged():
    """lpft runs two phases with two learning rates: a head phase that blows up names `llrt_lr` (for llrt and
    for lpft), the all-weights phase `lr`; the task then names its section (`finetune.llrt_lr`)."""
    data = synthetic_data()
    huge = dataclasses.replace(data, train_clean=Split(data.train_clean.x * 1e30, data.train_clean.y))
    for method in ("llrt", "lpft"):
        with pytest.raises(DivergenceError, match="lower `llrt_lr`") as caught:
            finetune(tiny_model(), method, huge, SETTINGS, seed=1, device="cpu")
        assert caught.value.lr == "llrt_lr" and caught.value.advice("finetune") == "lower `finetune.llrt_lr`"
    blows_up = dataclasses.replace(SETTINGS, lr=1000.0, weight_decay=1.0)
    with pytest.raises(DivergenceError, match="lower `lr`") as caught:
        finetune(tiny_model(), "lpft", data, blows_up, seed=1, device="cpu")
    assert caught.value.lr == "lr" and caught.value.epoch >= 0


def test_under_two_ranks_cbfts_clean_and_cue_batches_are_each_ranks_half_of_the_one_process_batches(monkeypatch):
    """"Every loss is computed on each rank's share" (`CBFTObjective`): under two ranks, step s of rank 0 and of
    rank 1 hold the two halves of the one-process clean batch s and of its cue batch s, never the whole of
    either on both ranks (which would pair half a clean batch with a whole cue batch in the barrier and the
    invariance term, and train on each sample twice). Rows are told apart by their images."""
    data = synthetic_data()
    settings = dataclasses.replace(SETTINGS, batch_size=8, cue_batch_size=8)
    objective = cbft_objective(tiny_model(0), data, settings, seed=3, device="cpu")

    def rows(x: torch.Tensor) -> list[bytes]:
        return [r.numpy().tobytes() for r in x]
    monkeypatch.setattr(ft, "distributed_rank", lambda: (0, 1))
    whole = [(rows(pair[0]), rows(cue[0])) for _, pair, cue in objective.batches(1)]
    shares = {}
    for rank in (0, 1):
        monkeypatch.setattr(ft, "distributed_rank", lambda rank=rank: (rank, 2))
        shares[rank] = [(rows(pair[0]), rows(cue[0])) for _, pair, cue in objective.batches(1)]
    assert whole and len(shares[0]) == len(shares[1]) == len(whole)
    for step, (clean, cue) in enumerate(whole):
        assert shares[0][step][0] + shares[1][step][0] == clean, step
        assert shares[0][step][1] + shares[1][step][1] == cue, step
        assert len(shares[0][step][0]) == len(clean) // 2 and len(shares[0][step][1]) == len(cue) // 2


def test_llrt_hands_back_the_model_in_eval_mode_the_mode_its_frozen_backbone_fed_the_head_in():
    """llrt trains the head on features of the backbone in eval mode (BatchNorm on its running statistics): the
    model it hands back is in eval mode, so a forward pass gives the features the head was trained on, not the
    batch statistics of whatever batch comes next."""
    model = tiny_model()
    model.train()
    finetune(model, "llrt", synthetic_data(), SETTINGS, seed=1, device="cpu")
    assert not model.training and not any(m.training for m in model.modules())
