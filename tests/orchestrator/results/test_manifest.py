"""The manifest's own rules, file by file: what a table's directory listing counts as a fragment, a part or
neither, where a task's rows are in a part and how many still count, and what an I/O error on a part means
(compaction as a whole: `test_compact`)."""
from __future__ import annotations

import pytest

from orchestrator.results import manifest
from orchestrator.results.manifest import Entry, Manifest, PartInfo
from orchestrator.storage.layout import Storage, SweepLayout


@pytest.fixture()
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "store")), "listed")


def test_a_table_listing_counts_fragments_and_parts_and_leaves_hidden_and_underscored_files_out(layout):
    """`results/<table>/`: `<task>.parquet` is a fragment, `part-<name>.parquet` a part, `<name>.tmp-<uuid>`
    an unfinished write, `_manifest.parquet` an earlier version's manifest; a hidden file (`._x.parquet`,
    what macOS leaves on other file systems) and any other `_...parquet` are none of them."""
    directory = layout.table_dir("paths")
    for name in ("path_eval-1.parquet", "part-a.parquet", "path_eval-2.parquet.tmp-0123", "_manifest.parquet",
                 "._path_eval-3.parquet", ".hidden.parquet", "_other.parquet", "notes.txt"):
        layout.storage.write_bytes(f"{directory}/{name}", b"x")
    listing = manifest.list_table(layout, "paths")
    assert list(listing.fragments) == ["path_eval-1"]
    assert list(listing.parts) == ["a"]
    assert listing.temporary == [f"{directory}/path_eval-2.parquet.tmp-0123"]
    assert listing.legacy_manifest


def test_a_table_listing_counts_a_hidden_temporary_file_and_one_named_as_before_as_unfinished_writes(layout):
    """Writes go to `.<name>.tmp-<uuid>` (hidden: Parquet readers of the directory skip it); sweeps of earlier
    versions may still hold `<name>.tmp-<uuid>`. Both are leftovers for compaction to delete, neither a fragment."""
    directory = layout.table_dir("paths")
    for name in ("path_eval-1.parquet", ".path_eval-2.parquet.tmp-0123", ".part-a.parquet.tmp-4567",
                 "path_eval-3.parquet.tmp-89ab"):
        layout.storage.write_bytes(f"{directory}/{name}", b"x")
    listing = manifest.list_table(layout, "paths")
    assert list(listing.fragments) == ["path_eval-1"] and not listing.parts
    assert sorted(listing.temporary) == [f"{directory}/{n}" for n in (".part-a.parquet.tmp-4567",
                                                                      ".path_eval-2.parquet.tmp-0123",
                                                                      "path_eval-3.parquet.tmp-89ab")]


def test_a_manifests_temporary_files_hidden_or_named_as_before_are_its_own(layout):
    """`temporary_manifests`: the unfinished writes of that table's manifest under either name, no other table's."""
    directory = layout.manifests_dir()
    for name in (".paths.parquet.tmp-0123", "paths.parquet.tmp-4567", ".barriers.parquet.tmp-89ab", "paths.parquet"):
        layout.storage.write_bytes(f"{directory}/{name}", b"x")
    assert sorted(manifest.temporary_manifests(layout, "paths")) == [f"{directory}/.paths.parquet.tmp-0123",
                                                                     f"{directory}/paths.parquet.tmp-4567"]


def _manifest() -> Manifest:
    parts = {"a": PartInfo("a", "0" * 64, 10, 100), "b": PartInfo("b", "1" * 64, 4, 50)}
    tasks = {"t1": Entry("a", "2" * 64, 7, 3), "t2": Entry("a", "3" * 64, 0, 5), "t3": Entry("b", "4" * 64, 0, 4),
             "t4": Entry("a", "5" * 64, 5, 0)}
    return Manifest("paths", parts, tasks)


def test_a_parts_entries_come_in_the_order_of_their_rows_not_of_their_task_ids():
    m = _manifest()
    assert [t for t, _ in m.entries_of("a")] == ["t2", "t4", "t1"]
    assert {part: [t for t, _ in entries] for part, entries in m.entries_by_part().items()} == \
        {"a": ["t2", "t4", "t1"], "b": ["t3"]}


def test_the_live_rows_of_a_part_are_the_rows_of_the_tasks_it_still_holds():
    m = _manifest()
    assert m.live_rows() == {"a": 8, "b": 4}
    del m.tasks["t3"]
    assert m.live_rows() == {"a": 8, "b": 0}


def test_a_part_that_cannot_be_read_is_unreadable_not_damaged(layout, monkeypatch):
    """An I/O error reading a part says nothing about its bytes: PART_UNREADABLE (left alone), never
    PART_DAMAGED (which compaction moves aside and recomputes from)."""
    data = b"part bytes"
    path = layout.compacted_file("paths", "a")
    layout.storage.write_bytes(path, data)
    info = PartInfo("a", manifest.sha256_hex(data), 1, len(data))
    manifest.forget_cached(layout)
    assert manifest.part_state(layout, "paths", info) == manifest.PART_OK
    manifest.forget_cached(layout)

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(layout.storage, "read_bytes", refused)
    assert manifest.part_state(layout, "paths", info) == manifest.PART_UNREADABLE
    assert manifest.part_state(layout, "paths", PartInfo("b", info.sha256, 1, len(data))) == manifest.PART_MISSING
