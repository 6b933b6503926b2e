"""Layer 6, running a sweep: checks before work (`preflight`, `visibility`), task states
(`state`), the Ray Tune searcher and trials (`schedule`), what each task kind computes (`work`),
Ray Train (`distributed`), resume state (`resume`), the driver's records (`recording`) and MLflow
(`tracking`, `child_runs`, `tracking_sql`), stop signals (`signals`), and the story of one run (`sweep`)."""
from __future__ import annotations

from importlib import import_module

# public name -> the module of this package that defines it (imported on first use)
_EXPORTS = {"run_sweep": "sweep", "SweepOutcome": "sweep"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
