"""Fine-tuning methods on tiny synthetic CueData with a tiny CNN."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from tasks.data import CueData, Split
from tasks.finetune import (
    FINETUNE_METHODS,
    FinetuneSettings,
    cbft_objective,
    clean_subset,
    cued_twins,
    curve_split,
    draw_t,
    finetune,
    invariance_loss,
)
from tasks.models import build_model

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
    expected_rows = {"naive": SETTINGS.epochs, "cbft": SETTINGS.epochs,
                     "lpft": SETTINGS.llrt_epochs + SETTINGS.epochs, "llrt": SETTINGS.llrt_epochs}[method]
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
    _, (pair, y), _ = batch
    warm_loss, _, n = next(steps)
    assert n == len(y)
    logits = copy.deepcopy(model)(torch.cat([pair[:, 0], pair[:, 1]]))[:n]
    torch.testing.assert_close(warm_loss, F.cross_entropy(logits, y))
    # after warm-up the invariance term is added
    later, _, _ = list(objective.steps(model, batch, SETTINGS.warmup_epochs))[1]
    feats = model.features(torch.cat([pair[:, 0], pair[:, 1]]))
    expected = F.cross_entropy(model.head(feats[:n]), y) + SETTINGS.lam * invariance_loss(
        feats[:n], feats[n:], y, torch.ones(NUM_CLASSES, dtype=torch.bool))
    torch.testing.assert_close(later, expected)


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
RESUME_POINTS = [("naive", 1), ("cbft", 1), ("llrt", 2), ("lpft", 1), ("lpft", 3), ("lpft", 4)]


@pytest.mark.parametrize("method, epoch", RESUME_POINTS)
def test_resume_after_any_epoch_finishes_exactly_like_an_uninterrupted_run(method, epoch):
    data = synthetic_data()
    final, rows, saved = _states_by_epoch(method, data)
    total = {"naive": SETTINGS.epochs, "cbft": SETTINGS.epochs, "llrt": SETTINGS.llrt_epochs,
             "lpft": SETTINGS.llrt_epochs + SETTINGS.epochs}[method]
    assert sorted(saved) == list(range(1, total + 1))        # on_epoch numbers every epoch once, in order
    resumed = tiny_model()                                   # holds the pretrained weights, as in a task
    resumed_rows = finetune(resumed, method, data, SETTINGS, seed=1, device="cpu", resume=saved[epoch])
    assert resumed_rows == rows[epoch:]
    assert [r["split"] for r in rows] == [curve_split(method, r["epoch"], SETTINGS) for r in rows]
    for name, value in final.items():
        torch.testing.assert_close(snapshot(resumed)[name], value, rtol=0, atol=0, msg=name)
