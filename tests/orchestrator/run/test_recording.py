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
             recording.EndedTask(path, vocab.DONE, None, 2.0, 200.0, 220.0, "cpu:y", {}, [], restarts=2),
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
        assert row["num_workers"] == e.task.resources.workers and row["restarts"] == e.restarts
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
                                                            steps=[("s", 3, 0.25)],
                                                            meta={"duration_s": 4.5, "device": "cpu:z"}))
    finished = outputs.read_marker(recorder.layout, task.kind, task.id)["finished_at"]
    state.set_status(task.id, vocab.CACHED)
    recorder.record(task.id)
    (ended,) = tracker.ended
    assert ended.status == vocab.CACHED and ended.metrics == {"m": 0.5} and ended.steps == [("s", 3, 0.25)]
    # its row was never written (a driver stopped between done.json and the row): the marker's times and device
    assert (ended.duration_s, ended.started_at, ended.ended_at, ended.device) == (4.5, finished - 4.5, finished, "cpu:z")
    row = _tasks_row(recorder.layout, task.id)
    assert row["cached"] and row["duration_s"] == 4.5 and row["device"] == "cpu:z"
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
    assert child_runs.RESTARTS_TAG not in run.tags               # only a task started again has the tag
    again = child_runs.child_run(dataclasses.replace(ended, restarts=1), "a name", "parent")
    assert again.tags[child_runs.RESTARTS_TAG] == "1"


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


def test_a_tasks_row_holds_the_sweeps_hash_and_revision_the_error_and_the_config_its_id_hashes(graph, tmp_path):
    """docs/ANALYSIS.md: `config_json` is the task's config as canonical JSON, what its `task_id` hashes
    (`<kind>-<16 hex of sha256({"kind", "config"})>`); `error` the failed task's error; `spec_hash` and
    `git_rev` say which spec and code revision ran it."""
    import hashlib

    from orchestrator.run import recording

    layout = layout_in(tmp_path)
    table = recording.TasksTable(layout, "spec-abc", "rev-123", strict=True)
    done, failed = first(graph, vocab.PATH_EVAL), first(graph, vocab.FINETUNE)
    table.tasks_ended([recording.EndedTask(done, vocab.DONE, None, 1.0, 1.0, 2.0, "cpu", {}, []),
                       recording.EndedTask(failed, vocab.FAILED, "ValueError: boom", 1.0, 1.0, 2.0, "cpu", {}, [],
                                           "ValueError")], {})
    for task in (done, failed):
        row = _tasks_row(layout, task.id)
        assert (row["spec_hash"], row["git_rev"]) == ("spec-abc", "rev-123")
        config = json.loads(row["config_json"])
        text = json.dumps({"kind": task.kind, "config": config}, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
        assert f"{task.kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}" == task.id
    assert _tasks_row(layout, failed.id)["error"] == "ValueError: boom"
    assert not isinstance(_tasks_row(layout, done.id)["error"], str)     # null (pandas reads it as NaN or None)


def test_the_kept_rows_of_each_fragment_are_its_own_row_with_the_digest_and_size_of_its_bytes(graph, tmp_path):
    """`rows_of(path)` stands for the fragment's file when a bundle is compacted: the one row of that task,
    and the sha256 and size of the bytes on storage."""
    import hashlib

    from orchestrator.run import recording

    layout = layout_in(tmp_path)
    table = recording.TasksTable(layout, "hash", "rev", strict=True)
    tasks = [first(graph, vocab.PRETRAIN), first(graph, vocab.PATH_EVAL), first(graph, vocab.MIDPOINT)]
    table.tasks_ended([recording.EndedTask(t, vocab.DONE, None, float(i), 1.0, 2.0, "cpu", {}, [])
                       for i, t in enumerate(tasks)], {})
    for task in tasks:
        path = layout.fragment(vocab.TASKS, task.id)
        digest, size, rows = table.rows_of(path)
        data = layout.storage.read_bytes(path)
        assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
        assert rows.num_rows == 1 and rows.column("task_id").to_pylist() == [task.id]
    table.forget_rows()
    assert table.rows_of(layout.fragment(vocab.TASKS, tasks[0].id)) is None


def test_a_row_that_cannot_be_written_is_named_and_the_others_are_written_and_kept(graph, tmp_path, monkeypatch):
    """Each row is written on its own: one that fails (here its storage write, after the batch's rows could not
    be built at once) is named in `failures` (a strict table raises instead), the next is written, and the
    kept rows of its fragment are its own."""
    from orchestrator.run import recording

    layout = layout_in(tmp_path)
    broken, fine = first(graph, vocab.PRETRAIN), first(graph, vocab.PATH_EVAL)
    ended = [recording.EndedTask(t, vocab.DONE, None, 1.0, 1.0, 2.0, "cpu", {}, []) for t in (broken, fine)]

    def no_batch(*args, **kwargs):
        raise ValueError("a row that does not fit")

    monkeypatch.setattr(tables, "rows_of_tasks_to_table", no_batch)
    real_write = layout.storage.write_bytes

    def write(path, data):
        if broken.id in path:
            raise OSError(5, "I/O error")
        return real_write(path, data)

    monkeypatch.setattr(layout.storage, "write_bytes", write)
    with pytest.raises(OSError):
        recording.TasksTable(layout, "hash", "rev", strict=True).tasks_ended(ended[:1], {})
    table = recording.TasksTable(layout, "hash", "rev")
    table.tasks_ended(ended, {})
    assert table.written == 1 and len(table.failures) == 1 and table.failures[0].startswith(f"{broken.id}: OSError")
    assert _tasks_row(layout, fine.id)["task_id"] == fine.id
    _digest, _size, rows = table.rows_of(layout.fragment(vocab.TASKS, fine.id))
    assert rows.column("task_id").to_pylist() == [fine.id]


def test_the_recorder_hands_on_each_tasks_own_start_and_duration(graph, tmp_path):
    tracker = Tracker()
    state, recorder = _recorder(graph, tmp_path, tracker)
    task = first(graph, vocab.PRETRAIN)
    state.set_status(task.id, vocab.RUNNING, started_at=1000.0)
    state.set_status(task.id, vocab.DONE, duration_s=2.5, result=work.TaskResult(vocab.DONE, 2.5, "cpu:x"))
    (ended,) = tracker.ended
    assert (ended.started_at, ended.duration_s) == (1000.0, 2.5)
    row = _tasks_row(recorder.layout, task.id)
    assert (pd_seconds(row["started_at"]), row["duration_s"]) == (1000.0, 2.5)
    assert row["mlflow_run_id"] == f"run-{task.id}"                # the id the tracker gave its child run


def test_a_task_has_ended_for_good_only_once_it_finished_and_its_row_was_recorded(graph, tmp_path):
    """A bundle may absorb only files that will not be written again: a finished task whose `tasks` row is
    still to come is not there yet, nor is a failed task (it may run again)."""
    from orchestrator.run import recording
    from orchestrator.run.state import SweepState

    state = SweepState(graph)
    recorder = recording.TaskRecorder(layout_in(tmp_path), state, "hash", Tracker(), background=False)
    done, failed = first(graph, vocab.PATH_EVAL), first(graph, vocab.ALIGN)
    state.set_status(done.id, vocab.DONE, result=work.TaskResult(vocab.DONE, 1.0))
    state.set_status(failed.id, vocab.FAILED, "boom")
    assert not recorder._ended_for_good(done.id)
    recorder.record(done.id)
    recorder.record(failed.id)
    assert recorder._ended_for_good(done.id) and not recorder._ended_for_good(failed.id)


def test_close_and_flush_return_only_once_every_queued_row_is_written(graph, tmp_path, monkeypatch):
    """The recording thread writes rows in batches; `flush` and `close` (the end of every run) wait for them."""
    import time

    from orchestrator.run import recording
    from orchestrator.run.state import SweepState

    class Slow(Tracker):
        def tasks_ended(self, ended):
            time.sleep(0.2)
            return super().tasks_ended(ended)

    monkeypatch.setattr(recording, "BATCH_WAIT_S", 0.01)
    state = SweepState(graph)
    recorder = recording.TaskRecorder(layout_in(tmp_path), state, "hash", Slow())
    recorder.compact_every = 0
    state.subscribe(recorder.on_status)
    first_task, second_task = first(graph, vocab.PRETRAIN), first(graph, vocab.ALIGN)
    state.set_status(first_task.id, vocab.DONE, result=work.TaskResult(vocab.DONE, 1.0))
    recorder.flush()
    assert recorder.written == 1 and recorder.pending() == 0
    state.set_status(second_task.id, vocab.DONE, result=work.TaskResult(vocab.DONE, 1.0))
    recorder.close()
    assert recorder.written == 2
    assert _tasks_row(recorder.layout, second_task.id)["status"] == "finished"


def test_a_child_runs_params_are_its_set_labels_its_settings_and_its_resources(graph):
    """child_runs' docstring: params are the task's labels and settings (nested keys dotted) and its resources;
    a label the task does not have (None, e.g. a pretraining task's `method`) is not logged as "None"."""
    from orchestrator.run import child_runs, recording

    task = dataclasses.replace(first(graph, vocab.PRETRAIN), resources=Resources(cpus=3, gpus=0.5, workers=2))
    run = child_runs.child_run(recording.EndedTask(task, vocab.DONE, None, 1.0, 1.0, 2.0, "cpu", {}, []), "n", "p")
    unset = [k for k, v in task.labels.items() if v is None]
    assert "method" in unset and not set(unset) & set(run.params)
    assert all(run.params[k] == str(v) for k, v in task.labels.items() if v is not None)
    assert run.params["pretrain.epochs"] == str(task.settings["pretrain.epochs"])
    assert all(run.params[k] == str(v) for k, v in task.settings.items() if v is not None and not isinstance(v, list))
    assert (run.params["resources.cpus"], run.params["resources.gpus"], run.params["resources.workers"]) == \
        ("3", "0.5", "2")
    assert run.tags[child_runs.USER_TAG] == child_runs.user()


def test_a_child_run_logs_no_repeated_point_no_secret_metric_and_a_zero_duration(graph):
    """`ChildRun.metrics`: no repeats (two NaN at one step are one point); keys that may hold credentials are
    never logged; a duration of 0 s is a duration; steps are integers (as MLflow stores them)."""
    from orchestrator.run import child_runs, recording

    task = first(graph, vocab.PATH_EVAL)
    steps = [("path.cue.loss", 500.0, float("nan")), ("path.cue.loss", 500, float("nan")), ("path.cue.acc", 0, 0.5)]
    ended = recording.EndedTask(task, vocab.DONE, None, 0.0, 1.0, 2.0, "cpu", {"api_token": 3.0, "eval.cue.acc": 0.5},
                                steps)
    run = child_runs.child_run(ended, "n", "p")
    keys = [(k, s) for k, _v, s in run.metrics]
    assert sorted(keys) == sorted([("path.cue.loss", 500), ("path.cue.acc", 0), ("eval.cue.acc", 0), ("duration_s", 0)])
    assert all(type(s) is int for _k, _v, s in run.metrics)
    assert ("duration_s", 0.0, 0) in run.metrics


def test_a_child_runs_tags_hold_no_secret_and_its_error_is_redacted_and_cut_to_mlflows_limit(graph):
    from orchestrator.run import child_runs, recording

    task = first(graph, vocab.PRETRAIN)
    error = "OSError: could not reach https://alice:hunter2@example.com/x " + "y" * 10_000
    ended = recording.EndedTask(task, vocab.FAILED, error, 1.0, 1.0, 2.0, "cpu", {}, [])
    run = child_runs.child_run(ended, "n", "p", {"aws_secret_access_key": "AKIA", "sweep": "s"})
    assert "aws_secret_access_key" not in run.tags and run.tags["sweep"] == "s"
    assert "hunter2" not in run.tags["error"] and "hunter2" not in run.error
    assert len(run.tags["error"]) == child_runs.MAX_TAG_VALUE
    flat = child_runs.flatten_params({"store": "https://bob:pw1234@db.example.com/mlflow"})
    assert "pw1234" not in flat["store"] and flat["store"].endswith("@db.example.com/mlflow")


def test_datasets_are_named_by_what_they_are_not_where_once_each_and_only_for_training_tasks(graph):
    """A dataset's digest hashes what it is (no paths: `root` is where); a midpoint whose endpoints learnt from
    the same data has that dataset once; alignment and path evaluation learn nothing (none)."""
    from orchestrator.run import child_runs

    pre = first(graph, vocab.PRETRAIN)
    (ref,) = child_runs.dataset_inputs(pre)
    moved = dataclasses.replace(pre, config={**pre.config, "data": {**pre.config["data"], "root": "/elsewhere"}})
    assert child_runs.dataset_inputs(moved) == (ref,)
    assert json.loads(ref.profile) == {"cue_proportion": pre.config["data"].get("cue_proportion")}
    nocue = next(t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN and not t.labels["cue_proportion"])
    assert child_runs.base_name(nocue) == f"pretrain nocue seed {nocue.labels['seed']}"
    mid = first(graph, vocab.MIDPOINT)
    same = dataclasses.replace(mid, config={**mid.config, "data": [pre.config["data"], dict(pre.config["data"])]})
    assert child_runs.dataset_inputs(same) == (ref,)
    assert child_runs.dataset_inputs(first(graph, vocab.ALIGN)) == ()
    assert child_runs.dataset_inputs(first(graph, vocab.PATH_EVAL)) == ()


def test_a_tasks_row_holds_the_settings_of_its_lineage(graph, tmp_path):
    """Every row carries the `<section>.<field>` settings its task was planned with (null where not part of
    its lineage), as well as its labels."""
    from orchestrator.results import schemas
    from orchestrator.run import recording

    task = first(graph, vocab.FINETUNE)
    columns = set(schemas.SCHEMAS[vocab.TASKS].names)
    carried = {k: v for k, v in task.settings.items() if k in columns}
    assert any(k.startswith("finetune.") for k in carried) and any(k.startswith("pretrain.") for k in carried)
    row = recording.task_row(task, "finished", spec_hash="h", rev=None)
    assert {k: row[k] for k in carried} == carried
    assert row["method"] == task.labels["method"] is not None


def test_a_bundle_is_compacted_once_as_many_tasks_as_its_size_have_ended(graph, tmp_path, monkeypatch):
    """`compact_every` ended tasks make a bundle: the second of two ends it (not a third)."""
    from orchestrator.run import recording
    from orchestrator.run.state import SweepState

    bundles = []
    monkeypatch.setattr(recording.compact, "compact_bundle", lambda layout, rows_of, finished: bundles.append(1))
    monkeypatch.setattr(recording.outputs, "index_markers", lambda layout, tasks: 0)
    state = SweepState(graph)
    recorder = recording.TaskRecorder(layout_in(tmp_path), state, "hash", Tracker())
    recorder.compact_every = 2
    state.subscribe(recorder.on_status)
    for task in (first(graph, vocab.PRETRAIN), first(graph, vocab.ALIGN)):
        state.set_status(task.id, vocab.DONE, result=work.TaskResult(vocab.DONE, 1.0))
        recorder.flush()
    assert bundles == [1] and recorder.compactions == 1
    recorder.close()


def test_the_markers_of_finished_and_cached_tasks_are_indexed_and_no_others(graph, tmp_path, monkeypatch):
    """The run indexes the markers of the tasks that ended finished, in this run or found cached, for
    `status`; a failed task has none."""
    from orchestrator.run import recording
    from orchestrator.run.state import SweepState, TaskState

    indexed = []
    monkeypatch.setattr(recording.outputs, "index_markers", lambda layout, tasks: indexed.extend(tasks) or 0)
    state = SweepState(graph)
    recorder = recording.TaskRecorder(layout_in(tmp_path), state, "hash", Tracker())
    recorder.compact_every = 0
    done, cached, failed = first(graph, vocab.PATH_EVAL), first(graph, vocab.PRETRAIN), first(graph, vocab.ALIGN)
    recorder.record(done.id, TaskState(vocab.DONE, result=work.TaskResult(vocab.DONE, 1.0)))
    recorder.record(cached.id, TaskState(vocab.CACHED))
    recorder.record(failed.id, TaskState(vocab.FAILED, "boom"))
    recorder.close()
    assert sorted(indexed) == sorted([(done.kind, done.id), (cached.kind, cached.id)])


def test_close_does_not_wait_out_the_batch_window_once_it_asked_the_thread_to_stop(graph, tmp_path, monkeypatch):
    """The thread gathers a batch for up to BATCH_WAIT_S after its first task; `close` ends the gathering at
    once (the end of every run would otherwise wait the whole window)."""
    import time

    from orchestrator.run import recording
    from orchestrator.run.state import SweepState

    monkeypatch.setattr(recording, "BATCH_WAIT_S", 10.0)
    monkeypatch.setattr(recording.outputs, "index_markers", lambda layout, tasks: 0)
    state = SweepState(graph)
    recorder = recording.TaskRecorder(layout_in(tmp_path), state, "hash", Tracker())
    recorder.compact_every = 0
    state.subscribe(recorder.on_status)
    task = first(graph, vocab.PRETRAIN)
    state.set_status(task.id, vocab.DONE, result=work.TaskResult(vocab.DONE, 1.0))
    started = time.monotonic()
    recorder.close()
    assert time.monotonic() - started < 5.0 and recorder.written == 1


@pytest.mark.parametrize("finished_at", ["soon", True, float("nan")])
def test_a_marker_whose_finish_time_is_no_number_is_recorded_with_the_time_it_was_found(graph, tmp_path, finished_at):
    """A finished task's marker whose `finished_at` is not a finite number (text, a bool, NaN): its row is
    written all the same, with the time the driver found it (not a crash of the recorder, not 1970)."""
    import time

    tracker = Tracker()
    state, recorder = _recorder(graph, tmp_path, tracker)
    task = first(graph, vocab.ALIGN)
    outputs.write_outputs(recorder.layout, task, TaskOutput(checkpoint={"w": torch.zeros(2)},
                                                            meta={"duration_s": 4.5, "device": "cpu:z"}))
    path = recorder.layout.marker_file(task.kind, task.id)
    marker = json.loads(recorder.layout.storage.read_bytes(path))
    marker["finished_at"] = finished_at
    recorder.layout.storage.write_bytes(path, json.dumps(marker).encode())
    assert outputs.verify_outputs(recorder.layout, task.kind, task.id) == (True, "")
    before = time.time()
    state.set_status(task.id, vocab.CACHED)
    recorder.record(task.id)
    (ended,) = tracker.ended
    assert before <= ended.ended_at <= time.time() and ended.duration_s is None and ended.device == "cpu:z"
    assert _tasks_row(recorder.layout, task.id)["cached"]


@pytest.mark.parametrize("meta, duration, device", [({"duration_s": 4.5, "device": 7}, 4.5, None),
                                                    ({"duration_s": "long", "device": "cpu:z"}, None, "cpu:z"),
                                                    ({"duration_s": True, "device": ["cpu"]}, None, None)])
def test_a_marker_whose_duration_or_device_is_of_the_wrong_kind_is_recorded_without_it(graph, tmp_path, meta, duration,
                                                                                       device):
    """A finished task's marker whose `meta.duration_s` is no finite number or whose `meta.device` is no text (a
    hand-edited or foreign done.json): its row is written all the same, that field left empty, not a crash of the
    recorder nor a row the `tasks` table cannot hold."""
    tracker = Tracker()
    state, recorder = _recorder(graph, tmp_path, tracker)
    task = first(graph, vocab.ALIGN)
    outputs.write_outputs(recorder.layout, task, TaskOutput(checkpoint={"w": torch.zeros(2)}, meta=meta))
    assert outputs.verify_outputs(recorder.layout, task.kind, task.id) == (True, "")
    state.set_status(task.id, vocab.CACHED)
    recorder.record(task.id)
    (ended,) = tracker.ended
    assert (ended.duration_s, ended.device) == (duration, device)
    row = _tasks_row(recorder.layout, task.id)
    assert row["cached"] and (row["device"] == device if device else not isinstance(row["device"], str))
