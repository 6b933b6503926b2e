"""Runners for tests and benchmarks, selected by import path like any plugin (`--runner
tests.support.runners:sleep`, `run_sweep(spec, runner="tests.support.runners:synthetic")`): Ray
workers import this module themselves (the repository is on their PYTHONPATH in tests), so nothing
is patched into the production runner.

- `noop`: does nothing (orchestration overhead); `sleep`: sleeps `$MMC_SLEEP_TASK_S` and records
  when and where it ran, and with MMC_TEST_BLOCK=`<task id prefix or kind>` a matching task creates
  `<MMC_TEST_EVENTS_DIR>/blocked-<task id>` and sleeps until it is killed (a driver stopped while a
  task runs, at a known point); `synthetic`: rows of every table at the sizes the real task would write,
  computed from nothing (scale benchmarks); `events`: the steering runner below.
- `real`: the science (`orchestrator.run.work.run_real`) plus what the environment asks for:

  - MMC_FAIL_TASKS: comma-separated task-id prefixes or kinds whose tasks raise (every runner here
    but `noop` honours it);
  - MMC_TEST_EVENTS_DIR: every task records, per process, the training state it resumed from
    (`resume` events, epoch None for a fresh start) and each epoch it trained (`epoch` events) as JSON
    lines under `<dir>/<task id>/`; `events(dir, task_id)` reads them back;
  - MMC_TEST_PAUSE_AFTER_EPOCH=`<task id prefix or kind>:<epoch>`: a training task saves its resume
    state after that epoch, creates `<dir>/paused-<task id>` and then blocks until it is killed (a
    driver killed mid-task, at a known point);
  - MMC_CRASH_WORKER_AT_EPOCH=`<task id prefix>:<epoch>`: rank 1 of a data-parallel task dies right
    after that epoch, once (a marker file in MMC_CRASH_MARKER_DIR says it did).

- `events`: creates `<dir>/running/<task id>` while it runs and records how many tasks were running
  when it started; with MMC_TEST_WAIT_FOR=`<kind>:<n>` a task of that kind waits (up to
  WAIT_TIMEOUT_S) until n tasks of its kind *of the same sweep* have started (`partners`): a task that
  saw n partners was still running when the n-th one started, so concurrency is shown by a barrier,
  not by overlapping sleeps. With any other runner (`sleep`, `synthetic`, `real`), MMC_TEST_WAIT_FOR
  holds a task of that kind the same way before it runs and writes the partners it saw to
  `<dir>/partners/<task id>` (`partners(dir)`); a test adds partners of its own (`release(dir, sweep
  root, kind)`) to let held tasks go, and sees who waits (`arrivals`). With MMC_TEST_HOLD_FOR=`<kind>:<n>:<seconds>` a task of that kind stays
  running until n tasks of its kind run at once (or the seconds pass) and records the most it saw
  (`peak`): if the scheduler allowed n at once, they would all be running together, so a peak below n
  shows a limit held.

These variables are the tests' own (`ENV_VARS`; the suite clears them from the caller's environment,
tests/conftest.py); the ones mmc-sweep itself reads are declared in `orchestrator.knobs`.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import tempfile
import time
from pathlib import Path

from orchestrator import vocab
from orchestrator.results.outputs import TaskOutput
from orchestrator.run.progress import planned_epochs
from tasks.settings.data import EVAL_SETS

FAIL_ENV, SLEEP_ENV = "MMC_FAIL_TASKS", "MMC_SLEEP_TASK_S"
EVENTS_ENV, PAUSE_ENV, WAIT_ENV, HOLD_ENV = ("MMC_TEST_EVENTS_DIR", "MMC_TEST_PAUSE_AFTER_EPOCH", "MMC_TEST_WAIT_FOR",
                                             "MMC_TEST_HOLD_FOR")
CRASH_ENV, CRASH_MARKER_DIR_ENV = "MMC_CRASH_WORKER_AT_EPOCH", "MMC_CRASH_MARKER_DIR"
BLOCK_ENV = "MMC_TEST_BLOCK"
ENV_VARS = (FAIL_ENV, SLEEP_ENV, EVENTS_ENV, PAUSE_ENV, WAIT_ENV, HOLD_ENV, CRASH_ENV, CRASH_MARKER_DIR_ENV, BLOCK_ENV)
DEFAULT_SLEEP_S = 0.5
WAIT_TIMEOUT_S = 120.0
POLL_S = 0.01

HERE = __name__   # runner names are f"{HERE}:<function>"


def name(function: str) -> str:
    """The import path of one of these runners, e.g. `name("sleep")`."""
    return f"{HERE}:{function}"


def hook_env(events_dir: str | os.PathLike, **extra: str) -> dict[str, str]:
    """Environment variables that make `real` and `events` record into `events_dir` (plus `extra`)."""
    return {EVENTS_ENV: str(events_dir), **extra}


# ---------------------------------------------------------------- the runners

def noop(task, env) -> TaskOutput:
    """Does no work (benchmarks of orchestration overhead)."""
    return TaskOutput()


def at_chance(task, env) -> TaskOutput:
    """Models that learnt nothing: every trained model's test accuracy 10% (chance on 10 classes), no rows."""
    if task.kind in (vocab.PRETRAIN, vocab.FINETUNE):
        return TaskOutput(metrics={f"eval.{s}.acc": 0.1 for s in EVAL_SETS})
    return TaskOutput()


def sleep(task, env) -> TaskOutput:
    """Sleeps and records when (metrics) and where (meta: Ray node id, pid) it ran: scheduling tests."""
    fail_if_asked(task)
    _hold_at_barrier(task, env)
    started = time.time()
    block = os.environ.get(BLOCK_ENV)
    if block and _matches(task, block):
        directory = Path(os.environ[EVENTS_ENV])
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"blocked-{task.id}").write_text(str(os.getpid()))
        while True:                # until the test stops the sweep
            time.sleep(3600)
    time.sleep(float(os.environ.get(SLEEP_ENV, DEFAULT_SLEEP_S)))
    return TaskOutput(metrics={"started_at": started, "finished_at": time.time()}, meta=_where())


def real(task, env) -> TaskOutput:
    """The science, with the faults and observations the environment asks for (see the module)."""
    fail_if_asked(task)
    _hold_at_barrier(task, env)
    crash = os.environ.get(CRASH_ENV)
    if crash:                            # innermost: the crashed epoch is not recorded as trained
        _crash_after(task, env, crash)
    if os.environ.get(EVENTS_ENV):
        _observe(task, env)
    pause = os.environ.get(PAUSE_ENV)
    if pause:
        who, epoch = pause.rsplit(":", 1)
        if _matches(task, who):
            _pause_after(task, env, int(epoch))
    from orchestrator.run import work   # here, as in every runner: the driver checks a runner by importing
    # this module, and a driver imports no torch (tests/orchestrator/run/test_sweep.py)

    return work.run_real(task, env)


def synthetic(task, env) -> TaskOutput:
    """Writes rows of every table at the sizes the real task would (epochs, alphas x eval sets, barriers),
    with made-up values and no checkpoint, computing nothing: the result tables at scale (benchmarks)."""
    fail_if_asked(task)
    _hold_at_barrier(task, env)
    from orchestrator.run import work
    from tasks import paths as paths_lib

    rng = random.Random(task.id)
    sets = EVAL_SETS
    if task.kind == vocab.PATH_EVAL:
        n = int(task.settings.get("paths.num_alphas") or 11)
        alphas = [i / (n - 1) for i in range(n)] if n > 1 else [0.0, 1.0]
        rows = []
        for eval_set in sets:
            height = rng.uniform(0, 1)
            for a in alphas:
                bump = height * 4 * a * (1 - a)
                rows.append({"alpha": a, "eval_set": eval_set, "loss": 0.3 + bump, "acc": max(0.0, 0.9 - 0.5 * bump),
                             "n": 1000, "agree_a": 1 - a, "agree_b": a, "reliance_randimg": rng.uniform(0, 0.5),
                             "reliance_randcue": rng.uniform(0, 0.5)})
        return work.path_output(task, rows, paths_lib.barriers(rows))
    if task.kind == vocab.ALIGN:   # a checkpoint and facts only, no rows
        return TaskOutput(metrics={"weight_distance_before": 1.0, "weight_distance_after": 0.5, "identity": 0.0},
                          meta={"identity": False})
    epochs = planned_epochs(task) or 0
    curve = [{"epoch": e, "split": work.curve_split(task, e), "loss": 2.0 / (e + 1), "acc": 1 - 1 / (e + 2),
              "lr": 0.05, "duration_s": 0.0} for e in range(max(1, epochs))]
    out = TaskOutput(tables={vocab.TRAIN_CURVES: work.curve_rows(task, env, None, curve)})
    out.steps = work.curve_steps(out.tables[vocab.TRAIN_CURVES])
    if task.kind != vocab.MIDPOINT:
        rows = [{"eval_set": e, "loss": rng.uniform(0.1, 2.0), "acc": rng.uniform(0.1, 0.99), "n": 1000} for e in sets]
        out.tables[vocab.EVALUATIONS] = work.rows_for(task, vocab.EVALUATIONS, rows)
        out.metrics.update({f"eval.{r['eval_set']}.{m}": r[m] for r in rows for m in ("loss", "acc")})
    return out


def events(task, env) -> TaskOutput:
    """Records concurrency (see the module); waits for or holds its partners when asked."""
    fail_if_asked(task)
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
    me.unlink()
    return TaskOutput(metrics={"started_at": started, "finished_at": time.time(), "running_at_start": float(at_start),
                               **({"partners": float(partners)} if partners is not None else {}),
                               **({"peak": float(peak)} if peak is not None else {})},
                      meta=_where())


# ---------------------------------------------------------------- faults and observations

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


def _hold_at_barrier(task, env) -> None:
    """The MMC_TEST_WAIT_FOR barrier for runners other than `events`: the partners seen go to
    `<dir>/partners/<task id>`."""
    seen = _wait_for_partners(task, env)
    if seen is not None:
        directory = Path(os.environ[EVENTS_ENV]) / "partners"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / task.id).write_text(str(seen))


def fail_if_asked(task) -> None:
    prefixes = [p for p in os.environ.get(FAIL_ENV, "").split(",") if p]
    if any(_matches(task, p) for p in prefixes):
        raise RuntimeError(f"injected failure for task {task.id} ({FAIL_ENV})")


def _matches(task, who: str) -> bool:
    return task.kind == who or task.id.startswith(who)


def _where() -> dict:
    node_id = None
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except ImportError:
        pass
    return {"node_id": node_id, "pid": os.getpid(), "host": socket.gethostname()}


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


def _crash_after(task, env, crash: str) -> None:
    prefix, at = crash.rsplit(":", 1)
    marker = Path(os.environ.get(CRASH_MARKER_DIR_ENV, tempfile.gettempdir())) / f"mmc-crashed-{task.id}"
    if not task.id.startswith(prefix) or env.rank != 1:
        return
    on_epoch = env.on_epoch

    def report_then_crash(report):
        on_epoch(report)
        if report.epoch == int(at) and not marker.exists():
            marker.touch()
            os._exit(1)   # a worker that dies mid-task, once

    env.on_epoch = report_then_crash


# ---------------------------------------------------------------- reading what was recorded

def recorded(events_dir: str | os.PathLike, task_id: str) -> list[dict]:
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


def trained_epochs(events_dir, task_id: str, rank: int = 0) -> list[list[int]]:
    """Per attempt (process) of `task_id` on `rank`: the epochs it trained."""
    attempts: dict[tuple, list[int]] = {}
    for e in recorded(events_dir, task_id):
        if e["rank"] == rank:
            attempts.setdefault((e["pid"], e["attempt"]), [])
            if e["event"] == "epoch":
                attempts[(e["pid"], e["attempt"])].append(e["epoch"])
    return list(attempts.values())


def resumed_from(events_dir, task_id: str, rank: int = 0) -> list[int | None]:
    """Per attempt of `task_id` on `rank`: the epoch it resumed from (None: started fresh)."""
    return [e["epoch"] for e in recorded(events_dir, task_id) if e["event"] == "resume" and e["rank"] == rank]


def _record(task_id: str, rank: int, attempt: str, event: str, epoch) -> None:
    directory = Path(os.environ[EVENTS_ENV]) / task_id
    directory.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"event": event, "epoch": epoch, "rank": rank, "pid": os.getpid(), "attempt": attempt,
                       "t": time.time()})
    with open(directory / f"{os.getpid()}-{attempt}-{rank}.jsonl", "a") as f:
        f.write(line + "\n")
        f.flush()
