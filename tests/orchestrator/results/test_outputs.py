"""The `done.json` marker: written compactly (version 3, step series as one string each), read back with
everything the cache check and the driver use, and markers of version 2 (indented, step series as
[key, step, value] lists) still read and verified as before, alone and in a pass over the sweep."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.results import marker_format, outputs
from orchestrator.run import work
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.conftest import SMOKE_SPEC
from tests.support import runners


@pytest.fixture()
def finished(tmp_path):
    """The smoke sweep's tasks run by the synthetic runner (fragments and markers as a task writes them):
    (layout, tasks, {task_id: the TaskResult it reported})."""
    spec = load_spec(SMOKE_SPEC).with_top(storage=str(tmp_path / "runs"))
    layout = SweepLayout(Storage(spec.storage), spec.name)
    graph = build_graph(spec)
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
    results = {}
    for task in graph.tasks.values():
        results[task.id] = work.execute(task, runners.name("synthetic"), env)
        assert results[task.id].status == vocab.DONE, results[task.id].error
    return layout, sorted(graph.tasks.values(), key=lambda t: t.id), results


def _by_key(steps) -> dict[str, list[tuple]]:
    """Step series by key, each in its order (what MLflow draws)."""
    out: dict[str, list[tuple]] = {}
    for key, step, value in steps:
        out.setdefault(key, []).append((step, value))
    return out


def _raw(layout, task) -> bytes:
    return layout.storage.read_bytes(layout.marker_file(task.kind, task.id))


def _answers(layout, tasks) -> tuple[dict, dict]:
    """(each task verified alone, the same in one pass): they must agree."""
    alone = {t.id: outputs.verify_outputs(layout, t.kind, t.id) for t in tasks}
    return alone, outputs.verify_many(layout, [(t.kind, t.id) for t in tasks])


def test_the_marker_is_compact_and_reads_back_what_the_cache_check_and_the_driver_use(finished):
    layout, tasks, results = finished
    path_eval = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    assert results[path_eval.id].steps and results[path_eval.id].metrics          # the runner's series
    for task in tasks:
        raw = _raw(layout, task)
        stored = json.loads(raw)
        assert stored["version"] == outputs.MARKER_VERSION == 3 and b"\n" not in raw and b'", "' not in raw
        assert all(isinstance(text, str) for text in stored["steps"].values())
        marker = outputs.read_marker(layout, task.kind, task.id)
        result = results[task.id]
        assert _by_key(marker["steps"]) == _by_key(result.steps)                   # MLflow's charts
        assert marker["metrics"] == result.metrics and marker["meta"]["duration_s"] >= 0
        assert set(marker["files"]) == set(marker["sizes"])                         # the cache check's
        assert marker["tables"] == sorted({name.split("/")[1] for name in marker["files"]})
        assert bool(marker["tables"]) == (task.kind != vocab.ALIGN)
    alone, many = _answers(layout, tasks)
    assert alone == many == {t.id: (True, "") for t in tasks}


def test_an_old_indented_marker_with_its_series_still_verifies(finished):
    """Version 2 markers (every sweep written before version 3): the same answers, the same steps."""
    layout, tasks, results = finished
    for task in tasks:
        marker = outputs.read_marker(layout, task.kind, task.id)
        old = {**marker, "version": 2, "steps": [list(x) for x in results[task.id].steps]}   # as version 2 wrote
        layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(old, indent=1).encode())
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    assert _raw(layout, task).startswith(b'{\n "version": 2') and b'[\n   "path.' in _raw(layout, task)
    alone, many = _answers(layout, tasks)
    assert alone == many == {t.id: (True, "") for t in tasks}
    assert outputs.read_marker(layout, task.kind, task.id)["steps"] == [list(x) for x in results[task.id].steps]


@pytest.mark.parametrize("version,read_ahead", [(2, False), (3, False), (3, True)])
def test_a_damaged_output_and_a_truncated_marker_are_named(finished, version, read_ahead, monkeypatch):
    """... alone and in a pass, also when the pass reads its markers ahead in threads, in several batches."""
    layout, tasks, _ = finished
    if read_ahead:
        assert len(tasks) >= 4
        monkeypatch.setattr(outputs, "_PREFETCH_THREADS", 2)
        monkeypatch.setattr(outputs, "_PREFETCH_BATCH", 3)
        read_many, calls = outputs._LocalMarkers.read_many, []
        monkeypatch.setattr(outputs._LocalMarkers, "read_many",
                            lambda self, batch, paths, pool: calls.append(pool) or read_many(self, batch, paths, pool))
    damaged, truncated = [t for t in tasks if t.kind == vocab.PATH_EVAL][:2]
    if version == 2:
        for task in (damaged, truncated):
            old = {**outputs.read_marker(layout, task.kind, task.id), "version": 2}
            layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(old, indent=1).encode())
    fragment = layout.fragment(vocab.PATHS, damaged.id)
    data = bytearray(layout.storage.read_bytes(fragment))
    data[len(data) // 2] ^= 1                                          # same size, other bytes
    layout.storage.write_bytes(fragment, bytes(data))
    marker = layout.marker_file(truncated.kind, truncated.id)
    layout.storage.write_bytes(marker, _raw(layout, truncated)[:-20])
    alone, many = _answers(layout, tasks)
    assert alone == many
    assert alone[damaged.id] == (False, f"sha256 mismatch in {fragment}")
    assert alone[truncated.id] == (False, f"{marker} is unreadable (JSONDecodeError)")
    assert sum(ok for ok, _ in alone.values()) == len(tasks) - 2
    if read_ahead:
        assert len(calls) == -(-len(tasks) // 3) and all(pool is not None for pool in calls)


def test_a_step_series_that_does_not_read_back_is_left_out_not_the_task(finished, caplog):
    """The series only draw MLflow's charts: a garbled one is dropped with a warning; the task stays
    finished (its numbers are in its verified tables). A `steps` that is not a mapping is no marker."""
    layout, tasks, results = finished
    task = next(t for t in tasks if t.kind == vocab.PATH_EVAL)
    stored = json.loads(_raw(layout, task))
    first, *rest = stored["steps"]
    stored["steps"][first] = stored["steps"][first][:-5]
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(stored).encode())
    with caplog.at_level(logging.WARNING, logger=marker_format.__name__):
        steps = outputs.read_marker(layout, task.kind, task.id)["steps"]
    assert _by_key(steps) == {k: v for k, v in _by_key(results[task.id].steps).items() if k != first}
    assert f"unreadable step series {first!r}" in caplog.text
    assert outputs.verify_outputs(layout, task.kind, task.id) == (True, "")
    stored["steps"] = [["x", 0, 1.0]]                                   # version 3 holds a mapping
    layout.storage.write_bytes(layout.marker_file(task.kind, task.id), json.dumps(stored).encode())
    assert outputs.verify_outputs(layout, task.kind, task.id)[1].endswith("`steps` is not a mapping")
