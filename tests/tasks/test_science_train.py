"""What `tasks.train.fit` reports and how it trains, against hand computations: an epoch's loss and
accuracy are means over samples (batches weighted by their sizes), and every epoch runs in train mode
(BatchNorm normalises with batch statistics and updates its running statistics)."""
from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

from tasks.train import DivergenceError, OptimSettings, fit

SETTINGS = OptimSettings(epochs=1, lr=1e-12, momentum=0.0, weight_decay=0.0, batch_size=4, schedule="constant")


class FixedSteps:
    """Batches of known sizes with known losses and correct counts (the loss still reaches the weights)."""

    def __init__(self, steps: list[tuple[float, int, int]]):
        self.steps_ = steps

    def batches(self, epoch: int):
        return list(range(len(self.steps_)))

    def steps(self, model: nn.Module, batch: int, epoch: int):
        loss, correct, n = self.steps_[batch]
        yield model.weight.sum() * 0.0 + loss, correct, n


def test_an_epochs_loss_and_accuracy_are_means_over_samples_not_over_batches():
    """Batches of 1 and 3 samples with losses 2.0 and 4.0, 1 and 1 correct: loss (2·1 + 4·3) / 4 = 3.5
    (the mean of the batch means would be 3.0), accuracy 2 / 4."""
    model = nn.Linear(1, 1)
    rows = fit(model, FixedSteps([(2.0, 1, 1), (4.0, 1, 3)]), model.parameters(), SETTINGS, seed=0, device="cpu")
    assert rows[0]["loss"] == pytest.approx(3.5) and rows[0]["acc"] == pytest.approx(0.5)


class BatchStats:
    """Records, per step, whether the model is in train mode, and feeds it a fixed batch."""

    def __init__(self, x: torch.Tensor):
        self.x, self.modes = x, []

    def batches(self, epoch: int):
        return [0]

    def steps(self, model: nn.Module, batch: int, epoch: int):
        self.modes.append(model.training)
        out = model(self.x)
        yield out.pow(2).mean(), 0, len(self.x)


def test_every_epoch_trains_in_train_mode_and_updates_the_batchnorm_running_statistics():
    """One step on a batch of mean 3 and unbiased variance 8/3 per channel: BatchNorm's running mean
    moves from 0 to 0.1 · 3 and its running variance from 1 to 0.9 + 0.1 · 8/3 (momentum 0.1)."""
    model = nn.Sequential(nn.BatchNorm1d(2))
    model.eval()                                            # fit must switch it to train mode itself
    x = torch.tensor([[1.0, 1.0], [5.0, 5.0], [3.0, 3.0], [3.0, 3.0]])
    mean, var = torch.tensor([3.0, 3.0]), torch.tensor([8 / 3, 8 / 3])   # (4 + 4 + 0 + 0) / 3
    objective = BatchStats(x)
    fit(model, objective, model.parameters(), SETTINGS, seed=0, device="cpu")
    assert objective.modes == [True]
    bn = model[0]
    assert bn.running_mean.tolist() == pytest.approx((0.1 * mean).tolist())
    assert bn.running_var.tolist() == pytest.approx((0.9 + 0.1 * var).tolist())


class Linear2(nn.Module):
    """Two parameter tensors whose loss is linear: gradients are the fixed coefficients."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
        self.v = nn.Parameter(torch.tensor([3.0, -1.0]))


class LinearLoss:
    """Two batches per epoch, each with loss c·w + d·v."""

    c, d = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-0.3, 0.7])

    def batches(self, epoch: int):
        return [0, 1]

    def steps(self, model: nn.Module, batch: int, epoch: int):
        yield (model.w * self.c).sum() + (model.v * self.d).sum(), 0, 1


def test_fit_takes_sgd_steps_with_momentum_weight_decay_each_groups_own_lr_and_the_epochs_factor():
    """Two epochs of two steps, step schedule halving the lr after epoch 0; `w` in a group with its own lr 0.2,
    `v` at the settings' 0.1. Each step, per torch's SGD: g = grad + wd·p; buf = g (first step), else m·buf + g;
    p -= lr·buf."""
    settings = OptimSettings(epochs=2, lr=0.1, momentum=0.5, weight_decay=0.1, batch_size=1, schedule="step",
                             step_epochs=1, gamma=0.5)
    model = Linear2()
    expected = {}
    for name, coef, lr in (("w", LinearLoss.c, 0.2), ("v", LinearLoss.d, 0.1)):
        p, buf = getattr(model, name).detach().clone().double(), None
        for epoch in range(2):
            for _ in range(2):
                g = coef.double() + 0.1 * p
                buf = g if buf is None else 0.5 * buf + g
                p = p - lr * 0.5 ** epoch * buf
        expected[name] = p
    fit(model, LinearLoss(), [{"params": [model.w], "lr": 0.2}, {"params": [model.v]}], settings, seed=0,
        device="cpu")
    torch.testing.assert_close(model.w.detach().double(), expected["w"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(model.v.detach().double(), expected["v"], rtol=1e-6, atol=1e-6)


class DrawsFromTheGlobalRng:
    """Records one draw of the global RNG per epoch (what dropout would draw from)."""

    def __init__(self):
        self.draws = []

    def batches(self, epoch: int):
        return [0]

    def steps(self, model: nn.Module, batch: int, epoch: int):
        self.draws.append(float(torch.rand(())))
        yield model.weight.sum() * 0.0, 0, 1


def test_the_global_rng_of_each_epoch_is_seeded_by_seed_and_epoch_and_restored_afterwards():
    settings = OptimSettings(epochs=3, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=1, schedule="constant")

    def draws(seed: int, model: nn.Module | None = None) -> list[float]:
        objective, model = DrawsFromTheGlobalRng(), model or nn.Linear(1, 1)
        fit(model, objective, model.parameters(), settings, seed=seed, device="cpu")
        return objective.draws

    model = nn.Linear(1, 1)
    state = torch.random.get_rng_state()
    first = draws(3, model)
    assert torch.equal(torch.random.get_rng_state(), state)       # the caller's RNG is left as it was
    assert len(set(first)) == 3                                    # a fresh stream every epoch
    assert draws(3) == first and draws(4) != first                 # repeatable from `seed`, and only from it


class LossesByEpoch:
    """Epoch e runs one batch of 4 samples per entry of `losses[e]`, with that loss (reaching the weights)."""

    def __init__(self, losses: list[list[float]]):
        self.losses = losses

    def batches(self, epoch: int):
        return list(range(len(self.losses[epoch])))

    def steps(self, model: nn.Module, batch: int, epoch: int):
        yield model.weight.sum() * 0.0 + self.losses[epoch][batch], 0, 4


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_loss_stops_training_naming_its_epoch_and_step(bad):
    """The third step (0-based step 2: steps count optimiser steps, not samples) of the second epoch (epoch 1)
    diverges: every non-finite loss, inf as well as NaN, is a divergence reported at (epoch 1, step 2)."""
    settings = OptimSettings(epochs=3, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=4, schedule="constant")
    model, finished = nn.Linear(1, 1), []
    with pytest.raises(DivergenceError) as info:
        fit(model, LossesByEpoch([[1.0, 1.0, 1.0], [1.0, 1.0, bad], [1.0, 1.0, 1.0]]), model.parameters(), settings,
            seed=0, device="cpu", on_epoch=lambda report: finished.append(report.epoch))
    assert (info.value.epoch, info.value.step) == (1, 2)
    assert str(info.value.value) == str(bad) and finished == [0]


class OneParameterPerStep:
    """One batch yielding two steps: the first loss reaches only `w`, the second only `v`."""

    def batches(self, epoch: int):
        return [0]

    def steps(self, model: nn.Module, batch: int, epoch: int):
        yield (model.w * LinearLoss.c).sum(), 0, 1
        yield (model.v * LinearLoss.d).sum(), 0, 1


def test_a_parameter_without_a_gradient_in_a_step_is_left_alone_by_that_step():
    """A parameter the step's loss does not reach has no gradient, so torch's SGD skips it: no weight decay and
    no momentum step. `w` moves once (step 1: p -= lr·(c + wd·p)), `v` once (step 2: p -= lr·(d + wd·p));
    zeroed instead of cleared gradients would move `w` again in step 2 by lr·(m·buf + wd·w)."""
    settings = OptimSettings(epochs=1, lr=0.1, momentum=0.5, weight_decay=0.1, batch_size=1, schedule="constant")
    model = Linear2()
    w0, v0 = model.w.detach().clone(), model.v.detach().clone()
    fit(model, OneParameterPerStep(), model.parameters(), settings, seed=0, device="cpu")
    torch.testing.assert_close(model.w.detach(), w0 - 0.1 * (LinearLoss.c + 0.1 * w0))
    torch.testing.assert_close(model.v.detach(), v0 - 0.1 * (LinearLoss.d + 0.1 * v0))


class OtherRank:
    """A stand-in for `torch.distributed` with a second rank: `all_reduce` adds what that rank sends
    (`others(tensor)` says what, by the tensor this rank sends); `broadcast` keeps this rank's tensors."""

    def __init__(self, others):
        self.others, self.calls = others, []

    def all_reduce(self, tensor):
        self.calls.append(tensor.clone())
        tensor.add_(self.others(tensor))

    def broadcast(self, tensor, src):
        assert src == 0


def test_the_step_reduction_averages_the_loss_and_gives_zeros_where_only_another_rank_has_a_gradient(monkeypatch):
    """This rank: loss 1.0, gradients on `a` only; the other rank: loss 3.0, gradients on `a` and `b`; nobody on
    `c`. The control all-reduce sums [loss, has-grad flags] to [4, 2, 1, 0]: the mean loss is 4 / 2 = 2, `b` gets
    a zero gradient (so both ranks send same-sized buffers), `c` stays without one (the optimiser skips it)."""
    import tasks.train as train_module

    fake = OtherRank(lambda tensor: torch.tensor([3.0, 1.0, 1.0, 0.0], dtype=tensor.dtype))
    monkeypatch.setattr(train_module.dist, "all_reduce", fake.all_reduce)
    a, b, c = (nn.Parameter(torch.ones(k)) for k in (2, 3, 4))
    a.grad = torch.full((2,), 5.0)
    mean = train_module._reduce_step(1.0, [a, b, c], 2)
    assert mean == pytest.approx(2.0)
    assert fake.calls[0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert torch.equal(a.grad, torch.full((2,), 5.0))
    assert b.grad is not None and torch.equal(b.grad, torch.zeros(3))
    assert c.grad is None


def test_gradients_are_averaged_over_ranks_in_one_buffer_per_dtype(monkeypatch):
    """Two ranks: every gradient becomes (mine + the other rank's) / 2, element by element, for float32 and
    float64 parameters alike; a parameter without a gradient stays without one."""
    import tasks.train as train_module

    a, b = nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(3))
    c, d = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, dtype=torch.float64))
    a.grad, b.grad = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([10.0, 20.0, 30.0])
    d.grad = torch.tensor([1.0, -1.0], dtype=torch.float64)
    theirs = {torch.float32: torch.tensor([3.0, 2.0, 1.0, 0.0, -10.0, 0.0, 10.0]),
              torch.float64: torch.tensor([3.0, 5.0], dtype=torch.float64)}
    fake = OtherRank(lambda tensor: theirs[tensor.dtype])
    monkeypatch.setattr(train_module.dist, "all_reduce", fake.all_reduce)
    train_module.all_reduce_gradients([a, b, c, d], 2)
    assert len(fake.calls) == 2
    assert a.grad.tolist() == [[2.0, 2.0], [2.0, 2.0]] and b.grad.tolist() == [0.0, 10.0, 20.0]
    assert c.grad is None and d.grad.tolist() == [2.0, 2.0]


def test_a_loss_that_diverges_on_another_rank_stops_this_rank_at_the_same_step(monkeypatch):
    """Data-parallel: this rank's losses are all finite, the other rank's second step (epoch 0, step 1) is NaN.
    Every rank must raise there (a rank that went on would wait forever in the next all-reduce)."""
    import tasks.train as train_module

    model = nn.Linear(1, 1, bias=False)            # one parameter: the control buffer is [loss, has-grad]
    other_losses = iter([1.0, float("nan"), 1.0, 1.0])

    def others(tensor):
        if tensor.dtype == torch.float64 and len(tensor) == 2:      # the per-step control all-reduce
            return torch.tensor([next(other_losses), 1.0], dtype=torch.float64)
        return tensor.clone()                                        # gradients and sums: the same as this rank's
    fake = OtherRank(others)
    monkeypatch.setattr(train_module, "distributed_rank", lambda: (0, 2))
    monkeypatch.setattr(train_module.dist, "all_reduce", fake.all_reduce)
    monkeypatch.setattr(train_module.dist, "broadcast", fake.broadcast)
    with pytest.raises(DivergenceError) as info:
        fit(model, LossesByEpoch([[1.0, 1.0, 1.0, 1.0]]), model.parameters(), SETTINGS, seed=0, device="cpu")
    assert (info.value.epoch, info.value.step) == (0, 1) and math.isnan(info.value.value)


def test_a_divergence_error_keeps_its_epoch_step_and_value_across_processes():
    """Ray and spawn pickle the error: the copy names the same epoch, step and loss (distinct numbers, so a
    swapped pair shows)."""
    error = DivergenceError(3, 7, float("inf"))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.epoch, copy.step, copy.value) == (3, 7, float("inf")) and str(copy) == str(error)
    assert "epoch 3, step 7" in str(copy)


def test_an_epoch_without_samples_is_refused_naming_the_epoch():
    """An objective that yields no batch in epoch 0 (a split smaller than one batch): a ValueError that says so,
    not a division by zero."""
    model = nn.Linear(1, 1)
    with pytest.raises(ValueError, match="epoch 0 had no samples"):
        fit(model, LossesByEpoch([[]]), model.parameters(), SETTINGS, seed=0, device="cpu")


def test_a_train_state_with_a_tensor_of_neither_the_model_nor_the_optimiser_is_refused():
    """Names start with `model/` or `optimizer/`; anything else is a foreign file, not silently dropped."""
    from tasks.train import TrainState, train_state_from_tensors, train_state_tensors

    tensors, meta = train_state_tensors(TrainState({"w": torch.ones(2)}, {"state": {}, "param_groups": []}, 1))
    assert set(tensors) == {"model/w"}
    with pytest.raises(ValueError, match="unexpected tensor 'extra/w'"):
        train_state_from_tensors({**tensors, "extra/w": torch.zeros(1)}, meta)


class OneBatchOfTwo:
    """Each epoch: one batch of this rank's 2 samples, 1 of them correct, loss c·w (so the gradient of `w` is c)."""

    def batches(self, epoch: int):
        return [0]

    def steps(self, model: nn.Module, batch: int, epoch: int):
        yield (model.w * LinearLoss.c).sum(), 1, 2


def test_under_two_ranks_fit_steps_with_the_mean_gradient_and_reports_the_epoch_over_both_ranks_samples(monkeypatch):
    """Data-parallel with a stand-in second rank: this rank has 2 samples (1 correct) and loss c·w0 = 3.5; the other
    rank 6 samples (5 correct), loss sum 12 and gradient g. One plain SGD step (no momentum, no decay) moves `w` by
    -lr·(c + g) / 2 (the mean over ranks, not the sum); the epoch reports the loss (2·3.5 + 12) / 8 and the accuracy
    (1 + 5) / 8 over all 8 samples, not this rank's 3.5 and 1 / 2."""
    import tasks.train as train_module

    g = torch.tensor([1.5, 3.0, -4.0])

    def others(tensor):
        if tensor.dtype == torch.float32:                          # the flat gradient buffer of `w`
            return g.clone()
        if len(tensor) == 2:                                       # per step: [loss, has-grad]
            return torch.tensor([2.0, 1.0], dtype=torch.float64)
        return torch.tensor([12.0, 5.0, 6.0], dtype=torch.float64)    # per epoch: [loss sum, correct, count]
    fake = OtherRank(others)
    monkeypatch.setattr(train_module, "distributed_rank", lambda: (0, 2))
    monkeypatch.setattr(train_module.dist, "all_reduce", fake.all_reduce)
    monkeypatch.setattr(train_module.dist, "broadcast", fake.broadcast)
    model = Linear2()
    w0 = model.w.detach().clone()
    settings = OptimSettings(epochs=1, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=8, schedule="constant")
    rows = fit(model, OneBatchOfTwo(), [model.w], settings, seed=0, device="cpu")
    torch.testing.assert_close(model.w.detach(), w0 - 0.1 * (LinearLoss.c + g) / 2)
    assert rows[0]["loss"] == pytest.approx((2 * 3.5 + 12.0) / 8) and rows[0]["acc"] == pytest.approx(6 / 8)


def test_broadcast_state_sends_every_parameter_and_buffer_from_rank_0(monkeypatch):
    """"Copy rank 0's parameters and buffers to every rank": BatchNorm's running statistics and step count
    included; outside distributed runs nothing is sent."""
    import tasks.train as train_module

    sent = []
    monkeypatch.setattr(train_module.dist, "broadcast", lambda tensor, src: sent.append((tensor.data_ptr(), src)))
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    train_module.broadcast_state(model)
    assert sent == []
    monkeypatch.setattr(train_module, "distributed_rank", lambda: (1, 2))
    train_module.broadcast_state(model)
    assert sorted(ptr for ptr, _ in sent) == sorted(t.data_ptr() for t in [*model.parameters(), *model.buffers()])
    assert len(sent) == 7 and {src for _, src in sent} == {0}


def test_the_model_device_is_where_its_parameters_or_else_its_buffers_live():
    """Batches go where the model is: its parameters' device, its buffers' for a model without parameters, the
    CPU for a model with neither."""
    from tasks.train import model_device

    assert model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")
    assert model_device(nn.BatchNorm1d(2, affine=False, device="meta")) == torch.device("meta")
    assert model_device(nn.ReLU()) == torch.device("cpu")


def test_each_epoch_reports_its_own_wall_time():
    """`duration_s` is the wall time of the epoch just run: positive, and all epochs together within the time
    the whole `fit` took."""
    import time

    model, durations = nn.Linear(1, 1), []
    settings = OptimSettings(epochs=2, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=4, schedule="constant")
    started = time.perf_counter()
    fit(model, LossesByEpoch([[1.0, 1.0], [1.0]]), model.parameters(), settings, seed=0, device="cpu",
        on_epoch=lambda report: durations.append(report.duration_s))
    took = time.perf_counter() - started
    assert len(durations) == 2 and all(d > 0 for d in durations) and sum(durations) <= took


def test_a_start_epoch_that_contradicts_the_resume_state_is_refused():
    """Resuming starts at `resume.epoch`; a different explicit `start_epoch` is a contradiction, not silently
    overridden (0, the default, and `resume.epoch` itself are fine)."""
    settings = OptimSettings(epochs=3, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=4, schedule="constant")
    model, seen = nn.Linear(1, 1), []
    fit(model, LossesByEpoch([[1.0]] * 3), model.parameters(), settings, seed=0, device="cpu",
        on_epoch=lambda report: seen.append(report.state()))
    state = seen[1]                                          # after epochs 0 and 1: resumes at epoch 2
    other = nn.Linear(1, 1)
    with pytest.raises(ValueError, match="`start_epoch` 1 contradicts `resume.epoch` 2"):
        fit(other, LossesByEpoch([[1.0]] * 3), other.parameters(), settings, seed=0, device="cpu",
            resume=state, start_epoch=1)
    for start in (0, 2):
        again = nn.Linear(1, 1)
        rows = fit(again, LossesByEpoch([[1.0]] * 3), again.parameters(), settings, seed=0, device="cpu",
                   resume=state, start_epoch=start)
        assert [row["epoch"] for row in rows] == [2]


class RecordsSteps:
    """One batch of 4 rows per epoch through `model`; notes each step in `events`."""

    def __init__(self, events: list):
        self.events = events
        self.x = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 1.0], [-2.0, 0.5]])

    def batches(self, epoch: int):
        return [0]

    def steps(self, model: nn.Module, batch: int, epoch: int):
        self.events.append(("step", epoch))
        yield model(self.x).pow(2).mean(), 0, 4


def test_under_two_ranks_fit_broadcasts_every_parameter_and_buffer_first_and_after_every_epoch(monkeypatch):
    """tasks/train.py: "buffers are broadcast from rank 0 at the start and after every epoch" (ranks may start from
    different weights; BatchNorm's running statistics drift apart per rank). Two epochs of one step: all 4
    parameters and 3 buffers are sent before the first step, and again after each epoch's step."""
    import tasks.train as train_module

    events = []
    monkeypatch.setattr(train_module, "distributed_rank", lambda: (0, 2))
    monkeypatch.setattr(train_module.dist, "all_reduce", lambda tensor: tensor.add_(tensor.clone()))   # a twin rank
    monkeypatch.setattr(train_module.dist, "broadcast", lambda tensor, src: events.append(("sent", tensor.data_ptr(), src)))
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    settings = OptimSettings(epochs=2, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=4, schedule="constant")
    fit(model, RecordsSteps(events), model.parameters(), settings, seed=0, device="cpu")
    everything = sorted(t.data_ptr() for t in [*model.parameters(), *model.buffers()])
    assert len(everything) == 7
    steps = [i for i, event in enumerate(events) if event[0] == "step"]
    assert [events[i] for i in steps] == [("step", 0), ("step", 1)] and len(events) == 3 * 7 + 2
    for start, stop in ((0, steps[0]), (steps[0] + 1, steps[1]), (steps[1] + 1, len(events))):
        block = events[start:stop]
        assert sorted(ptr for _, ptr, _ in block) == everything and {src for _, _, src in block} == {0}


def test_each_rank_of_a_data_parallel_fit_draws_its_own_global_rng_stream(monkeypatch):
    """The global RNG of an epoch is seeded by (seed, epoch, rank) (`_seeded_global_rng`): under two ranks, rank 1
    draws other dropout masks than rank 0 (it sees other samples), and rank 0 draws what a single process draws."""
    import tasks.train as train_module

    settings = OptimSettings(epochs=2, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=1, schedule="constant")

    def draws() -> list[float]:
        objective, model = DrawsFromTheGlobalRng(), nn.Linear(1, 1)
        fit(model, objective, model.parameters(), settings, seed=3, device="cpu")
        return objective.draws

    single = draws()
    monkeypatch.setattr(train_module.dist, "all_reduce", lambda tensor: tensor.add_(tensor.clone()))   # a twin rank
    monkeypatch.setattr(train_module.dist, "broadcast", lambda tensor, src: None)
    by_rank = {}
    for rank in (0, 1):
        monkeypatch.setattr(train_module, "distributed_rank", lambda rank=rank: (rank, 2))
        by_rank[rank] = draws()
    assert by_rank[0] == single
    assert len(set(by_rank[1])) == 2 and not set(by_rank[1]) & set(by_rank[0])


def test_fit_refuses_parameter_groups_that_hold_no_parameter_instead_of_training_nothing():
    """torch's SGD accepts a group with an empty parameter list: epochs would run, report losses and change no
    weight. `fit` refuses it up front, naming `params`."""
    model = nn.Linear(1, 1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="`params` is empty"):
        fit(model, LossesByEpoch([[1.0]]), [{"params": []}], SETTINGS, seed=0, device="cpu")
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("epoch", [0, 3])
def test_under_two_ranks_a_training_batch_is_each_ranks_half_of_the_one_process_batch(monkeypatch, epoch):
    """Plain supervised training (pretraining, naive fine-tuning, LP-FT's second phase) shards every global batch
    by rank: rank 0's and rank 1's rows of step s are the two halves of the one-process batch s, before and after
    a spawned child's own order takes over (`spawn_epoch` 2), never the whole batch on both ranks (per-rank
    BatchNorm statistics would be the full batch's, every sample counted twice in the curves)."""
    import tasks.train as train_module
    from tasks.data import Split
    from tasks.train import cross_entropy_objective

    split = Split(torch.arange(40, dtype=torch.float32)[:, None], torch.arange(40) % 4)
    objective = cross_entropy_objective(split, 8, seed=5, spawn_seed=6, spawn_epoch=2)
    monkeypatch.setattr(train_module, "distributed_rank", lambda: (0, 1))
    whole = [x[:, 0].long().tolist() for x, _ in objective.batches(epoch)]
    shares = {}
    for rank in (0, 1):
        monkeypatch.setattr(train_module, "distributed_rank", lambda rank=rank: (rank, 2))
        shares[rank] = [x[:, 0].long().tolist() for x, _ in objective.batches(epoch)]
    assert len(whole) == len(shares[0]) == len(shares[1]) == 5
    for step, batch in enumerate(whole):
        assert shares[0][step] + shares[1][step] == batch and len(shares[0][step]) == 4, step
