"""The plan of a sweep, written once when a run starts: every task's id, kind, parents, labels,
settings and config (`plan.parquet`). `status` and `report` read it and never re-plan, so what they
say about a sweep does not change when a default changes in the code later. Only when the file is
gone (deleted, or a driver killed between writing spec.yaml and the plan) is the plan of the current
version rebuilt from the stored spec.yaml (`plan_of`); if that fails, they refuse: the rows of every
version in the directory are never pooled.
"""
from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.messages import first_line
from orchestrator.results.manifest import read_parquet_bytes
from orchestrator.results.pandas_types import PANDAS_TYPES
from orchestrator.storage.layout import LinkError, SweepLayout
from orchestrator.uris import redact

if TYPE_CHECKING:
    from orchestrator.graph.dag import Graph

MAX_PLAN_BYTES = 2_000_000_000
MAX_SPEC_BYTES = 1_000_000


def plan_table(graph: Graph) -> pa.Table:
    """One row per task, columns: task_id, kind, parents, config_json, resources_json, the labels and
    the `<section>.<field>` settings (typed as in the result tables). The graph and the schemas are
    imported here, not with the module: reading a plan (`status`) needs neither, nor torch behind them."""
    from orchestrator.graph.dag import LABEL_KEYS, canonical_json
    from orchestrator.results import schemas

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


def read_plan(layout: SweepLayout, columns: tuple[str, ...] | None = None) -> pd.DataFrame | None:
    """The stored plan (None when the sweep has none, e.g. it never started), its `columns` only when
    given (`status` reads task_id and kind); ValueError when it is unreadable."""
    path = layout.plan_file()
    if not layout.storage.exists(path):
        return None
    try:
        data = layout.storage.read_bytes(path, max_bytes=MAX_PLAN_BYTES, replaced=True)
        table = read_parquet_bytes(data) if columns is None else _read_columns(data, columns)
        return table.to_pandas(types_mapper=PANDAS_TYPES.get)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"the plan {path} is unreadable ({exc}); rerun the sweep to write it again") from None


def _read_columns(data: bytes, columns: tuple[str, ...]) -> pa.Table:
    """Some columns of a Parquet file held in memory, read on this thread as `read_parquet_bytes` reads
    a whole one (the other columns are not decoded: a tenth of the time for task_id and kind)."""
    return pq.ParquetFile(pa.BufferReader(data), pre_buffer=False).read(columns=list(columns), use_threads=False)


def plan_of(layout: SweepLayout, columns: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, bool]:
    """(the sweep's plan, whether it was rebuilt): `plan.parquet`, or, when that file is gone or unreadable
    (torn, garbled), the plan of the spec version stored in `spec.yaml` (`load` + `build_graph`, as the run
    that wrote it did); only `columns` when given. ValueError when neither can be had: the caller refuses
    rather than mix the rows of all versions."""
    try:
        plan, unreadable = read_plan(layout, columns), ""
    except ValueError as exc:
        plan, unreadable = None, first_line(exc)
    if plan is not None:
        return plan, False
    from orchestrator.graph.dag import build_graph
    from orchestrator.spec.sweep_spec import parse_spec
    from orchestrator.spec.yaml_io import decode

    path = layout.spec_file()
    try:
        text = decode(layout.storage.read_bytes(path, max_bytes=MAX_SPEC_BYTES), path, "stored spec")
        graph = build_graph(parse_spec(text, path, label=f"stored:{path}"))
    except LinkError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reason the stored spec cannot be planned (plugins run code)
        reason = first_line(exc)
        has = f"an unreadable plan.parquet ({redact(unreadable)})" if unreadable else "no plan.parquet"
        raise ValueError(f"{redact(layout.root)} has {has}, and its spec.yaml cannot be planned again "
                         f"({redact(reason)}); without a plan the rows of every spec version in the directory would "
                         f"be mixed. Run the sweep again (`mmc-sweep run` with its spec) to write the plan") from None
    table = plan_table(graph)
    table = table.select(list(columns)) if columns is not None else table
    return table.to_pandas(types_mapper=PANDAS_TYPES.get), True


def rebuilt_note(layout: SweepLayout, plan: pd.DataFrame) -> str:
    return (f"note: {redact(layout.plan_file())} is missing or unreadable; the plan of the stored spec.yaml was rebuilt "
            f"({len(plan)} tasks) and only their rows are used")
