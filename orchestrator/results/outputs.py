"""A task's outputs on storage: checkpoint, result fragments, and the `done.json` marker written last.

A task is finished exactly when its marker exists and every file it lists still has the sha256
recorded there. That check is the whole cache: a corrupt checkpoint or a truncated fragment fails
it, so the task is recomputed on the next run instead of being used. Markers are read defensively:
one that is not a regular file, not JSON, too large or too deep, of the wrong shape, or listing a
file that is not one of this task's outputs counts as "not finished" (the task runs again).

What a marker holds and how it is written: `results/marker_format.py`.

Why one module: a task is finished by one rule, whether one task is checked (a run's cache check,
`verify_outputs`) or a whole sweep in one pass (`status`, `verify_many`, with its read-ahead and forked
processes); the pass calls the same `_marker` and `_verify`, and apart they could drift. The pass alone
also takes what the run indexed (`index_markers`, `results/marker_index`): a marker, or a checkpoint the
run hashed, that has not changed since (size, mtime, ctime, inode) is not read again; the entry's listed
files go through the same `_listed_problem` and `_verify`.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
import stat
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator import vocab
from orchestrator.messages import logger
from orchestrator.results import manifest, marker_index
from orchestrator.results.marker_format import (MARKER_VERSION, MARKER_VERSIONS, make_marker,  # noqa: F401
                                                  marker_bytes, marker_steps)
from orchestrator.storage.layout import LinkError, SweepLayout, check_name, read_regular_file

if TYPE_CHECKING:      # torch, the tables' schemas and the graph only where a task's outputs are written or
    import torch       # a checkpoint is read: verifying markers (`status`) imports none of them

    from orchestrator.graph.dag import Task

_LOG = logger(__name__)

MAX_MARKER_BYTES = 10_000_000
NOT_FINISHED = "no done.json"   # why a task that never finished does not verify (any other reason: damaged since)
_SHA256 = re.compile("[0-9a-f]{64}")     # a sha256 as recorded: 64 lowercase hex digits


@dataclass
class TaskOutput:
    """What one task produced, before it is written."""

    tables: dict[str, list[dict]] = field(default_factory=dict)   # table name -> rows
    checkpoint: dict[str, torch.Tensor] | None = None
    meta: dict = field(default_factory=dict)                      # recorded in meta.json and done.json
    metrics: dict[str, float] = field(default_factory=dict)       # scalars for MLflow
    steps: list[tuple[str, int, float]] = field(default_factory=list)   # MLflow step series (key, step, value)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def output_files(layout: SweepLayout, kind: str, task_id: str) -> dict[str, str]:
    """Every file a task of `kind` may list in its marker: relative name -> storage path."""
    paths = [*layout.checkpoint_files(kind, task_id).values(), *(layout.fragment(t, task_id) for t in vocab.TABLES)]
    return {relative_path(layout, p): p for p in paths}


def relative_path(layout: SweepLayout, path: str) -> str:
    """A storage path under the sweep as its marker lists it (`results/paths/<id>.parquet`)."""
    return path[len(layout.root) + 1:]


def write_outputs(layout: SweepLayout, task: Task, output: TaskOutput) -> dict:
    """Write checkpoint and fragments, then the marker; returns the marker's content."""
    from orchestrator.results import tables
    from tasks.checkpoint import checkpoint_files

    storage = layout.storage
    files: dict[str, str] = {}
    sizes: dict[str, int] = {}
    if output.checkpoint is not None:
        meta = {"task_id": task.id, "kind": task.kind, "config": task.config, **output.meta}
        blobs = checkpoint_files(output.checkpoint, meta)
        paths = layout.checkpoint_files(task.kind, task.id)
        for name, blob in blobs.items():
            storage.write_bytes(paths[name], blob)
            files[relative_path(layout, paths[name])] = _sha256(blob)
            sizes[relative_path(layout, paths[name])] = len(blob)
    for table, rows in output.tables.items():
        if table == vocab.TASKS:
            continue  # the driver writes the `tasks` row (it knows the MLflow run id)
        path, data = tables.write_fragment_bytes(layout, table, task.id, rows)
        files[relative_path(layout, path)] = _sha256(data)
        sizes[relative_path(layout, path)] = len(data)
    marker = make_marker(task.id, task.kind, files, sizes, [t for t in output.tables if t != vocab.TASKS],
                         output.metrics, output.steps, output.meta, time.time())
    storage.write_bytes(layout.marker_file(task.kind, task.id), marker_bytes(marker))
    return marker


def read_marker(layout: SweepLayout, kind: str, task_id: str) -> dict | None:
    """The task's marker, or None when it is missing or not a well-formed marker of this task; `steps`
    as [key, step, value] lists whatever its version (`marker_steps`)."""
    marker, _reason = _marker(layout, kind, task_id)
    if marker is not None:
        marker["steps"] = marker_steps(marker)
    return marker


def _marker(layout: SweepLayout, kind: str, task_id: str, allowed: dict[str, str] | None = None,
            path: str | None = None, raw: bytes | None = None) -> tuple[dict | None, str]:
    """`raw`: the marker's bytes when the caller has already read them (`_LocalMarkers`)."""
    path = layout.marker_file(kind, task_id) if path is None else path
    storage = layout.storage
    try:
        try:          # one request when it is there (the usual case); else the checks below say why not
            if raw is None and allowed is not None:
                raw = storage.read_bytes(path, max_bytes=MAX_MARKER_BYTES)
        except LinkError:
            raise
        except OSError:
            raw = None
        if raw is None:
            if not storage.exists(path):
                return None, NOT_FINISHED
            if not storage.is_file(path):
                return None, f"{path} is not a regular file"
            raw = storage.read_bytes(path, max_bytes=MAX_MARKER_BYTES)
        data = json.loads(raw)
    except LinkError:
        raise                 # a link in the sweep directory is refused, not taken for "not finished"
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__})"
    allowed = output_files(layout, kind, task_id) if allowed is None else allowed
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or data.get("task_id") != task_id or data.get("version") not in MARKER_VERSIONS:
        return None, f"{path} is not a marker of this task"
    problem = _listed_problem(path, files, allowed)
    if problem:
        return None, problem
    for key in ("metrics", "meta"):
        if not isinstance(data.get(key, {}), dict):
            return None, f"{path}: `{key}` is not a mapping"
    if not isinstance(data.get("tables", []), list):
        return None, f"{path}: `tables` is not a list"
    if data["version"] >= 3 and not isinstance(data.get("steps", {}), dict):
        return None, f"{path}: `steps` is not a mapping"
    return data, ""


def _listed_problem(path: str, files: dict, allowed) -> str:
    """Why a marker's `files` {name: sha256} cannot be this task's ("" when they can): a name that is
    not one of its outputs, or a malformed sha256."""
    for name, digest in files.items():
        if name not in allowed:
            return f"{path} lists {str(name)[:100]!r}, which is not an output of this task"
        if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            return f"{path} holds a malformed sha256 for {name}"
    return ""


def index_markers(layout: SweepLayout, tasks: Iterable[tuple[str, str]]) -> int:
    """Add the markers of these (kind, task_id) — tasks a run finished — to the marker index
    (`results/marker_index`), for `status`: each marker read once, between two `lstat`s that give the same
    stamp, and indexed only when it passes the checks `_marker` reads a marker with; each file it lists
    outside `results/` (a checkpoint) hashed once, between two `lstat`s, its stamp kept where it has the
    listed sha256 (`status` then hashes it only once it changed). Local storage only; the number of
    markers indexed. Never raises: the index is a cache (what is not in it is read)."""
    if not layout.storage.is_local:
        return 0
    entries, templates = [], {}
    try:
        for kind, task_id in tasks:
            if kind not in templates:
                templates[kind] = layout.marker_file(kind, _PROBE), _Allowed(_output_templates(layout, kind))
            check_name(task_id, "task_id")
            path = templates[kind][0].replace(_PROBE, task_id)
            read = _while_unchanged(path, lambda p: read_regular_file(p, MAX_MARKER_BYTES, follow_links=False,
                                                                      whole=True))
            if read is None:
                continue                  # missing, unreadable or changed while read: `status` reads it
            raw, stamp = read
            data, _reason = _marker(layout, kind, task_id, templates[kind][1].of(task_id), path, raw)
            if data is None:
                continue
            sizes = data.get("sizes") if isinstance(data.get("sizes"), dict) else {}
            allowed = templates[kind][1]
            hashed = {}
            for name, digest in data["files"].items():
                if not name.startswith("results/"):      # a checkpoint (fragments: their part's sha256)
                    found = _while_unchanged(allowed[name], lambda p: _file_sha256(layout.storage, p))
                    if found is not None and found[0] == digest:
                        hashed[name] = found[1]
            entries.append((task_id, marker_index.Entry(
                kind, stamp, dict(data["files"]),
                {n: v for n, v in sizes.items() if n in data["files"] and type(v) is int}, hashed)))
        marker_index.write_index(layout, entries)
    except Exception as exc:  # noqa: BLE001 - status reads the markers instead
        _LOG.warning(f"the markers of {len(entries)} finished tasks were not indexed ({type(exc).__name__}: "
                     f"{exc}); `status` reads them instead")
        return 0
    return len(entries)


def _while_unchanged(path: str, read):
    """(`read(path)`, the file's stamp) where `path` is a local regular file whose stamp (`marker_index.stamp_of`)
    is the same before and after the read; None otherwise (missing, unreadable, a link, changed meanwhile)."""
    try:
        before = os.lstat(path)
        if not stat.S_ISREG(before.st_mode):
            return None
        out = read(path)
        stamp = marker_index.stamp_of(os.lstat(path))
    except OSError:
        return None
    return (out, stamp) if marker_index.stamp_of(before) == stamp else None


def verify_outputs(layout: SweepLayout, kind: str, task_id: str, hashes: dict | None = None) -> tuple[bool, str]:
    """(True, "") if the task's outputs exist and match their recorded hashes, else (False, reason).
    Never blocks: only regular files are read. `hashes` (a dict the caller keeps) remembers each
    file's sha256 by its size and mtime, so that a caller that verifies again and again (`status
    --watch`) hashes only what changed."""
    return _verify(layout, kind, task_id, hashes, _compacted(layout), None)


def _compacted(layout: SweepLayout):
    """`path -> sha256` of a fragment compacted into a verified part (None otherwise), looked up one at a time."""
    return lambda path: manifest.compacted_digest(layout, path)


def verify_many(layout: SweepLayout, tasks: Iterable[tuple[str, str]], hashes: dict | None = None,
                processes: int = 1) -> dict[str, tuple[bool, str]]:
    """`verify_outputs` of many (kind, task_id), with the same answers, for a pass over a whole sweep
    (`status`): the tables' manifests are read and their parts checked once for the pass
    (`manifest.compacted_digests`), the names a task may list are made once per kind, and a marker
    that is there is read in one request (on local storage: one `open` and one `read`, `_LocalMarkers`).
    With `processes` > 1 and at least `PARALLEL_FROM` tasks, forked processes share the markers (reading
    and parsing 10^5 of them is most of `status` at that size); where forking is not possible, or a
    process fails, this process verifies them all."""
    tasks = list(tasks)
    compacted = manifest.compacted_digests(layout)   # each manifest read when first needed, in each process
    known = marker_index.read_index(layout) if layout.storage.is_local else {}   # read once, before any fork
    processes = min(processes, len(tasks) // (PARALLEL_FROM // 2)) if len(tasks) >= PARALLEL_FROM else 1
    gc.freeze()     # the objects made so far (torch, pandas, the plan) are not scanned again by each
    try:            # collection the pass's ~10^5 parsed markers set off, nor copied into forked processes
        if processes > 1:
            out = _verify_in_processes(layout, tasks, hashes, compacted, known, processes)
            if out is not None:
                return out
        return _verify_some(layout, tasks, hashes, compacted, known)
    finally:
        gc.unfreeze()


PARALLEL_FROM = 20_000     # tasks from which `verify_many` shares the work between processes


def _verify_some(layout: SweepLayout, tasks: list[tuple[str, str]], hashes: dict | None,
                 compacted, known: dict) -> dict[str, tuple[bool, str]]:
    templates: dict[str, tuple[str, _Allowed]] = {}
    local = _LocalMarkers(layout, known) if layout.storage.is_local else None
    read_ahead = local is not None and len(tasks) >= 2 * _PREFETCH_THREADS
    out = {}
    with ThreadPoolExecutor(_PREFETCH_THREADS) if read_ahead else contextlib.nullcontext() as pool:
        for start in range(0, len(tasks), _PREFETCH_BATCH):
            batch = tasks[start:start + _PREFETCH_BATCH]
            paths = []
            for kind, task_id in batch:
                if kind not in templates:
                    templates[kind] = layout.marker_file(kind, _PROBE), _Allowed(_output_templates(layout, kind))
                check_name(task_id, "task_id")
                paths.append(templates[kind][0].replace(_PROBE, task_id))
            raws = local.read_many(batch, paths, pool) if local is not None else [None] * len(batch)
            for (kind, task_id), path, raw in zip(batch, paths, raws):
                names = templates[kind][1].of(task_id)
                out[task_id] = _verify(layout, kind, task_id, hashes, compacted, names, path, raw)
    return out


_PREFETCH_BATCH = 1024    # markers read ahead by `_LocalMarkers.read_many` at a time
_PREFETCH_THREADS = 8     # its threads: a marker not in the page cache waits on the disk, not on the CPU


class _Allowed:
    """`output_files` of every task of one kind, made from its names with the task id `_PROBE`: `of(task_id)`
    answers `name in allowed` and `allowed[name]` for one task without making its ~15 names. A listed
    name is looked up by putting `_PROBE` back in place of the task id; where that does not find it (a
    task id that also occurs elsewhere in a name), the task's names are made in full, as they were."""

    def __init__(self, templates: list[tuple[str, str]]):
        self.templates = dict(templates)          # relative name with _PROBE -> storage path with _PROBE
        self.task_id, self.full, self.seen = "", None, {}

    def of(self, task_id: str) -> _Allowed:
        self.task_id, self.full, self.seen = task_id, None, {}
        return self

    def get(self, name: str) -> str | None:
        if name in self.seen:
            return self.seen[name]
        template = name.replace(self.task_id, _PROBE, 1)
        if template in self.templates and template.replace(_PROBE, self.task_id) == name:
            path = self.seen[name] = self.templates[template].replace(_PROBE, self.task_id)
            return path
        if self.full is None:
            self.full = {rel.replace(_PROBE, self.task_id): path.replace(_PROBE, self.task_id)
                         for rel, path in self.templates.items()}
        return self.full.get(name)

    def __contains__(self, name) -> bool:
        return self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        path = self.get(name)
        if path is None:
            raise KeyError(name)
        return path


class _LocalMarkers:
    """Markers of local storage read with the fewest system calls, as `Storage.read_bytes` would read
    them: the directories down to `tasks/<kind>` are checked for links once per kind
    (`Storage.check`), each task's directory by one listing of `tasks/<kind>` (no `lstat` per task), and
    the marker itself is read by `storage.layout.read_regular_file` (what `Storage.read_bytes` reads local
    files with) without following a link, at most `MAX_MARKER_BYTES`, whole. `read` gives None for anything
    else (missing, a link, not a regular file, unreadable, changed while read, the listing failed): the
    caller then reads it through `Storage.read_bytes` and says why it is not a marker, as it always did.
    A marker in the run's index (`known`, `results/marker_index`) whose stamp (one `lstat`: size, mtime,
    ctime, inode) is still the one indexed is not read: `read` gives its index entry."""

    def __init__(self, layout: SweepLayout, known: dict | None = None):
        self.layout = layout
        self.known = known or {}
        self.plain: dict[str, set[str] | None] = {}     # kind -> its task directories that are not links

    def _plain_dirs(self, kind: str) -> set[str] | None:
        if kind not in self.plain:
            self.plain[kind] = None
            if getattr(os, "O_NOFOLLOW", 0):
                directory = self.layout.task_dir(kind, _PROBE).rsplit("/", 1)[0]
                try:
                    self.layout.storage.check(directory)         # LinkError: refused, as read_bytes would
                    with os.scandir(directory) as entries:
                        self.plain[kind] = {e.name for e in entries if not e.is_symlink()}
                except LinkError:
                    raise
                except OSError:
                    pass
        return self.plain[kind]

    def read(self, kind: str, task_id: str, path: str) -> bytes | marker_index.Entry | None:
        plain = self._plain_dirs(kind)
        if plain is None or task_id not in plain:
            return None
        row = self.known.get(task_id)
        try:
            if row is not None and row[0] == kind and _unchanged(path, marker_index.stamp_in(row)):
                try:
                    return marker_index.entry_of(row)
                except ValueError:
                    pass                        # a malformed entry: the marker is read
            return read_regular_file(path, MAX_MARKER_BYTES, follow_links=False, whole=True)
        except OSError:
            return None

    def read_many(self, tasks: list[tuple[str, str]], paths: list[str], pool=None) -> list[bytes | None]:
        """`read` of each (kind, task_id) at `paths`; with `pool`, in its threads (the reads release the
        GIL): right after a run of 10^5 tasks most markers are no longer in the page cache, and one thread
        left the CPUs half idle waiting on the disk."""
        items = list(zip(tasks, paths))
        if pool is None:
            return [self.read(kind, task_id, path) for (kind, task_id), path in items]
        for kind in {kind for kind, _ in tasks}:
            self._plain_dirs(kind)                       # each kind's listing once, before the threads
        step = -(-len(items) // _PREFETCH_THREADS)     # one slice per thread: a future per marker cost ~10 us

        def read_slice(start: int) -> list[bytes | None]:
            return [self.read(kind, task_id, path) for (kind, task_id), path in items[start:start + step]]
        return [raw for raws in pool.map(read_slice, range(0, len(items), step)) for raw in raws]


_FORKED: tuple | None = None     # what a forked process verifies: (layout, tasks, hashes, compacted, known)


def _verify_forked(share: tuple[int, int]) -> tuple[dict, dict]:
    """The tasks `start`, `start + every`, ... of the pass (`share` = (start, every)): each process gets
    as many tasks of each kind as the next (the kinds' markers differ in size and they come in runs)."""
    layout, tasks, hashes, compacted, known = _FORKED
    mine = dict(hashes) if hashes is not None else None
    out = _verify_some(layout, tasks[share[0]::share[1]], mine, compacted, known)
    return out, ({k: v for k, v in mine.items() if k not in hashes} if mine is not None else {})


def _verify_in_processes(layout, tasks, hashes, compacted, known, processes: int) -> dict | None:
    """`_verify_some` in `processes` - 1 forked processes and this one; None where that cannot be done."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _FORKED
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    shares = [(i, processes) for i in range(processes)]
    _FORKED = (layout, tasks, hashes, compacted, known)
    try:
        with ProcessPoolExecutor(processes - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_verify_forked, share) for share in shares[1:]]
            out, found = _verify_forked(shares[0])
            for future in futures:
                more, seen = future.result()
                out.update(more)
                found.update(seen)
    except LinkError:
        raise
    except Exception as exc:  # noqa: BLE001 - a process that could not start or died: verify here instead
        _LOG.debug(f"verifying in {processes} processes failed ({type(exc).__name__}: {exc}); verifying here")
        return None
    finally:
        _FORKED = None
    if hashes is not None:
        hashes.update(found)
    return out


_PROBE = f"probe{uuid.uuid4().hex}"   # a task id no real one equals: the names of `output_files`, once per kind


def _output_templates(layout: SweepLayout, kind: str) -> list[tuple[str, str]]:
    """`output_files` of a task of `kind` with the task id `_PROBE` (replaced by each task's id)."""
    templates = list(output_files(layout, kind, _PROBE).items())
    if any(rel.count(_PROBE) != 1 or path.count(_PROBE) != 1 for rel, path in templates):
        raise ValueError(f"the output names of `{kind}` do not hold the task id once")   # layout changed: say so
    return templates


def _verify(layout: SweepLayout, kind: str, task_id: str, hashes: dict | None, compacted,
            allowed: dict[str, str] | None, marker_path: str | None = None,
            raw: bytes | marker_index.Entry | None = None) -> tuple[bool, str]:
    """`raw`: the marker's bytes, or its index entry (an unchanged marker; its listed files are checked
    as a marker's are)."""
    allowed = output_files(layout, kind, task_id) if allowed is None else allowed
    if isinstance(raw, marker_index.Entry):
        reason = _listed_problem(marker_path or layout.marker_file(kind, task_id), raw.files, allowed)
        marker = None if reason else {"files": raw.files, "sizes": raw.sizes}
    else:
        marker, reason = _marker(layout, kind, task_id, allowed, marker_path, raw)
    if marker is None:
        return False, reason
    storage = layout.storage
    sizes = marker.get("sizes") if isinstance(marker.get("sizes"), dict) else {}
    hashed = raw.hashed if isinstance(raw, marker_index.Entry) else {}    # {name: the stamp the run hashed it at}
    for name, digest in marker["files"].items():
        path = allowed[name]
        if compacted(path) == digest:
            continue   # a fragment whose rows were compacted into a verified part file
        if name in hashed and _unchanged(path, hashed[name]):
            continue   # hashed by the run when it indexed the task, unchanged since
        try:
            size = sizes.get(name)
            stamp = storage.stamp(path, regular=True)
            if stamp is None:
                return False, f"missing {path}"
            if isinstance(size, int) and stamp[0] != size:
                return False, f"size mismatch in {path}"
            key = (path, *stamp)
            found = hashes.get(key) if hashes is not None else None
            if found is None:
                found = _file_sha256(storage, path)
                if hashes is not None:
                    hashes[key] = found
            if found != digest:
                return False, f"sha256 mismatch in {path}"
        except OSError as exc:
            return False, f"unreadable {path} ({exc})"
    return True, ""


def _unchanged(path: str, stamp: tuple) -> bool:
    """Whether the local file at `path` is a regular file with this stamp (`marker_index.stamp_of`)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and marker_index.stamp_of(info) == stamp


HASH_CHUNK_BYTES = 8 * 1024 * 1024


def _file_sha256(storage, path: str) -> str:
    """sha256 of a stored file, read in chunks (a huge or sparse file does not have to fit in memory)."""
    digest = hashlib.sha256()
    with storage.open_input_stream(path) as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# ----- what a task was made from ---------------------------------------------------------------------

def input_digest(marker: dict) -> str:
    """What a task's children read of it, as one sha256 of the sha256s its marker records: its checkpoint
    tensors (`*.safetensors`) and its `paths` rows (an aligned path may take the linear path's); for a task
    with neither (a runner of your own), every output but meta.json and the training curve, whose times
    differ between two runs of the same computation (a task without outputs: the sha256 of none)."""
    files = marker.get("files") if isinstance(marker.get("files"), dict) else {}
    read = sorted((name, digest) for name, digest in files.items()
                  if name.endswith(".safetensors") or name.startswith(f"results/{vocab.PATHS}/")) or \
        sorted((name, digest) for name, digest in files.items()
               if not name.endswith("/meta.json") and not name.startswith(f"results/{vocab.TRAIN_CURVES}/"))
    return _sha256(json.dumps(read).encode())


def inputs_of(layout: SweepLayout, parent_kinds: dict[str, str]) -> dict[str, str]:
    """{parent task id: its `input_digest`} from the parents' markers as they are now (a parent without a
    readable marker of its own is left out: the task then cannot be taken back, only recomputed). Every task
    asks this of its parents when it ends, so a marker is read in one request and only the fields the digest
    takes are checked (not `_marker`'s names of every output, nor its steps): a marker that lists more than
    its task's outputs never verifies, so its task runs again and its children are recomputed anyway."""
    out = {}
    for parent, kind in parent_kinds.items():
        try:
            data = json.loads(layout.storage.read_bytes(layout.marker_file(kind, parent), max_bytes=MAX_MARKER_BYTES))
        except LinkError:
            raise
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            continue
        if isinstance(data, dict) and data.get("task_id") == parent and isinstance(data.get("files"), dict) \
                and data.get("version") in MARKER_VERSIONS:
            out[parent] = input_digest(data)
    return out


def set_aside(layout: SweepLayout, kind: str, task_id: str) -> None:
    """Move a finished task's marker aside (`SweepLayout.set_aside_marker_file`): it no longer counts as
    finished, its outputs stay, and `take_back` restores it once its parents have run again."""
    path = layout.marker_file(kind, task_id)
    if layout.storage.exists(path):
        layout.storage.move(path, layout.set_aside_marker_file(kind, task_id))


def take_back(layout: SweepLayout, kind: str, task_id: str, parent_kinds: dict[str, str]) -> dict | None:
    """The marker `set_aside` moved away, restored where its outputs still verify and the inputs it recorded
    (`meta.inputs`, `inputs_of` when it ran) are its parents' now, every parent recorded: the recomputed
    parents gave the same bits, so the task is finished as it was. None (the set-aside marker removed) where
    not: the task runs again."""
    aside, storage = layout.set_aside_marker_file(kind, task_id), layout.storage
    try:                   # one request: a task that was never set aside (nearly every one) has no such file
        raw = storage.read_bytes(aside, max_bytes=MAX_MARKER_BYTES)
    except FileNotFoundError:
        return None
    marker, _ = _marker(layout, kind, task_id, path=aside, raw=raw)
    recorded = ((marker or {}).get("meta") or {}).get("inputs")
    if marker is None or not isinstance(recorded, dict) or set(recorded) != set(parent_kinds) \
            or recorded != inputs_of(layout, parent_kinds) \
            or not _verify(layout, kind, task_id, None, _compacted(layout), None, aside, raw)[0]:
        storage.delete(aside)
        return None
    storage.move(aside, layout.marker_file(kind, task_id))
    marker["steps"] = marker_steps(marker)
    return marker


def invalidate(layout: SweepLayout, kind: str, task_id: str) -> None:
    """Remove the marker so the task reruns (its files are replaced atomically by the rerun)."""
    path = layout.marker_file(kind, task_id)
    if layout.storage.exists(path):
        layout.storage.delete(path)


def load_checkpoint(layout: SweepLayout, kind: str, task_id: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a task's checkpoint (safetensors + meta.json); never unpickles. A damaged one raises
    CorruptCheckpointError naming the file by its path in the sweep (whose task it is), not its name alone."""
    from tasks.checkpoint import CorruptCheckpointError, read_checkpoint

    paths = layout.checkpoint_files(kind, task_id)
    files = {name: layout.storage.read_bytes(path) for name, path in paths.items()}
    try:
        return read_checkpoint(files)
    except CorruptCheckpointError as exc:
        raise CorruptCheckpointError(paths.get(exc.file, exc.file), exc.problem) from None
