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
  not by overlapping sleeps. With MMC_TEST_HOLD_FOR=`<kind>:<n>:<seconds>` a task of that kind stays
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
        partners = None
        want = os.environ.get(WAIT_ENV)
        if want:
            kind, n = want.rsplit(":", 1)
            if task.kind == kind:
                sweep = hashlib.sha256(env.layout.root.encode()).hexdigest()[:16]
                arrived = root / "arrived" / sweep / kind
                arrived.mkdir(parents=True, exist_ok=True)
                (arrived / task.id).touch()
                deadline = time.monotonic() + WAIT_TIMEOUT_S
                while (partners := len(list(arrived.iterdir()))) < int(n) and time.monotonic() < deadline:
                    time.sleep(POLL_S)
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
