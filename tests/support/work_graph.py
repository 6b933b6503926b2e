"""What the tests of `orchestrator/run/work.py`, `recording.py` and `state.py` share: the smoke sweep
with seed 3 (so a seed of 0 is never right by accident), two fine-tuning methods and paths whose
BatchNorm is re-estimated on each endpoint's own images; the helpers that pick its tasks; stand-ins that
record what `work` hands the science, and distinct random states for its tasks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orchestrator.graph.dag import Graph, build_graph
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tasks.data import CueData, DataSettings, load_cue_data
from tasks.models import build_model
from tasks.settings import from_identity
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


# ----- stand-ins for the science functions `work` calls

class Called(Exception):
    """Raised by a recording stand-in once it has its arguments."""


def record(monkeypatch, module, name: str) -> dict:
    """Replace `module.name` by a stand-in that keeps its arguments (`args`, `kwargs`) and raises Called."""
    seen: dict = {}

    def stand_in(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        raise Called

    monkeypatch.setattr(module, name, stand_in)
    return seen


def run(runner, task, env=None) -> None:
    """Run `runner` on `task` until its stand-in has been called."""
    from orchestrator.run import work

    with pytest.raises(Called):
        runner(task, env or work.TaskEnv(layout=None, device=torch.device("cpu")))


def distinct_states(graph: Graph, monkeypatch) -> dict:
    """A distinct random state for every task id; `work._load_state` returns it."""
    from orchestrator.run import work

    table = {task_id: build_model("small_cnn", 10, 1, 8, seed=i).state_dict()
             for i, task_id in enumerate(sorted(graph.tasks))}
    monkeypatch.setattr(work, "_load_state", lambda env, task_id: table[task_id])
    return table


def data_of(config: dict) -> CueData:
    """The data a task config's `data` section names (its version left out)."""
    return load_cue_data(from_identity(DataSettings, {k: v for k, v in config.items() if k != "version"}))


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
