"""The plan of a sweep, written once when a run starts: every task's id, kind, parents, labels,
settings and config (`plan.parquet`). `status` and `report` read it and never re-plan, so what they
say about a sweep does not change when a default changes in the code later.
"""
from __future__ import annotations

import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.results import schemas
from orchestrator.graph.dag import LABEL_KEYS, Graph, canonical_json
from orchestrator.storage.layout import SweepLayout

MAX_PLAN_BYTES = 2_000_000_000


def plan_table(graph: Graph) -> pa.Table:
    """One row per task, columns: task_id, kind, parents, config_json, resources_json, the labels and
    the `<section>.<field>` settings (typed as in the result tables)."""
    tasks = list(graph.tasks.values())
    columns: dict[str, list] = {
        "task_id": [t.id for t in tasks], "kind": [t.kind for t in tasks],
        "parents": [list(t.parents) for t in tasks],
        "config_json": [canonical_json(t.config) for t in tasks],
        "resources_json": [json.dumps({"cpus": t.resources.cpus, "gpus": t.resources.gpus,
                                       "workers": t.resources.workers, "custom": dict(t.resources.custom)})
                           for t in tasks],
    }
    for key in LABEL_KEYS:
        columns[key] = [t.labels.get(key) for t in tasks]
    fields = {f.name: f for f in schemas.SCHEMAS["tasks"]}
    for name in schemas.SETTINGS_COLUMNS:
        columns[name] = [t.settings.get(name) for t in tasks]
    schema = pa.schema([pa.field("parents", pa.list_(pa.string())) if name == "parents" else
                        pa.field(name, fields[name].type if name in fields else pa.string())
                        for name in columns])
    return pa.table(columns, schema=schema)


def write_plan(layout: SweepLayout, graph: Graph) -> None:
    buf = io.BytesIO()
    pq.write_table(plan_table(graph), buf, compression="zstd")
    layout.storage.write_bytes(layout.plan_file(), buf.getvalue())


def read_plan(layout: SweepLayout) -> pd.DataFrame | None:
    """The stored plan (None when the sweep has none, e.g. it never started); ValueError when it is
    unreadable."""
    path = layout.plan_file()
    if not layout.storage.exists(path):
        return None
    try:
        table = pq.read_table(pa.BufferReader(layout.storage.read_bytes(path, max_bytes=MAX_PLAN_BYTES)))
        return table.to_pandas(types_mapper=schemas.PANDAS_TYPES.get)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"the plan {path} is unreadable ({exc}); rerun the sweep to write it again") from None
