"""Where every artifact of a sweep lives: the one module that builds storage paths.

```
<storage>/<sweep>/
  spec.yaml                              resolved spec, as run (spec-v<N>.yaml: earlier versions)
  plan.parquet                           every planned task: id, kind, parents, labels, settings, config
  run.lock                               held by the running invocation
  mlflow.db                              default MLflow tracking store (local storage only)
  tasks/<kind>/<task_id>/                model.safetensors, meta.json, progress.json, resume/, ...
  results/<table>/<task_id>.parquet      one fragment per task
  report/                                summary tables, figures, report.html
  ray/                                   Ray Tune / Train run directories (storage_path)
```
`Storage` wraps a `pyarrow.fs` filesystem (local path, file://, s3://, gs://, hdfs://); paths it
takes and returns are in that filesystem's namespace (absolute paths for local storage,
"bucket/key" for object stores). Every name is checked so that nothing escapes the root.
"""
from __future__ import annotations

import os
import re
import stat
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from orchestrator.uris import UriError, local_path_of, redact

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.~+=-]*$")   # one path segment, not hidden
CHECKPOINT_FILES = ("model.safetensors", "meta.json")


class LayoutError(UriError):
    """A name that would leave the storage root, or a request the storage cannot serve."""


def check_name(name: str, what: str = "name") -> str:
    """One path segment: letters, digits and _ . ~ + = -; no separators, no '..', not hidden."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name or len(name) > 255:
        raise LayoutError(f"`{what}`: {name!r} is not allowed; use letters, digits and _ . ~ + = - "
                          f"(not starting with '.' or '-', without '..' or path separators)")
    return name


class Storage:
    """A root directory on a `pyarrow.fs` filesystem; writes are atomic (temporary name + move)."""

    def __init__(self, uri: str | os.PathLike):
        uri = os.fspath(uri)
        local = local_path_of(uri)
        if local is not None:
            self.fs: pafs.FileSystem = pafs.LocalFileSystem()
            self.root = os.path.abspath(os.path.expanduser(local)).replace(os.sep, "/").rstrip("/") or "/"
            self.uri = self.root
        else:
            self.fs, path = pafs.FileSystem.from_uri(uri)
            self.root = path.rstrip("/")
            self.uri = uri.rstrip("/")
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def __reduce__(self):
        return Storage, (self.uri,)

    def __repr__(self) -> str:
        return f"Storage({self.uri!r})"

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
        """The URI (for local storage: the absolute path) of a path under the root, e.g. for Ray."""
        self._check_under_root(path)
        return self.uri + path[len(self.root):]

    def local_path(self, path: str) -> Path | None:
        """The local file system path, or None when the storage is not local."""
        self._check_under_root(path)
        return Path(path) if self.is_local else None

    def read_bytes(self, path: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes. Local paths must be regular files (a FIFO or device would block or
        stream forever: OSError); with `max_bytes`, a larger file is an OSError too."""
        self._check_under_root(path)
        if self.is_local:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(f"{path} is not a regular file")
            if max_bytes is not None and info.st_size > max_bytes:
                raise OSError(f"{path} is {info.st_size} bytes, more than the {max_bytes} expected")
        with self.fs.open_input_stream(path) as f:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            raise OSError(f"{path} is more than the {max_bytes} bytes expected")
        return data

    def is_file(self, path: str) -> bool:
        """Whether `path` is a regular file (not a directory, FIFO or device)."""
        self._check_under_root(path)
        if self.is_local:
            try:
                return stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                return False
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write `data` to `path` atomically: to `<path>.tmp-<uuid>`, then move into place."""
        self._check_under_root(path)
        self.fs.create_dir(_parent(path), recursive=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, path)
        except BaseException:
            if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                self.fs.delete_file(tmp)
            raise

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def exists(self, path: str) -> bool:
        self._check_under_root(path)
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def listdir(self, path: str) -> list[str]:
        """Names (not paths) in a directory, sorted; [] if it does not exist."""
        self._check_under_root(path)
        infos = self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted(info.base_name for info in infos)

    def makedirs(self, path: str) -> None:
        self._check_under_root(path)
        self.fs.create_dir(path, recursive=True)

    def delete(self, path: str) -> None:
        """Delete a file or a whole directory; nothing if it does not exist."""
        self._check_under_root(path)
        kind = self.fs.get_file_info(path).type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif kind != pafs.FileType.NotFound:
            self.fs.delete_file(path)

    def _is_under_root(self, path: str) -> bool:
        path = str(path)
        if path != self.root and not path.startswith(self.root.rstrip("/") + "/"):
            return False
        return all(s not in ("..", ".") for s in path[len(self.root):].split("/"))

    def _check_under_root(self, path: str) -> None:
        if not self._is_under_root(path):
            raise LayoutError(f"{path!r} is not under the storage root {self.root!r}; build paths "
                              f"with `Storage.join` or `SweepLayout`")


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
        return self._path("spec.yaml")

    def spec_version_file(self, version: int) -> str:
        """An earlier version of the spec, kept when `run --new-version` replaced it."""
        return self._path(f"spec-v{int(version)}.yaml")

    def plan_file(self) -> str:
        return self._path("plan.parquet")

    def marker_file(self, kind: str, task_id: str) -> str:
        """`done.json`: written last, lists every output file with its sha256 (see orchestrator.results.outputs)."""
        return self.task_file(kind, task_id, "done.json")

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

    def compacted_file(self, table: str, name: str) -> str:
        """A compacted file of `table` (many tasks' rows): `results/<table>/part-<name>.parquet`."""
        return self.storage.join(self.table_dir(table), f"part-{check_name(name, 'part name')}.parquet")

    def ray_dir(self) -> str:
        """Ray Tune/Train `storage_path`, as a URI (an absolute path for local storage)."""
        return self.storage.uri_of(self._path("ray"))


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"
