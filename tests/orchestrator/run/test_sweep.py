"""A whole sweep through `run_sweep` on a local Ray: tables (labels and settings on every row), the
resolved spec and the plan written once, report, MLflow, the cache on rerun, a changed spec refused
or made a new version, the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import mlflow
import pytest

from orchestrator import vocab
from orchestrator.results import plan, tables
from orchestrator.errors import SweepError
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import dump_spec, load_spec
from orchestrator.run.sweep import run_sweep
from tasks.data import EVAL_SETS
from tests.conftest import REPO, clean_env, write_spec

# pretrain x2 (no cue, cue), one cue~nocue pair: linear + quadratic (a midpoint) -> 5 tasks
OVERRIDES = {"finetune": {"methods": []},
             "paths": {"pairs": ["cue~nocue"], "kinds": ["linear", "quadratic"]}}


def _snapshot(layout) -> dict[str, int]:
    """mtime (ns) of every file under tasks/ (checkpoints, done.json) and results/."""
    root = Path(layout.storage.local_path(layout.root))
    return {str(p.relative_to(root)): p.stat().st_mtime_ns
            for sub in ("tasks", "results") for p in (root / sub).rglob("*") if p.is_file()}


def _mlflow_runs(layout, name: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=layout.mlflow_uri())
    experiment = client.get_experiment_by_name(name)
    return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=1000)


@pytest.fixture(scope="module")
def sweep(ray_local, tmp_path_factory):
    """The tiny sweep run twice; what each run saw, captured before any test touches the directory."""
    directory = tmp_path_factory.mktemp("sweep")
    path = write_spec(directory, "tiny", **OVERRIDES)
    spec = load_spec(path)
    first = run_sweep(spec, num_cpus=2)
    tables_first = {t: tables.read_table(first.layout, t) for t in vocab.TABLES}
    files = _snapshot(first.layout)
    second = run_sweep(spec, num_cpus=2)
    return {"path": path, "spec": spec, "graph": build_graph(spec), "first": first, "second": second,
            "tables": tables_first, "files": files, "files_after_rerun": _snapshot(second.layout),
            "tables_after_rerun": {t: tables.read_table(second.layout, t) for t in vocab.TABLES},
            "runs": _mlflow_runs(first.layout, spec.name), "directory": directory}


def _ids(graph, *kinds) -> set[str]:
    return {t for t, task in graph.tasks.items() if task.kind in kinds}


def test_first_run_finishes_every_task(sweep):
    graph, first = sweep["graph"], sweep["first"]
    assert graph.counts() == {"pretrain": 2, "midpoint": 1, "path_eval": 2}
    assert first.ok and first.counts[vocab.DONE] == len(graph), first.counts


def test_every_table_holds_the_expected_rows(sweep):
    graph, spec, result = sweep["graph"], sweep["spec"], sweep["tables"]
    v = spec.variants[0]
    tasks = result["tasks"]
    assert sorted(tasks["task_id"]) == sorted(graph.tasks)
    assert set(tasks["status"]) == {vocab.FINISHED} and not tasks["cached"].any()
    for row in tasks.itertuples():
        assert row.kind == graph.tasks[row.task_id].kind
        assert list(row.parents) == list(graph.tasks[row.task_id].parents)
        assert row.duration_s > 0 and row.device

    evaluations = result["evaluations"]
    assert set(evaluations["task_id"]) == _ids(graph, "pretrain")
    assert len(evaluations) == 2 * len(EVAL_SETS)
    assert evaluations["acc"].between(0, 1).all()

    curves = result["train_curves"]
    assert set(curves["task_id"]) == _ids(graph, "pretrain", "midpoint")
    epochs = {"pretrain": v.pretrain.epochs, "midpoint": v.midpoint.epochs}
    assert len(curves) == sum(epochs[graph.tasks[t].kind] for t in _ids(graph, "pretrain", "midpoint"))

    paths = result["paths"]
    assert set(paths["task_id"]) == _ids(graph, "path_eval")
    assert len(paths) == 2 * v.paths.num_alphas * len(EVAL_SETS)
    assert set(paths["path_kind"]) == {"linear", "quadratic"} and set(paths["pair_type"]) == {"cue~nocue"}
    assert set(paths["pair_design"]) == {"independent"}

    barriers = result["barriers"]
    assert set(barriers["task_id"]) == _ids(graph, "path_eval")
    assert len(barriers) == 2 * len(EVAL_SETS) * 2 * len(vocab.DEFINITIONS)   # x metric (loss, acc) x definition
    assert barriers["value"].notna().all()


def test_rows_carry_their_task_labels_and_resolved_settings(sweep):
    graph, spec, result = sweep["graph"], sweep["spec"], sweep["tables"]
    v = spec.variants[0]
    for table in ("evaluations", "train_curves", "paths", "barriers"):
        for row in result[table].to_dict("records"):
            task = graph.tasks[row["task_id"]]
            assert row["seed"] == task.labels["seed"] and row["cue_proportion"] == task.labels["cue_proportion"]
            for key, value in task.settings.items():
                if key in row:
                    assert row[key] == value, (table, key)
            assert row["pretrain.epochs"] == v.pretrain.epochs and row["model.width"] == 8, table
    barriers = result["barriers"]
    assert (barriers["paths.num_alphas"] == v.paths.num_alphas).all()
    assert barriers["midpoint.epochs"].isna().sum() == len(barriers) // 2     # only the quadratic path has one
    for row in barriers.to_dict("records"):
        a, b = graph.tasks[row["endpoint_a"]], graph.tasks[row["endpoint_b"]]
        assert (row["init_seed_a"], row["init_seed_b"]) == (a.labels["init_seed"], b.labels["init_seed"])


def test_the_resolved_spec_and_the_plan_are_written_once(sweep):
    layout, spec, graph = sweep["first"].layout, sweep["spec"], sweep["graph"]
    assert layout.storage.read_text(layout.spec_file()) == dump_spec(spec)
    stored = plan.read_plan(layout)
    assert list(stored["task_id"]) == list(graph.tasks)
    assert not layout.storage.exists(layout.spec_version_file(1))


def test_report_and_checkpoints_exist(sweep):
    layout, graph = sweep["first"].layout, sweep["graph"]
    storage = layout.storage
    assert storage.exists(layout.report_file("summary.parquet"))
    assert storage.exists(layout.report_file("report.html"))
    assert sweep["first"].summary is not None and len(sweep["first"].summary) > 0
    for task_id in _ids(graph, "pretrain", "midpoint"):
        kind = graph.tasks[task_id].kind
        assert all(storage.is_file(p) for p in layout.checkpoint_files(kind, task_id).values())
        assert not storage.exists(layout.resume_dir(kind, task_id))        # dropped once finished


def test_mlflow_holds_one_parent_per_version_and_a_child_per_computed_task(sweep):
    graph, runs, spec = sweep["graph"], sweep["runs"], sweep["spec"]
    parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    children = defaultdict(list)
    for r in runs:
        if "mlflow.parentRunId" in r.data.tags:
            children[r.data.tags["mlflow.parentRunId"]].append(r)
    (parent,) = parents.values()                                   # the rerun continued the version's run
    assert parent.info.run_name == f"{spec.name} v1" and parent.info.status == "FINISHED"
    assert parent.data.tags["mmc.invocations"] == "2" and parent.data.tags["mlflow.source.name"] == spec.source
    assert set(children) == {parent.info.run_id}                   # the rerun computed nothing
    kids = children[parent.info.run_id]
    assert sorted(r.data.tags["task_id"] for r in kids) == sorted(graph.tasks)
    cue = max(t.labels["cue_proportion"] for t in graph.tasks.values())
    assert {r.info.run_name for r in kids} == {f"pretrain cue p={cue:g} seed 0", "pretrain nocue seed 0",
                                               "midpoint cue~nocue seed 0", "path linear cue~nocue seed 0",
                                               "path quadratic cue~nocue seed 0"}
    assert all(r.info.status == "FINISHED" for r in kids)
    run_ids = dict(zip(sweep["tables"]["tasks"]["task_id"], sweep["tables"]["tasks"]["mlflow_run_id"]))
    assert {r.info.run_id: r.data.tags["task_id"] for r in kids} == {v: k for k, v in run_ids.items()}
    path_eval = next(r for r in kids if r.data.tags.get("task_kind") == "path_eval")
    assert any(k.startswith("barrier.") for k in path_eval.data.metrics)
    assert path_eval.data.params["paths.num_alphas"] == "3" and path_eval.data.params["pair_type"] == "cue~nocue"
    client = mlflow.MlflowClient(tracking_uri=sweep["first"].layout.mlflow_uri())
    steps = {m.step for m in client.get_metric_history(path_eval.info.run_id, "path.cue.loss")}
    assert steps == {0, 500, 1000}                                  # 3 alphas, against 1000·α
    pretrain = next(r for r in kids if r.data.tags.get("task_kind") == "pretrain")
    assert "train_loss" in pretrain.data.metrics and not [k for k in pretrain.data.metrics if "train_train" in k]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"spec.yaml", "report.html"}


def test_rerun_recomputes_nothing(sweep):
    graph, second = sweep["graph"], sweep["second"]
    assert second.ok and second.counts[vocab.CACHED] == len(graph) and second.counts[vocab.DONE] == 0, second.counts
    assert sweep["files_after_rerun"] == sweep["files"]        # no file rewritten, none added
    for table in vocab.TABLES:
        assert len(sweep["tables_after_rerun"][table]) == len(sweep["tables"][table]), table
    assert sweep["tables_after_rerun"]["tasks"]["task_id"].is_unique


def _copy(sweep, name: str):
    """A copy of the finished sweep directory (tests that change it must not change the shared one)."""
    source = Path(sweep["first"].layout.storage.root)
    target = sweep["directory"] / name
    shutil.copytree(source, target)
    return sweep["spec"].with_top(storage=str(target))


def test_a_changed_setting_is_refused_and_a_new_version_reuses_what_did_not_change(sweep, ray_local):
    spec = _copy(sweep, "versions")
    changed = load_spec(sweep["path"], ["paths.num_alphas=2"]).with_top(storage=spec.storage)
    layout = SweepLayout(Storage(spec.storage), spec.name)
    before = _snapshot(layout)
    with pytest.raises(SweepError, match=r"paths.num_alphas: 3 -> 2[\s\S]*--new-version"):
        run_sweep(changed, num_cpus=2, report=False)
    assert _snapshot(layout) == before
    logged = []
    outcome = run_sweep(changed, num_cpus=2, report=False, new_version=True, log=logged.append)
    assert outcome.ok and outcome.counts[vocab.DONE] == 2 and outcome.counts[vocab.CACHED] == 3, outcome.counts
    archived = layout.spec_version_file(1)
    assert any(f"the previous spec is kept as {archived}" in line for line in logged), logged
    assert layout.storage.read_text(archived) == dump_spec(sweep["spec"])
    assert layout.storage.read_text(layout.spec_file()) == dump_spec(changed)
    paths = tables.read_table(layout, "paths")
    new_ids = {t.id for t in build_graph(changed).tasks.values() if t.kind == "path_eval"}
    assert set(paths[paths["task_id"].isin(new_ids)]["alpha"]) == {0.0, 1.0}


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=REPO, env=clean_env(), timeout=timeout)


def test_cli_plan_prints_the_counts(sweep):
    out = _cli("plan", str(sweep["path"]))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"{len(sweep['graph'])} tasks"
    for kind, n in sweep["graph"].counts().items():
        assert any(line.split()[:2] == [kind, str(n)] for line in lines), (kind, out.stdout)
    assert "nothing was run" in out.stdout


def test_cli_run_of_a_finished_sweep_exits_0_without_starting_ray(sweep):
    spec = _copy(sweep, "cli")
    layout = SweepLayout(Storage(spec.storage), spec.name)
    before = _snapshot(layout)
    out = _cli("run", str(sweep["path"]), "--storage", spec.storage, "--no-report")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    n = len(sweep["graph"])
    assert f"{n} already finished, 0 to run" in out.stdout
    assert "Started a local Ray instance" not in out.stdout + out.stderr
    assert _snapshot(layout) == before


def _files(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_copied_sweep_directory_reruns_reports_and_uploads_its_report_into_itself(sweep):
    """MLflow records an absolute artifact location: a copy of a sweep directory must log into itself, not
    into the original (still there), and must work once the original is gone (a sweep brought back from a
    cluster)."""
    name = sweep["spec"].name
    original = Path(sweep["first"].layout.storage.root)
    before = _files(original / name / "mlflow-artifacts")
    first_copy, second_copy = sweep["directory"] / "copy-1", sweep["directory"] / "copy-2"
    shutil.copytree(original, first_copy)
    out = _cli("run", str(sweep["path"]), "--storage", str(first_copy))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert _files(original / name / "mlflow-artifacts") == before          # nothing written into the original
    shutil.copytree(first_copy, second_copy)
    shutil.rmtree(first_copy)                                                # ... and now the original is gone
    out = _cli("run", str(sweep["path"]), "--storage", str(second_copy))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    warned = [line for line in (out.stdout + out.stderr).splitlines() if "warning" in line
              and not line.startswith("warning: models learnt nothing")]     # the tiny no-cue model's 1 epoch
    assert not warned, out.stdout[-2000:] + out.stderr[-2000:]
    assert "report:" in out.stdout and "browse:  http://127.0.0.1:5000/#/experiments/" in out.stdout
    assert not first_copy.exists()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{second_copy / name / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    assert experiment.artifact_location == (second_copy / name / "mlflow-artifacts").as_uri()
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`mmc.role` = 'sweep'")
    assert parent.data.tags["mmc.invocations"] == "4"                       # 2 here, 2 copied along
    assert "report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    uploaded = second_copy / name / "mlflow-artifacts" / parent.info.run_id / "artifacts" / "report.html"
    assert uploaded.read_bytes() == (second_copy / name / "report" / "report.html").read_bytes()


def test_a_sweep_above_the_mlflow_threshold_gets_a_child_run_per_kind_and_its_tables(ray_local, tmp_path, monkeypatch):
    """Past `MMC_MLFLOW_TASK_RUNS` tasks: every `tasks` row names its kind's child run, and the parent run holds
    each result table's files under `tables/<table>/` (the per-task numbers)."""
    from tests.support import runners

    monkeypatch.setenv("MMC_MLFLOW_TASK_RUNS", "4")      # the tiny sweep has 5 tasks
    spec = load_spec(write_spec(tmp_path, "grouped", **OVERRIDES))
    outcome = run_sweep(spec, num_cpus=2, runner=runners.name("synthetic"), report=False)
    assert outcome.ok
    client = mlflow.MlflowClient(tracking_uri=outcome.layout.mlflow_uri())
    runs = _mlflow_runs(outcome.layout, spec.name)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    kinds = {r.data.tags["mmc.group"]: r.info.run_id for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert sorted(kinds) == sorted(build_graph(spec).counts())
    rows = tables.read_table(outcome.layout, vocab.TASKS)
    assert {t: kinds[k] for t, k in zip(rows["task_id"], rows["kind"])} == dict(zip(rows["task_id"], rows["mlflow_run_id"]))
    for table in (vocab.TASKS, vocab.PATHS):
        directory = Path(outcome.layout.storage.local_path(outcome.layout.table_dir(table)))
        logged = [Path(f.path).name for f in client.list_artifacts(parent.info.run_id, f"tables/{table}")]
        assert logged and logged == sorted(p.name for p in directory.glob("*.parquet"))


def test_cli_claims_of_a_sweep_directory_judges_it_without_running_anything(sweep, tmp_path):
    """`mmc-sweep claims DIR` (what the run's summary points to) reads the sweep as it is: the claims the
    library judges, no Ray started, no file written; with overrides, or a directory that is no sweep, exit 2
    in one line. (The three commands in one interpreter: tests/support/cli_batch.py.)"""
    from orchestrator.report.build import print_claims
    from tests.support.cli_batch import run_batch

    spec = _copy(sweep, "claims-dir")
    layout = SweepLayout(Storage(spec.storage), spec.name)
    before = _snapshot(layout)
    proc, done = run_batch({"dir": ["claims", str(layout.root)], "overrides": ["claims", str(layout.root), "seeds=[1]"],
                            "empty": ["claims", str(Path(spec.storage))]}, tmp_path / "batch", clean_env(), REPO)
    assert proc.returncode == 0 and len(done) == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = done["dir"]
    assert out["code"] == 0, out["out"][-2000:] + out["err"][-2000:]
    judged = []
    print_claims(layout, log=judged.append)
    assert out["out"].strip() == judged[0].strip() and "(a)" in out["out"]
    printed = "".join(r["out"] + r["err"] for r in done.values()) + proc.stdout + proc.stderr
    assert "Started a local Ray instance" not in printed and _snapshot(layout) == before
    refused = done["overrides"]
    assert refused["code"] == 2 and refused["err"].count("\n") == 1 and "takes no key=value" in refused["err"]
    empty = done["empty"]
    assert empty["code"] == 2 and f"is a storage directory, not a sweep; it holds the sweeps {spec.name}" in empty["err"]


def test_the_driver_of_a_sweep_imports_no_torch(tmp_path):
    """`mmc-sweep run` of the science's runner, planning, scheduling, recording and reporting, runs in a
    driver in which importing torch, scipy or Ray Train's torch module fails: the tasks' code runs in the
    trials' processes, and the driver spares the import (~1.5 s of every run's start) and its memory. The
    trials, separate processes, import torch as usual."""
    spec = write_spec(tmp_path, "notorch", cue_proportions=[0.0], finetune={"methods": []},
                      paths={"pairs": ["nocue~nocue:self"], "num_alphas": 2})
    code = f"""
import sys
sys.modules["torch"] = sys.modules["scipy"] = sys.modules["ray.train.torch"] = None   # importing them raises
from orchestrator import cli
code = cli.main(["run", {str(spec)!r}, "--storage", {str(tmp_path / "runs")!r}, "--num-cpus", "2"])
print("loaded", sorted(m for m in ("torch", "scipy", "tasks.models", "orchestrator.run.work")
                       if sys.modules.get(m) is not None), "exit", code)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                         env=clean_env())
    assert out.returncode == 0 and "loaded [] exit 0" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    assert "done 2," in out.stdout and "report:" in out.stdout, out.stdout[-3000:]
