"""What fine-tuning is set by, for every method of `tasks.finetune` (each reads the fields
`tasks.finetune.settings_used` names)."""
from __future__ import annotations

from dataclasses import dataclass

from tasks.settings import Settings, setting
from tasks.settings.train import SCHEDULES, OptimSettings

CBFT_INVARIANCES = ("unpaired", "twins")


def method_names() -> tuple[str, ...]:
    """The fine-tuning methods, `tasks.finetune.FINETUNE_METHODS` (torch code: imported on the first call, when
    a spec is checked or a report drawn, so that this module stays free of torch)."""
    from tasks.finetune import FINETUNE_METHODS

    return tuple(FINETUNE_METHODS)


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
