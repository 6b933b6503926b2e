"""Fragments restored from part files no manifest names (`orchestrator/results/orphan_parts.py`), on a tiny
hand-made sweep directory: a plan, the `tasks` table's parts, and no Ray, no run."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import vocab
from orchestrator.results import orphan_parts, tables
from orchestrator.results.manifest import FileStamp, Listing
from orchestrator.storage.layout import Storage, SweepLayout

TASK = "pretrain-00000000000000a1"
CHILD = "finetune-00000000000000b2"


def _layout(tmp_path) -> SweepLayout:
    layout = SweepLayout(Storage(str(tmp_path)), "tiny")
    plan = pa.table({"task_id": [TASK, CHILD], "kind": [vocab.PRETRAIN, vocab.FINETUNE],
                     "parents": pa.array([[], [TASK]], type=pa.list_(pa.string()))})
    buf = io.BytesIO()
    pq.write_table(plan, buf)
    layout.storage.write_bytes(layout.plan_file(), buf.getvalue())
    return layout


def _row(task_id: str, host: str) -> dict:
    kind, parents = (vocab.PRETRAIN, []) if task_id == TASK else (vocab.FINETUNE, [TASK])
    return {"task_id": task_id, "kind": kind, "status": vocab.FINISHED, "parents": parents, "host": host}


def _part(layout: SweepLayout, name: str, rows: list[dict] | None, raw: bytes | None = None) -> tuple[str, FileStamp]:
    path = layout.storage.join(layout.table_dir(vocab.TASKS), name)
    if raw is None:
        arrow = tables.rows_of_tasks_to_table(vocab.TASKS, rows)
        buf = io.BytesIO()
        pq.write_table(arrow.replace_schema_metadata(tables.schema_metadata(vocab.TASKS)), buf)
        raw = buf.getvalue()
    layout.storage.write_bytes(path, raw)
    return name, FileStamp(path, len(raw), 0)


def _hosts(layout: SweepLayout, task_id: str) -> list:
    data = layout.storage.read_bytes(layout.fragment(vocab.TASKS, task_id))
    return pq.read_table(pa.BufferReader(data)).column("host").to_pylist()


def test_the_driver_s_records_come_back_from_the_latest_part_that_holds_the_task(tmp_path):
    """Part names begin with their time: a task whose rows two parts hold (it ran again after a compaction)
    gets back those of the later part."""
    layout = _layout(tmp_path)
    listing = Listing(parts=dict([_part(layout, "20260101T000000-a.parquet", [_row(TASK, "old-host")]),
                                  _part(layout, "20260202T000000-b.parquet", [_row(TASK, "new-host")])]))
    restored = orphan_parts.restore_fragments(layout, vocab.TASKS, listing, {TASK})
    assert set(restored) == {TASK}
    assert _hosts(layout, TASK) == ["new-host"]


def test_a_part_that_cannot_be_read_brings_back_no_driver_records(tmp_path):
    """Which tasks an unreadable part holds is unknown (it may hold later rows of a task another part holds):
    nothing is written back."""
    layout = _layout(tmp_path)
    listing = Listing(parts=dict([_part(layout, "20260101T000000-a.parquet", [_row(TASK, "h")]),
                                  _part(layout, "20260202T000000-b.parquet", None, raw=b"PAR1 not a parquet file")]))
    assert orphan_parts.restore_fragments(layout, vocab.TASKS, listing, {TASK}) == {}
    assert not layout.storage.exists(layout.fragment(vocab.TASKS, TASK))


def test_only_the_wanted_tasks_driver_records_come_back(tmp_path):
    """A part holding two planned tasks, one of which has its fragment again (only the other is wanted): the
    wanted one's rows come back, and nothing is written for the other."""
    layout = _layout(tmp_path)
    listing = Listing(parts=dict([_part(layout, "20260101T000000-a.parquet", [_row(TASK, "h1"), _row(CHILD, "h2")])]))
    restored = orphan_parts.restore_fragments(layout, vocab.TASKS, listing, {CHILD})
    assert set(restored) == {CHILD} and _hosts(layout, CHILD) == ["h2"]
    assert not layout.storage.exists(layout.fragment(vocab.TASKS, TASK))
