"""Fine-tuning a pretrained classifier on a small clean subset: naive, last-layer retraining
(llrt), llrt then naive (lpft), and connectivity-based fine-tuning (cbft, Lubana et al. 2023).

Every method trains through `tasks.train.fit`, so all of them run data-parallel through its
manual gradient all-reduce. The clean subset depends only on (seed, size), never on the method,
so methods compared at one seed see the same images.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from tasks.data import CueData, Split, clean_subset_indices, iterate_batches
from tasks.seeding import derive_seed, generator
from tasks.settings import Settings, setting
from tasks.train import (SCHEDULES, EpochReport, OptimSettings, TrainState, cross_entropy_objective,
                         distributed_rank, fit, prepare_batch)

OnEpoch = Callable | None


@dataclass(frozen=True)
class FinetuneSettings(Settings):
    """Fine-tuning on a small clean subset. Defaults: the paper's (Lubana et al.; VGG-13 on CIFAR-10)."""

    clean_subset: int = setting(2500, ge=1, le=10_000_000, doc="clean training samples, drawn without "
                                "replacement, seeded; at most the training set")
    epochs: int = setting(20, ge=1, le=100_000, doc="naive / lpft second phase / cbft epochs")
    lr: float = setting(0.01, gt=0, doc="peak learning rate (FTS and FTM in the paper differ only here)")
    batch_size: int = setting(256, ge=1, le=1_000_000, doc="clean batch (global, over all workers)")
    weight_decay: float = setting(1e-4, ge=0, doc="L2 weight decay")
    momentum: float = setting(0.9, ge=0, lt=1, doc="SGD momentum")
    schedule: str = setting("cosine", choices=SCHEDULES, doc="step | cosine | constant")
    llrt_epochs: int = setting(200, ge=1, le=100_000, doc="head-only epochs of llrt and of lpft's first phase")
    llrt_lr: float = setting(30.0, gt=0, doc="head-only learning rate (no weight decay, cosine)")
    margin: float = setting(1.0, ge=0, doc="cbft: barrier loss |margin - CE| on cue data along the path")
    lam: float = setting(1.0, ge=0, doc="cbft: weight of the invariance loss")
    warmup_epochs: int = setting(1, ge=0, le=100_000, doc="cbft: plain cross-entropy epochs first")
    cue_batch_size: int | None = setting(None, ge=1, le=1_000_000, doc="cbft: cue batch (global); null: batch_size")

    def cross_problems(self) -> list[tuple[str, str]]:
        if self.clean_subset < self.batch_size:
            return [("clean_subset", f"{self.clean_subset} is smaller than `batch_size` {self.batch_size}; "
                                     "no full batch would be drawn (lower `batch_size` or raise `clean_subset`)")]
        return []

    def optim(self) -> OptimSettings:
        """Settings of the all-weights phase (naive, lpft's second phase, cbft)."""
        return OptimSettings(epochs=self.epochs, lr=self.lr, momentum=self.momentum,
                             weight_decay=self.weight_decay, batch_size=self.batch_size,
                             schedule=self.schedule)

    def llrt_optim(self) -> OptimSettings:
        """Settings of the head-only phase: as in the reference, no weight decay, cosine schedule."""
        return OptimSettings(epochs=self.llrt_epochs, lr=self.llrt_lr, momentum=self.momentum,
                             weight_decay=0.0, batch_size=self.batch_size, schedule="cosine")


# --------------------------------------------------------------------------- shared pieces

def clean_subset(data: CueData, size: int, seed: int) -> tuple[Tensor, Split]:
    """(indices, clean images at them): `size` distinct training samples, seeded by `seed` only."""
    index = clean_subset_indices(len(data.train_clean), size, derive_seed(seed, "finetune-subset"))
    return index, data.train_clean.subset(index)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def reset_head(head: nn.Linear, seed: int) -> None:
    """Fresh head in nn.Linear's default distribution, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), seeded."""
    bound = 1.0 / math.sqrt(head.in_features)
    gen = generator(seed, "llrt-head")
    with torch.no_grad():
        head.weight.copy_(torch.empty(head.weight.shape).uniform_(-bound, bound, generator=gen))
        if head.bias is not None:
            head.bias.copy_(torch.empty(head.bias.shape).uniform_(-bound, bound, generator=gen))


@torch.no_grad()
def compute_features(model: nn.Module, split: Split, device: torch.device, batch_size: int = 1024) -> Split:
    """Penultimate features of `split` with the model in eval mode (as the frozen backbone sees them)."""
    model.to(device)
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, len(split), batch_size):
            x, _ = prepare_batch(split.x[start:start + batch_size], split.y[:0], device)
            with _autocast(device):
                chunks.append(model.features(x).float())
    finally:
        model.train(was_training)
    return Split(torch.cat(chunks), split.y.to(device))


@dataclass(frozen=True)
class HeadObjective:
    """Cross-entropy of `model.head` on precomputed features (the backbone is never run)."""
    features: Split
    batch_size: int
    seed: int

    def batches(self, epoch: int) -> Iterator:
        rank, world = distributed_rank()
        return iterate_batches(self.features, self.batch_size, seed=self.seed, epoch=epoch,
                               rank=rank, world_size=world)

    def steps(self, model: nn.Module, batch, epoch: int):
        f, y = batch
        device = model.head.weight.device
        f, y = f.to(device), y.to(device)
        logits = model.head(f).float()
        yield F.cross_entropy(logits, y), int((logits.argmax(1) == y).sum()), len(y)


def _label(rows: list[dict], split: str, offset: int = 0) -> list[dict]:
    return [{**row, "split": split, "epoch": row["epoch"] + offset} for row in rows]


# --------------------------------------------------------------------------- methods

def finetune_naive(model: nn.Module, data: CueData, settings: FinetuneSettings, *, seed: int,
                   device: torch.device | str, on_epoch: OnEpoch = None, resume: TrainState | None = None) -> list[dict]:
    """All weights, cross-entropy on the clean subset."""
    _, clean = clean_subset(data, settings.clean_subset, seed)
    objective = cross_entropy_objective(clean, settings.batch_size, derive_seed(seed, "finetune-naive"))
    return fit(model, objective, model.parameters(), settings.optim(), seed=derive_seed(seed, "finetune-naive"),
               device=device, on_epoch=on_epoch, resume=resume)


def finetune_llrt(model: nn.Module, data: CueData, settings: FinetuneSettings, *, seed: int,
                  device: torch.device | str, on_epoch: OnEpoch = None, resume: TrainState | None = None) -> list[dict]:
    """Last-layer retraining: a fresh seeded head on the frozen backbone (features computed
    once in eval mode). Curve rows have split "llrt"."""
    device = torch.device(device)
    _, clean = clean_subset(data, settings.clean_subset, seed)
    features = compute_features(model, clean, device)
    reset_head(model.head, seed)
    objective = HeadObjective(features, settings.batch_size, derive_seed(seed, "finetune-llrt"))
    rows = fit(model, objective, model.head.parameters(), settings.llrt_optim(),
               seed=derive_seed(seed, "finetune-llrt"), device=device, on_epoch=on_epoch, resume=resume)
    model.eval()
    return _label(rows, "llrt")


def finetune_lpft(model: nn.Module, data: CueData, settings: FinetuneSettings, *, seed: int,
                  device: torch.device | str, on_epoch: OnEpoch = None, resume: TrainState | None = None) -> list[dict]:
    """llrt, then naive. Rows: split "llrt" for the head phase, then split "train" with epochs
    numbered on after it (epoch + llrt_epochs); `on_epoch` sees the same numbering, so a `resume`
    state from either phase continues in that phase (epoch <= llrt_epochs: the head phase)."""
    head_epochs = settings.llrt_epochs

    def naive_on_epoch(report: EpochReport) -> None:
        if on_epoch is not None:
            on_epoch(dataclasses.replace(report, epoch=report.epoch + head_epochs))

    rows: list[dict] = []
    naive_resume = None
    if resume is None or resume.epoch < head_epochs:
        rows = finetune_llrt(model, data, settings, seed=seed, device=device, on_epoch=on_epoch, resume=resume)
    elif resume.epoch == head_epochs:          # the head phase had finished: its weights, a fresh optimiser
        model.load_state_dict(resume.model)
    else:
        naive_resume = dataclasses.replace(resume, epoch=resume.epoch - head_epochs)
    rows += _label(finetune_naive(model, data, settings, seed=seed, device=device, on_epoch=naive_on_epoch,
                                  resume=naive_resume), "train", head_epochs)
    return rows


def draw_t(seed: int, epoch: int, step: int) -> float:
    """CBFT's path point: t = 0.5 + 0.5 * clip(N(0, 1), -0.5, 0.5), in [0.25, 0.75]."""
    z = torch.randn((), generator=generator(seed, "cbft-t", epoch, step), dtype=torch.float64)
    return 0.5 + 0.5 * float(z.clamp(-0.5, 0.5))


def cued_twins(data: CueData, index: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """The clean training images at `index` with the cue of their own class applied.

    CueData keeps `train` and `train_clean` aligned, so a cued sample j shows its cue as the
    pixels where train.x[j] != train_clean.x[j]. Image i gets the cue of a donor j of its class:
    itself when i is cued, else a seeded random cued sample of that class; the cue pixels are
    copied over (exactly what painting a box does; for dominoes, the donor's top image).
    Returns (images [n, C, H, W], bool [num_classes]: the classes that have a cued donor).
    """
    index = index.to(data.train.y.device)
    cued = data.cued.to(data.train.y.device)
    labels = data.train.y
    has_donor = torch.zeros(data.num_classes, dtype=torch.bool, device=labels.device)
    has_donor[labels[cued]] = True
    gen = generator(seed, "cbft-donor")
    u = torch.rand(index.numel(), generator=gen, dtype=torch.float64).to(labels.device)
    donors = index.clone()
    y_sub = labels[index]
    for k in range(data.num_classes):
        pool = (cued & (labels == k)).nonzero().squeeze(1)
        need = (y_sub == k) & ~cued[index]
        if pool.numel() and bool(need.any()):
            pick = (u[need] * pool.numel()).long().clamp(max=pool.numel() - 1)
            donors[need] = pool[pick]
    clean_x = data.train_clean.x[index]
    donor_cued, donor_clean = data.train.x[donors], data.train_clean.x[donors]
    twins = torch.where(donor_cued != donor_clean, donor_cued, clean_x)
    return twins, has_donor


def invariance_loss(f_clean: Tensor, f_cued: Tensor, y: Tensor, classes: Tensor) -> Tensor:
    """Mean over classes k present in the batch and in `classes` (bool [K]) of
    ||normalise(mean f_clean of k) - normalise(mean f_cued of k)||^2; 0 when there are none."""
    onehot = F.one_hot(y, classes.numel()).to(f_clean.dtype)          # [n, K]
    counts = onehot.sum(0)
    present = (counts > 0) & classes.to(counts.device)
    if not bool(present.any()):
        return f_clean.sum() * 0.0
    mean_clean = (onehot.T @ f_clean)[present] / counts[present, None]
    mean_cued = (onehot.T @ f_cued)[present] / counts[present, None]
    diff = F.normalize(mean_clean, dim=1) - F.normalize(mean_cued, dim=1)
    return (diff ** 2).sum(1).mean()


class CBFTObjective:
    """Two steps per pair of batches (clean batch + its cued twins, cue batch):
    1. barrier: |margin - CE(f_theta(t)(x_cue), y_cue)| at theta(t) = t theta_pre + (1-t) theta,
       so theta's gradient is scaled by (1 - t); BN buffers are throwaway copies there.
    2. CE on clean + lam * invariance(clean features, cued-twin features) (plain CE during
       warm-up); clean and twins go through the model as one batch (shared BN statistics).
    The barrier step yields n = 0, so the curve reports step 2 only. Under distributed training
    both losses are computed on each rank's share (like BN batch statistics).
    """

    def __init__(self, model: nn.Module, pairs: Split, classes: Tensor, cue: Split,
                 settings: FinetuneSettings, seed: int, device: torch.device | str) -> None:
        self.pretrained = {k: p.detach().clone() for k, p in model.named_parameters()}
        self.pairs, self.classes, self.cue = pairs, classes, cue
        self.settings, self.seed, self.device = settings, seed, torch.device(device)
        self.cue_batch_size = settings.cue_batch_size or settings.batch_size
        if len(cue) < self.cue_batch_size:
            raise ValueError(f"cbft: only {len(cue)} training samples remain outside the clean subset, "
                             f"fewer than `cue_batch_size` {self.cue_batch_size}; lower `clean_subset` "
                             "or `cue_batch_size`")

    def _cue_batches(self, epoch: int, rank: int, world: int) -> Iterator:
        cycle = 0
        while True:   # as many cue batches as clean ones: restart (reshuffled) when exhausted
            yield from iterate_batches(self.cue, self.cue_batch_size, seed=derive_seed(self.seed, "cbft-cue", cycle),
                                       epoch=epoch, rank=rank, world_size=world)
            cycle += 1

    def batches(self, epoch: int) -> Iterator:
        rank, world = distributed_rank()
        clean = iterate_batches(self.pairs, self.settings.batch_size, seed=derive_seed(self.seed, "cbft-clean"),
                                epoch=epoch, rank=rank, world_size=world)
        for step, (pair, cue) in enumerate(zip(clean, self._cue_batches(epoch, rank, world))):
            yield step, pair, cue

    def path_point(self, model: nn.Module, t: float) -> dict[str, Tensor]:
        tensors: dict[str, Tensor] = {
            name: t * self.pretrained[name] + (1 - t) * p for name, p in model.named_parameters()}
        tensors.update({name: b.clone() for name, b in model.named_buffers()})
        return tensors

    def barrier_step(self, model: nn.Module, x: Tensor, y: Tensor, t: float) -> Tensor:
        logits = functional_call(model, self.path_point(model, t), (x,)).float()
        return (self.settings.margin - F.cross_entropy(logits, y)).abs()

    def steps(self, model: nn.Module, batch, epoch: int):
        step, (pair, y), (x_cue, y_cue) = batch
        x_cue, y_cue = prepare_batch(x_cue, y_cue, self.device)
        yield self.barrier_step(model, x_cue, y_cue, draw_t(self.seed, epoch, step)), 0, 0

        n = len(y)
        x, y = prepare_batch(torch.cat([pair[:, 0], pair[:, 1]]), y, self.device)
        features = model.features(x).float()
        logits = model.head(features[:n]).float()
        loss = F.cross_entropy(logits, y)
        if epoch >= self.settings.warmup_epochs and self.settings.lam > 0:
            loss = loss + self.settings.lam * invariance_loss(features[:n], features[n:], y, self.classes)
        yield loss, int((logits.argmax(1) == y).sum()), n


def cbft_objective(model: nn.Module, data: CueData, settings: FinetuneSettings, seed: int,
                   device: torch.device | str) -> CBFTObjective:
    """The CBFT objective for `model` (its current weights become theta_pre)."""
    index, clean = clean_subset(data, settings.clean_subset, seed)
    twins, classes = cued_twins(data, index, seed)
    pairs = Split(torch.stack([clean.x, twins.to(clean.x.device)], dim=1), clean.y)
    rest = torch.ones(len(data.train), dtype=torch.bool, device=data.train.y.device)
    rest[index.to(rest.device)] = False
    cue = data.train.subset(rest.nonzero().squeeze(1))
    return CBFTObjective(model, pairs, classes, cue, settings, derive_seed(seed, "finetune-cbft"), device)


def finetune_cbft(model: nn.Module, data: CueData, settings: FinetuneSettings, *, seed: int,
                  device: torch.device | str, on_epoch: OnEpoch = None, resume: TrainState | None = None) -> list[dict]:
    """Connectivity-based fine-tuning (see CBFTObjective). `model` holds the pretrained weights when
    called, also when resuming (they are theta_pre; `resume` then replaces them)."""
    model.to(device)
    objective = cbft_objective(model, data, settings, seed, device)
    return fit(model, objective, model.parameters(), settings.optim(), seed=derive_seed(seed, "finetune-cbft"),
               device=device, on_epoch=on_epoch, resume=resume)


FINETUNE_METHODS: dict[str, Callable[..., list[dict]]] = {
    "naive": finetune_naive,
    "llrt": finetune_llrt,
    "lpft": finetune_lpft,
    "cbft": finetune_cbft,
}


def finetune(model: nn.Module, method: str, data: CueData, settings: FinetuneSettings, *, seed: int,
             device: torch.device | str, on_epoch: OnEpoch = None, resume: TrainState | None = None) -> list[dict]:
    """Fine-tune `model` (holding the pretrained weights) in place with `method`; returns curve rows
    {epoch, split, loss, acc} of the epochs run. `resume`: a state `on_epoch` saw (via
    `EpochReport.state()`); training continues after it, exactly as if never stopped."""
    if method not in FINETUNE_METHODS:
        raise ValueError(f"unknown fine-tuning method {method!r}; allowed: {', '.join(FINETUNE_METHODS)}")
    return FINETUNE_METHODS[method](model, data, settings, seed=seed, device=device, on_epoch=on_epoch,
                                    resume=resume)


def curve_split(method: str, epoch: int, settings: FinetuneSettings) -> str:
    """The `split` label `finetune` gives the curve row of `epoch` ("llrt" for head-only epochs)."""
    if method == "llrt" or (method == "lpft" and epoch < settings.llrt_epochs):
        return "llrt"
    return "train"
