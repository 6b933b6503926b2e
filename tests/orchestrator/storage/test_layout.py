"""Storage layout: every path stays under the root, writes are atomic, remote storage works."""
import pickle
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from orchestrator.graph.dag import build_graph
from orchestrator.vocab import TABLES, TASK_KINDS
from orchestrator.storage.layout import (LayoutError, Storage, SweepLayout, not_a_sweep, open_sweep_dir,
                                         temporary_target)
from orchestrator.spec.sweep_spec import load_spec
from tests.support.full_disk import FullDisk

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


@pytest.mark.parametrize("full_at", ["claims.md", "summary.md", "report.html"])
def test_files_written_together_are_all_replaced_or_none_when_the_disk_fills_halfway(layout, full_at):
    """`write_files` (a report's tables and page): a disk that fills at the first, second or last file leaves
    every file as it was (none new beside old ones) and no temporary file; with room, each holds its new bytes."""
    storage = layout.storage
    names = [layout.report_file(n) for n in ("claims.md", "summary.md", "report.html")]
    storage.write_files({path: b"old " + path.encode() for path in names[:2]})
    real = storage.fs
    storage.fs = FullDisk(real, full_at)
    with pytest.raises(OSError, match="No space"):
        storage.write_files({path: b"new" for path in names})
    storage.fs = real
    assert [storage.exists(p) and storage.read_bytes(p) for p in names] == [b"old " + p.encode() for p in names[:2]] + [False]
    assert not list(Path(storage.root).rglob("*.tmp-*"))
    storage.write_files({path: b"new" for path in names})
    assert [storage.read_bytes(p) for p in names] == [b"new"] * 3


def test_files_written_together_are_refused_outside_the_root_or_through_a_link_and_none_is_written(tmp_path):
    """`write_files` checks every path before writing any: one outside the storage root, or one through a
    symbolic link below it, is refused (LayoutError, LinkError) and no file is written, not even the others."""
    import os

    from orchestrator.storage.layout import LinkError

    layout = SweepLayout(Storage(str(tmp_path / "runs")), "s")
    storage, outside = layout.storage, tmp_path / "outside"
    outside.mkdir()
    first = layout.report_file("claims.md")
    with pytest.raises(LayoutError):
        storage.write_files({first: b"new", str(outside / "x.md"): b"escaped"})
    os.makedirs(Path(layout.root))
    os.symlink(outside, Path(layout.root) / "report")               # a link where `report/` belongs
    with pytest.raises(LinkError):
        storage.write_files({first: b"new"})
    assert list(outside.iterdir()) == [] and not list((tmp_path / "runs").rglob("*.md"))


def test_files_written_together_leave_no_temporary_file_when_interrupted(layout):
    """Ctrl-C (KeyboardInterrupt) while the second of two files is written: neither is in place and no
    temporary file stays behind."""
    storage = layout.storage
    names = [layout.report_file(n) for n in ("claims.md", "report.html")]

    class Interrupted:
        def __init__(self, fs):
            self._fs = fs

        def __getattr__(self, name):
            return getattr(self._fs, name)

        def open_output_stream(self, path):
            if "report.html" in path:
                self._fs.open_output_stream(path).close()
                raise KeyboardInterrupt
            return self._fs.open_output_stream(path)

    real = storage.fs
    storage.fs = Interrupted(real)
    try:
        with pytest.raises(KeyboardInterrupt):
            storage.write_files({path: b"new" for path in names})
    finally:
        storage.fs = real
    assert not any(storage.exists(p) for p in names)
    assert not list(Path(storage.root).rglob("*.tmp-*"))


class _MoveWatcher:
    """A file system that calls `at_move(source, destination)` before each move: a write in flight."""

    def __init__(self, fs, at_move):
        self._fs, self._at_move = fs, at_move

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def move(self, source, destination):
        self._at_move(source, destination)
        return self._fs.move(source, destination)


def test_a_write_in_flight_is_a_hidden_file_beside_its_target_that_parquet_readers_of_the_directory_skip(layout):
    """`pd.read_parquet(dir)` and `pyarrow.dataset` skip names starting with `.`: while a fragment is written, a
    read of the table's directory sees the files in place, each once (a visible temporary would be read too)."""
    storage = layout.storage
    directory = layout.table_dir("tasks")
    storage.write_bytes(layout.fragment("tasks", "t1"), _parquet({"task_id": ["t1", "t1"]}))
    seen = []

    def read_directory(source, destination):
        seen.append((source, len(pd.read_parquet(directory)), ds.dataset(directory, format="parquet").count_rows()))

    storage.fs = _MoveWatcher(storage.fs, read_directory)
    storage.write_bytes(layout.fragment("tasks", "t2"), _parquet({"task_id": ["t2"] * 3}))
    (source, pandas_rows, arrow_rows), = seen
    assert Path(source).parent == Path(directory) and Path(source).name.startswith(".t2.parquet.tmp-")
    assert temporary_target(Path(source).name) == "t2.parquet"
    assert pandas_rows == arrow_rows == 2
    assert len(pd.read_parquet(directory)) == 5 and storage.listdir(directory) == ["t1.parquet", "t2.parquet"]


def _parquet(columns: dict) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue().to_pybytes()


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


def test_a_local_file_that_shrank_while_it_was_read_is_refused_when_it_must_be_read_whole(tmp_path, monkeypatch):
    """`whole`: the bytes read must be the size `fstat` gave; a file cut short meanwhile (fewer bytes than
    that) is as changed as one that grew, never taken for the whole file."""
    import os

    from orchestrator.storage import layout as layout_module

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    fstat = os.fstat

    class Larger:           # what fstat said before the file was cut to 100 bytes
        def __init__(self, fd):
            info = fstat(fd)
            self.st_mode, self.st_size = info.st_mode, 150

    monkeypatch.setattr(layout_module.os, "fstat", Larger)
    assert layout_module.read_regular_file(str(path), 1000) == b"x" * 100
    with pytest.raises(OSError, match="changed while it was read"):
        layout_module.read_regular_file(str(path), 1000, whole=True)


def test_a_local_read_that_comes_in_short_chunks_is_joined_whole(tmp_path, monkeypatch):
    """`os.read` may return fewer bytes than asked (a network file system, a signal): the reads go on to
    the end of the file and every chunk is kept."""
    import os

    from orchestrator.storage import layout as layout_module

    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 4
    path.write_bytes(data)
    read = os.read
    monkeypatch.setattr(layout_module.os, "read", lambda fd, n: read(fd, min(n, 100)))
    assert layout_module.read_regular_file(str(path), 10_000) == data
    assert layout_module.read_regular_file(str(path), 10_000, whole=True) == data


def test_names_up_to_255_characters_are_taken(layout):
    """A name is one path segment: up to 255 characters (what file systems allow), no more."""
    assert layout.task_dir("pretrain", "t" * 255).endswith("/" + "t" * 255)
    with pytest.raises(LayoutError):
        layout.task_dir("pretrain", "t" * 256)


S3_URI = "s3://AKIDLAYOUT:S3CRETLAYOUT@bkt/runs?region=us-east-1&endpoint_override=127.0.0.1:9&scheme=http"


def test_the_result_bookkeeping_lives_where_the_layout_documents_it(layout):
    """The module's tree: manifests in `results/_manifests/<table>.parquet`, the marker index in
    `results/_markers/`, quarantined files in `results/_quarantine/<table>/` (all beside the tables, out of
    the glob `results/<table>/*.parquet`); a training task's `progress.json` in its directory. A sweep
    written by one version is read by the next only if these names never move."""
    root = layout.root
    assert layout.results_dir() == f"{root}/results" and layout.report_dir() == f"{root}/report"
    assert layout.mlflow_db() == f"{root}/mlflow.db"
    assert layout.manifests_dir() == f"{root}/results/_manifests"
    assert layout.manifest_file("paths") == f"{root}/results/_manifests/paths.parquet"
    assert layout.legacy_manifest_file("paths") == f"{root}/results/paths/_manifest.parquet"
    assert layout.marker_index_dir() == f"{root}/results/_markers"
    assert layout.marker_index_file("index-1.parquet") == f"{root}/results/_markers/index-1.parquet"
    assert layout.quarantine_file("paths", "part-1.parquet") == f"{root}/results/_quarantine/paths/part-1.parquet"
    assert layout.progress_file("pretrain", "p-1") == f"{root}/tasks/pretrain/p-1/progress.json"
    for make in (lambda: layout.marker_index_file("../x"), lambda: layout.quarantine_file("paths", ".."),
                 lambda: layout.manifest_file("a/b")):
        with pytest.raises(LayoutError):
            make()


def test_a_symbolic_link_inside_the_sweep_is_refused_and_the_storage_root_may_be_one(tmp_path):
    """No read, write or deletion goes through a link below the storage root (it could lead outside the
    storage); the root itself, and what is above it, may be a link."""
    import os

    from orchestrator.storage.layout import LinkError

    real, outside = tmp_path / "real", tmp_path / "outside"
    (real / "sw").mkdir(parents=True)
    outside.mkdir()
    os.symlink(real, tmp_path / "root-link")
    storage = Storage(str(tmp_path / "root-link"))                 # the root through a link: fine
    layout = SweepLayout(storage, "sw")
    storage.write_bytes(layout.spec_file(), b"x")
    assert (real / "sw" / "spec.yaml").read_bytes() == b"x"
    os.symlink(outside, real / "sw" / "tasks")                      # a link where `tasks/` belongs
    target = layout.task_file("pretrain", "p-1", "meta.json")
    for act in (lambda: storage.write_bytes(target, b"y"), lambda: storage.read_bytes(target),
                lambda: storage.delete(layout.task_dir("pretrain", "p-1")), lambda: storage.check(target)):
        with pytest.raises(LinkError):
            act()
    assert list(outside.iterdir()) == []
    assert storage.find_links(layout.task_dir("pretrain", "p-1")) == [f"{layout.root}/tasks"]   # a link above it


def test_find_links_returns_at_most_limit_links(layout):
    """`find_links(path, limit)`: the links at or below `path`, no more than `limit` of them."""
    import os

    storage = layout.storage
    links = [f"{layout.task_dir(kind, 't-1')}/{name}" for kind in ("a", "b") for name in ("l1", "l2", "l3")]
    for link in links:                                   # three links in each of two directories
        storage.makedirs(link.rsplit("/", 1)[0])
        os.symlink("/", link)
    assert storage.find_links(layout.root) == storage.find_links(layout.root, limit=1)
    for limit in (1, 2, 4):
        assert len(storage.find_links(layout.root, limit=limit)) == limit
    assert storage.find_links(layout.root, limit=10) == sorted(links)


def test_a_move_out_of_the_root_is_refused(layout, tmp_path):
    storage = layout.storage
    storage.write_bytes(layout.spec_file(), b"x")
    with pytest.raises(LayoutError):
        storage.move(layout.spec_file(), str(tmp_path / "elsewhere.yaml"))
    assert not (tmp_path / "elsewhere.yaml").exists() and storage.read_bytes(layout.spec_file()) == b"x"


def test_listdir_is_sorted_whatever_order_the_file_system_lists(layout):
    import random

    storage = layout.storage
    names = [f"n{i:02d}" for i in range(30)]
    for name in random.Random(0).sample(names, len(names)):
        storage.write_bytes(storage.join(layout.root, name), b"")
    assert storage.listdir(layout.root) == names


def test_a_remote_read_with_a_limit_refuses_a_larger_file_instead_of_cutting_it():
    """`read_bytes(max_bytes=)` on storage that is not local reads one byte more than the limit, so that a
    larger file is an OSError, never its first `max_bytes` bytes taken for the whole."""
    storage = Storage("mock:///bucket/runs")
    path = storage.join("s", "spec.yaml")
    storage.write_bytes(path, b"x" * 101)
    assert storage.read_bytes(path, max_bytes=101) == b"x" * 101
    with pytest.raises(OSError, match="more than the 100"):
        storage.read_bytes(path, max_bytes=100)
    assert storage.is_file(path) and not storage.is_file(storage.join("s"))        # a directory is no file
    assert storage.stamp(path, regular=True)[0] == 101 and storage.stamp(storage.join("s"), regular=True) is None


def test_a_remote_storage_uri_with_a_trailing_slash_is_the_same_storage():
    slashed, plain = Storage("mock:///bucket/runs/"), Storage("mock:///bucket/runs")
    assert slashed.root == plain.root == "bucket/runs"
    assert slashed.uri_of(slashed.join("s", "spec.yaml")) == "mock:///bucket/runs/s/spec.yaml"


def test_a_storage_path_starting_with_a_tilde_is_under_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Storage("~/runs").root == f"{tmp_path}/runs"


def test_a_local_read_that_must_not_follow_links_refuses_one(tmp_path):
    import os

    from orchestrator.storage.layout import read_regular_file

    (tmp_path / "f").write_bytes(b"data")
    os.symlink(tmp_path / "f", tmp_path / "link")
    assert read_regular_file(str(tmp_path / "link")) == b"data"
    assert read_regular_file(str(tmp_path / "f"), follow_links=False) == b"data"
    with pytest.raises(OSError):
        read_regular_file(str(tmp_path / "link"), follow_links=False)


def test_s3_storage_keeps_its_query_for_the_file_system_and_out_of_uris_and_messages():
    """`s3://KEY:SECRET@bucket/runs?endpoint_override=...`: the file system gets the endpoint (and uploads in
    one request: `allow_delayed_open`); paths' URIs leave the query out; messages show no credential; a
    pickled storage is the same storage (its URI, not its root)."""
    storage = Storage(S3_URI)
    options = storage.fs.__reduce__()[1][0]
    assert options["endpoint_override"] == "127.0.0.1:9" and options["allow_delayed_open"] is True
    assert storage.root == "bkt/runs" and storage.is_object_store
    path = SweepLayout(storage, "sw").spec_file()
    assert storage.uri_of(path) == "s3://AKIDLAYOUT:S3CRETLAYOUT@bkt/runs/sw/spec.yaml"
    assert storage.shown(path) == "s3://***@bkt/runs/sw/spec.yaml"
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.uri == storage.uri and copy.is_object_store and copy.root == "bkt/runs"
    opened = open_sweep_dir(S3_URI.replace("/runs?", "/runs/sw?"))
    assert opened.sweep == "sw" and opened.storage.uri == storage.uri
    assert opened.storage.fs.__reduce__()[1][0]["endpoint_override"] == "127.0.0.1:9"


def test_ray_gets_a_path_and_a_file_system_that_pickles_without_credentials(monkeypatch):
    """Ray's `storage_path` is a path in the storage's file system (no URI, no credential in it); its file
    system pickles without key, secret or token; unpickled in this process it has them again (held by a
    token), elsewhere (token unknown) the AWS SDK's default chain supplies them."""
    import pyarrow.fs as pafs

    from orchestrator.storage import layout as layout_module

    ray = SweepLayout(Storage(S3_URI), "sw").ray_storage()
    assert ray["storage_path"] == "bkt/runs/sw/ray"
    pickled = pickle.dumps(ray["storage_filesystem"])
    assert b"S3CRETLAYOUT" not in pickled and b"AKIDLAYOUT" not in pickled
    here = pafs.S3FileSystem.__reduce__(pickle.loads(pickled))[1][0]
    assert (here["access_key"], here["secret_key"]) == ("AKIDLAYOUT", "S3CRETLAYOUT")
    assert here["endpoint_override"] == "127.0.0.1:9"
    monkeypatch.setattr(layout_module, "_HELD_CREDENTIALS", {})                  # another process
    elsewhere = pafs.S3FileSystem.__reduce__(pickle.loads(pickled))[1][0]
    assert not elsewhere["access_key"] and not elsewhere["secret_key"]


def test_a_write_refusal_is_told_from_other_failures_by_its_errno_or_its_text():
    """EROFS is 'read-only', EACCES and EPERM 'not writable (...)', found in `errno` or in pyarrow's text
    (`[errno 30]`, any case) or as 'Read-only file system'; a full disk or a missing file is no refusal."""
    import errno

    from orchestrator.storage.read_only import FIX, refused, write_refusal

    assert write_refusal(OSError(errno.EROFS, "x")) == "read-only"
    assert write_refusal(OSError(errno.EACCES, "x")) == "not writable (permission denied)"
    assert write_refusal(OSError(errno.EPERM, "x")) == "not writable (operation not permitted)"
    assert write_refusal(OSError("Failed to open local file 'x'. Detail: [errno 13] Permission denied")) == \
        "not writable (permission denied)"
    assert write_refusal(OSError("IOError: [Errno 30] x")) == "read-only"
    assert write_refusal(OSError("Cannot create directory: Read-only file system")) == "read-only"
    assert write_refusal(OSError(errno.ENOSPC, "No space left on device")) is None
    assert write_refusal(FileNotFoundError(errno.ENOENT, "x")) is None
    assert refused("/mnt/runs/sw", OSError(errno.ENOSPC, "full"), "`run` writes results") is None
    error = refused("/mnt/runs/sw", OSError(errno.EROFS, "x"), "`run` writes results")
    assert str(error) == f"the storage `/mnt/runs/sw` is read-only: `run` writes results, and nothing was written; {FIX}"


def test_every_storage_method_refuses_a_path_outside_the_root(layout, tmp_path):
    """Module docstring: every path a `Storage` takes is checked, so that nothing escapes the root. A file
    that exists outside the root (and a path through a '.' segment, which `join` never builds) is refused by
    every method, whatever it would do there, and is left as it was."""
    storage = layout.storage
    storage.write_bytes(layout.spec_file(), b"inside")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside")

    def acts(path: str) -> list:
        return [lambda: storage.check(path), lambda: storage.file_info(path), lambda: storage.list_infos(path),
                lambda: storage.open_input_file(path), lambda: storage.open_input_stream(path),
                lambda: storage.open_output_stream(path), lambda: storage.makedirs(path),
                lambda: storage.exists(path), lambda: storage.is_file(path), lambda: storage.stamp(path),
                lambda: storage.find_links(path), lambda: storage.local_path(path), lambda: storage.listdir(path),
                lambda: storage.read_text(path), lambda: storage.write_text(path, "x"), lambda: storage.uri_of(path),
                lambda: storage.shown(path), lambda: storage.move(path, layout.plan_file()),
                lambda: storage.move(layout.spec_file(), path)]

    for act in acts(str(outside)) + acts(f"{layout.root}/./spec.yaml"):
        with pytest.raises(LayoutError):
            act()
    assert outside.read_bytes() == b"outside" and storage.read_bytes(layout.spec_file()) == b"inside"
    assert not storage.exists(layout.plan_file())


def test_a_stream_and_a_move_create_the_directory_they_write_into(layout):
    """`open_output_stream` and `move` write where no directory exists yet (a new task's directory, the
    quarantine of a table): they create it, as `write_bytes` does."""
    storage = layout.storage
    target = layout.task_file("pretrain", "p-1", "model.safetensors")
    with storage.open_output_stream(target) as f:
        f.write(b"weights")
    assert storage.read_bytes(target) == b"weights"
    moved = layout.quarantine_file("paths", "part-1.parquet")
    storage.move(target, moved)
    assert storage.read_bytes(moved) == b"weights" and not storage.exists(target)


def test_a_directory_exists_once_something_is_in_it(layout):
    """`exists` is true for anything at the path, a directory included (module docstring: a "directory"
    exists once an object is under it), false for nothing."""
    storage = layout.storage
    assert not storage.exists(layout.task_dir("pretrain", "p-1"))
    storage.write_bytes(layout.marker_file("pretrain", "p-1"), b"{}")
    assert storage.exists(layout.task_dir("pretrain", "p-1")) and storage.exists(layout.root)
    remote = Storage("mock:///bucket/runs")
    remote.write_bytes(remote.join("s", "tasks", "x"), b"")
    assert remote.exists(remote.join("s", "tasks")) and not remote.exists(remote.join("s", "results"))


def test_makedirs_creates_a_directory_on_storage_that_has_directories():
    """Only object stores skip `makedirs` (a prefix exists once an object is under it); a remote file system
    with directories (here pyarrow's mock://) gets the directory."""
    storage = Storage("mock:///bucket/runs")
    storage.makedirs(storage.join("s", "results", "_markers"))
    assert storage.listdir(storage.join("s", "results")) == ["_markers"]


def test_a_sweep_directory_given_relative_or_with_a_trailing_slash_is_that_directory(tmp_path, monkeypatch):
    """`mmc-sweep status sw` in the storage directory, or `status runs/sw/` (a shell's completion): the
    sweep `sw` under the current directory (or under `runs`), not under `/` and not a sweep named ''."""
    monkeypatch.chdir(tmp_path)
    assert open_sweep_dir("sw").root == f"{tmp_path}/sw"
    for given in ("runs/sw/", f"{tmp_path}/runs/sw/", f"{tmp_path}/runs/sw"):
        opened = open_sweep_dir(given)
        assert (opened.sweep, opened.root, opened.storage.root) == ("sw", f"{tmp_path}/runs/sw", f"{tmp_path}/runs")


def test_a_sweep_directory_given_as_dot_or_dot_dot_is_the_directory_they_name(tmp_path, monkeypatch):
    """`mmc-sweep status .` inside the sweep, `status ..` from its results/, `runs/./sw`: the sweep `sw`, not a
    sweep named '.' or '..' (refused as a name)."""
    (tmp_path / "runs" / "sw" / "results").mkdir(parents=True)
    for cwd, given in ((tmp_path / "runs" / "sw", "."), (tmp_path / "runs" / "sw", "./"),
                       (tmp_path / "runs" / "sw" / "results", ".."), (tmp_path, "runs/./sw"), (tmp_path / "runs", "../runs/sw")):
        monkeypatch.chdir(cwd)
        opened = open_sweep_dir(given)
        assert (opened.sweep, opened.storage.root) == ("sw", f"{tmp_path}/runs"), (cwd, given)


def test_a_file_that_grew_past_the_limit_while_read_is_refused_at_the_limit_plus_one(tmp_path, monkeypatch):
    """fstat said 40 bytes, the file has 100 by the read, the limit is 41: the 41 bytes read (40 + 1) reach
    the limit, so one byte more is read; 42 bytes are more than 41: an OSError, never the first 41 bytes of a
    100-byte file taken for the whole."""
    import os

    from orchestrator.storage import layout as layout_module

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    fstat = os.fstat

    class Smaller:          # what fstat said before the file grew to 100 bytes
        def __init__(self, fd):
            info = fstat(fd)
            self.st_mode, self.st_size = info.st_mode, 40

    monkeypatch.setattr(layout_module.os, "fstat", Smaller)
    with pytest.raises(OSError, match="more than the 41 bytes"):
        layout_module.read_regular_file(str(path), 41)
    with pytest.raises(OSError, match="more than the 40 bytes"):
        layout_module.read_regular_file(str(path), 40)


def test_a_link_error_pickles_with_its_path_and_message(tmp_path):
    """Ray carries a task's error to the driver as a pickle: a `LinkError` arrives with the path it names and
    its whole message (the link's target and the fix)."""
    import os

    from orchestrator.storage.layout import LinkError

    os.symlink("/somewhere", tmp_path / "tasks")
    error = LinkError(str(tmp_path / "tasks"))
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, LinkError) and copy.path == str(tmp_path / "tasks") and str(copy) == str(error)
    assert "(to /somewhere)" in str(copy)


def test_a_remote_request_is_tried_again_while_the_store_cannot_be_reached(monkeypatch):
    """Module docstring: every request to storage that is not local is waited out while it cannot be reached
    (orchestrator/storage/retry.py); a local file system is never retried (its errors are answers)."""
    from orchestrator.storage import retry

    monkeypatch.setattr(retry, "FIRST_WAIT_S", 0.001)
    monkeypatch.setattr(retry._Outage, "warned", False)
    storage = Storage("mock:///bucket/runs")
    path = storage.join("s", "spec.yaml")
    storage.write_bytes(path, b"spec")
    real, failures = storage.fs, []

    class Flaky:
        def __getattr__(self, name):
            return getattr(real, name)

        def get_file_info(self, what):
            if len(failures) < 2:
                failures.append(what)
                raise OSError("AWS Error NETWORK_CONNECTION during HeadObject operation: Connection refused")
            return real.get_file_info(what)

    storage.fs = Flaky()
    assert storage.exists(path) and len(failures) == 2


def test_a_read_of_a_replaced_file_is_made_again_until_its_size_holds(monkeypatch):
    """`read_bytes(replaced=True)` on storage that is not local keeps bytes only when the file's size after the
    read equals their length; otherwise it reads again (up to REPLACED_READ_ATTEMPTS times, then OSError)."""
    from orchestrator.storage import layout as layout_module

    storage = Storage("mock:///bucket/runs")
    path = storage.join("s", "run.lock")
    storage.write_bytes(path, b"lock")
    stamps = []

    def stamp(p, regular=False):         # the size after the read: another size twice, then the bytes' own
        stamps.append(p)
        return (99, 0) if len(stamps) <= 2 else (4, 0)

    monkeypatch.setattr(storage, "stamp", stamp)
    assert storage.read_bytes(path, replaced=True) == b"lock" and len(stamps) == 3
    stamps.clear()
    monkeypatch.setattr(storage, "stamp", lambda p, regular=False: stamps.append(p) or (99, 0))
    monkeypatch.setattr(layout_module.time, "sleep", lambda s: None)
    with pytest.raises(OSError, match=f"replaced while it was read, {layout_module.REPLACED_READ_ATTEMPTS} times"):
        storage.read_bytes(path, replaced=True)
    assert len(stamps) == layout_module.REPLACED_READ_ATTEMPTS


def test_a_file_system_for_ray_unpickled_here_holds_its_credentials_under_the_same_token():
    """A copy unpickled in this process takes the credentials held under the original's token, and holds
    them under that token again: Ray copies its trials' storage many times, and each copy must not add
    another entry to `_HELD_CREDENTIALS` (it would grow for as long as the driver lives)."""
    from orchestrator.storage import layout as layout_module

    original = SweepLayout(Storage(S3_URI), "sw").ray_storage()["storage_filesystem"]
    held = dict(layout_module._HELD_CREDENTIALS)
    copy = pickle.loads(pickle.dumps(original))
    again = pickle.loads(pickle.dumps(copy))
    assert copy.token == again.token == original.token and layout_module._HELD_CREDENTIALS == held


def test_ray_on_local_storage_gets_the_path_of_the_sweeps_ray_directory_and_no_file_system(layout):
    assert layout.ray_storage() == {"storage_path": f"{layout.root}/ray"}


def test_a_write_refusal_is_read_from_the_errno_of_an_error_whose_text_does_not_name_it():
    """read_only's docstring: the errno is read from the error's `errno` and from its text; an error that
    carries EROFS only as its `errno` (its text says nothing) is a refusal too."""
    import errno

    from orchestrator.storage.read_only import write_refusal

    error = OSError("cannot write")
    error.errno = errno.EROFS
    assert str(error) == "cannot write" and write_refusal(error) == "read-only"


def test_the_temporary_mark_alone_names_no_temporary_file():
    """`temporary_target`: a temporary file has a target name before its mark (`.<name>.tmp-<uuid>`, or
    `<name>.tmp-<uuid>` as written before); `.tmp-<x>`, with no name before the mark, is some other hidden file,
    never taken for a write left behind."""
    assert temporary_target(".tmp-0123abcd") is None and temporary_target("tmp-0123") is None
    assert temporary_target(".t1.parquet.tmp-0123abcd") == "t1.parquet"
    assert temporary_target("t1.parquet.tmp-0123abcd") == "t1.parquet"


def test_a_sweep_directory_right_under_the_file_system_root_has_the_root_as_its_storage():
    """`/sw` is the sweep `sw` in the storage `/` (not in the current directory)."""
    opened = open_sweep_dir("/sw")
    assert (opened.sweep, opened.root, opened.storage.root) == ("sw", "/sw", "/")


@pytest.mark.parametrize("held", [("results",), ("tasks",), ("plan.parquet", "results")])
def test_a_sweep_directory_without_its_spec_is_named_by_what_it_still_holds(tmp_path, held):
    """A sweep that lost spec.yaml still holds its results, tasks or plan: the message names what is there
    and says how to write the spec again, rather than calling it no sweep directory at all."""
    sweep = tmp_path / "runs" / "lost"
    sweep.mkdir(parents=True)
    for name in held:
        (sweep / name).write_bytes(b"PAR1") if name.endswith(".parquet") else (sweep / name).mkdir()
    said = not_a_sweep(open_sweep_dir(str(sweep)), "runs/lost")
    assert said.startswith(f"runs/lost holds a sweep's {', '.join(held)} but no spec.yaml"), said


def test_a_storage_directory_given_for_a_sweep_names_its_sweeps_in_order_whatever_the_listing_order(tmp_path,
                                                                                                  monkeypatch):
    """Given `<storage>` instead of `<storage>/<sweep>`: the sweeps it holds by name, and the first by name as
    the example to give, whatever order the storage lists them in."""
    for name in ("b", "a", "c"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "spec.yaml").write_text("name: x\n")
    layout = open_sweep_dir(str(tmp_path / "runs"))
    listed, order = layout.storage.list_infos, {"b": 0, "a": 1, "c": 2}
    monkeypatch.setattr(layout.storage, "list_infos",
                        lambda path: sorted(listed(path), key=lambda info: order.get(info.base_name, 9)))
    said = not_a_sweep(layout, "runs")
    assert said.endswith("it holds the sweeps a, b, c: give one, e.g. runs/a"), said
