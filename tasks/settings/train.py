"""What a training run is set by: SGD with momentum and its per-epoch schedule (`tasks.train.fit` runs it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tasks.settings import Settings, setting

SCHEDULES = ("step", "cosine", "constant")


# Upper bounds of SGD's coefficients: far above any that trains (a learning rate of 1e30 only diverges, in every
# task of the sweep, and fails them with DivergenceError); a spec is refused above them instead.
MAX_LR = 1_000.0
MAX_WEIGHT_DECAY = 1.0


@dataclass(frozen=True)
class OptimSettings(Settings):
    """SGD with momentum and a per-epoch schedule. Defaults: the paper's pretraining (Lubana et al.)."""

    epochs: int = setting(100, ge=1, le=100_000, doc="training epochs")
    lr: float = setting(0.1, gt=0, le=MAX_LR, doc="peak (epoch 0) learning rate")
    momentum: float = setting(0.9, ge=0, lt=1, doc="SGD momentum")
    weight_decay: float = setting(1e-4, ge=0, le=MAX_WEIGHT_DECAY, doc="L2 weight decay")
    batch_size: int = setting(256, ge=1, le=1_000_000, doc="global batch, over all data-parallel workers")
    schedule: str = setting("step", choices=SCHEDULES, doc="step | cosine | constant")
    step_epochs: int = setting(40, ge=1, le=100_000, doc="step schedule: lr x gamma every step_epochs")
    gamma: float = setting(0.1, gt=0, le=1, doc="step schedule: lr factor")

    @classmethod
    def idle_fields(cls, value_of: Callable[[str], Any]) -> dict[str, str]:
        """The step schedule's own fields, under another schedule. They stay in the task's id (an id that
        followed the schedule would rerun every finished task of another schedule once)."""
        schedule = value_of("schedule")
        why = f"only a step schedule reads it, and `schedule` is {schedule!r}"
        return {} if schedule == "step" else {"step_epochs": why, "gamma": why}
