"""What fine-tuning is set by, for every method of `tasks.finetune` (each reads the fields
`tasks.finetune.settings_used` names)."""
from __future__ import annotations

from dataclasses import dataclass

from tasks.settings import Settings, setting
from tasks.settings.train import MAX_LR, MAX_WEIGHT_DECAY, SCHEDULES, OptimSettings

CBFT_INVARIANCES = ("unpaired", "twins")


# The fine-tuning methods: `tasks.finetune.FINETUNE_METHODS` maps each to its function `finetune_<method>`
NAIVE, LLRT, LPFT, CBFT, CBFT_BARRIER, CBFT_INVARIANCE, NAIVE_CUED = (
    "naive", "llrt", "lpft", "cbft", "cbft_barrier", "cbft_invariance", "naive_cued")
FINETUNE_METHOD_NAMES = (NAIVE, LLRT, LPFT, CBFT, CBFT_BARRIER, CBFT_INVARIANCE, NAIVE_CUED)
HEAD_ONLY_SPLIT = "llrt"    # the curve `split` of an epoch that trains the head alone (LLRT's, LP-FT's first phase)

# What each method of the CBFT family does per pair of batches (clean batch, cue batch):
# (first step on the cue batch: "barrier" | "cue_ce" | None, whether the clean step adds the invariance term).
CBFT_FAMILY: dict[str, tuple[str | None, bool]] = {
    "cbft": ("barrier", True),             # the paper's method
    "cbft_barrier": ("barrier", False),    # ablation: barrier step + clean CE
    "cbft_invariance": (None, True),       # ablation: clean CE + lam * invariance, no barrier step
    "naive_cued": ("cue_ce", False),       # control: naive fine-tuning on the same data, same step count
}


def loss_is_cross_entropy(method: str | None) -> bool:
    """Whether the training loss a training task records (its curve, `train_curves`) is the cross-entropy
    alone: a pretraining's and every fine-tuning's but those whose clean step adds lam x the invariance term
    (`CBFT_FAMILY`), whose loss a constant guess's cannot be compared with."""
    return not (method in CBFT_FAMILY and CBFT_FAMILY[method][1])


@dataclass(frozen=True)
class FinetuneSettings(Settings):
    """Fine-tuning on a small clean subset. Defaults: the paper's (Lubana et al.; VGG-13 on CIFAR-10)."""

    clean_subset: int = setting(2500, ge=1, le=10_000_000, doc="clean training samples, drawn without "
                                "replacement, seeded; at most the training set")
    epochs: int = setting(20, ge=1, le=100_000, doc="naive / lpft second phase / cbft epochs")
    lr: float = setting(0.01, gt=0, le=MAX_LR, doc="peak learning rate (FTS and FTM in the paper differ only here)")
    batch_size: int = setting(256, ge=1, le=1_000_000, doc="clean batch (global, over all workers)")
    weight_decay: float = setting(1e-4, ge=0, le=MAX_WEIGHT_DECAY, doc="L2 weight decay")
    momentum: float = setting(0.9, ge=0, lt=1, doc="SGD momentum")
    schedule: str = setting("cosine", choices=SCHEDULES, doc="step | cosine | constant")
    llrt_epochs: int = setting(200, ge=1, le=100_000, doc="head-only epochs of llrt and of lpft's first phase")
    llrt_lr: float = setting(30.0, gt=0, le=MAX_LR, doc="head-only learning rate (no weight decay, cosine)")
    margin: float = setting(1.0, ge=0, le=1_000, doc="cbft: barrier loss |margin - CE| on cue data along the path "
                            "(nats; chance loss is ln(classes), under 10 for 10,000 classes)")
    lam: float = setting(1.0, ge=0, le=1e4, doc="cbft: weight of the invariance loss")
    warmup_epochs: int = setting(1, ge=0, le=100_000, doc="cbft: plain cross-entropy epochs first")
    cue_batch_size: int | None = setting(None, ge=1, le=1_000_000, doc="cbft (and its ablations, naive_cued): "
                                         "cue batch (global); null: batch_size")
    cbft_invariance: str = setting("unpaired", choices=CBFT_INVARIANCES, id_default="twins",
                                   doc="cbft: what the clean batch's class means are compared with; unpaired (the "
                                   "paper's): class means of the separate cue batch, cued at the training "
                                   "proportion, no cue mask | twins: the clean images themselves with a cue "
                                   "pasted on (paired counterfactuals; needs an oracle cue mask)")

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


_OPTIM_FIELDS = ("clean_subset", "epochs", "lr", "batch_size", "weight_decay", "momentum", "schedule")
_HEAD_FIELDS = ("clean_subset", "batch_size", "momentum", "llrt_epochs", "llrt_lr")


def settings_used(method: str) -> tuple[str, ...]:
    """The `FinetuneSettings` fields that `method` reads: a task of `method` is the same task whatever
    the other fields are (a sweep over `lam` shares its naive fine-tuning tasks). The task id holds
    exactly these (orchestrator/graph/dag.py), and `finetune` hands the method a view of exactly these,
    so a method that reads another field fails instead of sharing a result it should not; a field listed
    here that the method never reads makes sweeps over it retrain needlessly
    (tests/orchestrator/graph/test_identity.py checks both against what every method reads)."""
    if method == "llrt":
        return _HEAD_FIELDS
    if method == "lpft":
        return tuple(dict.fromkeys(_HEAD_FIELDS + _OPTIM_FIELDS))
    if method in CBFT_FAMILY:
        first_step, invariance = CBFT_FAMILY[method]
        extra = ("cue_batch_size",) + (("margin",) if first_step == "barrier" else ()) \
            + (("lam", "warmup_epochs", "cbft_invariance") if invariance else ())
        return _OPTIM_FIELDS + extra
    if method in FINETUNE_METHOD_NAMES:
        return _OPTIM_FIELDS
    raise ValueError(f"unknown fine-tuning method {method!r}; allowed: {', '.join(FINETUNE_METHOD_NAMES)}")
