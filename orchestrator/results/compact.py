"""Compaction: a sweep's per-task result fragments merged into part files (one per table when a run ends),
and the table's state mended when something damaged it.

Every task writes one small Parquet fragment per table (`orchestrator.results.tables`); at 10^5 tasks that
is ~5x10^5 files, minutes to read locally and one request per file on an object store. At the end
of a run (finished or interrupted) and with `mmc-sweep compact DIR`, each table's fragments are
streamed, in task-id order, into one new part file `results/<table>/part-<name>.parquet` (row groups
of ~`ROW_GROUP_BYTES`), and the table's manifest `results/_manifests/<table>.parquet` records where
each task's rows are and the sha256 and size of the fragment they came from. Then the fragments are
deleted. Afterwards `results/<table>/*.parquet` holds every task's rows exactly once: a part with rows
that no longer count (the task ran again) is rewritten into the new one, and the manifest lives
outside the table's directory.

Crash safety, step by step (every file is written to a temporary name and moved into place):
1. the part is written: until the manifest names it, readers ignore it (an orphan, deleted by the
   next compaction) and still read the fragments;
2. the manifest is replaced: from now on readers take those tasks' rows from the part, and ignore
   fragments whose sha256 the manifest records while that part verifies (absorbed; only their
   deletion is pending);
3. absorbed fragments are deleted, and merged or orphaned parts and temporary files after them.
A crash between any two steps loses and duplicates nothing, and rerunning compaction (or the next
run) finishes the job. A fragment that differs from its absorbed version (the task ran again after
compaction) is newer: it wins over the part's rows and is absorbed into the next part.

While a run goes, its recording thread compacts the fragments written so far every
`bundle_tasks(n)` ended tasks (`compact_bundle`: the same steps, a new part per table; temporary
files are then tasks' writes in flight, not leftovers, and stay), so that the end of the run reads
only the last bundle's fragments and an interrupted run leaves at most MAX_PARTS - 1 parts per table (a
finished one merges them into one, below). A writer
that still holds the rows of a fragment it wrote (the driver, for the `tasks` rows) hands them in
(`rows_of`): a fragment whose bytes have the sha256 and size recorded with them is not parsed again
(a Parquet fragment's parse, ~1 ms, is most of compaction's cost).

Damage is mended, never spread (every part is checked against its recorded size and sha256):
- a part that is missing, or whose size or sha256 differ, is dropped from the manifest; the rows of
  its tasks come back from their fragments where those still have the recorded sha256, or from the
  damaged part itself where they re-serialise to exactly that sha256 (`tables.salvage_part`); the
  other tasks' outputs no longer verify, so the next run recomputes them. A damaged part is moved to
  `results/_quarantine/<table>/`, never deleted;
- a part file under another name with a missing part's sha256 (renamed or copied) takes its place;
- a file that is not the fragment of the task it is named after (garbled, or a copy of a part) is
  moved to the quarantine as well, so that globs over the table read data files only;
- temporary files of writes that never finished (a driver killed during compaction) are deleted: the hidden
  `.<name>.tmp-<uuid>` (`layout.temporary_path`) and `<name>.tmp-<uuid>` of earlier versions.
`repair` does exactly this at the start of a run, before the run decides which tasks are finished.
When a table would have more than `MAX_PARTS` parts, they are merged into the new one; at the end of a run
that was not interrupted, and in `mmc-sweep compact`, every table's parts and fragments are merged into one
part (`one_part`), whose rows readers take in the order they are stored. A part written under an older schema
version (`schemas.SCHEMA_VERSION`) is rewritten, conformed to the current schema, into any part a compaction
writes, and by `mmc-sweep compact` even when nothing else is to do (`upgrade`): every file of a table then has
one schema, which Parquet tools reading the directory need (fragments are conformed as they are absorbed).
Compaction must hold the sweep's lock (`orchestrator.storage.lock`): the driver compacts inside its run,
`mmc-sweep compact` takes the lock itself.

Why one module: compaction and mending share the manifest's invariants (which part holds which task's
rows, verified by sha256); one module keeps every rule that can lose rows in one place.
"""
from __future__ import annotations

import hashlib
import heapq
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import knobs, vocab
from orchestrator.errors import SweepError
from orchestrator.messages import counted, logger
from orchestrator.results import orphan_parts, tables
from orchestrator.results.manifest import (PART_DAMAGED, PART_MISSING, PART_OK, Entry, FileStamp, Listing, Manifest,
                                           PartInfo, forget_cached, list_table, manifest_bytes, manifest_path,
                                           part_state, part_task_ids, read_manifest, sha256_hex, stored_manifest_path,
                                           temporary_manifests)
from orchestrator.results.schemas import SCHEMA_VERSION, SCHEMAS, written_before
from orchestrator.storage.layout import LayoutError, SweepLayout, check_name, temporary_path
from orchestrator.uris import redact

MAX_PARTS = 8                          # more parts than this in a table: they are merged
ROW_GROUP_BYTES = 16 << 20             # in-memory Arrow size of a row group: whole-table scans stay fast,
                                       # one task's rows (`tables.read_fragment`) read one small group
PREFETCH = 32                          # fragments read ahead by a thread pool (object stores: latency)
GATHER = 256                           # a row group's pieces made contiguous every this many: a parsed fragment
                                       # holds ~10-30 KiB of buffers for ~1 KiB of rows (padding per column)
PART_METADATA = {b"mmc_sweep.part": b"1"}
PART_COMPRESSION = "snappy"            # decodes ~1.5x faster than zstd (a 10^5-task `paths` part: 0.66 against
                                       # 0.98 s of CPU) for ~1.2x the bytes; every Parquet reader knows it
REPAIR_ONLY = sys.maxsize              # `min_fragments` of `repair`: mend, absorb no new fragment
BUNDLE_MIN_TASKS = 4096                # a run compacts while it goes every this many ended tasks or more:
                                       # every `bundle_tasks(n)`, so that a run leaves <= MAX_PARTS - 1 parts


_LOG = logger(__name__)


class CompactionError(SweepError):
    """A table cannot be compacted safely (e.g. its manifest is unreadable); nothing was changed."""


@dataclass
class TableCompaction:
    """What compacting one table did."""

    table: str
    absorbed: int = 0            # fragments whose rows went into the new part
    rows: int = 0                # rows written into the new part
    part: str | None = None      # the new part's name
    merged_parts: int = 0        # older parts rewritten into the new one
    deleted: int = 0             # files deleted (absorbed fragments, merged and orphaned parts, temporary files)
    skipped: list[str] = field(default_factory=list)   # unreadable fragments (moved to the quarantine)
    files: int = 0               # data files of the table afterwards (fragments and parts)
    seconds: float = 0.0
    restored: int = 0            # tasks whose rows came back from a damaged part (verified by sha256)
    lost: list[str] = field(default_factory=list)     # tasks whose rows were in a lost part: to be recomputed
    quarantined: list[str] = field(default_factory=list)   # files moved to results/_quarantine/<table>/
    adopted: list[str] = field(default_factory=list)  # parts found again under another name
    migrated: bool = False       # the manifest moved out of the table's directory
    rebuilt: int | None = None   # an unreadable manifest replaced: the tasks its parts held (all in fragments again)
    from_parts: int = 0          # of those, fragments written back from the parts (`orphan_parts`)
    upgraded: int = 0            # parts of an older schema version rewritten to the current one (`_older_parts`)

    @property
    def changed(self) -> bool:
        return bool(self.part or self.deleted or self.quarantined or self.lost or self.adopted or self.migrated
                    or self.rebuilt is not None)


def min_fragments_after_run() -> int:
    """Fewer new fragments than this in a table: a run leaves them as they are (`knobs.COMPACT_MIN_FRAGMENTS`)."""
    return knobs.read(knobs.COMPACT_MIN_FRAGMENTS)


def compact(layout: SweepLayout, table_names=vocab.TABLES, *, min_fragments: int = 1, rows_of=None,
            running: bool = False, finished=None, one_part: bool = False,
            upgrade: bool = True) -> dict[str, TableCompaction]:
    """Compact every table that has at least `min_fragments` fragments to absorb, and mend every table
    whatever its count (see the module docstring). The caller holds the sweep's lock. Idempotent: a
    second call changes nothing. `rows_of(path)`: the rows of a fragment the caller wrote itself, as
    `(sha256, size, rows)` (or None): a fragment with that sha256 and size is not parsed again.
    `running`: tasks are still writing (a bundle during a run): temporary files are theirs, not left
    over, and stay; with `finished(task_id)`, only the fragments of tasks for which it is true (ended for
    good: none of their files will be written again in this run) are absorbed or deleted. `one_part`: a
    table left with more than one part has them merged into one (see `compact_after_run`). `upgrade`: a part
    written under an older schema version is rewritten (conformed to the current schema) even when nothing
    else is to do (`mmc-sweep compact`); without it (a run's compactions), only when a part is written anyway."""
    layout.storage.check(layout.results_dir())    # a link where `results/` belongs: LinkError, nothing touched
    try:
        return {table: compact_table(layout, table, min_fragments=min_fragments, rows_of=rows_of, running=running,
                                     finished=finished, one_part=one_part, upgrade=upgrade) for table in table_names}
    finally:
        forget_cached(layout)


def compact_after_run(layout: SweepLayout, log=None, rows_of=None, one_part: bool = False
                      ) -> dict[str, TableCompaction]:
    """The end of a run (also an interrupted one): compact, print one line, never raise for a
    compaction problem (the fragments stay, readers read them; `mmc-sweep compact` retries).

    `one_part` (a run that was not interrupted, and `mmc-sweep compact`): every table ends as one part,
    its rows in task-id order, so that a reader decodes it as it is: no sort, no take, and each number
    column one block that pandas takes over without a copy (reading a 10^5-task sweep's `paths`, 2.2 M
    rows, from six parts spent ~40% of its time ordering them; BENCHMARKS §7c). The merge rewrites the
    bundles' parts once, a row group at a time (`_write_part`: ~0.1 ms per task for the five tables of a
    10^5-task sweep on the 2-vCPU VM)."""
    return _quietly(layout, min_fragments_after_run(), log, rows_of, one_part=one_part)


def bundle_tasks(tasks: int) -> int:
    """Ended tasks between two compactions while a run of `tasks` tasks goes (`compact_bundle`): at least
    BUNDLE_MIN_TASKS, and few enough bundles that the run leaves at most MAX_PARTS - 1 parts per table
    (no merge rewrites them); the end of the run then reads only the fragments of the last bundle."""
    return max(BUNDLE_MIN_TASKS, -(-tasks // (MAX_PARTS - 2)))


def compact_bundle(layout: SweepLayout, rows_of=None, log=None, finished=None) -> dict[str, TableCompaction]:
    """While a run goes (its driver holds the lock; tasks are still writing): absorb the fragments written
    so far into a new part per table, with the same steps and crash safety as at the end (a fragment is
    deleted only once the part and the manifest naming it are in place); temporary files stay (they are
    writes in flight), and with `finished`, the fragments of tasks that may still write stay as they are.
    Never raises: the fragments stay, and the end of the run compacts them."""
    return _quietly(layout, 1, log or _LOG.debug, rows_of, running=True, finished=finished)


def repair(layout: SweepLayout, log=None) -> dict[str, TableCompaction]:
    """The start of a run, before it decides which tasks are finished: mend what damaged the tables
    (lost or damaged parts, renamed parts, stray files, temporary files, rows a glob would count
    twice). A table with nothing to mend keeps its new fragments as they are; one that is mended gets
    them in the part it writes. Prints what was done; never raises."""
    return _quietly(layout, REPAIR_ONLY, log)


def _quietly(layout: SweepLayout, min_fragments: int, log, rows_of=None, running: bool = False, finished=None,
             one_part: bool = False) -> dict[str, TableCompaction]:
    log = log or _LOG.info
    try:
        done = compact(layout, min_fragments=min_fragments, rows_of=rows_of, running=running, finished=finished,
                       one_part=one_part, upgrade=False)
    except Exception as exc:  # noqa: BLE001 - results are safe in their fragments either way
        _LOG.warning(f"results were not compacted ({type(exc).__name__}: {redact(str(exc))}); they stay readable "
                     f"as fragments; `mmc-sweep compact {redact(layout.root)}` retries")
        return {}
    changed = {t: c for t, c in done.items() if c.changed}
    if changed:
        log(summary(changed))
    return done


def summary(done: dict[str, TableCompaction]) -> str:
    parts = [f"{t} {counted(c.absorbed, 'fragment')}" + (f" and {counted(c.merged_parts, 'part')}" if c.merged_parts
             else "") + f" -> {counted(c.files, 'file')}" for t, c in done.items()]
    seconds = sum(c.seconds for c in done.values())
    lines = [f"compacted results in {seconds:.1f}s: " + ", ".join(parts)]
    for t, c in done.items():
        if c.restored or c.lost:
            lines.append(f"  {t}: a compacted part was missing or damaged; the rows of {c.restored} of its tasks were "
                         "restored (from their fragments or the damaged part, each verified by its sha256)"
                         + (f", those of {len(c.lost)} are lost: their outputs no longer verify, and the next run "
                            f"recomputes them (e.g. {c.lost[0]})" if c.lost else ""))
        if c.rebuilt is not None:
            lines.append(f"  {t}: its manifest was unreadable or missing; every task whose rows its parts held "
                         f"({c.rebuilt}) has them in a fragment again"
                         + (f" ({c.from_parts} written back from the parts: " + (
                             "the driver's records of planned tasks, each naming the plan's kind and parents)"
                             if t == vocab.TASKS else "rows that give the fragment each task's done.json lists, by "
                             "size and sha256)") if c.from_parts else "")
                         + f", so the manifest was rebuilt from the fragments and the old manifest and parts moved "
                           f"to results/_quarantine/{t}/")
        if c.upgraded:
            lines.append(f"  {t}: {counted(c.upgraded, 'part')} written by an older version rewritten to schema "
                         f"version {SCHEMA_VERSION}")
        if c.adopted:
            lines.append(f"  {t}: {len(c.adopted)} part(s) found under another name and put back")
        if c.quarantined:
            lines.append(f"  {t}: {len(c.quarantined)} damaged or foreign file(s) moved to "
                         f"results/_quarantine/{t}/ (e.g. {c.quarantined[0].rsplit('/', 1)[-1]})")
    return "\n".join(lines)


def _warn(message: str) -> None:
    _LOG.warning(message)


# ----------------------------------------------------------------------------------------------

def compact_table(layout: SweepLayout, table: str, *, min_fragments: int = 1, rows_of=None,
                  running: bool = False, finished=None, one_part: bool = False,
                  upgrade: bool = True) -> TableCompaction:
    start = time.perf_counter()
    tables.check_table(table)
    storage = layout.storage
    result = TableCompaction(table)
    listing = list_table(layout, table)
    if finished is not None:   # fragments of tasks that may still write them: left for later
        listing.fragments = {t: stamp for t, stamp in listing.fragments.items() if finished(t)}
    try:
        manifest = read_manifest(layout, table)
        if manifest is None and listing.parts:    # parts but no manifest: lost, or a first compaction cut short
            raise ValueError(f"the manifest of `{table}` is missing, but {counted(len(listing.parts), 'part file')} "
                             f"beside it hold{'s' if len(listing.parts) == 1 else ''} rows")
        manifest = manifest or Manifest(table)
    except ValueError as exc:                     # never delete parts whose rows may be the only copy
        manifest = _start_over(layout, table, listing, result, str(exc))
        min_fragments = 1                         # the fragments are all the table has: into a part, and a manifest
    temporary = [] if running else listing.temporary + temporary_manifests(layout, table)
    states = {name: part_state(layout, table, info) for name, info in manifest.parts.items()}
    orphans = {name: stamp for name, stamp in listing.parts.items() if name not in manifest.parts}
    _adopt_renamed_parts(layout, table, manifest, states, orphans, result)
    broken = {name for name, state in states.items() if state in (PART_MISSING, PART_DAMAGED)}
    known = [t for t in listing.fragments if t in manifest.tasks]
    new = len(listing.fragments) - len(known)
    intact = sum(state == PART_OK for state in states.values())
    too_many = intact > (1 if one_part else MAX_PARTS)
    if one_part and intact:
        min_fragments = 1                         # a part and fragments beside it would be read in two pieces
    older = _older_parts(layout, table, states) if upgrade else set()
    if not running and new < min_fragments and _mixed_versions(layout, listing, states):
        min_fragments = 1                         # two schemas in one directory: Parquet tools cannot read its glob
        older = _older_parts(layout, table, states)
    if new < min_fragments and not known and not orphans and not temporary and not broken and not too_many \
            and not older and not listing.legacy_manifest and not _stale_parts(manifest, states, set()):
        result.files = _count_files(listing)
        result.seconds = time.perf_counter() - start
        return result

    # Fragments of tasks the manifest knows: absorbed (same sha256, part intact: delete) or to absorb
    # (newer, or the only copy left of rows whose part is lost).
    duplicates, absorb = [], {}
    for task_id, stamp in listing.fragments.items():
        entry = manifest.tasks.get(task_id)
        if entry is not None and states[entry.part] == PART_OK and (entry.size is None or stamp.size == entry.size):
            try:
                data = storage.read_bytes(stamp.path)
            except FileNotFoundError:
                continue
            if entry.matches(data):
                duplicates.append(stamp)
                continue
        absorb[task_id] = stamp
    newer = {t for t in absorb if t in manifest.tasks}

    salvaged = _salvage(layout, table, manifest, broken, states)
    usable = {name for name, state in states.items() if state == PART_OK}
    merge = _stale_parts(manifest, states, newer)
    if len(usable) + (1 if absorb or salvaged else 0) > (1 if one_part else MAX_PARTS):
        merge = set(usable)
    if not upgrade and (absorb or merge or salvaged):   # a part is written anyway: older parts go into it too
        older = _older_parts(layout, table, states)
    merge |= older
    result.upgraded = len(older)

    new_entries: dict[str, Entry] = {}
    absorbed: list[FileStamp] = []
    new_part = None
    if absorb or merge or salvaged:
        name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        sources = [_fragment_source(layout, table, absorb, result, absorbed, rows_of), iter(salvaged)]
        sources += [_part_source(p, manifest) for p in sorted(merge)]
        items = _first_of_each_task(heapq.merge(*sources, key=lambda item: (item[0], item[1])))
        new_part, new_entries = _write_part(layout, table, name, items)
        result.absorbed = len(absorbed)
        result.merged_parts = len(merge)
        result.restored = sum(1 for t, e in manifest.tasks.items() if e.part in broken and t in new_entries)
        if new_part is not None:
            result.part, result.rows = new_part.name, new_part.rows

    gone = merge | broken
    if new_part is not None or gone or listing.legacy_manifest:
        parts = {n: info for n, info in manifest.parts.items() if n not in gone}
        tasks = {t: e for t, e in manifest.tasks.items() if e.part in parts and t not in new_entries}
        if new_part is not None:
            parts[new_part.name] = new_part
            tasks.update(new_entries)
        still_used = {e.part for e in tasks.values()}
        dropped = {n for n in parts if n not in still_used and n != getattr(new_part, "name", None)}
        parts = {n: info for n, info in parts.items() if n not in dropped}
        result.lost = sorted(t for t, e in manifest.tasks.items() if e.part in broken and t not in tasks)
        _write_manifest(layout, Manifest(table, parts, tasks))
        if listing.legacy_manifest:
            storage.delete(layout.legacy_manifest_file(table))
            result.migrated = True
        merge |= dropped
    forget_cached(layout)

    to_delete = absorbed + duplicates
    to_delete += [listing.parts[n] for n in sorted(merge) if n in listing.parts] + list(orphans.values())
    to_delete += [FileStamp(p, 0, 0) for p in temporary]
    result.deleted = _delete(layout, table, to_delete)
    damaged = [listing.parts[n].path for n in sorted(broken) if n in listing.parts]
    result.quarantined = [_quarantine(layout, table, path) for path in damaged + result.skipped]
    result.quarantined = [q for q in result.quarantined if q]
    result.files = _count_files(list_table(layout, table))
    result.seconds = time.perf_counter() - start
    return result


def _start_over(layout, table: str, listing: Listing, result: TableCompaction, problem: str) -> Manifest:
    """An unreadable manifest no longer says which rows of the table's parts count, so readers and the
    verification of outputs leave the parts out. First each task's rows that give exactly the fragment its
    `done.json` lists are written back as that fragment (`orphan_parts`); a run recomputes the others. Once
    every task whose rows a part holds has its fragment again, the parts hold nothing the fragments do not: they and the
    manifest move to the quarantine (kept, out of globs: no row counted twice) and the table starts over
    from its fragments (an empty manifest, returned). Until then CompactionError, naming what is missing."""
    held = _tasks_in_parts(layout, table, listing, problem)
    restored = orphan_parts.restore_fragments(layout, table, listing, held - set(listing.fragments))
    listing.fragments.update(restored)            # rows that re-serialise to the fragment the task's marker lists
    result.from_parts = len(restored)
    missing = sorted(held - set(listing.fragments))
    if missing:
        raise CompactionError(
            f"{problem}; not compacting `{table}` (its fragments stay readable): its parts hold the rows of "
            f"{counted(len(missing), 'task')} without a fragment (e.g. {missing[0]}). A run of the sweep recomputes "
            "those it plans (their outputs no longer verify), and compaction then rebuilds the manifest; else "
            "restore the manifest, or move the table's part files and the manifest away (their rows are then lost)")
    path = stored_manifest_path(layout, table)
    stale = ([path] if path is not None else []) + [stamp.path for stamp in listing.parts.values()]
    for file in stale:
        _set_aside(layout, table, file)
    if path is not None and path != layout.manifest_file(table):
        listing.legacy_manifest = False       # the unreadable manifest was an earlier version's
    result.rebuilt = len(held)
    listing.parts = {}
    return Manifest(table)


def _tasks_in_parts(layout, table: str, listing: Listing, problem: str) -> set[str]:
    """The tasks whose rows the table's part files hold (read from the parts); CompactionError when a part
    cannot be read: what it holds, and so what moving it away would lose, is unknown."""
    held: set[str] = set()
    for name in sorted(listing.parts):
        try:
            held |= part_task_ids(layout, table, name)
        except (OSError, ValueError) as exc:
            raise CompactionError(
                f"{problem}; not compacting `{table}` (its fragments stay readable): its part "
                f"{listing.parts[name].path} cannot be read either ({redact(str(exc))}), so which tasks' rows it "
                "holds is unknown. Restore the manifest, or move the table's part files and the manifest away "
                "(their rows are then lost)") from None
    return held


def _adopt_renamed_parts(layout, table: str, manifest: Manifest, states: dict[str, str],
                         orphans: dict[str, FileStamp], result: TableCompaction) -> None:
    """A part file under another name (renamed, or copied before the original was lost) that has a
    missing part's size and sha256 is that part: move it back to the name the manifest records."""
    for name in sorted(n for n, state in states.items() if state == PART_MISSING):
        info = manifest.parts[name]
        for orphan, stamp in sorted(orphans.items()):
            if stamp.size != info.size:
                continue
            try:
                same = sha256_hex(layout.storage.read_bytes(stamp.path)) == info.sha256
            except OSError:
                continue
            if same:
                layout.storage.move(stamp.path, layout.compacted_file(table, name))
                del orphans[orphan]
                states[name] = PART_OK
                result.adopted.append(name)
                break


def _stale_parts(manifest: Manifest, states: dict[str, str], newer: set[str]) -> set[str]:
    """Intact parts holding rows that will no longer count once `newer` tasks' fragments are absorbed:
    they are rewritten, so that a glob over the table's files reads every task's rows once."""
    live = dict.fromkeys(manifest.parts, 0)
    for task_id, entry in manifest.tasks.items():
        if task_id not in newer:
            live[entry.part] += entry.rows
    return {name for name, info in manifest.parts.items() if states.get(name) == PART_OK and live[name] < info.rows}


def _older_parts(layout, table: str, states: dict[str, str]) -> set[str]:
    """The intact parts written under an older schema version (`schemas.written_before`, from each part's
    footer): a Parquet tool reading the table's directory would meet two schemas, so they are rewritten,
    conformed to the current one. A footer that cannot be read leaves its part as it is."""
    older = set()
    for name in sorted(n for n, state in states.items() if state == PART_OK):
        try:
            with layout.storage.open_input_file(layout.compacted_file(table, name)) as f:
                metadata = pq.read_metadata(f).metadata
        except (OSError, pa.ArrowException):
            continue
        if written_before(metadata):
            older.add(name)
    return older


def _mixed_versions(layout, listing: Listing, states: dict[str, str]) -> bool:
    """Whether the table's files (its fragments and intact parts, from each footer) were written under more than
    one schema version: a run of a newer version that resumed a small sweep of an older one leaves its few new
    fragments beside the old ones, fewer than a run compacts, and a glob over the directory would fail on the
    two schemas. Then the run's compaction absorbs them all (and rewrites older parts into its part), conformed
    to the current schema. Versions only grow from one run to the next, so the oldest file and the newest (by
    modification time) differ where any two do: two footers read, however many files (two requests on an
    object store, at the start and the end of every run of a small sweep)."""
    stamps = [*listing.fragments.values(), *(s for n, s in listing.parts.items() if states.get(n) == PART_OK)]
    if len(stamps) < 2:
        return False

    def older(stamp: FileStamp) -> bool | None:
        try:
            with layout.storage.open_input_file(stamp.path) as f:
                return written_before(pq.read_metadata(f).metadata)
        except (OSError, pa.ArrowException):
            return None                               # unreadable: left to the mending above, not a version

    by_time = sorted(stamps, key=lambda s: s.mtime_ns)
    versions = {older(by_time[0]), older(by_time[-1])} - {None}
    return len(versions) > 1


def _count_files(listing: Listing) -> int:
    return len(listing.fragments) + len(listing.parts)


def _quarantine(layout, table: str, path: str) -> str | None:
    """Move a damaged or foreign file out of the table's directory (kept for inspection); its new path."""
    target = _set_aside(layout, table, path)
    if target is not None:
        _warn(f"moved {path} to {target}: it is damaged, or not the result fragment its name says")
    return target


def _set_aside(layout, table: str, path: str) -> str | None:
    """Move a file to `results/_quarantine/<table>/` under a dated unique name (None: it is gone already)."""
    name = path.rsplit("/", 1)[-1]
    try:
        check_name(name)
    except LayoutError:
        name = "file"
    target = layout.quarantine_file(table, f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}-{name}")
    try:
        layout.storage.move(path, target)
    except FileNotFoundError:
        return None
    return target


# ----------------------------------------------------------------------------------------------
# Sources of rows, each yielding (task_id, priority, sha256 and size of its fragment, Arrow rows) in
# task-id order; for a task that several sources hold, the lowest priority wins: its own fragment,
# then rows taken back from a damaged part, then the rows of an intact part being merged.

@dataclass(frozen=True)
class _Span:
    """A task's rows in an intact part being merged: `rows` rows from row `offset`."""

    part: str
    offset: int
    rows: int


Item = tuple[str, int, str, "int | None", "pa.Table | _Span"]
_FRAGMENT, _SALVAGED, _PART = 0, 1, 2


def _first_of_each_task(items: Iterator[Item]) -> Iterator[Item]:
    last = None
    for item in items:
        if item[0] != last:
            last = item[0]
            yield item


def _fragment_source(layout, table: str, absorb: dict[str, FileStamp], result: TableCompaction,
                     absorbed: list, rows_of=None) -> Iterator[Item]:
    def load(item):
        task_id, stamp = item
        try:
            data = layout.storage.read_bytes(stamp.path)
        except FileNotFoundError:
            return task_id, stamp, None, None, None          # deleted meanwhile
        digest = sha256_hex(data)
        known = rows_of(stamp.path) if rows_of is not None else None
        if known is not None and known[0] == digest and known[1] == len(data):
            return task_id, stamp, digest, len(data), known[2]   # the rows these very bytes were written from
        try:
            return task_id, stamp, digest, len(data), tables.parse_fragment(table, data, task_id)
        except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file: set aside, never absorbed
            return task_id, stamp, None, None, exc

    for task_id, stamp, digest, size, rows in _prefetch(load, sorted(absorb.items())):
        if isinstance(rows, Exception):
            result.skipped.append(stamp.path)
            _warn(f"not compacting {stamp.path}: {rows}")
        elif rows is not None:
            absorbed.append(stamp)
            yield task_id, _FRAGMENT, digest, size, rows


def _salvage(layout, table: str, manifest: Manifest, broken: set[str], states: dict[str, str]) -> list[Item]:
    """The rows of every task of a damaged part that still re-serialise to their fragment's sha256."""
    out: list[Item] = []
    for name in sorted(n for n in broken if states[n] == PART_DAMAGED):
        try:
            data = layout.storage.read_bytes(layout.compacted_file(table, name))
        except OSError:
            continue
        entries = manifest.entries_of(name)
        for task_id, rows in tables.salvage_part(table, data, entries).items():
            entry = manifest.tasks[task_id]
            out.append((task_id, _SALVAGED, entry.sha256, entry.size, rows))
    return sorted(out, key=lambda item: item[0])


def _prefetch(fn, items: list, window: int = PREFETCH) -> Iterator:
    """`map(fn, items)` in order, `window` calls ahead on a thread pool (shut down however the
    consumer stops: no thread outlives the generator)."""
    if len(items) < 2 * window:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=min(window, 8))
    try:
        pending = deque(pool.submit(fn, item) for item in items[:window])
        for item in items[window:]:
            yield pending.popleft().result()
            pending.append(pool.submit(fn, item))
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _part_source(name: str, manifest: Manifest) -> Iterator[Item]:
    """The rows that still count in an intact part, task by task, as spans of the part (read by `_write_part`,
    a row group at a time, for many tasks at once)."""
    for task_id, entry in sorted(manifest.entries_of(name)):
        yield task_id, _PART, entry.sha256, entry.size, _Span(name, entry.offset, entry.rows)


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


class _PartRows:
    """The rows of an intact part being merged, read a row group at a time; a row group stays loaded while the
    spans asked for next may still need it (they come in task-id order, and so does a part's rows)."""

    def __init__(self, layout, table: str, name: str):
        self._table, self._loaded = table, {}
        self._file = layout.storage.open_input_file(layout.compacted_file(table, name))
        self._parquet = pq.ParquetFile(self._file)
        metadata = self._parquet.metadata
        self._bounds, start = [], 0
        for i in range(metadata.num_row_groups):
            n = metadata.row_group(i).num_rows
            self._bounds.append((start, start + n))
            start += n
        self.bytes_per_row = 1.0               # in memory, measured on its first row group (Parquet's sizes are of
        if self._bounds:                       # its encoded pages: ~10x smaller for a `paths` part)
            first = self._loaded[0] = self._row_group(0)
            self.bytes_per_row = max(1.0, first.nbytes / max(1, first.num_rows))

    def _row_group(self, i: int) -> pa.Table:
        return tables.conform(self._table, self._parquet.read_row_group(i, use_threads=False))

    def rows(self, spans: list[tuple[int, int]]) -> pa.Table:
        """The rows of the (offset, rows) spans (each of at least one row), in their order."""
        lo, hi = min(o for o, _ in spans), max(o + n for o, n in spans)
        wanted = [i for i, (a, b) in enumerate(self._bounds) if a < hi and b > lo]
        for i in [i for i in self._loaded if i not in wanted]:
            del self._loaded[i]
        for i in wanted:
            if i not in self._loaded:
                self._loaded[i] = self._row_group(i)
        base = self._bounds[wanted[0]][0]
        block = pa.concat_tables([self._loaded[i] for i in wanted])
        if sum(n for _, n in spans) == hi - lo and all(a + n == b for (a, n), (b, _) in pairwise(spans)):
            return block.slice(lo - base, hi - lo)          # one run of rows (no task of it replaced): no copy
        return block.take(tables.row_indices([(o - base, n) for o, n in spans]))

    def close(self) -> None:
        self._file.close()


class _RowGroup:
    """The rows of the next row group of a part being written, task by task in task-id order: a task's own rows
    (a fragment's, or rows taken back from a damaged part) or a span of a part being merged. The spans of each
    part are read at once and the pieces put in task order by one take (`table`): no Arrow call per task."""

    def __init__(self):
        self.bytes = 0.0
        self._slots: list[tuple[str, int, int]] = []     # per task with rows: (part or "", row in its piece, rows)
        self._blocks: list[pa.Table] = []                # own rows, GATHER tables at a time made contiguous
        self._pending: list[pa.Table] = []
        self._own = 0
        self._spans: dict[str, list[tuple[int, int]]] = {}
        self._part_rows: dict[str, int] = {}

    def add(self, rows: pa.Table | _Span, nbytes: float) -> None:
        """A task's rows, `nbytes` their estimated size in memory (what `bytes` adds up to a row group's)."""
        self.bytes += nbytes
        if isinstance(rows, _Span):
            if rows.rows:
                at = self._part_rows.get(rows.part, 0)
                self._slots.append((rows.part, at, rows.rows))
                self._spans.setdefault(rows.part, []).append((rows.offset, rows.rows))
                self._part_rows[rows.part] = at + rows.rows
        elif rows.num_rows:
            self._slots.append(("", self._own, rows.num_rows))
            self._own += rows.num_rows
            self._pending.append(rows)
            if len(self._pending) >= GATHER:   # copy the pieces into one block; theirs are freed
                self._blocks.append(pa.concat_tables(self._pending).combine_chunks())
                self._pending = []

    def table(self, readers: dict[str, _PartRows]) -> pa.Table | None:
        pieces, base, start = [], {}, 0
        if self._own:
            pieces.append(pa.concat_tables(self._blocks + self._pending))
            base[""], start = 0, self._own
        for part, spans in self._spans.items():
            pieces.append(readers[part].rows(spans))
            base[part], start = start, start + self._part_rows[part]
        if not pieces:
            return None
        block = pa.concat_tables(pieces)
        if len(pieces) > 1:                    # tasks of several sources interleave: into task-id order
            block = block.take(tables.row_indices([(base[key] + at, n) for key, at, n in self._slots]))
        return block


def _write_part(layout, table: str, name: str, items: Iterator[Item]) -> tuple[PartInfo | None,
                                                                            dict[str, Entry]]:
    """Stream `items` into `part-<name>.parquet` (temporary name, then moved into place), a row group of
    ~`ROW_GROUP_BYTES` at a time. Returns the part's info and the entries of its tasks; (None, {}) when there
    was nothing to write."""
    storage = layout.storage
    path = layout.compacted_file(table, name)
    tmp = temporary_path(path)
    schema = SCHEMAS[table].with_metadata({**tables.schema_metadata(table), **PART_METADATA})
    entries: dict[str, Entry] = {}
    sink = writer = None
    readers: dict[str, _PartRows] = {}
    group = _RowGroup()
    offset = 0
    bytes_per_row = None                       # of rows given as tables, measured once: `nbytes` costs ~0.2 ms

    def flush() -> None:
        nonlocal group
        block = group.table(readers)
        group = _RowGroup()
        if block is not None:
            writer.write_table(block.replace_schema_metadata(schema.metadata), row_group_size=max(1, block.num_rows))

    try:
        for task_id, _priority, digest, size, rows in items:
            if writer is None:
                sink = _HashingFile(storage.open_output_stream(tmp))
                writer = pq.ParquetWriter(sink, schema, compression=PART_COMPRESSION)
            if isinstance(rows, _Span):
                if rows.part not in readers:
                    readers[rows.part] = _PartRows(layout, table, rows.part)
                n, weight = rows.rows, readers[rows.part].bytes_per_row
            else:
                n = rows.num_rows
                if n and bytes_per_row is None:
                    bytes_per_row = max(1.0, rows.nbytes / n)
                weight = bytes_per_row or 0.0
            entries[task_id] = Entry(name, digest, offset, n, size)
            offset += n
            group.add(rows, n * weight)
            if group.bytes >= ROW_GROUP_BYTES:
                flush()
        if writer is None:
            return None, {}
        flush()
        writer.close()
        sink.close()
        info = PartInfo(name, sink.digest, offset, sink.tell())
        storage.move(tmp, path)
        return info, entries
    except BaseException:
        try:
            if writer is not None:
                writer.close()
            if sink is not None:
                sink.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            storage.delete(tmp)
        except Exception:  # noqa: BLE001 - never mask the real error; the next compaction deletes it
            pass
        raise
    finally:
        for reader in readers.values():
            reader.close()


def _write_manifest(layout, manifest: Manifest) -> None:
    layout.storage.write_bytes(manifest_path(layout, manifest.table), manifest_bytes(manifest))


def _delete(layout, table: str, stamps: list[FileStamp]) -> int:
    """Delete files that the manifest made redundant; a fragment changed since it was listed (its task
    wrote it again meanwhile) is newer and stays. One listing per directory checks them all (not a
    request per file)."""
    storage = layout.storage
    fs = storage.fs
    directories = {path.rsplit("/", 1)[0] for path in (s.path for s in stamps)}
    now = {info.path: (info.size or 0, info.mtime_ns or 0)
           for directory in sorted(directories) for info in storage.list_infos(storage.check(directory))}
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
    """How many data files each result table has (fragments and parts: what `results/<table>/*.parquet` matches)."""
    return {table: _count_files(list_table(layout, table)) for table in vocab.TABLES}

