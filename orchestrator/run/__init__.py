"""Layer 6, running a sweep: checks before work (`preflight`, `visibility`), task states
(`state`), the Ray Tune searcher and trials (`schedule`), what each task kind computes (`work`),
Ray Train (`distributed`), resume state (`resume`), the driver's records (`recording`) and MLflow
(`tracking`, `child_runs`, `tracking_sql`), and the story of one run (`sweep`)."""
from __future__ import annotations

import sys
import types
from importlib import import_module

# public name -> the module of this package that defines it (imported on first use)
_EXPORTS = {"run_sweep": "sweep", "SweepOutcome": "sweep"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _RunPackage(types.ModuleType):
    """Importing this package binds `orchestrator.run` to it, over the API's `orchestrator.run(...)`
    (`orchestrator.api.run`); calling the package is that call, so `mmc.run(...)` works whatever was
    imported first."""

    def __call__(self, *args, **kwargs):
        from orchestrator.api import run
        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _RunPackage
