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
