"""`mmc-sweep status DIR [--watch] [--json]`: progress of a sweep, read from storage alone.

Works while a run is going on (from another terminal or machine) and after it: the plan comes from
the sweep's `plan.parquet` (written when the run started; never re-planned; rebuilt from spec.yaml only
when the file is gone; its task_id and kind columns are all status reads), failures and task durations
from the `tasks` table, and the epoch a running training task has reached from its `progress.json`
(`orchestrator.run.progress`). A task counts as finished only when its `done.json` verifies as a run
would check it (`outputs.verify_outputs`, the same rule as a resumed run's cache check: the marker read
whole and well-formed, every listed file's size and sha256, compacted rows in parts whose own size and
sha256 verify, each part hashed once per pass; all tasks in one pass, `outputs.verify_many`, shared by
forked processes in a sweep of 20,000 tasks or more); a marker the run indexed when the task finished
(`results/marker_index`) is not read again while its size, mtime, ctime and inode are unchanged, nor a
checkpoint it lists that the run hashed then (the other files it lists are verified as always); a task
whose outputs (its `done.json` included) were damaged after it finished counts as remaining and is
named, as the next run will recompute it. Only the tasks that
have not finished are looked up further: their latest `tasks` row (one join; the table is not read at
all when every task finished) and, for training tasks, their `progress.json`. It shows counts
per task kind, the running training tasks (epoch k/N, elapsed time, ETA, last loss), the failed tasks
with their one-line reason, damaged tasks, and an ETA of the whole sweep. `--json` prints the same as
one JSON object (`status_snapshot`; one per refresh with `--watch`, which hashes a file again only
when its size or mtime changed).

Whether a run is going on is read from the sweep's `run.lock` (orchestrator/storage/lock.py): a run
that ends, cleanly or by Ctrl-C, frees it, and a killed driver's lock is stale by the lock's own rule
(`lock.holder_gone`: its pid ended or was reused on this machine, or its lease expired). A sweep with
tasks left that no run holds is shown as stopped, its training tasks with a `progress.json` as
interrupted (not running: their records only get older), with no ETA; `--watch` ends once it has shown it.
"""
from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter

import pandas as pd

from orchestrator import vocab
from orchestrator.machine import usable_cpus
from orchestrator.results import outputs
from orchestrator.results.plan import plan_of, rebuilt_note
from orchestrator.run import progress as progress_lib
from orchestrator.storage import lock as lock_lib
from orchestrator.storage.layout import SweepLayout
from orchestrator.uris import redact

COLUMNS = ("planned", *vocab.TABLE_STATUSES, "remaining")
CHECKED = ("finished: done.json read whole and every output it lists verified by size and sha256 (compacted rows by "
           "their part's), as a run's cache check does; a marker or checkpoint unchanged (size, mtime, ctime, inode) "
           "since the run indexed and hashed it is taken as then")
FAILED_SHOWN = 10            # failed tasks listed by name (the JSON lists them all)
RECENT_TASKS = 200           # finished tasks whose overlap estimates how many run at once


def status_counts(layout: SweepLayout) -> dict[str, dict[str, int]]:
    """Per task kind: planned, finished, failed, skipped, remaining (`status_snapshot`'s counts)."""
    return status_snapshot(layout)["counts"]


def status_snapshot(layout: SweepLayout, now: float | None = None, hashes: dict | None = None) -> dict:
    """What `mmc-sweep status` shows, as plain data (the `--json` output):

    sweep, directory, at (ISO time), counts {kind: {planned, finished, failed, skipped, remaining}},
    total, finished_fraction, running [{task_id, kind, epoch, epochs, elapsed_s, eta_s, loss, acc,
    updated_s_ago}], failed [{task_id, kind, error}] (the error's first line), damaged {task_id: why its
    finished outputs no longer verify}, note (e.g. the plan was rebuilt from spec.yaml), eta_s (null:
    unknown, or stopped), live_run (a run holds the sweep's lock; null: not looked at, as nothing remains),
    stopped (no run holds it and tasks remain), interrupted [{task_id, kind, epoch, epochs, loss, acc,
    updated_s_ago}] (a stopped sweep's training tasks that had started: `running` is then empty),
    set_aside [task_id] (finished tasks made from a parent that runs again, `run/cache.py`: remaining until
    the run takes each back or recomputes it),
    last_progress_s_ago (since the latest task row or epoch; null: none). `hashes`: see
    `outputs.verify_outputs`. ValueError when the plan cannot be had."""
    now = time.time() if now is None else now
    plan, rebuilt = plan_of(layout, columns=("task_id", "kind"))
    kinds, ids = plan["kind"].tolist(), plan["task_id"].tolist()
    verified = outputs.verify_many(layout, zip(kinds, ids), hashes, processes=usable_cpus())
    counts = {kind: dict.fromkeys(COLUMNS, 0) for kind in vocab.TASK_KINDS}
    for kind in dict.fromkeys(kinds):
        counts.setdefault(kind, dict.fromkeys(COLUMNS, 0))
    for kind, n in Counter(kinds).items():
        counts[kind]["planned"] = n
    ok = [verified[task_id][0] for task_id in ids]
    for kind, n in Counter(kind for kind, done in zip(kinds, ok) if done).items():
        counts[kind][vocab.FINISHED] = n
    unfinished = [(task_id, kind) for task_id, kind, done in zip(ids, kinds, ok) if not done]
    rows = None
    if unfinished:           # a finished task needs no row (and so not the tables' schemas, nor torch behind them)
        from orchestrator.results import tables
        rows = tables.read_table(layout, vocab.TASKS)
    running, failed, remaining, damaged, set_aside = [], [], [], {}, []
    for task_id, kind, last in _with_last_rows(rows, unfinished):
        c = counts[kind]
        reason = verified[task_id][1]
        if reason != outputs.NOT_FINISHED:     # it finished once (the marker is written last): damaged since
            damaged[task_id] = reason
        elif last is not None and last["status"] == vocab.FINISHED and _is_set_aside(layout, kind, task_id):
            set_aside.append(task_id)
        record = progress_lib.read_progress(layout, kind, task_id) if kind in vocab.TRAINING_KINDS else None
        ended = _seconds(last["finished_at"]) if last is not None else None
        if record is not None and (ended is None or record.get("updated_at", 0) > ended):
            running.append(_running(record, task_id, kind, now))      # (again) after its last recorded end
            c["remaining"] += 1
        elif last is not None and last["status"] in (vocab.FAILED, vocab.SKIPPED):
            c[last["status"]] += 1
            if last["status"] == vocab.FAILED:
                failed.append({"task_id": task_id, "kind": kind, "error": _first_line(last["error"])})
        else:
            c["remaining"] += 1
            remaining.append(kind)
    total = {k: sum(c[k] for c in counts.values()) for k in COLUMNS}
    # read last (a run that ended meanwhile is not taken for a live one), and only while tasks remain
    live = run_holds(layout) if total["remaining"] else None
    stopped = live is False
    interrupted = [_interrupted(r) for r in running] if stopped else []
    last = _last_progress_s_ago(rows, running, now)
    return {
        "sweep": layout.sweep, "directory": redact(layout.root),
        "at": pd.Timestamp(now, unit="s", tz="UTC").isoformat(timespec="seconds"),
        "counts": counts, "total": total,
        "finished_fraction": total[vocab.FINISHED] / max(1, total["planned"]),
        "running": [] if stopped else running, "failed": failed, "damaged": damaged, "set_aside": set_aside,
        "note": rebuilt_note(layout, plan) if rebuilt else "",
        "eta_s": None if stopped else _sweep_eta(rows, remaining, running),
        "live_run": live, "stopped": stopped, "interrupted": interrupted, "last_progress_s_ago": last,
    }


def run_holds(layout: SweepLayout) -> bool:
    """Whether a run holds the sweep now: its `run.lock` is there and the lock's holder is not provably
    gone (`lock.holder_gone`). A lock that cannot be read as one (being written, garbled, storage
    unreachable) counts as held: status does not call a sweep stopped on what it cannot tell."""
    storage, path = layout.storage, layout.lock_file()
    try:
        if not storage.is_file(path):
            return False
        data = storage.read_bytes(path, max_bytes=lock_lib.MAX_LOCK_BYTES, replaced=True)
    except FileNotFoundError:        # freed between the two looks
        return False
    except OSError:
        return True
    holder = lock_lib.parse_holder(data)   # read as the lock reads it: what a rerun would wait for, it waits for
    return holder is None or not lock_lib.holder_gone(holder)


def _interrupted(running: dict) -> dict:
    """A running task's entry once no run holds the sweep: where it stopped, without the elapsed time and
    ETA that would keep growing and shrinking for a task nothing runs."""
    return {k: v for k, v in running.items() if k not in ("elapsed_s", "eta_s")}


def _last_progress_s_ago(rows: pd.DataFrame | None, running: list[dict], now: float) -> float | None:
    """Seconds since the sweep last moved: its latest `tasks` row's end or training task's epoch; None
    when neither is known."""
    ago = [r["updated_s_ago"] for r in running]
    if rows is not None and not rows.empty:
        latest = _seconds(pd.to_datetime(rows["finished_at"], utc=True).max())
        ago += [round(now - latest, 1)] if latest is not None else []
    return min(ago, default=None)


def _with_last_rows(rows: pd.DataFrame, tasks: list[tuple[str, str]]):
    """(task_id, kind, its latest `tasks` row as a dict or None) of the given (task_id, kind), in their
    order: one join with the table, not a lookup per task (only unfinished tasks come here)."""
    if not tasks:
        return []
    if rows.empty:
        return [(task_id, kind, None) for task_id, kind in tasks]
    ids = [task_id for task_id, _ in tasks]
    latest = rows.drop_duplicates("task_id", keep="last")
    wanted = pd.DataFrame({"task_id": ids, "_order": range(len(ids))})
    joined = wanted.merge(latest[["task_id", "status", "finished_at", "error"]], on="task_id", how="left",
                          indicator=True).sort_values("_order")
    found = (joined["_merge"] == "both").tolist()
    records = joined[["status", "finished_at", "error"]].to_dict("records")
    return [(task_id, kind, record if seen else None) for (task_id, kind), record, seen in zip(tasks, records, found)]


def format_damaged(damaged: dict[str, str], shown: int = 5) -> str:
    if not damaged:
        return ""
    lines = [f"{len(damaged)} finished task(s) no longer verify and count as remaining; the next run recomputes "
             "them (rows of a part whose manifest was lost it first writes back, where each done.json vouches "
             "for them):"]
    lines += [f"  - {task_id}: {reason}" for task_id, reason in list(damaged.items())[:shown]]
    if len(damaged) > shown:
        lines.append(f"  ... and {len(damaged) - shown} more")
    return "\n".join(lines)


def _is_set_aside(layout: SweepLayout, kind: str, task_id: str) -> bool:
    """Whether a run set this task's marker aside (`outputs.set_aside`); asked only of a task that finished
    once and has no marker now, so a sweep that has not started costs no request per task."""
    try:
        return layout.storage.is_file(layout.set_aside_marker_file(kind, task_id))
    except OSError:
        return False


def format_set_aside(set_aside: list[str], shown: int = 5) -> str:
    if not set_aside:
        return ""
    names = ", ".join(set_aside[:shown]) + (f" and {len(set_aside) - shown} more" if len(set_aside) > shown else "")
    return (f"{len(set_aside)} finished task(s) set aside, counted as remaining: made from the outputs of a task that "
            f"runs again; the run keeps each without recomputing where its parents give the same bits, else "
            f"recomputes it: {names}")


def _seconds(value) -> float | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).timestamp()


def _first_line(error) -> str:
    text = "" if error is None or (isinstance(error, float) and math.isnan(error)) else str(error)
    return redact(text.strip().splitlines()[0]) if text.strip() else "unknown error"


def _running(record: dict, task_id: str, kind: str, now: float) -> dict:
    return {"task_id": task_id, "kind": kind, "epoch": record.get("epoch"), "epochs": record.get("epochs"),
            "elapsed_s": round(now - record.get("started_at", now), 1),
            "eta_s": _round(progress_lib.eta_s(record, now)), "loss": record.get("loss"), "acc": record.get("acc"),
            "updated_s_ago": round(now - record.get("updated_at", now), 1)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _sweep_eta(rows: pd.DataFrame, remaining: list[str], running: list[dict]) -> float | None:
    """Seconds until the plan is done, roughly: the tasks not started take the mean duration of their
    kind's finished tasks (else of all finished tasks), the running ones their own ETA, and the work
    is shared by as many tasks at once as the latest finished tasks overlapped (at least the running
    ones). None before any task finished here (cached tasks took no time in this directory)."""
    if not remaining and not running:
        return 0.0          # (`rows` is None when every task finished)
    done = rows[(rows["status"] == vocab.FINISHED) & ~rows["cached"].fillna(False).astype(bool)
                & rows["duration_s"].notna()] if not rows.empty else rows
    if done.empty:
        return None
    mean = done.groupby("kind")["duration_s"].mean().to_dict()
    overall = float(done["duration_s"].mean())
    work = sum(mean.get(kind, overall) for kind in remaining)
    work += sum(r["eta_s"] if r["eta_s"] is not None else mean.get(r["kind"], overall) for r in running)
    recent = done.sort_values("finished_at").tail(RECENT_TASKS)
    span = (_seconds(recent["finished_at"].max()) or 0) - (_seconds(recent["started_at"].min()) or 0)
    at_once = recent["duration_s"].sum() / span if span > 0 else 1.0
    return round(work / max(1.0, at_once, len(running)), 1)


def format_status(snapshot: dict) -> str:
    """The table of counts per kind, the bar and ETA, the running training tasks and the failed ones."""
    counts = snapshot["counts"]
    header = f"{'kind':<10}" + "".join(f"{c:>11}" for c in COLUMNS)
    lines = [header, "-" * len(header)]
    for kind, c in counts.items():
        if c["planned"]:
            lines.append(f"{kind:<10}" + "".join(f"{c[k]:>11}" for k in COLUMNS))
    total = snapshot["total"]
    lines += ["-" * len(header), f"{'total':<10}" + "".join(f"{total[k]:>11}" for k in COLUMNS)]
    fraction = snapshot["finished_fraction"]
    eta = "" if total["remaining"] == 0 or snapshot["eta_s"] is None else \
        f"; ETA ~{progress_lib.duration(snapshot['eta_s'])}"
    lines.append(f"{progress_lib.bar(fraction)} {100 * fraction:.0f}% finished{eta}")
    if snapshot.get("stopped"):
        lines += ["", format_stopped(snapshot)]
    if snapshot["running"]:
        lines += ["", f"running training tasks ({len(snapshot['running'])}):"]
        for r in snapshot["running"]:
            epochs = f"epoch {r['epoch']}/{r['epochs'] if r['epochs'] is not None else '?'}"
            loss = f"  loss {r['loss']:.3f}" if isinstance(r["loss"], (int, float)) else ""
            lines.append(f"  {r['task_id']}  {epochs:<14} {progress_lib.duration(r['elapsed_s'])} elapsed  "
                         f"ETA {progress_lib.duration(r['eta_s'])}{loss}  (last epoch "
                         f"{progress_lib.duration(r['updated_s_ago'])} ago)")
    if snapshot.get("interrupted"):
        lines += ["", f"interrupted training tasks ({len(snapshot['interrupted'])}):"]
        for r in snapshot["interrupted"]:
            epochs = f"epoch {r['epoch']}/{r['epochs'] if r['epochs'] is not None else '?'}"
            lines.append(f"  {r['task_id']}  {epochs:<14} (last epoch {progress_lib.duration(r['updated_s_ago'])} ago)")
    if snapshot["failed"]:
        skipped = total[vocab.SKIPPED]
        lines += ["", f"failed ({len(snapshot['failed'])}" + (f"; {skipped} skipped because of them" if skipped else "")
                  + "):"]
        lines += [f"  {f['task_id']}  {f['error']}" for f in snapshot["failed"][:FAILED_SHOWN]]
        if len(snapshot["failed"]) > FAILED_SHOWN:
            lines.append(f"  ... and {len(snapshot['failed']) - FAILED_SHOWN} more (`mmc-sweep status --json`, or "
                         "the `tasks` table)")
    return "\n".join(lines)


def format_stopped(snapshot: dict) -> str:
    """The line of a sweep with tasks left that no run holds (the lock is free or its holder gone)."""
    ago = snapshot.get("last_progress_s_ago")
    last = f" (last progress {progress_lib.duration(ago)} ago)" if ago is not None else ""
    return (f"stopped: no run holds this sweep{last}; rerun the same `mmc-sweep run` command to resume "
            f"({snapshot['total']['remaining']} task(s) remaining)")


def print_status(layout: SweepLayout, watch: bool = False, interval_s: float = 2.0,
                 stream=None, as_json: bool = False) -> int:
    """Print the status (refreshing every `interval_s` with `watch` until nothing is left to run, or no
    run holds the sweep to run it: a stopped sweep is shown once; `as_json`: one JSON object per line).
    Returns 1 if some tasks failed or were skipped, else 0. `stream` defaults to the current `sys.stdout`
    (looked up at call time, so redirection and capture work)."""
    stream = stream if stream is not None else sys.stdout
    hashes: dict = {}
    while True:
        snapshot = status_snapshot(layout, hashes=hashes)
        if as_json:
            print(json.dumps(snapshot), file=stream, flush=True)
        else:
            if watch and stream.isatty():
                stream.write("\x1b[2J\x1b[H")
            print(f"{layout.root}  ({time.strftime('%H:%M:%S')})", file=stream)
            if snapshot["note"]:
                print(snapshot["note"], file=stream)
            print(format_status(snapshot), file=stream)
            if snapshot["damaged"]:
                print(format_damaged(snapshot["damaged"]), file=stream)
            if snapshot["set_aside"]:
                print(format_set_aside(snapshot["set_aside"]), file=stream)
            print(f"({CHECKED})", file=stream, flush=True)
        total = snapshot["total"]
        if not watch or total["remaining"] == 0 or snapshot["stopped"]:
            return 1 if total[vocab.FAILED] + total[vocab.SKIPPED] else 0
        time.sleep(interval_s)
