"""Result tables: one Parquet fragment per task per table, explicit schemas, and the readers.

Fragments live at ``layout.fragment(table, task_id)`` (``results/<table>/<task_id>.parquet``) and
are written whole and atomically through ``Storage.write_bytes``, so rerunning a task replaces its
fragment instead of appending duplicates, and many workers can write at once without clashing.
Every table has an explicit schema (``orchestrator.results.schemas``); rows are checked against it before anything is
written, and errors name the table, the column, the row and what is allowed. Every row carries the
task's labels and the resolved settings of its lineage as `<section>.<field>` columns.

While a run goes and at its end `orchestrator.results.compact` merges the fragments into part files
(``results/<table>/part-<name>.parquet``; one per table, in task-id order, once a run ends) listed by a
manifest (``orchestrator.results.manifest``); the readers here (`read_table`, `read_arrow`, `read_fragment`,
`verify_fragment`) read parts and fragments alike, every task's rows exactly once, and a fragment written
after its task was compacted wins; one part alone is read as it is stored (no sort). A part is used only while
it has its recorded sha256; from a damaged one, `salvage_part` takes back the rows of every task that
still re-serialise to exactly the fragment they came from (its recorded sha256), and nothing else.

Why one module: writing and reading a table share its schema conformance; split, a reader could accept
what the writer refuses.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import gc
import io
import os
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator.machine import usable_cpus
from orchestrator.messages import logger
from orchestrator.results.manifest import (PART_OK, Entry, check_part, compacted_entry, list_table, read_manifest,
                                           read_parquet_bytes)
from orchestrator.results.schemas import ALLOWED_VALUES, PANDAS_TYPES, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SCHEMAS
from orchestrator.storage.layout import LinkError

_LOG = logger(__name__)


def use_jemalloc() -> str:
    """Arrow's default memory pool made jemalloc's where this pyarrow has it and the user chose none
    (`ARROW_DEFAULT_MEMORY_POOL`); the pool's name. Reading a large table allocates and frees gigabytes
    in a few seconds: mimalloc hands freed memory back to the system at once and the next column faults
    it in again (on the 2-vCPU VM, reading a 10^5-task sweep's `paths` table took 2.5-4.0 s with
    mimalloc, 2.0-2.1 s with jemalloc; BENCHMARKS §7c)."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        except NotImplementedError:   # a pyarrow built without jemalloc (Windows): its default stays
            pass
    return pa.default_memory_pool().backend_name


use_jemalloc()


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
    return _checked_table(table, rows, [task_id] * len(rows), fragment_of=task_id)


def rows_of_tasks_to_table(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """`rows_to_table` for the rows of several tasks, each naming its own `task_id` (the driver's `tasks`
    rows of a batch: checked and built at once, then written one fragment per task from slices); a row
    without one is refused like any missing required column."""
    return _checked_table(table, rows, [row.get("task_id") for row in rows])


def _checked_table(table: str, rows: Sequence[Mapping[str, Any]], task_ids: list[str],
                   fragment_of: str | None = None) -> pa.Table:
    """`rows` checked and built, the `task_id` column from `task_ids`; `fragment_of`: the one task whose
    fragment this is (a row naming another is refused)."""
    schema = check_table(table)
    names = schema.names
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - set(names))
        if unknown:
            hint = difflib.get_close_matches(unknown[0], names, n=1)
            also = f"; did you mean `{hint[0]}`?" if hint else ""
            raise SchemaError(table, unknown[0],
                              f"row {i}: unknown column{also} allowed: {', '.join(names)}")
        if fragment_of is not None and row.get("task_id", fragment_of) != fragment_of:
            raise SchemaError(table, "task_id",
                              f"row {i}: {row['task_id']!r} differs from the fragment's {fragment_of!r}")
    arrays = []
    for field in schema:
        values = task_ids if field.name == "task_id" else [row.get(field.name) for row in rows]
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


def schema_metadata(table: str) -> dict[bytes, bytes]:
    return {b"mmc_sweep.table": table.encode(), SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()}


def fragment_bytes(table: str, arrow_table: pa.Table) -> bytes:
    """Serialise one fragment to Parquet bytes in memory: snappy and no column statistics, which write
    and read 2-3x faster than zstd for a fragment's few rows (and are smaller); compacted parts, which
    are read by many, use zstd and keep statistics."""
    sink = io.BytesIO()
    pq.write_table(arrow_table.replace_schema_metadata(schema_metadata(table)), sink,
                   compression="snappy", write_statistics=False,
                   use_dictionary=arrow_table.num_rows > 1)   # a one-row column's dictionary never pays (~20%)
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


def conform(table: str, arrow_table: pa.Table, columns: Sequence[str] | None = None) -> pa.Table:
    """Select and cast a fragment's columns to the current schema (missing nullable columns -> null);
    with `columns` (`wanted_columns`), only those."""
    schema = _schema(table, columns)
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


def wanted_columns(table: str, columns: Sequence[str] | None) -> tuple[str, ...] | None:
    """`columns` checked against the table's schema, in the schema's order and with `task_id` (readers
    order and filter by it); None (every column) stays None. An unknown name is a ValueError naming it
    and the table's columns."""
    schema = check_table(table)
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        hint = difflib.get_close_matches(unknown[0], schema.names, n=1)
        raise ValueError(f"`columns`: {unknown[0]!r} is not a column of the `{table}` table"
                         + (f"; did you mean `{hint[0]}`?" if hint else "") + f"; it has: {', '.join(schema.names)}")
    keep = {"task_id", *columns}
    return tuple(n for n in schema.names if n in keep)


def _schema(table: str, columns: Sequence[str] | None) -> pa.Schema:
    schema = SCHEMAS[table]
    if columns is None or len(columns) == len(schema):
        return schema
    return pa.schema([schema.field(n) for n in columns])


def read_part_bytes(table: str, data: bytes, columns: Sequence[str] | None = None,
                    metadata: pq.FileMetaData | None = None) -> pa.Table:
    """A compacted part held in memory, its columns those of the schema (missing nullable ones null,
    others cast to the schema's types) but its string columns other than `task_id`, which stay Arrow
    dictionaries of strings, as Parquet holds them: the reader that merges parts takes the rows in task-id
    order on the dictionaries' indices and decodes each string once, to the schema's types
    (`_in_task_order`). With `columns`, only those columns are decoded (a 10^5-task sweep's `paths` part holds
    2.2 M rows of 68 columns). A number column comes out as one block (Arrow's Parquet reader appends its row
    groups into one array). `metadata`: the part's footer, parsed already. On this thread, no read-ahead (see
    `manifest.read_parquet_bytes`)."""
    schema = _schema(table, columns)
    parquet = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False, metadata=metadata)
    stored = parquet.schema_arrow
    wanted = [n for n in schema.names if n in stored.names]
    encoded = [n for n in wanted if n != "task_id" and pa.types.is_string(stored.field(n).type)]
    parquet = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False, metadata=parquet.metadata,
                             read_dictionary=encoded)      # the footer parsed once
    read = parquet.read(columns=wanted, use_threads=False)
    arrays = []
    for field in schema:
        if field.name not in read.column_names:
            if not field.nullable:
                raise ValueError(f"required column `{field.name}` is missing")
            arrays.append(pa.nulls(read.num_rows, type=field.type))
            continue
        column = read.column(field.name)
        if column.type != field.type and not (pa.types.is_dictionary(column.type)
                                              and column.type.value_type == field.type):
            column = column.cast(field.type)
        arrays.append(column)
    return pa.Table.from_arrays(arrays, names=schema.names)


def parse_fragment(table: str, data: bytes, task_id: str | None = None) -> pa.Table:
    """Parse fragment bytes and conform them to the schema; raises on anything wrong."""
    check_table(table)
    arrow_table = conform(table, read_parquet_bytes(data))
    if task_id is not None and arrow_table.num_rows:
        ids = set(arrow_table.column("task_id").to_pylist())
        if ids != {task_id}:
            shown = ", ".join(repr(i) for i in sorted(ids, key=str)[:3]) + (", ..." if len(ids) > 3 else "")
            raise ValueError(f"it is not the result fragment of task {task_id!r}: it holds the rows of "
                             f"{len(ids)} task id(s) ({shown})")
    return arrow_table


_READ_RETRIES = 3            # a compaction running meanwhile may move rows from fragments into a part
_PARALLEL_READS_FROM = 64    # fragments read by a thread pool from this many on (object stores: latency)
_READ_THREADS = 16


# ----------------------------------------------------------------------------------------------
# Readers: fragments and compacted parts (see orchestrator.results.manifest)
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


def read_arrow(layout, table: str, columns: Sequence[str] | None = None,
               task_ids: Collection[str] | None = None) -> pa.Table:
    """Every row of `table`: compacted parts plus fragments not absorbed into them (a fragment newer
    than its compacted rows wins), each task's rows exactly once. Unreadable fragments and parts are
    skipped with a warning. Rows are ordered by task id (within a task, as written).

    `columns`: read only these (`task_id` always, the schema's order; the same values as the full
    read's columns); `task_ids`: keep only the rows of these tasks (e.g. a plan's)."""
    return _read_arrow(layout, table, columns, task_ids)


def _read_arrow(layout, table: str, columns: Sequence[str] | None, task_ids: Collection[str] | None,
                strings: pa.DataType = pa.string()) -> pa.Table:
    """`read_arrow`, its string columns as `strings` (`read_table`: large strings, what pandas' `str` holds)."""
    columns = wanted_columns(table, columns)
    planned = None if task_ids is None else frozenset(task_ids)
    with _collector_paused():
        for _attempt in range(_READ_RETRIES):
            try:
                return _read_once(layout, table, strict=True, columns=columns, strings=strings, planned=planned)
            except _Vanished:
                continue
        return _read_once(layout, table, strict=False, columns=columns, strings=strings, planned=planned)


@contextlib.contextmanager
def _collector_paused():
    """Python's cycle collector off for the block (back on after it if it was on). A read makes an object
    per task of the manifest and per fragment (10^5 at 10^5 tasks), none in a cycle; each full collection
    they trigger walks every object of the process (4 of them, ~0.2 s, reading a 10^5-task sweep's
    `paths`)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def keep_tasks(arrow: pa.Table, task_ids: Collection[str]) -> pa.Table:
    """The rows of `arrow` whose `task_id` is one of `task_ids`, in their order (compared in Arrow)."""
    if not arrow.num_rows:
        return arrow
    column = arrow.column("task_id")
    mask = pc.is_in(column, value_set=pa.array(list(task_ids), type=column.type))
    return arrow if pc.all(mask).as_py() else arrow.filter(mask)


def read_table(layout, table: str, columns: Sequence[str] | None = None,
               task_ids: Collection[str] | None = None) -> pd.DataFrame:
    """`read_arrow` as a DataFrame (empty, with the schema's columns, if nothing was written): strings
    as pandas' `str` dtype, 64-bit integers as nullable `Int64`, timestamps UTC. The strings are decoded
    straight to the large strings pandas' `str` holds (no second copy of their offsets), and the frame is
    made by `_frame`, on this thread (Arrow's thread pool cost ~7x the CPU: 2.5 s against 0.3 s for the
    2.2 M `paths` rows of a 10^5-task sweep, on 2 busy cores)."""
    arrow = _read_arrow(layout, table, columns, task_ids, strings=pa.large_string())
    names, taken = arrow.column_names, list(arrow.columns)
    del arrow
    return _frame(names, taken)


def _frame(names: list[str], columns: list[pa.ChunkedArray]) -> pd.DataFrame:
    """The columns as `to_pandas(types_mapper=PANDAS_TYPES.get)` makes them (the same dtypes and values),
    but a 64-bit number column's values handed to pandas without a copy where Arrow allocated them
    (writable: the frame owns them from now on, so `columns` must be handed over, not shared), one pandas
    block per column: no consolidation. A float column's nulls become NaN in place; an int column keeps its
    values and gets a mask (False where there are no nulls). Each entry of `columns` is let go once
    converted. Reading a 10^5-task sweep's `paths` (2.2 M rows, 45 number columns), `to_pandas` copied ~1 GB
    into memory the process had to fault in (on the 2-vCPU VM, 0.9-1.4 s of a 2-3.5 s read; BENCHMARKS §7c)."""
    out = {}
    for i, name in enumerate(names):
        out[name] = _pandas_values(columns[i])
        columns[i] = None
    return pd.DataFrame(out, columns=names, copy=False)


def _pandas_values(column: pa.ChunkedArray):
    """One column for `_frame`: a numpy array, a pandas extension array, or (types it leaves to Arrow)
    a Series."""
    kind = column.type
    if not (pa.types.is_float64(kind) or pa.types.is_int64(kind)):
        return pa.table([column], names=["_"]).to_pandas(types_mapper=PANDAS_TYPES.get, use_threads=False)["_"]
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    mask = array.is_null().to_numpy(zero_copy_only=False) if array.null_count else None
    values = _own_values(array)
    if values is None:                            # not Arrow's memory to hand over: a copy
        values = (array if mask is None else pc.fill_null(array, 0)).to_numpy(zero_copy_only=False).copy()
    if pa.types.is_int64(kind):
        return pd.arrays.IntegerArray(values, np.zeros(len(values), dtype=bool) if mask is None else mask, copy=False)
    if mask is not None:
        np.copyto(values, np.nan, where=mask)     # what to_pandas makes of a null float
    return values


def _own_values(array: pa.Array) -> np.ndarray | None:
    """The values of a 64-bit number array as a writable numpy view of Arrow's buffer, where Arrow allocated
    it (not a view of bytes read from a file) apart from the validity bitmap; None otherwise. The read's
    arrays are its own (decoded, taken, concatenated or cast by it): the frame takes their memory over."""
    buffers = array.buffers()
    values = buffers[1]
    if values is None or not len(array):
        return None
    view = np.frombuffer(values, dtype=np.dtype(array.type.to_pandas_dtype()), count=len(array),
                         offset=array.offset * 8)
    validity = buffers[0]
    if not view.flags.writeable or (validity is not None and validity.address < values.address + values.size
                                    and values.address < validity.address + validity.size):
        return None                               # (an array of nulls may hold one zeroed buffer for both)
    return view


def _warn(message: str) -> None:
    _LOG.warning(message)


def _read_once(layout, table: str, strict: bool, columns: tuple[str, ...] | None = None,
               strings: pa.DataType = pa.string(), planned: frozenset[str] | None = None) -> pa.Table:
    """One attempt of `_read_arrow`; with `planned`, only those tasks' rows: a part's rows are chosen by its
    manifest's entries (nothing read or taken for the others), a fragment's by its rows' `task_id`."""
    storage = layout.storage
    listing = list_table(layout, table)          # list first, then the manifest: a compaction in between
    manifest = None                              # leaves fragments that the newer manifest accounts for
    try:
        manifest = read_manifest(layout, table)
    except LinkError:
        raise                                    # refused, never read around
    except ValueError as exc:
        _warn(f"{exc}; its compacted rows are left out (a run recomputes their tasks, and its compaction then "
              "rebuilds the manifest)")
    else:
        if manifest is None and listing.parts:   # a compaction's part written, its manifest lost (or not yet moved)
            _warn(f"the manifest of `{table}` is missing, but {len(listing.parts)} part file(s) beside it hold rows; "
                  "rows only they hold are left out (a run recomputes their tasks, and its compaction then rebuilds "
                  "the manifest)")
    compacted = manifest.tasks if manifest is not None else {}
    parts: dict[str, bytes | None] = {}          # the parts whose rows count, read once; None: missing

    def part_data(name: str) -> bytes | None:
        if name not in parts:
            parts[name] = None
            try:
                if name not in listing.parts:
                    raise FileNotFoundError(name)
                parts[name] = storage.read_bytes(layout.compacted_file(table, name))
            except FileNotFoundError:
                if strict:                       # a compaction replaced it since the listing: list again
                    raise _Vanished(name) from None
        return parts[name]

    live = manifest.live_rows() if manifest is not None else {}
    intact = {name: part_data(name) is not None and check_part(info, part_data(name)) == PART_OK
              for name, info in (manifest.parts.items() if manifest is not None else ()) if live.get(name)}

    def load(item):
        task_id, stamp = item
        try:
            data = storage.read_bytes(stamp.path)
        except FileNotFoundError:
            if task_id in compacted or not strict:
                return task_id, None, None
            raise _Vanished(stamp.path) from None
        except OSError as exc:
            return task_id, None, exc
        entry = compacted.get(task_id)
        if entry is not None and intact.get(entry.part) and entry.matches(data):
            return task_id, None, None           # compacted into a part that verifies; its deletion is pending
        try:
            arrow = parse_fragment(table, data)
            return task_id, (arrow if columns is None else arrow.select(list(columns))), None
        except Exception as exc:  # noqa: BLE001 - one corrupt fragment must not hide the rest
            return task_id, None, exc

    items = [item for item in listing.fragments.items() if planned is None or item[0] in planned]
    if len(items) >= _PARALLEL_READS_FROM:
        with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
            loaded = list(pool.map(load, items))
    else:
        loaded = [load(item) for item in items]
    fragments, newer = [], set()
    for (task_id, arrow, error), (_, stamp) in zip(loaded, items):
        if error is not None:
            _warn(f"skipping unreadable result fragment {stamp.path}: {error}")
        if arrow is not None:
            fragments.append(arrow)
            if task_id in compacted:
                newer.add(task_id)               # ran again after compaction, or restores a lost part: it wins

    pieces = []
    by_part = manifest.entries_by_part() if manifest is not None else {}
    wanted_of = {name: [(t, e) for t, e in by_part.get(name, ()) if t not in newer and (planned is None or t in planned)]
                 for name in sorted(intact)}
    decoded = _decode_parts(table, {name: parts[name] for name, w in wanted_of.items() if w and intact[name]},
                            columns)
    for name, wanted in wanted_of.items():
        path = layout.compacted_file(table, name)
        if not wanted:
            continue
        if intact[name]:
            part = decoded.pop(name)
            if isinstance(part, Exception):
                _warn(f"skipping the unreadable compacted part {path}: {part}")
                continue
            keep = [(e.offset, e.rows) for _, e in wanted if e.rows]
            if sum(r for _, r in keep) != part.num_rows:
                part = part.take(row_indices(keep)) if keep else part.slice(0, 0)
            pieces.append(part)
            continue
        restored = salvage_part(table, parts[name], wanted) if parts[name] is not None else {}
        what = "is missing" if parts[name] is None else "has a size or sha256 other than the manifest's"
        lost = len(wanted) - len(restored)
        _warn(f"the compacted part {path} {what}: the rows of {len(restored)} of its {len(wanted)} tasks were "
              f"restored from it (each verified by its fragment's sha256)"
              + (f"; {lost} tasks' rows of `{table}` are left out until the next run recomputes them" if lost else ""))
        pieces += [restored[t] if columns is None else restored[t].select(list(columns)) for t, _ in wanted
                   if t in restored]
    if not pieces and not fragments:
        return _schema(table, columns).empty_table()
    if fragments and planned is not None:        # a fragment's rows by their own task ids, as before merging
        fragments = [keep_tasks(pa.concat_tables(fragments), planned)]
    sort = len(pieces) + (1 if fragments else 0) > 1
    pieces += fragments
    fragments.clear()
    parts.clear()
    loaded = part = restored = None              # noqa: F841 - `_in_task_order` frees each column once taken
    return _in_task_order(_schema(table, columns), pieces, sort, strings)


_DECODE_THREADS = 4          # at most this many threads decode parts and take columns
_THREADED_FROM_ROWS = 65_536  # fewer rows: one thread (a pool's start and its GIL hand-offs cost more)


def _in_threads(function, items: list) -> list:
    """`[function(item) for item in items]`, in as many Python threads as the CPUs this process may use (at
    most `_DECODE_THREADS`; joined before this returns: no Arrow thread outlives the call, see
    `manifest.read_parquet_bytes`)."""
    threads = min(len(items), usable_cpus(), _DECODE_THREADS)
    if threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(function, items))


def _decode_parts(table: str, data: dict[str, bytes], columns: tuple[str, ...] | None) -> dict:
    """`read_part_bytes` of each part, in threads: a large part's columns split between them (each column
    decoded whole by one thread is one block of memory: a number column of a part that needs no take goes to
    pandas without a copy, `_frame`): name -> the part, or the exception it raised."""
    threads = min(usable_cpus(), _DECODE_THREADS)
    names = list(columns or SCHEMAS[table].names)
    work, failed = [], {}
    for name, part in data.items():
        try:
            metadata = pq.ParquetFile(pa.BufferReader(part), pre_buffer=False).metadata
        except Exception as exc:  # noqa: BLE001 - the caller warns and skips that part
            failed[name] = exc
            continue
        shares = threads if metadata.num_rows >= _THREADED_FROM_ROWS else 1
        work += [(name, metadata, tuple(names[i::shares])) for i in range(shares) if names[i::shares]]

    def decode(item):
        name, metadata, share = item
        try:
            return read_part_bytes(table, data[name], share, metadata=metadata)
        except Exception as exc:  # noqa: BLE001
            return exc
    pieces: dict[str, list] = {}
    for (name, _, _), piece in zip(work, _in_threads(decode, work)):
        pieces.setdefault(name, []).append(piece)
    out = dict(failed)
    for name, got in pieces.items():
        error = next((p for p in got if isinstance(p, Exception)), None)
        if error is not None:
            out[name] = error
            continue
        by_name = {n: c for piece in got for n, c in zip(piece.column_names, piece.columns)}
        out[name] = pa.Table.from_arrays([by_name[n] for n in names], names=names)
    return out


def _in_task_order(schema: pa.Schema, pieces: list[pa.Table], sort: bool, strings: pa.DataType) -> pa.Table:
    """`pieces` (parts as `read_part_bytes` gives them, fragments) as one table of `schema`; with `sort`,
    ordered by task id, each task's rows as written (a stable sort of the `task_id` column alone, whose
    permutation every column is taken by). String columns read as dictionaries are taken on their
    indices and decoded once, after the take (at 10^5 tasks, taking the decoded strings of 6 parts'
    `paths` was ~2 of ~6 CPU seconds); the string columns end as `strings` (string or large_string). Takes
    `pieces` over: each column's chunks are let go once taken (their memory reused for the next).
    """
    order = None
    if sort:
        ids = pa.table({"task_id": pa.chunked_array([c for p in pieces for c in p.column("task_id").chunks],
                                                    type=pa.string())})
        order = pc.sort_indices(ids, sort_keys=[("task_id", "ascending")])   # stable
        del ids
    chunks_of = {field.name: [c for p in pieces for c in p.column(field.name).chunks] for field in schema}
    pieces.clear()

    def arrange(field: pa.Field) -> pa.ChunkedArray:
        chunks = chunks_of.pop(field.name)
        if any(pa.types.is_dictionary(c.type) for c in chunks):
            chunks = [c if pa.types.is_dictionary(c.type) else c.dictionary_encode() for c in chunks]
        column = pa.chunked_array(chunks, type=chunks[0].type if chunks else field.type)
        del chunks
        target = strings if pa.types.is_string(field.type) else field.type
        if pa.types.is_dictionary(column.type):
            repeated = _repeated(column, target)
            if repeated is not None:
                return repeated
        if order is not None and not _constant(column):
            column = column.take(order)
        return column.cast(target) if column.type != target else column

    fields = list(schema)
    rows = sum(len(chunk) for chunk in chunks_of[fields[0].name]) if fields else 0
    columns = (_in_threads(arrange, fields) if rows >= _THREADED_FROM_ROWS   # Arrow's take and cast release the GIL
               else [arrange(field) for field in fields])
    return pa.Table.from_arrays(columns, schema=pa.schema([f.with_type(strings) if pa.types.is_string(f.type) else f
                                                           for f in schema]))


_REPEATED_ROWS = 65_536     # the one chunk a column of one string value (or none) repeats


def _repeated(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray | None:
    """A dictionary column whose rows are all one string, or all null, as a column of `target` whose
    chunks are one and the same array of `_REPEATED_ROWS` rows (Arrow arrays are immutable, so sharing one
    is safe): no row is decoded, taken or faulted into memory. None for any other column. 10 of the 22
    string columns of a 10^5-task sweep's `paths` (2.2 M rows) are such (the dataset, the model, settings)."""
    rows = len(column)
    if not rows:
        return None
    if column.null_count == rows:
        value = pa.scalar(None, target)
    elif _constant(column):
        value = column.chunk(0).dictionary[0].cast(target)
    else:
        return None
    block = pa.repeat(value, min(rows, _REPEATED_ROWS))
    whole, rest = divmod(rows, len(block))
    return pa.chunked_array([block] * whole + ([block.slice(0, rest)] if rest else []), type=target)


def _constant(column: pa.ChunkedArray) -> bool:
    """Whether every value of `column` is the same, bit for bit, and none is null: any order of its rows
    is the column itself, and `_in_task_order` takes none (a sweep's settings columns are mostly so: 20
    of the 68 columns of the default sweep's `paths`). Found cheaply or not at all: a dictionary column
    is constant when each chunk's dictionary is one and the same value; a 64-bit number column when the
    least and greatest of its bits, read as int64 (NaNs and signed zeros told apart), are equal."""
    if column.null_count or not column.num_chunks:
        return False
    kind = column.type
    if pa.types.is_dictionary(kind):
        first = column.chunk(0).dictionary
        return all(len(c.dictionary) == 1 and c.dictionary.equals(first) for c in column.chunks)
    if not (pa.types.is_int64(kind) or pa.types.is_float64(kind)):
        return False
    bits = pa.chunked_array([c.view(pa.int64()) for c in column.chunks], type=pa.int64())
    low, high = pc.min_max(bits).values()
    return low == high


def salvage_part(table: str, data: bytes, entries: list[tuple[str, Entry]]) -> dict[str, pa.Table]:
    """From a part that no longer has its recorded sha256, the rows of each task in `entries` that
    re-serialise to exactly the fragment they came from (its recorded sha256): rows that are provably
    the task's own. Row groups that cannot be read, and tasks whose rows differ, are left out."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    except Exception:  # noqa: BLE001 - a footer that does not parse: nothing can be taken from it
        return {}
    groups: dict[int, pa.Table | None] = {}
    bounds, start = [], 0
    for n in sizes:
        bounds.append((start, start + n))
        start += n
    out = {}
    schema = SCHEMAS[table]
    for task_id, entry in entries:
        lo, hi = entry.offset, entry.offset + entry.rows
        wanted = [i for i, (a, b) in enumerate(bounds) if a < hi and b > lo]
        pieces = []
        for i in wanted:
            if i not in groups:
                try:
                    groups[i] = conform(table, parquet.read_row_group(i, use_threads=False))
                except Exception:  # noqa: BLE001 - a damaged row group
                    groups[i] = None
            if groups[i] is None:
                break
            a, _ = bounds[i]
            pieces.append(groups[i].slice(max(lo, a) - a, min(hi, bounds[i][1]) - max(lo, a)))
        else:
            try:
                rows = pa.concat_tables(pieces) if pieces else schema.empty_table()
                rows = pa.Table.from_arrays(rows.columns, schema=schema)
                if rows.num_rows == entry.rows and entry.matches(fragment_bytes(table, rows)):
                    out[task_id] = rows
            except Exception:  # noqa: BLE001 - rows that do not fit the schema are not the task's
                continue
    return out


def row_indices(spans: list[tuple[int, int]]) -> pa.Array:
    """Row indices of the (offset, rows) spans, in order (at least one span; each of at least one row)."""
    offsets = np.fromiter((o for o, _ in spans), dtype=np.int64, count=len(spans))
    lengths = np.fromiter((n for _, n in spans), dtype=np.int64, count=len(spans))
    ends = np.cumsum(lengths)
    steps = np.ones(int(ends[-1]), dtype=np.int64)
    steps[0] = offsets[0]
    steps[ends[:-1]] = offsets[1:] - (offsets[:-1] + lengths[:-1]) + 1
    return pa.array(np.cumsum(steps))


def _compacted_rows(layout, table: str, task_id: str) -> pa.Table | None:
    """The task's rows from its part, reading only the row groups that hold them."""
    entry = compacted_entry(layout, table, task_id)
    if entry is None:
        return None
    path = layout.compacted_file(table, entry.part)
    with layout.storage.open_input_file(path) as f:
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
    rows = conform(table, rows)
    if set(rows.column("task_id").to_pylist()) != {task_id}:
        raise ValueError(f"{path}: the rows of {task_id!r} are not where its manifest says")
    return rows
