"""Hostile or broken state in a sweep directory, through the real CLI: markers (`done.json`), the lock,
the stored spec, the plan and the directories a run writes into.

What must hold: state that cannot be a finished task's marker counts as "not finished" (the task is
recomputed), never a traceback or a hang; a lock or stored spec that cannot be trusted is refused with
exit 2 and a message naming the file and the fix, leaving the directory exactly as it was; nothing
outside the sweep is read as an output or touched.

Each test builds a finished sweep directory without Ray (`finished_sweep`: spec.yaml, plan.parquet and
a marker with a checkpoint for every task, as a run writes them), plants one fault, and runs
`orchestrator.cli.main`. `init_ray` is replaced by a stand-in that raises `RayStarted`: reaching it
means every check passed and the run would now compute the unfinished tasks.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from orchestrator.messages import counted
from orchestrator import cli, knobs
from orchestrator.results import outputs, plan
from orchestrator.run import preflight, sweep
from orchestrator.run.capacity import ClusterView
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.results.outputs import TaskOutput
from orchestrator.spec.sweep_spec import dump_spec, load_spec, science
from orchestrator.run.sweep import SweepState
from tests.orchestrator.test_cli_errors import GOOD
from tests.support import runners

SYNTHETIC = runners.name("synthetic")

pytestmark = pytest.mark.timeout(120)   # a hang is a failure, not a stuck suite

MAX_SECONDS = 10
SPEC = {**GOOD, "max_concurrent": 2, "mlflow": {"enabled": False}}


class RayStarted(Exception):
    """The run passed every check and would now start the cluster for the unfinished tasks."""


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise RayStarted()
    monkeypatch.setattr(sweep, "init_ray", refuse)


class Sweep:
    def __init__(self, tmp: Path, **changes):
        self.tmp = tmp
        self.spec_path = tmp / "spec.yaml"
        self.spec_path.write_text(yaml.safe_dump({**SPEC, **changes}, sort_keys=False))
        spec = load_spec(self.spec_path)
        self.storage = tmp / "storage"
        self.layout = SweepLayout(Storage(self.storage), spec.name)
        self.graph = build_graph(spec)
        self.layout.storage.write_bytes(self.layout.spec_file(), dump_spec(spec).encode())
        plan.write_plan(self.layout, self.graph)
        for task in self.graph.tasks.values():
            outputs.write_outputs(self.layout, task, TaskOutput(checkpoint={"w": torch.arange(4.0)}))
        self.task = next(t for t in self.graph.tasks.values() if t.kind == "pretrain")
        self.root = Path(self.layout.root)

    @property
    def marker(self) -> Path:
        return Path(self.layout.marker_file(self.task.kind, self.task.id))

    def marker_json(self) -> dict:
        return json.loads(self.marker.read_text())

    def listed(self) -> Path:
        """The checkpoint file the task's marker lists."""
        return self.root / next(n for n in self.marker_json()["files"] if n.endswith("model.safetensors"))

    def snapshot(self) -> dict[str, tuple]:
        """Every entry under the storage with its type, and for files their size and mtime (FIFOs are
        not opened; a directory's mtime changes with the storage probe, which leaves nothing behind)."""
        out = {}
        for p in sorted(self.storage.rglob("*")):
            st = os.lstat(p)
            out[str(p.relative_to(self.storage))] = (st.st_mode,) if p.is_dir() and not p.is_symlink() else \
                (st.st_mode, st.st_size, st.st_mtime_ns)
        return out

    def run(self, capsys, *flags: str) -> tuple[object, str, str, float]:
        start = time.monotonic()
        try:
            code = cli.main(["run", str(self.spec_path), "--storage", str(self.storage), "--no-report", *flags])
        except RayStarted:
            code = "ray"
        out, err = capsys.readouterr()
        return code, out, err, time.monotonic() - start

    def command(self, capsys, command: str) -> tuple[int, str, str, float]:
        start = time.monotonic()
        code = cli.main([command, str(self.root)])
        out, err = capsys.readouterr()
        return code, out, err, time.monotonic() - start


@pytest.fixture
def finished(tmp_path) -> Sweep:
    return Sweep(tmp_path)


def assert_no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and "Error:" not in text.replace("error:", ""), text


# ----- control --------------------------------------------------------------------------------

def test_a_finished_sweep_reruns_without_ray(finished, capsys):
    """Control: every marker verifies, so a rerun needs no cluster and exits 0."""
    code, out, err, elapsed = finished.run(capsys)
    assert code == 0, err
    assert f"{len(finished.graph.tasks)} already finished, 0 to run" in out
    assert elapsed < 60


def test_a_finished_sweep_with_default_max_concurrent_reruns(tmp_path, capsys):
    finished = Sweep(tmp_path, max_concurrent=None)
    code, out, err, _ = finished.run(capsys)
    assert code == 0, err


# ----- done.json that is not a marker of this task: recomputed ---------------------------------

def _write(text: str | bytes):
    def plant(s: Sweep) -> None:
        s.marker.unlink()
        (s.marker.write_bytes if isinstance(text, bytes) else s.marker.write_text)(text)
    return plant


def _edit(change):
    def plant(s: Sweep) -> None:
        marker = s.marker_json()
        change(s, marker)
        s.marker.write_text(json.dumps(marker))
    return plant


def _directory(s: Sweep) -> None:
    s.marker.unlink()
    s.marker.mkdir()
    (s.marker / "x").write_text("{}")


def _fifo(s: Sweep) -> None:
    s.marker.unlink()
    os.mkfifo(s.marker)


def _listed_fifo(s: Sweep) -> None:
    path = s.listed()
    path.unlink()
    os.mkfifo(path)


def _listed_directory(s: Sweep) -> None:
    path = s.listed()
    path.unlink()
    path.mkdir()


def _truncated(s: Sweep) -> None:
    path = s.listed()
    path.write_bytes(path.read_bytes()[:-1])


def _sparse_huge(s: Sweep) -> None:
    """A 64 GiB sparse file where the checkpoint was: refused by its size, never read."""
    with open(s.listed(), "r+b") as f:
        f.truncate(64 << 30)


def _outside(name: str):
    def change(s: Sweep, marker: dict) -> None:
        secret = s.tmp / "outside.txt"
        secret.write_text("not an output")
        marker["files"] = {name.format(outside=secret): "0" * 64}
    return change


HOSTILE_MARKERS = {
    "json-list": _write("[1, 2, 3]"),
    "json-string": _write('"done"'),
    "empty": _write(""),
    "garbage": _write(b"\x00\xff\xfe garbage"),
    "not-utf8": _write(b'{"version": 2, "files": {"\xff": "x"}}'),
    "deeply-nested-list": _write("[" * 200_000 + "]" * 200_000),
    "deeply-nested-dict": _write('{"a":' * 100_000 + "1" + "}" * 100_000),
    "too-large": _write(b" " * (outputs.MAX_MARKER_BYTES + 1) + b"{}"),
    "nan": _write('{"version": NaN, "files": {}}'),
    "directory": _directory,
    "fifo": _fifo,
    "files-a-list": _edit(lambda s, m: m.update(files=["model.safetensors"])),
    "files-missing": _edit(lambda s, m: m.pop("files")),
    "wrong-task-id": _edit(lambda s, m: m.update(task_id="pretrain-0000000000000000")),
    "wrong-version": _edit(lambda s, m: m.update(version=99)),
    "metrics-a-list": _edit(lambda s, m: m.update(metrics=[1])),
    "path-outside-relative": _edit(_outside("../../../outside.txt")),
    "path-outside-absolute": _edit(_outside("{outside}")),
    "path-other-task": _edit(lambda s, m: m.update(files={
        f"tasks/pretrain/{next(t for t in s.graph.tasks if t != s.task.id and t.startswith('pretrain'))}/"
        "model.safetensors": "0" * 64})),
    "digest-malformed": _edit(lambda s, m: m["files"].update({k: "xyz" for k in m["files"]})),
    "sha-wrong": _edit(lambda s, m: m["files"].update({k: "f" * 64 for k in m["files"]})),
    "size-wrong": _edit(lambda s, m: m["sizes"].update({k: 1 for k in m["sizes"]})),
    "listed-file-truncated": _truncated,
    "listed-file-fifo": _listed_fifo,
    "listed-file-directory": _listed_directory,
    "listed-file-sparse-64GiB": _sparse_huge,
}


@pytest.mark.parametrize("fault", list(HOSTILE_MARKERS))
def test_hostile_marker_counts_as_not_finished(fault, finished, capsys):
    HOSTILE_MARKERS[fault](finished)
    outside = finished.tmp / "outside.txt"
    before = outside.read_bytes() if outside.exists() else None

    start = time.monotonic()
    ok, reason = outputs.verify_outputs(finished.layout, finished.task.kind, finished.task.id)
    assert not ok and reason and time.monotonic() - start < MAX_SECONDS
    content_fault = fault.startswith(("sha-", "size-", "listed-"))   # a well-formed marker, broken files
    marker = outputs.read_marker(finished.layout, finished.task.kind, finished.task.id)
    assert (marker is not None) == content_fault

    code, out, err, elapsed = finished.command(capsys, "status")   # from another terminal, while it runs
    assert code == 0 and elapsed < MAX_SECONDS, err
    assert_no_traceback(out, err)
    total = [line for line in out.splitlines() if line.startswith("total")][0].split()
    assert int(total[2]) == len(finished.graph.tasks) - 1 and int(total[5]) == 1, out   # finished, remaining
    if content_fault:       # status verifies as a run does, and names what it found
        assert f"{finished.task.id}: " in out and "no longer verify" in out, out

    code, out, err, elapsed = finished.run(capsys)
    assert code == "ray" and elapsed < MAX_SECONDS, err   # every check passed; the task is left to compute
    assert_no_traceback(out, err)

    state = SweepState(finished.graph)
    logged = []
    sweep.mark_cached(state, finished.layout, sweep.verify_all(finished.graph, finished.layout), logged.append)
    made_from = finished.graph.descendants(finished.task.id)     # made from its outputs: they run again too
    assert made_from and [t for t, s in state.states.items() if s.status != "cached"] == [finished.task.id, *made_from]
    assert logged[0].startswith(f"recomputing {finished.task.id}: its stored output is not valid")
    assert len(logged) == 2 and logged[1].startswith(f"checking again {counted(len(made_from), 'finished task')} made from the outputs")
    assert not finished.marker.exists() and not finished.marker.is_symlink()   # invalidated: the task reruns
    if before is not None:
        assert outside.read_bytes() == before   # nothing outside the sweep is touched


def test_hostile_marker_through_a_real_subprocess(finished):
    """`status` as a user runs it, with a FIFO in place of done.json: no hang, exit 0."""
    import subprocess
    import sys

    _fifo(finished)
    repo = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "status", str(finished.root)], cwd=finished.tmp,
                          env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "remaining" in proc.stdout


# ----- run.lock that is not a lock: refused, nothing touched ------------------------------------

def _lock(content: str | bytes | None = None, kind: str = "file"):
    def plant(s: Sweep) -> None:
        path = Path(s.layout.lock_file())
        if kind == "directory":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return plant


HOSTILE_LOCKS = {
    "json-list": (_lock("[1234]"), "is not a lock file of mmc-sweep"),
    "pid-not-a-number": (_lock('{"pid": "abc", "host": "h"}'), "is not a lock file of mmc-sweep"),
    "pid-negative": (_lock('{"pid": -1}'), "is not a lock file of mmc-sweep"),
    "pid-zero": (_lock('{"pid": 0}'), "is not a lock file of mmc-sweep"),
    "pid-beyond-pid_t": (_lock(json.dumps({"pid": 2 ** 70, "host": socket.gethostname()})),
                         "is not a lock file of mmc-sweep"),
    "pid-bool": (_lock('{"pid": true}'), "is not a lock file of mmc-sweep"),
    "garbage": (_lock(b"\x00\x01\xff garbage"), "is not a lock file of mmc-sweep"),
    "deeply-nested": (_lock("[" * 100_000 + "]" * 100_000), "is not a lock file of mmc-sweep"),
    "too-large": (_lock(" " * 10_000 + "{}"), "is not a lock file of mmc-sweep"),
    "directory": (_lock(kind="directory"), "is not a lock file of mmc-sweep"),
    "fifo": (_lock(kind="fifo"), "is not a lock file of mmc-sweep"),
    "empty": (_lock(""), "its lock file is being written"),
    "live-pid-other-host": (_lock(json.dumps({"pid": os.getpid(), "host": "elsewhere", "started_at": "soon"})),
                            f"pid {os.getpid()} on elsewhere, started at an unknown time"),
}


@pytest.mark.parametrize("fault", list(HOSTILE_LOCKS))
def test_hostile_lock_is_refused_and_left_alone(fault, finished, capsys):
    plant, needle = HOSTILE_LOCKS[fault]
    plant(finished)
    before = finished.snapshot()
    code, out, err, elapsed = finished.run(capsys)
    assert code == cli.EXIT_BAD_INPUT and elapsed < MAX_SECONDS, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert needle in err and str(finished.layout.lock_file()) in err and "delete" in err, err
    assert finished.snapshot() == before   # the lock, the markers, everything exactly as it was


# ----- directories a run writes into that are files --------------------------------------------

@pytest.mark.parametrize("where", ["report", "results", "results/tasks", "tasks", "tasks/finetune", "ray"])
def test_file_where_the_run_writes_a_directory_is_refused(where, finished, capsys):
    path = finished.root / where
    if path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a file\n")
    before = finished.snapshot()
    code, out, err, elapsed = finished.run(capsys)
    assert code == cli.EXIT_BAD_INPUT and elapsed < MAX_SECONDS, err
    assert f"{path} is not a directory, but mmc-sweep writes into a directory there; move it away" in err
    assert "Traceback" not in err and finished.snapshot() == before


def test_report_into_a_report_file_is_refused(finished, capsys):
    (finished.root / "report").write_text("a file\n")
    before = finished.snapshot()
    code, out, err, elapsed = finished.command(capsys, "report")
    assert code == cli.EXIT_BAD_INPUT and "report is not a directory" in err and "Traceback" not in err
    assert finished.snapshot() == before


# ----- compacted results damaged after the run: nothing lost --------------------------------------

@pytest.fixture
def compacted(tmp_path, monkeypatch):
    """A sweep run to the end through the CLI (tasks inline, the synthetic runner, deterministic like
    CPU training), its results compacted into one part per table: (Sweep, every table's rows)."""
    from orchestrator.results import compact
    from tests.orchestrator.results.test_compact import inline_run_graph

    monkeypatch.setattr(sweep, "_connect", lambda *a: None)
    monkeypatch.setattr(sweep.preflight, "check_cluster", lambda *a, **k: None)
    monkeypatch.setattr(sweep, "read_cluster", lambda *a, **k: ClusterView(visible={"CPU": 2}))
    monkeypatch.setattr(sweep, "run_graph", inline_run_graph(None))
    monkeypatch.setenv(knobs.COMPACT_MIN_FRAGMENTS.name, "1")
    s = Sweep.__new__(Sweep)
    s.tmp, s.spec_path, s.storage = tmp_path, tmp_path / "spec.yaml", tmp_path / "storage"
    s.spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    assert cli.main(["run", str(s.spec_path), "--storage", str(s.storage), "--no-report", "--runner", SYNTHETIC]) == 0
    spec = load_spec(s.spec_path)
    s.layout = SweepLayout(Storage(s.storage), spec.name)
    s.graph = build_graph(spec)
    s.task = next(t for t in s.graph.tasks.values() if t.kind == "path_eval")
    s.root = Path(s.layout.root)
    assert sorted(p.name.split("-")[0] for p in (s.root / "results" / "paths").iterdir()) == ["part"]
    return s, _all_rows(s)


def _all_rows(s: Sweep) -> dict:
    from orchestrator.api import open_sweep

    opened = open_sweep(str(s.root))
    return {t: opened.table(t) for t in ("evaluations", "train_curves", "paths", "barriers", "tasks")}


def _parts(s: Sweep) -> list[Path]:
    return sorted((s.root / "results").glob("*/part-*.parquet"))


def _flip(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


DAMAGE = {   # what happened to the compacted parts (or the markers) after the run finished
    "parts-deleted": lambda s: [p.unlink() for p in _parts(s)],
    "parts-flipped-byte": lambda s: [_flip(p) for p in _parts(s)],
    "parts-truncated": lambda s: [p.write_bytes(p.read_bytes()[:-100]) for p in _parts(s)],
    "parts-renamed": lambda s: [p.rename(p.with_name("part-renamed-" + p.name[5:])) for p in _parts(s)],
    "part-copied-as-a-fragment": lambda s: shutil.copy(_parts(s)[0], _parts(s)[0].with_name("copy.parquet")),
    "marker-deleted": lambda s: Path(s.layout.marker_file(s.task.kind, s.task.id)).unlink(),
    "compaction-temporaries": lambda s: [(p.parent / (p.name + ".tmp-0123abcd")).write_bytes(b"half")
                                         for p in [*_parts(s), *sorted((s.root / "results" / "_manifests").iterdir())]],
}


@pytest.mark.parametrize("fault", list(DAMAGE))
def test_damaged_results_are_mended_and_nothing_is_lost(fault, compacted, capsys):
    """A compacted part deleted, damaged, renamed or copied, a done.json deleted (the task recomputed while
    its rows are still compacted), temporary files of a killed compaction: `status` does not call the damaged tasks finished; the rerun (exit 0) restores
    or recomputes exactly what is missing, and afterwards every table (read by mmc-sweep, and by a glob
    over its data files) holds each task's rows once, equal to the original run's."""
    import pyarrow.dataset as ds

    s, original = compacted
    DAMAGE[fault](s)
    code, out, err, _ = s.command(capsys, "status")
    assert code == 0 and "Traceback" not in err
    total = [line for line in out.splitlines() if line.startswith("total")][0].split()
    healthy = fault in ("compaction-temporaries", "part-copied-as-a-fragment")
    assert (int(total[2]) == len(s.graph)) == healthy, out     # finished only what verifies

    code, out, err, _ = s.run(capsys, "--runner", SYNTHETIC)
    assert code == 0 and "Traceback" not in err, err
    again = _all_rows(s)
    for table in ("evaluations", "train_curves", "paths", "barriers"):
        pd.testing.assert_frame_equal(again[table], original[table], obj=table)
    assert sorted(again["tasks"]["task_id"]) == sorted(original["tasks"]["task_id"])   # one row each, none lost
    for table, rows in again.items():                                                  # what a glob reads
        files = sorted(str(p) for p in (s.root / "results" / table).glob("*.parquet"))
        assert ds.dataset(files, format="parquet").count_rows() == len(rows), table
    assert not list((s.root / "results").rglob("*.tmp-*"))
    code, out, err, _ = s.command(capsys, "status")
    assert code == 0 and "100% finished" in out, out


# ----- symbolic links: nothing read, written or deleted through them -----------------------------

def _outside_tree(tmp: Path) -> Path:
    """A directory outside the storage with files a link could expose to writes and deletions."""
    outside = tmp / "outside"
    (outside / "sub").mkdir(parents=True, exist_ok=True)
    for name in ("report.html", "summary.parquet", "precious.txt", "sub/keep.txt"):
        (outside / name).write_text(f"not mmc-sweep's: {name}\n")
    return outside


def _tree(root: Path) -> dict[str, tuple]:
    return {str(p.relative_to(root)): (os.lstat(p).st_mode, os.lstat(p).st_size, os.lstat(p).st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _link(where: str, target: str = "dir"):
    """Replace `where` (under the sweep directory; "." is the sweep directory itself) by a symbolic link:
    to a directory outside the storage, to a file outside it, or to /dev/zero."""
    def plant(s: Sweep) -> Path:
        outside = _outside_tree(s.tmp)
        path = s.root if where == "." else s.root / where.format(task=s.task.id, kind=s.task.kind)
        if where == ".":
            moved = s.tmp / "moved-sweep"
            shutil.move(str(s.root), moved)
            path.symlink_to(moved)
            return path
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to({"dir": outside, "file": outside / "precious.txt", "dev-zero": Path("/dev/zero")}[target])
        return path
    return plant


LINKS = {
    "report-dir": _link("report"),
    "results-dir": _link("results"),
    "table-dir": _link("results/paths"),
    "manifests-dir": _link("results/_manifests"),
    "tasks-kind-dir": _link("tasks/{kind}"),
    "task-dir": _link("tasks/{kind}/{task}"),
    "ray-dir": _link("ray"),
    "lock-file": _link("run.lock", "file"),
    "mlflow-db": _link("mlflow.db", "file"),
    "marker-dev-zero": _link("tasks/{kind}/{task}/done.json", "dev-zero"),
    "checkpoint-dev-zero": _link("tasks/{kind}/{task}/model.safetensors", "dev-zero"),
    "checkpoint-outside": _link("tasks/{kind}/{task}/model.safetensors", "file"),
    "sweep-dir": _link("."),
}


@pytest.mark.parametrize("fault", list(LINKS))
def test_a_link_in_the_sweep_is_refused_and_nothing_outside_is_touched(fault, finished, capsys):
    """A symbolic link where a directory or file of the sweep belongs could send the report, results,
    checkpoints, the lock or MLflow's files outside the storage: run, report and compact refuse it with
    exit 2 naming the link, before any work; status reads nothing through it; nothing changes anywhere."""
    link = LINKS[fault](finished)
    outside = finished.tmp / "outside"
    before, sweep_before = _tree(outside), finished.snapshot()
    for command in ("run", "report", "compact", "status"):
        if command == "run":
            code, out, err, elapsed = finished.run(capsys)
        else:
            code, out, err, elapsed = finished.command(capsys, command)
        assert_no_traceback(out, err)
        assert elapsed < MAX_SECONDS, (command, err)
        if command != "status" or code != 0:
            assert code == cli.EXIT_BAD_INPUT, (command, code, out, err)
            assert err.count("error: ") == 1 and f"{link} is a symbolic link" in err, (command, err)
        assert _tree(outside) == before, command                 # nothing written or deleted outside
        assert finished.snapshot() == sweep_before, command      # and nothing inside either
    assert Path("/dev/zero").exists()


# ----- the stored spec ------------------------------------------------------------------------

HOSTILE_SPECS = {
    "not-utf8": (b"name: good\n# \xff\n", "is not UTF-8 text (byte 13: b'\\xff'); save it as UTF-8"),
    "utf16": ("name: good\n".encode("utf-16"), "is not UTF-8 text"),
    "garbled-yaml": (b"name: [good\n", "is unreadable (invalid YAML at line 2"),
    "a-list": (b"- name\n- good\n", "is not a mapping"),
    "a-scalar": (b"good\n", "is not a mapping"),
    "alias-bomb": ((Path(__file__).parents[1] / "bad_specs" / "alias_bomb.yaml").read_bytes(),
                   "more than 100000 values once aliases are expanded"),
    "deeply-nested": (b"a: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "nested more than 32 levels deep"),
    "too-large": (b"#" * (preflight.MAX_SPEC_BYTES + 1), "more than the 1000000 expected"),
    "python-tag": (b"name: !!python/object/apply:os.system [touch PWNED]\n",
                   "the tag '!!python/object/apply:os.system'"),
}


@pytest.mark.parametrize("fault", list(HOSTILE_SPECS))
def test_unreadable_stored_spec_is_refused(fault, finished, capsys):
    content, needle = HOSTILE_SPECS[fault]
    Path(finished.layout.spec_file()).write_bytes(content)
    before = finished.snapshot()
    code, out, err, elapsed = finished.run(capsys)
    assert code == cli.EXIT_BAD_INPUT and elapsed < MAX_SECONDS, err
    assert err.count("error: ") == 1 and "Traceback" not in err
    assert f"the stored spec {finished.layout.spec_file()}" in err and needle in err, err
    assert "rerun with --new-version to replace it" in err
    assert finished.snapshot() == before and not (finished.tmp / "PWNED").exists()


def test_new_version_replaces_an_unreadable_stored_spec(finished, capsys):
    garbled = b"name: [good\n# \xff\n"
    Path(finished.layout.spec_file()).write_bytes(garbled)
    code, out, err, _ = finished.run(capsys, "--new-version")
    assert code == 0, err
    assert Path(finished.layout.spec_version_file(1)).read_bytes() == garbled   # kept, not lost
    stored = yaml.safe_load(Path(finished.layout.spec_file()).read_text())
    assert science(stored) == science(load_spec(finished.spec_path).resolved)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_stored_spec_that_is_not_a_file_is_refused_even_with_new_version(kind, finished, capsys):
    path = Path(finished.layout.spec_file())
    path.unlink()
    path.mkdir() if kind == "directory" else os.mkfifo(path)
    before = finished.snapshot()
    for flags in ((), ("--new-version",)):
        code, out, err, elapsed = finished.run(capsys, *flags)
        assert code == cli.EXIT_BAD_INPUT and elapsed < MAX_SECONDS, err
        assert f"the stored spec {path} is not a regular file" in err and "Traceback" not in err
    for command in ("status", "report"):
        code, out, err, elapsed = finished.command(capsys, command)
        assert code == cli.EXIT_BAD_INPUT and "its spec.yaml is not a regular file" in err, err
    assert finished.snapshot() == before


def test_rerun_with_changed_settings_is_refused(finished, capsys):
    finished.spec_path.write_text(yaml.safe_dump({**SPEC, "pretrain": {"epochs": 2}}, sort_keys=False))
    before = finished.snapshot()
    code, out, err, elapsed = finished.run(capsys)
    assert code == cli.EXIT_BAD_INPUT and elapsed < MAX_SECONDS, err
    assert "sweep `good`" in err and "was run with other settings" in err and "pretrain.epochs: 1 -> 2" in err
    assert "--new-version" in err and "another `name`" in err
    assert finished.snapshot() == before
    code, out, err, _ = finished.run(capsys, "--new-version")   # asked for explicitly: the changed tasks run
    assert code == "ray", err


def test_where_and_how_may_change_without_a_new_version(finished, capsys):
    """Storage, resources, max_concurrent and MLflow are not the science of a sweep."""
    finished.spec_path.write_text(yaml.safe_dump({**SPEC, "max_concurrent": 1,
                                                  "resources": {"path_eval": {"cpus": 2}}}, sort_keys=False))
    code, out, err, _ = finished.run(capsys)
    assert code == 0, err


# ----- plan.parquet ---------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["garbled", "fifo", "directory", "empty"])
def test_an_unreadable_plan_is_rebuilt_by_status_from_the_stored_spec(fault, finished, capsys):
    """As a missing plan.parquet is: the plan of the stored spec.yaml, said rebuilt; nothing hangs on a FIFO,
    nothing is written; with spec.yaml unreadable too, one line naming both, exit 2."""
    path = Path(finished.layout.plan_file())
    path.unlink()
    {"garbled": lambda: path.write_bytes(b"PAR1 not parquet PAR1"), "fifo": lambda: os.mkfifo(path),
     "directory": path.mkdir, "empty": lambda: path.write_bytes(b"")}[fault]()
    before = finished.snapshot()
    code, out, err, elapsed = finished.command(capsys, "status")
    assert code == 0 and elapsed < MAX_SECONDS, err
    assert "plan.parquet is missing or unreadable; the plan of the stored spec.yaml was rebuilt" in out + err
    assert finished.snapshot() == before
    Path(finished.layout.spec_file()).write_text("name: [x\n")
    code, out, err, elapsed = finished.command(capsys, "status")
    assert code == cli.EXIT_BAD_INPUT and elapsed < MAX_SECONDS, err
    assert f"cannot read the status of {finished.root}" in err and "has an unreadable plan.parquet" in err
    assert "Traceback" not in err and err.count("\n") == 1


# ----- report ---------------------------------------------------------------------------------

def _fragment(content: bytes | None):
    def plant(s: Sweep) -> None:
        folder = s.root / "results" / "paths"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{s.task.id}.parquet"
        os.mkfifo(path) if content is None else path.write_bytes(content)
    return plant


@pytest.mark.parametrize("fault", ["garbled-fragment", "fifo-fragment"])
def test_report_skips_unreadable_fragments(fault, finished, capsys):
    {"garbled-fragment": _fragment(b"garbage"), "fifo-fragment": _fragment(None)}[fault](finished)
    code, out, err, elapsed = finished.command(capsys, "report")
    assert code == 0 and elapsed < 60, err
    assert "Traceback" not in err and (finished.root / "report" / "report.html").is_file()


def test_report_over_a_directory_named_report_html_is_refused(finished, capsys):
    (finished.root / "report" / "report.html").mkdir(parents=True)
    code, out, err, elapsed = finished.command(capsys, "report")
    assert code == cli.EXIT_BAD_INPUT and "cannot write the report into" in err and "Traceback" not in err, err
