"""Layer 2, the task graph: a spec becomes a DAG of tasks with content-hash ids (`dag`)."""
from __future__ import annotations

from importlib import import_module

# public name -> the module of this package that defines it (imported on first use)
_EXPORTS = {"build_graph": "dag", "Graph": "dag", "Task": "dag", "Resources": "dag", "task_id": "dag", "canonical_json": "dag", "describe_plan": "dag"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
