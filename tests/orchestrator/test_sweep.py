"""A whole sweep through `run_sweep` on a local Ray: tables, report, MLflow, the cache on rerun, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import mlflow
import pytest

from orchestrator import sinks
from orchestrator.graph import build_graph
from orchestrator.spec import load_spec
from orchestrator.sweep import run_sweep
from tasks.data import EVAL_SETS
from tests.conftest import REPO, write_spec

# pretrain x2 (no cue, cue), one cue~nocue pair: linear + quadratic (a midpoint) -> 5 tasks
OVERRIDES = {"finetune": {"methods": []},
             "paths": {"pairs": ["cue~nocue"], "kinds": ["linear", "quadratic"]}}
TABLES = ("tasks", "evaluations", "train_curves", "paths", "barriers")


def _snapshot(layout) -> dict[str, int]:
    """mtime (ns) of every file under tasks/ (checkpoints, done.json) and results/."""
    root = Path(layout.storage.local_path(layout.root))
    return {str(p.relative_to(root)): p.stat().st_mtime_ns
            for sub in ("tasks", "results") for p in (root / sub).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def sweep(ray_local, tmp_path_factory):
    """The tiny sweep run twice; what each run saw."""
    directory = tmp_path_factory.mktemp("sweep")
    path = write_spec(directory, "tiny", **OVERRIDES)
    spec = load_spec(path)
    first = run_sweep(spec, spec_text=path.read_text(), num_cpus=2)
    tables = {t: sinks.read_table(first.layout, t) for t in TABLES}
    files = _snapshot(first.layout)
    second = run_sweep(spec, spec_text=path.read_text(), num_cpus=2)
    return {"path": path, "spec": spec, "graph": build_graph(spec), "first": first, "second": second,
            "tables": tables, "files": files}


def _ids(graph, *kinds) -> set[str]:
    return {t for t, task in graph.tasks.items() if task.kind in kinds}


def test_first_run_finishes_every_task(sweep):
    graph, first = sweep["graph"], sweep["first"]
    assert graph.counts() == {"pretrain": 2, "midpoint": 1, "path_eval": 2}
    assert first.ok and first.counts["done"] == len(graph), first.counts


def test_every_table_holds_the_expected_rows(sweep):
    graph, spec, tables = sweep["graph"], sweep["spec"], sweep["tables"]
    tasks = tables["tasks"]
    assert sorted(tasks["task_id"]) == sorted(graph.tasks)
    assert set(tasks["status"]) == {"finished"} and not tasks["cached"].any()
    for row in tasks.itertuples():
        assert row.kind == graph.tasks[row.task_id].kind
        assert list(row.parents) == list(graph.tasks[row.task_id].parents)
        assert row.duration_s > 0 and row.device

    evaluations = tables["evaluations"]
    assert set(evaluations["task_id"]) == _ids(graph, "pretrain")
    assert len(evaluations) == 2 * len(EVAL_SETS)
    assert evaluations["acc"].between(0, 1).all()

    curves = tables["train_curves"]
    assert set(curves["task_id"]) == _ids(graph, "pretrain", "midpoint")
    epochs = {"pretrain": spec.pretrain.epochs, "midpoint": spec.midpoint.epochs}
    assert len(curves) == sum(epochs[graph.tasks[t].kind] for t in _ids(graph, "pretrain", "midpoint"))

    paths = tables["paths"]
    assert set(paths["task_id"]) == _ids(graph, "path_eval")
    assert len(paths) == 2 * spec.paths.num_alphas * len(EVAL_SETS)
    assert set(paths["path_kind"]) == {"linear", "quadratic"} and set(paths["pair_type"]) == {"cue~nocue"}

    barriers = tables["barriers"]
    assert set(barriers["task_id"]) == _ids(graph, "path_eval")
    assert len(barriers) == 2 * len(EVAL_SETS) * 2 * 2        # x metric (loss, acc) x definition
    assert barriers["value"].notna().all()


def test_report_and_checkpoints_exist(sweep):
    layout, graph = sweep["first"].layout, sweep["graph"]
    storage = layout.storage
    assert storage.exists(layout.report_file("summary.parquet"))
    assert storage.exists(layout.report_file("report.html"))
    assert sweep["first"].summary is not None and len(sweep["first"].summary) > 0
    for task_id in _ids(graph, "pretrain", "midpoint"):
        kind = graph.tasks[task_id].kind
        assert all(storage.exists(p) for p in layout.checkpoint_files(kind, task_id).values())


def test_mlflow_holds_one_parent_and_a_child_per_task(sweep):
    layout, graph, spec = sweep["first"].layout, sweep["graph"], sweep["spec"]
    client = mlflow.MlflowClient(tracking_uri=layout.mlflow_uri())
    experiment = client.get_experiment_by_name(spec.name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    children = defaultdict(list)
    for r in runs:
        if "mlflow.parentRunId" in r.data.tags:
            children[r.data.tags["mlflow.parentRunId"]].append(r)
    assert len(parents) >= 2                       # one per invocation (the CLI test adds one)
    assert set(children) <= set(parents) and len(children) == 1   # the rerun computed nothing
    (parent_id, kids), = children.items()
    assert sorted(r.info.run_name for r in kids) == sorted(graph.tasks)
    assert all(r.info.status == "FINISHED" for r in kids)
    assert parents[parent_id].info.status == "FINISHED"
    run_ids = dict(zip(sweep["tables"]["tasks"]["task_id"], sweep["tables"]["tasks"]["mlflow_run_id"]))
    assert {r.info.run_id: r.info.run_name for r in kids} == {v: k for k, v in run_ids.items()}
    path_eval = next(r for r in kids if r.data.tags.get("task_kind") == "path_eval"
                     or r.data.params.get("kind") == "path_eval")
    assert any(k.startswith("barrier.") for k in path_eval.data.metrics)


def test_rerun_recomputes_nothing(sweep):
    graph, second = sweep["graph"], sweep["second"]
    assert second.ok and second.counts["cached"] == len(graph) and second.counts["done"] == 0, second.counts
    assert _snapshot(second.layout) == sweep["files"]        # no file rewritten, none added
    for table in TABLES:
        again = sinks.read_table(second.layout, table)
        assert len(again) == len(sweep["tables"][table]), table
    assert sinks.read_table(second.layout, "tasks")["task_id"].is_unique


def _cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def test_cli_plan_prints_the_counts(sweep):
    out = _cli("plan", str(sweep["path"]))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"{len(sweep['graph'])} tasks"
    for kind, n in sweep["graph"].counts().items():
        assert any(line.split()[:2] == [kind, str(n)] for line in lines), (kind, out.stdout)
    assert "nothing was run" in out.stdout


def test_cli_run_of_a_finished_sweep_exits_0(sweep, ray_local):
    # a second driver on the module's Ray (starting another Ray would cost ~15 s)
    address = ray_local.get_runtime_context().gcs_address
    out = _cli("run", str(sweep["path"]), "--address", address, "--no-report")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    n = len(sweep["graph"])
    assert f"{n} already finished, 0 to run" in out.stdout
    assert _snapshot(sweep["first"].layout) == sweep["files"]
