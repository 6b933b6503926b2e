"""`mmc-sweep status DIR`: progress of a sweep by task kind, read from storage alone.

Works while a run is going on (from another terminal) and after it: the plan comes from the
sweep's `spec.yaml`, finished tasks from their verified `done.json`, failures from the `tasks` table.
"""
from __future__ import annotations

import sys
import time

from orchestrator import outputs, sinks
from orchestrator.graph import TASK_KINDS, build_graph
from orchestrator.layout import SweepLayout
from orchestrator.spec import parse_spec

COLUMNS = ("planned", "finished", "failed", "skipped", "remaining")


def status_counts(layout: SweepLayout) -> dict[str, dict[str, int]]:
    spec = parse_spec(layout.storage.read_bytes(layout.spec_file()).decode(), layout.spec_file())
    graph = build_graph(spec)
    tasks = sinks.read_table(layout, "tasks")
    last = {}
    if not tasks.empty:
        for row in tasks.itertuples():
            last[row.task_id] = row.status
    counts = {kind: dict.fromkeys(COLUMNS, 0) for kind in TASK_KINDS}
    for task_id, task in graph.tasks.items():
        c = counts[task.kind]
        c["planned"] += 1
        if outputs.read_marker(layout, task) is not None:
            c["finished"] += 1
        elif last.get(task_id) in ("failed", "skipped"):
            c[last[task_id]] += 1
        else:
            c["remaining"] += 1
    return counts


def format_status(counts: dict[str, dict[str, int]]) -> str:
    header = f"{'kind':<10}" + "".join(f"{c:>11}" for c in COLUMNS)
    lines = [header, "-" * len(header)]
    total = dict.fromkeys(COLUMNS, 0)
    for kind, c in counts.items():
        if not c["planned"]:
            continue
        lines.append(f"{kind:<10}" + "".join(f"{c[k]:>11}" for k in COLUMNS))
        for k in COLUMNS:
            total[k] += c[k]
    lines.append("-" * len(header))
    lines.append(f"{'total':<10}" + "".join(f"{total[k]:>11}" for k in COLUMNS))
    done = total["finished"] / max(1, total["planned"])
    bar = "#" * int(30 * done) + "." * (30 - int(30 * done))
    lines.append(f"[{bar}] {100 * done:.0f}% finished")
    return "\n".join(lines)


def print_status(layout: SweepLayout, watch: bool = False, interval_s: float = 2.0,
                 stream=None) -> int:
    """Print the progress table (refreshing every `interval_s` with `watch` until nothing is
    left to run). Returns 1 if some tasks failed or were skipped, else 0. `stream` defaults to
    the current `sys.stdout` (looked up at call time, so redirection and capture work)."""
    stream = stream if stream is not None else sys.stdout
    while True:
        counts = status_counts(layout)
        text = format_status(counts)
        if watch and stream.isatty():
            stream.write("\x1b[2J\x1b[H")
        print(f"{layout.root}  ({time.strftime('%H:%M:%S')})", file=stream)
        print(text, file=stream, flush=True)
        remaining = sum(c["remaining"] for c in counts.values())
        if not watch or remaining == 0:
            failed = sum(c["failed"] + c["skipped"] for c in counts.values())
            return 1 if failed else 0
        time.sleep(interval_s)
