"""Storage layout: every path stays under the root, writes are atomic, remote storage works."""
import pickle
from pathlib import Path

import pytest

from orchestrator.graph.dag import build_graph
from orchestrator.vocab import TABLES, TASK_KINDS
from orchestrator.storage.layout import LayoutError, Storage, SweepLayout
from orchestrator.spec.sweep_spec import load_spec

BAD_NAMES = ["..", ".", "", "a/b", "../x", "/abs", ".hidden", "a\\b", "x..y", "-flag", "a b", "a\0b"]


@pytest.fixture
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "runs")), "default")


def all_paths(layout: SweepLayout) -> list[str]:
    graph = build_graph(load_spec(None))
    paths = [layout.spec_file(), layout.lock_file(), layout.report_dir(), layout.report_file("report.html"),
             layout.mlflow_db(), layout.ray_dir()]
    for task in graph.tasks.values():
        paths += [layout.task_dir(task.kind, task.id), layout.marker_file(task.kind, task.id),
                  *layout.checkpoint_files(task.kind, task.id).values(),
                  *layout.resume_files(task.kind, task.id).values()]
        for table in TABLES:
            paths += [layout.table_dir(table), layout.fragment(table, task.id)]
    return paths


def test_paths_follow_the_documented_layout(layout, tmp_path):
    root = f"{tmp_path}/runs/default"
    assert layout.root == root
    assert layout.spec_file() == f"{root}/spec.yaml"
    assert layout.task_dir("pretrain", "pretrain-0123") == f"{root}/tasks/pretrain/pretrain-0123"
    assert layout.checkpoint_files("align", "align-9") == {
        "model.safetensors": f"{root}/tasks/align/align-9/model.safetensors",
        "meta.json": f"{root}/tasks/align/align-9/meta.json"}
    assert layout.resume_files("pretrain", "p-1")["meta.json"] == f"{root}/tasks/pretrain/p-1/resume/meta.json"
    assert layout.fragment("paths", "path_eval-1") == f"{root}/results/paths/path_eval-1.parquet"
    assert layout.table_dir("barriers") == f"{root}/results/barriers"
    assert layout.report_file("summary.csv") == f"{root}/report/summary.csv"
    assert layout.mlflow_uri() == f"sqlite:///{root}/mlflow.db"
    assert layout.ray_dir() == f"{root}/ray"
    assert layout.lock_file().startswith(root + "/")
    assert layout.plan_file() == f"{root}/plan.parquet" and layout.spec_version_file(2) == f"{root}/spec-v2.yaml"
    assert layout.marker_file("finetune", "f-1") == f"{root}/tasks/finetune/f-1/done.json"
    assert layout.resume_dir("midpoint", "m-1") == f"{root}/tasks/midpoint/m-1/resume"
    assert layout.compacted_file("paths", "0001") == f"{root}/results/paths/part-0001.parquet"


def test_every_path_stays_under_the_sweep_root(layout):
    paths = all_paths(layout)
    assert len(paths) > 1000
    for path in paths:
        resolved = Path(path).resolve()
        assert resolved.is_relative_to(Path(layout.root).resolve()), path
        assert "/../" not in path and "/./" not in path


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_names_that_could_escape_are_refused(layout, bad):
    for make in (lambda: layout.task_dir("pretrain", bad), lambda: layout.task_dir(bad, "pretrain-1"),
                 lambda: layout.fragment(bad, "t"), lambda: layout.fragment("paths", bad),
                 lambda: layout.report_file(bad), lambda: SweepLayout(layout.storage, bad)):
        with pytest.raises(LayoutError):
            make()
    if bad != "a/b":                      # join takes relative paths with '/' between safe names
        with pytest.raises(LayoutError):
            layout.storage.join("results", bad)


def test_paths_outside_the_root_are_refused(layout, tmp_path):
    storage = layout.storage
    for path in (str(tmp_path / "elsewhere"), f"{storage.root}/../x", f"{storage.root}x/y", "/etc/passwd"):
        with pytest.raises(LayoutError):
            storage.read_bytes(path)
        with pytest.raises(LayoutError):
            storage.write_bytes(path, b"x")
        with pytest.raises(LayoutError):
            storage.delete(path)


def test_join_accepts_a_path_under_the_root_first(layout):
    directory = layout.task_dir("pretrain", "pretrain-1")
    assert layout.storage.join(directory, "done.json") == directory + "/done.json"
    assert layout.storage.join("a/b", "c") == layout.storage.root + "/a/b/c"


def test_atomic_write_leaves_no_temporary_files(layout):
    storage = layout.storage
    path = layout.fragment("paths", "path_eval-1")
    storage.write_bytes(path, b"first")
    storage.write_bytes(path, b"second")
    assert storage.read_bytes(path) == b"second"
    assert storage.listdir(layout.table_dir("paths")) == ["path_eval-1.parquet"]
    with pytest.raises(TypeError):
        storage.write_bytes(layout.fragment("paths", "path_eval-2"), object())
    assert storage.listdir(layout.table_dir("paths")) == ["path_eval-1.parquet"]
    assert not list(Path(storage.root).rglob("*.tmp-*"))


def test_exists_listdir_delete(layout):
    storage = layout.storage
    assert storage.listdir(layout.table_dir("tasks")) == []
    storage.write_text(layout.task_file("pretrain", "pretrain-1", "note.txt"), "hello")
    storage.write_text(layout.spec_file(), "name: x\n")
    assert storage.exists(layout.spec_file()) and storage.read_text(layout.spec_file()) == "name: x\n"
    assert storage.listdir(layout.root) == ["spec.yaml", "tasks"]
    storage.delete(layout.task_dir("pretrain", "pretrain-1"))
    assert not storage.exists(layout.task_dir("pretrain", "pretrain-1"))
    storage.delete(layout.task_dir("pretrain", "pretrain-1"))      # missing: no error
    assert storage.local_path(layout.spec_file()) == Path(layout.spec_file())


def test_relative_and_file_uri_storage_are_the_same_absolute_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Storage("runs").root == Storage(f"file://{tmp_path}/runs").root == f"{tmp_path}/runs"


def test_storage_and_layout_pickle(layout):
    copy = pickle.loads(pickle.dumps(layout))
    assert copy.root == layout.root and copy.storage.uri == layout.storage.uri


def test_remote_storage_has_uris_and_no_sqlite():
    storage = Storage("mock:///bucket/runs")
    layout = SweepLayout(storage, "s")
    assert not storage.is_local and storage.root == "bucket/runs"
    path = layout.fragment("tasks", "pretrain-1")
    storage.write_bytes(path, b"data")
    assert storage.read_bytes(path) == b"data" and storage.listdir(layout.table_dir("tasks")) == [
        "pretrain-1.parquet"]
    assert layout.ray_dir() == "mock:///bucket/runs/s/ray"
    assert storage.local_path(path) is None
    with pytest.raises(LayoutError, match="mlflow.tracking_uri"):
        layout.mlflow_uri()


def test_task_kinds_are_valid_names(layout):
    for kind in TASK_KINDS:
        assert layout.task_dir(kind, f"{kind}-0").endswith(f"/tasks/{kind}/{kind}-0")


def test_reads_refuse_what_is_not_a_regular_file_or_too_large(layout, tmp_path):
    import os

    storage = layout.storage
    fifo = layout.task_file("pretrain", "p-1", "done.json")
    os.makedirs(os.path.dirname(fifo))
    os.mkfifo(fifo)                                   # reading it would block forever
    assert not storage.is_file(fifo) and not storage.is_file(layout.task_dir("pretrain", "p-1"))
    with pytest.raises(OSError, match="not a regular file"):
        storage.read_bytes(fifo)
    big = layout.spec_file()
    storage.write_bytes(big, b"x" * 101)
    assert storage.is_file(big) and storage.read_bytes(big, max_bytes=101) == b"x" * 101
    with pytest.raises(OSError, match="more than the 100"):
        storage.read_bytes(big, max_bytes=100)
    assert not storage.is_file(layout.task_file("pretrain", "never", "note.txt"))
    size, mtime_ns = storage.stamp(big, regular=True)   # a regular file: its stamp; anything else: None
    assert size == 101 and mtime_ns == os.stat(big).st_mtime_ns and (size, mtime_ns) == storage.stamp(big)
    assert storage.stamp(fifo, regular=True) is None
    assert storage.stamp(layout.task_dir("pretrain", "p-1"), regular=True) is None
    assert storage.stamp(fifo) is not None                   # without `regular`: whatever is there
    assert storage.stamp(layout.task_file("pretrain", "never", "note.txt"), regular=True) is None


def test_a_local_read_takes_the_size_fstat_gave_and_what_a_growing_file_added(tmp_path, monkeypatch):
    """`read_regular_file` reads the size `fstat` gave and one byte more (not `max_bytes` at once); a file
    that grew since is read on to the limit (and is refused when it must be read whole or is too large)."""
    import os

    from orchestrator.storage import layout as layout_module

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    read = layout_module.read_regular_file
    assert read(str(path), 100) == read(str(path), 10_000) == read(str(path), 100, whole=True) == b"x" * 100
    with pytest.raises(OSError, match="more than the 99"):
        read(str(path), 99)
    fstat = os.fstat

    class Smaller:          # what fstat said before the file grew to 100 bytes
        def __init__(self, fd):
            self.info = fstat(fd)
            self.st_mode, self.st_size = self.info.st_mode, 40

    monkeypatch.setattr(layout_module.os, "fstat", Smaller)
    assert read(str(path), 1000) == b"x" * 100
    with pytest.raises(OSError, match="changed while it was read"):
        read(str(path), 1000, whole=True)
    with pytest.raises(OSError, match="more than the 60 bytes"):
        read(str(path), 60)


def test_names_up_to_255_characters_are_taken(layout):
    """A name is one path segment: up to 255 characters (what file systems allow), no more."""
    assert layout.task_dir("pretrain", "t" * 255).endswith("/" + "t" * 255)
    with pytest.raises(LayoutError):
        layout.task_dir("pretrain", "t" * 256)
