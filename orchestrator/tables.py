"""Result tables: one Parquet fragment per task per table, explicit schemas, and the readers.

Fragments live at ``layout.fragment(table, task_id)`` (``results/<table>/<task_id>.parquet``) and
are written whole and atomically through ``Storage.write_bytes``, so rerunning a task replaces its
fragment instead of appending duplicates, and many workers can write at once without clashing.
Every table has an explicit schema (``SCHEMAS``); rows are checked against it before anything is
written, and errors name the table, the column, the row and what is allowed. Every row carries the
task's labels and the resolved settings of its lineage as `<section>.<field>` columns.

At the end of a run `orchestrator.compact` merges the fragments into a few part files per table
(``results/<table>/part-<name>.parquet``) listed by a manifest; the readers here (`read_table`,
`read_arrow`, `read_fragment`, `verify_fragment`) read parts and fragments alike, every task's rows
exactly once, and a fragment written after its task was compacted wins.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import io
import json
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator import vocab
from orchestrator.columns import settings_columns

SCHEMA_VERSION = "2"
PANDAS_TYPES = {pa.int64(): pd.Int64Dtype()}   # nullable ints: 63-bit seeds must not pass through float64
TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


def _f(name: str, type_: pa.DataType, required: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=not required)


# Labels every task carries (graph.Task.labels); repeated in the result tables so that they can be
# grouped without a join. None where not applicable.
_LABELS = [
    _f("dataset", pa.string()),
    _f("cue_proportion", pa.float64()),
    _f("model", pa.string()),
    _f("seed", pa.int64()),
    _f("method", pa.string()),
    _f("init_seed", pa.int64()),
    _f("data_seed", pa.int64()),
    _f("variant", pa.string()),          # the swept values of the task's combination, e.g. "finetune.lam=3"
]
_PAIR = [
    _f("pair_type", pa.string(), required=True),
    _f("pair_design", pa.string()),
    _f("path_kind", pa.string(), required=True),
    _f("alignment", pa.string()),
    _f("endpoint_a", pa.string()),
    _f("endpoint_b", pa.string()),
    _f("init_seed_a", pa.int64()),
    _f("init_seed_b", pa.int64()),
    _f("data_seed_a", pa.int64()),
    _f("data_seed_b", pa.int64()),
]
# The resolved settings of the task's lineage: `<section>.<field>`, null where not part of it.
_SETTINGS = [_f(name, _ARROW_TYPES[kind]) for name, kind in settings_columns()]
SETTINGS_COLUMNS = tuple(f.name for f in _SETTINGS)

SCHEMAS: dict[str, pa.Schema] = {
    "tasks": pa.schema([
        _f("task_id", pa.string(), required=True),
        _f("kind", pa.string(), required=True),
        _f("status", pa.string(), required=True),        # vocab.TABLE_STATUSES
        _f("parents", pa.list_(pa.string())),
        _f("spec_hash", pa.string()),
        *_LABELS,
        *[pa.field(f.name, f.type) for f in _PAIR],
        _f("started_at", TIMESTAMP),
        _f("finished_at", TIMESTAMP),
        _f("duration_s", pa.float64()),
        _f("device", pa.string()),
        _f("num_workers", pa.int64()),
        _f("host", pa.string()),
        _f("git_rev", pa.string()),
        _f("torch_version", pa.string()),
        _f("cached", pa.bool_()),                        # output was already present: not recomputed
        _f("mlflow_run_id", pa.string()),
        _f("error", pa.string()),
        _f("config_json", pa.string()),                  # the task's canonical config
        *_SETTINGS,
    ]),
    "evaluations": pa.schema([
        _f("task_id", pa.string(), required=True),
        _f("kind", pa.string()),                         # pretrain | finetune
        *_LABELS,
        _f("eval_set", pa.string(), required=True),
        _f("loss", pa.float64(), required=True),
        _f("acc", pa.float64(), required=True),          # fraction in [0, 1]
        _f("n", pa.int64(), required=True),
        *_SETTINGS,
    ]),
    "train_curves": pa.schema([
        _f("task_id", pa.string(), required=True),
        _f("kind", pa.string()),
        _f("epoch", pa.int64(), required=True),
        _f("split", pa.string(), required=True),
        _f("loss", pa.float64(), required=True),
        _f("acc", pa.float64()),
        _f("lr", pa.float64()),
        _f("duration_s", pa.float64()),
        *_LABELS,
        *_SETTINGS,
    ]),
    "paths": pa.schema([
        _f("task_id", pa.string(), required=True),
        *_PAIR,
        _f("dataset", pa.string()),
        _f("cue_proportion", pa.float64()),
        _f("model", pa.string()),
        _f("seed", pa.int64()),
        _f("variant", pa.string()),
        _f("alpha", pa.float64(), required=True),
        _f("eval_set", pa.string(), required=True),
        _f("loss", pa.float64(), required=True),
        _f("acc", pa.float64(), required=True),
        _f("n", pa.int64()),
        _f("agree_a", pa.float64()),                     # fraction of predictions equal to endpoint A's
        _f("agree_b", pa.float64()),
        _f("reliance_randimg", pa.float64()),            # acc(randimg) - chance at this alpha
        _f("reliance_randcue", pa.float64()),            # acc(nocue) - acc(randcue) at this alpha
        *_SETTINGS,
    ]),
    "barriers": pa.schema([
        _f("task_id", pa.string(), required=True),
        *_PAIR,
        _f("dataset", pa.string()),
        _f("cue_proportion", pa.float64()),
        _f("model", pa.string()),
        _f("seed", pa.int64()),
        _f("eval_set", pa.string(), required=True),
        _f("metric", pa.string(), required=True),        # METRICS
        _f("definition", pa.string(), required=True),    # DEFINITIONS
        _f("value", pa.float64(), required=True),
        _f("variant", pa.string()),
        *_SETTINGS,
    ]),
}

# Columns whose values come from a closed set: (table, column) -> allowed values.
ALLOWED_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    (vocab.TASKS, "kind"): vocab.TASK_KINDS,
    (vocab.TASKS, "status"): vocab.TABLE_STATUSES,
    (vocab.EVALUATIONS, "kind"): vocab.TASK_KINDS,
    (vocab.TRAIN_CURVES, "kind"): vocab.TASK_KINDS,
    (vocab.PATHS, "path_kind"): vocab.PATH_KINDS,
    (vocab.BARRIERS, "path_kind"): vocab.PATH_KINDS,
    (vocab.BARRIERS, "metric"): vocab.METRICS,
    (vocab.BARRIERS, "definition"): vocab.DEFINITIONS,
}


class SchemaError(ValueError):
    """Rows that do not fit a table's schema; the message names table, column and row."""

    def __init__(self, table: str, column: str | None, message: str):
        self.table = table
        self.column = column
        where = f"`{table}.{column}`" if column else f"`{table}`"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        return (_rebuild_schema_error, (self.table, self.column, str(self)))


def _rebuild_schema_error(table: str, column: str | None, text: str) -> SchemaError:
    err = SchemaError.__new__(SchemaError)
    ValueError.__init__(err, text)
    err.table, err.column = table, column
    return err


# ----------------------------------------------------------------------------------------------
# Parquet fragments
# ----------------------------------------------------------------------------------------------

def check_table(table: str) -> pa.Schema:
    """The schema of `table`, or a ValueError listing the known tables."""
    if table not in SCHEMAS:
        raise ValueError(f"`table`: {table!r} is not a result table; allowed: {', '.join(SCHEMAS)}")
    return SCHEMAS[table]


def _to_timestamp(value: Any) -> Any:
    """datetime (naive = UTC), pandas Timestamp, epoch seconds or ISO string -> aware datetime."""
    if value is None or isinstance(value, _dt.datetime):
        if isinstance(value, _dt.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=_dt.timezone.utc)
        return value
    if isinstance(value, bool):
        return value  # let pyarrow reject it with the column named
    if isinstance(value, (int, float)):
        return _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
    if isinstance(value, str):
        return _to_timestamp(_dt.datetime.fromisoformat(value))
    return value


def _column(table: str, field: pa.Field, values: list) -> pa.Array:
    if pa.types.is_timestamp(field.type):
        try:
            values = [_to_timestamp(v) for v in values]
        except (ValueError, TypeError, OverflowError) as exc:
            raise SchemaError(table, field.name, f"cannot read a timestamp: {exc}") from None
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        for i, v in enumerate(values):
            try:
                pa.array([v], type=field.type)
            except Exception:
                raise SchemaError(
                    table, field.name,
                    f"row {i}: value {v!r} ({type(v).__name__}) is not a valid {field.type}",
                ) from None
        raise SchemaError(table, field.name, f"not a valid {field.type} column: {exc}") from None


def rows_to_table(table: str, task_id: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Check `rows` against `SCHEMAS[table]` and build an Arrow table; fills in `task_id`."""
    schema = check_table(table)
    names = schema.names
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - set(names))
        if unknown:
            hint = difflib.get_close_matches(unknown[0], names, n=1)
            also = f"; did you mean `{hint[0]}`?" if hint else ""
            raise SchemaError(table, unknown[0],
                              f"row {i}: unknown column{also} allowed: {', '.join(names)}")
        if row.get("task_id", task_id) != task_id:
            raise SchemaError(table, "task_id",
                              f"row {i}: {row['task_id']!r} differs from the fragment's {task_id!r}")
    arrays = []
    for field in schema:
        if field.name == "task_id":
            values = [task_id] * len(rows)
        else:
            values = [row.get(field.name) for row in rows]
        if not field.nullable:
            missing = [i for i, v in enumerate(values) if v is None]
            if missing:
                raise SchemaError(table, field.name,
                                  f"required column missing or None in row {missing[0]}")
        allowed = ALLOWED_VALUES.get((table, field.name))
        if allowed:
            for i, v in enumerate(values):
                if v is not None and v not in allowed:
                    raise SchemaError(table, field.name,
                                      f"row {i}: {v!r} is not allowed; allowed: {', '.join(allowed)}")
        arrays.append(_column(table, field, values))
    return pa.Table.from_arrays(arrays, schema=schema)


def _schema_metadata(table: str) -> dict[bytes, bytes]:
    return {b"mmc_sweep.table": table.encode(), b"mmc_sweep.schema_version": SCHEMA_VERSION.encode()}


def fragment_bytes(table: str, arrow_table: pa.Table) -> bytes:
    """Serialise one fragment to Parquet bytes in memory: snappy and no column statistics, which write
    and read 2-3x faster than zstd for a fragment's few rows (and are smaller); compacted parts, which
    are read by many, use zstd and keep statistics."""
    sink = io.BytesIO()
    pq.write_table(arrow_table.replace_schema_metadata(_schema_metadata(table)), sink,
                   compression="snappy", write_statistics=False)
    return sink.getvalue()


def write_fragment(layout, table: str, task_id: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Validate `rows` and write them as the task's fragment of `table` (atomic; replaces any
    earlier fragment of the same task, so rewriting is idempotent). Returns the fragment path."""
    return write_fragment_bytes(layout, table, task_id, rows)[0]


def write_fragment_bytes(layout, table: str, task_id: str, rows: Sequence[Mapping[str, Any]]) -> tuple[str, bytes]:
    """`write_fragment`, also returning the bytes written (callers hash them without a read-back)."""
    data = fragment_bytes(table, rows_to_table(table, task_id, list(rows)))
    path = layout.fragment(table, task_id)
    layout.storage.write_bytes(path, data)
    return path, data


def _conform(table: str, arrow_table: pa.Table) -> pa.Table:
    """Select and cast a fragment's columns to the current schema (missing nullable columns -> null)."""
    schema = SCHEMAS[table]
    if arrow_table.schema.equals(schema, check_metadata=False):
        return arrow_table.replace_schema_metadata(None)    # written with the current schema: as it is
    arrays = []
    for field in schema:
        if field.name in arrow_table.column_names:
            column = arrow_table.column(field.name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        elif field.nullable:
            arrays.append(pa.nulls(arrow_table.num_rows, type=field.type))
        else:
            raise ValueError(f"required column `{field.name}` is missing")
    return pa.Table.from_arrays(arrays, schema=schema)


def parse_fragment(table: str, data: bytes, task_id: str | None = None) -> pa.Table:
    """Parse fragment bytes and conform them to the schema; raises on anything wrong."""
    check_table(table)
    arrow_table = _conform(table, pq.read_table(pa.BufferReader(data)))
    if task_id is not None and arrow_table.num_rows:
        ids = set(arrow_table.column("task_id").to_pylist())
        if ids != {task_id}:
            raise ValueError(f"fragment holds task ids {sorted(ids)}, expected {task_id!r}")
    return arrow_table


# ----------------------------------------------------------------------------------------------
# Compacted parts and their manifest (written by `orchestrator.compact`, read here)
# ----------------------------------------------------------------------------------------------
#
# `results/<table>/part-<name>.parquet` holds the rows of many tasks, each task's rows contiguous;
# `results/<table>/_manifest.parquet` says which task's rows are where: one row per task (task_id,
# part, offset, rows, and the sha256 of the fragment its rows came from), and in its metadata the
# sha256, row count and size of every part. A part counts only once the manifest names it, and a
# task's rows in a part count only while the manifest maps the task to that part. A fragment counts
# unless the manifest records its exact sha256 (absorbed, its deletion still pending): a fragment
# that differs is newer (the task ran again after compaction) and wins over the part's rows.

MANIFEST_NAME = "_manifest.parquet"
MANIFEST_VERSION = "1"
PART_PREFIX = "part-"
_PARQUET = ".parquet"
_READ_RETRIES = 3            # a compaction running meanwhile may move rows from fragments into a part
_PARALLEL_READS_FROM = 64    # fragments read by a thread pool from this many on (object stores: latency)
_READ_THREADS = 16

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


def _sha256(data: bytes) -> str:
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


def _part_verified(layout, table: str, info: PartInfo) -> bool:
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
        ok = stamp[0] == info.size and _sha256(storage.read_bytes(path)) == info.sha256
    except OSError:
        ok = False
    with _CACHE_LOCK:
        _VERIFIED_PARTS[key] = (stamp, ok)
    return ok


def compacted_entry(layout, table: str, task_id: str) -> Entry | None:
    """Where the task's compacted rows of `table` are, if they are in a verified part; else None."""
    manifest = _cached_manifest(layout, table)
    entry = manifest.tasks.get(task_id) if manifest is not None else None
    if entry is None or not _part_verified(layout, table, manifest.parts[entry.part]):
        return None
    return entry


def compacted_digest(layout, fragment_path: str) -> str | None:
    """The sha256 a fragment had when its rows were compacted into a part file that is still intact
    (None: not a fragment path, not compacted, or its part is missing or corrupt)."""
    prefix = f"{layout.root}/results/"
    if not isinstance(fragment_path, str) or not fragment_path.startswith(prefix):
        return None
    table, _, name = fragment_path[len(prefix):].partition("/")
    if table not in SCHEMAS or "/" in name or not name.endswith(_PARQUET) or name.startswith(PART_PREFIX):
        return None
    entry = compacted_entry(layout, table, name[:-len(_PARQUET)])
    return entry.sha256 if entry is not None else None


def _compacted_rows(layout, table: str, task_id: str) -> pa.Table | None:
    """The task's rows from its part, reading only the row groups that hold them."""
    entry = compacted_entry(layout, table, task_id)
    if entry is None:
        return None
    path = layout.compacted_file(table, entry.part)
    with layout.storage.fs.open_input_file(path) as f:
        parquet = pq.ParquetFile(f)
        groups, start, first = [], 0, None
        for i in range(parquet.metadata.num_row_groups):
            n = parquet.metadata.row_group(i).num_rows
            if start < entry.offset + entry.rows and start + n > entry.offset:
                groups.append(i)
                first = start if first is None else first
            start += n
        if not entry.rows:
            return SCHEMAS[table].empty_table()
        rows = parquet.read_row_groups(groups).slice(entry.offset - first, entry.rows)
    rows = _conform(table, rows)
    if set(rows.column("task_id").to_pylist()) != {task_id}:
        raise ValueError(f"{path}: the rows of {task_id!r} are not where its manifest says")
    return rows


# ----------------------------------------------------------------------------------------------
# Readers: fragments and compacted parts
# ----------------------------------------------------------------------------------------------

def verify_fragment(layout, table: str, task_id: str) -> bool:
    """True if the task's rows of `table` are stored intact: its fragment exists, parses and fits the
    schema, or its rows were compacted into a part that still has its recorded sha256."""
    path = layout.fragment(table, task_id)
    try:
        if layout.storage.exists(path):
            parse_fragment(table, layout.storage.read_bytes(path), task_id)
            return True
        return compacted_entry(layout, table, task_id) is not None
    except Exception:  # noqa: BLE001 - any failure means "not a good fragment"
        return False


def read_fragment(layout, table: str, task_id: str) -> pd.DataFrame:
    """One task's rows of `table` as a DataFrame, from its fragment or, once compacted, from its part
    (raises FileNotFoundError if it has neither, ValueError if unreadable)."""
    path = layout.fragment(table, task_id)
    try:
        data = layout.storage.read_bytes(path)
    except FileNotFoundError:
        rows = _compacted_rows(layout, table, task_id)
        if rows is None:
            raise
        return rows.to_pandas(types_mapper=PANDAS_TYPES.get)
    return parse_fragment(table, data, task_id).to_pandas(types_mapper=PANDAS_TYPES.get)


class _Vanished(Exception):
    """A file listed a moment ago is gone: a compaction ran meanwhile; read again."""


def read_arrow(layout, table: str) -> pa.Table:
    """Every row of `table`: compacted parts plus fragments not absorbed into them (a fragment newer
    than its compacted rows wins), each task's rows exactly once. Unreadable fragments and parts are
    skipped with a warning. Rows are ordered by task id (within a task, as written)."""
    check_table(table)
    for _attempt in range(_READ_RETRIES):
        try:
            return _read_once(layout, table, strict=True)
        except _Vanished:
            continue
    return _read_once(layout, table, strict=False)


def read_table(layout, table: str) -> pd.DataFrame:
    """`read_arrow` as a DataFrame (empty, with the schema's columns, if nothing was written)."""
    return read_arrow(layout, table).to_pandas(types_mapper=PANDAS_TYPES.get)


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _read_once(layout, table: str, strict: bool) -> pa.Table:
    storage = layout.storage
    listing = list_table(layout, table)          # list first, then the manifest: a compaction in between
    manifest = None                              # leaves fragments that the newer manifest accounts for
    if listing.manifest or listing.parts:
        try:
            manifest = read_manifest(layout, table)
        except ValueError as exc:
            _warn(f"{exc}; its compacted rows are left out (`mmc-sweep compact` refuses to run until it is "
                  "restored)")
    absorbed = manifest.tasks if manifest is not None else {}

    def load(item):
        task_id, stamp = item
        try:
            data = storage.read_bytes(stamp.path)
        except FileNotFoundError:
            if task_id in absorbed or not strict:
                return task_id, None, None
            raise _Vanished(stamp.path) from None
        except OSError as exc:
            return task_id, None, exc
        entry = absorbed.get(task_id)
        if entry is not None and _sha256(data) == entry.sha256:
            return task_id, None, None           # compacted; its deletion is still pending
        try:
            return task_id, parse_fragment(table, data), None
        except Exception as exc:  # noqa: BLE001 - one corrupt fragment must not hide the rest
            return task_id, None, exc

    items = list(listing.fragments.items())
    if len(items) >= _PARALLEL_READS_FROM:
        with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
            loaded = list(pool.map(load, items))
    else:
        loaded = [load(item) for item in items]
    fragments, newer = [], set()
    for (task_id, arrow, error), (_, stamp) in zip(loaded, items):
        if error is not None:
            _warn(f"skipping unreadable result fragment {stamp.path}: {error}")
        if task_id in absorbed and (arrow is not None or error is not None):
            newer.add(task_id)                   # the task ran again after compaction: its fragment wins
        if arrow is not None:
            fragments.append(arrow)

    pieces = []
    if manifest is not None:
        live = manifest.live_rows()
        for name, info in sorted(manifest.parts.items()):
            if not live.get(name):
                continue
            path = layout.compacted_file(table, name)
            try:
                data = storage.read_bytes(path)
            except FileNotFoundError:
                if strict:
                    raise _Vanished(path) from None
                _warn(f"the compacted part {path} is missing: {live[name]} rows of `{table}` are left out")
                continue
            if len(data) != info.size or _sha256(data) != info.sha256:
                _warn(f"skipping the compacted part {path}: its sha256 differs from the manifest's "
                      f"({live[name]} rows of `{table}` are left out; rerun the sweep to recompute them)")
                continue
            try:
                part = _conform(table, pq.read_table(pa.BufferReader(data)))
            except Exception as exc:  # noqa: BLE001
                _warn(f"skipping the unreadable compacted part {path}: {exc}")
                continue
            keep = [(e.offset, e.rows) for t, e in manifest.entries_of(name) if t not in newer and e.rows]
            if sum(r for _, r in keep) != part.num_rows:
                part = part.take(_ranges(keep)) if keep else part.slice(0, 0)
            pieces.append(part)
    if not pieces and not fragments:
        return SCHEMAS[table].empty_table()
    out = pa.concat_tables(pieces + fragments)
    if len(pieces) + (1 if fragments else 0) > 1:
        out = out.take(pc.sort_indices(out, sort_keys=[("task_id", "ascending")]))   # stable
    return out


def _ranges(spans: list[tuple[int, int]]) -> pa.Array:
    """Row indices of the (offset, rows) spans, in order."""
    offsets = np.fromiter((o for o, _ in spans), dtype=np.int64, count=len(spans))
    lengths = np.fromiter((n for _, n in spans), dtype=np.int64, count=len(spans))
    ends = np.cumsum(lengths)
    steps = np.ones(int(ends[-1]), dtype=np.int64)
    steps[0] = offsets[0]
    steps[ends[:-1]] = offsets[1:] - (offsets[:-1] + lengths[:-1]) + 1
    return pa.array(np.cumsum(steps))
