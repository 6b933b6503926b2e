"""What the driver records of every task as it ends, in its two sinks: the `tasks` table (`TasksTable`,
Parquet) and MLflow (a `tracking` tracker: a child run per task).

The driver is the only writer of both (one writer for the SQLite store). Tasks report their metrics and
step series (training curves per epoch, path curves per alpha) in their result, so recording re-reads
nothing; a task found finished on storage without a row (the driver died in between) is recorded from
its `done.json`.

Recording is off the scheduling path: the recorder listens to the sweep's state
(`SweepState.subscribe(recorder.on_status)`): a task that ends (done, failed, skipped) is queued with the
state it ended in; one background thread turns each batch of
snapshots into `EndedTask`s, hands them to the tracker (`tasks_ended`, one SQL transaction for the batch
where it can) and then writes their `tasks` rows (which hold the runs' ids), in the order the tasks ended.
`TaskRecorder.close()` — at the end of every run, an interrupted one included — waits until every
queued row is written. Every `compact.bundle_tasks(n)` ended tasks the same thread compacts the
result fragments written so far by tasks that ended for good (done or cached: `compact.compact_bundle`,
a part per table), so that the end of the run reads only the last bundle's fragments; the `tasks` rows it wrote itself since the last bundle are
kept (`TasksTable.rows_of`, one contiguous block per batch) and not parsed back; after each bundle the thread hands
the memory it freed back to the system (`release_freed_memory`). A driver killed outright may lose queued rows; the next run writes the row of
every finished task that has none (`orchestrator.run.sweep`), and failed tasks run again anyway.
"""
from __future__ import annotations

import math
import queue
import socket
import threading
import time
from dataclasses import dataclass

import pyarrow as pa

from orchestrator import vocab
from orchestrator.messages import logger
from orchestrator.provenance import format_versions, software_versions, torch_version
from orchestrator.results import compact, marker_index, outputs, schemas, tables
from orchestrator.results.manifest import sha256_hex
from orchestrator.graph.dag import Task, canonical_json
from orchestrator.storage.layout import SweepLayout
from orchestrator.run.tracking import NullTracker
from orchestrator.uris import redact

log = logger(__name__)


def task_row(task: Task, status: str, *, spec_hash: str, rev: str | None, error: str | None = None,
             duration_s: float | None = None, device: str | None = None, mlflow_run_id: str | None = None,
             cached: bool = False, started_at: float | None = None, finished_at: float | None = None,
             error_type: str | None = None, restarts: int = 0) -> dict:
    """The task's row of the `tasks` table (`status` in vocab.TABLE_STATUSES)."""
    names = set(schemas.SCHEMAS[vocab.TASKS].names)
    return {
        **{k: v for k, v in {**task.labels, **task.settings}.items() if k in names},
        "task_id": task.id, "kind": task.kind, "status": status, "parents": list(task.parents),
        "spec_hash": spec_hash, "duration_s": duration_s, "device": device, "git_rev": rev,
        "torch_version": _TORCH, "versions": _VERSIONS, "cached": cached, "mlflow_run_id": mlflow_run_id,
        "error": redact(error) if error else error, "error_type": error_type, "host": _HOST,
        "num_workers": task.resources.workers, "config_json": canonical_json(task.config),
        "finished_at": time.time() if finished_at is None else finished_at, "started_at": started_at,
        "restarts": restarts,
    }


_HOST = socket.gethostname()
_VERSIONS = format_versions(software_versions())
_TORCH = torch_version()


@dataclass(frozen=True)
class _Ended:
    """A task's state when it ended, as the scheduler saw it (the scheduler goes on changing its state)."""

    task_id: str
    status: str             # run status (vocab.RUN_STATUSES)
    error: str | None
    error_type: str | None
    duration_s: float | None
    started_at: float | None
    ended_at: float
    result: object          # work.TaskResult or None
    restarts: int = 0


@dataclass(frozen=True)
class EndedTask:
    """A task that ended, as every sink records it."""

    task: Task
    status: str             # run status: vocab.DONE, CACHED, FAILED or SKIPPED
    error: str | None
    duration_s: float | None
    started_at: float | None
    ended_at: float
    device: str | None
    metrics: dict           # name -> number
    steps: list             # (name, step, value): training curves per epoch, path curves per alpha
    error_type: str | None = None   # the class name of the exception a failed task raised
    restarts: int = 0               # times it was started again after its trial crashed (MMC_TASK_RESTARTS)


class TasksTable:
    """The driver's Parquet sink: one `tasks` row per ended task (a fragment of its own), a batch's rows
    checked and built as one Arrow table and each fragment written from its slice."""

    def __init__(self, layout: SweepLayout, spec_hash: str, rev: str | None, *, strict: bool = False):
        self.layout, self.spec_hash, self.rev, self.strict = layout, spec_hash, rev, strict
        self.written = 0                         # rows written
        self.failures: list[str] = []            # rows that could not be written (each also printed)
        self._kept: dict[str, tuple[str, int, pa.Table, int]] = {}   # fragment path -> sha256, size, rows

    def rows_of(self, path: str) -> tuple[str, int, pa.Table] | None:
        """The rows of a fragment written here since `forget_rows` (`compact.compact`'s `rows_of`): its
        sha256, its size and the Arrow rows its bytes were serialised from (conformed)."""
        kept = self._kept.get(path)
        return None if kept is None else (kept[0], kept[1], kept[2].slice(kept[3], 1))

    def forget_rows(self) -> None:
        self._kept = {}

    def tasks_ended(self, ended: list[EndedTask], run_ids: dict[str, str]) -> None:
        rows = [task_row(e.task, vocab.STATUS_IN_TABLE[e.status], spec_hash=self.spec_hash, rev=self.rev,
                         error=e.error, duration_s=e.duration_s, device=e.device,
                         mlflow_run_id=run_ids.get(e.task.id), cached=e.status == vocab.CACHED,
                         started_at=e.started_at, finished_at=e.ended_at, error_type=e.error_type,
                         restarts=e.restarts) for e in ended]
        try:   # the batch's rows checked and built at once (~0.5 ms a row on its own), each written from a slice
            block = tables.rows_of_tasks_to_table(vocab.TASKS, rows)
        except Exception:  # noqa: BLE001 - a row that does not fit: each row on its own, the others written
            block = None
        written: list[tuple[str, str, int, int]] = []   # path, sha256, size, row of `block`
        arrows: list[pa.Table] = []
        for i, (e, row) in enumerate(zip(ended, rows)):
            try:
                arrow = block.slice(i, 1) if block is not None else tables.rows_to_table(vocab.TASKS, e.task.id, [row])
                data = tables.fragment_bytes(vocab.TASKS, arrow)
                path = self.layout.fragment(vocab.TASKS, e.task.id)
                self.layout.storage.write_bytes(path, data)
                written.append((path, sha256_hex(data), len(data), i if block is not None else len(arrows)))
                arrows.append(arrow)
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - keep recording the others; say which row is missing
                message = f"{e.task.id}: {type(exc).__name__}: {redact(str(exc))}"
                self.failures.append(message)
                log.warning(f"the `tasks` row of {message} could not be written; the next run writes it if "
                            "the task finished")
                if self.strict:
                    raise
        if written:   # kept as one block per batch: the built block, or the one-row tables copied into one
            # (`combine_chunks`: a concatenation would keep every one-row table's own buffers, ~9 KiB per row)
            kept = tables.conform(vocab.TASKS, block if block is not None else
                                  pa.concat_tables(arrows).combine_chunks())
            for path, digest, size, offset in written:
                self._kept[path] = (digest, size, kept, offset)


_STOP = object()
BATCH_SIZE = 256          # tasks per batch: one database transaction for all their MLflow runs
BATCH_WAIT_S = 0.5        # how long the recording thread gathers tasks ending after the first of a batch


class TaskRecorder:
    """Hands each ended task to the tracker (MLflow) and the `tasks` table, once per status per invocation, on
    a background thread (`background=False`: at once, in the caller's thread)."""

    def __init__(self, layout: SweepLayout, state, spec_hash: str, tracker=None, rev: str | None = None,
                 *, background: bool = True):
        self.layout, self.state = layout, state
        self.tracker = tracker if tracker is not None else NullTracker()
        self.table = TasksTable(layout, spec_hash, rev, strict=not background)
        self.background = background
        self.thread_cpu_s = 0.0                  # CPU time the recording thread used (benchmarks)
        self.compact_every = compact.bundle_tasks(len(state.graph.tasks)) if background else 0
        self.compactions = 0                     # bundles compacted while the run went
        self.compact_s = self.compact_cpu_s = 0.0   # their wall and CPU time (in `thread_cpu_s` too)
        self._ended_since = 0                    # tasks recorded since the last bundle
        self._to_index: list[tuple[str, str]] = []   # (kind, task id) finished since the markers were last indexed
        self.index_s = 0.0                       # wall time spent indexing markers (benchmarks)
        self.release_s = 0.0                     # wall time spent handing freed memory back (benchmarks)
        self._recorded: dict[str, str] = {}      # task id -> status already recorded in this invocation
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def written(self) -> int:
        return self.table.written

    @property
    def failures(self) -> list[str]:
        return self.table.failures

    # ---- the scheduler's side -------------------------------------------------------------------
    ENDED = (vocab.DONE, vocab.FAILED, vocab.SKIPPED)   # the statuses `on_status` records

    def on_status(self, task_id: str, before, after) -> None:
        """The listener of `SweepState.subscribe`: records a task that ended in this run."""
        if after.status in self.ENDED:
            self.record(task_id, after)

    def record(self, task_id: str, s=None) -> None:
        """Queue the row of `task_id` in its state `s` (default: its state now), once per status."""
        s = self.state.states[task_id] if s is None else s
        status = vocab.STATUS_IN_TABLE[s.status]
        if self._recorded.get(task_id) == status:
            return   # e.g. a failed task whose reason was filled in after it ended
        self._recorded[task_id] = status
        ended = _Ended(task_id, s.status, s.error, s.error_type, s.duration_s, s.started_at, time.time(), s.result,
                       s.restarts)
        if not self.background:
            self._write_batch([ended])
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="mmc-task-recorder", daemon=True)
                self._thread.start()
        self._queue.put(ended)

    def pending(self) -> int:
        """Rows queued and not written yet."""
        return self._queue.unfinished_tasks

    def flush(self) -> None:
        """Wait until every queued row is written."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        """Write every queued row, then stop the thread (idempotent; `record` after it starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join()

    def __enter__(self) -> TaskRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the recording thread -------------------------------------------------------------------
    def _drain(self) -> None:
        start = time.thread_time()
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]          # block for one, then gather for up to BATCH_WAIT_S
                deadline = time.monotonic() + BATCH_WAIT_S
                while len(batch) < BATCH_SIZE and batch[-1] is not _STOP:
                    try:
                        batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                stop = _STOP in batch
                items = [item for item in batch if item is not _STOP]
                try:
                    self._write_batch(items)
                    self._ended_since += len(items)
                    if self.compact_every and self._ended_since >= self.compact_every and not stop:
                        self._compact_bundle()
                        self._index_markers()
                    if stop:
                        self._index_markers(last=True)
                finally:
                    for _ in batch:
                        self._queue.task_done()
                    self.thread_cpu_s = time.thread_time() - start
        finally:
            self.thread_cpu_s = time.thread_time() - start

    def _compact_bundle(self) -> None:
        """Compact the fragments written so far (the run goes on meanwhile; rows keep queueing)."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            compact.compact_bundle(self.layout, self.table.rows_of, finished=self._ended_for_good)
        finally:
            self.table.forget_rows()
            self._release_freed_memory()
            self._ended_since = 0
            self.compactions += 1
            self.compact_s += time.perf_counter() - wall
            self.compact_cpu_s += time.thread_time() - cpu

    def _index_markers(self, last: bool = False) -> None:
        """Index the markers of the tasks finished since the last time (`outputs.index_markers`, for
        `status`); at the end of the run, merge the index's files when there are many."""
        start = time.perf_counter()
        try:
            outputs.index_markers(self.layout, self._to_index)
            if last:
                marker_index.merge_index(self.layout)
        except Exception as exc:  # noqa: BLE001 - a cache: status reads the markers instead
            log.warning(f"the marker index was not updated ({type(exc).__name__}: {redact(str(exc))})")
        finally:
            self._to_index = []
            self.index_s += time.perf_counter() - start

    def _release_freed_memory(self) -> None:
        """Hand back to the system what a bundle's compaction and the rows it absorbed freed: glibc's arenas
        and Arrow's pool keep it otherwise (~150-250 MiB at 10^4 tasks)."""
        start = time.perf_counter()
        release_freed_memory()
        self.release_s += time.perf_counter() - start

    def _ended_for_good(self, task_id: str) -> bool:
        """Whether none of the task's files will be written again in this run (a bundle may absorb them)."""
        s = self.state.states.get(task_id)
        return s is not None and s.status in (vocab.DONE, vocab.CACHED) and self._recorded.get(task_id) is not None

    def _write_batch(self, items: list[_Ended]) -> None:
        if self.background:
            self._to_index += [(self.state.graph.tasks[i.task_id].kind, i.task_id) for i in items
                               if i.status in (vocab.DONE, vocab.CACHED)]
        ended = [self._ended_task(item) for item in items]
        run_ids = self.tracker.tasks_ended(ended) if ended else {}
        self.table.tasks_ended(ended, run_ids)

    def _ended_task(self, ended: _Ended) -> EndedTask:
        task = self.state.graph.tasks[ended.task_id]
        result, metrics, steps = ended.result, {}, []
        duration, started, finished = ended.duration_s, ended.started_at, ended.ended_at
        device = getattr(result, "device", None)
        if ended.status in (vocab.DONE, vocab.CACHED):
            if result is None:   # finished in an earlier invocation: what its marker recorded, times included
                marker = outputs.read_marker(self.layout, task.kind, task.id) or {}
                metrics, steps = dict(marker.get("metrics") or {}), list(marker.get("steps") or [])
                duration, started, finished, device = _marker_times(marker, duration, started, finished)
            else:
                metrics, steps = dict(result.metrics), list(result.steps)
        return EndedTask(task, ended.status, ended.error, duration, started, finished, device, metrics,
                         [tuple(x) for x in steps], ended.error_type, ended.restarts)


def _marker_times(marker: dict, duration, started, finished) -> tuple:
    """(duration_s, started_at, finished_at, device) of a task that finished in an earlier invocation, from
    its done.json (`finished_at`, `meta.duration_s`, `meta.device`) where they are numbers; else as given."""
    meta = marker.get("meta") if isinstance(marker.get("meta"), dict) else {}
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)   # noqa: E731
    if number(marker.get("finished_at")):
        finished = float(marker["finished_at"])
        if number(meta.get("duration_s")):
            duration = float(meta["duration_s"])
            started = finished - duration
    return duration, started, finished, meta.get("device") if isinstance(meta.get("device"), str) else None


def release_freed_memory() -> None:
    """`malloc_trim(0)` (glibc: free pages inside every arena go back to the system) and Arrow's pool's
    `release_unused`; a no-op where there is no glibc."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        pass
    pa.default_memory_pool().release_unused()


def _libc():
    import ctypes

    return ctypes.CDLL("libc.so.6")
