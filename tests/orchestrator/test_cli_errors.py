"""Bad inputs refused by `mmc-sweep run`: one readable error, exit status 2, nothing written.

The bad-spec corpus (tests/orchestrator/bad_specs/, shared with test_spec.py) goes through
`orchestrator.cli.main` in-process (a subprocess per spec would cost ~5 s of imports each);
a few go through a real `python -m orchestrator` subprocess. Storage, data, lock and resource
problems are generated here. No test in this file runs a task.
"""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator import cli, sweep
from orchestrator.layout import Storage, SweepLayout
from orchestrator.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
BAD_SPECS = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))
GOOD = {
    "name": "good",
    "data": {"dataset": "digits"},
    "models": [{"name": "small_cnn", "width": 8}],
    "seeds": [0],
    "cue_proportions": [0.0, 0.9],
    "pretrain": {"epochs": 1},
    "finetune": {"methods": ["naive"]},
    "paths": {"pairs": ["cue~nocue"], "kinds": ["linear"], "num_alphas": 2},
}


def expected_messages(path: Path) -> list[str]:
    return [line.split("# expect:", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# expect:")]


def write_spec(directory: Path, **changes) -> Path:
    raw = {**GOOD, **changes}
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, storage: Path, *needles: str) -> None:
    assert code == cli.EXIT_BAD_INPUT, err
    assert (err.startswith("error: ") or "\nerror: " in err) and "Traceback" not in err, err   # Ray may warn first
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"
    written = [str(p.relative_to(storage)) for p in storage.rglob("*")] if storage.exists() else []
    assert written == [], f"wrote {written}"


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    """Nothing here may start Ray: every input must be refused before that."""
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for a bad input")
    monkeypatch.setattr(sweep, "init_ray", refuse)


# ----- the bad-spec corpus --------------------------------------------------------------------

def test_corpus_is_large_enough():
    assert len(BAD_SPECS) >= 30


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_bad_spec_is_refused_by_the_cli(path, tmp_path, capsys):
    storage = tmp_path / "storage"
    storage.mkdir()
    code, out, err = run_main(capsys, str(path), "--storage", str(storage))
    assert_refused(code, err, storage, str(path), *expected_messages(path))
    assert out == ""


SUBPROCESS_SPECS = ("yaml_syntax", "name_dotdot")


def test_bad_specs_through_real_subprocesses(tmp_path):
    """The same refusals from `python -m orchestrator run` (what users and `ray job submit` call)."""
    procs = {}
    for stem in SUBPROCESS_SPECS:
        storage = tmp_path / stem
        storage.mkdir()
        cmd = [sys.executable, "-m", "orchestrator", "run", str(Path(__file__).parent / "bad_specs" / f"{stem}.yaml"),
               "--storage", str(storage)]
        procs[stem] = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for stem, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        path = Path(__file__).parent / "bad_specs" / f"{stem}.yaml"
        assert_refused(proc.returncode, err, tmp_path / stem, *expected_messages(path))


# ----- names, storage URIs, overrides ----------------------------------------------------------

@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "a\\b", "/abs", "x/../../y", ""])
def test_names_that_could_escape_the_storage_are_refused(name, tmp_path, capsys):
    storage = tmp_path / "storage"
    storage.mkdir()
    spec = write_spec(tmp_path, name=name)
    code, _, err = run_main(capsys, str(spec), "--storage", str(storage))
    assert_refused(code, err, storage, "`name`")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml", "storage"]


@pytest.mark.parametrize("uri, needle", [
    ("ftp://host/runs", "unknown URI scheme 'ftp'"),
    ("http://host/runs", "unknown URI scheme 'http'"),
    ("s3://", "names no location"),
    ("", "'' is not allowed"),
    ("s3://bucket/runs", "`mlflow.tracking_uri`: is required"),   # remote storage needs a tracking server
])
def test_invalid_storage_uris_are_refused(uri, needle, tmp_path, capsys):
    spec = write_spec(tmp_path)
    code, _, err = run_main(capsys, str(spec), "--storage", uri)
    assert_refused(code, err, tmp_path / "nothing", "--storage", needle)


def test_storage_uri_that_cannot_be_opened_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, mlflow={"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"})
    code, _, err = run_main(capsys, str(spec), "--storage", "hdfs://127.0.0.1:1/runs")
    assert_refused(code, err, tmp_path / "nothing", "hdfs://127.0.0.1:1/runs")
    assert "cannot be opened" in err or "not writable" in err
    assert not (tmp_path / "mlflow.db").exists()


def test_bad_max_concurrent_override_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path)
    code, _, err = run_main(capsys, str(spec), "--storage", str(tmp_path / "s"), "--max-concurrent", "0")
    assert_refused(code, err, tmp_path / "s", "--max-concurrent", "`max_concurrent`: 0 is not allowed")


# ----- storage that is missing, unwritable or full ---------------------------------------------

def test_storage_under_a_file_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    spec = write_spec(tmp_path)
    for storage in (blocker, blocker / "runs"):
        code, _, err = run_main(capsys, str(spec), "--storage", str(storage))
        assert_refused(code, err, tmp_path / "nothing", "is not writable")
        assert blocker.read_text() == "not a directory\n"


def test_storage_on_an_unwritable_file_system_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path)                  # /proc refuses new directories, even to root
    code, _, err = run_main(capsys, str(spec), "--storage", "/proc/mmc-sweep-test-storage")
    assert_refused(code, err, tmp_path / "nothing", "/proc/mmc-sweep-test-storage", "is not writable")


def test_full_storage_is_refused_and_leaves_no_directories(tmp_path, capsys, monkeypatch):
    def full(self, path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(Storage, "write_bytes", full)
    storage = tmp_path / "storage"
    spec = write_spec(tmp_path)
    code, _, err = run_main(capsys, str(spec), "--storage", str(storage))
    assert_refused(code, err, storage, "No space left on device")
    assert not storage.exists()                # the directories the probe made are removed again


def test_missing_storage_directory_is_probed_without_leaving_anything(tmp_path):
    """A local storage path that does not exist yet is fine (created when the run starts)."""
    layout = SweepLayout(Storage(tmp_path / "new" / "runs"), "good")
    sweep.check_storage(layout)
    assert not (tmp_path / "new").exists()     # the probe leaves nothing behind


# ----- data -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset, needle", [
    ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ("cifar100", "cifar-100-python/train"),
    ("fashion_mnist", "train-images-idx3-ubyte"),
    ("dominoes", "cifar-10-batches-py/test_batch"),
])
def test_real_dataset_without_its_files_is_refused(dataset, needle, tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    storage = tmp_path / "storage"
    storage.mkdir()
    spec = write_spec(tmp_path, data={"dataset": dataset, "root": str(root)})
    code, _, err = run_main(capsys, str(spec), "--storage", str(storage))
    assert_refused(code, err, storage, needle, f"mmc-sweep data download {dataset} --root {root}")


def test_missing_data_root_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, data={"dataset": "cifar10", "root": str(tmp_path / "nowhere")})
    code, _, err = run_main(capsys, str(spec), "--storage", str(tmp_path / "s"))
    assert_refused(code, err, tmp_path / "s", "`data.root`", "is not an existing directory")
    spec = write_spec(tmp_path, data={"dataset": "cifar10"})
    code, _, err = run_main(capsys, str(spec), "--storage", str(tmp_path / "s"))
    assert_refused(code, err, tmp_path / "s", "`data.root`: is required for dataset 'cifar10'")


# ----- resources ------------------------------------------------------------------------------

def test_more_gpus_than_the_cluster_has_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "init_ray", lambda **kwargs: None)
    monkeypatch.setattr(sweep, "cluster_resources", lambda: {"CPU": 2.0, "memory": 8e9})
    storage = tmp_path / "storage"
    spec = write_spec(tmp_path, resources={"pretrain": {"cpus": 1, "gpus": 2}})
    code, _, err = run_main(capsys, str(spec), "--storage", str(storage))
    assert_refused(code, err, storage, "the cluster cannot run this sweep", "pretrain")
    assert not storage.exists()


def test_impossible_resources_on_a_real_local_ray(tmp_path):
    storage = tmp_path / "storage"
    spec = write_spec(tmp_path, resources={"pretrain": {"cpus": 1, "gpus": 1}})
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(spec), "--storage", str(storage),
                           "--num-cpus", "1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert_refused(proc.returncode, proc.stderr, storage, "the cluster cannot run this sweep", "GPU")
    assert not storage.exists()


# ----- two `run` commands on one sweep ---------------------------------------------------------

def test_second_run_on_a_locked_sweep_is_refused(tmp_path, capsys):
    holder = subprocess.Popen(["sleep", "60"])
    try:
        layout = SweepLayout(Storage(tmp_path / "storage"), "good")
        lock = Path(layout.lock_file())
        lock.parent.mkdir(parents=True)
        record = {"pid": holder.pid, "host": socket.gethostname(), "user": "someone", "started_at": time.time()}
        lock.write_text(json.dumps(record))
        spec = write_spec(tmp_path)
        code, _, err = run_main(capsys, str(spec), "--storage", str(tmp_path / "storage"))
        assert code == cli.EXIT_BAD_INPUT and "Traceback" not in err
        assert f"another `mmc-sweep run` (pid {holder.pid} on {socket.gethostname()}" in err
        assert f"delete {lock}" in err
        assert json.loads(lock.read_text()) == record                  # the holder's lock is untouched
        assert sorted(p.name for p in lock.parent.iterdir()) == ["run.lock"]   # nothing else written
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_driver_is_taken_over(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    layout = SweepLayout(Storage(tmp_path), "good")
    Path(layout.root).mkdir()
    Path(layout.lock_file()).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with sweep.sweep_lock(layout):
        assert json.loads(Path(layout.lock_file()).read_text())["pid"] == os.getpid()
    assert not Path(layout.lock_file()).exists()


def _contend(root: str, barrier, results) -> None:
    layout = SweepLayout(Storage(root), "good")
    barrier.wait()
    try:
        with sweep.sweep_lock(layout):
            results.put("won")
            time.sleep(1.0)
    except sweep.SweepError as exc:
        results.put(f"refused: {exc}")


def test_two_drivers_started_at_once_exactly_one_wins(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert outcomes[1] == "won" and outcomes[0].startswith("refused: another `mmc-sweep run`"), outcomes


# ----- other commands -------------------------------------------------------------------------

def test_status_and_report_of_a_non_sweep_directory_are_refused(tmp_path, capsys):
    for command in ("status", "report"):
        code = cli.main([command, str(tmp_path / "nothing-here")])
        err = capsys.readouterr().err
        assert code == cli.EXIT_BAD_INPUT and "is not a sweep directory" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_good_spec_passes_every_check_before_ray(tmp_path, capsys):
    """Control: the same helpers accept a valid spec, so the refusals above are specific."""
    spec = write_spec(tmp_path)
    with pytest.raises(AssertionError, match="Ray was started"):
        cli.main(["run", str(spec), "--storage", str(tmp_path / "s")])
    assert load_spec(spec).name == "good"
    assert not (tmp_path / "s" / "good" / "run.lock").exists()


def test_remote_storage_needs_and_accepts_a_tracking_uri_override():
    from orchestrator.cli import _load
    from orchestrator.spec import SpecError

    spec_path = str(REPO / "sweeps" / "smoke.yaml")
    with pytest.raises(SpecError, match="tracking_uri"):
        _load(spec_path, "s3://bucket/mmc-runs")
    spec, _ = _load(spec_path, "s3://bucket/mmc-runs", None, "http://127.0.0.1:5000")
    assert spec.storage == "s3://bucket/mmc-runs" and spec.mlflow.tracking_uri == "http://127.0.0.1:5000"
