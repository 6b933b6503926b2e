"""Where every artifact of a sweep lives: the one module that builds storage paths.

Why one module: every path of a sweep directory and every read, write and deletion under it go through
here, so the checks that keep them inside the root (names, links) and the object-store rules (one upload
per write, no directories) guard each of them in one place.

```
<storage>/<sweep>/
  spec.yaml                              resolved spec, as run (spec-v<N>.yaml: earlier versions)
  plan.parquet                           every planned task: id, kind, parents, labels, settings, config
  run.lock                               held by the running invocation
  mlflow.db                              default MLflow tracking store (local storage only)
  tasks/<kind>/<task_id>/                model.safetensors, meta.json, progress.json, resume/, ...
  results/<table>/<task_id>.parquet      one fragment per task (part-<name>.parquet: compacted)
  results/_manifests/<table>.parquet     which task's rows are in which compacted part
  results/_markers/index-<time>.parquet  the finished tasks' markers as a run found them (`status`'s cache)
  results/_quarantine/<table>/           damaged parts and unreadable files that compaction moved aside
  report/                                summary tables, figures, report.html
  ray/                                   Ray Tune / Train run directories (storage_path)
```
`Storage` wraps a `pyarrow.fs` filesystem (local path, file://, s3://, gs://, hdfs://); paths it
takes and returns are in that filesystem's namespace (absolute paths for local storage,
"bucket/key" for object stores). Every name is checked so that nothing escapes the root, and on local
storage no path goes through a symbolic link below the root (`LinkError`): a link inside a sweep
directory could lead reads, writes and deletions outside the storage. The storage root itself (and
what is above it) may be a link.

On an object store (s3://, gs://) there are no directories and no rename: an object appears whole when
its upload completes, or not at all, so a write is one upload (no temporary name, no copy, no directory
marker), and a "directory" exists once an object is under it. Every request to an object store that cannot
be reached is tried again with backoff for up to `MMC_STORAGE_RETRY_S` seconds (orchestrator/storage/retry.py);
reading or writing a stream is retried as far as opening it (a stream cut mid-way is an OSError: its reader
takes nothing unverified as finished). A read is a size request then a byte request, so a file replaced
while others read it (the lock, a progress record, a manifest, the plan) is read with `replaced=True`,
which keeps only bytes whose length the object still has (`Storage.read_bytes`). Ray Tune's own file system (`filesystem_for_ray`) relies on the AWS
SDK's retries alone (STORAGE_ATTEMPTS tries, ~25 s): what it writes is its own state, which this package never
reads back to decide what is done.
"""
from __future__ import annotations

import os
import re
import stat
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import pyarrow.fs as pafs

from orchestrator.storage.retry import REQUEST_ATTEMPTS, retrying
from orchestrator.uris import UriError, local_path_of, redact

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.~+=-]*$")   # one path segment, not hidden
CHECKPOINT_FILES = ("model.safetensors", "meta.json")
SPEC_FILE = "spec.yaml"     # a sweep directory's spec: what makes a directory a sweep
MAX_SWEEPS_LISTED = 100     # entries of a storage directory looked at for sweeps (`not_a_sweep`)
REPLACED_READ_ATTEMPTS = 20   # reads of a file replaced while it is read (`Storage.read_bytes`)
STORAGE_ATTEMPTS = 10   # tries per S3 request of Ray's file system (the AWS SDK waits 50 ms, 100 ms, ... 12.8 s: ~25 s)
TEMPORARY_MARK = ".tmp-"   # an atomic write's temporary file: `.<name>.tmp-<uuid>` (`temporary_path`)


class LayoutError(UriError):
    """A name that would leave the storage root, or a request the storage cannot serve."""


class LinkError(LayoutError):
    """A symbolic link inside a sweep directory, where mmc-sweep's own directory or file belongs."""

    def __init__(self, path: str):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        self.path = path
        super().__init__(f"{path} is a symbolic link (to {target}); mmc-sweep never reads, writes or deletes "
                         f"through a link inside a sweep directory, which could lead outside the storage. Replace "
                         f"it with the directory or file itself (or remove it), or point `storage` at the real "
                         f"location")

    def __reduce__(self):
        return _rebuild_link_error, (self.path, str(self))


def _rebuild_link_error(path: str, text: str) -> LinkError:
    err = LinkError.__new__(LinkError)
    LayoutError.__init__(err, text)
    err.path = path
    return err


def check_name(name: str, what: str = "name") -> str:
    """One path segment: letters, digits and _ . ~ + = -; no separators, no '..', not hidden."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name or len(name) > 255:
        raise LayoutError(f"`{what}`: {name!r} is not allowed; use letters, digits and _ . ~ + = - "
                          f"(not starting with '.' or '-', without '..' or path separators)")
    return name


def temporary_path(path: str) -> str:
    """Where an atomic write of `path` goes before it is moved into place: `.<name>.tmp-<uuid>` beside it. In
    the same directory, so the move is a rename within one file system; hidden (a leading `.`), so that Parquet
    readers of a table's directory (pyarrow's datasets, pandas, which skip names starting with `.` or `_`)
    never open a write in flight or one a killed process left behind."""
    directory, name = path.rsplit("/", 1)
    return f"{directory}/.{name}{TEMPORARY_MARK}{uuid.uuid4().hex}"


def temporary_target(name: str) -> str | None:
    """The file name a temporary file of an atomic write was to become, None for any other name. Knows
    `.<name>.tmp-<uuid>` (`temporary_path`) and `<name>.tmp-<uuid>`, the names written before (sweeps of
    earlier versions may still hold such leftovers)."""
    target, mark, _ = name.rpartition(TEMPORARY_MARK)
    if not mark or not target:
        return None
    return target[1:] if target.startswith(".") else target


def _object_store_types() -> tuple[type, ...]:
    return tuple(t for t in (getattr(pafs, "S3FileSystem", None), getattr(pafs, "GcsFileSystem", None)) if t)


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """`pyarrow.fs.FileSystem.from_uri`, and for S3: uploads that fit in one request made as one PutObject
    (`allow_delayed_open`, not a 3-request multipart upload), each request tried REQUEST_ATTEMPTS times by the
    AWS SDK (`Storage` waits out a longer outage: orchestrator/storage/retry.py)."""
    fs, path = pafs.FileSystem.from_uri(uri)
    if isinstance(fs, getattr(pafs, "S3FileSystem", ())):
        options = dict(fs.__reduce__()[1][0])   # what from_uri resolved: endpoint, region, credentials, ...
        options["allow_delayed_open"] = True
        retries = pafs.AwsDefaultS3RetryStrategy(max_attempts=REQUEST_ATTEMPTS)
        try:
            fs = pafs.S3FileSystem(**options, retry_strategy=retries)
        except TypeError:   # an option this pyarrow does not take back: keep from_uri's file system
            pass
    return fs, path


_CREDENTIALS = ("access_key", "secret_key", "session_token")
# The credentials of the file systems made for Ray in this process, by a random token that their pickles
# carry instead: a copy unpickled in this process (Ray Tune deep-copies its trials' storage, and reads a
# failed trial's error through the copy) works as the original; elsewhere the token means nothing.
_HELD_CREDENTIALS: dict[str, dict] = {}

if hasattr(pafs, "S3FileSystem"):
    class _S3PickledWithoutCredentials(pafs.S3FileSystem):
        """An S3 file system that pickles without its key, secret and session token: what Ray keeps of its
        `storage_filesystem` (Tune pickles it into the experiment state it writes). Unpickled in another
        process, it takes its credentials from the AWS SDK's default chain (AWS_ACCESS_KEY_ID ..., profiles,
        roles); in this one, the original's again (`_HELD_CREDENTIALS`)."""

        token: str | None = None

        def __reduce__(self):
            _rebuild, (options,) = super().__reduce__()
            return _unpickle_for_ray, ({k: v for k, v in options.items() if k not in _CREDENTIALS}, self.token)


def _unpickle_for_ray(options: dict, token: str | None) -> pafs.FileSystem:
    held = _HELD_CREDENTIALS.get(token or "")
    return _s3_for_ray({**options, **held}, token) if held else _s3_for_ray(options)


def _s3_for_ray(options: dict, token: str | None = None) -> pafs.FileSystem:
    """An `_S3PickledWithoutCredentials` of `options`; its credentials held under `token` (a new one if None)."""
    try:
        fs = _S3PickledWithoutCredentials(**options, retry_strategy=pafs.AwsDefaultS3RetryStrategy(
            max_attempts=STORAGE_ATTEMPTS))
    except TypeError:   # an option this pyarrow does not take back
        fs = _S3PickledWithoutCredentials(**{k: v for k, v in options.items() if k in (
            *_CREDENTIALS, "region", "scheme", "endpoint_override")})
    held = {k: options[k] for k in _CREDENTIALS if options.get(k)}
    if held:
        fs.token = token or uuid.uuid4().hex
        _HELD_CREDENTIALS[fs.token] = held
    return fs


def filesystem_for_ray(fs: pafs.FileSystem) -> pafs.FileSystem:
    """`fs` for Ray's `RunConfig(storage_filesystem=...)`: an S3 file system that works here with `fs`'s
    credentials but never writes them into a pickle; any other file system as it is."""
    if not isinstance(fs, getattr(pafs, "S3FileSystem", ())):
        return fs
    return _s3_for_ray(dict(fs.__reduce__()[1][0]))


class Storage:
    """A root directory on a `pyarrow.fs` filesystem; writes are atomic (local: temporary name + move;
    object stores: one upload, which appears whole or not at all)."""

    def __init__(self, uri: str | os.PathLike):
        uri = os.fspath(uri)
        local = local_path_of(uri)
        if local is not None:
            self.fs: pafs.FileSystem = pafs.LocalFileSystem()
            self.root = os.path.abspath(os.path.expanduser(local)).replace(os.sep, "/").rstrip("/") or "/"
            self.uri = self.base_uri = self.root
        else:
            self.fs, path = open_filesystem(uri)
            self.root = path.rstrip("/")
            self.uri = uri.rstrip("/")
            self.base_uri = uri.split("?", 1)[0].rstrip("/")   # s3://bucket/runs, without ?endpoint_override=...
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)
        self.is_object_store = isinstance(self.fs, _object_store_types())

    def __reduce__(self):
        return Storage, (self.uri,)

    def __repr__(self) -> str:
        return f"Storage({self.uri!r})"

    def _io(self, call):
        """`call()`; on an object store tried again while the store cannot be reached (`retrying`)."""
        return call() if self.is_local else retrying(call, self.base_uri)

    def join(self, *parts: str) -> str:
        """A path under the root: `parts` are relative (may contain '/'), or the first one is
        already a path under the root. Raises LayoutError for anything that would escape it."""
        base, rest = self.root, list(parts)
        if rest and self._is_under_root(rest[0]):
            base = rest.pop(0).rstrip("/")
        for part in rest:
            for segment in str(part).split("/"):
                base = f"{base.rstrip('/')}/{check_name(segment, 'path segment')}"
        return base

    def uri_of(self, path: str) -> str:
        """The URI (for local storage: the absolute path) of a path under the root, without the storage
        URI's query (`?endpoint_override=...`), e.g. `s3://bucket/runs/smoke/results`."""
        self._check_under_root(path)
        return self.base_uri + path[len(self.root):]

    def shown(self, path: str) -> str:
        """How a path under the root appears in messages: its URI, credentials redacted."""
        return redact(self.uri_of(path))

    def check(self, path: str) -> str:
        """`path` itself, once checked: under the root and, on local storage, through no symbolic link
        below the root (LayoutError, LinkError otherwise). Every method below checks its paths."""
        self._check_under_root(path)
        return path

    def find_links(self, path: str, limit: int = 1) -> list[str]:
        """Symbolic links at or below `path` (and between the root and it), at most `limit` of them;
        [] on storage without links (object stores). Walks without following links."""
        if not self.is_local:
            return []
        self._check_under_root(path, links=False)
        found: list[str] = []
        try:
            self._check_no_link(path)
        except LinkError as exc:
            return [exc.path]
        stack = [path]
        while stack and len(found) < limit:
            try:
                entries = list(os.scandir(stack.pop()))
            except OSError:
                continue      # not a directory (or gone): nothing below it
            for entry in entries:
                if entry.is_symlink():
                    found.append(entry.path.replace(os.sep, "/"))
                    if len(found) >= limit:
                        break
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
        return sorted(found)

    def stamp(self, path: str, regular: bool = False) -> tuple[int, int] | None:
        """(size, mtime_ns) of a file, None when nothing is there; with `regular`, None also for anything
        but a regular file (a directory, FIFO or device): `is_file` and the stamp in one request."""
        self._check_under_root(path)
        if self.is_local:
            try:
                st = os.stat(path)
            except OSError:
                return None
            return None if regular and not stat.S_ISREG(st.st_mode) else (st.st_size, st.st_mtime_ns)
        info = self._io(lambda: self.fs.get_file_info(path))
        if info.type == pafs.FileType.NotFound or regular and info.type != pafs.FileType.File:
            return None
        return info.size or 0, info.mtime_ns or 0

    def file_info(self, path: str) -> pafs.FileInfo:
        self._check_under_root(path)
        return self._io(lambda: self.fs.get_file_info(path))

    def list_infos(self, path: str) -> list[pafs.FileInfo]:
        """`pafs.FileInfo` of every entry of a directory (one request on an object store); [] if it
        does not exist."""
        self._check_under_root(path)
        return self._io(lambda: self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)))

    def open_input_file(self, path: str):
        self._check_under_root(path)
        return self._io(lambda: self.fs.open_input_file(path))

    def open_input_stream(self, path: str):
        self._check_under_root(path)
        return self._io(lambda: self.fs.open_input_stream(path))

    def open_output_stream(self, path: str):
        """A stream that writes `path` directly (not atomic: write a temporary name, then `move`)."""
        self._check_under_root(path)
        if not self.is_object_store:   # no directories on an object store: a marker would cost a PUT per write
            self.fs.create_dir(_parent(path), recursive=True)
        return self._io(lambda: self.fs.open_output_stream(path))

    def move(self, source: str, destination: str) -> None:
        """Rename a file (atomic on local storage), creating the destination's directory."""
        self._check_under_root(source)
        self._check_under_root(destination)
        if not self.is_object_store:
            self._io(lambda: self.fs.create_dir(_parent(destination), recursive=True))
        self._io(lambda: self.fs.move(source, destination))

    def local_path(self, path: str) -> Path | None:
        """The local file system path, or None when the storage is not local."""
        self._check_under_root(path)
        return Path(path) if self.is_local else None

    def read_bytes(self, path: str, max_bytes: int | None = None, *, replaced: bool = False) -> bytes:
        """The file's bytes. Local paths must be regular files (a FIFO or device would block or
        stream forever: OSError); with `max_bytes`, a larger file is an OSError too.

        `replaced`: the file may be replaced while it is read (the lock, a progress record, a manifest).
        On an object store pyarrow asks an object's size, then its bytes (HEAD, then GET): a replacement
        of another size in between gives the new bytes cut to the old size or padded with zeros (a third
        of such reads on a local S3 server). With `replaced`, bytes are kept only when the object's size
        after the read equals their length, else read again (REPLACED_READ_ATTEMPTS; then OSError). A
        local file is replaced by a rename, so its reads are whole anyway."""
        self._check_under_root(path)
        if self.is_local:
            return read_regular_file(path, max_bytes)

        def read() -> bytes:
            with self.fs.open_input_stream(path) as f:
                return f.read() if max_bytes is None else f.read(max_bytes + 1)

        for attempt in range(REPLACED_READ_ATTEMPTS if replaced else 1):
            data = self._io(read)
            if max_bytes is not None and len(data) > max_bytes:
                raise OSError(f"{path} is more than the {max_bytes} bytes expected")
            if not replaced:
                return data
            after = self.stamp(path, regular=True)
            if after is not None and after[0] == len(data):
                return data
            time.sleep(0.01 * (attempt + 1))
        raise OSError(f"{self.shown(path)} was replaced while it was read, {REPLACED_READ_ATTEMPTS} times in a row")

    def is_file(self, path: str) -> bool:
        """Whether `path` is a regular file (not a directory, FIFO or device)."""
        self._check_under_root(path)
        if self.is_local:
            try:
                return stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                return False
        return self._io(lambda: self.fs.get_file_info(path)).type == pafs.FileType.File

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write `data` to `path` atomically: to `temporary_path(path)`, then move into place; on an object
        store in one upload (an object appears when its upload completes: no rename needed, none to pay)."""
        self._check_under_root(path)
        if self.is_object_store:   # tried again whole while the store cannot be reached
            def upload() -> None:
                with self.fs.open_output_stream(path) as f:
                    f.write(data)

            self._io(upload)
            return
        self._write_local({path: data})

    def write_files(self, files: Mapping[str, bytes]) -> None:
        """Write several files as one (a report's tables and page): on local storage each to its
        `temporary_path` first, and all moved into place only once every one is written (renames need no
        space), so a full disk or an error halfway leaves the files as they were, no new one beside old
        ones and no temporary file; on an object store one upload each (`write_bytes`), in order."""
        if self.is_object_store:
            for path, data in files.items():
                self.write_bytes(path, data)
            return
        for path in files:
            self._check_under_root(path)
        self._write_local(files)

    def _write_local(self, files: Mapping[str, bytes]) -> None:
        """`write_files` on local storage, the paths checked already."""
        staged: dict[str, str] = {}
        try:
            for path, data in files.items():
                self.fs.create_dir(_parent(path), recursive=True)
                staged[path] = temporary_path(path)
                with self.fs.open_output_stream(staged[path]) as f:
                    f.write(data)
            for path, tmp in staged.items():
                self.fs.move(tmp, path)
        except BaseException:
            for tmp in staged.values():
                if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    self.fs.delete_file(tmp)
            raise

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def exists(self, path: str) -> bool:
        self._check_under_root(path)
        return self._io(lambda: self.fs.get_file_info(path)).type != pafs.FileType.NotFound

    def listdir(self, path: str) -> list[str]:
        """Names (not paths) in a directory, sorted; [] if it does not exist."""
        return sorted(info.base_name for info in self.list_infos(path))

    def makedirs(self, path: str) -> None:
        """Create a directory; nothing on an object store (a prefix exists once an object is under it)."""
        self._check_under_root(path)
        if not self.is_object_store:
            self.fs.create_dir(path, recursive=True)

    def delete(self, path: str) -> None:
        """Delete a file or a whole directory; nothing if it does not exist."""
        self._check_under_root(path)

        def delete() -> None:
            kind = self.fs.get_file_info(path).type
            if kind == pafs.FileType.Directory:
                self.fs.delete_dir(path)
            elif kind != pafs.FileType.NotFound:
                self.fs.delete_file(path)

        self._io(delete)

    def _is_under_root(self, path: str) -> bool:
        path = str(path)
        if path != self.root and not path.startswith(self.root.rstrip("/") + "/"):
            return False
        return all(s not in ("..", ".") for s in path[len(self.root):].split("/"))

    def _check_under_root(self, path: str, links: bool = True) -> None:
        if not self._is_under_root(path):
            raise LayoutError(f"{path!r} is not under the storage root {self.root!r}; build paths "
                              f"with `Storage.join` or `SweepLayout`")
        if links and self.is_local:
            self._check_no_link(path)

    def _check_no_link(self, path: str) -> None:
        """LinkError when a component of `path` below the root (the last one included) is a symbolic
        link; components that do not exist yet are fine (they will be created as directories)."""
        current = self.root.rstrip("/")
        for segment in path[len(self.root):].strip("/").split("/"):
            if not segment:
                continue
            current = f"{current}/{segment}"
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                return    # missing (or under a file): nothing below it can be a link
            if stat.S_ISLNK(mode):
                raise LinkError(current)


class SweepLayout:
    """Every path of one sweep (`<storage>/<sweep>/...`); one-line methods, no I/O."""

    def __init__(self, storage: Storage, sweep: str):
        self.storage = storage
        self.sweep = check_name(sweep, "sweep name")
        self.root = storage.join(self.sweep)

    def __repr__(self) -> str:
        return f"SweepLayout({self.storage!r}, {self.sweep!r})"

    def _path(self, *parts: str) -> str:
        return self.storage.join(self.root, *parts)

    def spec_file(self) -> str:
        return self._path(SPEC_FILE)

    def spec_version_file(self, version: int) -> str:
        """An earlier version of the spec, kept when `run --new-version` replaced it."""
        return self._path(f"spec-v{int(version)}.yaml")

    def plan_file(self) -> str:
        return self._path("plan.parquet")

    def source_diff_file(self, label: str) -> str:
        """`git diff HEAD` of a dirty checkout a run came from (`orchestrator.provenance`), by its revision label."""
        return self._path("provenance", f"{label}.diff")

    def marker_file(self, kind: str, task_id: str) -> str:
        """`done.json`: written last, lists every output file with its sha256 (see orchestrator.results.outputs)."""
        return self.task_file(kind, task_id, "done.json")

    def set_aside_marker_file(self, kind: str, task_id: str) -> str:
        """`done.json` of a finished task made from one that runs again, set aside until that one has run: then
        taken back where the task's recorded inputs are still its parents' (`outputs.take_back`)."""
        return self.task_file(kind, task_id, "done.set-aside.json")

    def lock_file(self) -> str:
        return self._path("run.lock")

    def task_dir(self, kind: str, task_id: str) -> str:
        return self._path("tasks", check_name(kind, "kind"), check_name(task_id, "task_id"))

    def task_file(self, kind: str, task_id: str, name: str) -> str:
        return self.storage.join(self.task_dir(kind, task_id), check_name(name, "file name"))

    def checkpoint_files(self, kind: str, task_id: str) -> dict[str, str]:
        return {name: self.task_file(kind, task_id, name) for name in CHECKPOINT_FILES}

    def resume_dir(self, kind: str, task_id: str) -> str:
        """Where a training task keeps its latest per-epoch state; deleted once the task has finished."""
        return self.storage.join(self.task_dir(kind, task_id), "resume")

    def resume_files(self, kind: str, task_id: str) -> dict[str, str]:
        """Training state saved after each epoch (same file names as a checkpoint) for resuming."""
        return {name: self.storage.join(self.resume_dir(kind, task_id), name) for name in CHECKPOINT_FILES}

    def progress_file(self, kind: str, task_id: str) -> str:
        """`progress.json`: a training task's latest finished epoch, rewritten after every epoch (status)."""
        return self.task_file(kind, task_id, "progress.json")

    def table_dir(self, table: str) -> str:
        return self._path("results", check_name(table, "table"))

    def fragment(self, table: str, task_id: str) -> str:
        return self.storage.join(self.table_dir(table), f"{check_name(task_id, 'task_id')}.parquet")

    def report_dir(self) -> str:
        return self._path("report")

    def report_file(self, name: str) -> str:
        return self.storage.join(self.report_dir(), check_name(name, "report file"))

    def mlflow_db(self) -> str:
        return self._path("mlflow.db")

    def mlflow_uri(self) -> str:
        """`sqlite:////abs/path/mlflow.db`; only for local storage."""
        path = self.storage.local_path(self.mlflow_db())
        if path is None:
            raise LayoutError(f"the default MLflow store is a SQLite file, which needs local storage, "
                              f"not {self.storage.uri!r}; set `mlflow.tracking_uri` in the spec")
        return f"sqlite:///{path.as_posix()}"

    def results_dir(self) -> str:
        return self._path("results")

    def compacted_file(self, table: str, name: str) -> str:
        """A compacted file of `table` (many tasks' rows): `results/<table>/part-<name>.parquet`."""
        return self.storage.join(self.table_dir(table), f"part-{check_name(name, 'part name')}.parquet")

    def manifests_dir(self) -> str:
        """Where the compaction manifests live: beside the tables, not in them, so that
        `results/<table>/*.parquet` matches data files only."""
        return self._path("results", "_manifests")

    def manifest_file(self, table: str) -> str:
        """Which task's rows of `table` are in which compacted part: `results/_manifests/<table>.parquet`."""
        return self.storage.join(self.manifests_dir(), f"{check_name(table, 'table')}.parquet")

    def marker_index_dir(self) -> str:
        """Where a run indexes the markers of the tasks it finished, for `status`: `results/_markers/`
        (see orchestrator.results.marker_index)."""
        return self._path("results", "_markers")

    def marker_index_file(self, name: str) -> str:
        return self.storage.join(self.marker_index_dir(), check_name(name, "file name"))

    def legacy_manifest_file(self, table: str) -> str:
        """Where sweeps compacted by earlier versions kept the manifest (inside the table's directory);
        read when `manifest_file` is missing, moved by the next compaction."""
        return self.storage.join(self.table_dir(table), "_manifest.parquet")

    def quarantine_file(self, table: str, name: str) -> str:
        """Where compaction moves a damaged part or an unreadable file of `table` (out of the glob
        `results/<table>/*.parquet`, kept for inspection): `results/_quarantine/<table>/<name>`."""
        return self._path("results", "_quarantine", check_name(table, "table"), check_name(name, "file name"))

    def ray_dir(self) -> str:
        """Where Ray Tune/Train keep their run directories, as a URI (an absolute path for local storage)."""
        return self.storage.uri_of(self._path("ray"))

    def ray_storage(self) -> dict:
        """`storage_path` and `storage_filesystem` for Ray's `RunConfig`: a path in the storage's own file
        system, never a URI, and a file system that pickles without credentials (`filesystem_for_ray`), so no
        credential of the storage URI reaches Ray's logs or the experiment state it writes."""
        if self.storage.is_local:
            return {"storage_path": self._path("ray")}
        return {"storage_path": self._path("ray"), "storage_filesystem": filesystem_for_ray(self.storage.fs)}


def open_sweep_dir(directory: str | os.PathLike) -> SweepLayout:
    """The layout of a sweep directory given as `<storage>/<sweep>`: a path, or a URI whose query (e.g.
    `s3://bucket/runs/smoke?endpoint_override=host:9000&scheme=http`) belongs to its storage."""
    text = os.fspath(directory)
    path, mark, query = text.partition("?")
    if "://" not in path and any(part in (".", "..") for part in path.split("/")):
        path = os.path.abspath(path)        # `.` (run inside the sweep), `..`, `a/./b`: the directory they name
    parent, slash, name = path.rstrip("/").rpartition("/")
    return SweepLayout(Storage((parent or slash or ".") + mark + query), name)     # `/tmp`: under `/`


def not_a_sweep(layout: SweepLayout, shown: str) -> str:
    """Why a directory given as `<storage>/<sweep>` holds no sweep (no spec.yaml), and what to give instead:
    that it does not exist or is a file, or the sweeps right under it (a storage root was given)."""
    storage, give = layout.storage, "give <storage>/<sweep name>, e.g. mmc-runs/default"
    if not storage.exists(layout.root):
        return f"{shown} does not exist; {give}"
    if storage.is_file(layout.root):
        return f"{shown} is a file, not a sweep directory (a spec's sweep is `<its storage>/<its name>`); {give}"
    names = [info.base_name for info in storage.list_infos(layout.root)[:MAX_SWEEPS_LISTED]
             if info.type == pafs.FileType.Directory]
    sweeps = [n for n in names if storage.is_file(storage.join(layout.root, n, SPEC_FILE))]
    if sweeps:
        return (f"{shown} is a storage directory, not a sweep; it holds the sweeps {', '.join(sorted(sweeps))}: "
                f"give one, e.g. {shown.rstrip('/')}/{sorted(sweeps)[0]}")
    held = [n for n in ("plan.parquet", "tasks", "results") if storage.exists(storage.join(layout.root, n))]
    if held:        # a sweep that lost its spec: its results are there, and a rerun with the spec writes it again
        return (f"{shown} holds a sweep's {', '.join(held)} but no spec.yaml, which says what they are the results "
                "of; put it back (a later version's predecessors are kept as spec-v<N>.yaml), or rerun the sweep with "
                "its spec to write it again (finished tasks are kept)")
    return f"{shown} is not a sweep directory (no spec.yaml); {give}"


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_regular_file(path: str, max_bytes: int | None = None, follow_links: bool = True,
                      whole: bool = False) -> bytes:
    """A local regular file's bytes in one `open`, `fstat` and read (non-blocking: a FIFO or device never
    blocks; it is an OSError, as is a file larger than `max_bytes`). `follow_links=False`: a link is an
    OSError (where the platform can tell); `whole`: a file whose size changed while read is one too."""
    flags = _OPEN_FLAGS | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise OSError(f"{path} is {info.st_size} bytes, more than the {max_bytes} expected")
        if max_bytes is None:
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
        else:     # the size fstat gave and one byte more (not a buffer of `max_bytes` per read); if there is
            data = _read_up_to(fd, min(info.st_size, max_bytes) + 1)   # more, the file grew: the rest, to the limit
            if len(data) == min(info.st_size, max_bytes) + 1 <= max_bytes:
                data += _read_up_to(fd, max_bytes + 1 - len(data))
    finally:
        os.close(fd)
    if max_bytes is not None and len(data) > max_bytes:
        raise OSError(f"{path} is more than the {max_bytes} bytes expected")
    if whole and len(data) != info.st_size:
        raise OSError(f"{path} changed while it was read")
    return data


def _read_up_to(fd: int, n: int) -> bytes:
    """Up to `n` bytes from `fd`, fewer only at the end of the file."""
    chunks = []
    while n > 0 and (chunk := os.read(fd, n)):
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"
