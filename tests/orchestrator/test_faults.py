"""Faults survived, end to end through the CLI (each test injects one fault into a real, tiny sweep).

Every sweep here runs `python -m orchestrator run` in a subprocess with its own local Ray, so that
fault-injection environment variables reach the Ray workers and a SIGKILL hits only our processes.
Models are width-8 small CNNs on the built-in digits, 1-4 epochs: each sweep takes ~20-35 s on 2 cores.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from orchestrator import outputs, sinks
from orchestrator.graph import build_graph
from orchestrator.layout import Storage, SweepLayout
from orchestrator.spec import load_spec
from orchestrator.work import FAIL_TASK_ENV_VAR

REPO = Path(__file__).resolve().parents[2]
TABLES = ("tasks", "evaluations", "train_curves", "paths", "barriers")
RUN_TIMEOUT_S = 300

TINY = {
    "data": {"dataset": "digits"},
    "models": [{"name": "small_cnn", "width": 8}],
    "seeds": [0],
    "cue_proportions": [0.0, 0.9],
    "pretrain": {"epochs": 1, "lr": 0.05, "batch_size": 64, "schedule": "constant"},
    "finetune": {"methods": ["naive"], "clean_subset": 64, "epochs": 1, "batch_size": 32, "llrt_epochs": 1,
                 "warmup_epochs": 0},
    "midpoint": {"epochs": 1, "batch_size": 64, "schedule": "constant"},
    "paths": {"pairs": ["cue~nocue"], "kinds": ["linear"], "num_alphas": 2, "bn_reset_samples": 64,
              "eval_batch_size": 512},
    "resources": {kind: {"cpus": 1} for kind in ("pretrain", "finetune", "midpoint", "align", "path_eval")},
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
            "--num-cpus", "2", "--no-report"]


def cli_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (FAIL_TASK_ENV_VAR, "RAY_ADDRESS")}
    env.update({"MMC_PROGRESS_INTERVAL_S": "60", "PYTHONUNBUFFERED": "1", **extra})
    return env


def run_cli(spec: Path, storage: Path, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cli_command(spec, storage), cwd=REPO, env=cli_env(**env), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def layout_of(spec: Path, storage: Path) -> SweepLayout:
    return SweepLayout(Storage(storage), load_spec(spec).name)


def tasks_by_role(spec: Path) -> dict:
    """Task ids by (kind, pair_type, path_kind) / (kind, cue_proportion) for readable assertions."""
    graph = build_graph(load_spec(spec))
    roles = {}
    for task in graph.tasks.values():
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
    tasks = sinks.read_table(layout, "tasks")
    assert tasks["task_id"].is_unique, "duplicate rows in the tasks table"
    return tasks.set_index("task_id")


def mtimes(layout: SweepLayout, task) -> dict[str, int]:
    storage = layout.storage
    paths = [outputs.marker_path(layout, task), *json.loads(storage.read_bytes(outputs.marker_path(layout, task)))["files"]]
    return {p: os.stat(p).st_mtime_ns for p in paths}


def row_signature(layout: SweepLayout) -> dict[str, tuple]:
    """Per table: (row count, sorted task ids of its rows)."""
    out = {}
    for table in TABLES:
        df = sinks.read_table(layout, table)
        out[table] = (len(df), tuple(sorted(df["task_id"])))
    return out


# --------------------------------------------------------------------------------------------
# A task that raises and a task that diverges; then corrupted outputs and a rerun.

@pytest.fixture(scope="module")
def failed_sweep(tmp_path_factory):
    """9 tasks: the cue~nocue midpoint raises (fault injection), fine-tuning diverges (lr 1e30)."""
    root = tmp_path_factory.mktemp("faults")
    spec = write_spec(root, "faults", finetune={"lr": 1e30},
                      paths={"pairs": ["cue~nocue", "pretrained~ft"], "kinds": ["linear", "quadratic"]})
    roles = tasks_by_role(spec)
    midpoint = roles[("midpoint", "cue~nocue", "quadratic", 0)]
    start = time.time()
    proc = run_cli(spec, root / "storage", **{FAIL_TASK_ENV_VAR: midpoint.id})
    print(f"failed sweep: {time.time() - start:.1f}s")
    return spec, root / "storage", roles, proc


def test_failed_and_diverged_tasks_are_recorded_and_dependents_skipped(failed_sweep):
    spec, storage, roles, proc = failed_sweep
    layout = layout_of(spec, storage)
    finetune = roles[("finetune", "naive", 0)]
    midpoint = roles[("midpoint", "cue~nocue", "quadratic", 0)]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 task(s) failed, 4 skipped because of them" in proc.stdout
    assert f"{midpoint.id}: RuntimeError: injected failure" in proc.stdout
    assert f"{finetune.id}: DivergenceError" in proc.stdout
    assert "Rerun the same command" in proc.stdout

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
            assert row["status"] == "failed" and "DivergenceError" in row["error"] and "nan" in row["error"]
        elif task.id == midpoint.id:
            assert row["status"] == "failed" and "injected failure" in row["error"]
        elif task.id in expected_skips:
            assert row["status"] == "skipped"
            assert row["error"] == f"skipped: upstream task {expected_skips[task.id]} failed"
        else:   # the independent branch: both pretrains and the linear cue~nocue path
            assert row["status"] == "finished", (task.id, row["error"])
            assert outputs.verify_outputs(layout, task) == (True, "")
        if row["status"] != "finished":
            assert outputs.read_marker(layout, task) is None, f"{task.id} left a done.json"
    linear = roles[("path_eval", "cue~nocue", "linear", 0)]
    barriers = sinks.read_table(layout, "barriers")
    assert set(barriers["task_id"]) == {linear.id} and len(barriers) == 16   # 4 sets x 2 metrics x 2 defs
    assert not set(sinks.read_table(layout, "evaluations")["task_id"]) & {finetune.id, midpoint.id}


def test_failed_tasks_are_failed_mlflow_runs_with_the_reason(failed_sweep):
    spec, storage, roles, _ = failed_sweep
    layout = layout_of(spec, storage)
    client = mlflow.MlflowClient(layout.mlflow_uri())
    experiment = client.get_experiment_by_name("faults")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    child_runs = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    children = {r.info.run_name: r for r in child_runs}
    assert len(children) == len(child_runs), "a task was logged as more than one MLflow run"
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert set(children) == {t.id for t in roles.values()}
    tasks = status_table(layout)
    for task_id, run in children.items():
        status = tasks.loc[task_id, "status"]
        assert run.info.status == {"finished": "FINISHED", "failed": "FAILED", "skipped": "KILLED"}[status], task_id
        assert tasks.loc[task_id, "mlflow_run_id"] == run.info.run_id
        if status != "finished":
            assert run.data.tags["error"].splitlines()[0] == tasks.loc[task_id, "error"].splitlines()[0]


def test_corrupt_outputs_are_recomputed_and_failed_tasks_retried(failed_sweep):
    """A flipped byte in a checkpoint and a truncated Parquet fragment: detected, recomputed, never used."""
    spec, storage, roles, _ = failed_sweep
    layout = layout_of(spec, storage)
    cue_model, nocue_model = roles[("pretrain", 0.9, 0)], roles[("pretrain", 0.0, 0)]
    linear = roles[("path_eval", "cue~nocue", "linear", 0)]
    midpoint = roles[("midpoint", "cue~nocue", "quadratic", 0)]
    evaluations_before = sinks.read_fragment(layout, "evaluations", cue_model.id)
    paths_before = sinks.read_fragment(layout, "paths", linear.id)
    untouched = mtimes(layout, nocue_model)

    checkpoint = Path(layout.checkpoint_files("pretrain", cue_model.id)["model.safetensors"])
    blob = bytearray(checkpoint.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    checkpoint.write_bytes(bytes(blob))
    fragment = Path(layout.fragment("paths", linear.id))
    fragment.write_bytes(fragment.read_bytes()[: fragment.stat().st_size // 2])
    assert outputs.verify_outputs(layout, cue_model) == (False, f"sha256 mismatch in {checkpoint}")
    assert not outputs.verify_outputs(layout, linear)[0]
    with pytest.raises(ValueError, match="sha256"):    # tasks.checkpoint.CorruptCheckpointError
        outputs.load_checkpoint(layout, "pretrain", cue_model.id)

    proc = run_cli(spec, storage)   # no injected failure this time; fine-tuning still diverges
    assert proc.returncode == 1
    assert f"recomputing {cue_model.id}: its stored output is not valid (sha256 mismatch" in proc.stdout
    assert f"recomputing {linear.id}" in proc.stdout
    assert f"{nocue_model.id}" not in proc.stdout.split("sweep `faults`")[0]
    assert mtimes(layout, nocue_model) == untouched
    for task in (cue_model, linear, midpoint, roles[("path_eval", "cue~nocue", "quadratic", 0)]):
        assert outputs.verify_outputs(layout, task) == (True, ""), task.id
    outputs.load_checkpoint(layout, "pretrain", cue_model.id)   # verifies again
    after = sinks.read_fragment(layout, "evaluations", cue_model.id)
    assert after[["eval_set", "n"]].equals(evaluations_before[["eval_set", "n"]])
    assert (after["acc"] - evaluations_before["acc"]).abs().max() < 1e-6
    paths_after = sinks.read_fragment(layout, "paths", linear.id)
    assert len(paths_after) == len(paths_before)
    assert (paths_after["loss"] - paths_before["loss"]).abs().max() < 1e-4

    tasks = status_table(layout)
    assert len(tasks) == len(roles)
    assert tasks.loc[midpoint.id, "status"] == "finished"          # retried, now without the fault
    assert tasks.loc[roles[("finetune", "naive", 0)].id, "status"] == "failed"
    # the midpoint read the recomputed checkpoint: it started after that pretrain finished
    assert tasks.loc[midpoint.id, "started_at"] >= tasks.loc[cue_model.id, "finished_at"] - pd.Timedelta(seconds=1)


# --------------------------------------------------------------------------------------------
# The driver SIGKILLed mid-sweep, then the same command again.

def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":   # field 6 of stat: session id
                pids.append(int(entry))
    return pids


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL the driver and every process of its session (its local Ray), and wait for them."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while (left := _session_pids(proc.pid)) and time.time() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    assert not _session_pids(proc.pid), "processes of the killed sweep are still alive"


def test_driver_killed_mid_sweep_resumes_without_recompute_or_duplicates(tmp_path):
    spec = write_spec(tmp_path, "killed", pretrain={"epochs": 4}, max_concurrent=1)
    graph = build_graph(load_spec(spec))
    layout = layout_of(spec, tmp_path / "interrupted")
    reference = subprocess.Popen(cli_command(spec, tmp_path / "uninterrupted"), cwd=REPO, env=cli_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    proc = subprocess.Popen(cli_command(spec, tmp_path / "interrupted"), cwd=REPO, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    finished_before: dict[str, dict] = {}
    mid_task = None
    try:
        deadline = time.time() + RUN_TIMEOUT_S
        while time.time() < deadline and proc.poll() is None:
            done = [t for t in graph.tasks.values() if os.path.exists(outputs.marker_path(layout, t))]
            resuming = [t for t in graph.tasks.values() if t.kind == "pretrain" and t not in done
                        and os.path.exists(layout.resume_files("pretrain", t.id)["meta.json"])]
            if done and resuming:
                mid_task = resuming[0]
                break
            time.sleep(0.02)
    finally:
        _kill_session(proc)
    assert mid_task is not None, "the sweep ended before it could be killed mid-task"
    for task in graph.tasks.values():
        if os.path.exists(outputs.marker_path(layout, task)) and outputs.verify_outputs(layout, task)[0]:
            finished_before[task.id] = mtimes(layout, task)
    assert 0 < len(finished_before) < len(graph.tasks)
    assert mid_task.id not in finished_before

    rerun = run_cli(spec, tmp_path / "interrupted")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"{len(finished_before)} already finished" in rerun.stdout
    for task_id, stamps in finished_before.items():    # nothing finished was recomputed or rewritten
        assert mtimes(layout, graph.tasks[task_id]) == stamps, task_id

    reference_out, _ = reference.communicate(timeout=RUN_TIMEOUT_S)
    assert reference.returncode == 0, reference_out[-3000:]
    resumed, clean = row_signature(layout), row_signature(layout_of(spec, tmp_path / "uninterrupted"))
    assert resumed == clean     # same task ids and row counts in every table: nothing missing or doubled
    assert set(status_table(layout)["status"]) == {"finished"}
    curve = sinks.read_fragment(layout, "train_curves", mid_task.id)
    assert sorted(curve["epoch"]) == [0, 1, 2, 3]   # the resumed task kept the epochs run before the kill


# --------------------------------------------------------------------------------------------
# Storage failing mid-task (disk full): the task fails cleanly, nothing half-written is used.

class _FullDisk:
    """A pyarrow file system whose writes stop with ENOSPC after half of the data."""

    def __init__(self, fs):
        self._fs = fs

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def open_output_stream(self, path):
        real = self._fs.open_output_stream(path)

        class Stream:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                real.close()

            def write(self, data):
                real.write(data[: len(data) // 2])
                raise OSError(28, "No space left on device", path)

        return Stream()


def test_atomic_write_on_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path):
    storage = Storage(tmp_path)
    target = storage.join("results", "x.parquet")
    storage.write_bytes(target, b"old complete content")
    storage.fs = _FullDisk(storage.fs)
    with pytest.raises(OSError, match="No space left"):
        storage.write_bytes(target, b"new content that does not fit")
    assert Path(target).read_bytes() == b"old complete content"
    assert [p.name for p in Path(target).parent.iterdir()] == ["x.parquet"]


def test_task_whose_outputs_cannot_be_written_fails_without_a_marker(tmp_path, monkeypatch):
    import torch

    from orchestrator import work

    spec = write_spec(tmp_path, "full")
    task = next(t for t in build_graph(load_spec(spec)).tasks.values() if t.kind == "pretrain")
    layout = layout_of(spec, tmp_path / "storage")

    def produce(task, env):
        return outputs.TaskOutput(
            tables={"evaluations": [{"eval_set": "nocue", "loss": 1.0, "acc": 0.5, "n": 10}],
                    "train_curves": [{"epoch": 0, "split": "train", "loss": 1.0, "acc": 0.5}]},
            checkpoint={"w": torch.zeros(3)})

    monkeypatch.setitem(work.RUNNERS, "produce", produce)
    real_write = sinks.write_fragment_bytes   # the seam outputs.write_outputs writes through

    def full_after_first(layout_, table, task_id, rows):
        if table == "train_curves":
            raise OSError(28, "No space left on device")
        return real_write(layout_, table, task_id, rows)

    monkeypatch.setattr(sinks, "write_fragment_bytes", full_after_first)
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"))
    result = work.execute(task, layout, "produce", env)
    assert result["status"] == "failed" and "No space left on device" in result["error"]
    assert outputs.read_marker(layout, task) is None            # not finished: the rerun recomputes it
    assert outputs.verify_outputs(layout, task) == (False, "no done.json")
    written = sorted(p.relative_to(tmp_path / "storage").as_posix() for p in (tmp_path / "storage").rglob("*")
                     if p.is_file())
    assert not [w for w in written if ".tmp-" in w]

    monkeypatch.setattr(sinks, "write_fragment_bytes", real_write)    # space again: the rerun completes it
    assert work.execute(task, layout, "produce", env)["status"] == "done"
    assert outputs.verify_outputs(layout, task) == (True, "")


# --------------------------------------------------------------------------------------------
# A training task stopped after an epoch (driver killed, node lost) resumes from its saved state.

class _Stopped(Exception):
    pass


def _run_task(task, graph, layout, *, stop_after_epoch: int | None = None, epochs_run: list | None = None) -> dict:
    """What a Tune trial does for a single-worker task, optionally dying right after `stop_after_epoch`
    was saved; the epochs it trains are appended to `epochs_run`."""
    import torch

    from orchestrator import work
    env = work.TaskEnv(layout=layout, device=torch.device("cpu"),
                       parent_kinds={p: graph.tasks[p].kind for p in task.parents})
    work._attach_local_resume(task, env)
    save = env.on_epoch

    def save_then_maybe_die(report):
        save(report)
        if epochs_run is not None:
            epochs_run.append(report.epoch)
        if report.epoch == stop_after_epoch:
            raise _Stopped(f"stopped after epoch {report.epoch}")
    env.on_epoch = save_then_maybe_die
    return work.execute(task, layout, "real", env)


@pytest.mark.parametrize("role, stop", [(("midpoint", "cue~nocue", "quadratic", 0), 1),
                                        (("finetune", "lpft", 0), 1),     # in the head phase
                                        (("finetune", "lpft", 0), 3),     # in the full fine-tuning phase
                                        (("finetune", "cbft", 0), 0)])
def test_training_task_stopped_after_an_epoch_resumes_from_its_saved_state(tmp_path, role, stop):
    from tasks.checkpoint import load_checkpoint
    spec = write_spec(tmp_path, "resumable", pretrain={"epochs": 1},
                      finetune={"methods": ["lpft", "cbft"], "epochs": 3, "llrt_epochs": 2},
                      midpoint={"epochs": 3}, paths={"kinds": ["quadratic"]})
    graph = build_graph(load_spec(spec))
    task = tasks_by_role(spec)[role]
    layouts = {name: layout_of(spec, tmp_path / name) for name in ("stopped", "clean")}
    for layout in layouts.values():
        for parent in task.parents:
            assert _run_task(graph.tasks[parent], graph, layout)["status"] == "done"

    first = _run_task(task, graph, layouts["stopped"], stop_after_epoch=stop)
    assert first["status"] == "failed" and f"stopped after epoch {stop}" in first["error"]
    assert outputs.read_marker(layouts["stopped"], task) is None
    resume_dir = Path(layouts["stopped"].storage.local_path(layouts["stopped"].resume_dir(task.kind, task.id)))
    assert (resume_dir / "meta.json").is_file()
    rerun_epochs, clean_epochs = [], []
    assert _run_task(task, graph, layouts["stopped"], epochs_run=rerun_epochs)["status"] == "done"
    assert _run_task(task, graph, layouts["clean"], epochs_run=clean_epochs)["status"] == "done"  # never stopped
    total = 5 if role[1] == "lpft" else 3
    assert clean_epochs == list(range(total))
    assert rerun_epochs == list(range(stop + 1, total))       # the rerun resumed: no epoch trained twice
    assert not resume_dir.exists()                            # and dropped the state once finished

    resumed, clean = (load_checkpoint(Path(layouts[n].storage.local_path(layouts[n].task_dir(task.kind, task.id))))[0]
                      for n in ("stopped", "clean"))
    for name, value in clean.items():
        assert torch_equal(resumed[name], value), name
    curves = [sinks.read_fragment(layouts[n], "train_curves", task.id).sort_values("epoch").reset_index(drop=True)
              for n in ("stopped", "clean")]
    assert list(curves[0]["epoch"]) == list(range(total))           # every epoch once, the early ones kept
    pd.testing.assert_frame_equal(curves[0][["epoch", "split", "loss", "acc"]], curves[1][["epoch", "split", "loss", "acc"]])


def torch_equal(a, b) -> bool:
    import torch
    return bool(torch.equal(a, b))
