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
every finished task that has none (`orchestrator.run.sweep`), and failed tasks run again anyway.
"""
from __future__ import annotations

import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass

import torch

from orchestrator import vocab
from orchestrator.provenance import format_versions, software_versions
from orchestrator.results import outputs, schemas, tables
from orchestrator.graph.dag import Task, canonical_json
from orchestrator.storage.layout import SweepLayout
from orchestrator.uris import redact


def task_row(task: Task, status: str, *, spec_hash: str, rev: str | None, error: str | None = None,
             duration_s: float | None = None, device: str | None = None, mlflow_run_id: str | None = None,
             cached: bool = False, started_at: float | None = None, finished_at: float | None = None) -> dict:
    """The task's row of the `tasks` table (`status` in vocab.TABLE_STATUSES)."""
    names = set(schemas.SCHEMAS[vocab.TASKS].names)
    return {
        **{k: v for k, v in {**task.labels, **task.settings}.items() if k in names},
        "task_id": task.id, "kind": task.kind, "status": status, "parents": list(task.parents),
        "spec_hash": spec_hash, "duration_s": duration_s, "device": device, "git_rev": rev,
        "torch_version": torch.__version__, "versions": _VERSIONS, "cached": cached, "mlflow_run_id": mlflow_run_id,
        "error": redact(error) if error else error, "host": _HOST,
        "num_workers": task.resources.workers, "config_json": canonical_json(task.config),
        "finished_at": time.time() if finished_at is None else finished_at, "started_at": started_at,
    }


_HOST = socket.gethostname()
_VERSIONS = format_versions(software_versions())


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
        self._bulk: _SqlBulkLogger | bool | None = None   # None: not tried yet; False: run by run
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
                finally:
                    for _ in batch:
                        self._queue.task_done()
                    self.thread_cpu_s = time.thread_time() - start
        finally:
            self.thread_cpu_s = time.thread_time() - start

    def _write_batch(self, items: list[_Ended]) -> None:
        run_ids: dict[str, str] = {}
        if self.mlflow is not None and items:
            if self._bulk is None:
                self._bulk = _SqlBulkLogger.create(self.mlflow)
            if self._bulk:
                try:
                    run_ids = self._bulk.log([self._mlflow_run(ended) for ended in items], self.parent_run_id)
                except Exception as exc:  # noqa: BLE001 - fall back to one call per run, for good
                    print(f"warning: batched MLflow logging failed ({type(exc).__name__}: {redact(str(exc))[:300]});"
                          " logging run by run from now on", file=sys.stderr)
                    self._bulk = False
        for ended in items:
            self._write(ended, run_ids.get(ended.task_id, _UNLOGGED))

    def _write(self, ended: _Ended, run_id) -> None:
        """Write the task's row; `run_id` is its MLflow run's, or _UNLOGGED: log its run here first."""
        task = self.state.graph.tasks[ended.task_id]
        result = ended.result
        if run_id is _UNLOGGED:
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

    def _mlflow_run(self, ended: _Ended) -> _Run:
        """What the task's MLflow child run holds."""
        task = self.state.graph.tasks[ended.task_id]
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
        return _Run(task.id, task.kind, params, metrics, [tuple(x) for x in steps],
                    vocab.STATUS_IN_MLFLOW[ended.status], redact(ended.error) if ended.error else None,
                    ended.started_at, ended.ended_at)

    def _log_mlflow(self, task: Task, ended: _Ended) -> str:
        run = self._mlflow_run(ended)
        return self.mlflow.log_task(self.parent_run_id, task.kind, task.id, params=run.params, metrics=run.metrics,
                                    curves=run.curves, status=run.status, error=run.error)


# ----------------------------------------------------------------------------------------------
# MLflow child runs in batches

BATCH_SIZE = 256          # tasks per batch: one database transaction for all their MLflow runs
BATCH_WAIT_S = 0.5        # how long the recording thread gathers tasks ending after the first of a batch
_UNLOGGED = object()      # "not logged yet": log this one run by itself


@dataclass(frozen=True)
class _Run:
    task_id: str
    kind: str
    params: dict
    metrics: dict
    curves: list
    status: str              # vocab.MLFLOW_STATUSES
    error: str | None
    started_at: float | None
    ended_at: float


class _SqlBulkLogger:
    """Child runs of many tasks written in one transaction of MLflow's SQL store (SQLite, PostgreSQL, MySQL):
    ~1 ms of CPU per run instead of ~25-40 ms through one client call per run, table and step.

    The rows are the ones `MlflowSink.log_task` leaves (runs, tags, params, metrics, latest metrics, the
    same names, truncations and secret filters of `orchestrator.run.tracking`), inserted with SQLAlchemy's
    executemany through MLflow's own table models. Other stores (an MLflow server over HTTP) log run by
    run; so does everything after any failure here (`TaskRecorder._write_batch`)."""

    def __init__(self, sink, store, models):
        self.sink, self.store, self.models = sink, store, models
        experiment = store.get_experiment(sink.experiment_id)
        self.artifact_location = experiment.artifact_location
        self.experiment_id = int(sink.experiment_id)

    @classmethod
    def create(cls, sink) -> _SqlBulkLogger | bool:
        """A bulk logger for `sink`'s store, or False where its store is not MLflow's SQL store."""
        try:
            from mlflow.store.tracking import dbmodels
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = sink.client._tracking_client.store
            if not isinstance(store, SqlAlchemyStore):
                return False
            models = dbmodels.models
            for name in ("SqlRun", "SqlTag", "SqlParam", "SqlMetric", "SqlLatestMetric"):
                getattr(models, name)
            return cls(sink, store, models)
        except Exception:  # noqa: BLE001 - an MLflow without these internals: run by run
            return False

    def log(self, runs: list[_Run], parent_run_id: str) -> dict[str, str]:
        """Insert the runs (one transaction); returns task id -> run id."""
        import uuid

        from mlflow.utils.uri import append_to_uri_path
        from sqlalchemy import insert

        from orchestrator.run import tracking
        m = self.models
        rows = {"runs": [], "tags": [], "params": [], "metrics": [], "latest": []}
        ids: dict[str, str] = {}
        now_ms = int(time.time() * 1000)
        for run in runs:
            run_id = uuid.uuid4().hex
            ids[run.task_id] = run_id
            start_ms = int((run.started_at or run.ended_at) * 1000)
            rows["runs"].append({
                "run_uuid": run_id, "name": run.task_id, "experiment_id": self.experiment_id,
                "artifact_uri": append_to_uri_path(self.artifact_location, run_id, "artifacts"),
                "source_type": "UNKNOWN", "source_name": "", "entry_point_name": "", "user_id": "unknown",
                "status": run.status, "start_time": start_ms, "end_time": int(run.ended_at * 1000),
                "deleted_time": None, "source_version": "", "lifecycle_stage": "active"})
            tags = {"mlflow.parentRunId": parent_run_id, "task_kind": run.kind, "task_id": run.task_id,
                    "error": run.error, "mlflow.runName": run.task_id}
            rows["tags"] += [{"run_uuid": run_id, "key": k, "value": str(v)[:tracking.MAX_TAG_VALUE]}
                             for k, v in tags.items() if v is not None and not tracking.is_secret(k)]
            rows["params"] += [{"run_uuid": run_id, "key": k, "value": v}
                               for k, v in tracking.flatten_params(run.params).items()]
            points = [(k, v, 0) for k, v in run.metrics.items()] + [(k, v, int(step)) for k, step, v in run.curves]
            latest: dict[str, dict] = {}
            seen = set()
            for key, value, step in points:
                v = tracking.metric_value(value)
                if v is None or tracking.is_secret(key) or (key, step, v) in seen:
                    continue
                seen.add((key, step, v))
                is_nan, v = self.store.sanitize_metric_value(v)
                row = {"run_uuid": run_id, "key": key, "value": v, "timestamp": now_ms, "step": step, "is_nan": is_nan}
                rows["metrics"].append(row)
                if key not in latest or (step, v) > (latest[key]["step"], latest[key]["value"]):
                    latest[key] = row
            rows["latest"] += list(latest.values())
        with self.store.ManagedSessionMaker() as session:
            for model, name in ((m.SqlRun, "runs"), (m.SqlTag, "tags"), (m.SqlParam, "params"),
                                (m.SqlMetric, "metrics"), (m.SqlLatestMetric, "latest")):
                if rows[name]:
                    session.execute(insert(model), rows[name])
        for run in runs:
            if run.error:
                try:
                    self.sink.client.log_text(ids[run.task_id], run.error, "error.txt")
                except Exception as exc:  # noqa: BLE001 - the run and its error tag are there already
                    print(f"warning: MLflow could not store error.txt of {run.task_id}: {redact(str(exc))}",
                          file=sys.stderr)
        return ids
