"""Result sinks: one Parquet fragment per task per table, and one MLflow child run per task.

Fragments live at ``layout.fragment(table, task_id)`` (``results/<table>/<task_id>.parquet``) and
are written whole and atomically through ``Storage.write_bytes``, so rerunning a task replaces its
fragment instead of appending duplicates, and many workers can write at once without clashing.
Every table has an explicit schema (``SCHEMAS``); rows are checked against it before anything is
written, and errors name the table, the column, the row and what is allowed.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import io
import json
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = "1"
TASK_KINDS = ("pretrain", "finetune", "midpoint", "align", "path_eval")
# schedule.py's task states; "finished" is accepted as a synonym of "done".
TASK_STATUSES = ("done", "cached", "finished", "failed", "skipped", "pending", "running")
FINISHED_STATUSES = ("done", "cached", "finished")   # the task's outputs exist
PATH_KINDS = ("linear", "quadratic", "aligned")
METRICS = ("loss", "acc")
DEFINITIONS = ("chord", "mean_endpoints")
TIMESTAMP = pa.timestamp("us", tz="UTC")


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
]
_PAIR = [
    _f("pair_type", pa.string(), required=True),
    _f("path_kind", pa.string(), required=True),
    _f("alignment", pa.string()),
    _f("endpoint_a", pa.string()),
    _f("endpoint_b", pa.string()),
]

SCHEMAS: dict[str, pa.Schema] = {
    "tasks": pa.schema([
        _f("task_id", pa.string(), required=True),
        _f("kind", pa.string(), required=True),
        _f("status", pa.string(), required=True),        # TASK_STATUSES
        _f("parents", pa.list_(pa.string())),
        _f("spec_hash", pa.string()),
        *_LABELS,
        _f("path_kind", pa.string()),
        _f("alignment", pa.string()),
        _f("pair_type", pa.string()),
        _f("endpoint_a", pa.string()),
        _f("endpoint_b", pa.string()),
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
    ]),
    "evaluations": pa.schema([
        _f("task_id", pa.string(), required=True),
        _f("kind", pa.string()),                         # pretrain | finetune
        *_LABELS,
        _f("eval_set", pa.string(), required=True),
        _f("loss", pa.float64(), required=True),
        _f("acc", pa.float64(), required=True),          # fraction in [0, 1]
        _f("n", pa.int64(), required=True),
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
    ]),
    "paths": pa.schema([
        _f("task_id", pa.string(), required=True),
        *_PAIR,
        _f("dataset", pa.string()),
        _f("cue_proportion", pa.float64()),
        _f("model", pa.string()),
        _f("seed", pa.int64()),
        _f("alpha", pa.float64(), required=True),
        _f("eval_set", pa.string(), required=True),
        _f("loss", pa.float64(), required=True),
        _f("acc", pa.float64(), required=True),
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
    ]),
}

# Columns whose values come from a closed set: (table, column) -> allowed values.
ALLOWED_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("tasks", "kind"): TASK_KINDS,
    ("tasks", "status"): TASK_STATUSES,
    ("evaluations", "kind"): TASK_KINDS,
    ("train_curves", "kind"): TASK_KINDS,
    ("paths", "path_kind"): PATH_KINDS,
    ("barriers", "path_kind"): PATH_KINDS,
    ("barriers", "metric"): METRICS,
    ("barriers", "definition"): DEFINITIONS,
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


# ----------------------------------------------------------------------------------------------
# MLflow
# ----------------------------------------------------------------------------------------------

SECRET_WORDS = ("token", "secret", "password", "credential")
MAX_PARAM_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


def is_secret(key: str) -> bool:
    """Keys that may hold credentials are never logged."""
    low = key.lower()
    return any(word in low for word in SECRET_WORDS)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> dotted keys; values as strings (lists as JSON), truncated to MLflow's limits.
    Secret-looking keys are dropped."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        full = f"{prefix}{key}"
        if is_secret(full):
            continue
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{full}."))
            continue
        if isinstance(value, (list, tuple)):
            text = json.dumps(list(value), default=str)
        else:
            text = "None" if value is None else str(value)
        flat[full[:MAX_PARAM_KEY]] = text[:MAX_PARAM_VALUE]
    return flat


def _metric_value(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a local SQLite store, keep artifacts next to the database (not in the CWD)."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        db = Path(tracking_uri[len(prefix):])
        return (db.parent / "mlflow-artifacts").absolute().as_uri()
    return None


class MlflowSink:
    """One parent run per invocation, one child run per task; explicit run ids throughout (no
    global active run), so it may be used from several threads at once."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None = None):
        from mlflow import MlflowClient  # imported lazily: mlflow is slow to import

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            location = artifact_location or default_artifact_location(tracking_uri)
            try:
                self.experiment_id = self.client.create_experiment(experiment_name,
                                                                   artifact_location=location)
            except Exception:  # noqa: BLE001 - another process created it first
                experiment = self.client.get_experiment_by_name(experiment_name)
                if experiment is None:
                    raise
                self.experiment_id = experiment.experiment_id
        else:
            self.experiment_id = experiment.experiment_id

    # -- internals -------------------------------------------------------------------------------
    def _create_run(self, run_name: str, tags: Mapping[str, Any]) -> str:
        clean = {k: str(v)[:MAX_TAG_VALUE] for k, v in tags.items()
                 if v is not None and not is_secret(k)}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=clean)
        return run.info.run_id

    def _log(self, run_id: str, params: Mapping[str, Any] | None = None,
             metrics: Mapping[str, Any] | None = None,
             curves: Sequence[tuple[str, int, float]] = ()) -> None:
        from mlflow.entities import Metric, Param

        now_ms = int(time.time() * 1000)
        param_list = [Param(k, v) for k, v in flatten_params(params or {}).items()]
        metric_list = []
        for key, value in (metrics or {}).items():
            v = _metric_value(value)
            if v is not None and not is_secret(key):
                metric_list.append(Metric(key, v, now_ms, 0))
        for key, step, value in curves:
            v = _metric_value(value)
            if v is not None and not is_secret(key):
                metric_list.append(Metric(key, v, now_ms, int(step)))
        for chunk in _chunks(param_list, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(metric_list, MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def log_artifacts(self, run_id: str, artifacts: Iterable[str | Path]) -> None:
        """Upload local files to a run (missing files are skipped)."""
        for path in artifacts:
            if Path(path).is_file():
                self.client.log_artifact(run_id, str(path))

    # -- public ----------------------------------------------------------------------------------
    def start_parent(self, params: Mapping[str, Any] | None = None,
                     tags: Mapping[str, Any] | None = None, run_name: str | None = None) -> str:
        """Create the invocation's parent run; returns its run id."""
        run_id = self._create_run(run_name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}", tags or {})
        self._log(run_id, params=params)
        return run_id

    def log_task(self, parent_run_id: str, task_kind: str, task_id: str,
                 params: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
                 curves: Sequence[tuple[str, int, float]] = (),
                 artifacts: Sequence[str | Path] = (), status: str = "FINISHED",
                 error: str | None = None) -> str:
        """One finished (or failed) task as a child run of `parent_run_id`; returns its run id."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"`status`: {status!r} is not allowed; allowed: FINISHED, FAILED, KILLED")
        tags = {"mlflow.parentRunId": parent_run_id, "task_kind": task_kind, "task_id": task_id}
        if error:
            tags["error"] = error
        run_id = self._create_run(task_id, tags)
        try:
            self._log(run_id, params=params, metrics=metrics, curves=curves)
            self.log_artifacts(run_id, artifacts)
            if error:
                self.client.log_text(run_id, error, "error.txt")
        finally:
            self.client.set_terminated(run_id, status)
        return run_id

    def finish_parent(self, run_id: str, status: str = "FINISHED",
                      metrics: Mapping[str, Any] | None = None,
                      artifacts: Sequence[str | Path] = ()) -> None:
        """Log the invocation's summary metrics and artifacts (e.g. report figures) and close it."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"`status`: {status!r} is not allowed; allowed: FINISHED, FAILED, KILLED")
        try:
            self._log(run_id, metrics=metrics)
            self.log_artifacts(run_id, artifacts)
        finally:
            self.client.set_terminated(run_id, status)

    # INTERNALS.md names the closing call `finish`.
    finish = finish_parent
