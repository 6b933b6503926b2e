"""What the driver records of every task as it ends: its `tasks` row and its MLflow child run.

The driver is the only writer of both (one writer for the SQLite store). Tasks report their
metrics and step series (training curves per epoch, path curves per alpha) in their result, so
recording re-reads nothing; a task found finished on storage without a row (the driver died in
between) is recorded from its `done.json`.

Recording is off the scheduling path: `TaskRecorder.record` (called by the scheduler's thread as a
task ends) takes a snapshot of the task's state and queues it; one background thread logs the MLflow
run and then writes the `tasks` row (which holds the run's id), in the order the tasks ended.
`TaskRecorder.close()` — at the end of every run, an interrupted one included — waits until every
queued row is written. A driver killed outright may lose queued rows; the next run writes the row of
every finished task that has none (`orchestrator.sweep`), and failed tasks run again anyway.
"""
from __future__ import annotations

import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass

import torch

from orchestrator import outputs, tables, vocab
from orchestrator.graph import Task, canonical_json
from orchestrator.layout import SweepLayout, redact


def task_row(task: Task, status: str, *, spec_hash: str, rev: str | None, error: str | None = None,
             duration_s: float | None = None, device: str | None = None, mlflow_run_id: str | None = None,
             cached: bool = False, started_at: float | None = None, finished_at: float | None = None) -> dict:
    """The task's row of the `tasks` table (`status` in vocab.TABLE_STATUSES)."""
    names = set(tables.SCHEMAS[vocab.TASKS].names)
    return {
        **{k: v for k, v in {**task.labels, **task.settings}.items() if k in names},
        "task_id": task.id, "kind": task.kind, "status": status, "parents": list(task.parents),
        "spec_hash": spec_hash, "duration_s": duration_s, "device": device, "git_rev": rev,
        "torch_version": torch.__version__, "cached": cached, "mlflow_run_id": mlflow_run_id,
        "error": redact(error) if error else error, "host": _HOST,
        "num_workers": task.resources.workers, "config_json": canonical_json(task.config),
        "finished_at": time.time() if finished_at is None else finished_at, "started_at": started_at,
    }


_HOST = socket.gethostname()


@dataclass(frozen=True)
class _Ended:
    """A task's state when it ended, as the scheduler saw it (the scheduler goes on changing its state)."""

    task_id: str
    status: str             # run status (vocab.RUN_STATUSES)
    error: str | None
    duration_s: float | None
    started_at: float | None
    ended_at: float
    result: object          # work.TaskResult or None


_STOP = object()


class TaskRecorder:
    """Writes the `tasks` row and the MLflow child run of each task, once per status per invocation, on a
    background thread (`background=False`: at once, in the caller's thread)."""

    def __init__(self, layout: SweepLayout, state, spec_hash: str, mlflow_sink, parent_run_id, rev: str | None,
                 *, background: bool = True):
        self.layout, self.state, self.spec_hash = layout, state, spec_hash
        self.mlflow, self.parent_run_id, self.rev = mlflow_sink, parent_run_id, rev
        self.background = background
        self.thread_cpu_s = 0.0                  # CPU time the recording thread used (benchmarks)
        self.written = 0                         # rows written
        self.failures: list[str] = []            # rows that could not be written (each also printed)
        self._recorded: dict[str, str] = {}      # task id -> status already recorded in this invocation
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ---- the scheduler's side -------------------------------------------------------------------
    def record(self, task_id: str) -> None:
        s = self.state.states[task_id]
        status = vocab.STATUS_IN_TABLE[s.status]
        if self._recorded.get(task_id) == status:
            return   # e.g. a skipped task reached again from a second failed ancestor
        self._recorded[task_id] = status
        ended = _Ended(task_id, s.status, s.error, s.duration_s, s.started_at, time.time(), s.result)
        if not self.background:
            self._write(ended)
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
            while True:
                item = self._queue.get()
                try:
                    if item is _STOP:
                        return
                    self._write(item)
                finally:
                    self._queue.task_done()
                    self.thread_cpu_s = time.thread_time() - start
        finally:
            self.thread_cpu_s = time.thread_time() - start

    def _write(self, ended: _Ended) -> None:
        task = self.state.graph.tasks[ended.task_id]
        result = ended.result
        run_id = None
        if self.mlflow is not None:
            try:
                run_id = self._log_mlflow(task, ended)
            except Exception as exc:  # noqa: BLE001 - tracking must never lose computed results
                print(f"warning: MLflow logging failed for {ended.task_id}: {redact(str(exc))}", file=sys.stderr)
        row = task_row(task, vocab.STATUS_IN_TABLE[ended.status], spec_hash=self.spec_hash, rev=self.rev,
                       error=ended.error, duration_s=ended.duration_s,
                       device=getattr(result, "device", None), mlflow_run_id=run_id,
                       cached=ended.status == vocab.CACHED, started_at=ended.started_at, finished_at=ended.ended_at)
        try:
            tables.write_fragment(self.layout, vocab.TASKS, ended.task_id, [row])
            self.written += 1
        except Exception as exc:  # noqa: BLE001 - keep recording the others; say which row is missing
            message = f"{ended.task_id}: {type(exc).__name__}: {redact(str(exc))}"
            self.failures.append(message)
            print(f"warning: the `tasks` row of {message} could not be written; the next run writes it if the "
                  "task finished", file=sys.stderr)
            if not self.background:
                raise

    def _log_mlflow(self, task: Task, ended: _Ended) -> str:
        metrics, steps = {}, []
        result = ended.result
        if ended.status in (vocab.DONE, vocab.CACHED):
            if result is None:   # finished in an earlier invocation: what its marker recorded
                marker = outputs.read_marker(self.layout, task.kind, task.id) or {}
                metrics, steps = dict(marker.get("metrics") or {}), list(marker.get("steps") or [])
            else:
                metrics, steps = dict(result.metrics), list(result.steps)
        if ended.duration_s is not None:
            metrics["duration_s"] = ended.duration_s
        params = {"kind": task.kind, "task_id": task.id, **{k: v for k, v in task.labels.items() if v is not None},
                  **{k: v for k, v in task.settings.items() if v is not None},
                  "resources": {"cpus": task.resources.cpus, "gpus": task.resources.gpus,
                                "workers": task.resources.workers}}
        return self.mlflow.log_task(self.parent_run_id, task.kind, task.id, params=params, metrics=metrics,
                                    curves=[tuple(x) for x in steps], status=vocab.STATUS_IN_MLFLOW[ended.status],
                                    error=redact(ended.error) if ended.error else None)
