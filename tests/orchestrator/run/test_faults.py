"""Faults survived: every claim of README's "Failure handling" reached by a test that makes the
fault happen and checks the stated outcome.

- A task that raises or diverges, and corrupt outputs, end to end through the CLI (`failed_sweep`).
- Table-driven, in-process on a finished sweep (`README_CLAIMS`): a missing output file, a garbled
  `done.json`, the `tasks` row missing after a driver died between marker and row, a torn resume
  checkpoint. Each case copies the finished sweep, makes its fault, reruns, and checks the claim.
- The driver interrupted (Ctrl-C: exit 130) and then SIGKILLed in the middle of a training task, at
  points chosen by the test (the test runner `tests.support.runners:real` pauses the task right after
  an epoch's state is saved):
  each rerun resumes from the last saved epoch and the weights equal an uninterrupted run.
- A disk that fills up while a task writes its outputs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml

from orchestrator import status, vocab
from orchestrator.results import outputs, tables
from orchestrator.run import work
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.run.sweep import run_sweep
from tasks.settings.train import MAX_LR, MAX_WEIGHT_DECAY
from tests.conftest import REPO, clean_env, start_local_ray
from tests.support.full_disk import FullDisk
from tests.support import runners
from tests.support.processes import kill_session, start_until
from tests.support.runners import FAIL_ENV, PAUSE_ENV, hook_env, resumed_from, trained_epochs

RUN_TIMEOUT_S = 600
REAL = runners.name("real")   # the science, plus the faults and observations the environment asks for
EVENT_TIMEOUT_S = 300

TINY = {
    "data": {"dataset": "digits"},
    "models": [{"name": "small_cnn", "width": 8}],
    "seeds": [0],
    "cue_proportions": [0.0, 0.9],
    "pretrain": {"epochs": 1, "lr": 0.05, "batch_size": 64, "schedule": "constant"},
    "finetune": {"clean_subset": 64, "epochs": 1, "batch_size": 32, "llrt_epochs": 1,
                 "warmup_epochs": 0},
    "midpoint": {"epochs": 1, "batch_size": 64, "schedule": "constant"},
    "align": {"samples": 64},
    "paths": {"pairs": ["cue~nocue"], "kinds": ["linear"], "num_alphas": 2, "bn_reset_samples": 64,
              "eval_batch_size": 512},
    "resources": {kind: {"cpus": 1} for kind in vocab.TASK_KINDS},
    "max_concurrent": 2,
}


def write_spec(directory: Path, name: str, **sections) -> Path:
    raw = {"name": name, **TINY}
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cli_command(spec: Path, storage: Path) -> list[str]:
    return [sys.executable, "-m", "orchestrator", "run", str(spec), "--storage", str(storage),
            "--num-cpus", "2", "--no-report", "--runner", REAL]


def cli_env(**extra: str) -> dict:
    return clean_env(MMC_PROGRESS_INTERVAL_S="60", **extra)


def run_cli(spec: Path, storage: Path, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cli_command(spec, storage), cwd=REPO, env=cli_env(**env), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def layout_of(spec: Path, storage: Path) -> SweepLayout:
    return SweepLayout(Storage(storage), load_spec(spec).name)


def tasks_by_role(spec: Path) -> dict:
    """Tasks by (kind, cue_proportion, seed) / (kind, method, seed) / (kind, pair_type, path_kind, seed)."""
    roles = {}
    for task in build_graph(load_spec(spec)).tasks.values():
        labels = task.labels
        if task.kind == "pretrain":
            key = ("pretrain", labels["cue_proportion"], labels["seed"])
        elif task.kind == "finetune":
            key = ("finetune", labels["method"], labels["seed"])
        else:
            key = (task.kind, labels["pair_type"], labels["path_kind"], labels["seed"])
        roles[key] = task
    return roles


def status_table(layout: SweepLayout):
    df = tables.read_table(layout, vocab.TASKS)
    assert df["task_id"].is_unique, "duplicate rows in the tasks table"
    return df.set_index("task_id")


def mtimes(layout: SweepLayout, task) -> dict[str, int]:
    marker = layout.marker_file(task.kind, task.id)
    files = json.loads(layout.storage.read_bytes(marker))["files"]
    return {p: os.stat(p).st_mtime_ns for p in [marker, *(f"{layout.root}/{name}" for name in files)]}


def verified(layout, task) -> tuple[bool, str]:
    return outputs.verify_outputs(layout, task.kind, task.id)


def mlflow_runs(layout, name: str) -> list:
    client = mlflow.MlflowClient(layout.mlflow_uri())
    return client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=1000)


# --------------------------------------------------------------------------------------------
# A task that raises and a task that diverges; then corrupted outputs and a rerun.

@pytest.fixture(scope="module")
def failed_sweep(tmp_path_factory):
    """9 tasks: the cue~nocue midpoint raises (fault injection), fine-tuning diverges (the largest lr and
    weight decay a spec allows: the weights grow ×999 a step). MLflow's runs are read before any test reruns a copy of the sweep."""
    root = tmp_path_factory.mktemp("faults")
    spec = write_spec(root, "faults", finetune={"lr": MAX_LR, "weight_decay": MAX_WEIGHT_DECAY, "epochs": 5, "methods": ["naive"]},
                      paths={"pairs": ["cue~nocue", "pretrained~ft"], "kinds": ["linear", "quadratic"],
                             "finetuned_kinds": ["linear", "quadratic"]})
    roles = tasks_by_role(spec)
    midpoint = roles[("midpoint", "cue~nocue", "quadratic", 0)]
    proc = run_cli(spec, root / "storage", **{FAIL_ENV: midpoint.id})
    runs = mlflow_runs(layout_of(spec, root / "storage"), "faults")
    return spec, root / "storage", roles, proc, runs


def test_the_advice_after_failures_tells_deterministic_errors_from_transient_ones():
    """A diverged task or bad settings fail the same way on a rerun: the advice is to change them, not to
    rerun; a crashed trial or a lost node may pass on a rerun."""
    from types import SimpleNamespace

    from orchestrator.run.state import TaskState
    from orchestrator.run.sweep import _print_failures

    def advice(*errors: str) -> str:
        states = {f"t{i}": TaskState(status=vocab.FAILED, error=e) for i, e in enumerate(errors)}
        lines: list[str] = []
        _print_failures(SimpleNamespace(state=SimpleNamespace(states=states, count=lambda status: 0)), lines.append)
        return "\n".join(lines)

    diverged = "DivergenceError: training diverged: loss is nan at epoch 0, step 3; lower `lr`\nTraceback ..."
    crashed = "the trial crashed (worker died or was killed); see the Ray logs"
    assert "Rerun the same command" not in advice(diverged, "SettingsError: `lr`: must be > 0")
    assert "would fail the same way again" in advice(diverged) and "lower `lr`" in advice(diverged)
    assert "Rerun the same command to retry them" in advice(crashed, "OSError: [Errno 28] No space left")
    assert "fail the same way" not in advice(crashed)
    mixed = advice(diverged, crashed)
    assert "1 of them (DivergenceError)" in mixed and "retry the others" in mixed


def test_failed_and_diverged_tasks_are_recorded_and_dependents_skipped(failed_sweep):
    spec, storage, roles, proc, _ = failed_sweep
    layout = layout_of(spec, storage)
    finetune = roles[("finetune", "naive", 0)]
    midpoint = roles[("midpoint", "cue~nocue", "quadratic", 0)]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 task(s) failed, 4 skipped because of them" in proc.stdout
    assert f"{midpoint.id}: RuntimeError: injected failure" in proc.stdout
    assert f"{finetune.id}: DivergenceError" in proc.stdout
    assert "1 of them (DivergenceError) would fail the same way again" in proc.stdout
    assert "Rerun the same command to retry the others" in proc.stdout

    tasks = status_table(layout)
    assert set(tasks.index) == {t.id for t in roles.values()}
    expected_skips = {
        roles[("midpoint", "pretrained~ft:naive", "quadratic", 0)].id: finetune.id,
        roles[("path_eval", "pretrained~ft:naive", "linear", 0)].id: finetune.id,
        roles[("path_eval", "pretrained~ft:naive", "quadratic", 0)].id: finetune.id,
        roles[("path_eval", "cue~nocue", "quadratic", 0)].id: midpoint.id,
    }
    for task in roles.values():
        row = tasks.loc[task.id]
        if task.id == finetune.id:
            assert row["status"] == vocab.FAILED and "DivergenceError" in row["error"] \
                and re.search(r"\b(nan|inf)\b", row["error"]) and "lower `finetune.lr`" in row["error"]
            assert row["error_type"] == "DivergenceError"
        elif task.id == midpoint.id:
            assert row["status"] == vocab.FAILED and "injected failure" in row["error"]
            assert row["error_type"] == "RuntimeError"
        elif task.id in expected_skips:
            assert row["status"] == vocab.SKIPPED and pd.isna(row["error_type"])
            assert row["error"] == f"skipped: upstream task {expected_skips[task.id]} failed"
        else:   # the independent branch: both pretrains and the linear cue~nocue path
            assert row["status"] == vocab.FINISHED, (task.id, row["error"])
            assert verified(layout, task) == (True, "")
        if row["status"] != vocab.FINISHED:
            assert outputs.read_marker(layout, task.kind, task.id) is None, f"{task.id} left a done.json"
    linear = roles[("path_eval", "cue~nocue", "linear", 0)]
    barriers = tables.read_table(layout, vocab.BARRIERS)
    assert set(barriers["task_id"]) == {linear.id} and len(barriers) == 4 * 2 * len(vocab.DEFINITIONS)   # 4 sets x 2 metrics x definitions
    assert not set(tables.read_table(layout, vocab.EVALUATIONS)["task_id"]) & {finetune.id, midpoint.id}


def test_failed_tasks_are_failed_mlflow_runs_with_the_reason(failed_sweep):
    spec, storage, roles, _, runs = failed_sweep
    layout = layout_of(spec, storage)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    child_runs = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    children = {r.data.tags["task_id"]: r for r in child_runs}
    assert len(children) == len(child_runs), "a task was logged as more than one MLflow run"
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert set(children) == {t.id for t in roles.values()}
    tasks = status_table(layout)
    for task_id, run in children.items():
        status = tasks.loc[task_id, "status"]
        assert run.info.status == vocab.STATUS_IN_MLFLOW[{vocab.FINISHED: vocab.DONE}.get(status, status)], task_id
        assert tasks.loc[task_id, "mlflow_run_id"] == run.info.run_id
        if status != vocab.FINISHED:
            assert run.data.tags["error"].splitlines()[0] == tasks.loc[task_id, "error"].splitlines()[0]


def test_corrupt_outputs_are_recomputed_and_failed_tasks_retried(failed_sweep, tmp_path):
    """A flipped byte in a checkpoint and a truncated Parquet fragment: detected, recomputed, never used."""
    spec, shared, roles, _, _ = failed_sweep
    storage = tmp_path / "storage"
    shutil.copytree(shared, storage)
    layout = layout_of(spec, storage)
    cue_model, nocue_model = roles[("pretrain", 0.9, 0)], roles[("pretrain", 0.0, 0)]
    linear = roles[("path_eval", "cue~nocue", "linear", 0)]
    midpoint = roles[("midpoint", "cue~nocue", "quadratic", 0)]
    evaluations_before = tables.read_fragment(layout, vocab.EVALUATIONS, cue_model.id)
    paths_before = tables.read_fragment(layout, vocab.PATHS, linear.id)
    untouched = mtimes(layout, nocue_model)

    checkpoint = Path(layout.checkpoint_files("pretrain", cue_model.id)["model.safetensors"])
    blob = bytearray(checkpoint.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    checkpoint.write_bytes(bytes(blob))
    fragment = Path(layout.fragment(vocab.PATHS, linear.id))
    fragment.write_bytes(fragment.read_bytes()[: fragment.stat().st_size // 2])
    assert verified(layout, cue_model) == (False, f"sha256 mismatch in {checkpoint}")
    assert not verified(layout, linear)[0]
    with pytest.raises(ValueError, match="sha256") as raised:    # tasks.checkpoint.CorruptCheckpointError
        outputs.load_checkpoint(layout, "pretrain", cue_model.id)
    assert str(raised.value).startswith(f"corrupt checkpoint: `{checkpoint}`")   # its path: whose task it is

    proc = run_cli(spec, storage)   # no injected failure this time; fine-tuning still diverges
    assert proc.returncode == 1
    assert f"recomputing {cue_model.id}: its stored output is not valid (sha256 mismatch" in proc.stdout
    assert f"recomputing {linear.id}" in proc.stdout
    assert f"{nocue_model.id}" not in proc.stdout.split("sweep `faults`")[0]
    assert mtimes(layout, nocue_model) == untouched
    for task in (cue_model, linear, midpoint, roles[("path_eval", "cue~nocue", "quadratic", 0)]):
        assert verified(layout, task) == (True, ""), task.id
    outputs.load_checkpoint(layout, "pretrain", cue_model.id)   # verifies again
    after = tables.read_fragment(layout, vocab.EVALUATIONS, cue_model.id)
    assert after[["eval_set", "n"]].equals(evaluations_before[["eval_set", "n"]])
    assert (after["acc"] - evaluations_before["acc"]).abs().max() < 1e-6
    paths_after = tables.read_fragment(layout, vocab.PATHS, linear.id)
    assert len(paths_after) == len(paths_before)
    assert (paths_after["loss"] - paths_before["loss"]).abs().max() < 1e-4

    tasks = status_table(layout)
    assert len(tasks) == len(roles)
    assert tasks.loc[midpoint.id, "status"] == vocab.FINISHED          # retried, now without the fault
    assert tasks.loc[roles[("finetune", "naive", 0)].id, "status"] == vocab.FAILED
    # the midpoint read the recomputed checkpoint: it started after that pretrain finished
    assert tasks.loc[midpoint.id, "started_at"] >= tasks.loc[cue_model.id, "finished_at"] - pd.Timedelta(seconds=1)


# --------------------------------------------------------------------------------------------
# README's claims, table-driven, in-process on a finished sweep.

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny sweep (2 pretrains of 2 epochs, a linear and a quadratic cue~nocue path) on a
    local Ray whose workers record what they train (the runner `REAL` with MMC_TEST_EVENTS_DIR)."""
    import ray

    root = tmp_path_factory.mktemp("claims")
    events = root / "events"
    spec = load_spec(write_spec(root, "claims", pretrain={"epochs": 2},
                                paths={"kinds": ["linear", "quadratic"]}, finetune={"methods": []}))
    spec = spec.with_top(storage=str(root / "finished"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in hook_env(events).items():
            mp.setenv(key, value)
        start_local_ray(2)
        try:
            outcome = run_sweep(spec, report=False, runner=REAL)
            assert outcome.ok, outcome.counts
            yield spec, build_graph(spec), root, events
        finally:
            ray.shutdown()


def _cue_model(graph):
    return next(t for t in graph.tasks.values() if t.kind == "pretrain" and t.labels["cue_proportion"] > 0)


def _missing_output_file(layout, graph, ctx):
    task = _cue_model(graph)
    path = layout.fragment(vocab.EVALUATIONS, task.id)
    ctx["rows"] = tables.read_fragment(layout, vocab.EVALUATIONS, task.id)
    os.remove(path)
    return task, f"recomputing {task.id}: its stored output is not valid (missing {path})"


def _garbled_marker(layout, graph, ctx):
    task = _cue_model(graph)
    path = layout.marker_file(task.kind, task.id)
    ctx["rows"] = tables.read_fragment(layout, vocab.EVALUATIONS, task.id)
    Path(path).write_bytes(b'{"version": 2, "task_id": "')          # cut off mid-write
    return task, f"recomputing {task.id}: its stored output is not valid ({path} is unreadable"


def _tasks_row_missing(layout, graph, ctx):
    """The driver died after the task's done.json but before its `tasks` row."""
    task = _cue_model(graph)
    os.remove(layout.fragment(vocab.TASKS, task.id))
    assert not tables.verify_fragment(layout, vocab.TASKS, task.id)
    return task, None


def _torn_resume_state(layout, graph, ctx, monkeypatch):
    """A training task interrupted after its first epoch (no done.json, a resume state), then the
    resume state torn: the last write cut short."""
    task = _cue_model(graph)
    ctx["weights"] = outputs.load_checkpoint(layout, task.kind, task.id)[0]
    os.remove(layout.marker_file(task.kind, task.id))
    real = work.attach_storage_resume

    class Stop(Exception):
        pass

    def attach(env, layout_, kind, task_id, log, **kwargs):
        real(env, layout_, kind, task_id, log, **kwargs)
        save = env.on_epoch

        def save_then_stop(report):
            save(report)
            raise Stop()

        env.on_epoch = save_then_stop

    monkeypatch.setattr(work, "attach_storage_resume", attach)
    result = work.run_here(task, layout, "real", None, {})
    monkeypatch.setattr(work, "attach_storage_resume", real)
    assert result.status == vocab.FAILED and outputs.read_marker(layout, task.kind, task.id) is None
    tensors = Path(layout.resume_files(task.kind, task.id)["model.safetensors"])
    assert tensors.is_file()
    tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 3])
    return task, None


def _check_recomputed(layout, graph, task, outcome, ctx, events):
    assert outcome.counts[vocab.DONE] == 1 and outcome.counts[vocab.CACHED] == len(graph) - 1, outcome.counts
    assert verified(layout, task) == (True, "")
    pd.testing.assert_frame_equal(tables.read_fragment(layout, vocab.EVALUATIONS, task.id)
                                  .sort_values("eval_set").reset_index(drop=True)[["eval_set", "loss", "acc", "n"]],
                                  ctx["rows"].sort_values("eval_set").reset_index(drop=True)[["eval_set", "loss",
                                                                                              "acc", "n"]])


def _check_row_written(layout, graph, task, outcome, ctx, events):
    assert outcome.counts[vocab.CACHED] == len(graph) and outcome.counts[vocab.DONE] == 0, outcome.counts
    rows = status_table(layout)
    assert set(rows.index) == set(graph.tasks)                  # every task exactly one row
    assert rows.loc[task.id, "status"] == vocab.FINISHED and bool(rows.loc[task.id, "cached"])
    assert rows.loc[task.id, "mlflow_run_id"]


def _check_started_over(layout, graph, task, outcome, ctx, events):
    assert outcome.counts[vocab.DONE] == 1, outcome.counts
    assert resumed_from(events, task.id)[-1] is None                  # the torn state was not used ...
    assert trained_epochs(events, task.id)[-1] == [0, 1]              # ... the task started over
    weights = outputs.load_checkpoint(layout, task.kind, task.id)[0]
    assert all(torch.equal(weights[k], v) for k, v in ctx["weights"].items())
    assert not Path(layout.resume_dir(task.kind, task.id)).exists()


README_CLAIMS = {
    "a missing output file is recomputed": (_missing_output_file, _check_recomputed),
    "a garbled done.json is recomputed": (_garbled_marker, _check_recomputed),
    "the tasks row missing after the driver died between marker and row is written on rerun":
        (_tasks_row_missing, _check_row_written),
    "a torn resume checkpoint starts the task over": (_torn_resume_state, _check_started_over),
}


@pytest.mark.parametrize("claim", list(README_CLAIMS))
def test_readme_fault_claim(claim, finished, tmp_path, monkeypatch):
    spec, graph, _, events = finished
    spec = spec.with_top(storage=str(tmp_path / "storage"))
    shutil.copytree(finished[0].storage, spec.storage)
    layout = SweepLayout(Storage(spec.storage), spec.name)
    make, check = README_CLAIMS[claim]
    ctx: dict = {}
    args = (layout, graph, ctx, monkeypatch) if make is _torn_resume_state else (layout, graph, ctx)
    task, message = make(*args)
    untouched = {t.id: mtimes(layout, t) for t in graph.tasks.values() if t.id != task.id}
    logged: list[str] = []
    outcome = run_sweep(spec, report=False, log=logged.append, runner=REAL)
    assert outcome.ok, outcome.counts
    if message:
        assert any(line.startswith(message) for line in logged), "\n".join(logged)
    check(layout, graph, task, outcome, ctx, events)
    assert {t.id: mtimes(layout, t) for t in graph.tasks.values() if t.id != task.id} == untouched


# --------------------------------------------------------------------------------------------
# The driver interrupted (Ctrl-C), then SIGKILLed, in the middle of a training task.

def _start_paused(spec: Path, storage: Path, events: Path, task, epoch: int) -> subprocess.Popen:
    """The CLI, with `task` pausing right after its `epoch` is saved; returns once it is paused."""
    paused = events / f"paused-{task.id}"
    proc = start_until(cli_command(spec, storage), cli_env(**hook_env(events, **{PAUSE_ENV: f"{task.id}:{epoch}"})),
                       REPO, paused, f"paused {task.id} after epoch {epoch}", EVENT_TIMEOUT_S)
    paused.unlink()
    return proc


@pytest.mark.slow
def test_driver_interrupted_then_killed_mid_task_resumes_each_time(tmp_path):
    """Run 1 is interrupted with Ctrl-C while the no-cue pretrain waits after epoch 1: exit 130,
    finished tasks kept. Run 2 is SIGKILLed while that task waits after epoch 2. Run 3 finishes.
    Each rerun starts the task from its last saved epoch; nothing finished is recomputed; the
    weights equal an uninterrupted run's; every table has each task's rows once."""
    spec = write_spec(tmp_path, "killed", pretrain={"epochs": 4}, max_concurrent=1)
    graph = build_graph(load_spec(spec))
    storage, events = tmp_path / "storage", tmp_path / "events"
    layout = layout_of(spec, storage)
    roles = tasks_by_role(spec)
    first, target = roles[("pretrain", 0.9, 0)], roles[("pretrain", 0.0, 0)]
    assert list(graph.tasks).index(first.id) < list(graph.tasks).index(target.id)   # max_concurrent 1: in order

    proc = _start_paused(spec, storage, events, target, 1)
    try:
        # watched from another terminal meanwhile: the task's progress.json says epoch 2 of 4 is done
        running = {r["task_id"]: r for r in status.status_snapshot(layout)["running"]}
        assert (running[target.id]["epoch"], running[target.id]["epochs"]) == (2, 4), running
        assert running[target.id]["eta_s"] is not None and running[target.id]["loss"] is not None
        os.killpg(proc.pid, signal.SIGINT)                   # Ctrl-C reaches the terminal's process group
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        kill_session(proc)
    assert proc.returncode == 130, f"exit {proc.returncode}:\n{out[-2000:]}\n{err[-2000:]}"
    assert "interrupted: finished tasks are kept" in err
    assert verified(layout, first) == (True, "") and not verified(layout, target)[0], f"{out[-3000:]}\n{err[-3000:]}"
    assert status_table(layout).loc[first.id, "status"] == vocab.FINISHED   # its row was written too
    kept = mtimes(layout, first)

    proc = _start_paused(spec, storage, events, target, 2)
    kill_session(proc)
    assert not verified(layout, target)[0] and mtimes(layout, first) == kept

    rerun = run_cli(spec, storage, **hook_env(events))
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert graph.counts() == {"pretrain": 2, "path_eval": 1}
    assert "1 already finished, 2 to run" in rerun.stdout, rerun.stdout[-3000:]
    assert mtimes(layout, first) == kept                     # nothing finished was recomputed or rewritten
    assert resumed_from(events, target.id) == [None, 2, 3]
    assert status.status_snapshot(layout)["running"] == []                     # finished: no longer running
    assert json.loads(layout.storage.read_bytes(layout.progress_file("pretrain", target.id)))["epoch"] == 4
    assert trained_epochs(events, target.id) == [[0, 1], [2], [3]]

    reference = SweepLayout(Storage(tmp_path / "uninterrupted"), "killed")
    assert work.run_here(target, reference, "real", None, {}).status == vocab.DONE
    resumed, clean = (outputs.load_checkpoint(l, "pretrain", target.id)[0] for l in (layout, reference))
    assert all(torch.equal(resumed[k], v) for k, v in clean.items())
    assert set(status_table(layout)["status"]) == {vocab.FINISHED}
    curve = tables.read_fragment(layout, vocab.TRAIN_CURVES, target.id)
    assert sorted(curve["epoch"]) == [0, 1, 2, 3]           # the epochs before each stop were kept
    expected_rows = {vocab.TASKS: 3, vocab.EVALUATIONS: 2 * 4, vocab.TRAIN_CURVES: 2 * 4, vocab.PATHS: 2 * 4,
                     vocab.BARRIERS: 4 * 2 * len(vocab.DEFINITIONS)}     # nothing missing, nothing doubled
    for table, n in expected_rows.items():
        assert len(tables.read_table(layout, table)) == n, table


# --------------------------------------------------------------------------------------------
# Storage failing mid-write (disk full): the task fails cleanly, nothing half-written is used.

def test_atomic_write_on_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path):
    storage = Storage(tmp_path)
    target = storage.join("results", "x.parquet")
    storage.write_bytes(target, b"old complete content")
    storage.fs = full = FullDisk(storage.fs)
    with pytest.raises(OSError, match="No space left"):
        storage.write_bytes(target, b"new content that does not fit")
    assert Path(target).read_bytes() == b"old complete content"
    assert len(full.opened) == 1 and ".tmp-" in full.opened[0]          # a temporary was written ...
    assert [p.name for p in Path(target).parent.iterdir()] == ["x.parquet"]   # ... and removed


def test_task_whose_outputs_cannot_be_written_fails_without_a_marker(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, "full")
    task = next(t for t in build_graph(load_spec(spec)).tasks.values() if t.kind == "pretrain")
    layout = layout_of(spec, tmp_path / "storage")

    def produce(task, env):
        return outputs.TaskOutput(
            tables={vocab.EVALUATIONS: [{"eval_set": "nocue", "loss": 1.0, "acc": 0.5, "n": 10}],
                    vocab.TRAIN_CURVES: [{"epoch": 0, "split": "train", "loss": 1.0, "acc": 0.5}]},
            checkpoint={"w": torch.zeros(3)})

    monkeypatch.setitem(work.RUNNERS, "produce", produce)     # a runner by name, as `real` is
    real_fs = layout.storage.fs
    layout.storage.fs = full = FullDisk(real_fs, "/results/train_curves/")   # full when the curve is written
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
    result = work.execute(task, "produce", env)
    assert result.status == vocab.FAILED and "No space left on device" in result.error
    assert full.opened and all(".tmp-" in p for p in full.opened)          # it failed inside a write
    assert outputs.read_marker(layout, task.kind, task.id) is None          # not finished: a rerun recomputes it
    assert verified(layout, task) == (False, "no done.json")
    written = [p.relative_to(tmp_path / "storage").as_posix() for p in (tmp_path / "storage").rglob("*") if p.is_file()]
    assert written and not [w for w in written if ".tmp-" in w], written

    layout.storage.fs = real_fs                                             # space again: the rerun completes it
    assert work.execute(task, "produce", env).status == vocab.DONE
    assert verified(layout, task) == (True, "")
