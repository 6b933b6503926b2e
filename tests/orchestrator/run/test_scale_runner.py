"""The pieces that let a sweep scale: the synthetic runner (rows of every table at realistic sizes, nothing
computed), the task recorder (rows and MLflow runs written off the scheduling thread, in batches, every row
exactly once) and the scale benchmark (a quick run keeps it working)."""
from __future__ import annotations

import json
import logging

import mlflow
import pytest
import torch

from orchestrator import knobs, vocab
from orchestrator.results import schemas, tables
from orchestrator.results.manifest import sha256_hex
from orchestrator.run import recording, state as sweep_state, work
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.run.tracking import MlflowTracker, SweepRun
from orchestrator.run.work import TaskResult
from tests.support import runners

SYNTHETIC = runners.name("synthetic")


@pytest.fixture(scope="module")
def graph():
    return build_graph(load_spec(None, ["seeds=[0]"]))


@pytest.fixture
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path)), "scale")


# ----- the synthetic runner --------------------------------------------------------------------

def test_synthetic_runner_writes_every_table_at_the_real_sizes(graph, layout):
    sizes: dict[str, dict[str, set]] = {}
    for task in graph.tasks.values():
        result = work.execute(task, SYNTHETIC, work.TaskEnv(layout=layout, device=torch.device("cpu")))
        assert result.status == vocab.DONE, result.error
        marker = json.loads(layout.storage.read_bytes(layout.marker_file(task.kind, task.id)))
        counts = {t: len(tables.read_fragment(layout, t, task.id)) for t in marker["tables"]}
        for table, n in counts.items():
            sizes.setdefault(task.kind, {}).setdefault(table, set()).add(n)
        if task.kind == vocab.PATH_EVAL:
            assert counts == {vocab.PATHS: task.settings["paths.num_alphas"] * 4, vocab.BARRIERS: 4 * 2 * len(vocab.DEFINITIONS)}
            assert any(k.startswith("barrier.") for k in result.metrics) and len(result.steps) > 100
        elif task.kind == vocab.ALIGN:
            assert counts == {}
        else:
            epochs = {"llrt": task.settings.get("finetune.llrt_epochs"),
                      "lpft": task.settings.get("finetune.llrt_epochs", 0) + task.settings.get("finetune.epochs", 0),
                      }.get(task.config.get("method"), task.settings.get(f"{task.kind}.epochs"))
            assert counts[vocab.TRAIN_CURVES] == epochs
            assert counts.get(vocab.EVALUATIONS, 0) == (0 if task.kind == vocab.MIDPOINT else 4)
    assert set(sizes) == {vocab.PRETRAIN, vocab.FINETUNE, vocab.MIDPOINT, vocab.PATH_EVAL}
    paths = tables.read_table(layout, vocab.PATHS)
    assert paths[schemas.SETTINGS_COLUMNS[0]].notna().all()       # the settings columns are filled in
    assert paths["loss"].between(0.3, 1.3).all() and paths["agree_a"].between(0, 1).all()


def test_synthetic_runner_fails_where_asked(graph, layout, monkeypatch):
    monkeypatch.setenv(runners.FAIL_ENV, "midpoint")
    task = next(t for t in graph.tasks.values() if t.kind == vocab.MIDPOINT)
    result = work.execute(task, SYNTHETIC, work.TaskEnv(layout=layout, device=torch.device("cpu")))
    assert result.status == vocab.FAILED and "injected failure" in result.error
    assert result.error_type == "RuntimeError"


# ----- the task recorder -----------------------------------------------------------------------

def ended_state(graph) -> tuple[sweep_state.SweepState, dict[str, str]]:
    """A few tasks in every final status, as the scheduler leaves them."""
    state = sweep_state.SweepState(graph)
    ids = list(graph.tasks)
    roles = {"done": ids[0], "failed": ids[1], "cached": ids[2], "done2": ids[3]}
    for role in ("done", "done2"):
        state.set_status(roles[role], vocab.DONE, started_at=1_700_000_000.0, duration_s=1.5,
                         result=TaskResult(vocab.DONE, 1.5, "cpu:test",
                                           metrics={"eval.cue.acc": 0.75, "nan": float("nan")},
                                           steps=[["curve", i, 0.1 * i] for i in range(5)]))
    state.set_status(roles["cached"], vocab.CACHED)
    skipped = state.set_status(roles["failed"], vocab.FAILED, "RuntimeError: boom\ntraceback",
                               error_type="RuntimeError", started_at=1_700_000_000.0, duration_s=0.5)
    roles["skipped"] = skipped[0]
    return state, roles


def mlflow_runs(uri: str, experiment: str) -> dict:
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    out = {}
    for r in runs:
        if "mlflow.parentRunId" not in r.data.tags:
            continue
        history = {k: sorted((m.step, m.value) for m in client.get_metric_history(r.info.run_id, k))
                   for k in r.data.metrics}
        artifacts = sorted(a.path for a in client.list_artifacts(r.info.run_id))
        tags = {k: v for k, v in r.data.tags.items() if k != "mlflow.parentRunId"}
        inputs = sorted((d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source,
                         d.dataset.profile, tuple((t.key, t.value) for t in d.tags)) for d in r.inputs.dataset_inputs)
        out[tags["task_id"]] = {"status": r.info.status, "tags": tags, "params": r.data.params,
                                "metrics": r.data.metrics, "history": history, "artifacts": artifacts,
                                "run_id": r.info.run_id, "name": r.info.run_name, "inputs": inputs,
                                "times": (r.info.start_time, r.info.end_time), "user": r.info.user_id,
                                "end": r.info.end_time is not None}
    return out


def record_all(graph, tmp_path, bulk: bool) -> dict:
    """Record tasks in every status (one twice) with MLflow; check rows and runs; return the runs."""
    state, roles = ended_state(graph)
    layout = SweepLayout(Storage(str(tmp_path)), "rec")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "rec")
    tracker.start(SweepRun(graph=graph, sweep="rec", version=1, spec_hash="hash", git_commit="abc"))
    if not bulk:
        tracker.sql = None                      # run by run through MLflow's client
    recorder = recording.TaskRecorder(layout, state, "hash", tracker, "rev")
    for role in ("done", "failed", "cached", "skipped", "done2", "done"):   # "done" twice: one row
        recorder.record(roles[role])
    recorder.close()
    assert recorder.written == 5 and not recorder.failures
    rows = tables.read_table(layout, vocab.TASKS).set_index("task_id")
    assert sorted(rows.index) == sorted(roles.values())
    assert rows.loc[roles["failed"], "status"] == vocab.FAILED and "boom" in rows.loc[roles["failed"], "error"]
    assert rows.loc[roles["failed"], "error_type"] == "RuntimeError"
    assert rows["error_type"].drop(roles["failed"]).isna().all()
    assert rows.loc[roles["skipped"], "status"] == vocab.SKIPPED and bool(rows.loc[roles["cached"], "cached"])
    assert rows.loc[roles["done"], "device"] == "cpu:test"
    runs = mlflow_runs(uri, "rec")
    assert {task_id: r["run_id"] for task_id, r in runs.items()} == rows["mlflow_run_id"].to_dict()
    done = runs[roles["done"]]
    assert done["status"] == "FINISHED" and done["end"]
    assert done["metrics"]["eval.cue.acc"] == 0.75 and done["metrics"]["duration_s"] == 1.5
    assert done["history"]["curve"] == [(i, pytest.approx(0.1 * i)) for i in range(5)]
    assert done["tags"]["task_kind"] == graph.tasks[roles["done"]].kind and done["params"]["task_id"] == roles["done"]
    assert done["inputs"] and done["times"] == (1_700_000_000_000, done["times"][1])
    failed = runs[roles["failed"]]
    assert failed["status"] == "FAILED" and "boom" in failed["tags"]["error"] and failed["artifacts"] == ["error.txt"]
    assert runs[roles["skipped"]]["status"] == "KILLED" and not runs[roles["skipped"]]["inputs"]
    assert (tracker.sql is not None) == bulk          # batched unless told otherwise, and no fallback
    return runs


def test_batched_and_one_by_one_mlflow_runs_hold_the_same(graph, tmp_path):
    got = {}
    for bulk in (True, False):
        runs = record_all(graph, tmp_path / str(bulk), bulk)
        got[bulk] = json.dumps({name: {k: v for k, v in r.items() if k not in ("run_id", "times")}
                                for name, r in runs.items()}, sort_keys=True, default=str)   # NaN compares as text
    assert got[True] == got[False]


def test_recorder_flushes_hundreds_of_rows_on_close(graph, tmp_path):
    state = sweep_state.SweepState(graph)
    for task_id in graph.tasks:
        state.set_status(task_id, vocab.DONE)
    layout = SweepLayout(Storage(str(tmp_path)), "many")
    recorder = recording.TaskRecorder(layout, state, "hash")
    for task_id in graph.tasks:
        recorder.record(task_id)
    recorder.close()
    recorder.close()                                            # idempotent
    assert recorder.written == len(graph)
    assert sorted(tables.read_table(layout, vocab.TASKS)["task_id"]) == sorted(graph.tasks)


def test_a_row_that_cannot_be_written_does_not_stop_the_others(graph, tmp_path, monkeypatch, caplog):
    state = sweep_state.SweepState(graph)
    ids = list(graph.tasks)[:5]
    for task_id in ids:
        state.set_status(task_id, vocab.DONE)
    real = Storage.write_bytes

    def flaky(self, path, data):
        if ids[2] in path:
            raise OSError("disk full")
        return real(self, path, data)

    monkeypatch.setattr(Storage, "write_bytes", flaky)
    layout = SweepLayout(Storage(str(tmp_path)), "flaky")
    recorder = recording.TaskRecorder(layout, state, "hash")
    for task_id in ids:
        recorder.record(task_id)
    recorder.close()
    assert recorder.written == 4 and len(recorder.failures) == 1 and ids[2] in recorder.failures[0]
    assert [r.levelno for r in caplog.records if "could not be written" in r.getMessage()] == [logging.WARNING]
    assert sorted(tables.read_table(layout, vocab.TASKS)["task_id"]) == sorted(set(ids) - {ids[2]})


@pytest.mark.parametrize("bad", [False, True])
def test_a_batch_of_rows_is_written_one_fragment_per_task_and_a_row_that_does_not_fit_spares_the_others(
        graph, tmp_path, monkeypatch, bad):
    """The driver builds a batch's `tasks` rows at once and writes each task's fragment from its slice; a row
    that does not fit the schema makes the batch fall back to one row at a time, so only that row is missing.
    The rows kept for compaction (`rows_of`) are the rows of the bytes on storage, each at its own offset."""
    ids = list(graph.tasks)[:6]
    real_row = recording.task_row

    def row(task, *args, **kwargs):
        out = real_row(task, *args, **kwargs)
        return {**out, "duration_s": "slow"} if bad and task.id == ids[3] else out

    monkeypatch.setattr(recording, "task_row", row)
    layout = SweepLayout(Storage(str(tmp_path)), "batch")
    table = recording.TasksTable(layout, "hash", None)
    ended = [recording.EndedTask(graph.tasks[t], vocab.DONE, None, float(i), 1.0, 2.0 + i, "cpu", {}, [])
             for i, t in enumerate(ids)]
    table.tasks_ended(ended, {t: f"run-{t}" for t in ids})
    written = [t for t in ids if not (bad and t == ids[3])]
    assert table.written == len(written) and len(table.failures) == int(bad)
    if bad:
        assert ids[3] in table.failures[0] and "SchemaError" in table.failures[0] and "duration_s" in table.failures[0]
    stored = tables.read_table(layout, vocab.TASKS).set_index("task_id")
    assert sorted(stored.index) == sorted(written)
    for i, task_id in enumerate(ids):
        path = layout.fragment(vocab.TASKS, task_id)
        if task_id not in written:
            assert table.rows_of(path) is None and not layout.storage.exists(path)
            continue
        digest, size, kept = table.rows_of(path)
        data = layout.storage.read_bytes(path)
        assert (digest, size) == (sha256_hex(data), len(data))
        assert kept.equals(tables.parse_fragment(vocab.TASKS, data, task_id))
        assert stored.loc[task_id, "duration_s"] == float(i) and stored.loc[task_id, "mlflow_run_id"] == f"run-{task_id}"


def test_the_recorder_compacts_a_bundle_every_so_many_ended_tasks_from_the_rows_it_kept(graph, tmp_path,
                                                                                         monkeypatch):
    """While a run goes, the recording thread compacts what was written every `compact_every` ended tasks
    (the end of the run then reads only the last bundle's fragments); the `tasks` rows it wrote itself
    are taken as they were written, not parsed back."""
    from orchestrator.results import compact, manifest

    state = sweep_state.SweepState(graph)
    for task_id in graph.tasks:
        state.set_status(task_id, vocab.DONE)
    layout = SweepLayout(Storage(str(tmp_path)), "bundled")
    recorder = recording.TaskRecorder(layout, state, "hash")
    assert recorder.compact_every == compact.bundle_tasks(len(graph))
    recorder.compact_every = 10
    parsed, real = [], tables.parse_fragment
    monkeypatch.setattr(tables, "parse_fragment", lambda t, data, task_id=None: (parsed.append(t),
                                                                                 real(t, data, task_id))[1])
    monkeypatch.setattr(recording, "BATCH_WAIT_S", 0.0)
    ids = sorted(graph.tasks)
    for i, task_id in enumerate(ids):
        recorder.record(task_id)
        if i % 10 == 9:
            recorder.flush()                                   # the next rows queue after the bundle
    recorder.close()
    assert recorder.compactions == len(graph) // 10 and recorder.compact_cpu_s > 0
    assert vocab.TASKS not in parsed                            # every row taken as it was written
    listing = manifest.list_table(layout, vocab.TASKS)
    assert len(listing.parts) == len(graph) // 10 and len(listing.fragments) == len(graph) % 10   # the tail
    assert tables.read_table(layout, vocab.TASKS)["task_id"].tolist() == ids
    compact.compact_after_run(layout, log=lambda *a: None, rows_of=recorder.table.rows_of)
    assert tables.read_table(layout, vocab.TASKS)["task_id"].tolist() == ids


def test_the_recorder_keeps_a_batch_of_rows_in_one_block_and_hands_memory_back_after_each_bundle(graph, tmp_path,
                                                                                                 monkeypatch):
    """The `tasks` rows kept until the next bundle are one contiguous block per batch (a concatenation would
    keep every one-row table's buffers, ~9 KiB per row), and after each bundle the recording thread trims
    the driver's allocators; every row is written, compacted and read back all the same."""
    from orchestrator.results import compact

    released = []
    monkeypatch.setattr(recording, "release_freed_memory", lambda: released.append(True))
    monkeypatch.setattr(recording, "BATCH_WAIT_S", 0.0)
    state = sweep_state.SweepState(graph)
    ids = sorted(graph.tasks)[:20]
    for task_id in ids:
        state.set_status(task_id, vocab.DONE)
    layout = SweepLayout(Storage(str(tmp_path)), "released")
    recorder = recording.TaskRecorder(layout, state, "hash")
    recorder.compact_every = 0                                  # rows only
    for task_id in ids[:5]:
        recorder.record(task_id)
    recorder.flush()
    kept = [recorder.table.rows_of(layout.fragment(vocab.TASKS, t)) for t in ids[:5]]
    assert [rows["task_id"][0].as_py() for _, _, rows in kept] == ids[:5] and not released
    table = recording.TasksTable(SweepLayout(Storage(str(tmp_path)), "block"), "hash", "rev")
    table.tasks_ended([recording.EndedTask(graph.tasks[t], vocab.DONE, None, 0.1, 0.0, 1.0, "cpu", {}, [])
                       for t in ids[:3]], {})
    (block,) = {id(kept[2]): kept[2] for kept in table._kept.values()}.values()
    assert block.num_rows == 3 and all(column.num_chunks == 1 for column in block.columns)
    recorder.compact_every = 5                                  # then a bundle every 5 rows
    for i, task_id in enumerate(ids[5:]):
        recorder.record(task_id)
        if i % 5 == 4:
            recorder.flush()
    recorder.close()
    assert recorder.compactions == 3 and len(released) == 3
    compact.compact_after_run(layout, log=lambda *a: None, rows_of=recorder.table.rows_of)
    assert sorted(tables.read_table(layout, vocab.TASKS)["task_id"]) == ids


# ----- the benchmark -----------------------------------------------------------------------------

@pytest.mark.slow
def test_scale_benchmark_quick(tmp_path, monkeypatch):
    from bench import scale

    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1")   # 50 tasks: fewer fragments than a run compacts
    # status and report are timed on real sweeps elsewhere; here the benchmark's own run and reads
    # the rows read and digested for a sample of the tasks, as above 20,000 tasks (memory stays bounded)
    payload = scale.main(["--quick", "--no-commands", "--sample-above", "0", "--out", str(tmp_path)])
    (size,) = payload["sizes"].values()
    m = size["after"]["median"]
    (run,) = size["after"]["runs"]
    assert run["digest_tasks"] == "1 in 2 by task id hash" and 0 < run["read_fragments_read"] < sum(run["files_before_compaction"].values())
    assert 0 < sum(run["rows"].values()) < 2000 and set(run["tables_sha256"]) == set(vocab.TABLES)
    per_seed = scale.tasks_per_seed()
    assert m["tasks"] == per_seed and max(m["files"].values()) <= 2 and m["driver_cpu_per_task_ms"] > 0
    assert payload["planning"]["tasks"] == scale.seeds_for(1000) * per_seed
    assert json.loads((tmp_path / "scale.json").read_text())["sizes"] and "report_s" not in m


def test_an_uncompacted_fabricated_sweep_compacts_into_what_a_finished_run_leaves(tmp_path, monkeypatch):
    """`bench.fabricate --uncompacted` (compaction benchmarks) leaves every fragment as the tasks write them;
    compacting them gives the tables, rows and files of the compacted fabrication, every task finished;
    `bench.scale --compaction` times that in bundles on a copy."""
    from bench import fabricate, scale
    from orchestrator import status
    from orchestrator.results import compact, manifest
    from orchestrator.storage.layout import open_sweep_dir

    loose = fabricate.fabricate(str(tmp_path / "loose"), 1, log=lambda _: None, workers=1, uncompacted=True)
    layout = open_sweep_dir(loose)
    assert all(not manifest.list_table(layout, t).parts for t in vocab.TABLES)
    assert len(manifest.list_table(layout, vocab.TASKS).fragments) == len(build_graph(load_spec(None, ["seeds=[0]"])))
    monkeypatch.setattr(compact, "BUNDLE_MIN_TASKS", 20)
    timed = scale.compaction_only(loose, "bundles")               # on a copy: the directory stays as it is
    total = sum(len(manifest.list_table(layout, t).fragments) for t in vocab.TABLES)
    assert len(timed["phases"]) == 3 and timed["fragments"] == total and set(timed["files"].values()) == {3}
    assert timed["cpu_s"] > timed["end_cpu_s"] > 0
    compact.compact(layout)
    snapshot = status.status_snapshot(layout)
    assert snapshot["total"][vocab.FINISHED] == snapshot["total"]["planned"] and not snapshot["damaged"]
    exact = fabricate.fabricate(str(tmp_path / "exact"), 1, log=lambda _: None, workers=1, exact=True)
    assert fabricate.shape(loose) == fabricate.shape(exact)


# ----- runners by name or import path ------------------------------------------------------------

def test_runners_are_chosen_by_name_or_import_path_and_a_bad_one_is_refused(tmp_path, capsys):
    from orchestrator import cli
    from orchestrator.run.runners import RunnerError

    assert work.resolve_runner("real") is work.run_real
    assert work.resolve_runner(SYNTHETIC) is runners.synthetic          # imported like a plugin
    for bad, why in (("synthetic", "'synthetic' is not a runner; allowed: real, an import path"),
                     ("tests.support.runners:nothing", "has no attribute 'nothing'"),
                     ("tests.support.runners:HERE", "is not a function")):
        with pytest.raises(RunnerError, match=why):
            work.resolve_runner(bad)
        assert cli.main(["run", "--storage", str(tmp_path / "runs"), "--runner", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: `--runner`: ") and why in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()                               # refused before any work


def test_the_recorder_listens_to_status_changes_and_writes_each_ended_task_once(graph, tmp_path):
    state = sweep_state.SweepState(graph)
    layout = SweepLayout(Storage(str(tmp_path)), "listened")
    recorder = recording.TaskRecorder(layout, state, "hash")
    state.subscribe(recorder.on_status)
    root = next(t for t, task in graph.tasks.items() if task.kind == vocab.PRETRAIN)
    below = graph.descendants(root)
    cached, done = [t for t in graph.tasks if t != root and t not in below][:2]
    state.set_status(cached, vocab.CACHED)          # found finished: the run records it only if its row is missing
    state.set_status(done, vocab.RUNNING)            # running: nothing to record yet
    state.set_status(done, vocab.DONE, duration_s=2.0)
    state.set_status(root, vocab.RUNNING)
    state.set_status(root, vocab.FAILED, "RuntimeError: boom", error_type="RuntimeError")
    state.set_status(root, vocab.FAILED, "trial crashed: ...", error_type="RuntimeError")   # reason filled in later
    recorder.close()
    rows = tables.read_table(layout, vocab.TASKS).set_index("task_id")
    assert sorted(rows.index) == sorted([done, root, *below]) and recorder.written == len(rows)
    assert rows.loc[root, "error"] == "RuntimeError: boom" and rows.loc[root, "error_type"] == "RuntimeError"
    assert set(rows.loc[below, "status"]) == {vocab.SKIPPED} and rows.loc[done, "duration_s"] == 2.0


def test_a_state_that_keeps_no_results_still_hands_each_result_to_the_recorder(graph, tmp_path):
    """The driver's state drops a task's result (its metrics and step series) once the listeners have it:
    the memory that grew with the tasks; the recorder still logs every metric and step."""
    task_id = next(iter(graph.tasks))
    result = TaskResult(vocab.DONE, 1.0, "cpu:test", metrics={"eval.cue.acc": 0.5},
                        steps=[["curve", i, 0.1 * i] for i in range(3)])
    kept = sweep_state.SweepState(graph)
    kept.set_status(task_id, vocab.DONE, result=result)
    assert kept.states[task_id].result is result                    # by default the state keeps it
    state = sweep_state.SweepState(graph, keep_results=False)
    layout = SweepLayout(Storage(str(tmp_path)), "slim")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "slim")
    tracker.start(SweepRun(graph=graph, sweep="slim", version=1, spec_hash="hash"))
    recorder = recording.TaskRecorder(layout, state, "hash", tracker)
    state.subscribe(recorder.on_status)
    state.set_status(task_id, vocab.RUNNING, started_at=1_700_000_000.0)
    state.set_status(task_id, vocab.DONE, result=result, duration_s=1.0)
    after = state.states[task_id]
    assert after.result is None and after.status == vocab.DONE and after.duration_s == 1.0
    recorder.close()
    (run,) = mlflow_runs(uri, "slim").values()
    assert run["metrics"]["eval.cue.acc"] == 0.5 and run["history"]["curve"] == [(i, pytest.approx(0.1 * i)) for i in range(3)]
    assert tables.read_table(layout, vocab.TASKS).set_index("task_id").loc[task_id, "device"] == "cpu:test"


def test_tune_saves_its_experiment_state_once_and_a_users_setting_wins(monkeypatch):
    """Tune's periodic experiment-state saves re-serialise every trial (O(trials) per save) for a restore
    that a sweep never uses; a period given by the user is kept."""
    from orchestrator.run import schedule

    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    schedule.quiet_ray_logs()
    import os
    assert float(os.environ["TUNE_GLOBAL_CHECKPOINT_S"]) >= 3600
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "auto")
    schedule.quiet_ray_logs()
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "auto"


def test_the_recorder_indexes_the_markers_of_finished_tasks_with_each_bundle_and_at_the_end(graph, layout,
                                                                                            monkeypatch):
    """The markers of the tasks that finished are indexed with each bundle and at the end of the run (a
    failed task's not), the index's files merged at the end when there are more than MERGE_FROM, and then
    `status`'s pass reads none of them."""
    from orchestrator.results import marker_index, outputs

    monkeypatch.setattr(recording, "BATCH_WAIT_S", 0.0)
    monkeypatch.setattr(marker_index, "MERGE_FROM", 3)
    state = sweep_state.SweepState(graph)
    ids = sorted(graph.tasks)
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
    failed = ids[7]
    for task_id in ids:
        if task_id != failed:
            assert work.execute(graph.tasks[task_id], SYNTHETIC, env).status == vocab.DONE
        state.set_status(task_id, vocab.FAILED if task_id == failed else vocab.DONE)
    recorder = recording.TaskRecorder(layout, state, "hash")
    recorder.compact_every = 5
    files = []
    for i, task_id in enumerate(ids):
        recorder.record(task_id)
        if i % 5 == 4:
            recorder.flush()
            files.append(len(marker_index.index_files(layout)))
    recorder.close()
    assert files[:3] == [1, 2, 3] and len(marker_index.index_files(layout)) == 1     # merged at the end
    assert set(marker_index.read_index(layout)) == set(ids) - {failed}
    reads = []
    read_file = outputs.read_regular_file
    monkeypatch.setattr(outputs, "read_regular_file", lambda path, *a, **k: reads.append(path) or read_file(path, *a, **k))
    verified = outputs.verify_many(layout, [(graph.tasks[t].kind, t) for t in ids])
    assert {t for t, (ok, _) in verified.items() if ok} == set(ids) - {failed}
    assert reads == []                                          # the failed task has no marker to read
