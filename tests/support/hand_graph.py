"""Graphs written by hand for the tests of the run's bookkeeping (`run/cache.py`, `run/sweep.py`): tasks named
for what they stand for, no spec and no science behind them."""
from __future__ import annotations

from orchestrator.graph.dag import LABEL_KEYS, Graph, Resources, Task

LABELS = {k: None for k in LABEL_KEYS}


def task(kind: str, name: str, *parents: Task) -> Task:
    return Task(kind, {"name": name}, tuple(p.id for p in parents), LABELS, Resources())


def small_graph() -> tuple[Graph, tuple[Task, Task, Task, Task]]:
    """Two pretrained models `a`, `b`; a fine-tuning of `a`; a path between `a` and `b`."""
    a, b = task("pretrain", "a"), task("pretrain", "b")
    ft = task("finetune", "ft", a)
    path = task("path_eval", "p", a, b)
    return Graph({t.id: t for t in (a, b, ft, path)}), (a, b, ft, path)
