"""The `done.json` marker's content and bytes (`outputs.write_outputs` writes it, `bench/fabricate.py` the same).

Version 3 is compact JSON: no indentation, and the MLflow step series (`steps`) held as one string per
series, `{key: "[step,value,step,value,...]"}`, so that a pass over every marker of a sweep (`status`, a
resume's cache check) parses ~1 KB of structure per task, not the few hundred numbers it never uses
(`marker_steps` reads them back). Markers of version 2 (indented, `steps` a list of [key, step, value])
are read and verified as before: a resumed older sweep recomputes nothing. What is checked when a
marker is read: `outputs`.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from orchestrator.messages import logger

_LOG = logger(__name__)

MARKER_VERSION = 3              # what is written
MARKER_VERSIONS = (2, 3)        # what is read: 2 = indented, `steps` a list of [key, step, value]


def make_marker(task_id: str, kind: str, files: dict[str, str], sizes: dict[str, int], tables_: Iterable[str],
                metrics: dict, steps: Iterable, meta: dict, finished_at: float) -> dict:
    """The content of a task's `done.json` (`write_outputs`; `bench/fabricate.py` writes the same)."""
    return {
        "version": MARKER_VERSION,
        "task_id": task_id,
        "kind": kind,
        "files": files,
        "sizes": sizes,   # checked before hashing: a truncated or swapped file fails without being read
        "tables": sorted(tables_),
        "metrics": metrics,
        "steps": encode_steps(steps),
        "meta": meta,
        "finished_at": finished_at,
    }


def marker_bytes(marker: dict) -> bytes:
    """A marker as written: compact JSON (values JSON cannot hold as they are written as text)."""
    return json.dumps(marker, separators=(",", ":"), default=str).encode()


def encode_steps(steps: Iterable) -> dict[str, str]:
    """(key, step, value) series as the marker holds them: {key: "[step,value,step,value,...]"}, in order."""
    series: dict[str, list] = {}
    for key, step, value in steps:
        series.setdefault(str(key), []).extend((step, value))
    return {key: json.dumps(points, separators=(",", ":"), default=str) for key, points in series.items()}


def marker_steps(marker: dict) -> list[list]:
    """A marker's step series as [key, step, value] (version 2 holds them so; version 3 as `encode_steps`
    writes them: each key's points in their order, the keys in the order they first came). A series that
    does not read back is left out with a warning: the steps only draw MLflow's charts (the numbers are
    in the task's tables), and the task stays finished."""
    steps = marker.get("steps")
    if isinstance(steps, list):
        return steps
    out = []
    for key, text in (steps.items() if isinstance(steps, dict) else ()):
        try:
            points = json.loads(text)
            if not (isinstance(points, list) and len(points) % 2 == 0):
                raise ValueError("not a list of (step, value) pairs")
        except (TypeError, ValueError, RecursionError) as exc:
            _LOG.warning(f"the marker of {marker.get('task_id')} holds an unreadable step series {key!r} "
                         f"({type(exc).__name__}); left out")
            continue
        out += [[key, points[i], points[i + 1]] for i in range(0, len(points), 2)]
    return out
