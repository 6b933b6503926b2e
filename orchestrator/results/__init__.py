"""Layer 4, results: the tables' schemas (`schemas`), Parquet fragments and readers (`tables`),
compacted parts and their manifest (`manifest`, `compact`), `done.json` and verified outputs
(`outputs`), the plan file (`plan`)."""
from __future__ import annotations

from importlib import import_module

# public name -> the module of this package that defines it (imported on first use)
_EXPORTS = {"read_plan": "plan", "TaskOutput": "outputs"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
