"""Hooks that let tests observe and steer a sweep from inside its processes, without sleeps.

Installed into `orchestrator.run.work` by `sitecustomize.py` (next to this file) in every process whose
environment has MMC_TEST_HOOKS=1 and this directory on PYTHONPATH; `hook_env()` builds that
environment. Each hook is driven by one variable:

- MMC_TEST_EVENTS_DIR: every `work.execute` records, per task and process, the training state it
  resumed from (`resume` events, epoch None for a fresh start) and each epoch it trained
  (`epoch` events) as JSON lines under `<dir>/<task id>/`; `events(dir, task_id)` reads them back.
- MMC_TEST_PAUSE_AFTER_EPOCH=`<task id prefix or kind>:<epoch>`: a single-process training task
  saves its resume state after that epoch, creates `<dir>/paused-<task id>` and then blocks until it
  is killed (a driver killed mid-task, at a known point).
- the runner `events`: creates `<dir>/running/<task id>` while it runs and records how many tasks were
  running when it started; with MMC_TEST_WAIT_FOR=`<kind>:<n>` a task of that kind waits (up to
  WAIT_TIMEOUT_S) until n tasks of its kind *of the same sweep* have started (`partners`): a task that
  saw n partners was still running when the n-th one started, so concurrency is shown by a barrier,
  not by overlapping sleeps. With any other runner, MMC_TEST_WAIT_FOR holds a task of that kind the same
  way before it runs and writes the partners it saw to `<dir>/partners/<task id>` (`partners(dir)`); a
  test adds partners of its own (`release(dir, sweep root, kind)`) to let held tasks go, and sees who
  waits (`arrivals`). With MMC_TEST_HOLD_FOR=`<kind>:<n>:<seconds>` a task of that kind stays
  running until n tasks of its kind run at once (or the seconds pass) and records the most it saw
  (`peak`): if the scheduler allowed n at once, they would all be running together, so a peak below n
  shows a limit held. It fails the tasks named by MMC_FAIL_TASKS like every runner.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

HOOKS_DIR = Path(__file__).resolve().parent
EVENTS_ENV, PAUSE_ENV, WAIT_ENV = "MMC_TEST_EVENTS_DIR", "MMC_TEST_PAUSE_AFTER_EPOCH", "MMC_TEST_WAIT_FOR"
HOLD_ENV = "MMC_TEST_HOLD_FOR"
WAIT_TIMEOUT_S = 120.0
POLL_S = 0.01


def hook_env(events_dir: str | os.PathLike, **extra: str) -> dict[str, str]:
    """Environment variables that activate the hooks in a process and its children (Ray workers)."""
    repo = HOOKS_DIR.parents[1]
    return {"MMC_TEST_HOOKS": "1", EVENTS_ENV: str(events_dir),
            "PYTHONPATH": os.pathsep.join([str(HOOKS_DIR), str(repo)]), **extra}


def events(events_dir: str | os.PathLike, task_id: str) -> list[dict]:
    """Every event recorded for `task_id`, in the order each process wrote them (processes in the
    order of their first event)."""
    directory = Path(events_dir) / task_id
    streams = []
    for path in directory.glob("*.jsonl") if directory.is_dir() else []:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            streams.append(lines)
    streams.sort(key=lambda lines: lines[0]["t"])
    return [event for lines in streams for event in lines]


def trained_epochs(events_dir, task_id: str, rank: int = 0) -> list[list[int]]:
    """Per attempt (process) of `task_id` on `rank`: the epochs it trained."""
    attempts: dict[tuple, list[int]] = {}
    for e in events(events_dir, task_id):
        if e["rank"] == rank:
            attempts.setdefault((e["pid"], e["attempt"]), [])
            if e["event"] == "epoch":
                attempts[(e["pid"], e["attempt"])].append(e["epoch"])
    return list(attempts.values())


def resumed_from(events_dir, task_id: str, rank: int = 0) -> list[int | None]:
    """Per attempt of `task_id` on `rank`: the epoch it resumed from (None: started fresh)."""
    return [e["epoch"] for e in events(events_dir, task_id) if e["event"] == "resume" and e["rank"] == rank]


def _record(task_id: str, rank: int, attempt: str, event: str, epoch) -> None:
    directory = Path(os.environ[EVENTS_ENV]) / task_id
    directory.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"event": event, "epoch": epoch, "rank": rank, "pid": os.getpid(), "attempt": attempt,
                       "t": time.time()})
    with open(directory / f"{os.getpid()}-{attempt}-{rank}.jsonl", "a") as f:
        f.write(line + "\n")
        f.flush()


def _matches(task, who: str) -> bool:
    return task.kind == who or task.id.startswith(who)


def install(work) -> None:
    """Patch the freshly imported `orchestrator.run.work` module."""
    work.RUNNERS["events"] = _events_runner(work)
    execute = work.execute

    def execute_with_hooks(task, runner, env):
        if os.environ.get(EVENTS_ENV):
            _observe(task, env)
        if runner != "events" and os.environ.get(WAIT_ENV):
            seen = _wait_for_partners(task, env)
            if seen is not None:
                directory = Path(os.environ[EVENTS_ENV]) / "partners"
                directory.mkdir(parents=True, exist_ok=True)
                (directory / task.id).write_text(str(seen))
        pause = os.environ.get(PAUSE_ENV)
        if pause:
            who, epoch = pause.rsplit(":", 1)
            if _matches(task, who):
                _pause_after(task, env, int(epoch))
        return execute(task, runner, env)

    work.execute = execute_with_hooks


def _observe(task, env) -> None:
    attempt = f"{time.time_ns()}"
    resume_state, on_epoch = env.resume_state, env.on_epoch

    def resume():
        state = resume_state()
        _record(task.id, env.rank, attempt, "resume", None if state is None else state.epoch)
        return state

    def epoch_done(report):
        if on_epoch is not None:
            on_epoch(report)
        _record(task.id, env.rank, attempt, "epoch", report.epoch)

    env.resume_state, env.on_epoch = resume, epoch_done


def _pause_after(task, env, epoch: int) -> None:
    on_epoch = env.on_epoch

    def save_then_pause(report):
        if on_epoch is not None:
            on_epoch(report)
        if report.epoch == epoch:
            directory = Path(os.environ[EVENTS_ENV])
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"paused-{task.id}").write_text(str(os.getpid()))
            while True:            # until the test kills this process
                time.sleep(3600)

    env.on_epoch = save_then_pause


def _arrived(root: Path, sweep_root: str, kind: str) -> Path:
    return root / "arrived" / hashlib.sha256(sweep_root.encode()).hexdigest()[:16] / kind


def _wait_for_partners(task, env) -> int | None:
    """MMC_TEST_WAIT_FOR=`<kind>:<n>`: a task of that kind waits until n tasks of its kind (of its sweep)
    have arrived, or WAIT_TIMEOUT_S passed; returns how many it saw (None: not its kind)."""
    want = os.environ.get(WAIT_ENV)
    if not want:
        return None
    kind, n = want.rsplit(":", 1)
    if task.kind != kind:
        return None
    arrived = _arrived(Path(os.environ[EVENTS_ENV]), env.layout.root, kind)
    arrived.mkdir(parents=True, exist_ok=True)
    (arrived / task.id).touch()
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while (partners := len(list(arrived.iterdir()))) < int(n) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return partners


def arrivals(events_dir, sweep_root: str, kind: str) -> set[str]:
    """The tasks of `kind` that have reached the MMC_TEST_WAIT_FOR barrier (held, or let go since)."""
    arrived = _arrived(Path(events_dir), sweep_root, kind)
    return {p.name for p in arrived.iterdir()} if arrived.is_dir() else set()


def release(events_dir, sweep_root: str, kind: str, name: str = "released-by-the-test") -> None:
    """One more partner at the barrier of `kind` (of the sweep at `sweep_root`): held tasks may go once
    the count is reached."""
    arrived = _arrived(Path(events_dir), sweep_root, kind)
    arrived.mkdir(parents=True, exist_ok=True)
    (arrived / name).touch()


def partners(events_dir) -> dict[str, int]:
    """task id -> the partners it saw at the barrier (runners other than `events`)."""
    directory = Path(events_dir) / "partners"
    return {p.name: int(p.read_text()) for p in directory.iterdir()} if directory.is_dir() else {}


def _events_runner(work):
    def run_events(task, env):
        work._maybe_fail(task)
        root = Path(os.environ[EVENTS_ENV])
        running = root / "running"
        running.mkdir(parents=True, exist_ok=True)
        me = running / f"{task.kind}~{task.id}"
        started = time.time()
        me.write_text(str(os.getpid()))
        at_start = len(list(running.iterdir()))
        partners = _wait_for_partners(task, env)
        hold = os.environ.get(HOLD_ENV)
        peak = None
        if hold:
            kind, n, seconds = hold.split(":")
            if task.kind == kind:
                deadline, peak = time.monotonic() + float(seconds), 0
                while time.monotonic() < deadline:
                    peak = max(peak, len(list(running.glob(f"{kind}~*"))))
                    if peak >= int(n):
                        break
                    time.sleep(POLL_S)
        node_id = None
        try:
            import ray

            node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
        except ImportError:
            pass
        me.unlink()
        return work.TaskOutput(metrics={"started_at": started, "finished_at": time.time(),
                                        "running_at_start": float(at_start),
                                        **({"partners": float(partners)} if partners is not None else {}),
                                        **({"peak": float(peak)} if peak is not None else {})},
                               meta={"node_id": node_id, "pid": os.getpid(), "host": socket.gethostname()})

    return run_events
