"""`mmc-sweep status DIR`: progress of a sweep by task kind, read from storage alone.

Works while a run is going on (from another terminal) and after it: the plan comes from the
sweep's `plan.parquet` (written when the run started; never re-planned), finished tasks from their
verified `done.json`, failures from the `tasks` table.
"""
from __future__ import annotations

import sys
import time

from orchestrator import vocab
from orchestrator.results import outputs, tables
from orchestrator.storage.layout import SweepLayout
from orchestrator.results.plan import read_plan

COLUMNS = ("planned", *vocab.TABLE_STATUSES, "remaining")


def status_counts(layout: SweepLayout) -> dict[str, dict[str, int]]:
    plan = read_plan(layout)
    if plan is None:
        raise FileNotFoundError(f"{layout.root} has no plan.parquet yet (the sweep never started a run); "
                                "run it first")
    tasks = tables.read_table(layout, vocab.TASKS)
    last = dict(zip(tasks["task_id"], tasks["status"])) if not tasks.empty else {}
    counts = {kind: dict.fromkeys(COLUMNS, 0) for kind in vocab.TASK_KINDS}
    for task_id, kind in zip(plan["task_id"], plan["kind"]):
        c = counts.setdefault(kind, dict.fromkeys(COLUMNS, 0))
        c["planned"] += 1
        if outputs.read_marker(layout, kind, task_id) is not None:
            c[vocab.FINISHED] += 1
        elif last.get(task_id) in (vocab.FAILED, vocab.SKIPPED):
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
    done = total[vocab.FINISHED] / max(1, total["planned"])
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
