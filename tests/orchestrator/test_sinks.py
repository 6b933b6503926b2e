"""Parquet fragments (schemas, atomic idempotent writes, corrupt fragments) and the MLflow sink."""

from __future__ import annotations

import datetime as dt
import math
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from orchestrator import sinks
from orchestrator.layout import Storage, SweepLayout

EVAL_SETS = ("nocue", "cue", "randcue", "randimg")
ALPHAS = [i / 10 for i in range(11)]
SEEDS = (0, 1, 2)
# (pair_type, path_kind, alignment, cue_proportion, height of the loss bump)
PAIRS = (
    ("cue~nocue", "linear", None, 0.8, 2.0),
    ("cue~nocue", "quadratic", None, 0.8, 0.2),
    ("cue~nocue", "aligned", "activation", 0.8, 1.2),
    ("cue~cue", "linear", None, 0.8, 0.1),
    ("pretrained~ft:naive", "linear", None, 0.8, 0.05),
    ("pretrained~ft:cbft", "linear", None, 0.8, 1.5),
)
METHODS = ("naive", "cbft")


def _barrier_rows(path_rows: list[dict]) -> list[dict]:
    """Chord and mean-endpoint barriers of loss (and accuracy drop), computed directly."""
    out = []
    for eval_set in EVAL_SETS:
        rows = sorted((r for r in path_rows if r["eval_set"] == eval_set), key=lambda r: r["alpha"])
        a = np.array([r["alpha"] for r in rows])
        for metric, sign in (("loss", 1.0), ("acc", -1.0)):
            v = sign * np.array([r[metric] for r in rows])
            chord = np.max(v - ((1 - a) * v[0] + a * v[-1]))
            mean_end = np.max(v) - 0.5 * (v[0] + v[-1])
            for definition, value in (("chord", chord), ("mean_endpoints", mean_end)):
                out.append({"eval_set": eval_set, "metric": metric, "definition": definition,
                            "value": float(value)})
    return out


def synthetic_sweep(seed: int = 0) -> dict[str, dict[str, list[dict]]]:
    """Result rows shaped like a real sweep: table -> task_id -> rows.
    3 seeds; pretrain at cue proportion 0 and 0.8; naive and cbft fine-tuning; 6 pair/path
    combinations; 11 alphas; 4 eval sets."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    tables: dict[str, dict[str, list[dict]]] = {t: {} for t in sinks.SCHEMAS}
    n_task = 0

    def task_row(task_id, kind, **labels):
        nonlocal n_task
        start = t0 + dt.timedelta(seconds=10 * n_task)
        n_task += 1
        return {"task_id": task_id, "kind": kind, "status": "done", "parents": [],
                "spec_hash": "abc123", "dataset": "digits", "model": "small_cnn",
                "started_at": start, "finished_at": start + dt.timedelta(seconds=7.5),
                "duration_s": 7.5, "device": "cpu", "git_rev": "deadbeef",
                "torch_version": "2.13.0", "cached": False, **labels}

    for p in (0.0, 0.8):
        for s in SEEDS:
            tid = f"pretrain-p{p}-s{s}"
            labels = {"cue_proportion": p, "seed": s}
            tables["tasks"][tid] = [task_row(tid, "pretrain", **labels)]
            accs = {"nocue": 0.8, "cue": 0.95, "randcue": 0.8, "randimg": 0.1} if p == 0 else \
                   {"nocue": 0.7, "cue": 0.99, "randcue": 0.1, "randimg": 0.95}
            tables["evaluations"][tid] = [
                {"kind": "pretrain", "dataset": "digits", "model": "small_cnn", **labels,
                 "eval_set": e, "loss": float(rng.uniform(0.1, 2)),
                 "acc": float(np.clip(a + rng.normal(0, 0.02), 0, 1)), "n": 397}
                for e, a in accs.items()]
            tables["train_curves"][tid] = [
                {"kind": "pretrain", "epoch": ep, "split": "train", "loss": 2.0 / (ep + 1),
                 "acc": 1 - 1 / (ep + 2), "lr": 0.05} for ep in range(5)]
    for method in METHODS:
        for s in SEEDS:
            tid = f"finetune-{method}-s{s}"
            labels = {"cue_proportion": 0.8, "seed": s, "method": method}
            tables["tasks"][tid] = [task_row(tid, "finetune", parents=[f"pretrain-p0.8-s{s}"],
                                             **labels)]
            tables["evaluations"][tid] = [
                {"kind": "finetune", "dataset": "digits", "model": "small_cnn", **labels,
                 "eval_set": e, "loss": float(rng.uniform(0.1, 2)),
                 "acc": float(rng.uniform(0.1, 0.9)), "n": 397} for e in EVAL_SETS]
    for pair_type, path_kind, alignment, p, bump in PAIRS:
        for s in SEEDS:
            tid = re.sub(r"[^A-Za-z0-9.]+", "_", f"path_eval-{pair_type}-{path_kind}-{alignment}-s{s}")
            labels = {"pair_type": pair_type, "path_kind": path_kind, "alignment": alignment,
                      "cue_proportion": p, "seed": s, "endpoint_a": f"a{s}", "endpoint_b": f"b{s}"}
            tables["tasks"][tid] = [task_row(tid, "path_eval", **labels)]
            rows = []
            for e in EVAL_SETS:
                for a in ALPHAS:
                    h = bump * math.sin(math.pi * a) * (1 + 0.2 * rng.normal())
                    rows.append({**labels, "dataset": "digits", "model": "small_cnn", "alpha": a,
                                 "eval_set": e, "loss": 0.3 + h, "acc": float(np.clip(0.9 - 0.3 * h, 0, 1))})
            tables["paths"][tid] = rows
            tables["barriers"][tid] = [{**labels, "dataset": "digits", "model": "small_cnn", **b}
                                       for b in _barrier_rows(rows)]
    return tables


def write_sweep(layout, tables: dict[str, dict[str, list[dict]]]) -> None:
    for table, by_task in tables.items():
        for task_id, rows in by_task.items():
            sinks.write_fragment(layout, table, task_id, rows)


@pytest.fixture()
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "store")), "test-sweep")


def test_roundtrip_every_table(layout):
    tables = synthetic_sweep()
    write_sweep(layout, tables)
    for table, by_task in tables.items():
        df = sinks.read_table(layout, table)
        expected = [dict(r, task_id=t) for t, rows in by_task.items() for r in rows]
        assert list(df.columns) == sinks.SCHEMAS[table].names
        assert len(df) == len(expected)
        assert set(df["task_id"]) == set(by_task)
        for t in by_task:
            assert sinks.verify_fragment(layout, table, t)
    paths = sinks.read_table(layout, "paths")
    want = sum(r["loss"] for rows in tables["paths"].values() for r in rows)
    assert paths["loss"].sum() == pytest.approx(want)
    assert len(paths) == 3 * len(PAIRS) * 11 * 4
    assert paths["alignment"].isna().sum() == 3 * 5 * 11 * 4  # None survives as null
    one = sinks.read_fragment(layout, "barriers", next(iter(tables["barriers"])))
    assert len(one) == 4 * 2 * 2 and list(one.columns) == sinks.SCHEMAS["barriers"].names
    tasks = sinks.read_table(layout, "tasks")
    assert str(tasks["started_at"].dt.tz) == "UTC"
    assert tasks.set_index("task_id").loc["finetune-naive-s1", "parents"].tolist() == ["pretrain-p0.8-s1"]


def test_rewrite_replaces_fragment(layout):
    rows = [{"eval_set": e, "loss": 1.0, "acc": 0.5, "n": 10} for e in EVAL_SETS]
    sinks.write_fragment(layout, "evaluations", "t1", rows)
    sinks.write_fragment(layout, "evaluations", "t2", rows)
    sinks.write_fragment(layout, "evaluations", "t1", rows)
    assert len(sinks.read_table(layout, "evaluations")) == 8
    sinks.write_fragment(layout, "evaluations", "t1", [dict(r, acc=0.9) for r in rows[:2]])
    df = sinks.read_table(layout, "evaluations")
    assert len(df) == 6
    assert df[df["task_id"] == "t1"]["acc"].tolist() == [0.9, 0.9]
    leftovers = [n for n in layout.storage.listdir(layout.table_dir("evaluations"))
                 if not n.rstrip("/").endswith(".parquet")]
    assert leftovers == []  # no temporary files left behind


def test_truncated_fragment_is_detected_and_skipped(layout):
    rows = [{"epoch": i, "split": "train", "loss": 1.0 / (i + 1)} for i in range(50)]
    for t in ("good", "bad"):
        sinks.write_fragment(layout, "train_curves", t, rows)
    path = layout.fragment("train_curves", "bad")
    data = layout.storage.read_bytes(path)
    layout.storage.write_bytes(path, data[: len(data) // 2])
    assert sinks.verify_fragment(layout, "train_curves", "good")
    assert not sinks.verify_fragment(layout, "train_curves", "bad")
    assert not sinks.verify_fragment(layout, "train_curves", "never-written")
    with pytest.warns(RuntimeWarning, match="bad.parquet"):
        df = sinks.read_table(layout, "train_curves")
    assert set(df["task_id"]) == {"good"} and len(df) == 50


def test_fragment_of_another_task_fails_verification(layout):
    sinks.write_fragment(layout, "evaluations", "t1",
                         [{"eval_set": "cue", "loss": 1.0, "acc": 0.5, "n": 3}])
    layout.storage.write_bytes(layout.fragment("evaluations", "t2"),
                               layout.storage.read_bytes(layout.fragment("evaluations", "t1")))
    assert not sinks.verify_fragment(layout, "evaluations", "t2")


def test_empty_table_has_schema_columns(layout):
    for table, schema in sinks.SCHEMAS.items():
        df = sinks.read_table(layout, table)
        assert df.empty and list(df.columns) == schema.names


@pytest.mark.parametrize("row, column, message", [
    ({"eval_set": "cue", "loss": "high", "acc": 0.5, "n": 3}, "loss", "row 1: value 'high'"),
    ({"eval_set": "cue", "los": 1.0, "acc": 0.5, "n": 3}, "los", "did you mean `loss`"),
    ({"eval_set": "cue", "acc": 0.5, "n": 3}, "loss", "required"),
    ({"eval_set": None, "loss": 1.0, "acc": 0.5, "n": 3}, "eval_set", "required"),
    ({"eval_set": "cue", "loss": 1.0, "acc": 0.5, "n": 3, "kind": "pretrian"}, "kind", "allowed: pretrain"),
    ({"eval_set": "cue", "loss": 1.0, "acc": 0.5, "n": 3, "task_id": "other"}, "task_id", "differs"),
])
def test_schema_errors_name_the_column(layout, row, column, message):
    good = {"eval_set": "nocue", "loss": 1.0, "acc": 0.5, "n": 3}
    with pytest.raises(sinks.SchemaError, match=f"`evaluations.{column}`") as info:
        sinks.write_fragment(layout, "evaluations", "t1", [good, row])
    assert message in str(info.value)
    assert info.value.column == column
    assert not layout.storage.exists(layout.fragment("evaluations", "t1"))


def test_unknown_table_lists_the_tables(layout):
    with pytest.raises(ValueError, match="allowed: tasks, evaluations"):
        sinks.write_fragment(layout, "evals", "t1", [])


def test_timestamps_accept_epoch_seconds_and_iso(layout):
    rows = [{"kind": "pretrain", "status": "done", "started_at": 1_700_000_000.5,
             "finished_at": "2023-11-14T22:13:30+00:00"}]
    sinks.write_fragment(layout, "tasks", "t1", rows)
    df = sinks.read_table(layout, "tasks")
    assert df["started_at"][0] == pd.Timestamp(1_700_000_000.5, unit="s", tz="UTC")
    assert df["finished_at"][0] == pd.Timestamp("2023-11-14T22:13:30Z")


# ----------------------------------------------------------------------------------------------
# MLflow
# ----------------------------------------------------------------------------------------------

def test_mlflow_parent_children_metrics_and_secrets(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sink = sinks.MlflowSink(uri, "test-sweep")
    parent = sink.start_parent(params={"sweep": "test", "api_token": "xyz"},
                               tags={"spec_hash": "abc", "db_password": "hunter2"})
    artifact = tmp_path / "curve.txt"
    artifact.write_text("hello")
    params = {"train": {"lr": 0.05, "epochs": 3, "secret_key": "s"}, "models": ["a", "b"],
              "long": "x" * 10_000, "aws_credentials": {"id": "k"}}
    child_ok = sink.log_task(parent, "pretrain", "pretrain-123", params=params,
                             metrics={"eval/nocue/acc": 0.9, "my_secret": 1.0},
                             curves=[("train/loss", ep, 1.0 / (ep + 1)) for ep in range(4)],
                             artifacts=[str(artifact)])
    child_bad = sink.log_task(parent, "finetune", "finetune-456", params={"method": "cbft"},
                              status="FAILED", error="Traceback ...\nRuntimeError: boom")
    with ThreadPoolExecutor(4) as pool:  # explicit run ids: safe from several threads
        threaded = list(pool.map(lambda i: sink.log_task(parent, "path_eval", f"path_eval-{i}",
                                                         metrics={"barrier": i}), range(6)))
    sink.finish_parent(parent, "FINISHED", metrics={"tasks_finished": 1}, artifacts=[str(artifact)])

    client = sink.client
    children = client.search_runs([sink.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert {r.info.run_id for r in children} == {child_ok, child_bad, *threaded}
    assert sorted(client.get_run(r).data.metrics["barrier"] for r in threaded) == list(range(6))
    ok, bad, par = (client.get_run(r) for r in (child_ok, child_bad, parent))
    assert ok.info.run_name == "pretrain-123" and ok.info.status == "FINISHED"
    assert bad.info.status == "FAILED" and "boom" in bad.data.tags["error"]
    assert par.info.status == "FINISHED" and par.data.metrics["tasks_finished"] == 1
    assert ok.data.params["train.lr"] == "0.05" and ok.data.params["models"] == '["a", "b"]'
    assert len(ok.data.params["long"]) == sinks.MAX_PARAM_VALUE
    history = client.get_metric_history(child_ok, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(ep, 1.0 / (ep + 1)) for ep in range(4)]
    assert ok.data.metrics["eval/nocue/acc"] == pytest.approx(0.9)
    everything = [*ok.data.params, *ok.data.metrics, *par.data.params, *par.data.tags]
    assert not [k for k in everything if sinks.is_secret(k)]
    assert "db_password" not in par.data.tags and "api_token" not in par.data.params
    assert [a.path for a in client.list_artifacts(child_ok)] == ["curve.txt"]
    assert [a.path for a in client.list_artifacts(parent)] == ["curve.txt"]
    assert "error.txt" in [a.path for a in client.list_artifacts(child_bad)]
    assert (tmp_path / "mlflow-artifacts").is_dir()  # artifacts stay next to the database
    # a second sink on the same store finds the experiment again
    assert sinks.MlflowSink(uri, "test-sweep").experiment_id == sink.experiment_id
    with pytest.raises(ValueError, match="allowed: FINISHED, FAILED"):
        sink.log_task(parent, "pretrain", "x", status="DONE")


def test_flatten_params_drops_secrets_and_truncates():
    flat = sinks.flatten_params({"a": {"b": {"c": 1}}, "Password": "p", "k" * 300: "v",
                                 "x": None})
    assert flat["a.b.c"] == "1" and flat["x"] == "None"
    assert "Password" not in flat
    assert ("k" * sinks.MAX_PARAM_KEY) in flat
