"""Compaction: a sweep's per-task result fragments merged into a few part files per table.

Every task writes one small Parquet fragment per table (`orchestrator.results.tables`); at 10^5 tasks that
is ~5x10^5 files, minutes to read locally and one request per file on an object store. At the end
of a run (finished or interrupted) and with `mmc-sweep compact DIR`, each table's fragments are
streamed, in task-id order, into one new part file `results/<table>/part-<name>.parquet` (row groups
of ~`ROW_GROUP_BYTES`), and the table's manifest `results/<table>/_manifest.parquet` records where
each task's rows are and the sha256 of the fragment they came from. Then the fragments are deleted.

Crash safety, step by step (every file is written to a temporary name and moved into place):
1. the part is written: until the manifest names it, readers ignore it (an orphan, deleted by the
   next compaction) and still read the fragments;
2. the manifest is replaced: from now on readers take those tasks' rows from the part, and ignore
   fragments whose sha256 the manifest records (absorbed; only their deletion is pending);
3. absorbed fragments are deleted, and merged or orphaned parts after them.
A crash between any two steps loses and duplicates nothing, and rerunning compaction finishes the
job. A fragment that differs from its absorbed version (the task ran again after compaction) is
newer: it wins over the part's rows and is absorbed into the next part. When a table would have more
than `MAX_PARTS` parts, or a part holds mostly rows that no longer count, those parts are merged
into the new one. Compaction must hold the sweep's lock (`orchestrator.storage.lock`): the driver compacts
inside its run, `mmc-sweep compact` takes the lock itself.
"""
from __future__ import annotations

import hashlib
import heapq
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from orchestrator import vocab
from orchestrator.results import tables
from orchestrator.errors import SweepError
from orchestrator.storage.layout import SweepLayout
from orchestrator.uris import redact
from orchestrator.results.manifest import Entry, FileStamp, Listing, Manifest, PartInfo, part_verified, forget_cached, list_table, manifest_bytes, manifest_path, read_manifest
from orchestrator.results.schemas import SCHEMAS

MIN_FRAGMENTS_ENV_VAR = "MMC_COMPACT_MIN_FRAGMENTS"
DEFAULT_MIN_FRAGMENTS_AFTER_RUN = 64   # fewer new fragments than this: a run leaves them as they are
MAX_PARTS = 8                          # more parts than this in a table: they are merged
STALE_FRACTION = 0.5                   # a part with more than this share of rows that no longer count is merged
ROW_GROUP_BYTES = 16 << 20             # in-memory Arrow size of a row group: whole-table scans stay fast,
                                       # one task's rows (`tables.read_fragment`) read one small group
PREFETCH = 32                          # fragments read ahead by a thread pool (object stores: latency)
PART_METADATA = {b"mmc_sweep.part": b"1"}


class CompactionError(SweepError):
    """A table cannot be compacted safely (e.g. its manifest is unreadable); nothing was changed."""


@dataclass
class TableCompaction:
    """What compacting one table did."""

    table: str
    absorbed: int = 0            # fragments whose rows went into the new part
    rows: int = 0                # rows written into the new part
    part: str | None = None      # the new part's name
    deleted: int = 0             # files deleted (absorbed fragments, merged and orphaned parts)
    skipped: list[str] = field(default_factory=list)   # unreadable fragments left in place
    files: int = 0               # files of the table afterwards
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.part or self.deleted)


def min_fragments_after_run() -> int:
    try:
        return max(1, int(os.environ.get(MIN_FRAGMENTS_ENV_VAR, DEFAULT_MIN_FRAGMENTS_AFTER_RUN)))
    except ValueError:
        return DEFAULT_MIN_FRAGMENTS_AFTER_RUN


def compact(layout: SweepLayout, table_names=vocab.TABLES, *, min_fragments: int = 1) -> dict[str, TableCompaction]:
    """Compact every table that has at least `min_fragments` fragments to absorb (or orphaned or mostly
    stale parts). The caller holds the sweep's lock. Idempotent: a second call changes nothing."""
    try:
        return {table: compact_table(layout, table, min_fragments=min_fragments) for table in table_names}
    finally:
        forget_cached(layout)


def compact_after_run(layout: SweepLayout, log=print) -> dict[str, TableCompaction]:
    """The end of a run (also an interrupted one): compact, print one line, never raise for a
    compaction problem (the fragments stay, readers read them; `mmc-sweep compact` retries)."""
    try:
        done = compact(layout, min_fragments=min_fragments_after_run())
    except Exception as exc:  # noqa: BLE001 - results are safe in their fragments either way
        log(f"warning: results were not compacted ({type(exc).__name__}: {redact(str(exc))}); they stay readable "
            f"as fragments; `mmc-sweep compact {redact(layout.root)}` retries")
        return {}
    changed = {t: c for t, c in done.items() if c.changed}
    if changed:
        log(summary(changed))
    return done


def summary(done: dict[str, TableCompaction]) -> str:
    parts = [f"{t} {c.absorbed} fragments -> {c.files} files" for t, c in done.items()]
    seconds = sum(c.seconds for c in done.values())
    return f"compacted results in {seconds:.1f}s: " + ", ".join(parts)


# ----------------------------------------------------------------------------------------------

def compact_table(layout: SweepLayout, table: str, *, min_fragments: int = 1) -> TableCompaction:
    start = time.perf_counter()
    tables.check_table(table)
    result = TableCompaction(table)
    listing = list_table(layout, table)
    try:
        manifest = read_manifest(layout, table) or Manifest(table)
    except ValueError as exc:
        raise CompactionError(f"{exc}; not compacting `{table}` (its fragments stay readable). Restore the "
                              "manifest, or move the table's part files and the manifest away to start over "
                              "(their rows are then lost)") from None
    orphans = [stamp for name, stamp in listing.parts.items() if name not in manifest.parts]
    if len(listing.fragments) < min_fragments and not orphans and not listing.temporary_parts and \
            not (min_fragments <= 1 and _stale_parts(manifest, listing, set())):
        result.files = _count_files(listing)
        result.seconds = time.perf_counter() - start
        return result

    # Fragments of tasks the manifest knows: absorbed (same sha256; delete) or newer (absorb again).
    duplicates, newer = [], set()
    for task_id, stamp in listing.fragments.items():
        entry = manifest.tasks.get(task_id)
        if entry is None:
            continue
        try:
            digest = hashlib.sha256(layout.storage.read_bytes(stamp.path)).hexdigest()
        except FileNotFoundError:
            continue
        if digest == entry.sha256:
            duplicates.append(stamp)
        else:
            newer.add(task_id)
    absorb = {t: s for t, s in listing.fragments.items() if t not in manifest.tasks or t in newer}

    parts_after_new = len(manifest.parts) + (1 if absorb else 0)
    merge = _stale_parts(manifest, listing, newer)
    if parts_after_new > MAX_PARTS:
        merge = {name for name in manifest.parts if name in listing.parts}
    broken = {name for name in merge if not part_verified(layout, table, manifest.parts[name])}
    for name in sorted(broken):
        print(f"warning: not merging the compacted part {name} of `{table}`: it is missing or its sha256 differs "
              "from the manifest's", file=sys.stderr)
    merge -= broken

    new_entries: dict[str, Entry] = {}
    absorbed: list[FileStamp] = []
    new_part = None
    if absorb or merge:
        name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        sources = [_fragment_source(layout, table, absorb, result, absorbed)]
        sources += [_part_source(layout, table, p, manifest, exclude=newer) for p in sorted(merge)]
        new_part, new_entries = _write_part(layout, table, name, heapq.merge(*sources, key=lambda x: x[0]))
        result.absorbed = len(absorbed)
        if new_part is not None:
            result.part, result.rows = new_part.name, new_part.rows

    if new_part is not None or merge:
        parts = {n: info for n, info in manifest.parts.items() if n not in merge}
        tasks = {t: e for t, e in manifest.tasks.items() if e.part not in merge and t not in new_entries}
        if new_part is not None:
            parts[new_part.name] = new_part
            tasks.update(new_entries)
        still_used = {e.part for e in tasks.values()}
        dropped = {n for n in parts if n not in still_used and n != getattr(new_part, "name", None)}
        parts = {n: info for n, info in parts.items() if n not in dropped}
        _write_manifest(layout, Manifest(table, parts, tasks))
        merge |= dropped
    forget_cached(layout)

    to_delete = absorbed + duplicates
    to_delete += [listing.parts[n] for n in sorted(merge) if n in listing.parts] + orphans
    to_delete += [FileStamp(p, 0, 0) for p in listing.temporary_parts]
    result.deleted = _delete(layout, table, to_delete)
    result.files = _count_files(list_table(layout, table))
    result.seconds = time.perf_counter() - start
    return result


def _stale_parts(manifest: Manifest, listing: Listing, newer: set[str]) -> set[str]:
    """Parts of which more than STALE_FRACTION of the rows will no longer count once `newer` tasks'
    fragments are absorbed."""
    live = dict.fromkeys(manifest.parts, 0)
    for task_id, entry in manifest.tasks.items():
        if task_id not in newer:
            live[entry.part] += entry.rows
    return {name for name, info in manifest.parts.items()
            if name in listing.parts and info.rows and live[name] < (1 - STALE_FRACTION) * info.rows}


def _count_files(listing: Listing) -> int:
    return len(listing.fragments) + len(listing.parts) + int(listing.manifest)


# ----------------------------------------------------------------------------------------------
# Sources of rows, each yielding (task_id, sha256 of its fragment, Arrow rows) in task-id order

Item = tuple[str, str, pa.Table]


def _fragment_source(layout, table: str, absorb: dict[str, FileStamp], result: TableCompaction,
                     absorbed: list) -> Iterator[Item]:
    def load(item):
        task_id, stamp = item
        try:
            data = layout.storage.read_bytes(stamp.path)
        except FileNotFoundError:
            return task_id, stamp, None, None          # deleted meanwhile
        try:
            return task_id, stamp, hashlib.sha256(data).hexdigest(), tables.parse_fragment(table, data, task_id)
        except Exception as exc:  # noqa: BLE001 - leave a corrupt fragment where it is; readers warn
            return task_id, stamp, None, exc

    for task_id, stamp, digest, rows in _prefetch(load, sorted(absorb.items())):
        if isinstance(rows, Exception):
            result.skipped.append(stamp.path)
            print(f"warning: not compacting the unreadable fragment {stamp.path}: {rows}", file=sys.stderr)
        elif rows is not None:
            absorbed.append(stamp)
            yield task_id, digest, rows


def _prefetch(fn, items: list, window: int = PREFETCH) -> Iterator:
    """`map(fn, items)` in order, `window` calls ahead on a thread pool."""
    if len(items) < 2 * window:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=min(window, 8)) as pool:
        pending = deque(pool.submit(fn, item) for item in items[:window])
        for item in items[window:]:
            yield pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()


def _part_source(layout, table: str, name: str, manifest: Manifest, exclude: set[str]) -> Iterator[Item]:
    """The rows that still count in an older part, task by task, reading one row group at a time."""
    entries = [(t, e) for t, e in manifest.entries_of(name) if t not in exclude]
    if not entries:
        return
    path = layout.compacted_file(table, name)
    with layout.storage.fs.open_input_file(path) as f:
        parquet = pq.ParquetFile(f)
        bounds, start = [], 0
        for i in range(parquet.metadata.num_row_groups):
            n = parquet.metadata.row_group(i).num_rows
            bounds.append((start, start + n))
            start += n
        loaded: dict[int, pa.Table] = {}
        for task_id, entry in sorted(entries):           # rows were written in task-id order
            lo, hi = entry.offset, entry.offset + entry.rows
            wanted = [i for i, (a, b) in enumerate(bounds) if a < hi and b > lo]
            for i in [i for i in loaded if i not in wanted and bounds[i][1] <= lo]:
                del loaded[i]
            pieces = []
            for i in wanted:
                if i not in loaded:
                    loaded[i] = tables.conform(table, parquet.read_row_group(i))
                a, b = bounds[i]
                pieces.append(loaded[i].slice(max(lo, a) - a, min(hi, b) - max(lo, a)))
            rows = pa.concat_tables(pieces) if pieces else SCHEMAS[table].empty_table()
            yield task_id, entry.sha256, rows


# ----------------------------------------------------------------------------------------------
# Writing

class _HashingFile:
    """A file-like object for ParquetWriter: forwards to a pyarrow output stream, hashing what passes."""

    def __init__(self, stream):
        self._stream, self._hash, self._size, self.closed = stream, hashlib.sha256(), 0, False

    def write(self, data) -> int:
        data = bytes(data)
        self._hash.update(data)
        self._size += len(data)
        self._stream.write(data)
        return len(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self.closed = True

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


def _write_part(layout, table: str, name: str, items: Iterator[Item]) -> tuple[PartInfo | None,
                                                                            dict[str, Entry]]:
    """Stream `items` into `part-<name>.parquet` (temporary name, then moved into place). Returns the
    part's info and the entries of its tasks; (None, {}) when there was nothing to write."""
    storage = layout.storage
    path = layout.compacted_file(table, name)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    schema = SCHEMAS[table].with_metadata({**tables.schema_metadata(table), **PART_METADATA})
    entries: dict[str, Entry] = {}
    sink = writer = None
    buffer: list[pa.Table] = []
    buffered = 0.0
    offset = 0
    bytes_per_row = None

    def flush() -> None:
        nonlocal buffer, buffered
        if buffer:
            block = pa.concat_tables(buffer).replace_schema_metadata(schema.metadata)
            writer.write_table(block, row_group_size=max(1, block.num_rows))
            buffer, buffered = [], 0.0

    try:
        for task_id, digest, rows in items:
            if writer is None:
                storage.makedirs(layout.table_dir(table))
                sink = _HashingFile(storage.fs.open_output_stream(tmp))
                writer = pq.ParquetWriter(sink, schema, compression="zstd")
            n = rows.num_rows
            entries[task_id] = Entry(name, digest, offset, n)
            offset += n
            if n:
                if bytes_per_row is None:            # measured once: `nbytes` per table costs ~0.2 ms
                    bytes_per_row = max(1.0, rows.nbytes / n)
                buffer.append(rows)
                buffered += n * bytes_per_row
            if buffered >= ROW_GROUP_BYTES:
                flush()
        if writer is None:
            return None, {}
        flush()
        writer.close()
        sink.close()
        info = PartInfo(name, sink.digest, offset, sink.tell())
        storage.fs.move(tmp, path)
        return info, entries
    except BaseException:
        try:
            if writer is not None:
                writer.close()
            if sink is not None:
                sink.close()
        except Exception:  # noqa: BLE001
            pass
        if storage.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            storage.fs.delete_file(tmp)
        raise


def _write_manifest(layout, manifest: Manifest) -> None:
    layout.storage.write_bytes(manifest_path(layout, manifest.table), manifest_bytes(manifest))


def _delete(layout, table: str, stamps: list[FileStamp]) -> int:
    """Delete files that the manifest made redundant; a fragment changed since it was listed (its task
    wrote it again meanwhile) is newer and stays. One listing checks them all (not a request per file)."""
    fs = layout.storage.fs
    infos = fs.get_file_info(pafs.FileSelector(layout.table_dir(table), allow_not_found=True))
    now = {info.path: (info.size or 0, info.mtime_ns or 0) for info in infos}
    paths = [s.path for s in stamps if s.path in now and not ((s.size or s.mtime_ns) and
                                                               now[s.path] != (s.size, s.mtime_ns))]

    def delete(path: str) -> int:
        try:
            _delete_file(fs, path)
            return 1
        except FileNotFoundError:
            return 0

    return sum(_prefetch(delete, paths))   # deletions in parallel: a file system call (a request) each


def _delete_file(fs, path: str) -> None:
    fs.delete_file(path)


def files_per_table(layout: SweepLayout) -> dict[str, int]:
    """How many files each result table has (fragments, parts, manifest)."""
    return {table: _count_files(list_table(layout, table)) for table in vocab.TABLES}

