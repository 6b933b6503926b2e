"""What the driver records of each task `work` ran (`orchestrator/run/recording.py`, and its child run,
`child_runs.py`): its own `tasks` row with status, times, run id and parents, failed and skipped tasks
once each, a task that failed and then finished, a cached task's metrics from its marker, and each child
run's steps, times and datasets. The graph is tests/support/work_graph.py's."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from orchestrator import vocab
from orchestrator.graph.dag import Resources
from orchestrator.results import outputs, tables
from orchestrator.results.outputs import TaskOutput
from orchestrator.run import work
from tests.support.work_graph import first, layout_in, smoke_graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return smoke_graph(tmp_path_factory.mktemp("work"))


class Tracker:
    """A tracker that keeps what it is handed and gives each task the run id `run-<task id>`."""

    def __init__(self):
        self.ended: list = []

    def tasks_ended(self, ended):
        self.ended += list(ended)
        return {e.task.id: f"run-{e.task.id}" for e in ended}


def _tasks_row(layout, task_id: str) -> dict:
    rows = tables.read_fragment(layout, vocab.TASKS, task_id).to_dict("records")
    assert len(rows) == 1, rows
    return rows[0]


def test_each_ended_task_gets_its_own_tasks_row_with_its_status_times_and_run_id(graph, tmp_path):
    from orchestrator.run import recording

    layout = layout_in(tmp_path)
    table = recording.TasksTable(layout, "hash", "rev", strict=True)
    pre, path, mid = first(graph, vocab.PRETRAIN), first(graph, vocab.PATH_EVAL), first(graph, vocab.MIDPOINT)
    mid = dataclasses.replace(mid, resources=Resources(cpus=2, workers=3))    # Ray Train: 3 workers of 2 CPUs
    ended = [recording.EndedTask(pre, vocab.CACHED, None, 1.0, 100.0, 110.0, "cpu:x", {}, []),
             recording.EndedTask(path, vocab.DONE, None, 2.0, 200.0, 220.0, "cpu:y", {}, []),
             recording.EndedTask(mid, vocab.FAILED, "boom", 3.0, 300.0, 330.0, "cpu:z", {}, [], "RuntimeError")]
    table.tasks_ended(ended, {t.id: f"run-{t.id}" for t in (pre, path, mid)})
    assert table.written == 3 and not table.failures
    for e, status in zip(ended, ("finished", "finished", "failed")):
        row = _tasks_row(layout, e.task.id)
        assert (row["task_id"], row["kind"], row["status"]) == (e.task.id, e.task.kind, status)
        assert row["cached"] is (e.status == vocab.CACHED)
        assert row["mlflow_run_id"] == f"run-{e.task.id}"
        assert list(row["parents"]) == list(e.task.parents)
        assert row["device"] == e.device and row["duration_s"] == e.duration_s
        assert row["num_workers"] == e.task.resources.workers
        started, finished = (pd_seconds(row[k]) for k in ("started_at", "finished_at"))
        assert (started, finished) == (e.started_at, e.ended_at)
    assert _tasks_row(layout, mid.id)["error_type"] == "RuntimeError"
    assert list(_tasks_row(layout, path.id)["parents"]) == list(path.parents) != []


def pd_seconds(value) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def _recorder(graph, tmp_path, tracker):
    from orchestrator.run import recording
    from orchestrator.run.state import SweepState

    state = SweepState(graph)
    recorder = recording.TaskRecorder(layout_in(tmp_path), state, "hash", tracker, background=False)
    state.subscribe(recorder.on_status)
    return state, recorder


def test_a_failed_task_and_the_descendants_it_skips_are_each_recorded_once(graph, tmp_path):
    tracker = Tracker()
    state, recorder = _recorder(graph, tmp_path, tracker)
    root = first(graph, vocab.PRETRAIN)
    skipped = state.set_status(root.id, vocab.FAILED, "boom", error_type="RuntimeError")
    assert skipped and set(skipped) == set(graph.descendants(root.id))
    state.set_status(root.id, vocab.FAILED, "boom, with its traceback")     # the reason filled in later
    recorded = [(e.task.id, e.status) for e in tracker.ended]
    assert recorded.count((root.id, vocab.FAILED)) == 1
    assert sorted(t for t, s in recorded if s == vocab.SKIPPED) == sorted(skipped)
    assert len(recorded) == 1 + len(skipped) == recorder.written
    assert _tasks_row(recorder.layout, skipped[0])["status"] == "skipped"
    failed = next(e for e in tracker.ended if e.task.id == root.id)
    assert failed.error_type == "RuntimeError"


def test_a_task_that_failed_and_then_finished_in_the_same_run_is_recorded_finished(graph, tmp_path):
    tracker = Tracker()
    state, recorder = _recorder(graph, tmp_path, tracker)
    task = next(t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL and not list(graph.descendants(t.id)))
    state.set_status(task.id, vocab.FAILED, "boom")
    state.set_status(task.id, vocab.DONE, result=work.TaskResult(vocab.DONE, 1.0, "cpu:x", {"m": 1.0}, [["s", 0, 2.0]]))
    assert [(e.task.id, e.status) for e in tracker.ended] == [(task.id, vocab.FAILED), (task.id, vocab.DONE)]
    assert _tasks_row(recorder.layout, task.id)["status"] == "finished"
    done = tracker.ended[-1]
    assert done.metrics == {"m": 1.0} and done.steps == [("s", 0, 2.0)] and done.device == "cpu:x"


def test_a_task_found_finished_on_storage_is_recorded_with_the_metrics_and_steps_of_its_marker(graph, tmp_path):
    tracker = Tracker()
    state, recorder = _recorder(graph, tmp_path, tracker)
    task = first(graph, vocab.ALIGN)
    outputs.write_outputs(recorder.layout, task, TaskOutput(checkpoint={"w": torch.zeros(2)}, metrics={"m": 0.5},
                                                            steps=[("s", 3, 0.25)]))
    state.set_status(task.id, vocab.CACHED)
    recorder.record(task.id)
    (ended,) = tracker.ended
    assert ended.status == vocab.CACHED and ended.metrics == {"m": 0.5} and ended.steps == [("s", 3, 0.25)]
    assert _tasks_row(recorder.layout, task.id)["cached"]
    assert recorder._ended_for_good(task.id)         # a cached task's files are not written again in this run


def test_a_child_run_logs_each_step_series_point_at_its_step_and_the_times_of_its_task(graph):
    from orchestrator.run import child_runs, recording

    task = first(graph, vocab.PATH_EVAL)
    steps = [("path.cue.loss", 0, 0.5), ("path.cue.loss", 500, 0.5), ("path.cue.loss", 1000, 0.25)]
    ended = recording.EndedTask(task, vocab.DONE, None, 4.0, 100.0, 110.5, "cpu", {"barrier.cue.loss.chord": 0.1},
                                steps)
    run = child_runs.child_run(ended, "a name", "parent")
    assert set(run.metrics) == {("path.cue.loss", 0.5, 0), ("path.cue.loss", 0.5, 500), ("path.cue.loss", 0.25, 1000),
                                ("barrier.cue.loss.chord", 0.1, 0), ("duration_s", 4.0, 0)}
    assert (run.start_ms, run.end_ms) == (100_000, 110_500)
    assert run.status == vocab.STATUS_IN_MLFLOW[vocab.DONE]
    failed = child_runs.child_run(recording.EndedTask(task, vocab.FAILED, "RuntimeError: boom", None, None, 7.0,
                                                      None, {}, []), "n", "parent")
    assert failed.status == vocab.STATUS_IN_MLFLOW[vocab.FAILED] and failed.tags["error"] == "RuntimeError: boom"
    assert failed.start_ms == failed.end_ms == 7000            # never started: its end


def test_a_skipped_training_task_has_no_datasets_and_a_midpoint_learns_from_both_endpoints(graph):
    from orchestrator.run import child_runs, recording

    mid = first(graph, vocab.MIDPOINT)
    refs = child_runs.dataset_inputs(mid)
    a, b = (graph.tasks[e].config["data"] for e in mid.config["endpoints"])
    assert a != b and len(refs) == 2
    assert [json.loads(r.source) for r in refs] == [{"dataset": mid.labels["dataset"], **c} for c in (a, b)]
    assert refs[0].digest != refs[1].digest
    done = child_runs.child_run(recording.EndedTask(mid, vocab.DONE, None, 1.0, 1.0, 2.0, "cpu", {}, []), "n", "p")
    assert done.datasets == refs
    skipped = child_runs.child_run(recording.EndedTask(mid, vocab.SKIPPED, "skipped", None, None, 2.0, None, {}, []),
                                   "n", "p")
    assert skipped.datasets == ()
    assert child_runs.NOTE_TAG not in done.tags           # the note on alpha steps is a path's alone


def test_a_path_evaluations_child_run_says_its_curves_are_logged_against_alpha(graph):
    from orchestrator.run import child_runs, recording

    path = first(graph, vocab.PATH_EVAL)
    run = child_runs.child_run(recording.EndedTask(path, vocab.DONE, None, 1.0, 1.0, 2.0, "cpu", {}, []), "n", "p")
    assert run.tags[child_runs.NOTE_TAG] == child_runs.PATH_NOTE
    assert (run.tags["task_id"], run.tags["task_kind"], run.tags[child_runs.PARENT_TAG]) == (path.id, path.kind, "p")
