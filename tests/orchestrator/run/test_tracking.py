"""MLflow tracking (`orchestrator.run.tracking`, `child_runs`, `tracking_sql`): one parent run per sweep version
(a rerun continues it), a child run per task named for what it is, its settings, metrics, curves (paths
against α) and datasets, secrets never logged; the SQL fast path's MLflow internals present; a moved store
re-points its artifacts."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import mlflow
import pytest

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.run import child_runs, recording, tracking, tracking_sql
from orchestrator.run.work import alpha_step
from orchestrator.spec.sweep_spec import load_spec


_TEMPLATE: list[Path] = []     # one MLflow SQLite store per process, migrated once


def new_store(tmp_path_factory, directory: Path, name: str = "mlflow.db") -> str:
    """The URI of a new, empty MLflow SQLite store in `directory`: a copy of one made once per process (MLflow
    migrates a new SQLite store for seconds; copying the migrated file takes a fraction of one)."""
    if not _TEMPLATE:
        template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
        mlflow.MlflowClient(f"sqlite:///{template}").search_experiments()
        _TEMPLATE.append(template)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE[0], directory / name)
    return f"sqlite:///{directory / name}"


@pytest.fixture
def store(tmp_path_factory, tmp_path):
    """`store()`: the URI of a new MLflow store in tmp_path (`store(directory, name)` elsewhere)."""
    return lambda directory=tmp_path, name="mlflow.db": new_store(tmp_path_factory, directory, name)


@pytest.fixture(scope="module")
def graph():
    return build_graph(load_spec(None, ["seeds=[0]"]))


def of_kind(graph, kind: str, **labels):
    return next(t for t in graph.tasks.values()
                if t.kind == kind and all(t.labels.get(k) == v for k, v in labels.items()))


def ended(task, status=vocab.DONE, metrics=None, steps=(), error=None) -> recording.EndedTask:
    return recording.EndedTask(task, status, error, 1.5, 1_700_000_000.0, 1_700_000_010.0, "cpu", metrics or {},
                               list(steps))


def sweep_run(graph, spec_hash="abc123", version=1, **kw) -> tracking.SweepRun:
    return tracking.SweepRun(graph=graph, sweep="test-sweep", version=version, spec_hash=spec_hash,
                             spec_text="name: test-sweep\n", source="sweeps/test.yaml",
                             **{"git_commit": "0123abcd" * 5, **kw})


def test_parent_and_child_runs_as_a_user_of_mlflow_finds_them(graph, tmp_path, store):
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    assert tracker.sql is not None                            # a SQLite store: the batched path
    parent = tracker.start(sweep_run(graph, params={"swept": "-", "api_token": "xyz"},
                                     tags={"mmc.storage": "/x", "db_password": "hunter2"}))
    pretrain = of_kind(graph, vocab.PRETRAIN, cue_proportion=0.8)
    path = of_kind(graph, vocab.PATH_EVAL, path_kind="linear", pair_type="cue~nocue")
    midpoint = of_kind(graph, vocab.MIDPOINT, pair_type="cue~nocue")
    alphas = [0.0, 0.25, 0.5, 1.0]
    ids = tracker.tasks_ended([
        ended(pretrain, metrics={"eval.cue.acc": 0.9, "my_secret": 1.0},
              steps=[("train_loss", ep, 1.0 / (ep + 1)) for ep in range(4)]),
        ended(path, metrics={"barrier.cue.loss.chord": 0.4},
              steps=[("path.cue.loss", alpha_step(a), 0.3 + a * (1 - a)) for a in alphas]),
        ended(midpoint, vocab.FAILED, error="Traceback ...\nRuntimeError: boom"),
    ])
    report = tmp_path / "report.html"
    report.write_text("<!DOCTYPE html>")
    tracker.finish("FAILED", metrics={"tasks_done": 2}, artifacts=[report, tmp_path / "missing.png"])

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment(tracker.experiment_id)
    assert experiment.artifact_location == (tmp_path / "mlflow-artifacts").as_uri()   # next to the database
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.EXPERIMENT_KIND
    assert tracker.sql is not None                            # the batch went in by SQL, without a fallback
    par = client.get_run(parent)
    assert par.info.run_name == "test-sweep v1" and par.info.status == "FAILED"
    assert par.data.tags["mlflow.source.name"] == "sweeps/test.yaml"
    assert par.data.tags["mlflow.source.git.commit"] == "0123abcd" * 5
    assert par.data.params["spec_hash"] == "abc123" and par.data.params["tasks"] == str(len(graph))
    assert par.data.metrics["tasks_done"] == 2
    assert {a.path for a in client.list_artifacts(parent)} == {"spec.yaml", "report.html"}
    assert {d.dataset.name for d in par.inputs.dataset_inputs} == {"digits cue p=0.8", "digits nocue"}
    assert "db_password" not in par.data.tags and "api_token" not in par.data.params

    children = client.search_runs([tracker.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert {r.data.tags["task_id"]: r.info.run_id for r in children} == ids
    runs = {r.data.tags["task_id"]: r for r in children}
    pre, pth, mid = runs[pretrain.id], runs[path.id], runs[midpoint.id]
    assert pre.info.run_name == "pretrain cue p=0.8 seed 0" and pre.info.status == "FINISHED"
    assert pth.info.run_name == "path linear cue~nocue seed 0"
    assert mid.info.run_name == "midpoint cue~nocue seed 0" and mid.info.status == "FAILED"
    assert pre.data.tags["task_kind"] == "pretrain" and pre.data.tags["mlflow.source.git.commit"] == "0123abcd" * 5
    assert pre.data.params["pretrain.lr"] == "0.05" and pre.data.params["cue_proportion"] == "0.8"
    assert pre.data.metrics["eval.cue.acc"] == pytest.approx(0.9) and pre.data.metrics["duration_s"] == 1.5
    assert "my_secret" not in pre.data.metrics
    history = client.get_metric_history(pre.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(ep, 1.0 / (ep + 1)) for ep in range(4)]
    curve = sorted((m.step, m.value) for m in client.get_metric_history(pth.info.run_id, "path.cue.loss"))
    assert [s for s, _ in curve] == [0, 250, 500, 1000]                    # the x-axis is 1000·α
    assert "round(1000·α)" in pth.data.tags["mlflow.note.content"]
    assert [d.dataset.name for d in pre.inputs.dataset_inputs] == ["digits cue p=0.8"]
    assert sorted(d.dataset.name for d in mid.inputs.dataset_inputs) == ["digits cue p=0.8", "digits nocue"]
    assert not pth.inputs.dataset_inputs
    assert "boom" in mid.data.tags["error"] and [a.path for a in client.list_artifacts(mid.info.run_id)] == ["error.txt"]
    everything = [*pre.data.params, *pre.data.metrics, *par.data.params, *par.data.tags]
    assert not [k for k in everything if child_runs.is_secret(k)]
    with pytest.raises(ValueError, match="allowed: FINISHED, FAILED"):
        tracker.finish("DONE")


def test_a_rerun_of_the_same_spec_continues_its_parent_and_a_new_version_gets_its_own(graph, tmp_path, store):
    uri = store()
    pretrain = of_kind(graph, vocab.PRETRAIN)
    first = tracking.MlflowTracker(uri, "test-sweep")
    parent = first.start(sweep_run(graph))
    first.finish("FAILED", metrics={"tasks_done": 1})
    again = tracking.MlflowTracker(uri, "test-sweep")
    assert again.start(sweep_run(graph, tags={"mmc.storage": "/moved"})) == parent
    client = mlflow.MlflowClient(uri)
    assert client.get_run(parent).info.status == "RUNNING"                # running again
    again.tasks_ended([ended(pretrain)])
    again.finish("FINISHED", metrics={"tasks_done": 2})
    run = client.get_run(parent)
    assert run.info.status == "FINISHED" and run.data.tags["mmc.invocations"] == "2"
    assert run.data.tags["mmc.storage"] == "/moved"
    assert [(m.step, m.value) for m in client.get_metric_history(parent, "tasks_done")] == [(1, 1), (2, 2)]
    newer = tracking.MlflowTracker(uri, "test-sweep")
    other = newer.start(sweep_run(graph, spec_hash="def456", version=2))
    newer.finish("FINISHED")
    assert other != parent and client.get_run(other).info.run_name == "test-sweep v2"
    v2 = client.get_run(other).data                                        # the version it is, as tag and param
    assert (v2.tags["mmc.version"], v2.params["version"], v2.params["sweep"]) == ("2", "2", "test-sweep")
    assert v2.tags["mmc.spec_hash"] == v2.params["spec_hash"] == "def456" and v2.tags["mmc.invocations"] == "1"
    assert v2.tags["mlflow.source.type"] == "LOCAL"                        # MLflow's SourceType of a local run


def test_the_parent_names_the_code_that_computed_its_tasks_not_a_rerun_that_reused_them(graph, store):
    """A version's parent run: its commit is the code of the latest invocation that computed a task, and
    `mmc.git_revs` every such revision in order. A rerun that reused every result (all cached) or whose tasks
    all failed credits nothing to its code; a child run carries its own invocation's commit."""
    uri = store()
    pretrain, midpoint = of_kind(graph, vocab.PRETRAIN), of_kind(graph, vocab.MIDPOINT)

    def invoke(commit, *ended_tasks):
        tracker = tracking.MlflowTracker(uri, "test-sweep")
        parent = tracker.start(sweep_run(graph, git_commit=commit * 40, git_rev=commit * 12))
        ids = tracker.tasks_ended(list(ended_tasks))
        tracker.finish("FINISHED")
        return parent, ids

    parent, _ = invoke("a", ended(pretrain))
    client = mlflow.MlflowClient(uri)
    tags = lambda: client.get_run(parent).data.tags   # noqa: E731
    assert (tags()["mlflow.source.git.commit"], tags()["mmc.git_rev"], tags()["mmc.git_revs"]) == ("a" * 40, "a" * 12, "a" * 12)
    invoke("b", ended(pretrain, vocab.CACHED), ended(midpoint, vocab.FAILED, error="boom"))
    assert (tags()["mlflow.source.git.commit"], tags()["mmc.git_revs"]) == ("a" * 40, "a" * 12)
    _, ids = invoke("c", ended(pretrain, vocab.CACHED), ended(midpoint))
    assert (tags()["mlflow.source.git.commit"], tags()["mmc.git_rev"]) == ("c" * 40, "c" * 12)
    assert tags()["mmc.git_revs"] == f"{'a' * 12},{'c' * 12}" and tags()["mmc.invocations"] == "3"
    assert client.get_run(ids[midpoint.id]).data.tags["mlflow.source.git.commit"] == "c" * 40


def test_run_names_say_what_each_task_is_and_are_unique(graph):
    names = child_runs.run_names(graph)
    assert len(set(names.values())) == len(graph)
    named = {names[t.id] for t in graph.tasks.values()}
    for expected in ("pretrain cue p=0.8 seed 0", "path linear cue~nocue seed 0", "path quadratic cue~cue seed 0",
                     "path aligned activation nocue~nocue seed 0", "finetune cbft cue p=0.8 seed 0",
                     "path linear pretrained~ft:cbft seed 0", "midpoint cue~nocue:same-init seed 0"):
        assert expected in named, sorted(named)
    # the pair's second model of the same cue and seed is told apart by its id
    second = of_kind(graph, vocab.PATH_EVAL, pair_type="cue~cue", path_kind="linear").labels["endpoint_b"]
    assert names[second] == f"pretrain cue p=0.8 seed 0 #{second.split('-')[1][:6]}"
    swept = build_graph(load_spec(None, ["seeds=[0]", "cue_proportions=[0.0, 0.5, 0.8]"]))
    names = child_runs.run_names(swept)
    assert len(set(names.values())) == len(swept)
    assert any(n.startswith("path linear cue~nocue seed 0 cue_proportion=0.5") for n in names.values())


def test_the_sql_fast_path_finds_the_mlflow_internals_it_uses(tmp_path, store):
    """The batched path writes MLflow's tables directly: an MLflow that renamed or dropped any of them fails
    here (at run time the tracker would fall back to one client call per run, with a warning)."""
    client = mlflow.MlflowClient(store())
    store = tracking_sql.sql_store(client)
    assert store is not None, "MLflow's SQLite store is no longer its SqlAlchemyStore"
    assert tracking_sql.missing_internals(store) == []


def test_missing_internals_are_named_and_logging_goes_on_run_by_run(graph, tmp_path, monkeypatch, caplog, store):
    monkeypatch.setattr(tracking_sql, "MODELS", (*tracking_sql.MODELS, "SqlGone"))
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    assert tracker.sql is None and "lacks dbmodels.models.SqlGone" in caplog.text   # a warning on the log
    tracker.start(sweep_run(graph))
    task = of_kind(graph, vocab.PRETRAIN)
    ids = tracker.tasks_ended([ended(task)])
    assert mlflow.MlflowClient(uri).get_run(ids[task.id]).info.run_name == "pretrain cue p=0.8 seed 0"


def test_a_moved_store_logs_its_artifacts_into_its_new_place(graph, tmp_path, store):
    old, new = tmp_path / "old", tmp_path / "new"
    tracker = tracking.MlflowTracker(store(old), "test-sweep")
    parent = tracker.start(sweep_run(graph))
    task = of_kind(graph, vocab.PRETRAIN)
    child = tracker.tasks_ended([ended(task)])[task.id]
    tracker.finish("FINISHED")
    shutil.copytree(old, new)
    shutil.rmtree(old)
    uri = f"sqlite:///{new / 'mlflow.db'}"
    moved = tracking.MlflowTracker(uri, "test-sweep")
    assert moved.start(sweep_run(graph)) == parent
    report = tmp_path / "report.html"
    report.write_text("<!DOCTYPE html>")
    moved.finish("FINISHED", artifacts=[report])
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment(moved.experiment_id).artifact_location == (new / "mlflow-artifacts").as_uri()
    for run_id in (parent, child):
        assert client.get_run(run_id).info.artifact_uri.startswith((new / "mlflow-artifacts").as_uri())
    assert (new / "mlflow-artifacts" / parent / "artifacts" / "report.html").is_file()
    assert not old.exists()


def test_browse_url_opens_the_runs_table_and_hides_credentials():
    assert tracking.browse_url("sqlite:////x/mlflow.db", "3") == \
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    assert tracking.browse_url("https://u:pw@mlflow.example:5000/", "7") == \
        "https://***@mlflow.example:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert tracking.ui_command("sqlite:////x/mlflow.db") == \
        "mlflow ui --backend-store-uri sqlite:////x/mlflow.db --host 127.0.0.1 --port 5000"
    assert tracking.ui_command("sqlite:////my runs/mlflow.db").startswith(
        "mlflow ui --backend-store-uri 'sqlite:////my runs/mlflow.db' --host")       # one word for the shell
    assert tracking.ui_command("http://127.0.0.1:5000") is None


def test_the_null_tracker_does_nothing(graph):
    null = tracking.NullTracker()
    null.start(sweep_run(graph))
    assert null.tasks_ended([ended(of_kind(graph, vocab.PRETRAIN))]) == {}
    null.finish("FINISHED", artifacts=["x"])
    assert null.browse_url() is None and null.ui_command() is None


def test_flatten_params_drops_secrets_and_truncates():
    flat = child_runs.flatten_params({"a": {"b": {"c": 1}}, "Password": "p", "k" * 300: "v", "x": None,
                                      "l": [1, "two"]})
    assert flat["a.b.c"] == "1" and flat["x"] == "None" and json.loads(flat["l"]) == [1, "two"]
    assert "Password" not in flat
    assert ("k" * child_runs.MAX_PARAM_KEY) in flat
    assert len(child_runs.flatten_params({"long": "x" * 10_000})["long"]) == child_runs.MAX_PARAM_VALUE


def test_a_sweep_above_the_threshold_gets_one_child_run_per_kind_and_its_tables(graph, tmp_path, monkeypatch, store):
    """Past `MMC_MLFLOW_TASK_RUNS` tasks (MLflow's search and UI slow down with runs), a child run per task kind
    holds its tasks' counts and means, and the tables with every task's numbers are on the parent run; at the
    threshold itself, a child run per task."""
    monkeypatch.setenv("MMC_MLFLOW_TASK_RUNS", str(len(graph) - 1))
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    parent = tracker.start(sweep_run(graph))
    assert not tracker.per_task
    a, b = [t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL][:2]
    midpoint = of_kind(graph, vocab.MIDPOINT)
    ids = tracker.tasks_ended([ended(a, metrics={"barrier.cue.loss.chord": 0.2}, steps=[("path.cue.loss", 0, 1.0)]),
                               ended(b, metrics={"barrier.cue.loss.chord": 0.4, "nan": float("nan")}),
                               ended(midpoint, vocab.FAILED, error="RuntimeError: boom")])
    table = tmp_path / "results" / "paths" / "part-x.parquet"
    table.parent.mkdir(parents=True)
    table.write_bytes(b"PAR1")
    tracker.finish(vocab.MLFLOW_FINISHED, tables={vocab.PATHS: [table]})
    client = mlflow.MlflowClient(tracking_uri=uri)
    children = {r.data.tags[tracking.GROUP_TAG]: r for r in client.search_runs(
        [tracker.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")}
    assert sorted(children) == sorted(graph.counts())                    # one per kind, none per task
    paths, mid = children[vocab.PATH_EVAL], children[vocab.MIDPOINT]
    assert ids == {a.id: paths.info.run_id, b.id: paths.info.run_id, midpoint.id: mid.info.run_id}
    assert paths.data.metrics["tasks_done"] == 2 and paths.data.metrics["mean.barrier.cue.loss.chord"] == pytest.approx(0.3)
    assert paths.data.metrics["mean.duration_s"] == 1.5 and "mean.nan" not in paths.data.metrics
    assert not any(k.startswith("path.") for k in paths.data.metrics)    # the curves are in the tables
    assert paths.info.status == "FINISHED" and mid.info.status == "FAILED" and mid.data.metrics["tasks_failed"] == 1
    assert paths.info.run_name == f"path_eval ({graph.counts()[vocab.PATH_EVAL]} tasks)"
    assert [f.path for f in client.list_artifacts(parent, "tables/paths")] == ["tables/paths/part-x.parquet"]
    assert [f.path for f in client.list_artifacts(mid.info.run_id)] == ["errors.txt"]    # a failed task's error
    errors = client.download_artifacts(mid.info.run_id, "errors.txt", str(tmp_path))
    assert f"== {midpoint.id}\nRuntimeError: boom" in open(errors).read()
    assert paths.data.params == {"kind": vocab.PATH_EVAL, "tasks": str(graph.counts()[vocab.PATH_EVAL])}
    assert client.list_artifacts(paths.info.run_id) == []               # no failed task: no errors.txt
    again = tracking.MlflowTracker(uri, "test-sweep")                    # a rerun continues the same runs
    assert again.start(sweep_run(graph)) == parent
    assert client.get_run(paths.info.run_id).info.status == "RUNNING"   # its kinds' runs are running again
    assert again.tasks_ended([ended(a)]) == {a.id: paths.info.run_id}
    assert paths.data.tags["task_kind"] == vocab.PATH_EVAL                # filterable as a per-task child run is
    newer = tracking.MlflowTracker(uri, "test-sweep")                    # a new version: kinds' runs of its own
    other = newer.start(sweep_run(graph, spec_hash="def456", version=2))
    mine = newer.tasks_ended([ended(a)])[a.id]
    assert mine != paths.info.run_id and client.get_run(mine).data.tags["mlflow.parentRunId"] == other
    monkeypatch.setenv("MMC_MLFLOW_TASK_RUNS", str(len(graph)))
    small = tracking.MlflowTracker(store(tmp_path, "small.db"), "test-sweep")
    small.start(sweep_run(graph))
    assert small.per_task and len(set(small.tasks_ended([ended(a), ended(b)]).values())) == 2


def test_the_trackers_warnings_are_redacted_in_the_log_record_itself(caplog):
    """Every handler of the `orchestrator` logger (a user's file handler too, not only the CLI's console,
    which redacts again) gets a tracker warning without the credential."""
    import logging

    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        tracking.warn("batched MLflow logging failed (postgresql://bob:hunter2secret@db/mlflow refused)")
    assert [r.getMessage() for r in caplog.records] == [
        "batched MLflow logging failed (postgresql://***@db/mlflow refused)"]


def test_a_group_runs_mean_of_a_metric_is_over_the_tasks_that_report_it(graph):
    """`mean.<metric>` divides by the values of that metric, not by the tasks: a metric only one of four
    finished tasks reports is that task's value (hand count: acc 0.8 once -> 0.8; loss 1, 2, 3, 6 -> 3)."""
    tasks = [t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL][:4]
    group = tracking.GroupRun(vocab.PATH_EVAL, "run-id")
    for task, loss in zip(tasks, (1.0, 2.0, 3.0, 6.0)):
        group.add(ended(task, metrics={"loss": loss, **({"acc": 0.8} if loss == 6.0 else {})}))
    metrics = group.metrics()
    assert metrics["mean.acc"] == pytest.approx(0.8) and metrics["mean.loss"] == pytest.approx(3.0)
    assert metrics["tasks_done"] == 4


def test_a_group_run_averages_its_finished_tasks_and_keeps_the_first_errors_redacted(graph, monkeypatch):
    """A kind's run counts its tasks per status; `mean.<metric>` averages the finite, non-secret numbers of the
    finished (done or cached) tasks, a duration of 0 s included; `errors.txt` keeps the first GROUP_ERRORS
    failed tasks' errors, credentials hidden, and says how many more failed. Hand count: losses 1, 3, 5 ->
    mean 3; durations 1.5, 1.5, 0 -> 1; 3 failed, 2 kept -> "1 more"."""
    monkeypatch.setattr(tracking, "GROUP_ERRORS", 2)
    tasks = [t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL][:7]
    group = tracking.GroupRun(vocab.PATH_EVAL, "run-id")
    group.add(ended(tasks[0], metrics={"loss": 1.0, "api_token_count": 5.0, "inf": float("inf")}))
    group.add(ended(tasks[1], vocab.CACHED, metrics={"loss": 3.0}))
    for task in tasks[2:5]:
        group.add(ended(task, vocab.FAILED, metrics={"loss": 100.0},
                        error=f"OSError: s3://AKID:hunter2secret@bucket/{task.id} refused\n"))
    group.add(ended(tasks[5], vocab.SKIPPED))
    group.add(dataclasses.replace(ended(tasks[6], metrics={"loss": 5.0}), duration_s=0.0))
    assert group.metrics() == {"tasks_cached": 1, "tasks_done": 2, "tasks_failed": 3, "tasks_skipped": 1,
                               "mean.duration_s": pytest.approx(1.0), "mean.loss": pytest.approx(3.0)}
    text = group.errors_text()
    assert list(group.errors) == [tasks[2].id, tasks[3].id] and "hunter2secret" not in text
    assert f"== {tasks[2].id}\nOSError: s3://***@bucket/{tasks[2].id} refused\n\n" in text
    assert text.endswith("\n... and 1 more failed tasks: their errors are in the `tasks` table\n")
    assert group.status(vocab.MLFLOW_FINISHED) == vocab.MLFLOW_FAILED
    one = tracking.GroupRun(vocab.MIDPOINT, "run-id")
    one.add(ended(of_kind(graph, vocab.MIDPOINT), vocab.FAILED, error="RuntimeError: boom"))
    assert one.errors_text() == f"== {of_kind(graph, vocab.MIDPOINT).id}\nRuntimeError: boom\n\n"   # none more
    assert tracking.GroupRun(vocab.MIDPOINT, "x").status(vocab.MLFLOW_FINISHED) == vocab.MLFLOW_FINISHED


def test_urls_and_commands_for_every_kind_of_store_hide_credentials():
    """Without an experiment the URL opens the experiments list; a Databricks or HTTP store is served already
    (no `mlflow ui` command); the command for a database store shows no password."""
    assert tracking.browse_url("sqlite:////x/mlflow.db", None) == \
        "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
    assert tracking.ui_command("databricks") is None and tracking.ui_command("https://mlflow.example") is None
    assert tracking.browse_url("databricks", "3") is None and tracking.browse_url("databricks://prof", None) is None
    assert tracking.ui_command("postgresql://bob:hunter2secret@db:5432/mlflow") == \
        "mlflow ui --backend-store-uri 'postgresql://***@db:5432/mlflow' --host 127.0.0.1 --port 5000"   # * would glob


def test_batches_cover_every_item_within_mlflows_limits():
    """MLflow's `log_batch` takes at most 100 params and 1000 metrics (mlflow.utils.validation): the tracker's
    batches must fit them, and together hold every item once, in order."""
    from mlflow.utils import validation

    assert tracking.MAX_PARAMS_PER_BATCH <= validation.MAX_PARAMS_TAGS_PER_BATCH
    assert tracking.MAX_METRICS_PER_BATCH <= validation.MAX_METRICS_PER_BATCH
    chunks = list(tracking._chunks(list(range(250)), 100))
    assert chunks == [list(range(100)), list(range(100, 200)), list(range(200, 250))]
    assert list(tracking._chunks([], 100)) == []


def test_a_parent_run_takes_more_params_than_one_batch_and_a_redacted_spec_and_keeps_the_users_timeouts(
        graph, tmp_path, store, monkeypatch):
    """250 swept settings are logged in batches MLflow accepts, all of them; spec.yaml never holds a credential;
    the tracker's HTTP timeouts are defaults only: a user's own MLFLOW_HTTP_REQUEST_TIMEOUT stays."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    run = dataclasses.replace(sweep_run(graph, params={f"p{i:03d}": i for i in range(250)}),
                              spec_text="name: test-sweep\nstorage: s3://AKID:hunter2secret@bucket/runs\n")
    parent = tracker.start(run)
    client = mlflow.MlflowClient(uri)
    params = client.get_run(parent).data.params
    assert {f"p{i:03d}" for i in range(250)} <= set(params) and params["p249"] == "249"
    spec = client.download_artifacts(parent, "spec.yaml", str(tmp_path))
    assert open(spec).read() == "name: test-sweep\nstorage: s3://***@bucket/runs\n"


def test_after_a_failed_batch_every_later_batch_goes_run_by_run(graph, store, caplog):
    """A failure of the SQL path is one warning; that batch and every later one are logged through the client
    (the SQL path is not tried again)."""
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    tracker.start(sweep_run(graph))

    class Broken:
        def write(self, runs):
            raise RuntimeError("database is locked")

    tracker.sql = Broken()
    a, b = [t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN][:2]
    ids = {**tracker.tasks_ended([ended(a)]), **tracker.tasks_ended([ended(b)])}
    assert tracker.sql is None and caplog.text.count("batched MLflow logging failed") == 1
    client = mlflow.MlflowClient(uri)
    assert {client.get_run(ids[t.id]).data.tags["task_id"] for t in (a, b)} == {a.id, b.id}


def test_a_store_that_keeps_failing_is_said_in_one_line_per_run_and_given_up_after_a_few(graph, store, caplog):
    """A full disk under a SQLite store: every call fails, and MLflow's store logs a traceback of ~80 lines for
    each (a 13-task sweep printed ~1,000 lines). Each failure is one line without the SQL statement; after
    `FAILURES_IN_A_ROW` the invocation stops trying, said once; the next invocation tries again."""
    import sqlite3
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    tracker.start(sweep_run(graph))
    database = sqlite3.connect(uri.removeprefix("sqlite:///"))
    database.execute("CREATE TRIGGER full BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    database.commit()
    tasks = [t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL][:tracking.FAILURES_IN_A_ROW + 3]
    with caplog.at_level("INFO"):
        assert tracker.tasks_ended([ended(t) for t in tasks[:2]]) == {}
        assert all(tracker.tasks_ended([ended(t)]) == {} for t in tasks[2:])
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in said if r.name == tracking.STORE_LOGGER] and "Traceback" not in caplog.text
    failed = [r.getMessage() for r in said if "MLflow logging failed for" in r.getMessage()]
    assert len(failed) == tracking.FAILURES_IN_A_ROW and all("database or disk is full" in m for m in failed)
    assert "[SQL:" not in caplog.text and "INSERT INTO" not in caplog.text
    assert caplog.text.count(f"MLflow logging stops for this run after {tracking.FAILURES_IN_A_ROW} failures") == 1
    database.execute("DROP TRIGGER full")
    database.commit()
    again = tracking.MlflowTracker(uri, "test-sweep")
    again.start(sweep_run(graph))
    assert set(again.tasks_ended([ended(tasks[0])])) == {tasks[0].id}
    caplog.clear()
    with caplog.at_level("ERROR", logger=tracking.STORE_LOGGER):     # outside the tracker's calls, MLflow's own log
        logging.getLogger(tracking.STORE_LOGGER).error("the store's own error")
    assert "the store's own error" in caplog.text


def test_brief_keeps_the_cause_and_drops_the_statement():
    exc = RuntimeError("(raised as a result of Query-invoked autoflush; consider ...)\n(sqlite3.OperationalError) "
                       "database or disk is full\n[SQL: UPDATE runs SET status=?]\n[parameters: ('FAILED', 1)]\n"
                       "(Background on this error at: https://sqlalche.me/e/21/e3q8)")
    assert tracking.brief(exc) == "RuntimeError: (sqlite3.OperationalError) database or disk is full"
    assert len(tracking.brief(RuntimeError("x" * 10_000))) < tracking.MAX_ERROR_CHARS + 20


def test_only_a_local_artifact_location_is_repointed_next_to_the_store():
    """A SQLite store's artifacts follow the sweep directory: a `file:` or absolute-path location elsewhere is
    re-pointed next to the database; one already there, or one on an object store (a user's choice), stays."""
    class Sql:
        def __init__(self, location):
            self.location, self.moved = location, []

        def artifact_location(self):
            return self.location

        def relocate_artifacts(self, location):
            self.moved.append(location)

    tracker = tracking.MlflowTracker.__new__(tracking.MlflowTracker)
    tracker.tracking_uri = "sqlite:////sweeps/s/mlflow.db"
    here = "file:///sweeps/s/mlflow-artifacts"
    for old, moved in (("file:///old/s/mlflow-artifacts", [here]), ("/old/s/mlflow-artifacts", [here]),
                       (here, []), ("s3://bucket/mlflow-artifacts", [])):
        tracker.sql = Sql(old)
        tracker._relocate_artifacts()
        assert tracker.sql.moved == moved, old


def test_log_artifacts_uploads_the_files_given_into_the_directory_named_and_nothing_else(tmp_path):
    """`log_artifacts` uploads files; a missing path or a directory (which MLflow's `log_artifact` cannot take as
    a file) is skipped, so that the files after it still land."""
    from types import SimpleNamespace

    calls = []
    tracker = tracking.MlflowTracker.__new__(tracking.MlflowTracker)
    tracker.parent_run_id = "parent"
    tracker.client = SimpleNamespace(log_artifact=lambda run_id, path, directory: calls.append((run_id, path, directory)))
    (tmp_path / "report.html").write_text("<!DOCTYPE html>")
    (tmp_path / "figures").mkdir()
    tracker.log_artifacts([tmp_path / "figures", tmp_path / "missing.png", tmp_path / "report.html"], "tables/paths")
    assert calls == [("parent", str(tmp_path / "report.html"), "tables/paths")]


def test_a_killed_or_failed_sweep_keeps_its_status_on_a_group_run_with_a_failed_task(graph):
    """`GroupRun.status`: only a sweep that FINISHED turns FAILED where one of the kind's tasks failed; a killed
    sweep stays KILLED (it did not run to the end), a failed one FAILED, whatever its tasks did."""
    group = tracking.GroupRun(vocab.MIDPOINT, "run-id")
    group.add(ended(of_kind(graph, vocab.MIDPOINT), vocab.FAILED, error="RuntimeError: boom"))
    assert group.status(vocab.MLFLOW_KILLED) == vocab.MLFLOW_KILLED
    assert group.status(vocab.MLFLOW_FAILED) == vocab.MLFLOW_FAILED
    assert group.status(vocab.MLFLOW_FINISHED) == vocab.MLFLOW_FAILED


def test_a_plain_http_tracking_server_is_browsed_on_its_own_address():
    """A tracking server serves its UI itself, over http:// as over https://: the URL is the server's, not
    `mlflow ui`'s local address (nothing is served there)."""
    assert tracking.browse_url("http://mlflow.internal:5000", "4") == \
        "http://mlflow.internal:5000/#/experiments/4/runs?workflowType=machine_learning"
    assert tracking.ui_command("http://mlflow.internal:5000") is None


def test_a_relative_sqlite_store_keeps_its_artifacts_next_to_it_as_an_absolute_uri(tmp_path, monkeypatch):
    """`sqlite:///rel/mlflow.db` is relative to the working directory; MLflow needs the artifact location as an
    absolute file: URI (a relative path has none), the directory next to the database."""
    monkeypatch.chdir(tmp_path)
    assert tracking.default_artifact_location("sqlite:///rel/mlflow.db") == \
        (tmp_path / "rel" / tracking.ARTIFACTS_DIR).as_uri()
    assert tracking.default_artifact_location("sqlite:////abs/s/mlflow.db") == "file:///abs/s/mlflow-artifacts"
    assert tracking.default_artifact_location("http://127.0.0.1:5000") is None


class RecordingClient:
    """An MlflowClient stand-in that records what a tracker logs (no store)."""

    def __init__(self):
        self.batches, self.texts, self.terminated = [], [], []

    def log_batch(self, run_id, metrics=(), params=()):
        self.batches.append((run_id, list(metrics), list(params)))

    def log_text(self, run_id, text, name):
        self.texts.append((run_id, name, text))

    def set_terminated(self, run_id, status, end_time=None):
        self.terminated.append((run_id, status))


def test_a_group_runs_numbers_are_logged_at_the_step_of_this_invocation(graph):
    """A kind's run holds its counts and means per invocation (step = invocation, as the parent's metrics): a
    rerun's numbers are a new point of each series, not a second value at step 0."""
    tracker = tracking.MlflowTracker.__new__(tracking.MlflowTracker)
    tracker.client, tracker.invocation = RecordingClient(), 3
    group = tracking.GroupRun(vocab.PATH_EVAL, "group-run")
    group.add(ended(of_kind(graph, vocab.PATH_EVAL), metrics={"loss": 2.0}))
    tracker._groups = {vocab.PATH_EVAL: group}
    tracker._finish_groups(vocab.MLFLOW_FINISHED)
    logged = [(m.key, m.value, m.step) for run_id, metrics, _ in tracker.client.batches for m in metrics]
    assert sorted(logged) == [("mean.duration_s", 1.5, 3), ("mean.loss", 2.0, 3), ("tasks_done", 1, 3)]
    assert tracker.client.terminated == [("group-run", vocab.MLFLOW_FINISHED)]


def test_the_parent_runs_note_says_which_child_runs_the_sweep_has(graph, monkeypatch):
    """The note on the parent run (MLflow's description) names the sweep, its version, its spec hash (16 hex
    digits), its task count and whether a child run per task or per kind holds the tasks (decided by
    `MMC_MLFLOW_TASK_RUNS`: at most that many tasks, one each)."""
    run = sweep_run(graph, spec_hash="0123456789abcdef" * 4, version=3)
    monkeypatch.setenv("MMC_MLFLOW_TASK_RUNS", str(len(graph)))
    note = tracking._parent_note(run)
    assert note.startswith(f"Sweep `test-sweep`, spec version 3 (spec hash 0123456789abcdef): {len(graph)} tasks, "
                           "one child run each that this version runs")
    assert "a task an earlier spec version finished keeps its child run under that version's run" in note
    monkeypatch.setenv("MMC_MLFLOW_TASK_RUNS", str(len(graph) - 1))
    assert f"{len(graph)} tasks, one child run per task kind (more than {len(graph) - 1} tasks;" in \
        tracking._parent_note(run)


def test_a_failed_batch_is_said_without_the_credentials_its_error_names(graph, store, caplog):
    """The warning that the SQL path failed goes through `warn`: a credential in the store's error (a database
    URI) never reaches a log record."""
    tracker = tracking.MlflowTracker(store(), "test-sweep")
    tracker.start(sweep_run(graph))

    class Broken:
        def write(self, runs):
            raise RuntimeError("could not connect to postgresql://bob:hunter2secret@db/mlflow")

    tracker.sql = Broken()
    task = next(t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN)
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        tracker.tasks_ended([ended(task)])
    said = [r.getMessage() for r in caplog.records if "batched MLflow logging failed" in r.getMessage()]
    assert len(said) == 1 and "hunter2secret" not in said[0] and "postgresql://***@db/mlflow" in said[0]


def test_failures_that_do_not_come_in_a_row_never_stop_the_logging(graph, store):
    """`FAILURES_IN_A_ROW` counts failures one after another: a child run logged in between starts the count
    again, so a store that fails now and then keeps getting the runs of the tasks that end."""
    tracker = tracking.MlflowTracker(store(), "test-sweep")
    tracker.start(sweep_run(graph))
    tracker.sql = None
    logged, calls = tracker._log_child, []

    def every_other_fails(run):
        calls.append(run.task_id)
        if len(calls) % 2:
            raise OSError("database is locked")
        return logged(run)

    tracker._log_child = every_other_fails
    tasks = [t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL][:4 * tracking.FAILURES_IN_A_ROW]
    ids = [tracker.tasks_ended([ended(t)]) for t in tasks]
    assert not tracker.stopped and len(calls) == len(tasks)
    assert [bool(i) for i in ids] == [n % 2 == 1 for n in range(len(tasks))]


def test_a_child_run_logged_run_by_run_keeps_its_tasks_start_and_end(graph, store):
    """Through the client (no SQL path) a child run starts and ends when its task did, as on the SQL path."""
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    tracker.start(sweep_run(graph))
    tracker.sql = None
    task = next(t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN)
    run = mlflow.MlflowClient(uri).get_run(tracker.tasks_ended([ended(task)])[task.id])
    assert (run.info.start_time, run.info.end_time) == (1_700_000_000_000, 1_700_000_010_000)


def test_a_task_without_an_error_gets_no_error_file_and_no_warning(graph, store, caplog):
    """error.txt is stored for a task that has an error; the others' runs have none, and nothing is said."""
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    tracker.start(sweep_run(graph))
    done, failed = [t for t in graph.tasks.values() if t.kind == vocab.PRETRAIN][:2]
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        ids = tracker.tasks_ended([ended(done), ended(failed, vocab.FAILED, error="OSError: disk full")])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    client = mlflow.MlflowClient(uri)
    assert [a.path for a in client.list_artifacts(ids[done.id])] == []
    assert [a.path for a in client.list_artifacts(ids[failed.id])] == ["error.txt"]


def test_a_param_value_cut_to_mlflows_limit_never_keeps_part_of_a_credential():
    """A value longer than MLflow's limit whose URI credentials straddle the cut: the whole value is redacted
    first and then cut, so no part of the key or secret survives (cut first, `s3://KEY:SECR` has no `@` left
    for redaction to recognise)."""
    uri = "s3://AKIAEXAMPLEKEY:wJalrXUtnFEMIK7MDENGbPxRfiCY@bucket/runs"
    value = "y" * (child_runs.MAX_PARAM_VALUE - 30) + " " + uri      # the cut falls inside the secret
    flat = child_runs.flatten_params({"note": value})
    assert len(flat["note"]) <= child_runs.MAX_PARAM_VALUE
    assert "AKIAEXAMPLEKEY" not in flat["note"] and "wJalrX" not in flat["note"]


def test_brief_marks_an_error_as_cut_only_where_it_was_longer_than_the_limit():
    """An error of exactly `MAX_ERROR_CHARS` characters is shown whole, without "..." (nothing was left out);
    one character more is cut at the limit and marked."""
    exact = "x" * tracking.MAX_ERROR_CHARS
    assert tracking.brief(RuntimeError(exact)) == f"RuntimeError: {exact}"
    assert tracking.brief(RuntimeError(exact + "y")) == f"RuntimeError: {exact}..."


def test_a_long_list_of_revisions_keeps_the_latest_ones_with_this_invocations_last(graph):
    """`mmc.git_revs` past MLflow's tag limit keeps its last `MAX_TAG_VALUE` characters: the latest revisions,
    ending with the one of the invocation that just computed a task (cutting the end off would drop it)."""
    from types import SimpleNamespace

    before = ",".join(f"{i:012x}" for i in range(1000))              # 12,999 characters: past the limit
    assert len(before) > child_runs.MAX_TAG_VALUE
    set_tags = {}
    tracker = tracking.MlflowTracker.__new__(tracking.MlflowTracker)
    tracker.parent_run_id, tracker._run = "parent", sweep_run(graph, git_rev="f" * 12)
    tracker.client = SimpleNamespace(
        get_run=lambda run_id: SimpleNamespace(data=SimpleNamespace(tags={tracking.GIT_REVS_TAG: before})),
        set_tag=lambda run_id, key, value: set_tags.__setitem__(key, value))
    tracker._credit_code()
    revs = set_tags[tracking.GIT_REVS_TAG]
    assert len(revs) <= child_runs.MAX_TAG_VALUE and not revs.startswith(",")
    assert revs.endswith(f",{999:012x},{'f' * 12}") and f"{0:012x}," not in revs
    assert set_tags[tracking.GIT_REV_TAG] == "f" * 12


def test_a_parent_run_of_unknown_code_says_unknown_even_where_no_task_was_computed(graph, store):
    """Without a source revision (no git checkout, no MMC_SOURCE_REVISION) the new parent run's `mmc.git_rev`
    says "unknown" from its creation, not only once a task is computed: an invocation whose tasks all failed
    leaves the tag there too."""
    uri = store()
    tracker = tracking.MlflowTracker(uri, "test-sweep")
    parent = tracker.start(sweep_run(graph, git_rev=None))
    tracker.tasks_ended([ended(of_kind(graph, vocab.PRETRAIN), vocab.FAILED, error="RuntimeError: boom")])
    tracker.finish(vocab.MLFLOW_FAILED)
    assert mlflow.MlflowClient(uri).get_run(parent).data.tags[tracking.GIT_REV_TAG] == "unknown"
