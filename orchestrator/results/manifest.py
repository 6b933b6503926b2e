"""Compacted result parts and their manifest: what `orchestrator.results.compact` writes and the readers in
`orchestrator.results.tables` trust.

`results/<table>/part-<name>.parquet` holds the rows of many tasks, each task's rows contiguous;
`results/<table>/_manifest.parquet` says which task's rows are where: one row per task (task_id,
part, offset, rows, and the sha256 of the fragment its rows came from), and in its metadata the
sha256, row count and size of every part. A part counts only once the manifest names it, and a
task's rows in a part count only while the manifest maps the task to that part. A fragment counts
unless the manifest records its exact sha256 (absorbed, its deletion still pending): a fragment
that differs is newer (the task ran again after compaction) and wins over the part's rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import vocab
MANIFEST_NAME = "_manifest.parquet"
MANIFEST_VERSION = "1"
PART_PREFIX = "part-"
_PARQUET = ".parquet"

_MANIFEST_SCHEMA = pa.schema([
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("part", pa.string(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),
    pa.field("rows", pa.int64(), nullable=False),
])


@dataclass(frozen=True)
class PartInfo:
    """A part file as its manifest records it."""

    name: str
    sha256: str
    rows: int
    size: int


@dataclass(frozen=True)
class Entry:
    """Where one task's rows are: `rows` rows from `offset` in part `part`; `sha256` of its fragment."""

    part: str
    sha256: str
    offset: int
    rows: int


@dataclass
class Manifest:
    table: str
    parts: dict[str, PartInfo] = field(default_factory=dict)
    tasks: dict[str, Entry] = field(default_factory=dict)

    def entries_of(self, part: str) -> list[tuple[str, Entry]]:
        """The tasks whose rows count in `part`, in the order of their rows."""
        return sorted(((t, e) for t, e in self.tasks.items() if e.part == part), key=lambda te: te[1].offset)

    def live_rows(self) -> dict[str, int]:
        """Rows of each part that still count (the rest belong to tasks that moved on)."""
        out = dict.fromkeys(self.parts, 0)
        for e in self.tasks.values():
            out[e.part] = out.get(e.part, 0) + e.rows
        return out


def manifest_path(layout, table: str) -> str:
    return layout.storage.join(layout.table_dir(table), MANIFEST_NAME)


def manifest_bytes(manifest: Manifest) -> bytes:
    tasks = sorted(manifest.tasks.items())
    arrow = pa.table({
        "task_id": [t for t, _ in tasks], "part": [e.part for _, e in tasks],
        "sha256": [e.sha256 for _, e in tasks], "offset": [e.offset for _, e in tasks],
        "rows": [e.rows for _, e in tasks],
    }, schema=_MANIFEST_SCHEMA)
    parts = {p.name: {"sha256": p.sha256, "rows": p.rows, "size": p.size} for p in manifest.parts.values()}
    meta = {b"mmc_sweep.table": manifest.table.encode(), b"mmc_sweep.manifest_version": MANIFEST_VERSION.encode(),
            b"mmc_sweep.parts": json.dumps(parts, sort_keys=True).encode()}
    sink = io.BytesIO()
    pq.write_table(arrow.replace_schema_metadata(meta), sink, compression="zstd")
    return sink.getvalue()


def parse_manifest(table: str, data: bytes) -> Manifest:
    """Raises ValueError when `data` is not a manifest of `table` that holds together."""
    try:
        arrow = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a Parquet file ({exc})") from None
    meta = arrow.schema.metadata or {}
    if meta.get(b"mmc_sweep.table") != table.encode() or \
            meta.get(b"mmc_sweep.manifest_version") != MANIFEST_VERSION.encode():
        raise ValueError(f"not a version-{MANIFEST_VERSION} manifest of table `{table}`")
    try:
        raw_parts = json.loads(meta[b"mmc_sweep.parts"])
        parts = {name: PartInfo(name, str(p["sha256"]), int(p["rows"]), int(p["size"]))
                 for name, p in raw_parts.items()}
        columns = {name: arrow.column(name).to_pylist() for name in _MANIFEST_SCHEMA.names}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed manifest ({type(exc).__name__}: {exc})") from None
    interned = {name: name for name in parts}
    tasks = {}
    for task_id, part, sha, offset, rows in zip(*(columns[n] for n in _MANIFEST_SCHEMA.names)):
        if part not in interned or offset is None or rows is None or offset < 0 or rows < 0 \
                or offset + rows > parts[part].rows:
            raise ValueError(f"manifest entry of {task_id!r} points outside its part {part!r}")
        tasks[task_id] = Entry(interned[part], sha, offset, rows)
    return Manifest(table, parts, tasks)


def read_manifest(layout, table: str) -> Manifest | None:
    """The table's manifest as stored now (None: never compacted); ValueError when it is unreadable."""
    path = manifest_path(layout, table)
    try:
        data = layout.storage.read_bytes(path)
    except FileNotFoundError:
        return None
    try:
        return parse_manifest(table, data)
    except ValueError as exc:
        raise ValueError(f"the manifest {path} is unreadable: {exc}") from None


@dataclass(frozen=True)
class FileStamp:
    path: str
    size: int
    mtime_ns: int


@dataclass
class Listing:
    """What a table's directory holds: fragments by task id, parts by name, leftover temporary parts."""

    fragments: dict[str, FileStamp] = field(default_factory=dict)
    parts: dict[str, FileStamp] = field(default_factory=dict)
    temporary_parts: list[str] = field(default_factory=list)
    manifest: bool = False


def list_table(layout, table: str) -> Listing:
    """One listing of `results/<table>/` (one request on an object store)."""
    import pyarrow.fs as pafs

    directory = layout.table_dir(table)
    out = Listing()
    infos = layout.storage.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
    for info in infos:
        name = info.base_name
        if info.type != pafs.FileType.File or name.startswith("."):
            continue
        stamp = FileStamp(f"{directory}/{name}", info.size or 0, info.mtime_ns or 0)
        if name == MANIFEST_NAME:
            out.manifest = True
        elif name.startswith(PART_PREFIX):
            if name.endswith(_PARQUET):
                out.parts[name[len(PART_PREFIX):-len(_PARQUET)]] = stamp
            elif ".parquet.tmp-" in name:
                out.temporary_parts.append(stamp.path)
        elif name.endswith(_PARQUET) and not name.startswith("_"):
            out.fragments[name[:-len(_PARQUET)]] = stamp
    out.fragments = dict(sorted(out.fragments.items()))
    return out


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stamp(storage, path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, None when it does not exist: the key of the caches below."""
    if storage.is_local:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns
    import pyarrow.fs as pafs

    info = storage.fs.get_file_info(path)
    return None if info.type == pafs.FileType.NotFound else (info.size or 0, info.mtime_ns or 0)


# Per-process caches, keyed by (storage uri, path) and checked against the file's size and mtime on
# every use: task-by-task lookups (`verify_fragment`, `compacted_digest`, `read_fragment`) read a
# manifest once and hash a part once, not once per task.
_CACHE_LOCK = threading.Lock()
_MANIFESTS: dict[tuple[str, str], tuple[tuple[int, int], Manifest | None]] = {}
_VERIFIED_PARTS: dict[tuple[str, str], tuple[tuple[int, int], bool]] = {}


def forget_cached(layout) -> None:
    """Drop this sweep's cached manifests and part checks (after a compaction rewrote them)."""
    prefix = layout.root + "/"
    with _CACHE_LOCK:
        for cache in (_MANIFESTS, _VERIFIED_PARTS):
            for key in [k for k in cache if k[0] == layout.storage.uri and k[1].startswith(prefix)]:
                del cache[key]


def _cached_manifest(layout, table: str) -> Manifest | None:
    storage, path = layout.storage, manifest_path(layout, table)
    stamp = _stamp(storage, path)
    key = (storage.uri, path)
    with _CACHE_LOCK:
        hit = _MANIFESTS.get(key)
    if stamp is None:
        return None
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        manifest = parse_manifest(table, storage.read_bytes(path))
    except (OSError, ValueError):
        manifest = None
    with _CACHE_LOCK:
        _MANIFESTS[key] = (stamp, manifest)
    return manifest


def part_verified(layout, table: str, info: PartInfo) -> bool:
    """Whether the part exists and has the sha256 its manifest recorded (hashed once per process)."""
    storage, path = layout.storage, layout.compacted_file(table, info.name)
    stamp = _stamp(storage, path)
    if stamp is None:
        return False
    key = (storage.uri, path)
    with _CACHE_LOCK:
        hit = _VERIFIED_PARTS.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        ok = stamp[0] == info.size and sha256_hex(storage.read_bytes(path)) == info.sha256
    except OSError:
        ok = False
    with _CACHE_LOCK:
        _VERIFIED_PARTS[key] = (stamp, ok)
    return ok


def compacted_entry(layout, table: str, task_id: str) -> Entry | None:
    """Where the task's compacted rows of `table` are, if they are in a verified part; else None."""
    manifest = _cached_manifest(layout, table)
    entry = manifest.tasks.get(task_id) if manifest is not None else None
    if entry is None or not part_verified(layout, table, manifest.parts[entry.part]):
        return None
    return entry


def compacted_digest(layout, fragment_path: str) -> str | None:
    """The sha256 a fragment had when its rows were compacted into a part file that is still intact
    (None: not a fragment path, not compacted, or its part is missing or corrupt)."""
    prefix = f"{layout.root}/results/"
    if not isinstance(fragment_path, str) or not fragment_path.startswith(prefix):
        return None
    table, _, name = fragment_path[len(prefix):].partition("/")
    if table not in vocab.TABLES or "/" in name or not name.endswith(_PARQUET) or name.startswith(PART_PREFIX):
        return None
    entry = compacted_entry(layout, table, name[:-len(_PARQUET)])
    return entry.sha256 if entry is not None else None
