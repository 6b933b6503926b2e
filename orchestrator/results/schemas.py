"""The result tables' schemas: one explicit Arrow schema per table (`SCHEMAS`), the values some
columns allow (`ALLOWED_VALUES`) and the settings columns every row carries.

Rows are checked against these in `orchestrator.results.tables` before anything is written.
"""

from __future__ import annotations

import pyarrow as pa

from orchestrator import vocab
from orchestrator.results.pandas_types import PANDAS_TYPES  # noqa: F401 - the readers' name for it
from orchestrator.spec.columns import settings_columns

SCHEMA_VERSION = "3"   # 3: the tasks table's `restarts`. Files of older versions (2, 1) are read conformed to the
                       # current schema (a column they lack is null); compaction rewrites them (`written_before`)
SCHEMA_VERSION_KEY = b"mmc_sweep.schema_version"   # where each Parquet file of a table records its version
TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


def written_before(metadata: dict[bytes, bytes] | None) -> bool:
    """Whether a table's Parquet file with this key-value metadata was written under an older schema version
    than `SCHEMA_VERSION` (or records none): readers conform its rows, but a Parquet tool reading the table's
    directory meets two schemas, so compaction rewrites it. A version that is not a number is not older."""
    version = (metadata or {}).get(SCHEMA_VERSION_KEY, b"0")
    return version.isdigit() and int(version) < int(SCHEMA_VERSION)


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
        _f("versions", pa.string()),                     # python and library versions of the driver
        _f("cached", pa.bool_()),                        # output was already present: not recomputed
        _f("mlflow_run_id", pa.string()),
        _f("error", pa.string()),
        _f("error_type", pa.string()),                   # class name of the exception a failed task raised
        _f("restarts", pa.int64()),                      # times started again after its trial crashed (node lost)
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
