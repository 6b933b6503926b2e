"""The marker index: what a run found in the `done.json` of the tasks it finished, so that `status` need not
read them again (`outputs.index_markers` writes it, `outputs.verify_many` uses it).

`status` verifies every planned task's marker. At 10^5 tasks, reading and parsing 10^5 small files is
most of its time, and right after a run most of them are no longer in the page cache (on the 2-vCPU VM,
6-7 s). A run therefore writes, with every bundle it compacts and at its end, one index file
`results/_markers/index-<time>-<id>.parquet` (local storage only) with a row per task it finished: the
marker's kind and task id, its stamp when it was read (size, mtime_ns, ctime_ns, inode: any write,
rename over it, `touch` or copy changes one of them) and what verification needs of it (the files it
lists, their sha256 and sizes), and for each listed file outside `results/` (a checkpoint: at paper
scale ~250 files of ~40 MB that `status` hashed on every call) the stamp at which the run hashed it and
found the marker's sha256. Only markers that passed the checks a marker is read with are indexed. An
entry counts only while the marker's stamp is still the one recorded, and a file's stamp only while the
file's is; otherwise, and for anything the index does not hold, the marker is read and the file hashed
as before. The index is a cache: an index file that does not read is skipped (the markers are read), and
deleting `results/_markers/` loses nothing. Only the tasks a run finishes are indexed: the tasks of a sweep
finished before this index existed are read by `status` until they run again.

Files accumulate, one per bundle; the end of a run merges them into one when there are more than
`MERGE_FROM` (the newest entry of each task kept). This module is the format alone: reading and writing
the files; which markers may enter and what an entry proves is `outputs`'.
"""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.messages import logger

_LOG = logger(__name__)

INDEX_VERSION = b"1"
MERGE_FROM = 16              # index files: merged into one at the end of a run when there are more
_PREFIX, _SUFFIX = "index-", ".parquet"

SCHEMA = pa.schema([
    ("task_id", pa.string()), ("kind", pa.string()),
    ("size", pa.int64()), ("mtime_ns", pa.int64()), ("ctime_ns", pa.int64()), ("inode", pa.uint64()),
    ("names", pa.list_(pa.string())), ("sha256", pa.list_(pa.string())), ("sizes", pa.list_(pa.int64())),
    ("stamps", pa.list_(pa.list_(pa.int64()))),       # per listed file: the stamp it was hashed at, or null
], metadata={b"mmc_sweep.marker_index": INDEX_VERSION})


class Entry(NamedTuple):
    """One indexed marker: its kind, stamp (`stamp_of`), the files it lists {name: sha256} with their
    sizes {name: size} (a size the marker did not record is left out), and {name: stamp} of the listed
    files the run hashed and found as listed."""

    kind: str
    stamp: tuple[int, int, int, int]
    files: dict[str, str]
    sizes: dict[str, int]
    hashed: dict[str, tuple[int, int, int, int]] = {}


def stamp_of(info: os.stat_result) -> tuple[int, int, int, int]:
    """(size, mtime_ns, ctime_ns, inode) of a file: what an entry is checked against."""
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def write_index(layout, entries: Iterable[tuple[str, Entry]]) -> str | None:
    """One new index file of (task_id, Entry); its path (None: no entries, nothing written)."""
    entries = list(entries)
    if not entries:
        return None
    data = _index_bytes(entries)
    now = time.time_ns()        # the name orders the files: to the nanosecond (fixed width), then at random
    name = (f"{_PREFIX}{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now // 10**9))}.{now % 10**9:09d}-"
            f"{uuid.uuid4().hex[:12]}{_SUFFIX}")
    path = layout.marker_index_file(name)
    layout.storage.makedirs(layout.marker_index_dir())
    layout.storage.write_bytes(path, data)
    return path


def read_index(layout) -> dict[str, tuple]:
    """Every entry of every index file as a row (`entry_of` makes the Entry, when it is needed), a newer
    file's entry of a task winning (files are named by the time they were written); {} when there is no
    index. A file that does not read is skipped."""
    out: dict[str, tuple] = {}
    for path in index_files(layout):
        try:
            out.update(_parse(layout.storage.read_bytes(path)))
        except Exception as exc:  # noqa: BLE001 - a cache: its markers are read instead
            _LOG.debug(f"skipping the marker index {path} ({type(exc).__name__}: {exc})")
    return out


def index_files(layout) -> list[str]:
    """The index files, oldest first; [] where there are none or the directory cannot be listed."""
    directory = layout.marker_index_dir()
    try:
        names = layout.storage.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        _LOG.debug(f"cannot list the marker index {directory} ({exc})")
        return []
    return [layout.storage.join(directory, n) for n in sorted(names) if n.startswith(_PREFIX) and n.endswith(_SUFFIX)]


def merge_index(layout) -> int:
    """With more than `MERGE_FROM` index files: their entries written as one file (the newest entry of each
    task), then the merged files deleted; returns the files merged (0: nothing done). A crash in between
    leaves both, which read the same."""
    paths = index_files(layout)
    if len(paths) <= MERGE_FROM:
        return 0
    rows: dict[str, tuple] = {}
    for path in paths:
        try:
            rows.update(_parse(layout.storage.read_bytes(path)))
        except Exception as exc:  # noqa: BLE001 - dropped with the merge: its markers are read instead
            _LOG.debug(f"dropping the unreadable marker index {path} ({type(exc).__name__})")
    write_index(layout, ((task_id, entry_of(row)) for task_id, row in rows.items()))
    for path in paths:
        try:
            layout.storage.delete(path)
        except FileNotFoundError:
            pass
    return len(paths)


def _index_bytes(entries: list[tuple[str, Entry]]) -> bytes:
    names = [list(e.files) for _, e in entries]
    arrow = pa.table({
        "task_id": [t for t, _ in entries], "kind": [e.kind for _, e in entries],
        "size": [e.stamp[0] for _, e in entries], "mtime_ns": [e.stamp[1] for _, e in entries],
        "ctime_ns": [e.stamp[2] for _, e in entries], "inode": [e.stamp[3] for _, e in entries],
        "names": names, "sha256": [list(e.files.values()) for _, e in entries],
        "sizes": [[e.sizes.get(n) for n in ns] for ns, (_, e) in zip(names, entries)],
        "stamps": [[_storable(e.hashed.get(n)) for n in ns] for ns, (_, e) in zip(names, entries)],
    }, schema=SCHEMA)
    sink = pa.BufferOutputStream()     # snappy, and dictionaries for `kind` alone: a 10^5-task index
    pq.write_table(arrow, sink, compression="snappy", use_dictionary=["kind"])   # reads in 0.04 s (zstd: 0.5)
    return sink.getvalue().to_pybytes()


def _storable(stamp: tuple | None) -> list[int] | None:
    """A stamp as the index holds it (int64s; an inode beyond int64 is not recorded: that file is hashed)."""
    return list(stamp) if stamp is not None and all(-2**63 <= v < 2**63 for v in stamp) else None


def _parse(data: bytes) -> dict[str, tuple]:
    """An index file's rows by task id: (kind, size, mtime_ns, ctime_ns, inode, lists, start, end), where
    the task's names, sha256s, sizes and stamps are `lists[k][start:end]` (sliced when an entry is made: the pass
    over a sweep reads every row's stamp, and makes the entries of its own tasks only); ValueError when it
    is not an index of this version."""
    arrow = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False).read(use_threads=False)
    if "stamps" not in arrow.column_names and arrow.num_columns == len(SCHEMA) - 1:   # e05cfea wrote no file
        arrow = arrow.append_column("stamps", pa.array([[None] * len(n) for n in arrow.column("names").to_pylist()],
                                                        SCHEMA.field("stamps").type))   # stamps: none hashed
    if (arrow.schema.metadata or {}).get(b"mmc_sweep.marker_index") != INDEX_VERSION or \
            not arrow.schema.remove_metadata().equals(SCHEMA.remove_metadata()):
        raise ValueError("not a marker index of this version")
    if any(arrow.column(n).null_count for n in SCHEMA.names):
        raise ValueError("an entry with a missing value")
    lists = [arrow.column(n).combine_chunks() for n in ("names", "sha256", "sizes", "stamps")]
    offsets = [array.offsets.to_pylist() for array in lists]
    if not offsets[0] == offsets[1] == offsets[2] == offsets[3]:
        raise ValueError("entries whose names, sha256s, sizes and stamps do not pair up")
    flat = tuple(array.flatten().to_pylist() for array in lists)
    columns = [arrow.column(n).to_pylist() for n in SCHEMA.names[:6]]
    return dict(zip(columns[0], zip(*columns[1:], (flat,) * len(columns[0]), offsets[0], offsets[0][1:])))


def stamp_in(row: tuple) -> tuple[int, int, int, int]:
    """The marker stamp a row of `read_index` recorded."""
    return row[1:5]


def entry_of(row: tuple) -> Entry:
    """The Entry of a row of `read_index`; ValueError when it lists a name twice or a missing one."""
    kind, size, mtime, ctime, inode, (names, digests, sizes, stamps), start, end = row
    names, digests, sizes, stamps = names[start:end], digests[start:end], sizes[start:end], stamps[start:end]
    if None in names or None in digests or len(set(names)) != len(names) or \
            any(s is not None and (len(s) != 4 or None in s) for s in stamps):
        raise ValueError("a malformed entry")
    return Entry(kind, (size, mtime, ctime, inode), dict(zip(names, digests)),
                 {n: v for n, v in zip(names, sizes) if v is not None},
                 {n: tuple(s) for n, s in zip(names, stamps) if s is not None})
