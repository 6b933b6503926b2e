"""Fragments restored from part files that no manifest names any more (`results/_manifests/<table>.parquet`
deleted, or unreadable): the rows of each task that re-serialise to exactly the fragment its `done.json`
recorded (size and sha256), so a lost manifest costs a rewrite of those fragments, not a recompute of every
compacted task.

A part without its manifest is trusted for nothing: which rows count, and whether the part was damaged
since, are the manifest's to say. Each task's own marker says it instead: the rows a part holds for the
task, written back as a fragment, are the task's own only when they give the bytes its marker lists for that
fragment (`tables.salvage_part`, the check that restores rows from a damaged part). Where one task's marker is
missing, lists no such fragment, or its rows differ, nothing is written back (the part must stay, and rows
beside it would count twice in a glob): the run recomputes the tasks as before.

The `tasks` table holds the driver's records of each task (when and where it ran, how it ended, its
parents), which no marker lists; no run recomputes them (a finished task is cached), so a part that is
their only copy is the only record of how the sweep ran. Its rows of a task come back when the plan vouches
for them instead: the task is planned, and every row names the plan's kind and parents for it (the report
reads a fine-tuned model's parent from them); the latest part holding a task gives its rows. Before, a run
wrote a fresh "cached" row for every such task and the part went to the quarantine with the rest.
"""
from __future__ import annotations


import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import vocab
from orchestrator.messages import logger
from orchestrator.results import outputs, tables
from orchestrator.results.manifest import Entry, FileStamp, Listing
from orchestrator.storage.layout import SweepLayout

_LOG = logger(__name__)


def restore_fragments(layout: SweepLayout, table: str, listing: Listing, wanted: set[str]) -> dict[str, FileStamp]:
    """Write back the fragment of every task in `wanted` whose rows a part of `listing` holds and whose
    marker records those exact bytes, and only when that is every task in `wanted`: a fragment written back
    beside a part that must stay (rows of another task only it holds) would count twice in a glob of the
    table. Their stamps by task id ({} when not all can be). Never raises: what cannot be restored stays
    missing (a part or the plan that cannot be read, a marker that does not verify the rows)."""
    if not wanted or not listing.parts:
        return {}
    try:
        kinds = _kinds(layout, wanted)
    except (OSError, ValueError) as exc:
        _LOG.warning(f"rows of `{table}` not restored from its parts: the plan cannot be read ({exc})")
        return {}
    blobs = _driver_records(layout, listing, kinds) if table == vocab.TASKS else _vouched_rows(
        layout, table, listing, wanted, {t: k for t, (k, _) in kinds.items()})
    if set(blobs) != wanted:
        return {}
    restored: dict[str, FileStamp] = {}
    for task_id, blob in blobs.items():
        path = layout.fragment(table, task_id)
        layout.storage.write_bytes(path, blob)
        info = layout.storage.file_info(path)     # as listed: compaction deletes it once absorbed
        restored[task_id] = FileStamp(path, info.size or 0, info.mtime_ns or 0)
    return restored


def _vouched_rows(layout: SweepLayout, table: str, listing: Listing, wanted: set[str],
                  kinds: dict[str, str]) -> dict[str, bytes]:
    """The fragment bytes of each task in `wanted` whose rows a part holds and re-serialise to the fragment
    its marker lists."""
    blobs: dict[str, bytes] = {}
    for name, stamp in sorted(listing.parts.items()):
        try:
            data = layout.storage.read_bytes(stamp.path)
            runs = _task_runs(data)
        except (OSError, ValueError, pa.ArrowException):
            continue
        entries = []
        for task_id, offset, rows in runs:
            if task_id in wanted and task_id not in blobs and task_id in kinds:
                recorded = _recorded(layout, kinds[task_id], task_id, table)
                if recorded is not None:
                    entries.append((task_id, Entry(name, recorded[0], offset, rows, recorded[1])))
        for task_id, rows in tables.salvage_part(table, data, entries).items():
            blobs[task_id] = tables.fragment_bytes(table, rows)
    return blobs


def _driver_records(layout: SweepLayout, listing: Listing, plan: dict[str, tuple[str, list]]) -> dict[str, bytes]:
    """The `tasks` rows of each planned task of `plan` (task id -> kind, parents) as the latest part holding
    it has them, as fragment bytes, where every row names the plan's kind and parents; {} when a part
    cannot be read (which rows it holds is unknown)."""
    found: dict[str, pa.Table] = {}
    for name, stamp in sorted(listing.parts.items()):          # part names begin with their time: latest last
        try:
            data = layout.storage.read_bytes(stamp.path)
            part = tables.conform(vocab.TASKS, pq.read_table(pa.BufferReader(data), use_threads=False))
            runs = _task_runs(data)
        except (OSError, ValueError, pa.ArrowException):
            return {}
        for task_id, offset, count in runs:
            if task_id in plan:
                found[task_id] = part.slice(offset, count)
    blobs = {}
    for task_id, rows in found.items():
        kind, parents = plan[task_id]
        named = zip(rows.column("kind").to_pylist(), rows.column("parents").to_pylist())
        if all(k == kind and list(p or []) == parents for k, p in named):
            blobs[task_id] = tables.fragment_bytes(vocab.TASKS, rows)
    return blobs


def _kinds(layout: SweepLayout, task_ids: set[str]) -> dict[str, tuple[str, list]]:
    """Task id -> (kind, parents) for the planned tasks among `task_ids` (a marker's path needs its kind; a
    `tasks` row names both)."""
    from orchestrator.results.plan import plan_of

    plan, _ = plan_of(layout, columns=("task_id", "kind", "parents"))
    return {t: (k, list(p if p is not None else [])) for t, k, p in
            zip(plan["task_id"].tolist(), plan["kind"].tolist(), plan["parents"].tolist()) if t in task_ids}


def _recorded(layout: SweepLayout, kind: str, task_id: str, table: str) -> tuple[str, int | None] | None:
    """(sha256, size or None) of the task's fragment of `table` as its marker lists it; None: no marker, or
    it lists no such fragment."""
    marker = outputs.read_marker(layout, kind, task_id)
    if marker is None:
        return None
    name = outputs.relative_path(layout, layout.fragment(table, task_id))
    digest = marker["files"].get(name)
    size = (marker.get("sizes") or {}).get(name) if isinstance(marker.get("sizes"), dict) else None
    return (digest, size if isinstance(size, int) else None) if isinstance(digest, str) else None


def _task_runs(data: bytes) -> list[tuple[str, int, int]]:
    """(task_id, offset, rows) of each run of one task's rows in a part, in order."""
    ids = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False).read(columns=["task_id"], use_threads=False)
    out: list[tuple[str, int, int]] = []
    for i, task_id in enumerate(ids.column("task_id").to_pylist()):
        if out and out[-1][0] == task_id:
            out[-1] = (task_id, out[-1][1], out[-1][2] + 1)
        else:
            out.append((task_id, i, 1))
    return [run for run in out if run[0] is not None]
