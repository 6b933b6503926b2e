"""Checkpoints as two files: `model.safetensors` (tensors) and `meta.json` (sha256 + provenance + caller meta).

Nothing is ever unpickled: safetensors holds only raw tensors and a JSON header, and the sha256 in
meta.json is checked before the tensors are parsed. meta.json layout:
`{"format": 1, "sha256": ..., "size": ..., "torch_version": ..., "python_version": ...,
"created_utc": ..., "meta": <caller meta>}`.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import uuid
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

TENSORS_FILE = "model.safetensors"
META_FILE = "meta.json"
FORMAT_VERSION = 1


class CorruptCheckpointError(ValueError):
    """A checkpoint file is missing, altered or unreadable; `file` names it."""

    def __init__(self, file: str, problem: str):
        self.file, self.problem = file, problem
        super().__init__(f"corrupt checkpoint: `{file}`: {problem}")

    def __reduce__(self):
        return (type(self), (self.file, self.problem))


def checkpoint_files(tensors: dict[str, Tensor], meta: dict) -> dict[str, bytes]:
    """{TENSORS_FILE: safetensors bytes, META_FILE: JSON bytes} for `tensors` and JSON-able `meta`.

    Tensors are detached, moved to CPU, made contiguous and cloned (shared storage is fine)."""
    prepared = {}
    for name, value in tensors.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"checkpoint tensor {name!r} is a {type(value).__name__}; only tensors are "
                            "allowed (put other values in `meta`)")
        prepared[name] = value.detach().to("cpu").contiguous().clone()
    blob = save_safetensors(prepared)
    record = {
        "format": FORMAT_VERSION,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "meta": meta,
    }
    try:
        text = json.dumps(record, sort_keys=True, indent=1, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"checkpoint `meta` must be JSON-able (no NaN/inf, no objects): {error}") from error
    return {TENSORS_FILE: blob, META_FILE: text.encode("utf-8")}


def read_record(files: dict[str, bytes]) -> dict:
    """The whole meta.json record (sha256, versions, created_utc, caller `meta`), parsed and checked."""
    if META_FILE not in files:
        raise CorruptCheckpointError(META_FILE, "missing")
    try:
        record = json.loads(files[META_FILE].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CorruptCheckpointError(META_FILE, f"not valid JSON ({type(error).__name__})") from None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str) or "meta" not in record:
        raise CorruptCheckpointError(META_FILE, "not a checkpoint record (needs `sha256` and `meta`)")
    if record.get("format") != FORMAT_VERSION:
        raise CorruptCheckpointError(META_FILE, f"format {record.get('format')!r}; this code reads {FORMAT_VERSION}")
    return record


def read_checkpoint(files: dict[str, bytes]) -> tuple[dict[str, Tensor], dict]:
    """(tensors, caller meta) after verifying sha256; raises CorruptCheckpointError naming the bad file."""
    record = read_record(files)
    if TENSORS_FILE not in files:
        raise CorruptCheckpointError(TENSORS_FILE, "missing")
    blob = files[TENSORS_FILE]
    actual = hashlib.sha256(blob).hexdigest()
    if actual != record["sha256"]:
        raise CorruptCheckpointError(
            TENSORS_FILE, f"sha256 {actual} ({len(blob)} bytes) does not match {record['sha256']} "
                          f"recorded in {META_FILE}")
    try:
        tensors = load_safetensors(blob)
    except Exception as error:  # safetensors raises its own error types for bad headers
        raise CorruptCheckpointError(TENSORS_FILE, f"not a safetensors file ({error})") from error
    return tensors, record["meta"]


def save_checkpoint(directory: str | os.PathLike, tensors: dict[str, Tensor], meta: dict) -> Path:
    """Write the checkpoint files into `directory` atomically (temp name + os.replace; meta.json last)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = checkpoint_files(tensors, meta)
    for name in (TENSORS_FILE, META_FILE):
        temp = directory / f".{name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temp, "wb") as handle:
                handle.write(files[name])
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, directory / name)
        finally:
            temp.unlink(missing_ok=True)
    return directory


def load_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, Tensor], dict]:
    """(tensors, caller meta) from `directory`; CorruptCheckpointError if a file is missing or altered."""
    directory = Path(directory)
    files = {}
    for name in (TENSORS_FILE, META_FILE):
        path = directory / name
        if not path.is_file():
            raise CorruptCheckpointError(str(path), "missing")
        files[name] = path.read_bytes()
    try:
        return read_checkpoint(files)
    except CorruptCheckpointError as error:
        raise CorruptCheckpointError(str(directory / error.file), error.problem) from None
