"""tasks.train: the loop learns, schedules, exact resume, divergence, and 2-process DDP == 1 process."""
from __future__ import annotations

import dataclasses
import math
import os
import pickle
import socket
import warnings
from functools import partial

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from tasks.checkpoint import checkpoint_files, read_checkpoint
from tasks.data import Split, iterate_batches
from tasks.seeding import generator
from tasks.settings.train import MAX_LR, SCHEDULES
from tasks.train import (DivergenceError, OptimSettings, cross_entropy_objective, fit, lr_at, make_optimizer,
                         make_scheduler, train_state_from_tensors, train_state_tensors, training_autocast)


class TinyNet(nn.Module):
    """Classifier-shaped: `.features` (+ optional BatchNorm and dropout) and `.head`; `unused` never gets a grad."""

    def __init__(self, d_in: int = 4, width: int = 16, classes: int = 3, bn: bool = True, dropout: float = 0.0):
        super().__init__()
        layers = [nn.Flatten(), nn.Linear(d_in, width)]
        layers += [nn.BatchNorm1d(width)] if bn else []
        layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)
        self.unused = nn.Linear(2, 2)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def blobs(n: int = 96, classes: int = 3, seed: int = 0, spread: float = 0.3) -> Split:
    """Separable Gaussian blobs, images of shape [1, 2, 2] (4 features)."""
    gen = generator(seed)
    y = torch.arange(n) % classes
    centres = torch.randn(classes, 4, generator=gen) * 2
    x = centres[y] + spread * torch.randn(n, 4, generator=gen)
    return Split(x.reshape(n, 1, 2, 2), y)


def make_model(seed: int, **kw) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(**kw)


def test_fit_reduces_loss_on_separable_problem():
    model, split = make_model(0), blobs()
    settings = OptimSettings(epochs=8, lr=0.1, batch_size=16, schedule="constant")
    rows = fit(model, cross_entropy_objective(split, 16, seed=0), model.parameters(), settings, seed=0, device="cpu")
    assert [r["epoch"] for r in rows] == list(range(8))
    assert all(r["split"] == "train" for r in rows)
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert rows[-1]["acc"] > 0.95


def test_unused_parameters_are_not_decayed():
    model, split = make_model(0), blobs()
    before = model.unused.weight.detach().clone()
    settings = OptimSettings(epochs=2, lr=0.1, weight_decay=0.1, batch_size=16)
    fit(model, cross_entropy_objective(split, 16, seed=0), model.parameters(), settings, seed=0, device="cpu")
    torch.testing.assert_close(model.unused.weight, before, rtol=0, atol=0)


def test_step_and_cosine_schedules_give_lr_per_epoch():
    step = OptimSettings(epochs=5, lr=1.0, schedule="step", step_epochs=2, gamma=0.1)
    assert [lr_at(step, e) for e in range(5)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    cosine = OptimSettings(epochs=4, lr=2.0, schedule="cosine")
    expected = [2 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert [lr_at(cosine, e) for e in range(4)] == pytest.approx(expected)
    assert expected[1] == pytest.approx(1.7071, abs=1e-4) and expected[2] == pytest.approx(1.0)
    constant = OptimSettings(epochs=3, lr=0.3, schedule="constant")
    assert [lr_at(constant, e) for e in range(3)] == pytest.approx([0.3] * 3)

    # the torch scheduler and fit's own epochs agree with lr_at
    opt = make_optimizer([nn.Parameter(torch.zeros(1))], cosine)
    scheduler, seen = make_scheduler(opt, cosine), []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert seen == pytest.approx(expected)
    model, reported = make_model(0), []
    fit(model, cross_entropy_objective(blobs(), 32, seed=0), model.parameters(), step, seed=0, device="cpu",
        on_epoch=lambda r: reported.append(r.lr))
    assert reported == pytest.approx([lr_at(step, e) for e in range(5)])


def test_a_schedule_reads_exactly_the_fields_idle_fields_leaves_it():
    """`OptimSettings.idle_fields` is what the spec check trusts to call `pretrain.gamma` unread under a cosine
    schedule: training under each schedule, with a view that refuses the idle fields, runs; and each field a
    schedule calls idle is one another schedule reads (so the list is not merely long)."""
    from tasks.settings import UndeclaredSettingRead, restrict
    fields = [f.name for f in dataclasses.fields(OptimSettings)]
    idle_somewhere = set()
    for schedule in SCHEDULES:
        settings = OptimSettings(epochs=3, lr=0.1, batch_size=16, schedule=schedule, step_epochs=1, gamma=0.5)
        idle = OptimSettings.idle_fields(partial(getattr, settings))
        view = restrict(settings, [f for f in fields if f not in idle], owner=f"a {schedule} schedule")
        model = make_model(0)
        fit(model, cross_entropy_objective(blobs(), 32, seed=0), model.parameters(), view, seed=0, device="cpu")
        idle_somewhere |= set(idle)
        for name in idle:           # a reader of the idle field under this schedule would have raised above
            assert name in fields
    assert idle_somewhere == {"step_epochs", "gamma"}
    step = restrict(OptimSettings(schedule="step"), [f for f in fields if f != "gamma"], owner="a step schedule")
    with pytest.raises(UndeclaredSettingRead):
        lr_at(step, 1)


def test_settings_name_the_bad_value():
    with pytest.raises(ValueError, match=r"`schedule`: 'linear'.*step, cosine, constant"):
        OptimSettings(schedule="linear")
    with pytest.raises(ValueError, match=r"`lr`: -1.*`batch_size`: 0"):
        OptimSettings(lr=-1, batch_size=0)


def test_resume_from_mid_run_state_is_exact():
    split = blobs(n=64)
    settings = OptimSettings(epochs=4, lr=0.05, momentum=0.9, batch_size=16, schedule="cosine")
    kw = dict(bn=True, dropout=0.2)  # BN buffers and global-RNG dropout must both resume exactly
    saved = {}

    def keep_epoch_1(report):
        if report.epoch == 1:  # round-trip through the checkpoint format, as a real resume would
            tensors, meta = train_state_tensors(report.state())
            saved["files"] = checkpoint_files(tensors, meta)

    full = make_model(0, **kw)
    full_rows = fit(full, cross_entropy_objective(split, 16, seed=3), full.parameters(), settings, seed=3,
                    device="cpu", on_epoch=keep_epoch_1)

    state = train_state_from_tensors(*read_checkpoint(saved["files"]))
    assert state.epoch == 2
    resumed = make_model(1, **kw)  # different init: everything must come from the state
    resumed_rows = fit(resumed, cross_entropy_objective(split, 16, seed=3), resumed.parameters(), settings,
                       seed=3, device="cpu", resume=state)
    assert resumed_rows == full_rows[2:]
    for name, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)

    # control: the same weights without the optimiser's momentum do not reproduce the run
    no_momentum = make_model(1, **kw)
    no_momentum.load_state_dict(state.model)
    fit(no_momentum, cross_entropy_objective(split, 16, seed=3), no_momentum.parameters(), settings, seed=3,
        device="cpu", start_epoch=2)
    assert not torch.equal(no_momentum.head.weight, full.head.weight)


def test_spawned_children_share_the_parents_first_epochs_bit_for_bit_then_differ_in_data_order():
    split = blobs(n=64)
    settings = OptimSettings(epochs=4, lr=0.05, momentum=0.9, batch_size=16, schedule="cosine")
    k = 2

    def train(spawn_seed):
        states = []
        model = make_model(0)
        objective = cross_entropy_objective(split, 16, seed=3, spawn_seed=spawn_seed, spawn_epoch=k)
        fit(model, objective, model.parameters(), settings, seed=3, device="cpu",
            on_epoch=lambda report: states.append(report.state().model))
        return objective, states

    (parent_objective, parent), (one_objective, one), (two_objective, two) = train(None), train(11), train(12)
    for epoch in range(settings.epochs):
        orders = [torch.cat([y for _, y in o.batches(epoch)]) for o in (parent_objective, one_objective, two_objective)]
        assert torch.equal(orders[1], orders[0]) == torch.equal(orders[2], orders[0]) == (epoch < k), epoch
    for epoch in range(k):                               # after epochs 0..k-1: one state, bit for bit
        for name, value in parent[epoch].items():
            assert torch.equal(one[epoch][name], value) and torch.equal(two[epoch][name], value), (epoch, name)
    for epoch in range(k, settings.epochs):
        assert not torch.equal(one[epoch]["head.weight"], two[epoch]["head.weight"]), epoch
        assert not torch.equal(one[epoch]["head.weight"], parent[epoch]["head.weight"]), epoch
    _, same_order = train(3)                             # a child with the parent's order seed is the parent
    assert all(torch.equal(same_order[-1][name], value) for name, value in parent[-1].items())
    with pytest.raises(ValueError, match="spawn_epoch"):
        cross_entropy_objective(split, 16, seed=3, spawn_seed=1, spawn_epoch=-1)


def test_a_spawned_child_resumed_from_the_parents_state_at_k_equals_one_trained_from_scratch():
    split = blobs(n=64)
    settings = OptimSettings(epochs=4, lr=0.05, momentum=0.9, batch_size=16, schedule="cosine")
    saved = {}
    parent = make_model(0)
    fit(parent, cross_entropy_objective(split, 16, seed=3), parent.parameters(), settings, seed=3, device="cpu",
        on_epoch=lambda report: saved.setdefault(report.epoch + 1, report.state()))
    child = make_model(0)
    fit(child, cross_entropy_objective(split, 16, seed=3, spawn_seed=7, spawn_epoch=2), child.parameters(), settings,
        seed=3, device="cpu")
    resumed = make_model(1)
    fit(resumed, cross_entropy_objective(split, 16, seed=3, spawn_seed=7, spawn_epoch=2), resumed.parameters(),
        settings, seed=3, device="cpu", resume=saved[2])
    for name, value in child.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_the_cross_entropy_objective_shuffles_each_epoch_by_seed_and_epoch_and_drops_the_last_partial_batch():
    """42 samples in batches of 8: five full batches per epoch (two samples left out), each epoch in the order
    `iterate_batches` gives for (seed, epoch)."""
    split = blobs(n=42)
    objective = cross_entropy_objective(split, 8, seed=3)
    orders = []
    for epoch in range(3):
        got, want = list(objective.batches(epoch)), list(iterate_batches(split, 8, seed=3, epoch=epoch))
        assert [len(y) for _, y in got] == [8] * 5, epoch
        assert all(torch.equal(a[1], b[1]) and torch.equal(a[0], b[0]) for a, b in zip(got, want, strict=True))
        orders.append(torch.cat([y for _, y in got]))
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])


def test_an_epochs_reported_loss_and_accuracy_are_the_mean_cross_entropy_and_accuracy_over_its_samples():
    """With a negligible lr the model stays put: epoch 0 reports the mean cross-entropy and the accuracy of the
    initial model over the 40 samples its five batches of 8 hold."""
    split = blobs(n=42)
    model = make_model(0, bn=False)
    with torch.no_grad():
        x = torch.cat([x for x, _ in iterate_batches(split, 8, seed=3, epoch=0)])
        y = torch.cat([y for _, y in iterate_batches(split, 8, seed=3, epoch=0)])
        logits = model(x)
    settings = OptimSettings(epochs=1, lr=1e-12, momentum=0.0, weight_decay=0.0, batch_size=8, schedule="constant")
    rows = fit(model, cross_entropy_objective(split, 8, seed=3), model.parameters(), settings, seed=0, device="cpu")
    assert rows[0]["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert rows[0]["acc"] == pytest.approx((logits.argmax(1) == y).double().mean().item())
    assert 0.0 < rows[0]["acc"] < 1.0

def test_huge_lr_raises_divergence_error():
    model = make_model(0, bn=False)
    settings = OptimSettings(epochs=5, lr=MAX_LR, batch_size=16, schedule="constant")   # the most a spec allows
    with pytest.raises(DivergenceError, match="training diverged: loss is (nan|inf)") as info:
        fit(model, cross_entropy_objective(blobs(), 16, seed=0), model.parameters(), settings, seed=0, device="cpu")
    assert info.value.epoch >= 0 and info.value.step >= 0 and not math.isfinite(info.value.value)


def test_a_model_state_that_overflows_while_the_loss_stays_finite_raises_divergence_error():
    """Inputs so large that BatchNorm's batch variance overflows: the normalised activations, and so the loss,
    stay finite, but the running variance becomes inf and every later evaluation would be NaN. The epoch ends in
    a DivergenceError naming the buffer (it survives pickling), not in a finished task whose results are NaN."""
    split = blobs()
    model = make_model(0)
    settings = OptimSettings(epochs=2, lr=0.01, batch_size=16, schedule="constant")
    with pytest.raises(DivergenceError, match=r"training diverged: the model's `body.2.running_var` is inf at "
                                              r"epoch 0, step 6; lower `lr`") as info:
        fit(model, cross_entropy_objective(Split(split.x * 1e25, split.y), 16, seed=0), model.parameters(), settings,
            seed=0, device="cpu")
    assert info.value.where == "the model's `body.2.running_var`" and pickle.loads(pickle.dumps(info.value)).where == info.value.where
    fine = make_model(0)                                      # the same inputs at a sane scale: no error
    fit(fine, cross_entropy_objective(split, 16, seed=0), fine.parameters(), settings, seed=0, device="cpu")


def test_nan_input_raises_divergence_error_at_first_step():
    split = blobs()
    x = split.x.clone()
    x[:] = float("nan")
    model = make_model(0)
    before = model.head.weight.detach().clone()
    settings = OptimSettings(epochs=2, lr=0.1, batch_size=16)
    with pytest.raises(DivergenceError, match=r"epoch 0, step 0.*lower `lr`") as info:
        fit(model, cross_entropy_objective(Split(x, split.y), 16, seed=0), model.parameters(), settings, seed=0,
            device="cpu")
    assert (info.value.epoch, info.value.step) == (0, 0)
    torch.testing.assert_close(model.head.weight, before)  # no step was taken with NaN gradients
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.epoch, copy.step, str(copy)) == (0, 0, str(info.value))


# ----- two-process DDP (gloo) against one process with the same global batch -----

DDP_SETTINGS = OptimSettings(epochs=3, lr=0.1, momentum=0.9, weight_decay=1e-3, batch_size=16, schedule="cosine")


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        # every rank builds a different init: fit must broadcast rank 0's weights
        model = make_model(0 if rank == 0 else 100 + rank, bn=False)
        rows = fit(model, cross_entropy_objective(blobs(), DDP_SETTINGS.batch_size, seed=5), model.parameters(),
                   DDP_SETTINGS, seed=5, device="cpu")
        # with BatchNorm: each rank's running statistics come from its own half batches until fit broadcasts them
        bn_model = make_model(0 if rank == 0 else 100 + rank, bn=True)
        fit(bn_model, cross_entropy_objective(blobs(), DDP_SETTINGS.batch_size, seed=5), bn_model.parameters(),
            DDP_SETTINGS, seed=5, device="cpu")
        torch.save({"state": model.state_dict(), "rows": rows, "bn_state": bn_model.state_dict()},
                   f"{out_dir}/rank{rank}.pt")
        dist.barrier()   # both ranks done before either tears gloo down
    finally:
        dist.destroy_process_group()
    # Skip interpreter teardown: gloo's threads can abort it ("terminate called without an active
    # exception", SIGABRT) after all work is done and written. Errors above still propagate.
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_matches_single_process(tmp_path):
    # No BatchNorm here: BN batch statistics are per-rank (as in DDP without SyncBN), so a BN model
    # would legitimately differ from one process seeing the whole global batch.
    single = make_model(0, bn=False)
    single_rows = fit(single, cross_entropy_objective(blobs(), DDP_SETTINGS.batch_size, seed=5), single.parameters(),
                      DDP_SETTINGS, seed=5, device="cpu")

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert results[0]["rows"] == results[1]["rows"]  # every rank reports the same epoch metrics
    for name, value in single.state_dict().items():
        torch.testing.assert_close(results[0]["state"][name], results[1]["state"][name], rtol=0, atol=0)
        torch.testing.assert_close(results[0]["state"][name], value, rtol=1e-5, atol=1e-5, msg=name)
    for ddp_row, row in zip(results[0]["rows"], single_rows, strict=True):
        assert ddp_row["loss"] == pytest.approx(row["loss"], rel=1e-5)
        assert ddp_row["acc"] == pytest.approx(row["acc"])
    assert not torch.equal(results[0]["state"]["head.weight"], make_model(0, bn=False).head.weight)
    bn_states = [r["bn_state"] for r in results]        # every epoch ends with rank 0's buffers on every rank
    assert float(bn_states[0]["body.2.running_mean"].abs().sum()) > 0
    for name, value in bn_states[0].items():
        assert torch.equal(bn_states[1][name], value), name


def test_each_rank_and_epoch_draws_its_own_global_rng_stream():
    """Dropout masks differ across data-parallel ranks (each sees other samples) as across epochs."""
    from tasks.train import _seeded_global_rng

    draws = {}
    for rank, epoch in ((0, 2), (1, 2), (0, 3)):
        with _seeded_global_rng(5, epoch, rank, torch.device("cpu")):
            draws[rank, epoch] = torch.rand(4)
    assert len({tuple(d.tolist()) for d in draws.values()}) == 3
    with _seeded_global_rng(5, 2, 1, torch.device("cpu")):
        assert torch.equal(torch.rand(4), draws[1, 2])


@pytest.mark.parametrize("field, bad, fine", [
    ("momentum", 1.0, 0.0), ("momentum", -0.1, 0.99), ("gamma", 0.0, 1.0), ("gamma", 1.5, 0.5),
    ("lr", 0.0, 1e-6), ("weight_decay", -1e-4, 0.0), ("epochs", 0, 1), ("step_epochs", 0, 1),
])
def test_optimiser_settings_refuse_values_outside_their_meaningful_range(field, bad, fine):
    """SGD momentum in [0, 1) (the buffer sums m^k: 1 never forgets), the step schedule's factor gamma in (0, 1]
    (a decay; 1 is constant), a positive lr, a non-negative weight decay, at least one epoch, and at least one epoch
    per step (`epoch // step_epochs`). The bad value is named; the boundary value beside it is accepted."""
    with pytest.raises(ValueError, match=f"`{field}`: {bad} is not allowed"):
        OptimSettings(**{field: bad})
    assert getattr(OptimSettings(**{field: fine}), field) == fine


def test_a_train_state_with_non_tensor_optimiser_values_round_trips_through_tensors_and_json():
    """`train_state_from_tensors` is the inverse of `train_state_tensors`, through the JSON of meta.json: the
    optimiser's per-parameter tensors and its non-tensor values (a step count some optimisers keep as a plain
    number) come back together under the parameter's integer index, as `Optimizer.load_state_dict` expects."""
    import json

    from tasks.train import TrainState

    optimizer = {"state": {0: {"momentum_buffer": torch.tensor([1.0, 2.0]), "step": 3},
                           1: {"momentum_buffer": torch.tensor([-1.0]), "step": 5, "flag": True}},
                 "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]}
    state = TrainState({"w": torch.ones(2), "b": torch.zeros(1)}, optimizer, 4)
    tensors, meta = train_state_tensors(state)
    back = train_state_from_tensors(tensors, json.loads(json.dumps(meta)))
    assert back.epoch == 4 and back.model.keys() == state.model.keys()
    assert back.optimizer["param_groups"] == optimizer["param_groups"]
    assert sorted(back.optimizer["state"]) == [0, 1]
    for index, entry in optimizer["state"].items():
        got = back.optimizer["state"][index]
        assert got.keys() == entry.keys(), index
        assert torch.equal(got["momentum_buffer"], entry["momentum_buffer"])
        assert all(got[k] == v for k, v in entry.items() if k != "momentum_buffer"), index


def test_prepare_batch_gives_float32_channels_last_images_and_the_labels_unchanged():
    """"Float32 images in channels_last ... and int64 labels on `device`": integer (uint8) or float64 images become
    float32 with the same values, laid out channels_last; labels pass through as they are."""
    from tasks.train import prepare_batch

    y = torch.tensor([2, 0])
    for dtype in (torch.uint8, torch.float64):
        x = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).to(dtype)
        got_x, got_y = prepare_batch(x, y, torch.device("cpu"))
        assert got_x.dtype == torch.float32, dtype
        assert got_x.is_contiguous(memory_format=torch.channels_last), dtype
        assert torch.equal(got_x, torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)), dtype
        assert got_y.dtype == torch.int64 and torch.equal(got_y, y)


def test_training_runs_in_bf16_autocast_on_cuda_and_in_float32_elsewhere():
    """bf16 needs no loss scaling; float16 without a grad scaler would underflow small gradients. Read from
    the context itself, so this holds on a machine without a GPU (there torch disables it, with a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cuda = training_autocast(torch.device("cuda"))
    assert isinstance(cuda, torch.autocast) and cuda.device == "cuda" and cuda.fast_dtype == torch.bfloat16
    assert not isinstance(training_autocast(torch.device("cpu")), torch.autocast)


def test_one_non_finite_entry_of_a_weight_or_buffer_is_found():
    """A BN running variance that overflowed in one channel makes every evaluation NaN: `non_finite_state` names
    it even when the other entries of that tensor are finite."""
    from tasks.train import non_finite_state

    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert non_finite_state(model) is None
    with torch.no_grad():
        model[1].running_var[2] = float("inf")
    assert non_finite_state(model) == ("1.running_var", float("inf"))
    with torch.no_grad():
        model[1].running_var[2] = 1.0
        model[0].weight[0, 1] = float("nan")
    name, value = non_finite_state(model)
    assert name == "0.weight" and math.isnan(value)
