"""The SQL fast path (`orchestrator.run.tracking_sql`) leaves, row for row, what MLflow's client leaves for the same
child runs: runs (times, status, user, artifact URI), tags, params, metric history, latest metrics, the
experiment's datasets and the runs' dataset inputs. Both write into one SQLite store (two experiments), read
back with sqlite3; and the relocation of an experiment's artifacts re-points its runs, and no other's."""
from __future__ import annotations

import sqlite3

import pytest

from orchestrator import vocab
from orchestrator.run import child_runs, tracking, tracking_sql
from orchestrator.run.child_runs import ChildRun, DatasetRef
from tests.orchestrator.run.test_tracking import new_store

CUE = DatasetRef("digits cue p=0.8", "0123456789abcdef", '{"dataset": "digits", "cue_proportion": 0.8}',
                 '{"cue_proportion": 0.8}')
NOCUE = DatasetRef("digits nocue", "fedcba9876543210", '{"dataset": "digits", "cue_proportion": 0.0}',
                   '{"cue_proportion": 0.0}')


def child(task_id: str, status: str = vocab.MLFLOW_FINISHED, metrics=(), datasets=(), error=None) -> ChildRun:
    tags = child_runs.clean_tags({child_runs.PARENT_TAG: "0" * 32, child_runs.RUN_NAME_TAG: f"run of {task_id}",
                                  "task_id": task_id, "task_kind": "pretrain", child_runs.USER_TAG: "alice",
                                  "error": error})
    return ChildRun(task_id, f"run of {task_id}", tags, {"kind": "pretrain", "task_id": task_id, "lr": "0.05"},
                    tuple(metrics), status, 1_700_000_000_000, 1_700_000_010_000, error, tuple(datasets))


@pytest.fixture
def store(tmp_path_factory, tmp_path):
    """`store()`: the URI of a new MLflow store in tmp_path (a copy of one migrated once: test_tracking.new_store)."""
    return lambda: new_store(tmp_path_factory, tmp_path)


RUNS = [
    child("pretrain-a", metrics=[("eval.cue.acc", 0.9, 0), ("train_loss", 1.0, 0), ("train_loss", 0.5, 1),
                                 ("train_loss", 0.75, 2),                      # the latest: the highest step
                                 ("tie", 1.0, 3), ("tie", 2.0, 3), ("tie", 1.5, 3),   # one step: the largest
                                 ("diverged", float("nan"), 0), ("duration_s", 1.5, 0)],
          datasets=[CUE]),
    child("midpoint-b", vocab.MLFLOW_FAILED, metrics=[("duration_s", 0.5, 0)], datasets=[CUE, NOCUE],
          error="RuntimeError: boom"),
    child("path-c", metrics=[("path.cue.loss", 0.3, 0), ("path.cue.loss", 0.4, 500), ("path.cue.loss", 0.2, 1000)]),
]


def rows(db: str, experiment_id: str) -> dict:
    """The experiment's rows of every table the writer fills, run ids replaced by task ids, uuids by what they
    name, and the metrics' timestamps (when each was logged) left out."""
    con = sqlite3.connect(db)
    q = lambda sql, *args: con.execute(sql, args).fetchall()   # noqa: E731
    location = q("select artifact_location from experiments where experiment_id = ?", experiment_id)[0][0]
    runs = {r[0]: r for r in q("select run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                                "start_time, end_time, source_version, lifecycle_stage, artifact_uri, deleted_time "
                                "from runs where experiment_id = ?", experiment_id)}
    task = {run_id: dict(q("select key, value from tags where run_uuid = ?", run_id))["task_id"] for run_id in runs}
    datasets = {r[0]: r[1:] for r in q("select dataset_uuid, name, digest, dataset_source_type, dataset_source, "
                                       "dataset_schema, dataset_profile from datasets where experiment_id = ?",
                                       experiment_id)}
    inputs = {r[0]: (datasets.get(r[2], ("not of this experiment", r[2]))[:2], task.get(r[4]), r[1], r[3], r[5])
              for r in q("select input_uuid, source_type, source_id, destination_type, destination_id, step from inputs")
              if r[4] in runs}
    out = {"runs": sorted((task[i], *r[1:11], r[11].replace(location, "<location>").replace(i, "<run>"), r[12])
                          for i, r in runs.items()),
           "datasets": sorted(datasets.values()),
           "inputs": sorted(inputs.values()),
           "input_tags": sorted((inputs[r[0]][:2], r[1], r[2]) for r in q("select input_uuid, name, value from input_tags")
                                if r[0] in inputs)}
    for table, columns in (("tags", "key, value"), ("params", "key, value"), ("metrics", "key, value, step, is_nan"),
                           ("latest_metrics", "key, value, step, is_nan")):
        out[table] = sorted((task[r[0]], *r[1:]) for r in q(f"select run_uuid, {columns} from {table}") if r[0] in runs)
    con.close()
    return out


def test_the_sql_path_leaves_the_rows_mlflows_client_leaves(store, tmp_path):
    """The same child runs through `MlflowTracker._log_child` (MLflow's client, one call per table) and through
    `SqlRunWriter.write` (one transaction) are the same rows; the client's are written first, so the SQL path
    must also create its own experiment's datasets rather than take another experiment's."""
    uri = store()
    by_client = tracking.MlflowTracker(uri, "by-client")
    by_sql = tracking.MlflowTracker(uri, "by-sql")
    assert by_sql.sql is not None
    client_ids = {run.task_id: by_client._log_child(run) for run in RUNS}
    sql_ids = by_sql.sql.write(RUNS)
    assert sorted(sql_ids) == sorted(client_ids) and len(set(sql_ids.values())) == len(RUNS)
    db = str(tmp_path / "mlflow.db")
    want, got = rows(db, by_client.experiment_id), rows(db, by_sql.experiment_id)
    assert want["runs"] and want["inputs"] and want["latest_metrics"]          # the comparison compares something
    for table in want:
        assert got[table] == want[table], table
    latest = {(t, k): (v, s) for t, k, v, s, _ in got["latest_metrics"]}
    assert latest["pretrain-a", "train_loss"] == (0.75, 2) and latest["pretrain-a", "tie"] == (2.0, 3)
    assert latest["path-c", "path.cue.loss"] == (0.2, 1000)
    run = {r[0]: r for r in got["runs"]}["midpoint-b"]
    assert run[6:9] == ("FAILED", 1_700_000_000_000, 1_700_000_010_000)       # status, start and end as given
    again = by_sql.sql.write([RUNS[1]])                                        # a later batch: the datasets once
    rerun = tracking_sql.SqlRunWriter(by_sql.sql.store, by_sql.experiment_id).write([RUNS[1]])   # a later invocation
    assert len(rows(db, by_sql.experiment_id)["datasets"]) == 2 and len(again) == len(rerun) == 1


def test_relocating_an_experiments_artifacts_repoints_its_runs_and_no_others(store, tmp_path):
    """`relocate_artifacts(new)`: the experiment's location and each of its runs' `<old>/<run id>/artifacts`
    become `<new>/<run id>/artifacts`; the runs of another experiment of the store keep theirs."""
    uri = store()
    keep, move = tracking.MlflowTracker(uri, "keep"), tracking.MlflowTracker(uri, "move")
    kept, moved = keep.sql.write(RUNS[:1]), move.sql.write(RUNS[:2])
    old = move.sql.artifact_location()
    assert old == keep.sql.artifact_location()                     # both next to the database: one prefix
    new = (tmp_path / "elsewhere" / "mlflow-artifacts").as_uri()
    assert move.sql.relocate_artifacts(new) == old
    assert move.sql.artifact_location() == new and keep.sql.artifact_location() == old
    con = sqlite3.connect(str(tmp_path / "mlflow.db"))
    uris = dict(con.execute("select run_uuid, artifact_uri from runs").fetchall())
    con.close()
    for run_id in moved.values():
        assert uris[run_id] == f"{new}/{run_id}/artifacts"
    for run_id in kept.values():
        assert uris[run_id] == f"{old}/{run_id}/artifacts"
    assert move.sql.relocate_artifacts(new) is None                # already there: nothing to do
