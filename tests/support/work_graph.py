"""The graph the tests of `orchestrator/run/work.py`, `recording.py` and `state.py` share: the smoke sweep
with seed 3 (so a seed of 0 is never right by accident), two fine-tuning methods and paths whose
BatchNorm is re-estimated on each endpoint's own images; and the helpers that pick its tasks."""
from __future__ import annotations

from pathlib import Path

from orchestrator.graph.dag import Graph, build_graph
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.conftest import write_spec


def smoke_graph(tmp: Path) -> Graph:
    return build_graph(load_spec(write_spec(tmp, seeds=[3], finetune={"methods": ["naive", "lpft"]},
                                            paths={"bn_data": "endpoints"})))


def first(graph: Graph, kind: str, **where):
    """The first task of `kind` whose config has these values."""
    found = [t for t in graph.tasks.values() if t.kind == kind and all(t.config.get(k) == v for k, v in where.items())]
    assert found, (kind, where)
    return found[0]


def layout_in(tmp_path: Path) -> SweepLayout:
    return SweepLayout(Storage(str(tmp_path / "storage")), "work")
