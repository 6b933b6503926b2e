"""The marker index's files: written and read back, the newest entry of a task winning, merged when there
are many, and a file that is not an index skipped (what an entry proves is `test_outputs`')."""
from __future__ import annotations

import pytest

from orchestrator.results import marker_index
from orchestrator.storage.layout import Storage, SweepLayout


@pytest.fixture()
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "store")), "indexed")


def _entry(n: int) -> marker_index.Entry:
    return marker_index.Entry("path_eval", (100 + n, 2 * 10**18 + n, 3 * 10**18 + n, 2**63 + n),
                              {f"results/paths/t{n}.parquet": f"{n:064x}", "results/barriers/x.parquet": "f" * 64},
                              {f"results/paths/t{n}.parquet": 10 * n})


def _read(layout) -> dict:
    return {t: marker_index.entry_of(row) for t, row in marker_index.read_index(layout).items()}


def test_entries_read_back_as_written_and_the_newest_wins(layout):
    assert marker_index.read_index(layout) == {} and marker_index.write_index(layout, []) is None
    marker_index.write_index(layout, [("a", _entry(1)), ("b", _entry(2))])
    marker_index.write_index(layout, [("b", _entry(3)), ("c", marker_index.Entry("align", (0, 0, 0, 0), {}, {}))])
    got = _read(layout)
    assert got == {"a": _entry(1), "b": _entry(3), "c": marker_index.Entry("align", (0, 0, 0, 0), {}, {})}
    assert marker_index.stamp_in(marker_index.read_index(layout)["a"]) == _entry(1).stamp


def test_many_files_are_merged_into_one_that_reads_the_same(layout, monkeypatch):
    monkeypatch.setattr(marker_index, "MERGE_FROM", 3)
    for n in range(3):
        marker_index.write_index(layout, [(f"t{n}", _entry(n)), ("same", _entry(10 + n))])
    assert marker_index.merge_index(layout) == 0 and len(marker_index.index_files(layout)) == 3
    marker_index.write_index(layout, [("t0", _entry(7))])
    before = _read(layout)
    assert marker_index.merge_index(layout) == 4
    assert len(marker_index.index_files(layout)) == 1 and _read(layout) == before
    assert before["same"] == _entry(12) and before["t0"] == _entry(7)


@pytest.mark.parametrize("data", [b"PAR1 not parquet", None])
def test_a_file_that_is_not_an_index_is_skipped(layout, data):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    marker_index.write_index(layout, [("a", _entry(1))])
    if data is None:                                  # a Parquet file, but not an index of this version
        sink = io.BytesIO()
        pq.write_table(pa.table({"task_id": ["b"]}), sink)
        data = sink.getvalue()
    layout.storage.write_bytes(layout.marker_index_file("index-99999999T999999.999999999-x.parquet"), data)
    assert _read(layout) == {"a": _entry(1)}


def test_an_entry_that_lists_a_name_twice_is_malformed():
    names = ["results/paths/t.parquet", "results/paths/t.parquet"]
    row = ("path_eval", 1, 2, 3, 4, (names, ["a" * 64, "b" * 64], [1, 2], [None, None]), 0, 2)
    with pytest.raises(ValueError, match="malformed"):
        marker_index.entry_of(row)
    row = ("path_eval", 1, 2, 3, 4, (names[:1], ["a" * 64], [1], [None]), 0, 1)
    assert marker_index.entry_of(row).files == {names[0]: "a" * 64}


def test_an_index_whose_names_and_sha256s_do_not_pair_up_is_skipped(layout):
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker_index.write_index(layout, [("a", _entry(1))])
    arrow = pa.table({"task_id": ["b", "c"], "kind": ["path_eval"] * 2, "size": [1, 2], "mtime_ns": [1, 2],
                      "ctime_ns": [1, 2], "inode": pa.array([1, 2], pa.uint64()),
                      "names": [["x", "y"], ["z"]], "sha256": [["1" * 64], ["2" * 64, "3" * 64]],
                      "sizes": [[1, 2], [3]], "stamps": [[None, None], [None]]}, schema=marker_index.SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    layout.storage.write_bytes(layout.marker_index_file("index-99999999T999999.999999999-x.parquet"),
                               sink.getvalue().to_pybytes())
    assert _read(layout) == {"a": _entry(1)}


def _index_file(layout, arrow, name: str = "index-99999999T999999.999999999-x.parquet") -> None:
    import pyarrow.parquet as pq
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    layout.storage.write_bytes(layout.marker_index_file(name), sink.getvalue().to_pybytes())


def _columns(**changes) -> dict:
    """One entry's columns as the index holds them (task b, one file), with `changes`."""
    import pyarrow as pa

    return {"task_id": ["b"], "kind": ["path_eval"], "size": [1], "mtime_ns": [2], "ctime_ns": [3],
            "inode": pa.array([4], pa.uint64()), "names": [["x"]], "sha256": [["1" * 64]], "sizes": [[5]],
            "stamps": [[[6, 7, 8, 9]]], **changes}


def test_the_stamps_at_which_files_were_hashed_read_back_as_tuples_and_an_inode_beyond_int64_is_not_kept(layout):
    """`Entry.hashed` {name: stamp} round-trips as tuples; a stamp with a value beyond int64 (an inode of 2**63)
    cannot be held and is left out (that file is hashed again), one of 2**63 - 1 is kept."""
    big, top = (1, 2, 3, 2**63), (1, 2, 3, 2**63 - 1)
    entry = marker_index.Entry("path_eval", (1, 2, 3, 4), {"a": "0" * 64, "b": "1" * 64, "c": "2" * 64}, {},
                               {"a": (10, 20, 30, 40), "b": big, "c": top})
    marker_index.write_index(layout, [("t", entry)])
    assert _read(layout)["t"].hashed == {"a": (10, 20, 30, 40), "c": top}


def test_an_index_written_before_stamps_existed_reads_with_no_file_hashed(layout):
    """An index of the schema without `stamps` (written by e05cfea) is read: its entries, none hashed."""
    import pyarrow as pa

    columns = _columns()
    del columns["stamps"]
    arrow = pa.table(columns, schema=marker_index.SCHEMA.remove(marker_index.SCHEMA.get_field_index("stamps")))
    _index_file(layout, arrow)
    assert _read(layout) == {"b": marker_index.Entry("path_eval", (1, 2, 3, 4), {"x": "1" * 64}, {"x": 5}, {})}


@pytest.mark.parametrize("case", ["other version", "no version", "null kind", "stamps off", "sizes off"])
def test_an_index_of_another_version_or_with_a_missing_or_unpaired_value_is_skipped(layout, case):
    """Only an index of this version (its metadata says so) whose every value is there and whose per-file
    lists (names, sha256s, sizes, stamps) pair up is read; any other is skipped (its markers are read)."""
    import pyarrow as pa

    marker_index.write_index(layout, [("a", _entry(1))])
    schema = marker_index.SCHEMA
    columns = _columns()
    if case == "other version":
        schema = schema.with_metadata({b"mmc_sweep.marker_index": b"2"})
    elif case == "no version":
        schema = schema.remove_metadata()
    elif case == "null kind":
        columns["kind"] = [None]
    elif case == "stamps off":
        columns["stamps"] = [[[6, 7, 8, 9], [6, 7, 8, 9]]]
    else:
        columns["sizes"] = [[5, 6]]
    _index_file(layout, pa.table(columns, schema=schema))
    assert _read(layout) == {"a": _entry(1)}


@pytest.mark.parametrize("names, digests, stamps", [
    (["x", None], ["a" * 64, "b" * 64], [None, None]),
    (["x", "y"], ["a" * 64, None], [None, None]),
    (["x", "y"], ["a" * 64, "b" * 64], [[1, 2, 3], None]),
    (["x", "y"], ["a" * 64, "b" * 64], [None, [1, 2, None, 4]]),
])
def test_an_entry_with_a_missing_name_digest_or_stamp_value_is_malformed(names, digests, stamps):
    """`entry_of`: every listed file has a name and a sha256, and a stamp is four numbers or none."""
    with pytest.raises(ValueError, match="malformed"):
        marker_index.entry_of(("path_eval", 1, 2, 3, 4, (names, digests, [1, 2], stamps), 0, 2))


def test_only_files_named_like_an_index_are_read_and_merged(layout, monkeypatch):
    """`index-*.parquet` only: a temporary file of a write under way (`index-....parquet.tmp-<id>`) or another
    Parquet file is neither read nor merged away."""
    monkeypatch.setattr(marker_index, "MERGE_FROM", 1)
    for n in range(2):
        marker_index.write_index(layout, [(f"t{n}", _entry(n))])
    others = [layout.marker_index_file(name) for name in ("index-x.parquet.tmp-0123abc", "notes.parquet")]
    for path in others:
        layout.storage.write_bytes(path, b"not yet")
    names = [p.rsplit("/", 1)[1] for p in marker_index.index_files(layout)]
    assert len(names) == 2 and all(n.startswith("index-") and n.endswith(".parquet") for n in names)
    assert marker_index.merge_index(layout) == 2
    assert all(layout.storage.read_bytes(p) == b"not yet" for p in others)


def test_a_merge_drops_an_unreadable_index_file_and_keeps_the_others_entries(layout, monkeypatch):
    monkeypatch.setattr(marker_index, "MERGE_FROM", 2)
    for n in range(2):
        marker_index.write_index(layout, [(f"t{n}", _entry(n))])
    layout.storage.write_bytes(layout.marker_index_file("index-0.parquet"), b"PAR1 torn")
    assert marker_index.merge_index(layout) == 3
    assert len(marker_index.index_files(layout)) == 1 and _read(layout) == {"t0": _entry(0), "t1": _entry(1)}


def test_a_marker_stamp_is_its_size_mtime_ctime_and_inode(tmp_path):
    import os

    path = tmp_path / "done.json"
    path.write_bytes(b"12345")
    os.utime(path, ns=(1, 2_000_000_000))
    info = os.stat(path)
    assert marker_index.stamp_of(info) == (5, 2_000_000_000, info.st_ctime_ns, info.st_ino) and info.st_ctime_ns != 2_000_000_000


def test_index_files_are_named_by_utc_time_so_that_a_daylight_saving_hour_keeps_their_order(layout, monkeypatch):
    """New York's clocks went back at 06:00 UTC on 2023-11-05: a file written at 06:15 UTC (01:15 local) must
    still sort after one written at 05:30 UTC (01:30 local), so that its entry wins."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        for seconds, kind in ((1699162200, "align"), (1699164900, "path_eval")):     # 05:30 and 06:15 UTC
            monkeypatch.setattr(marker_index.time, "time_ns", lambda s=seconds: s * 10**9)
            marker_index.write_index(layout, [("t", marker_index.Entry(kind, (1, 2, 3, 4), {}, {}))])
    finally:
        monkeypatch.undo()                 # TZ as it was, for the rest of the process
        time.tzset()
    names = [p.rsplit("/", 1)[1] for p in marker_index.index_files(layout)]
    assert [n[len("index-"):len("index-") + 15] for n in names] == ["20231105T053000", "20231105T061500"]
    assert _read(layout)["t"].kind == "path_eval"


# ----- the marker's content (orchestrator/results/marker_format.py)

def test_a_marker_holds_each_argument_under_its_name_and_its_tables_sorted():
    from orchestrator.results import marker_format

    marker = marker_format.make_marker("t1", "path_eval", {"f": "a" * 64}, {"f": 3}, ["paths", "barriers"],
                                       {"acc": 0.5}, [("acc", 0, 0.5)], {"duration_s": 2.0}, 1234.5)
    assert marker == {"version": marker_format.MARKER_VERSION, "task_id": "t1", "kind": "path_eval",
                      "files": {"f": "a" * 64}, "sizes": {"f": 3}, "tables": ["barriers", "paths"],
                      "metrics": {"acc": 0.5}, "steps": {"acc": "[0,0.5]"}, "meta": {"duration_s": 2.0},
                      "finished_at": 1234.5}


def test_values_json_cannot_hold_are_written_as_text_in_a_marker_and_its_steps():
    """marker_bytes: "values JSON cannot hold as they are written as text" (a Decimal, a date); the same in a
    step series."""
    import datetime as dt
    import decimal
    import json

    from orchestrator.results import marker_format

    when = dt.date(2024, 1, 2)
    data = marker_format.marker_bytes({"meta": {"when": when}, "steps": marker_format.encode_steps(
        [("lr", 0, decimal.Decimal("0.1"))])})
    assert json.loads(data) == {"meta": {"when": "2024-01-02"}, "steps": {"lr": '[0,"0.1"]'}}


def test_a_step_series_that_is_not_text_is_left_out():
    """A series held as a number or null instead of its JSON text does not read back: left out, the task
    stays finished (marker_steps' docstring), the other series read."""
    from orchestrator.results import marker_format

    marker = {"task_id": "t0", "steps": {"loss": 5, "lr": None, "acc": "[0,0.5]"}}
    assert marker_format.marker_steps(marker) == [["acc", 0, 0.5]]


def test_a_step_series_nested_too_deep_to_parse_is_left_out():
    """A series whose text nests deeper than the JSON reader can follow (a damaged or hostile marker) does not read
    back: left out with the others read, never an error that would make the finished task look unfinished."""
    from orchestrator.results import marker_format

    marker = {"task_id": "t0", "steps": {"loss": "[" * 100_000 + "]" * 100_000, "acc": "[0,0.5]"}}
    assert marker_format.marker_steps(marker) == [["acc", 0, 0.5]]


def test_an_entry_whose_file_lists_are_missing_is_skipped_not_read_as_a_marker_that_lists_no_file(layout):
    """An entry whose per-file lists are null (not empty lists) is a missing value: the file is skipped. Read as
    an entry listing no file, it would let `status` take the task's marker as verified without hashing any of
    the files the marker lists."""
    import pyarrow as pa

    marker_index.write_index(layout, [("a", _entry(1))])
    _index_file(layout, pa.table(_columns(names=[None], sha256=[None], sizes=[None], stamps=[None]),
                                 schema=marker_index.SCHEMA))
    assert _read(layout) == {"a": _entry(1)}


def test_an_index_file_that_cannot_be_read_at_all_is_skipped(layout):
    """An index name that cannot be read (here a directory where a file should be; likewise a file without read
    permission) is skipped like a garbled one: the index is a cache, and `status` reads the markers instead of
    failing."""
    marker_index.write_index(layout, [("a", _entry(1))])
    layout.storage.makedirs(layout.marker_index_file("index-99999999T999999.999999999-x.parquet"))
    assert _read(layout) == {"a": _entry(1)}
