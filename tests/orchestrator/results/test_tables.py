"""Parquet fragments: schemas (labels and settings columns in every table), atomic idempotent
writes, corrupt or foreign fragments, timestamps, closed vocabularies of columns."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from orchestrator import vocab
from orchestrator.results import schemas, tables
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.report_data import EVAL_SETS, PAIRS, synthetic_sweep, write_sweep


@pytest.fixture()
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "store")), "test-sweep")


def test_roundtrip_every_table(layout):
    sweep = synthetic_sweep()
    write_sweep(layout, sweep)
    for table, by_task in sweep.items():
        df = tables.read_table(layout, table)
        expected = [dict(r, task_id=t) for t, rows in by_task.items() for r in rows]
        assert list(df.columns) == schemas.SCHEMAS[table].names
        assert len(df) == len(expected)
        assert set(df["task_id"]) == set(by_task)
        for t in by_task:
            assert tables.verify_fragment(layout, table, t)
    paths = tables.read_table(layout, "paths")
    want = sum(r["loss"] for rows in sweep["paths"].values() for r in rows)
    assert paths["loss"].sum() == pytest.approx(want)
    assert len(paths) == 3 * len(PAIRS) * 11 * 4
    unaligned = sum(1 for pair in PAIRS if pair[2] is None)
    assert paths["alignment"].isna().sum() == 3 * unaligned * 11 * 4  # None survives as null
    one = tables.read_fragment(layout, "barriers", next(iter(sweep["barriers"])))
    assert len(one) == 4 * 2 * len(vocab.DEFINITIONS) and list(one.columns) == schemas.SCHEMAS["barriers"].names
    tasks = tables.read_table(layout, "tasks")
    assert str(tasks["started_at"].dt.tz) == "UTC"
    assert tasks.set_index("task_id").loc["finetune-naive-s1", "parents"].tolist() == ["pretrain-cue-s1"]


def test_rewrite_replaces_fragment(layout):
    rows = [{"eval_set": e, "loss": 1.0, "acc": 0.5, "n": 10} for e in EVAL_SETS]
    tables.write_fragment(layout, "evaluations", "t1", rows)
    tables.write_fragment(layout, "evaluations", "t2", rows)
    tables.write_fragment(layout, "evaluations", "t1", rows)
    assert len(tables.read_table(layout, "evaluations")) == 8
    tables.write_fragment(layout, "evaluations", "t1", [dict(r, acc=0.9) for r in rows[:2]])
    df = tables.read_table(layout, "evaluations")
    assert len(df) == 6
    assert df[df["task_id"] == "t1"]["acc"].tolist() == [0.9, 0.9]
    leftovers = [n for n in layout.storage.listdir(layout.table_dir("evaluations"))
                 if not n.rstrip("/").endswith(".parquet")]
    assert leftovers == []  # no temporary files left behind


def test_truncated_fragment_is_detected_and_skipped(layout, caplog):
    rows = [{"epoch": i, "split": "train", "loss": 1.0 / (i + 1)} for i in range(50)]
    for t in ("good", "bad"):
        tables.write_fragment(layout, "train_curves", t, rows)
    path = layout.fragment("train_curves", "bad")
    data = layout.storage.read_bytes(path)
    layout.storage.write_bytes(path, data[: len(data) // 2])
    assert tables.verify_fragment(layout, "train_curves", "good")
    assert not tables.verify_fragment(layout, "train_curves", "bad")
    assert not tables.verify_fragment(layout, "train_curves", "never-written")
    df = tables.read_table(layout, "train_curves")
    assert any(r.levelname == "WARNING" and "bad.parquet" in r.getMessage() for r in caplog.records)
    assert set(df["task_id"]) == {"good"} and len(df) == 50


def test_fragment_of_another_task_fails_verification(layout):
    tables.write_fragment(layout, "evaluations", "t1",
                         [{"eval_set": "cue", "loss": 1.0, "acc": 0.5, "n": 3}])
    layout.storage.write_bytes(layout.fragment("evaluations", "t2"),
                               layout.storage.read_bytes(layout.fragment("evaluations", "t1")))
    assert not tables.verify_fragment(layout, "evaluations", "t2")


def test_empty_table_has_schema_columns(layout):
    for table, schema in schemas.SCHEMAS.items():
        df = tables.read_table(layout, table)
        assert df.empty and list(df.columns) == schema.names


@pytest.mark.parametrize("row, column, message", [
    ({"eval_set": "cue", "loss": "high", "acc": 0.5, "n": 3}, "loss", "row 1: value 'high'"),
    ({"eval_set": "cue", "los": 1.0, "acc": 0.5, "n": 3}, "los", "did you mean `loss`"),
    ({"eval_set": "cue", "acc": 0.5, "n": 3}, "loss", "required"),
    ({"eval_set": None, "loss": 1.0, "acc": 0.5, "n": 3}, "eval_set", "required"),
    ({"eval_set": "cue", "loss": 1.0, "acc": 0.5, "n": 3, "kind": "pretrian"}, "kind", "allowed: pretrain"),
    ({"eval_set": "cue", "loss": 1.0, "acc": 0.5, "n": 3, "task_id": "other"}, "task_id", "differs"),
])
def test_schema_errors_name_the_column(layout, row, column, message):
    good = {"eval_set": "nocue", "loss": 1.0, "acc": 0.5, "n": 3}
    with pytest.raises(tables.SchemaError, match=f"`evaluations.{column}`") as info:
        tables.write_fragment(layout, "evaluations", "t1", [good, row])
    assert message in str(info.value)
    assert info.value.column == column
    assert not layout.storage.exists(layout.fragment("evaluations", "t1"))


def test_unknown_table_lists_the_tables(layout):
    with pytest.raises(ValueError, match="allowed: tasks, evaluations"):
        tables.write_fragment(layout, "evals", "t1", [])


def test_timestamps_accept_epoch_seconds_and_iso(layout):
    rows = [{"kind": "pretrain", "status": vocab.FINISHED, "started_at": 1_700_000_000.5,
             "finished_at": "2023-11-14T22:13:30+00:00"}]
    tables.write_fragment(layout, "tasks", "t1", rows)
    df = tables.read_table(layout, "tasks")
    assert df["started_at"][0] == pd.Timestamp(1_700_000_000.5, unit="s", tz="UTC")
    assert df["finished_at"][0] == pd.Timestamp("2023-11-14T22:13:30Z")


def test_every_table_carries_the_labels_and_every_settings_column():
    for table, schema in schemas.SCHEMAS.items():
        names = set(schema.names)
        assert set(schemas.SETTINGS_COLUMNS) <= names, table
        assert {"task_id", "dataset", "model", "seed", "cue_proportion", "variant"} <= names, table
    for table in (vocab.PATHS, vocab.BARRIERS):
        assert {"pair_type", "pair_design", "endpoint_a", "endpoint_b", "init_seed_a", "init_seed_b",
                "data_seed_a", "data_seed_b", "path_kind", "alignment"} <= set(schemas.SCHEMAS[table].names)
    assert set(schemas.SCHEMAS) == set(vocab.TABLES)


def test_settings_columns_keep_their_types_and_allow_groupby(layout):
    rows = [{"eval_set": "cue", "loss": 1.0, "acc": 0.5, "n": 3, "finetune.lam": lam, "pretrain.epochs": 20,
             "paths.precision": "fp32"} for lam in (1.0, 3.0)]
    tables.write_fragment(layout, "evaluations", "t1", rows)
    df = tables.read_table(layout, "evaluations")
    assert df.groupby("finetune.lam")["acc"].count().to_dict() == {1.0: 1, 3.0: 1}
    assert str(df["pretrain.epochs"].dtype) == "Int64" and df["finetune.margin"].isna().all()   # nullable ints
    with pytest.raises(tables.SchemaError, match="`evaluations.finetune.lam`"):
        tables.write_fragment(layout, "evaluations", "t2", [{**rows[0], "finetune.lam": "three"}])


@pytest.mark.parametrize("table, column, value", [
    ("tasks", "status", "done"), ("tasks", "kind", "pretrian"), ("paths", "path_kind", "cubic"),
    ("barriers", "metric", "f1"), ("barriers", "definition", "max"),
])
def test_closed_columns_take_only_the_vocabulary(layout, table, column, value):
    required = {"tasks": {"kind": "pretrain", "status": vocab.FINISHED},
                "paths": {"pair_type": "cue~nocue", "path_kind": "linear", "alpha": 0.0, "eval_set": "cue",
                          "loss": 1.0, "acc": 0.5},
                "barriers": {"pair_type": "cue~nocue", "path_kind": "linear", "eval_set": "cue", "metric": "loss",
                             "definition": "chord", "value": 0.1}}[table]
    tables.write_fragment(layout, table, "ok", [required])
    with pytest.raises(tables.SchemaError, match=f"`{table}.{column}`.*allowed"):
        tables.write_fragment(layout, table, "bad", [{**required, column: value}])


def test_63_bit_integers_survive_a_column_with_missing_values(layout):
    """`tasks.init_seed` is set for models and missing for the other kinds; read back, a seed must be
    the seed (float64 would round 7990320522671557885 to 7990320522671557632)."""
    seed = 7990320522671557885
    tables.write_fragment(layout, "tasks", "model", [{"kind": "pretrain", "status": vocab.FINISHED, "init_seed": seed}])
    tables.write_fragment(layout, "tasks", "path", [{"kind": "path_eval", "status": vocab.FINISHED}])
    df = tables.read_table(layout, "tasks").set_index("task_id")
    assert df.loc["model", "init_seed"] == seed
    assert int(df.loc["model", "init_seed"]) == seed


def test_a_projected_read_gives_the_full_reads_values(layout):
    """`columns=` (what the report reads at 10^5 tasks) and `task_ids=` give exactly the full read's
    rows and values, from compacted parts and from fragments alike (one task rerun after compaction)."""
    from orchestrator.results import compact

    sweep = synthetic_sweep()
    write_sweep(layout, sweep)
    compact.compact(layout)
    rerun = next(iter(sweep["paths"]))
    tables.write_fragment(layout, "paths", rerun, [dict(r, loss=9.0) for r in sweep["paths"][rerun][:5]])
    for table in vocab.TABLES:
        full = tables.read_table(layout, table)
        names = schemas.SCHEMAS[table].names
        for wanted in (names[1:4], [names[-1], "seed", names[5]], [c for c in names if c in schemas.SETTINGS_COLUMNS]):
            got = tables.read_table(layout, table, columns=wanted)
            assert list(got.columns) == [c for c in names if c == "task_id" or c in wanted]
            pd.testing.assert_frame_equal(got, full[list(got.columns)], obj=f"{table} {wanted}")
        some = sorted(set(full["task_id"]))[::3]
        pd.testing.assert_frame_equal(tables.read_table(layout, table, task_ids=some),
                                      full[full["task_id"].isin(some)].reset_index(drop=True))
    paths = tables.read_table(layout, "paths", columns=["loss"])
    assert (paths[paths["task_id"] == rerun]["loss"] == 9.0).all() and (paths["task_id"] == rerun).sum() == 5


def test_an_unknown_column_is_named_with_the_tables_columns(layout):
    with pytest.raises(ValueError, match=r"`columns`: 'losss' is not a column of the `paths` table; did you mean `loss`\?"):
        tables.read_table(layout, "paths", columns=["alpha", "losss"])
    empty = tables.read_table(layout, "paths", columns=["alpha"])
    assert list(empty.columns) == ["task_id", "alpha"] and empty.empty



@pytest.mark.parametrize("threaded", [False, True])
def test_interleaved_parts_read_in_task_order_with_the_schemas_types(layout, threaded, monkeypatch):
    """Parts as a run's bundles leave them (each in task-id order, their tasks interleaved), a task rerun
    after compaction and tasks not yet compacted: every table reads as its rows written one task at a
    time in task-id order (within a task, as written), the newer fragment winning, with the schema's
    Arrow types and the dtypes (`str`, `Int64`, UTC timestamps) of that reference; the same when the
    parts are decoded and the columns taken in threads (a large table's read, forced here)."""
    from orchestrator.results import compact

    monkeypatch.setattr(tables, "_REPEATED_ROWS", 7)    # a column of one string (or none) repeats a 7-row chunk
    if threaded:
        monkeypatch.setattr(tables, "_THREADED_FROM_ROWS", 0)
        monkeypatch.setattr(tables, "usable_cpus", lambda: 4)
        monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 1)      # parts of many row groups, split between threads
    in_threads, calls = tables._in_threads, []       # what went to threads: parts, columns
    monkeypatch.setattr(tables, "_in_threads", lambda f, items: calls.append(items) or in_threads(f, items))

    sweep = {table: sorted(by_task.items()) for table, by_task in synthetic_sweep().items()}
    late = {i for i in range(max(len(items) for items in sweep.values())) if i % 21 == 14}
    for k in range(3):       # three compactions, each of every third task: three interleaved parts per table
        for table, items in sweep.items():
            for i, (task_id, rows) in enumerate(items):
                if i % 3 == k and i not in late:
                    tables.write_fragment(layout, table, task_id, rows)
        compact.compact(layout)
    for table, items in sweep.items():
        assert sum(n.startswith("part-") for n in layout.storage.listdir(layout.table_dir(table))) == 3
        for i in late & set(range(len(items))):     # written after the last compaction: fragments
            tables.write_fragment(layout, table, *items[i])
        first, rows = items[0]                      # rerun after compaction: its new rows win
        items[0] = (first, [dict(r, **({"loss": 9.0} if "loss" in r else {})) for r in rows[:2]])
        tables.write_fragment(layout, table, *items[0])
    for table, items in sweep.items():
        reference = pa.concat_tables([tables.rows_to_table(table, t, rows) for t, rows in items]).to_pandas(
            types_mapper=schemas.PANDAS_TYPES.get)
        arrow = tables.read_arrow(layout, table)
        assert arrow.schema.equals(schemas.SCHEMAS[table], check_metadata=False), table
        pd.testing.assert_frame_equal(arrow.to_pandas(types_mapper=schemas.PANDAS_TYPES.get), reference, obj=table)
        got = tables.read_table(layout, table)
        pd.testing.assert_frame_equal(got, reference, obj=table)
        assert all(str(got[f.name].dtype) == "str" for f in schemas.SCHEMAS[table] if pa.types.is_string(f.type))
        some = [t for t, _ in items][1::4]
        pd.testing.assert_frame_equal(tables.read_table(layout, table, task_ids=some),
                                      reference[reference["task_id"].isin(some)].reset_index(drop=True))
        shared = [name for name in arrow.column_names if arrow.column(name).num_chunks > 2
                  and len({c.buffers()[-1].address if c.buffers()[-1] is not None else None
                           for c in arrow.column(name).chunks}) == 1]
        assert shared, f"{table}: no column of one value was read as one repeated chunk"
    columns_in_threads = [items for items in calls if items and isinstance(items[0], pa.Field)]
    assert bool(columns_in_threads) == threaded                  # a small table's columns: on this thread
    split_parts = [items for items in calls if items and isinstance(items[0], tuple) and len(items) > 3]
    assert bool(split_parts) == threaded                         # more column shares than parts


@pytest.mark.parametrize("threaded", [False, True])
def test_one_part_is_read_as_it_is_stored(layout, threaded, monkeypatch):
    """A table compacted into one part (`one_part`: what a finished run leaves) reads as its rows written one
    task at a time in task-id order, without sorting or taking a row, with each number column one block
    that the frame takes over without a copy; the same when its columns are decoded in threads."""
    from orchestrator.results import compact

    if threaded:
        monkeypatch.setattr(tables, "_THREADED_FROM_ROWS", 0)
        monkeypatch.setattr(tables, "usable_cpus", lambda: 4)
        monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 1)      # a part of many row groups
    sweep = {table: sorted(by_task.items()) for table, by_task in synthetic_sweep().items()}
    for k in range(3):                                          # three interleaved parts per table, merged
        for table, items in sweep.items():
            for task_id, rows in items[k::3]:
                tables.write_fragment(layout, table, task_id, rows)
        compact.compact(layout, one_part=k == 2)
    sorts, blocks = [], []
    monkeypatch.setattr(tables.pc, "sort_indices", lambda *a, **k: sorts.append(a) or pytest.fail("sorted"))
    values, owned = tables._pandas_values, tables._own_values
    number = (pa.int64(), pa.float64())
    monkeypatch.setattr(tables, "_pandas_values", lambda column: blocks.append((column.type, column.num_chunks, (
        owned(column.chunk(0)) is not None if column.type in number and column.num_chunks else None))) or values(column))
    for table, items in sweep.items():
        assert [n for n in layout.storage.listdir(layout.table_dir(table)) if n.startswith("part-")] != []
        assert compact.files_per_table(layout)[table] == 1
        reference = pa.concat_tables([tables.rows_to_table(table, t, rows) for t, rows in items]).to_pandas(
            types_mapper=schemas.PANDAS_TYPES.get)
        pd.testing.assert_frame_equal(tables.read_arrow(layout, table).to_pandas(types_mapper=schemas.PANDAS_TYPES.get),
                                      reference, obj=table)
        blocks.clear()
        pd.testing.assert_frame_equal(tables.read_table(layout, table), reference, obj=table)
        numbers = [(kind, chunks, own) for kind, chunks, own in blocks if kind in number]
        assert numbers and all((chunks, own) == (1, True) for _, chunks, own in numbers), (table, numbers)  # no copy
    assert not sorts


def test_a_frame_is_to_pandas_with_writable_columns_of_its_own():
    """`read_table`'s frame (`tables._frame`) is what `to_pandas(types_mapper=PANDAS_TYPES.get)` gives
    (dtypes and values: nulls, NaN, -0.0, 63-bit ints, strings, timestamps, lists, several chunks, no
    rows), and every column can be written to without changing another."""
    import numpy as np

    ints = pa.chunked_array([pa.array([1, None, 2**62 + 1]), pa.array([4])])
    table = pa.table({
        "i": pa.chunked_array([pa.array([7, 8, 2**62 + 3, 9], pa.int64())]),
        "i_nulls": ints,
        "f": pa.array([0.0, -0.0, float("nan"), 1.5]),
        "f_nulls": pa.chunked_array([pa.array([None, 2.0]), pa.array([float("nan"), None])]),
        "s": pa.array(["a", None, "c", "d"], pa.large_string()),
        "t": pa.array([0, 1, None, 3], pa.timestamp("us", tz="UTC")),
        "b": pa.array([True, False, None, True]),
        "l": pa.array([["x"], [], None, ["y", "z"]], pa.list_(pa.string())),
        "ro": pa.Array.from_buffers(pa.float64(), 4, [None, pa.py_buffer(np.arange(4.0).tobytes())]),  # read-only
        "ro_nulls": pa.Array.from_buffers(pa.int64(), 4, [pa.py_buffer(bytes([0b1011])),
                                                          pa.py_buffer(np.arange(4).tobytes())]),
        "all_nulls": pa.nulls(4, pa.int64()),
    })
    for arrow in (table, table.slice(1, 2), table.slice(0, 0)):
        reference = arrow.to_pandas(types_mapper=schemas.PANDAS_TYPES.get)
        got = tables._frame(arrow.column_names, list(arrow.columns))
        pd.testing.assert_frame_equal(got, reference)
        assert list(np.signbit(got["f"])) == list(np.signbit(reference["f"]))
    got = tables._frame(table.column_names, list(table.columns))
    before = got.copy()
    for column in ("i", "i_nulls", "f", "f_nulls", "ro", "ro_nulls", "all_nulls"):
        got.loc[0, column] = 5
        assert got.loc[0, column] == 5
        others = [c for c in got.columns if c != column]
        pd.testing.assert_frame_equal(got[others], before[others])
        before = got.copy()


def test_columns_of_one_value_are_told_apart_bit_for_bit():
    """A column is left in place (not reordered) only when every value is the same bit for bit and none is
    null: -0.0 among 0.0, a NaN among numbers, a null, a second dictionary value each make it a column
    to reorder."""
    zeros = pa.chunked_array([pa.array([0.0, 0.0]), pa.array([0.0])])
    assert tables._constant(zeros)
    assert tables._constant(pa.chunked_array([pa.array([3, 3]), pa.array([3])]))
    assert tables._constant(pa.chunked_array([pa.array(["a", "a"]).dictionary_encode(), pa.array(["a"]).dictionary_encode()]))
    for varied in ([0.0, -0.0], [1.0, float("nan")], [1.0, None], [2**62, 2**62 + 1]):
        assert not tables._constant(pa.chunked_array([pa.array(varied)])), varied
    assert not tables._constant(pa.chunked_array([pa.array(["a"]).dictionary_encode(), pa.array(["b"]).dictionary_encode()]))
    assert not tables._constant(pa.chunked_array([pa.array(["a", None]).dictionary_encode()]))
    assert not tables._constant(pa.chunked_array([], pa.float64()))


def test_interleaved_parts_keep_a_near_constant_columns_rows_in_place(layout):
    """Read from interleaved parts, a column that is one value but for a -0.0 and a NaN in one task each
    comes back in task order, bit for bit (pandas' equality would let -0.0 pass for 0.0)."""
    import numpy as np

    from orchestrator.results import compact

    items = sorted(synthetic_sweep()["paths"].items())[:12]
    odd = {items[4][0]: -0.0, items[7][0]: float("nan")}
    items = [(t, [dict(r, loss=odd.get(t, 0.0)) for r in rows]) for t, rows in items]
    for k in range(3):
        for i, (task_id, rows) in enumerate(items):
            if i % 3 == k:
                tables.write_fragment(layout, "paths", task_id, rows)
        compact.compact(layout, ["paths"])
    reference = pa.concat_tables([tables.rows_to_table("paths", t, rows) for t, rows in items]).to_pandas(
        types_mapper=schemas.PANDAS_TYPES.get)
    got = tables.read_table(layout, "paths")
    pd.testing.assert_frame_equal(got, reference)
    assert list(np.signbit(got["loss"])) == list(np.signbit(reference["loss"]))
    assert list(np.isnan(got["loss"])) == list(np.isnan(reference["loss"]))


@pytest.mark.parametrize("was_on", [True, False])
def test_a_read_pauses_the_cycle_collector_and_leaves_it_as_it_was(layout, monkeypatch, was_on):
    """The collector is off while a table is read (a full collection per 10^5 objects the manifest makes
    cost ~0.2 s at 10^5 tasks) and as it was afterwards, also when the read fails."""
    import gc

    write_sweep(layout, synthetic_sweep())
    seen = []
    read_once = tables._read_once
    monkeypatch.setattr(tables, "_read_once", lambda *a, **k: seen.append(gc.isenabled()) or read_once(*a, **k))
    (gc.enable if was_on else gc.disable)()
    try:
        assert len(tables.read_table(layout, "paths")) and seen == [False]
        assert gc.isenabled() == was_on
        monkeypatch.setattr(tables, "_read_once", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            tables.read_table(layout, "paths")
        assert gc.isenabled() == was_on
    finally:
        gc.enable()


def _evaluations(loss: float = 1.0) -> list[dict]:
    return [{"eval_set": e, "loss": loss + i, "acc": 0.5, "n": 10, "kind": "finetune"} for i, e in enumerate(EVAL_SETS)]


def test_a_fragment_holding_another_tasks_rows_besides_its_own_is_refused(layout):
    """A fragment is the rows of the one task it is named after: one that also holds rows of another task
    does not parse as that task's, does not verify, and is not read as its rows."""
    rows = [dict(r, task_id="t1") for r in _evaluations()] + [dict(r, task_id="t2") for r in _evaluations()]
    data = tables.fragment_bytes("evaluations", tables.rows_of_tasks_to_table("evaluations", rows))
    with pytest.raises(ValueError, match="2 task id"):
        tables.parse_fragment("evaluations", data, "t1")
    layout.storage.write_bytes(layout.fragment("evaluations", "t1"), data)
    assert not tables.verify_fragment(layout, "evaluations", "t1")
    with pytest.raises(ValueError):
        tables.read_fragment(layout, "evaluations", "t1")


def test_a_fragment_missing_a_required_column_does_not_parse():
    """Missing nullable columns read as null; a missing required one is an error, never a column of nulls."""
    rows = tables.rows_to_table("evaluations", "t1", _evaluations())
    data = tables.fragment_bytes("evaluations", rows.drop_columns(["variant"]))
    assert tables.parse_fragment("evaluations", data, "t1")["variant"].null_count == len(EVAL_SETS)
    with pytest.raises(ValueError, match="required column `loss`"):
        tables.parse_fragment("evaluations", tables.fragment_bytes("evaluations", rows.drop_columns(["loss"])), "t1")


def test_row_indices_of_spans_are_each_spans_rows_in_order():
    assert tables.row_indices([(0, 2), (5, 1), (7, 3)]).to_pylist() == [0, 1, 5, 7, 8, 9]
    assert tables.row_indices([(4, 2), (1, 2)]).to_pylist() == [4, 5, 1, 2]
    assert tables.row_indices([(3, 1)]).to_pylist() == [3]


def test_a_compacted_tasks_rows_are_read_from_a_part_of_many_row_groups(layout, monkeypatch):
    """`read_fragment` of a compacted task reads the row groups that hold its rows and gives exactly its rows."""
    from orchestrator.results import compact

    monkeypatch.setattr(compact, "ROW_GROUP_BYTES", 1)           # a row group per task
    written = {f"t{i}": _evaluations(loss=10.0 * i) for i in range(4)}
    for task_id, rows in written.items():
        tables.write_fragment(layout, "evaluations", task_id, rows)
    compact.compact(layout, ["evaluations"])
    assert not layout.storage.exists(layout.fragment("evaluations", "t2"))
    for task_id, rows in written.items():
        df = tables.read_fragment(layout, "evaluations", task_id)
        assert df["task_id"].tolist() == [task_id] * len(rows)
        assert df["loss"].tolist() == [r["loss"] for r in rows]
        assert df["eval_set"].tolist() == [r["eval_set"] for r in rows]


def test_a_compacted_tasks_rows_that_are_not_where_its_manifest_says_are_refused(layout):
    """The rows a manifest points at must be the task's own, every one of them: an entry one row off (its span
    takes a row of the next task) is an error, never rows of two tasks read as one task's."""
    import dataclasses

    from orchestrator.results import compact, manifest

    for task_id in ("t1", "t2"):
        tables.write_fragment(layout, "evaluations", task_id, _evaluations())
    compact.compact(layout, ["evaluations"])
    stored = manifest.read_manifest(layout, "evaluations")
    entry = stored.tasks["t1"]
    assert entry.offset == 0 and stored.tasks["t2"].offset == entry.rows
    stored.tasks["t1"] = dataclasses.replace(entry, offset=1)
    layout.storage.write_bytes(manifest.stored_manifest_path(layout, "evaluations"), manifest.manifest_bytes(stored))
    manifest.forget_cached(layout)
    with pytest.raises(ValueError, match="not where its manifest says"):
        tables.read_fragment(layout, "evaluations", "t1")
    assert tables.read_fragment(layout, "evaluations", "t2")["task_id"].tolist() == ["t2"] * len(EVAL_SETS)


def test_a_column_of_one_value_keeps_every_row_beyond_one_shared_block(layout, monkeypatch):
    """A part's string column of one value (or none) is read as repeated blocks: every row is still there."""
    from orchestrator.results import compact

    monkeypatch.setattr(tables, "_REPEATED_ROWS", 5)
    for i in range(3):
        tables.write_fragment(layout, "evaluations", f"t{i}", _evaluations())
    compact.compact(layout, ["evaluations"], one_part=True)
    df = tables.read_table(layout, "evaluations")
    assert len(df) == 3 * len(EVAL_SETS)
    assert df["kind"].tolist() == ["finetune"] * len(df) and df["variant"].isna().all()
    assert df["task_id"].tolist() == [f"t{i}" for i in range(3) for _ in EVAL_SETS]


def test_an_aware_timestamp_keeps_its_instant(layout):
    """Naive datetimes are UTC; an aware one in another zone is the same instant, not its wall clock in UTC."""
    import datetime as dt

    started = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    rows = [{"kind": "pretrain", "status": vocab.FINISHED, "started_at": started,
             "finished_at": dt.datetime(2024, 5, 1, 12, 0)}]
    tables.write_fragment(layout, "tasks", "t1", rows)
    df = tables.read_table(layout, "tasks")
    assert df["started_at"][0] == pd.Timestamp("2024-05-01T10:00:00Z")
    assert df["finished_at"][0] == pd.Timestamp("2024-05-01T12:00:00Z")


def test_salvage_takes_back_only_the_rows_that_reserialise_to_their_fragment(layout):
    """From a damaged part, a task's rows are restored only where they give exactly its fragment's sha256."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from orchestrator.results import compact, manifest

    for i in range(3):
        tables.write_fragment(layout, "evaluations", f"t{i}", _evaluations(loss=10.0 * i))
    compact.compact(layout, ["evaluations"])
    found = manifest.read_manifest(layout, "evaluations")
    (name,) = found.parts
    part = pq.read_table(layout.compacted_file("evaluations", name))
    is_t1 = pc.equal(part.column("task_id"), "t1")
    loss = pc.if_else(is_t1, pc.add(part.column("loss"), 0.5), part.column("loss"))
    damaged = part.set_column(part.schema.get_field_index("loss"), "loss", loss)
    sink = pa.BufferOutputStream()
    pq.write_table(damaged, sink)
    restored = tables.salvage_part("evaluations", sink.getvalue().to_pybytes(), found.entries_of(name))
    assert sorted(restored) == ["t0", "t2"]
    assert restored["t2"].column("loss").to_pylist() == [r["loss"] for r in _evaluations(loss=20.0)]


def test_a_read_of_some_tasks_gives_their_rows_only(layout):
    for i in range(4):
        tables.write_fragment(layout, "evaluations", f"t{i}", _evaluations())
    df = tables.read_table(layout, "evaluations", task_ids=["t1", "t3"])
    assert df["task_id"].tolist() == ["t1"] * len(EVAL_SETS) + ["t3"] * len(EVAL_SETS)
    assert tables.read_arrow(layout, "evaluations", task_ids=["t2"]).num_rows == len(EVAL_SETS)
    # a file named after t1 that holds t2's rows: chosen by the rows' own task ids, as a full read labels them
    layout.storage.write_bytes(layout.fragment("evaluations", "t1"),
                               layout.storage.read_bytes(layout.fragment("evaluations", "t2")))
    assert tables.read_table(layout, "evaluations", task_ids=["t1", "t3"])["task_id"].tolist() == ["t3"] * len(EVAL_SETS)


@pytest.mark.parametrize("column", ["eval_set", "loss", "acc", "n"])
def test_an_evaluation_without_a_measured_value_is_refused(layout, column):
    """An evaluation row holds what was measured: its set, loss, accuracy and number of examples."""
    row = {"eval_set": "cue", "loss": 1.0, "acc": 0.5, "n": 3}
    with pytest.raises(tables.SchemaError, match=f"`evaluations.{column}`: required"):
        tables.write_fragment(layout, "evaluations", "t1", [{k: v for k, v in row.items() if k != column}])


def test_fragments_alone_are_read_in_task_id_order(layout):
    """Rows are ordered by task id, whatever order the fragments were written in."""
    for task_id in ("t3", "t1", "t4", "t0", "t2"):
        tables.write_fragment(layout, "evaluations", task_id, _evaluations())
    assert tables.read_table(layout, "evaluations")["task_id"].tolist() == \
        [f"t{i}" for i in range(5) for _ in EVAL_SETS]
