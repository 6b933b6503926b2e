"""What a task reports to the driver: `TaskResult`, a plain dataclass that travels through Tune as JSON.
Its own module so that the driver, which only reads results, imports no torch (`orchestrator.run.work`
runs tasks and imports the science)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TaskResult:
    """What a task reports to the driver (through Tune as JSON)."""

    status: str                        # vocab.DONE or vocab.FAILED
    duration_s: float
    device: str | None = None
    metrics: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)    # (key, step, value): curves for MLflow's charts
    error: str | None = None
    error_type: str | None = None                # the class name of the exception a failed task raised
    reused: bool = False                         # outputs set aside and taken back, not computed (`outputs.take_back`)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TaskResult:
        return cls(**{k: d.get(k) for k in ("status", "duration_s", "device", "error", "error_type")},
                   metrics=d.get("metrics") or {}, steps=d.get("steps") or [], reused=d.get("reused") is True)
