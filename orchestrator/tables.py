"""Result tables: one Parquet fragment per task per table, explicit schemas, and the readers.

Fragments live at ``layout.fragment(table, task_id)`` (``results/<table>/<task_id>.parquet``) and
are written whole and atomically through ``Storage.write_bytes``, so rerunning a task replaces its
fragment instead of appending duplicates, and many workers can write at once without clashing.
Every table has an explicit schema (``SCHEMAS``); rows are checked against it before anything is
written, and errors name the table, the column, the row and what is allowed. Every row carries the
task's labels and the resolved settings of its lineage as `<section>.<field>` columns.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import vocab
from orchestrator.spec_schema import settings_columns

SCHEMA_VERSION = "2"
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
    """Serialise one fragment to Parquet bytes in memory."""
    sink = io.BytesIO()
    pq.write_table(arrow_table.replace_schema_metadata(_schema_metadata(table)), sink,
                   compression="zstd")
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
    arrays = []
    for field in schema:
        if field.name in arrow_table.column_names:
            arrays.append(arrow_table.column(field.name).cast(field.type))
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


def verify_fragment(layout, table: str, task_id: str) -> bool:
    """True if the task's fragment of `table` exists, parses and fits the schema."""
    path = layout.fragment(table, task_id)
    try:
        if not layout.storage.exists(path):
            return False
        parse_fragment(table, layout.storage.read_bytes(path), task_id)
    except Exception:  # noqa: BLE001 - any failure means "not a good fragment"
        return False
    return True


def read_fragment(layout, table: str, task_id: str) -> pd.DataFrame:
    """One task's fragment of `table` as a DataFrame (raises if missing or unreadable)."""
    data = layout.storage.read_bytes(layout.fragment(table, task_id))
    return parse_fragment(table, data, task_id).to_pandas()


def _fragment_paths(layout, table: str) -> list[str]:
    directory = layout.table_dir(table)
    storage = layout.storage
    if not storage.exists(directory):
        return []
    names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in storage.listdir(directory)]
    return [storage.join(directory, n) for n in sorted(names)
            if n.endswith(".parquet") and not n.startswith(".")]


def read_arrow(layout, table: str) -> pa.Table:
    """All fragments of `table` as one Arrow table; unreadable fragments are skipped with a warning."""
    schema = check_table(table)
    parts = []
    for path in _fragment_paths(layout, table):
        try:
            parts.append(parse_fragment(table, layout.storage.read_bytes(path)))
        except Exception as exc:  # noqa: BLE001 - one corrupt fragment must not hide the rest
            warnings.warn(f"skipping unreadable result fragment {path}: {exc}", RuntimeWarning,
                          stacklevel=2)
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts)


def read_table(layout, table: str) -> pd.DataFrame:
    """All fragments of `table` as a DataFrame (empty, with the schema's columns, if none)."""
    return read_arrow(layout, table).to_pandas()


def compacted_digest(layout, fragment_path: str) -> str | None:
    """The sha256 a fragment had before its rows were compacted into a part file (None: not compacted)."""
    return None
