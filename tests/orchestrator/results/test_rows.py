"""Rows at the edges: empty fragments, compacted tasks without rows, manifests that do not hold together,
a manifest left behind by an earlier version, parts damaged after they were checked, markers written by
hand (unknown versions, malformed fields, changed files), the marker index's file names, the plan's
columns, and the columns every table requires or closes to a vocabulary. Small tables, no run."""
from __future__ import annotations

import hashlib
import json
import os

import pyarrow as pa
import pytest

from orchestrator import vocab
from orchestrator.results import compact, manifest, marker_format, marker_index, outputs, plan, schemas, tables
from orchestrator.storage.layout import Storage, SweepLayout

EVAL = vocab.EVALUATIONS


@pytest.fixture()
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "store")), "rows")


def _evaluations(loss: float) -> list[dict]:
    return [{"eval_set": "cue", "loss": loss, "acc": 0.5, "n": 10}, {"eval_set": "nocue", "loss": loss + 1, "acc": 0.25, "n": 10}]


# ----- fragments and parts ----------------------------------------------------------------------

def test_a_task_that_wrote_no_rows_has_an_intact_fragment_of_its_own(layout):
    """An empty fragment (a task with no rows of a table) is still that task's stored fragment: it parses
    as its task's, verifies, and reads as no rows with the schema's columns."""
    tables.write_fragment(layout, EVAL, "t0", [])
    data = layout.storage.read_bytes(layout.fragment(EVAL, "t0"))
    assert tables.parse_fragment(EVAL, data, "t0").num_rows == 0
    assert tables.verify_fragment(layout, EVAL, "t0")
    df = tables.read_fragment(layout, EVAL, "t0")
    assert df.empty and list(df.columns) == schemas.SCHEMAS[EVAL].names


def test_compacted_tasks_without_rows_read_as_no_rows_beside_the_others(layout):
    """Tasks whose fragments were empty, compacted between tasks with rows: the table reads every other
    task's rows once in task-id order, and each empty task reads alone as no rows (not an error)."""
    written = {"t0": _evaluations(0.0), "t1": [], "t2": _evaluations(2.0), "t3": [], "t4": _evaluations(4.0)}
    for task_id, rows in written.items():
        tables.write_fragment(layout, EVAL, task_id, rows)
    compact.compact_table(layout, EVAL)
    tables.write_fragment(layout, EVAL, "t2", _evaluations(20.0))          # t2 ran again: the part is taken from
    df = tables.read_table(layout, EVAL)
    assert df["task_id"].tolist() == ["t0", "t0", "t2", "t2", "t4", "t4"]
    assert df["loss"].tolist() == [0.0, 1.0, 20.0, 21.0, 4.0, 5.0]
    for task_id in ("t1", "t3"):
        assert not layout.storage.exists(layout.fragment(EVAL, task_id))    # absorbed
        assert tables.verify_fragment(layout, EVAL, task_id)
        one = tables.read_fragment(layout, EVAL, task_id)
        assert one.empty and list(one.columns) == schemas.SCHEMAS[EVAL].names
    assert tables.read_fragment(layout, EVAL, "t4")["loss"].tolist() == [4.0, 5.0]


def test_the_manifest_records_each_fragments_sha256_size_and_place(layout):
    """Manifest docstring: one row per task with its part, offset and rows, and the sha256 and size of the
    fragment its rows came from (a truncated copy is then told by its size without hashing it)."""
    written = {}
    for i, rows in enumerate((_evaluations(0.0), [], _evaluations(2.0)[:1])):
        path = tables.write_fragment(layout, EVAL, f"t{i}", rows)
        written[f"t{i}"] = (layout.storage.read_bytes(path), len(rows))
    compact.compact_table(layout, EVAL)
    found = manifest.read_manifest(layout, EVAL)
    (name,) = found.parts
    offset = 0
    for task_id, (data, rows) in written.items():
        assert found.tasks[task_id] == manifest.Entry(name, hashlib.sha256(data).hexdigest(), offset, rows, len(data))
        offset += rows
    assert found.parts[name].rows == offset == 3


def test_a_part_missing_a_required_column_does_not_read():
    """Like a fragment, a part's missing nullable columns read as null but a missing required one is an
    error (the reader then skips the part with a warning), never a column of nulls."""
    import pyarrow.parquet as pq

    rows = pa.concat_tables([tables.rows_to_table(EVAL, f"t{i}", _evaluations(float(i))) for i in range(2)])
    for dropped, fails in (("variant", False), ("acc", True)):
        sink = pa.BufferOutputStream()
        pq.write_table(rows.drop_columns([dropped]), sink)
        if fails:
            with pytest.raises(ValueError, match="required column `acc`"):
                tables.read_part_bytes(EVAL, sink.getvalue().to_pybytes())
        else:
            assert tables.read_part_bytes(EVAL, sink.getvalue().to_pybytes()).column("variant").null_count == 4


def test_a_fragment_kept_beside_its_lost_part_restores_its_rows(layout):
    """A fragment with exactly the sha256 its part recorded counts as absorbed only while that part verifies
    (manifest docstring): once the part is gone, the fragment is the only copy of its rows and is read."""
    for i in range(2):
        tables.write_fragment(layout, EVAL, f"t{i}", _evaluations(float(i)))
    compact.compact_table(layout, EVAL)
    found = manifest.read_manifest(layout, EVAL)
    tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))           # the same bytes again
    assert found.tasks["t0"].matches(layout.storage.read_bytes(layout.fragment(EVAL, "t0")))
    (name,) = found.parts
    layout.storage.delete(layout.compacted_file(EVAL, name))
    df = tables.read_table(layout, EVAL)
    assert df["task_id"].tolist() == ["t0", "t0"] and df["loss"].tolist() == [0.0, 1.0]


def test_a_part_damaged_after_it_was_checked_is_checked_again(layout):
    """`part_state` caches a part's check only while its size and mtime stay the same: the same part
    rewritten with other bytes of the same size is damaged, in the same process."""
    for i in range(2):
        tables.write_fragment(layout, EVAL, f"t{i}", _evaluations(float(i)))
    compact.compact_table(layout, EVAL)
    info, = manifest.read_manifest(layout, EVAL).parts.values()
    assert manifest.part_state(layout, EVAL, info) == manifest.PART_OK
    path = layout.compacted_file(EVAL, info.name)
    data = bytearray(layout.storage.read_bytes(path))
    before = os.stat(path)
    data[len(data) // 2] ^= 1
    layout.storage.write_bytes(path, bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert manifest.part_state(layout, EVAL, info) == manifest.PART_DAMAGED
    assert manifest.compacted_entry(layout, EVAL, "t1") is None


def test_a_manifest_left_by_an_earlier_version_does_not_hide_the_current_one(layout):
    """Where both are there (a compaction stopped before it deleted the old one), the manifest at the current
    location counts: it is the newer; the older would leave the newer part's tasks out."""
    tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))
    compact.compact_table(layout, EVAL)
    older = layout.storage.read_bytes(manifest.manifest_path(layout, EVAL))
    tables.write_fragment(layout, EVAL, "t1", _evaluations(1.0))
    compact.compact_table(layout, EVAL)
    layout.storage.write_bytes(layout.legacy_manifest_file(EVAL), older)
    manifest.forget_cached(layout)
    assert sorted(manifest.read_manifest(layout, EVAL).tasks) == ["t0", "t1"]
    assert tables.read_table(layout, EVAL)["task_id"].tolist() == ["t0", "t0", "t1", "t1"]


def test_a_manifest_of_another_table_or_with_negative_places_is_refused(layout):
    """A manifest holds together only for its own table, and only with offsets, row counts and fragment
    sizes that are not negative (an entry at offset -1 would be read as rows of another task)."""
    from dataclasses import replace

    for i in range(2):
        tables.write_fragment(layout, EVAL, f"t{i}", _evaluations(float(i)))
    compact.compact_table(layout, EVAL)
    good = manifest.read_manifest(layout, EVAL)
    data = manifest.manifest_bytes(good)
    assert manifest.parse_manifest(EVAL, data).tasks == good.tasks
    with pytest.raises(ValueError, match="not a manifest of table `paths`"):
        manifest.parse_manifest(vocab.PATHS, data)
    t1 = good.tasks["t1"]
    for bad in (replace(t1, offset=-1, rows=1), replace(t1, offset=2, rows=-1), replace(t1, size=-1)):
        broken = manifest.Manifest(EVAL, good.parts, {**good.tasks, "t1": bad})
        with pytest.raises(ValueError, match="points outside its part"):
            manifest.parse_manifest(EVAL, manifest.manifest_bytes(broken))


def test_a_manifests_leftover_temporary_files_are_its_own_not_the_manifest(layout):
    """`temporary_manifests` names the `<table>.parquet.tmp-*` files of unfinished writes of that table's
    manifest: never the manifest itself, never another table's."""
    tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))
    compact.compact_table(layout, EVAL)
    path = manifest.manifest_path(layout, EVAL)
    layout.storage.write_bytes(f"{path}.tmp-abc", b"torn")
    layout.storage.write_bytes(f"{manifest.manifest_path(layout, vocab.PATHS)}.tmp-def", b"torn")
    assert manifest.temporary_manifests(layout, EVAL) == [f"{path}.tmp-abc"]


# ----- markers written by hand -------------------------------------------------------------------

def _finished(layout, task_id: str = "t0", kind: str = vocab.PATH_EVAL, **changes) -> str:
    """One task's evaluations fragment and a marker listing it, as `write_outputs` writes them (with
    `changes` to the marker); the fragment's path."""
    path, data = tables.write_fragment_bytes(layout, EVAL, task_id, _evaluations(1.0))
    name = path[len(layout.root) + 1:]
    marker = marker_format.make_marker(task_id, kind, {name: hashlib.sha256(data).hexdigest()}, {name: len(data)},
                                       [EVAL], {"loss": 1.0}, [("loss", 0, 1.0)], {}, 0.0)
    marker.update(changes)
    layout.storage.write_bytes(layout.marker_file(kind, task_id), json.dumps(marker).encode())
    return path


def test_a_hand_written_marker_of_this_version_verifies(layout):
    _finished(layout)
    assert outputs.verify_outputs(layout, vocab.PATH_EVAL, "t0") == (True, "")
    assert outputs.verify_many(layout, [(vocab.PATH_EVAL, "t0")]) == {"t0": (True, "")}


@pytest.mark.parametrize("changes, reason", [
    ({"version": 4}, "is not a marker of this task"),
    ({"version": 1}, "is not a marker of this task"),
    ({"metrics": [1.0]}, "`metrics` is not a mapping"),
    ({"meta": "x"}, "`meta` is not a mapping"),
    ({"tables": "evaluations"}, "`tables` is not a list"),
    ({"steps": [["loss", 0, 1.0]]}, "`steps` is not a mapping"),
])
def test_a_marker_of_an_unknown_version_or_shape_is_not_finished(layout, changes, reason):
    """Markers are read defensively (outputs docstring): a version this code does not read (2 and 3 only),
    or a field of the wrong shape (version 3 holds `steps` as a mapping), counts as "not finished"."""
    _finished(layout, **changes)
    ok, why = outputs.verify_outputs(layout, vocab.PATH_EVAL, "t0")
    assert not ok and reason in why
    assert outputs.read_marker(layout, vocab.PATH_EVAL, "t0") is None


def test_a_file_changed_after_it_was_hashed_is_hashed_again(layout):
    """`hashes` remembers a file's sha256 by its size and mtime: the same file rewritten with other bytes of
    the same size (a new mtime) is hashed again and fails."""
    path = _finished(layout)
    hashes: dict = {}
    assert outputs.verify_outputs(layout, vocab.PATH_EVAL, "t0", hashes) == (True, "")
    assert hashes
    data = bytearray(layout.storage.read_bytes(path))
    before = os.stat(path)
    data[len(data) // 2] ^= 1
    layout.storage.write_bytes(path, bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert outputs.verify_outputs(layout, vocab.PATH_EVAL, "t0", hashes) == (False, f"sha256 mismatch in {path}")


def test_a_step_series_of_an_odd_length_is_left_out():
    """A series is [step, value, step, value, ...]: one of odd length does not pair up and is left out
    (the others read back)."""
    marker = {"task_id": "t0", "steps": {"loss": "[0,1.0,1]", "acc": "[0,0.5,1,0.75]"}}
    assert marker_format.marker_steps(marker) == [["acc", 0, 0.5], ["acc", 1, 0.75]]


def test_index_files_are_named_in_the_order_they_were_written(layout, monkeypatch):
    """Index files are ordered by name (the newest entry of a task wins): within one second, a file written
    at nanosecond 10000000 follows one written at nanosecond 5 (names fixed-width), so its entry wins."""
    entry = marker_index.Entry("path_eval", (1, 2, 3, 4), {}, {})
    second = 1_700_000_000 * 10**9
    for ns, kind in ((5, "align"), (10_000_000, "path_eval")):
        monkeypatch.setattr(marker_index.time, "time_ns", lambda ns=ns: second + ns)
        marker_index.write_index(layout, [("t", entry._replace(kind=kind))])
    assert marker_index.entry_of(marker_index.read_index(layout)["t"]).kind == "path_eval"


def test_an_index_entry_with_a_missing_value_is_skipped(layout):
    """An index file whose row misses a value (here its kind) is not an index this code reads: skipped."""
    import pyarrow.parquet as pq

    marker_index.write_index(layout, [("a", marker_index.Entry("align", (1, 2, 3, 4), {}, {}))])
    arrow = pa.table({"task_id": ["b"], "kind": pa.array([None], pa.string()), "size": [1], "mtime_ns": [1],
                      "ctime_ns": [1], "inode": pa.array([1], pa.uint64()), "names": [[]], "sha256": [[]],
                      "sizes": [[]], "stamps": [[]]}, schema=marker_index.SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    layout.storage.write_bytes(layout.marker_index_file("index-99999999T999999.999999999-x.parquet"),
                               sink.getvalue().to_pybytes())
    assert sorted(marker_index.read_index(layout)) == ["a"]


# ----- the plan --------------------------------------------------------------------------------

def test_the_plan_records_each_tasks_resources_and_reads_only_the_columns_asked_for(layout):
    """`resources_json` is the task's cpus, gpus, workers and custom Ray resources as planned; `read_plan`
    with columns gives those columns only (what `status` reads)."""
    from orchestrator.graph.dag import build_graph
    from orchestrator.spec.sweep_spec import parse_spec

    graph = build_graph(parse_spec("name: x\nseeds: [0]\nresources:\n  pretrain: {custom: {special: 0.5}}\n"))
    plan.write_plan(layout, graph)
    df = plan.read_plan(layout)
    assert any(task.resources.custom for task in graph.tasks.values())
    for row in df.to_dict("records"):
        resources, task = json.loads(row["resources_json"]), graph.tasks[row["task_id"]]
        assert resources == {"cpus": task.resources.cpus, "gpus": task.resources.gpus,
                             "workers": task.resources.workers, "custom": dict(task.resources.custom)}
    some = plan.read_plan(layout, ("task_id", "kind"))
    assert list(some.columns) == ["task_id", "kind"] and some["task_id"].tolist() == list(graph.tasks)


# ----- required and closed columns ----------------------------------------------------------------

_REQUIRED = {
    vocab.TASKS: {"kind": "pretrain", "status": vocab.FINISHED},
    vocab.TRAIN_CURVES: {"epoch": 0, "split": "train", "loss": 1.0},
    vocab.PATHS: {"pair_type": "cue~nocue", "path_kind": "linear", "alpha": 0.5, "eval_set": "cue", "loss": 1.0,
                  "acc": 0.5},
    vocab.BARRIERS: {"pair_type": "cue~nocue", "path_kind": "linear", "eval_set": "cue", "metric": "loss",
                     "definition": "chord", "value": 0.1},
}


@pytest.mark.parametrize("table, column", [(t, c) for t, row in _REQUIRED.items() for c in row])
def test_a_row_without_a_required_measurement_is_refused(layout, table, column):
    """docs/ANALYSIS.md: a task row says its kind and status; a curve point is an epoch, a split and a loss; a path point its pair, path kind,
    alpha, eval set, loss and accuracy; a barrier its pair, path kind, eval set, metric, definition and
    value. A row without one is refused before anything is written."""
    tables.write_fragment(layout, table, "ok", [_REQUIRED[table]])
    row = {k: v for k, v in _REQUIRED[table].items() if k != column}
    with pytest.raises(tables.SchemaError, match=f"`{table}.{column}`: required"):
        tables.write_fragment(layout, table, "bad", [row])
    assert not layout.storage.exists(layout.fragment(table, "bad"))


@pytest.mark.parametrize("table, column, value", [
    (vocab.TRAIN_CURVES, "kind", "pretrian"), (vocab.BARRIERS, "path_kind", "cubic"),
    (vocab.EVALUATIONS, "kind", "align "),
])
def test_a_closed_column_of_every_table_takes_only_its_vocabulary_or_nothing(layout, table, column, value):
    required = _REQUIRED.get(table, _evaluations(1.0)[0])
    if schemas.SCHEMAS[table].field(column).nullable:
        tables.write_fragment(layout, table, "none", [{**required, column: None}])      # not applicable: null
    with pytest.raises(tables.SchemaError, match=f"`{table}.{column}`.*allowed"):
        tables.write_fragment(layout, table, "bad", [{**required, column: value}])


# ----- reading some columns or some tasks ----------------------------------------------------------

def test_a_bool_is_not_a_timestamp(layout):
    """A timestamp column takes datetimes, epoch seconds or ISO strings; True is none of them (not 1 s
    after the epoch): refused with the column named."""
    with pytest.raises(tables.SchemaError, match="`tasks.started_at`"):
        tables.write_fragment(layout, vocab.TASKS, "t0", [{"kind": "pretrain", "status": vocab.FINISHED,
                                                           "started_at": True}])


def test_one_column_named_alone_and_an_empty_choice_of_tasks(layout):
    """`columns="loss"` is the column `loss` (with `task_id`), not its letters; `task_ids=[]` (a plan of no
    task) is no rows, from fragments and parts alike, not every row."""
    for i in range(3):
        tables.write_fragment(layout, EVAL, f"t{i}", _evaluations(float(i)))
    compact.compact_table(layout, EVAL)
    tables.write_fragment(layout, EVAL, "t3", _evaluations(3.0))
    got = tables.read_table(layout, EVAL, columns="loss")
    assert list(got.columns) == ["task_id", "loss"] and got["loss"].tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0]
    none = tables.read_table(layout, EVAL, task_ids=[])
    assert none.empty and list(none.columns) == schemas.SCHEMAS[EVAL].names
    assert tables.read_arrow(layout, EVAL, task_ids=()).num_rows == 0


# ----- mending, bundles and the end of a run --------------------------------------------------------

def test_repair_deletes_absorbed_copies_and_leaves_new_fragments_as_they_are(layout):
    """`repair` (the start of a run) mends: a fragment left beside the part that absorbed it (a compaction
    stopped before its deletions) is deleted; a new fragment alone is not absorbed (no part to rewrite)."""
    for i in range(2):
        tables.write_fragment(layout, EVAL, f"t{i}", _evaluations(float(i)))
    compact.compact_table(layout, EVAL)
    tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))           # the absorbed bytes again
    done = compact.repair(layout)[EVAL]
    assert done.part is None and done.deleted == 1 and not manifest.list_table(layout, EVAL).fragments
    tables.write_fragment(layout, EVAL, "t2", _evaluations(2.0))           # new
    done = compact.repair(layout)[EVAL]
    assert done.part is None and done.deleted == 0
    assert list(manifest.list_table(layout, EVAL).fragments) == ["t2"]
    assert tables.read_table(layout, EVAL)["task_id"].tolist() == ["t0", "t0", "t1", "t1", "t2", "t2"]


def test_the_end_of_an_uninterrupted_run_leaves_one_part_even_below_the_threshold(layout, monkeypatch):
    """`compact_after_run(one_part=True)`: a part and a few new fragments (fewer than the threshold) end as
    one part; without `one_part` the few fragments stay beside the part."""
    monkeypatch.setattr(compact, "min_fragments_after_run", lambda: 64)
    tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))
    compact.compact_table(layout, EVAL)
    tables.write_fragment(layout, EVAL, "t1", _evaluations(1.0))
    compact.compact_after_run(layout)
    assert compact.files_per_table(layout)[EVAL] == 2
    compact.compact_after_run(layout, one_part=True)
    assert compact.files_per_table(layout)[EVAL] == 1 and not manifest.list_table(layout, EVAL).fragments
    assert tables.read_table(layout, EVAL)["task_id"].tolist() == ["t0", "t0", "t1", "t1"]


def test_a_bundle_leaves_writes_in_flight_and_the_end_deletes_what_is_left_over(layout):
    """While a run goes, a `.tmp-` file in a table is a task's write in flight: a bundle leaves it; after the
    run it is a leftover, deleted."""
    tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))
    in_flight = f"{layout.fragment(EVAL, 't1')}.tmp-0123"
    layout.storage.write_bytes(in_flight, b"half written")
    compact.compact_bundle(layout)
    assert layout.storage.exists(in_flight) and not manifest.list_table(layout, EVAL).fragments
    compact.compact(layout, [EVAL])
    assert not layout.storage.exists(in_flight)


def test_a_renamed_part_is_adopted_with_every_row(layout):
    for i in range(2):
        tables.write_fragment(layout, EVAL, f"t{i}", _evaluations(float(i)))
    compact.compact_table(layout, EVAL)
    (name,) = manifest.read_manifest(layout, EVAL).parts
    os.rename(layout.compacted_file(EVAL, name), layout.compacted_file(EVAL, "copied"))
    done = compact.compact_table(layout, EVAL)
    assert done.adopted == [name] and done.lost == [] and done.quarantined == []
    assert tables.read_table(layout, EVAL)["loss"].tolist() == [0.0, 1.0, 1.0, 2.0]


def test_a_damaged_part_reports_the_tasks_restored_and_lost(layout):
    """From a damaged part, the tasks whose rows re-serialise to their fragment are restored and counted;
    the one whose rows changed is lost (named, to be recomputed)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for i in range(3):
        tables.write_fragment(layout, EVAL, f"t{i}", _evaluations(10.0 * i))
    compact.compact_table(layout, EVAL)
    (name,) = manifest.read_manifest(layout, EVAL).parts
    path = layout.compacted_file(EVAL, name)
    part = pq.read_table(path)
    loss = pc.if_else(pc.equal(part.column("task_id"), "t1"), pc.add(part.column("loss"), 0.5), part.column("loss"))
    pq.write_table(part.set_column(part.schema.get_field_index("loss"), "loss", loss), path)
    done = compact.compact_table(layout, EVAL)
    assert (done.restored, done.lost) == (2, ["t1"])
    assert tables.read_table(layout, EVAL)["task_id"].tolist() == ["t0", "t0", "t2", "t2"]


def test_a_plan_rebuilt_from_the_stored_spec_has_the_columns_asked_for(layout):
    from orchestrator.spec.sweep_spec import dump_spec, parse_spec

    spec = parse_spec("name: x\nseeds: [0]\n")
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    rebuilt, was_rebuilt = plan.plan_of(layout, ("task_id", "kind"))
    assert was_rebuilt and list(rebuilt.columns) == ["task_id", "kind"] and len(rebuilt)


def test_a_marker_larger_than_the_limit_is_not_finished(layout, monkeypatch):
    """A marker is read up to `MAX_MARKER_BYTES` (outputs docstring: "too large" counts as not finished),
    by the task's check and by the pass over the sweep alike."""
    _finished(layout)
    size = len(layout.storage.read_bytes(layout.marker_file(vocab.PATH_EVAL, "t0")))
    monkeypatch.setattr(outputs, "MAX_MARKER_BYTES", size - 1)
    ok, why = outputs.verify_outputs(layout, vocab.PATH_EVAL, "t0")
    assert not ok and "unreadable" in why
    assert outputs.verify_many(layout, [(vocab.PATH_EVAL, "t0")])["t0"][0] is False
    monkeypatch.setattr(outputs, "MAX_MARKER_BYTES", size)
    assert outputs.verify_many(layout, [(vocab.PATH_EVAL, "t0")]) == {"t0": (True, "")}


def test_a_directory_in_a_tables_directory_hides_none_of_its_fragments(layout):
    """A directory inside `results/<table>/` (a tool's, a user's) is not a fragment: the listing passes over it
    and goes on, so every fragment that the file system lists after it is still read and compacted."""
    ids = [f"t{i:02d}" for i in range(20)]
    for i, task_id in enumerate(ids):
        tables.write_fragment(layout, EVAL, task_id, _evaluations(float(i)))
        os.makedirs(os.path.join(layout.table_dir(EVAL), f"{task_id}.d"))   # directories among the fragments
    assert sorted(manifest.list_table(layout, EVAL).fragments) == ids
    assert sorted(set(tables.read_table(layout, EVAL)["task_id"])) == ids
    compact.compact_table(layout, EVAL)
    assert sorted(manifest.read_manifest(layout, EVAL).tasks) == ids
    assert tables.read_table(layout, EVAL)["task_id"].tolist() == [t for t in ids for _ in range(2)]


def test_a_file_named_like_a_part_that_is_no_parquet_file_is_left_alone(layout):
    """`part-<name>.parquet` names a part; a file that starts with `part-` but is no Parquet file (notes beside
    the data) is neither a part nor a fragment: compaction neither takes it for an orphaned part (deleted) nor
    refuses the table because of it."""
    tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))
    stray = layout.storage.join(layout.table_dir(EVAL), "part-notes.txt")
    layout.storage.write_bytes(stray, b"notes")
    assert manifest.list_table(layout, EVAL).parts == {}
    compact.compact_table(layout, EVAL)
    assert layout.storage.read_bytes(stray) == b"notes"
    assert tables.read_table(layout, EVAL)["task_id"].tolist() == ["t0", "t0"]


def test_a_read_of_some_tasks_keeps_only_their_rows_even_from_a_single_foreign_fragment(layout):
    """With `task_ids`, a fragment's rows are kept by their own `task_id` column, not by the file's name: a file
    at t0's place that holds t9's rows (a copy) gives none of them to a read of t0, alone as with others."""
    tables.write_fragment(layout, EVAL, "t9", _evaluations(9.0))
    layout.storage.write_bytes(layout.fragment(EVAL, "t0"), layout.storage.read_bytes(layout.fragment(EVAL, "t9")))
    assert tables.read_table(layout, EVAL, task_ids=["t0"]).empty
    tables.write_fragment(layout, EVAL, "t1", _evaluations(1.0))
    assert tables.read_table(layout, EVAL, task_ids=["t0", "t1"])["task_id"].tolist() == ["t1", "t1"]


def _read_after_it_vanished_once(layout, monkeypatch, path: str) -> None:
    """Read the table while `path` is gone at its first read (a compaction in between): every row comes back."""
    read, gone = layout.storage.read_bytes, [path]

    def vanishing_once(p, *args, **kwargs):
        if p in gone:
            gone.remove(p)
            raise FileNotFoundError(p)
        return read(p, *args, **kwargs)

    monkeypatch.setattr(layout.storage, "read_bytes", vanishing_once)
    assert tables.read_table(layout, EVAL)["task_id"].tolist() == ["t0", "t0", "t1", "t1"]
    assert gone == []


def test_a_fragment_gone_between_the_listing_and_its_read_is_listed_again_not_left_out(layout, monkeypatch):
    """A fragment listed but gone when read, and not in the manifest read after the listing, was moved into a
    part by a compaction in between: the read lists again (and finds its rows) instead of leaving them out."""
    for task_id, loss in (("t0", 0.0), ("t1", 1.0)):
        tables.write_fragment(layout, EVAL, task_id, _evaluations(loss))
    _read_after_it_vanished_once(layout, monkeypatch, layout.fragment(EVAL, "t1"))


def test_a_read_of_all_columns_but_one_gives_exactly_those_columns(layout):
    """`columns` naming every column of a table but one (and `task_id`): the read has exactly those columns,
    from fragments and parts alike."""
    names = schemas.SCHEMAS[EVAL].names
    wanted = [n for n in names if n != "loss"]
    tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))
    compact.compact_table(layout, EVAL)
    tables.write_fragment(layout, EVAL, "t1", _evaluations(1.0))
    df = tables.read_table(layout, EVAL, columns=wanted)
    assert list(df.columns) == wanted and df["task_id"].tolist() == ["t0", "t0", "t1", "t1"]


def test_a_part_no_manifest_names_is_deleted_so_a_glob_counts_each_row_once(layout):
    """A part file the manifest does not name (a compaction killed between writing its part and its manifest,
    or a copy) holds rows that also count elsewhere: the next compaction deletes it, so that
    `results/<table>/*.parquet` counts every task's rows once."""
    import glob

    import pyarrow.dataset as ds

    for task_id, loss in (("t0", 0.0), ("t1", 1.0)):
        tables.write_fragment(layout, EVAL, task_id, _evaluations(loss))
    compact.compact_table(layout, EVAL)
    (part,) = glob.glob(os.path.join(layout.table_dir(EVAL), "part-*.parquet"))
    orphan = layout.compacted_file(EVAL, "orphan")
    layout.storage.write_bytes(orphan, open(part, "rb").read())
    assert len(tables.read_table(layout, EVAL)) == 4                  # readers follow the manifest
    compact.compact_table(layout, EVAL)
    assert not layout.storage.exists(orphan)
    files = glob.glob(os.path.join(layout.table_dir(EVAL), "*.parquet"))
    assert ds.dataset(files, format="parquet").count_rows() == 4


def test_two_files_of_two_schema_versions_are_enough_to_be_absorbed_into_one_schema(layout):
    """A table of just two files, written under two schema versions (an older version's fragment and a newer
    run's), is absorbed into one part of the current schema however few new fragments there are: a glob over
    the directory meets one schema."""
    import glob

    import pyarrow.parquet as pq

    with pytest.MonkeyPatch.context() as old:
        old.setattr(tables, "SCHEMA_VERSION", str(int(schemas.SCHEMA_VERSION) - 1))
        tables.write_fragment(layout, EVAL, "t0", _evaluations(0.0))
    os.utime(layout.fragment(EVAL, "t0"), ns=(10**18, 10**18))          # the older file, by its time too
    tables.write_fragment(layout, EVAL, "t1", _evaluations(1.0))
    os.utime(layout.fragment(EVAL, "t1"), ns=(2 * 10**18, 2 * 10**18))
    compact.compact_table(layout, EVAL, min_fragments=100)
    files = glob.glob(os.path.join(layout.table_dir(EVAL), "*.parquet"))
    assert {pq.read_metadata(f).metadata[schemas.SCHEMA_VERSION_KEY] for f in files} == {schemas.SCHEMA_VERSION.encode()}
    assert tables.read_table(layout, EVAL)["task_id"].tolist() == ["t0", "t0", "t1", "t1"]


def test_a_lost_part_is_told_even_when_nothing_else_changed(layout):
    """A compacted part gone with no fragment left to restore its rows: the repair drops it from the manifest,
    counts the table as changed (the run verifies again) and says which tasks' rows are lost."""
    for task_id, loss in (("t0", 0.0), ("t1", 1.0)):
        tables.write_fragment(layout, EVAL, task_id, _evaluations(loss))
    compact.compact_table(layout, EVAL)
    (part,) = manifest.read_manifest(layout, EVAL).parts
    layout.storage.delete(layout.compacted_file(EVAL, part))
    said = []
    done = compact.repair(layout, said.append)
    assert done[EVAL].lost == ["t0", "t1"] and done[EVAL].changed
    assert any("those of 2 are lost" in line for line in said), said


def test_a_part_gone_between_the_listing_and_its_read_is_listed_again_not_left_out(layout, monkeypatch):
    """A part the manifest names but that is gone when read (a compaction replaced it since the listing): the
    read lists again and takes its rows, instead of reading them as lost."""
    for task_id, loss in (("t0", 0.0), ("t1", 1.0)):
        tables.write_fragment(layout, EVAL, task_id, _evaluations(loss))
    compact.compact_table(layout, EVAL)
    (part,) = manifest.read_manifest(layout, EVAL).parts
    _read_after_it_vanished_once(layout, monkeypatch, layout.compacted_file(EVAL, part))


def test_a_read_takes_back_the_rows_of_a_part_whose_sha256_differs_where_they_reserialise(layout):
    """A part whose bytes no longer have the sha256 its manifest records (here: the record changed) is not
    trusted, but a read still gives the rows of every task that re-serialise to exactly their fragment."""
    for task_id, loss in (("t0", 0.0), ("t1", 1.0)):
        tables.write_fragment(layout, EVAL, task_id, _evaluations(loss))
    compact.compact_table(layout, EVAL)
    held = manifest.read_manifest(layout, EVAL)
    (name, info), = held.parts.items()
    held.parts[name] = manifest.PartInfo(name, "0" * 64, info.rows, info.size)
    layout.storage.write_bytes(layout.manifest_file(EVAL), manifest.manifest_bytes(held))
    manifest.forget_cached(layout)
    df = tables.read_table(layout, EVAL)
    assert df["task_id"].tolist() == ["t0", "t0", "t1", "t1"] and df["loss"].tolist() == [0.0, 1.0, 1.0, 2.0]


def damage_row_group(monkeypatch, damaged: int) -> None:
    """Every Parquet file read from here on fails to read its row group `damaged` (a corrupt page)."""
    import pyarrow.parquet as pq

    read_group = pq.ParquetFile.read_row_group

    def read(self, i, *args, **kwargs):
        if i == damaged:
            raise OSError("corrupt row group")
        return read_group(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read)


def test_salvage_reads_only_the_row_groups_that_hold_a_tasks_rows(layout, monkeypatch):
    """A task whose rows start exactly where a row group starts needs that group and no other: a damaged group
    just before it does not cost it its rows (nor its recomputation)."""
    import pyarrow.parquet as pq

    monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 1)                  # a row group per task
    for task_id, loss in (("t0", 0.0), ("t1", 1.0)):
        tables.write_fragment(layout, EVAL, task_id, _evaluations(loss))
    compact.compact_table(layout, EVAL)
    held = manifest.read_manifest(layout, EVAL)
    (name,) = held.parts
    data = layout.storage.read_bytes(layout.compacted_file(EVAL, name))
    assert pq.ParquetFile(pa.BufferReader(data)).metadata.num_row_groups == 2
    damage_row_group(monkeypatch, 0)
    restored = tables.salvage_part(EVAL, data, held.entries_of(name))
    assert sorted(restored) == ["t1"] and restored["t1"].column("loss").to_pylist() == [1.0, 2.0]


def test_salvage_restores_a_task_whose_rows_span_row_groups_and_is_not_stopped_by_the_group_after_it(
        layout, monkeypatch):
    """Rows cut across row groups come back whole, pieced from each group; and a damaged group that starts
    exactly where a task's rows end costs that task nothing (it is not one of its groups)."""
    import pyarrow.parquet as pq

    for task_id, loss in (("t0", 0.0), ("t1", 1.0), ("t2", 2.0)):
        tables.write_fragment(layout, EVAL, task_id, _evaluations(loss))
    compact.compact_table(layout, EVAL)
    held = manifest.read_manifest(layout, EVAL)
    (name,) = held.parts
    part = pq.read_table(pa.BufferReader(layout.storage.read_bytes(layout.compacted_file(EVAL, name))))
    rows = {t: e.rows for t, e in held.entries_of(name)}
    assert set(rows.values()) == {2}

    def rewritten(group_rows: int) -> bytes:
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink, row_group_size=group_rows)
        return sink.getvalue().to_pybytes()

    across = rewritten(3)                              # groups of rows 0-2 and 3-5: t1's rows 2-3 in both
    restored = tables.salvage_part(EVAL, across, held.entries_of(name))
    assert sorted(restored) == ["t0", "t1", "t2"] and restored["t1"].column("loss").to_pylist() == [1.0, 2.0]
    aligned = rewritten(2)                             # a group per task: t1's group starts where t0's rows end
    damage_row_group(monkeypatch, 1)
    assert sorted(tables.salvage_part(EVAL, aligned, held.entries_of(name))) == ["t0", "t2"]
