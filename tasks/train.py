"""The training loop: SGD with momentum, per-epoch lr schedules, manual data-parallel gradients.

`fit` runs epochs of an `Objective` (what a batch is and which losses a step yields) and is shared by
pretraining, fine-tuning and midpoint training. All randomness comes from `seed` and `epoch`
(through `tasks.seeding`), so a `TrainState` (model, optimiser, epoch) is all a resume needs, and a
resumed run repeats the uninterrupted one bit for bit.

Under `torch.distributed` (world size > 1) every rank runs `fit` on its share of each global batch;
gradients are averaged with one all-reduce per dtype, so any objective (functional, interpolated)
works without `DistributedDataParallel`. BatchNorm batch statistics stay per-rank (as in DDP without
SyncBN); buffers are broadcast from rank 0 at the start and after every epoch.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.data import Split, iterate_batches
from tasks.seeding import derive_seed
from tasks.settings.train import SCHEDULES, OptimSettings  # noqa: F401 - declared there (torch-free)

_GLOBAL_RNG_STREAM = "fit-global-rng"
class DivergenceError(RuntimeError):
    """The loss became NaN or inf, or (`where`: a weight or buffer's name) the model's state did: a BN running
    variance that overflowed while the loss stayed finite would make every evaluation NaN. Carries `epoch` and
    `step` (0-based), the `value`, and `lr`: the name of the learning rate to lower in the settings of the
    code that ran `fit` (`llrt_lr` in a head-only phase); the task that ran it names its section
    (`finetune.llrt_lr`, orchestrator/run/work.py)."""

    def __init__(self, epoch: int, step: int, value: float, where: str | None = None, lr: str = "lr"):
        self.epoch, self.step, self.value, self.where, self.lr = epoch, step, value, where, lr
        what = "loss" if where is None else where
        at = f"at epoch {epoch}, step {step}" if step >= 0 else f"after epoch {epoch}"   # step -1: once trained
        super().__init__(
            f"training diverged: {what} is {value} {at}; "
            f"{self.advice()} (e.g. halve it) or check the inputs for NaN/inf"
        )

    def advice(self, section: str | None = None) -> str:
        return f"lower `{self.lr}`" if section is None else f"lower `{section}.{self.lr}`"

    def with_lr(self, lr: str) -> "DivergenceError":
        """The same divergence, naming learning rate `lr`."""
        return type(self)(self.epoch, self.step, self.value, self.where, lr)

    def __reduce__(self):  # crosses process boundaries (Ray, spawn) with its fields intact
        return (type(self), (self.epoch, self.step, self.value, self.where, self.lr))


def non_finite_state(model: nn.Module) -> tuple[str, float] | None:
    """The first weight or buffer of `model` holding NaN or inf, and such a value; None when all are finite."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name, float(tensor[~torch.isfinite(tensor)].flatten()[0])
    return None


@dataclass
class TrainState:
    """Everything a resume needs: `epoch` is the number of finished epochs (the next one to run)."""

    model: dict[str, Tensor]
    optimizer: dict[str, Any]       # torch optimiser state_dict
    epoch: int


@dataclass
class EpochReport:
    """Passed to `on_epoch` after every epoch; `epoch` is the 0-based index of the epoch just run."""

    epoch: int
    loss: float
    acc: float
    lr: float
    duration_s: float
    _model: nn.Module = field(repr=False, compare=False)
    _optimizer: torch.optim.Optimizer = field(repr=False, compare=False)

    def state(self) -> TrainState:
        """A CPU copy of model + optimiser + epoch (later training does not change it)."""
        return TrainState(
            model={k: v.detach().to("cpu", copy=True) for k, v in self._model.state_dict().items()},
            optimizer=_copy_to_cpu(self._optimizer.state_dict()),
            epoch=self.epoch + 1,
        )


class Objective(Protocol):
    def batches(self, epoch: int) -> Iterable:
        """What the steps of one epoch consume (this rank's share of each global batch)."""

    def steps(self, model: nn.Module, batch: Any, epoch: int) -> Iterator[tuple[Tensor, int | Tensor, int]]:
        """Yield (loss, n_correct, n) one or more times per batch; `fit` steps after each yield.

        `n_correct` may be an int or a 0-d tensor (read after the loss, so it costs no extra sync).

        `fit` puts the model in train mode before each epoch; a step may change modes (e.g. a
        frozen backbone in eval mode)."""


# ----- optimiser and schedules -----

def make_optimizer(params: Iterable, settings: OptimSettings) -> torch.optim.SGD:
    """SGD with momentum and weight decay (params may be tensors or param-group dicts)."""
    return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                           weight_decay=settings.weight_decay)


def lr_factor(settings: OptimSettings, epoch: int) -> float:
    """Multiplier of the base lr during `epoch` (0-based); cosine spans `settings.epochs`."""
    if settings.schedule == "step":
        return settings.gamma ** (epoch // settings.step_epochs)
    if settings.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / max(settings.epochs, 1)))
    if settings.schedule == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {settings.schedule!r}; allowed: {', '.join(SCHEDULES)}")


def lr_at(settings: OptimSettings, epoch: int) -> float:
    """Learning rate during `epoch` (0-based)."""
    return settings.lr * lr_factor(settings, epoch)


def make_scheduler(optimizer: torch.optim.Optimizer, settings: OptimSettings) -> torch.optim.lr_scheduler.LambdaLR:
    """An equivalent torch scheduler (call `.step()` once per epoch); `fit` itself sets lr from `lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(settings, epoch))


# ----- objectives -----

def prepare_batch(x: Tensor, y: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """Float32 images in channels_last (1.1-1.4x faster convolutions on CPU too: BENCHMARKS.md) and int64
    labels on `device`."""
    x = x.to(device, non_blocking=True).float()
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


@dataclass(frozen=True)
class CrossEntropyObjective:
    split: Split
    batch_size: int     # global batch size
    seed: int           # batch order of epochs before `spawn_epoch` (all epochs without a spawn)
    spawn_seed: int | None = None   # batch order from `spawn_epoch` on (a spawned child's own order)
    spawn_epoch: int = 0

    def order_seed(self, epoch: int) -> int:
        """The seed that shuffles `epoch`: the parent's before `spawn_epoch`, the child's from it on."""
        if self.spawn_seed is None or epoch < self.spawn_epoch:
            return self.seed
        return self.spawn_seed

    def batches(self, epoch: int) -> Iterable:
        rank, world_size = distributed_rank()
        return iterate_batches(self.split, self.batch_size, seed=self.order_seed(epoch), epoch=epoch,
                               rank=rank, world_size=world_size)

    def steps(self, model: nn.Module, batch: tuple[Tensor, Tensor], epoch: int):
        x, y = prepare_batch(*batch, device=model_device(model))
        logits = model(x).float()
        yield F.cross_entropy(logits, y), (logits.argmax(1) == y).sum(), len(y)  # no host sync here


def cross_entropy_objective(split: Split, batch_size: int, seed: int, *, spawn_seed: int | None = None,
                            spawn_epoch: int = 0) -> Objective:
    """Plain supervised training on `split`: shuffled by (seed, epoch), sharded by rank.

    Spawned training (Frankle et al. 2020, "Linear mode connectivity and the lottery ticket hypothesis"):
    with `spawn_seed`, epochs >= `spawn_epoch` are shuffled by (spawn_seed, epoch) instead. Two children
    of one parent (same init, same `seed`, different `spawn_seed`s) run the parent's first `spawn_epoch`
    epochs bit for bit and then differ only in data order; a child can equally resume from the parent's
    `TrainState` after epoch `spawn_epoch` (`fit(..., resume=...)`). `spawn_seed == seed` is the parent."""
    if spawn_epoch < 0:
        raise ValueError(f"`spawn_epoch` {spawn_epoch} is not allowed; must be >= 0")
    return CrossEntropyObjective(split, batch_size, seed, spawn_seed, spawn_epoch)


# ----- distributed helpers -----

def distributed_rank() -> tuple[int, int]:
    """(rank, world_size) of torch.distributed, or (0, 1) when it is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def model_device(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def broadcast_state(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op outside distributed runs)."""
    if distributed_rank()[1] == 1:
        return
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def _reduce_step(loss_value: float, params: list[Tensor], world_size: int) -> float:
    """All-reduce the loss (for a consistent divergence check) and which params have gradients.

    Params that have a gradient on some rank but not on this one get zeros, so every rank sends
    the same buffers; params without a gradient anywhere stay None (the optimiser skips them).
    Returns the mean loss over ranks."""
    device = params[0].device
    control = torch.tensor([loss_value] + [float(p.grad is not None) for p in params],
                           dtype=torch.float64, device=device)
    dist.all_reduce(control)
    values = control.tolist()
    for p, count in zip(params, values[1:]):
        if count > 0 and p.grad is None:
            p.grad = torch.zeros_like(p)
    return values[0] / world_size


def all_reduce_gradients(params: list[Tensor], world_size: int) -> None:
    """Average gradients over ranks: one flat buffer per (device, dtype), one all-reduce each."""
    groups: dict[tuple, list[Tensor]] = {}
    for p in params:
        if p.grad is not None:
            groups.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
    for grads in groups.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(world_size)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def _all_reduce_sums(values: list[float], device: torch.device) -> list[float]:
    if distributed_rank()[1] == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# ----- the loop -----

@contextlib.contextmanager
def _seeded_global_rng(seed: int, epoch: int, rank: int, device: torch.device):
    """Global RNG seeded from (seed, epoch, rank) for the epoch and restored after, so layers that
    draw from it (dropout) are reproducible across resumes too."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(seed, epoch, rank, _GLOBAL_RNG_STREAM))
        yield


def training_autocast(device: torch.device):
    """Training's precision on `device`: bf16 autocast on CUDA (float32 master weights, no loss scaling
    needed, unlike float16), float32 elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def fit(model: nn.Module, objective: Objective, params: Iterable, settings: OptimSettings, *,
        seed: int, device: torch.device | str, on_epoch: Callable[[EpochReport], None] | None = None,
        resume: TrainState | None = None, start_epoch: int = 0) -> list[dict]:
    """Train `params` of `model` on `objective` for epochs [start, settings.epochs).

    start is `resume.epoch` when resuming (model and optimiser are loaded from it), else
    `start_epoch`. Returns curve rows {epoch, split="train", loss, acc, lr}, identical on every rank.
    Raises DivergenceError as soon as a loss is NaN/inf (on every rank at the same step)."""
    device = torch.device(device)
    model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(params, settings)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not params:
        raise ValueError("`params` is empty: nothing to train")
    if resume is not None:
        if start_epoch not in (0, resume.epoch):
            raise ValueError(f"`start_epoch` {start_epoch} contradicts `resume.epoch` {resume.epoch}; pass one")
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        start_epoch = resume.epoch
    rank, world_size = distributed_rank()
    broadcast_state(model)

    rows = []
    for epoch in range(start_epoch, settings.epochs):
        started = time.perf_counter()
        factor = lr_factor(settings, epoch)
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor
        model.train()
        loss_sum = correct = count = 0.0
        step = 0
        with _seeded_global_rng(seed, epoch, rank, device):
            for batch in objective.batches(epoch):
                steps = objective.steps(model, batch, epoch)
                while True:
                    with training_autocast(device):
                        item = next(steps, None)
                    if item is None:
                        break
                    loss, n_correct, n = item
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    value = float(loss.detach())
                    if world_size > 1:
                        checked = _reduce_step(value, params, world_size)
                    else:
                        checked = value
                    if not math.isfinite(checked):
                        raise DivergenceError(epoch, step, checked)
                    if world_size > 1:
                        all_reduce_gradients(params, world_size)
                    optimizer.step()
                    loss_sum += value * int(n)
                    correct += int(n_correct)
                    count += int(n)
                    step += 1
        loss_sum, correct, count = _all_reduce_sums([loss_sum, correct, count], params[0].device)
        if count == 0:
            raise ValueError(f"epoch {epoch} had no samples: the objective yielded no batches "
                             f"(is the split smaller than `batch_size` {settings.batch_size}?)")
        broadcast_state(model)  # buffers (BN running stats) drift apart per rank
        if (bad := non_finite_state(model)) is not None:      # the same on every rank (broadcast)
            raise DivergenceError(epoch, step, bad[1], where=f"the model's `{bad[0]}`")
        report = EpochReport(epoch, loss_sum / count, correct / count, optimizer.param_groups[0]["lr"],
                             time.perf_counter() - started, model, optimizer)
        rows.append({"epoch": epoch, "split": "train", "loss": report.loss, "acc": report.acc, "lr": report.lr})
        if on_epoch is not None:
            on_epoch(report)
    return rows


# ----- TrainState <-> tensors + JSON (for tasks.checkpoint) -----

def train_state_tensors(state: TrainState) -> tuple[dict[str, Tensor], dict]:
    """Split a TrainState into named tensors and JSON-able meta (no pickle anywhere)."""
    tensors = {f"model/{k}": v for k, v in state.model.items()}
    scalars: dict[str, dict] = {}
    for index, entry in state.optimizer["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    meta = {"epoch": state.epoch, "param_groups": state.optimizer["param_groups"], "optimizer_scalars": scalars}
    return tensors, meta


def train_state_from_tensors(tensors: dict[str, Tensor], meta: dict) -> TrainState:
    """Inverse of `train_state_tensors`."""
    model, optim_state = {}, {}
    for name, value in tensors.items():
        kind, _, rest = name.partition("/")
        if kind == "model":
            model[rest] = value
        elif kind == "optimizer":
            index, _, key = rest.partition("/")
            optim_state.setdefault(int(index), {})[key] = value
        else:
            raise ValueError(f"unexpected tensor {name!r} in a train state; names start with `model/` or `optimizer/`")
    for index, entry in meta.get("optimizer_scalars", {}).items():
        optim_state.setdefault(int(index), {}).update(entry)
    optimizer = {"state": optim_state, "param_groups": meta["param_groups"]}
    return TrainState(model=model, optimizer=optimizer, epoch=int(meta["epoch"]))


def _copy_to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _copy_to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_to_cpu(v) for v in obj)
    return obj
