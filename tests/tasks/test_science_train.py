"""What `tasks.train.fit` reports and how it trains, against hand computations: an epoch's loss and
accuracy are means over samples (batches weighted by their sizes), and every epoch runs in train mode
(BatchNorm normalises with batch statistics and updates its running statistics)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tasks.train import OptimSettings, fit

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
