"""The processes of a driver started in a session of its own (`start_new_session=True`): its local Ray
(raylet, GCS, agents, workers) lives in the same session, so a test can see what is left of a sweep
after its driver ended, and end all of it."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


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
