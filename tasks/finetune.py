"""Fine-tuning a pretrained classifier on a small clean subset: naive, last-layer retraining
(llrt), llrt then naive (lpft), connectivity-based fine-tuning (cbft, Lubana et al. 2023), its
ablations (cbft_barrier, cbft_invariance) and naive fine-tuning on CBFT's data (naive_cued).

Every method trains through `tasks.train.fit`, so all of them run data-parallel through its
manual gradient all-reduce. The clean subset depends only on (seed, size), never on the method,
so methods compared at one seed see the same images.

Why one module: every fine-tuning method with its settings and the identity of what each one reads
(`settings_used`), so a method and the id of its task cannot drift apart.
"""
from __future__ import annotations

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
from tasks.settings import restrict
from tasks.settings.finetune import (CBFT_FAMILY, CBFT_INVARIANCES, FINETUNE_METHOD_NAMES, HEAD_ONLY_SPLIT,  # noqa: F401 - declared there
                                     FinetuneSettings, settings_used)
from tasks.train import (DivergenceError, EpochReport, TrainState, cross_entropy_objective,
                         distributed_rank, fit, prepare_batch, training_autocast)

OnEpoch = Callable | None


# --------------------------------------------------------------------------- shared pieces

def clean_subset(data: CueData, size: int, seed: int) -> tuple[Tensor, Split]:
    """(indices, clean images at them): `size` distinct training samples, seeded by `seed` only."""
    index = clean_subset_indices(len(data.train_clean), size, derive_seed(seed, "finetune-subset"))
    return index, data.train_clean.subset(index)


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
            with training_autocast(device):
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
    try:
        rows = fit(model, objective, model.head.parameters(), settings.llrt_optim(),
                   seed=derive_seed(seed, "finetune-llrt"), device=device, on_epoch=on_epoch, resume=resume)
    except DivergenceError as exc:      # this phase's learning rate is `llrt_lr` (lpft's head phase too)
        raise exc.with_lr("llrt_lr") from None
    model.eval()
    return _label(rows, HEAD_ONLY_SPLIT)


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
    """The clean training images at `index` with the cue of their own class applied (`twins` only).

    CueData keeps `train` and `train_clean` aligned, so a cued sample j shows its cue as the
    pixels where train.x[j] != train_clean.x[j] in ANY channel (an oracle cue mask: the paper's
    CBFT never uses one). Image i gets the cue of a donor j of its class: itself when i is cued,
    else a seeded random cued sample of that class; every channel of the donor's cue pixels is
    copied over (exactly what painting a box does, also where the donor's clean pixel already had
    the box colour in some channel; for dominoes, the donor's top image).
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
    cue_mask = (donor_cued != donor_clean).any(dim=1, keepdim=True)     # a pixel, all its channels
    twins = torch.where(cue_mask, donor_cued, clean_x)
    return twins, has_donor


def class_mean_invariance(f_clean: Tensor, y_clean: Tensor, f_cued: Tensor, y_cued: Tensor, num_classes: int,
                          classes: Tensor | None = None) -> Tensor:
    """Mean over classes k present in both batches (and in `classes`, bool [K], when given) of
    ||normalise(mean f_clean of k) - normalise(mean f_cued of k)||^2; 0 when there are none.

    The two batches may be different samples of different sizes (the paper's unpaired CBFT)."""
    onehot_clean = F.one_hot(y_clean, num_classes).to(f_clean.dtype)      # [n, K]
    onehot_cued = F.one_hot(y_cued, num_classes).to(f_cued.dtype)         # [m, K]
    count_clean, count_cued = onehot_clean.sum(0), onehot_cued.sum(0)
    present = (count_clean > 0) & (count_cued > 0)
    if classes is not None:
        present = present & classes.to(present.device)
    if not bool(present.any()):
        return f_clean.sum() * 0.0 + f_cued.sum() * 0.0
    mean_clean = (onehot_clean.T @ f_clean)[present] / count_clean[present, None]
    mean_cued = (onehot_cued.T @ f_cued)[present] / count_cued[present, None]
    diff = F.normalize(mean_clean, dim=1) - F.normalize(mean_cued, dim=1)
    return (diff ** 2).sum(1).mean()


def invariance_loss(f_clean: Tensor, f_cued: Tensor, y: Tensor, classes: Tensor) -> Tensor:
    """`class_mean_invariance` of paired batches (row i of `f_cued` is the twin of row i of `f_clean`),
    over the classes present in the batch and in `classes` (bool [K])."""
    return class_mean_invariance(f_clean, y, f_cued, y, classes.numel(), classes)


class CBFTObjective:
    """Connectivity-based fine-tuning (Lubana et al. 2023) and its ablations, per pair of batches
    (a clean batch from the clean subset, a cue batch from the rest of the training set):

    1. first step on the cue batch, one optimiser step:
       "barrier": |margin - CE(f_theta(t)(x_cue), y_cue)| at theta(t) = t theta_pre + (1-t) theta,
       so theta's gradient is scaled by (1 - t); BN buffers are throwaway copies there.
       "cue_ce": plain CE(f_theta(x_cue), y_cue) (naive fine-tuning that sees the cue data too).
       None: no first step.
    2. CE on the clean batch, + lam * invariance when `invariance` and after `warmup_epochs`:
       unpaired (the paper's): class means of the clean batch's penultimate features against class
       means of the cue batch's, in separate forward passes at theta (train mode), over the classes
       present in both; nothing knows where a cue is.
       twins (`twins` given): the clean images and their cued twins in one forward pass, class means
       compared over the classes in the batch that have a cued donor (`classes`).

    Steps on the cue batch yield n = 0, so the curve reports step 2 only. Under distributed training
    every loss is computed on each rank's share (like BN batch statistics).
    """

    def __init__(self, model: nn.Module, clean: Split, cue: Split, settings: FinetuneSettings, seed: int,
                 device: torch.device | str, *, first_step: str | None = "barrier", invariance: bool = True,
                 twins: Tensor | None = None, classes: Tensor | None = None) -> None:
        if first_step not in ("barrier", "cue_ce", None):
            raise ValueError(f"unknown first step {first_step!r}; allowed: barrier, cue_ce, None")
        if twins is not None and classes is None:
            raise ValueError("`twins` need `classes` (the classes that have a cued donor)")
        self.pretrained = ({k: p.detach().clone() for k, p in model.named_parameters()}
                           if first_step == "barrier" else {})
        self.paired = twins is not None
        # twins travel with their clean images through the shuffle: x is [n, 2, C, H, W] then
        self.clean = Split(torch.stack([clean.x, twins.to(clean.x.device)], dim=1), clean.y) if self.paired else clean
        self.cue, self.classes = cue, classes
        self.first_step, self.invariance = first_step, invariance
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
        clean = iterate_batches(self.clean, self.settings.batch_size, seed=derive_seed(self.seed, "cbft-clean"),
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
        step, (x, y), (x_cue, y_cue) = batch
        x_cue, y_cue = prepare_batch(x_cue, y_cue, self.device)
        if self.first_step == "barrier":
            yield self.barrier_step(model, x_cue, y_cue, draw_t(self.seed, epoch, step)), 0, 0
        elif self.first_step == "cue_ce":
            yield F.cross_entropy(model(x_cue).float(), y_cue), 0, 0
        yield self.clean_step(model, x, y, x_cue, y_cue, epoch)

    def clean_step(self, model: nn.Module, x: Tensor, y: Tensor, x_cue: Tensor, y_cue: Tensor,
                   epoch: int) -> tuple[Tensor, int, int]:
        """(CE on the clean batch [+ lam * invariance], correct, n) at theta."""
        n = len(y)
        invariant = self.invariance and epoch >= self.settings.warmup_epochs and self.settings.lam > 0
        if self.paired:      # the twin method: clean images and their twins in one pass, warm-up included
            x, y = prepare_batch(torch.cat([x[:, 0], x[:, 1]]), y, self.device)
            features = model.features(x).float()
            f_clean, f_twin = features[:n], features[n:]
        else:
            x, y = prepare_batch(x, y, self.device)
            f_clean = model.features(x).float()
        logits = model.head(f_clean).float()
        loss = F.cross_entropy(logits, y)
        if invariant and self.paired:
            loss = loss + self.settings.lam * invariance_loss(f_clean, f_twin, y, self.classes)
        elif invariant:
            f_cue = model.features(x_cue).float()  # a separate pass at theta: the cue batch's own BN statistics
            loss = loss + self.settings.lam * class_mean_invariance(f_clean, y, f_cue, y_cue, logits.shape[1])
        return loss, int((logits.argmax(1) == y).sum()), n


def cue_set(data: CueData, index: Tensor) -> Split:
    """The cue batches' pool: the training set (cued at its proportion) minus the clean subset `index`,
    in training order."""
    rest = torch.ones(len(data.train), dtype=torch.bool, device=data.train.y.device)
    rest[index.to(rest.device)] = False
    return data.train.subset(rest.nonzero().squeeze(1))


def cbft_objective(model: nn.Module, data: CueData, settings: FinetuneSettings, seed: int,
                   device: torch.device | str, method: str = "cbft") -> CBFTObjective:
    """The objective of `method` (one of `CBFT_FAMILY`) for `model` (its current weights become theta_pre).

    Every method of the family draws the same clean batches, cue batches and path points t for one
    seed, so an ablation differs from cbft only in the part it removes."""
    if method not in CBFT_FAMILY:
        raise ValueError(f"unknown method {method!r} of the CBFT family; allowed: {', '.join(CBFT_FAMILY)}")
    first_step, invariance = CBFT_FAMILY[method]
    index, clean = clean_subset(data, settings.clean_subset, seed)
    twins = classes = None
    if invariance and settings.cbft_invariance == "twins":
        twins, classes = cued_twins(data, index, seed)
    return CBFTObjective(model, clean, cue_set(data, index), settings, derive_seed(seed, "finetune-cbft"), device,
                         first_step=first_step, invariance=invariance, twins=twins, classes=classes)


def _finetune_with_cue_batches(method: str, model: nn.Module, data: CueData, settings: FinetuneSettings, *,
                               seed: int, device: torch.device | str, on_epoch: OnEpoch,
                               resume: TrainState | None) -> list[dict]:
    model.to(device)
    objective = cbft_objective(model, data, settings, seed, device, method)
    return fit(model, objective, model.parameters(), settings.optim(), seed=derive_seed(seed, "finetune-cbft"),
               device=device, on_epoch=on_epoch, resume=resume)


def finetune_cbft(model: nn.Module, data: CueData, settings: FinetuneSettings, *, seed: int,
                  device: torch.device | str, on_epoch: OnEpoch = None, resume: TrainState | None = None) -> list[dict]:
    """Connectivity-based fine-tuning (see CBFTObjective). `model` holds the pretrained weights when
    called, also when resuming (they are theta_pre; `resume` then replaces them)."""
    return _finetune_with_cue_batches("cbft", model, data, settings, seed=seed, device=device, on_epoch=on_epoch,
                                      resume=resume)


def finetune_cbft_barrier(model: nn.Module, data: CueData, settings: FinetuneSettings, *, seed: int,
                          device: torch.device | str, on_epoch: OnEpoch = None,
                          resume: TrainState | None = None) -> list[dict]:
    """Ablation: CBFT's barrier step and clean cross-entropy, without the invariance term."""
    return _finetune_with_cue_batches("cbft_barrier", model, data, settings, seed=seed, device=device,
                                      on_epoch=on_epoch, resume=resume)


def finetune_cbft_invariance(model: nn.Module, data: CueData, settings: FinetuneSettings, *, seed: int,
                             device: torch.device | str, on_epoch: OnEpoch = None,
                             resume: TrainState | None = None) -> list[dict]:
    """Ablation: CBFT's clean cross-entropy + lam * invariance, without the barrier step."""
    return _finetune_with_cue_batches("cbft_invariance", model, data, settings, seed=seed, device=device,
                                      on_epoch=on_epoch, resume=resume)


def finetune_naive_cued(model: nn.Module, data: CueData, settings: FinetuneSettings, *, seed: int,
                        device: torch.device | str, on_epoch: OnEpoch = None,
                        resume: TrainState | None = None) -> list[dict]:
    """Control: naive fine-tuning that sees the extra cued data CBFT sees. Per pair of CBFT's batches, one
    step of CE on the cue batch, then one of CE on the clean batch: CBFT's data and step count, without
    its path or invariance terms. Curve rows report the clean steps."""
    return _finetune_with_cue_batches("naive_cued", model, data, settings, seed=seed, device=device,
                                      on_epoch=on_epoch, resume=resume)


FINETUNE_METHODS: dict[str, Callable[..., list[dict]]] = {   # method -> finetune_<method>
    name: globals()[f"finetune_{name}"] for name in FINETUNE_METHOD_NAMES}


def finetune(model: nn.Module, method: str, data: CueData, settings: FinetuneSettings, *, seed: int,
             device: torch.device | str, on_epoch: OnEpoch = None, resume: TrainState | None = None) -> list[dict]:
    """Fine-tune `model` (holding the pretrained weights) in place with `method`; returns curve rows
    {epoch, split, loss, acc} of the epochs run. `resume`: a state `on_epoch` saw (via
    `EpochReport.state()`); training continues after it, exactly as if never stopped.

    The method sees `settings` restricted to `settings_used(method)`, the fields its task id holds:
    reading any other raises `tasks.settings.UndeclaredSettingRead` instead of computing with a value
    that a sweep over that field would not tell apart."""
    if method not in FINETUNE_METHODS:
        raise ValueError(f"unknown fine-tuning method {method!r}; allowed: {', '.join(FINETUNE_METHODS)}")
    view = restrict(settings, settings_used(method), f"fine-tuning method `{method}` (tasks/finetune.settings_used)")
    return FINETUNE_METHODS[method](model, data, view, seed=seed, device=device, on_epoch=on_epoch, resume=resume)


def curve_split(method: str, epoch: int, settings: FinetuneSettings) -> str:
    """The `split` label `finetune` gives the curve row of `epoch` of any of `FINETUNE_METHODS` ("llrt"
    for head-only epochs, else "train")."""
    if method not in FINETUNE_METHODS:
        raise ValueError(f"unknown fine-tuning method {method!r}; allowed: {', '.join(FINETUNE_METHODS)}")
    if method == "llrt" or (method == "lpft" and epoch < settings.llrt_epochs):
        return HEAD_ONLY_SPLIT
    return "train"
