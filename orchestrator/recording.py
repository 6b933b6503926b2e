"""What the driver records of every task as it ends: its `tasks` row and its MLflow child run.

The driver is the only writer of both (one writer for the SQLite store). Tasks report their
metrics and step series (training curves per epoch, path curves per alpha) in their result, so
recording re-reads nothing; a task found finished on storage without a row (the driver died in
between) is recorded from its `done.json`.
"""
from __future__ import annotations

import socket
import sys
import time

import torch

from orchestrator import outputs, tables, vocab
from orchestrator.graph import Task, canonical_json
from orchestrator.layout import SweepLayout, redact


def task_row(task: Task, status: str, *, spec_hash: str, rev: str | None, error: str | None = None,
             duration_s: float | None = None, device: str | None = None, mlflow_run_id: str | None = None,
             cached: bool = False, started_at: float | None = None) -> dict:
    """The task's row of the `tasks` table (`status` in vocab.TABLE_STATUSES)."""
    names = set(tables.SCHEMAS[vocab.TASKS].names)
    return {
        **{k: v for k, v in {**task.labels, **task.settings}.items() if k in names},
        "task_id": task.id, "kind": task.kind, "status": status, "parents": list(task.parents),
        "spec_hash": spec_hash, "duration_s": duration_s, "device": device, "git_rev": rev,
        "torch_version": torch.__version__, "cached": cached, "mlflow_run_id": mlflow_run_id,
        "error": redact(error) if error else error, "host": socket.gethostname(),
        "num_workers": task.resources.workers, "config_json": canonical_json(task.config),
        "finished_at": time.time(), "started_at": started_at,
    }


class TaskRecorder:
    """Writes the `tasks` row and the MLflow child run of each task, once per status per invocation."""

    def __init__(self, layout: SweepLayout, state, spec_hash: str, mlflow_sink, parent_run_id, rev: str | None):
        self.layout, self.state, self.spec_hash = layout, state, spec_hash
        self.mlflow, self.parent_run_id, self.rev = mlflow_sink, parent_run_id, rev
        self._recorded: dict[str, str] = {}   # task id -> status already recorded in this invocation

    def record(self, task_id: str) -> None:
        task = self.state.graph.tasks[task_id]
        s = self.state.states[task_id]
        status = vocab.STATUS_IN_TABLE[s.status]
        if self._recorded.get(task_id) == status:
            return   # e.g. a skipped task reached again from a second failed ancestor
        self._recorded[task_id] = status
        result = s.result
        run_id = None
        if self.mlflow is not None:
            try:
                run_id = self._log_mlflow(task, s, result)
            except Exception as exc:  # noqa: BLE001 - tracking must never lose computed results
                print(f"warning: MLflow logging failed for {task_id}: {redact(str(exc))}", file=sys.stderr)
        row = task_row(task, status, spec_hash=self.spec_hash, rev=self.rev, error=s.error, duration_s=s.duration_s,
                       device=result.device if result else None, mlflow_run_id=run_id,
                       cached=s.status == vocab.CACHED, started_at=s.started_at)
        tables.write_fragment(self.layout, vocab.TASKS, task_id, [row])

    def _log_mlflow(self, task: Task, s, result) -> str:
        metrics, steps = {}, []
        if s.status in (vocab.DONE, vocab.CACHED):
            if result is None:   # finished in an earlier invocation: what its marker recorded
                marker = outputs.read_marker(self.layout, task.kind, task.id) or {}
                metrics, steps = dict(marker.get("metrics") or {}), list(marker.get("steps") or [])
            else:
                metrics, steps = dict(result.metrics), list(result.steps)
        if s.duration_s is not None:
            metrics["duration_s"] = s.duration_s
        params = {"kind": task.kind, "task_id": task.id, **{k: v for k, v in task.labels.items() if v is not None},
                  **{k: v for k, v in task.settings.items() if v is not None},
                  "resources": {"cpus": task.resources.cpus, "gpus": task.resources.gpus,
                                "workers": task.resources.workers}}
        return self.mlflow.log_task(self.parent_run_id, task.kind, task.id, params=params, metrics=metrics,
                                    curves=[tuple(x) for x in steps], status=vocab.STATUS_IN_MLFLOW[s.status],
                                    error=redact(s.error) if s.error else None)
