"""A task's outputs on storage: checkpoint, result fragments, and the `done.json` marker written last.

A task is finished exactly when its marker exists and every file it lists still has the sha256
recorded there. That check is the whole cache: a corrupt checkpoint or a truncated fragment fails
it, so the task is recomputed on the next run instead of being used.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import torch

from orchestrator import sinks
from orchestrator.graph import Task
from orchestrator.layout import SweepLayout
from tasks.checkpoint import checkpoint_files, read_checkpoint

MARKER_VERSION = 1


@dataclass
class TaskOutput:
    """What one task produced, before it is written."""

    tables: dict[str, list[dict]] = field(default_factory=dict)   # table name -> rows
    checkpoint: dict[str, torch.Tensor] | None = None
    meta: dict = field(default_factory=dict)                      # recorded in meta.json and done.json
    metrics: dict[str, float] = field(default_factory=dict)       # scalars for MLflow


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_outputs(layout: SweepLayout, task: Task, output: TaskOutput) -> dict:
    """Write checkpoint and fragments, then the marker; returns the marker's content."""
    storage = layout.storage
    files: dict[str, str] = {}
    if output.checkpoint is not None:
        meta = {"task_id": task.id, "kind": task.kind, "config": task.config, **output.meta}
        blobs = checkpoint_files(output.checkpoint, meta)
        paths = layout.checkpoint_files(task.kind, task.id)
        for name, blob in blobs.items():
            storage.write_bytes(paths[name], blob)
            files[paths[name]] = _sha256(blob)
    for table, rows in output.tables.items():
        if table == "tasks":
            continue  # the driver writes the `tasks` row (it knows the MLflow run id)
        path, data = sinks.write_fragment_bytes(layout, table, task.id, rows)
        files[path] = _sha256(data)
    marker = {
        "version": MARKER_VERSION,
        "task_id": task.id,
        "kind": task.kind,
        "files": files,
        "tables": sorted(t for t in output.tables if t != "tasks"),
        "metrics": output.metrics,
        "meta": output.meta,
        "finished_at": time.time(),
    }
    storage.write_bytes(marker_path(layout, task), json.dumps(marker, indent=1, default=str).encode())
    return marker


def marker_path(layout: SweepLayout, task: Task) -> str:
    return layout.storage.join(layout.task_dir(task.kind, task.id), "done.json")


def read_marker(layout: SweepLayout, task: Task) -> dict | None:
    path = marker_path(layout, task)
    if not layout.storage.exists(path):
        return None
    try:
        return json.loads(layout.storage.read_bytes(path))
    except (ValueError, UnicodeDecodeError):
        return None


def verify_outputs(layout: SweepLayout, task: Task) -> tuple[bool, str]:
    """(True, "") if the task's outputs exist and match their recorded hashes, else (False, reason)."""
    marker = read_marker(layout, task)
    if marker is None:
        return False, "no done.json"
    for path, digest in marker.get("files", {}).items():
        if not layout.storage.exists(path):
            return False, f"missing {path}"
        if _sha256(layout.storage.read_bytes(path)) != digest:
            return False, f"sha256 mismatch in {path}"
    return True, ""


def invalidate(layout: SweepLayout, task: Task) -> None:
    """Remove the marker so the task reruns (its files are replaced atomically by the rerun)."""
    path = marker_path(layout, task)
    if layout.storage.exists(path):
        layout.storage.delete(path)


def load_checkpoint(layout: SweepLayout, kind: str, task_id: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a task's checkpoint (safetensors + meta.json); never unpickles."""
    paths = layout.checkpoint_files(kind, task_id)
    files = {name: layout.storage.read_bytes(path) for name, path in paths.items()}
    return read_checkpoint(files)
