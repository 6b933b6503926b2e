"""`run.lock`: one driver per sweep directory.

On local or NFS storage the lock is created exclusively, so of two drivers started at the same
moment exactly one wins. A lock left by a driver that died (its pid is gone on the same host) is
taken over. Object stores have no exclusive create: there the lock is written and read back, which
is best effort. A lock file that cannot be read as the lock of a driver (garbled, a list, a
directory, a FIFO) is refused with a message naming it, never parsed blindly or waited on.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import time
from contextlib import contextmanager

from orchestrator.errors import SweepError
from orchestrator.storage.layout import SweepLayout

MAX_LOCK_BYTES = 4096
MAX_PID = 2 ** 31 - 1   # pid_t; a larger "pid" is not a process id


class LockError(SweepError):
    """Another driver holds the sweep, or the lock file is not a lock."""


def _holder(layout: SweepLayout) -> dict | None:
    """The lock's content as {pid, host, started_at, ...}; {} while it is empty; None when it is
    not a lock at all."""
    storage, path = layout.storage, layout.lock_file()
    try:
        if not storage.is_file(path):
            return None
        data = json.loads(storage.read_bytes(path, max_bytes=MAX_LOCK_BYTES) or b"{}")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= MAX_PID):
        return None
    return data


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _is_stale(other: dict) -> bool:
    """A lock of a dead process on this host (a killed driver)."""
    pid = other.get("pid")
    return isinstance(pid, int) and other.get("host") == socket.gethostname() and not _pid_alive(pid)


def _busy(layout: SweepLayout, other: dict | None) -> LockError:
    path = layout.lock_file()
    if other is None:
        return LockError(f"{path} is not a lock file of mmc-sweep (not a small JSON mapping with a pid). If no "
                         f"other `mmc-sweep run` is using {layout.root}, delete it and run again.")
    started = other.get("started_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) \
        and 0 <= started < 1e11 else "at an unknown time"
    who = (f"pid {other.get('pid')} on {str(other.get('host'))[:100]}, started {when}" if other.get("pid")
           else "its lock file is being written")
    return LockError(f"another `mmc-sweep run` ({who}) is using {layout.root}. Wait for it to finish, "
                     f"or delete {path} if that run is gone.")


def _acquire(layout: SweepLayout, me: dict) -> None:
    storage, path = layout.storage, layout.lock_file()
    data = json.dumps(me).encode()
    local = storage.local_path(path)
    if local is None:    # object stores have no exclusive create: write, then read back
        if storage.exists(path):
            other = _holder(layout)
            if other is None or not _is_stale(other):
                raise _busy(layout, other)
        storage.write_bytes(path, data)
        if (_holder(layout) or {}).get("pid") != me["pid"]:
            raise _busy(layout, _holder(layout))
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    for _attempt in range(2):
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)   # atomic: one winner
        except FileExistsError:
            other = _holder(layout)
            if other is None or not _is_stale(other):
                raise _busy(layout, other) from None
            local.unlink(missing_ok=True)   # a killed driver's lock: take it over
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    raise _busy(layout, _holder(layout))


@contextmanager
def sweep_lock(layout: SweepLayout):
    """Hold `run.lock` of the sweep for the duration of the block (see the module docstring)."""
    me = {"pid": os.getpid(), "host": socket.gethostname(), "user": getpass.getuser(), "started_at": time.time()}
    _acquire(layout, me)
    try:
        yield
    finally:
        try:
            if (_holder(layout) or {}).get("pid") == me["pid"]:
                layout.storage.delete(layout.lock_file())
        except Exception:  # noqa: BLE001 - the lock is advisory; never mask the real error
            pass
