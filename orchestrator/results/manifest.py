"""Compacted result parts and their manifest: what `orchestrator.results.compact` writes and the readers in
`orchestrator.results.tables` trust.

`results/<table>/part-<name>.parquet` holds the rows of many tasks, each task's rows contiguous;
`results/_manifests/<table>.parquet` says which task's rows are where: one row per task (task_id,
part, offset, rows, and the sha256 and size of the fragment its rows came from), and in its metadata
the sha256, row count and size of every part. The manifest sits outside the table's directory, so
`results/<table>/*.parquet` matches data files only (sweeps compacted before kept it there as
`_manifest.parquet`: it is read until the next compaction moves it).

What counts, checked whenever it decides something (sizes first, then sha256):
- a part counts only once the manifest names it, and only while it has the size and sha256 the
  manifest recorded (`part_state`); a damaged part's tasks whose rows still re-serialise to their
  fragment's recorded sha256 are restored from it (`tables.salvage_part`), the others recomputed;
- a task's rows in a part count only while the manifest maps the task to that part;
- a fragment counts as absorbed (its deletion pending) only while it has exactly the recorded sha256
  AND the part holding its rows verifies; a fragment that differs is newer (the task ran again after
  compaction) and wins over the part's rows; one whose part is missing or damaged restores its rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import vocab
from orchestrator.storage.layout import temporary_target

MANIFEST_VERSION = "2"                 # 2: fragment sizes; 1 (read only): without them
_READABLE_VERSIONS = (b"1", b"2")
PART_PREFIX = "part-"
_PARQUET = ".parquet"

# What `part_state` finds
PART_OK, PART_MISSING, PART_DAMAGED, PART_UNREADABLE = "ok", "missing", "damaged", "unreadable"

_MANIFEST_SCHEMA = pa.schema([
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("part", pa.string(), nullable=False),
    pa.field("sha256", pa.string(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),
    pa.field("rows", pa.int64(), nullable=False),
    pa.field("size", pa.int64()),
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
    """Where one task's rows are: `rows` rows from `offset` in part `part`; `sha256` and `size` (None:
    not recorded, manifests of version 1) of the fragment they came from."""

    part: str
    sha256: str
    offset: int
    rows: int
    size: int | None = None

    def matches(self, data: bytes) -> bool:
        """Whether `data` is exactly the fragment these rows came from (size first: no hash when it differs)."""
        return (self.size is None or len(data) == self.size) and sha256_hex(data) == self.sha256


@dataclass
class Manifest:
    table: str
    parts: dict[str, PartInfo] = field(default_factory=dict)
    tasks: dict[str, Entry] = field(default_factory=dict)

    def entries_of(self, part: str) -> list[tuple[str, Entry]]:
        """The tasks whose rows count in `part`, in the order of their rows."""
        return _in_row_order(item for item in self.tasks.items() if item[1].part == part)

    def entries_by_part(self) -> dict[str, list[tuple[str, Entry]]]:
        """`entries_of` every part that has any, in one pass over the tasks (a reader wants them all)."""
        out: dict[str, list[tuple[str, Entry]]] = {}
        for item in self.tasks.items():
            out.setdefault(item[1].part, []).append(item)
        return {part: _in_row_order(entries) for part, entries in out.items()}

    def live_rows(self) -> dict[str, int]:
        """Rows of each part that still count (the rest belong to tasks that moved on)."""
        out = dict.fromkeys(self.parts, 0)
        for e in self.tasks.values():
            out[e.part] = out.get(e.part, 0) + e.rows
        return out


def _in_row_order(entries) -> list[tuple[str, Entry]]:
    return sorted(entries, key=lambda te: te[1].offset)


def manifest_path(layout, table: str) -> str:
    return layout.manifest_file(table)


def manifest_bytes(manifest: Manifest) -> bytes:
    tasks = sorted(manifest.tasks.items())
    arrow = pa.table({
        "task_id": [t for t, _ in tasks], "part": [e.part for _, e in tasks],
        "sha256": [e.sha256 for _, e in tasks], "offset": [e.offset for _, e in tasks],
        "rows": [e.rows for _, e in tasks], "size": [e.size for _, e in tasks],
    }, schema=_MANIFEST_SCHEMA)
    parts = {p.name: {"sha256": p.sha256, "rows": p.rows, "size": p.size} for p in manifest.parts.values()}
    meta = {b"mmc_sweep.table": manifest.table.encode(), b"mmc_sweep.manifest_version": MANIFEST_VERSION.encode(),
            b"mmc_sweep.parts": json.dumps(parts, sort_keys=True).encode()}
    sink = io.BytesIO()
    pq.write_table(arrow.replace_schema_metadata(meta), sink, compression="zstd")
    return sink.getvalue()


def read_parquet_bytes(data) -> pa.Table:
    """A whole Parquet file held in memory, read on this thread: no thread pool, no read-ahead. Arrow's
    background threads that still hold a buffer of Python bytes when the interpreter exits take the
    GIL after finalisation and abort the process ("terminate called without an active exception",
    exit 134); reads that never hand a buffer to another thread cannot."""
    return pq.ParquetFile(pa.BufferReader(data), pre_buffer=False).read(use_threads=False)


def parse_manifest(table: str, data: bytes) -> Manifest:
    """Raises ValueError when `data` is not a manifest of `table` that holds together."""
    try:
        arrow = read_parquet_bytes(data)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a Parquet file ({exc})") from None
    meta = arrow.schema.metadata or {}
    if meta.get(b"mmc_sweep.table") != table.encode() or meta.get(b"mmc_sweep.manifest_version") not in \
            _READABLE_VERSIONS:
        raise ValueError(f"not a manifest of table `{table}` (versions {', '.join(v.decode() for v in _READABLE_VERSIONS)})")
    try:
        raw_parts = json.loads(meta[b"mmc_sweep.parts"])
        parts = {name: PartInfo(name, str(p["sha256"]), int(p["rows"]), int(p["size"]))
                 for name, p in raw_parts.items()}
        columns = {name: arrow.column(name).to_pylist() if name in arrow.column_names else [None] * arrow.num_rows
                   for name in _MANIFEST_SCHEMA.names}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed manifest ({type(exc).__name__}: {exc})") from None
    interned = {name: name for name in parts}
    tasks = {}
    for task_id, part, sha, offset, rows, size in zip(*(columns[n] for n in _MANIFEST_SCHEMA.names)):
        if part not in interned or offset is None or rows is None or offset < 0 or rows < 0 \
                or offset + rows > parts[part].rows or (size is not None and size < 0):
            raise ValueError(f"manifest entry of {task_id!r} points outside its part {part!r}")
        tasks[task_id] = Entry(interned[part], sha, offset, rows, size)
    return Manifest(table, parts, tasks)


def stored_manifest_path(layout, table: str) -> str | None:
    """The manifest file that counts: the current location, else an earlier version's; None: neither."""
    for path in (layout.manifest_file(table), layout.legacy_manifest_file(table)):
        if layout.storage.stamp(path) is not None:
            return path
    return None


def part_task_ids(layout, table: str, name: str) -> set[str]:
    """The tasks whose rows part `name` holds, from its own `task_id` column: what a part is worth when no
    manifest says it (a task without rows leaves no trace there, and has none to lose). Raises OSError or
    ValueError when the part cannot be read."""
    try:
        data = layout.storage.read_bytes(layout.compacted_file(table, name))
        ids = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False).read(columns=["task_id"], use_threads=False)
    except pa.ArrowException as exc:
        raise ValueError(f"not a Parquet file with a `task_id` column ({exc})") from None
    return {str(t) for t in ids.column("task_id").to_pylist() if t is not None}


def read_manifest(layout, table: str) -> Manifest | None:
    """The table's manifest as stored now (None: never compacted); ValueError when it is unreadable."""
    path = stored_manifest_path(layout, table)
    if path is None:
        return None
    try:
        data = layout.storage.read_bytes(path, replaced=True)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"the manifest {path} is unreadable: {exc}") from None
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
    """What a table's directory holds: fragments by task id, parts by name, leftover temporary files
    (of writes that never finished), and whether an earlier version's manifest is still there."""

    fragments: dict[str, FileStamp] = field(default_factory=dict)
    parts: dict[str, FileStamp] = field(default_factory=dict)
    temporary: list[str] = field(default_factory=list)
    legacy_manifest: bool = False


def list_table(layout, table: str) -> Listing:
    """One listing of `results/<table>/` (one request on an object store)."""
    import pyarrow.fs as pafs

    directory = layout.table_dir(table)
    out = Listing()
    for info in layout.storage.list_infos(directory):
        name = info.base_name
        if info.type != pafs.FileType.File:
            continue
        stamp = FileStamp(f"{directory}/{name}", info.size or 0, info.mtime_ns or 0)
        if temporary_target(name) is not None:      # hidden (`.<name>.tmp-<uuid>`) or as written before
            out.temporary.append(stamp.path)
        elif name.startswith("."):
            continue
        elif name == "_manifest.parquet":
            out.legacy_manifest = True
        elif name.startswith(PART_PREFIX) and name.endswith(_PARQUET):
            out.parts[name[len(PART_PREFIX):-len(_PARQUET)]] = stamp
        elif name.endswith(_PARQUET) and not name.startswith("_"):
            out.fragments[name[:-len(_PARQUET)]] = stamp
    out.fragments = dict(sorted(out.fragments.items()))
    return out


def temporary_manifests(layout, table: str) -> list[str]:
    """Temporary files of manifest writes of `table` that never finished (a driver killed meanwhile)."""
    directory = layout.manifests_dir()
    return [f"{directory}/{info.base_name}" for info in layout.storage.list_infos(directory)
            if temporary_target(info.base_name) == f"{table}{_PARQUET}"]


def sha256_hex(data) -> str:
    return hashlib.sha256(data).hexdigest()


# Per-process caches, keyed by (storage uri, path) and checked against the file's size and mtime on
# every use: task-by-task lookups (`verify_fragment`, `compacted_digest`, `read_fragment`) read a
# manifest once and hash a part once, not once per task.
_CACHE_LOCK = threading.Lock()
_MANIFESTS: dict[tuple[str, str], tuple[tuple[int, int], Manifest | None]] = {}
_PART_STATES: dict[tuple[str, str], tuple[tuple[int, int], str]] = {}


def forget_cached(layout) -> None:
    """Drop this sweep's cached manifests and part checks (after a compaction rewrote them)."""
    prefix = layout.root + "/"
    with _CACHE_LOCK:
        for cache in (_MANIFESTS, _PART_STATES):
            for key in [k for k in cache if k[0] == layout.storage.uri and k[1].startswith(prefix)]:
                del cache[key]


def _cached_manifest(layout, table: str) -> Manifest | None:
    storage = layout.storage
    path = stored_manifest_path(layout, table)
    stamp = storage.stamp(path) if path is not None else None
    if stamp is None:
        return None
    key = (storage.uri, path)
    with _CACHE_LOCK:
        hit = _MANIFESTS.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        manifest = parse_manifest(table, storage.read_bytes(path, replaced=True))
    except (OSError, ValueError):
        manifest = None
    with _CACHE_LOCK:
        _MANIFESTS[key] = (stamp, manifest)
    return manifest


def check_part(info: PartInfo, data: bytes) -> str:
    """PART_OK when `data` has the part's recorded size and sha256, else PART_DAMAGED."""
    return PART_OK if len(data) == info.size and sha256_hex(data) == info.sha256 else PART_DAMAGED


def part_state(layout, table: str, info: PartInfo) -> str:
    """PART_OK (exists with the recorded size and sha256), PART_MISSING, PART_DAMAGED (size or sha256
    differ) or PART_UNREADABLE (an I/O error: nothing can be said). Hashed once per process while the
    file's size and mtime stay the same."""
    storage, path = layout.storage, layout.compacted_file(table, info.name)
    stamp = storage.stamp(path)
    if stamp is None:
        return PART_MISSING
    if stamp[0] != info.size:
        return PART_DAMAGED
    key = (storage.uri, path)
    with _CACHE_LOCK:
        hit = _PART_STATES.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        state = check_part(info, storage.read_bytes(path))
    except FileNotFoundError:
        return PART_MISSING
    except OSError:
        return PART_UNREADABLE
    with _CACHE_LOCK:
        _PART_STATES[key] = (stamp, state)
    return state


def part_verified(layout, table: str, info: PartInfo) -> bool:
    """Whether the part exists and has the size and sha256 its manifest recorded."""
    return part_state(layout, table, info) == PART_OK


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


def compacted_digests(layout):
    """`compacted_digest` for the many fragments of one pass over a sweep (`outputs.verify_many`): each
    table's manifest is read and each of its parts checked once, instead of once per fragment, when a
    fragment of that table is first looked up (a table no marker lists, such as `tasks`, is not read; in
    forked processes each reads what its own tasks list). Returns the lookup (fragment path -> sha256 or
    None), a snapshot of each manifest as it is when first looked up."""
    prefix = f"{layout.root}/results/"
    snapshots: dict[str, tuple[Manifest, set[str]] | None] = {}

    def snapshot(table: str) -> tuple[Manifest, set[str]] | None:
        if table not in snapshots:
            m = _cached_manifest(layout, table)
            snapshots[table] = None if m is None else \
                (m, {name for name, info in m.parts.items() if part_verified(layout, table, info)})
        return snapshots[table]

    def lookup(fragment_path: str) -> str | None:
        if not isinstance(fragment_path, str) or not fragment_path.startswith(prefix):
            return None
        table, _, name = fragment_path[len(prefix):].partition("/")
        if table not in vocab.TABLES or "/" in name or not name.endswith(_PARQUET) or name.startswith(PART_PREFIX):
            return None
        found = snapshot(table)
        entry = found[0].tasks.get(name[:-len(_PARQUET)]) if found is not None else None
        return entry.sha256 if entry is not None and entry.part in found[1] else None

    return lookup

