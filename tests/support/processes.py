"""The processes of a driver started in a session of its own (`start_new_session=True`): its local Ray
(raylet, GCS, agents, workers) lives in the same session, so a test can see what is left of a sweep
after its driver ended, and end all of it. `start_until` starts such a driver and returns once a task
of it has reached a point the test chose (a marker file the test runner creates). `start_logged` starts a
command whose output goes to a file (`output` reads it), `wait_for` waits on what a test watches while such
a driver runs, and `ended` makes sure it has ended, one way or the other, when the test goes on."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

START_TIMEOUT_S = 300      # a loaded machine starts a local Ray slowly


def session_pids(sid: int) -> list[int]:
    """The live processes (not zombies) of session `sid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":   # field 6 of stat: session id
                pids.append(int(entry))
    return pids


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL the driver and every process of its session (its local Ray), and wait for them."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
    deadline = time.monotonic() + 60
    while (left := session_pids(proc.pid)) and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    assert not session_pids(proc.pid), "processes of the killed sweep are still alive"


def default_stop_signals() -> None:
    """(In the child, before exec.) A driver started under `nohup`, or as a background job that ignores
    SIGINT, inherits the ignoring and rightly keeps it; the tests are about a driver that has not been
    told to ignore anything."""
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def start_until(command: list[str], env: dict, cwd: Path, marker: Path, what: str,
                timeout_s: float = START_TIMEOUT_S) -> subprocess.Popen:
    """`command` in a session of its own with default stop-signal handlers, its output piped; returns
    once `marker` exists. If the driver ends first, or `timeout_s` passes, its session is killed and the
    test fails naming `what` it waited for, with the driver's output."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=default_stop_signals)
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate(timeout=60) if proc.poll() is not None else ("", "")
            kill_session(proc)
            pytest.fail(f"the sweep never {what}:\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(0.05)
    return proc


def start_logged(command: list[str], env: dict, cwd: Path, log_dir: Path, name: str = "driver") -> subprocess.Popen:
    """`command` in a session of its own, its output (stdout and stderr) to a new file in `log_dir`: a full
    pipe would stall the sweep while the test watches it. `output(proc)` reads what it wrote so far."""
    log = open(log_dir / f"{name}-{time.time_ns()}.out", "w+")
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    proc.log = log
    return proc


def output(proc: subprocess.Popen) -> str:
    """What a process of `start_logged` has written so far."""
    proc.log.seek(0)
    return proc.log.read()


def wait_for(condition, proc: subprocess.Popen | None, what: str, timeout_s: float, poll_s: float = 0.1,
             context=lambda: ""):
    """The first true value of `condition()`; the test fails naming `what` (with the driver's output and
    `context()`) if `proc` ends first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := condition():
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended before {what}:\n{output(proc)[-3000:]}\n{context()}")
        time.sleep(poll_s)
    pytest.fail(f"not within {timeout_s:g} s: {what}\n{output(proc)[-3000:] if proc else ''}\n{context()}")


@contextmanager
def ended(proc: subprocess.Popen, timeout_s: float):
    """Around what a test does while a driver of `start_logged` runs: afterwards, wait up to `timeout_s`
    for it to end; if the block failed or the driver is still running then, SIGKILL its process group."""
    try:
        yield proc
        proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
