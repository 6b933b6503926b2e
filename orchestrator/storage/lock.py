"""`run.lock`: one driver per sweep directory, on one machine or across a cluster.

Why one module: acquiring, renewing, taking over and releasing are steps of one protocol with one rule
(who is provably gone); its local form (exclusive create, rename aside) and its object-store form
(conditional writes) implement the same steps side by side, so the rule is written once.

The lock names its holder (pid, host, the machine's boot id and pid namespace, the process's start time)
and carries a lease: the holder rewrites `renewed_at` every `lease_s / 3` seconds while it holds the lock.
Another driver takes the lock over only when its holder is *provably gone*:

- on the same machine (same host name, and the same boot id and pid namespace where the lock records
  them), its pid is not running, or is running but started at another time (the pid was reused); or
- anywhere, its lease expired: not renewed for `lease_s` + `MAX_CLOCK_SKEW_S` by this host's clock (the
  hosts of a cluster keep their clocks within a minute of each other).

Whatever its pid looks like here, a lock of another machine whose lease is live, or that has no lease
(an older lock), is never taken over: the error names its holder and says when to delete it.

On local or NFS storage the lock is created exclusively, so of two drivers started at the same moment
exactly one wins; a takeover moves the stale lock aside (an atomic rename) and puts it back if what it
moved was not the lock it judged stale. On S3 (and S3-compatible stores) the same rule is kept with
conditional writes (orchestrator/storage/conditional.py): the lock is created only if absent
(`If-None-Match: *`), taken over, renewed and released only if it is still the version read
(`If-Match: <etag>`), so there too exactly one of two drivers wins and nobody overwrites another's lock.
Where conditional writes are not available (gs://, boto3 not installed, a store that does not implement
them) the lock is written and read back, which is best effort (a warning says so). A lock file that cannot
be read as the lock of a driver (garbled, a list, a directory, a FIFO) is refused with a message naming it,
never parsed blindly
or waited on. A renewal moves the lock aside and links it back, so it never overwrites another driver's
lock either. A holder whose lock was taken over while it lived (it was stopped for longer than its lease)
stops as if interrupted (or, where SIGINT is ignored, as if terminated), so two drivers never write one sweep for long; a lock deleted by hand while its
holder lives is written again at the next renewal.
"""
from __future__ import annotations

import _thread
import getpass
import json
import math
import os
import signal
import socket
import threading
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

from orchestrator import knobs
from orchestrator.errors import SweepError
from orchestrator.messages import logger
from orchestrator.storage import conditional
from orchestrator.storage.layout import SweepLayout
from orchestrator.storage.read_only import refused

MAX_LOCK_BYTES = 4096
MAX_PID = 2 ** 31 - 1   # pid_t; a larger "pid" is not a process id
MAX_CLOCK_SKEW_S = 60.0


_LOG = logger(__name__)


class LockError(SweepError):
    """Another driver holds the sweep, or the lock file is not a lock."""


# ----- who this process is -----

def _read_first_line(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.readline().strip() or None
    except (OSError, ValueError):
        return None


def _boot_id() -> str | None:
    """This machine's boot id (Linux), or None: a reboot or another machine has another one."""
    return _read_first_line("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str | None:
    """This process's pid namespace (Linux), e.g. `pid:[4026531836]`: containers on one machine differ."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux), or None."""
    line = _read_first_line(f"/proc/{pid}/stat")
    if line is None or ")" not in line:
        return None
    fields = line.rsplit(")", 1)[1].split()
    try:
        return int(fields[19])     # field 22 of stat; fields[0] is field 3 (the state)
    except (IndexError, ValueError):
        return None


def lease_seconds() -> float:
    """The lease a new lock gets: `MMC_LOCK_LEASE_S` (`knobs.LOCK_LEASE_S`, 60 s by default)."""
    return knobs.read(knobs.LOCK_LEASE_S)


def _me() -> dict:
    pid, now = os.getpid(), time.time()
    return {"pid": pid, "host": socket.gethostname(), "user": getpass.getuser(), "started_at": now,
            "boot_id": _boot_id(), "pid_ns": _pid_namespace(), "pid_start": _process_start(pid),
            "token": uuid.uuid4().hex, "lease_s": lease_seconds(), "renewed_at": now}


# ----- reading a lock -----

def parse_holder(data: bytes) -> dict | None:
    """The lock's content as {pid, host, ...}; {} while it is empty; None when it is not a lock."""
    try:
        content = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(content, dict):
        return None
    pid = content.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= MAX_PID):
        return None
    return content


def _holder(layout: SweepLayout) -> dict | None:
    storage, path = layout.storage, layout.lock_file()
    try:
        if not storage.is_file(path):
            return None
        return parse_holder(storage.read_bytes(path, max_bytes=MAX_LOCK_BYTES, replaced=True))
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _number(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def same_machine(other: dict) -> bool:
    """Whether the lock's holder ran on this machine, in this pid namespace (so its pid means the same
    process here). Older locks record only the host name."""
    if other.get("host") != socket.gethostname():
        return False
    return all(other.get(key) is None or other.get(key) == mine
               for key, mine in (("boot_id", _boot_id()), ("pid_ns", _pid_namespace())))


def lease_left(other: dict, now: float | None = None) -> float | None:
    """Seconds until the lock's lease expires (negative: expired), or None for a lock without a lease."""
    renewed, lease = _number(other.get("renewed_at")), _number(other.get("lease_s"))
    if renewed is None or lease is None or lease <= 0:
        return None
    return renewed + lease + MAX_CLOCK_SKEW_S - (time.time() if now is None else now)


def holder_gone(other: dict) -> bool:
    """The rule of the module docstring: the holder's process provably ended (same machine, pid not
    running or reused) or its lease expired. A lock of another machine with a live lease, or without
    a lease, never counts as gone."""
    pid = other.get("pid")
    if isinstance(pid, int) and same_machine(other):
        if not _pid_alive(pid):
            return True
        recorded = other.get("pid_start")
        if isinstance(recorded, int) and not isinstance(recorded, bool) and _process_start(pid) not in (None, recorded):
            return True
    left = lease_left(other)
    return left is not None and left < 0


def _busy(layout: SweepLayout, other: dict | None) -> LockError:
    path, root = layout.storage.shown(layout.lock_file()), layout.storage.shown(layout.root)
    if other is None:
        return LockError(f"{path} is not a lock file of mmc-sweep (not a small JSON mapping with a pid). If no "
                         f"other `mmc-sweep run` is using {root}, delete it and run again.")
    started = other.get("started_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) \
        and 0 <= started < 1e11 else "at an unknown time"
    who = (f"pid {other.get('pid')} on {str(other.get('host'))[:100]}, started {when}" if other.get("pid")
           else "its lock file is being written")
    left = lease_left(other)
    if left is not None and other.get("pid"):
        later = f"it is taken over if not renewed within {max(left, 0):.0f} s"
    elif other.get("pid") and not same_machine(other):
        later = "it holds no lease, so it is never taken over from another host"
    else:
        later = ""
    return LockError(f"another `mmc-sweep run` ({who}) is using {root}"
                     f"{f' ({later})' if later else ''}. Wait for it to finish, "
                     f"or delete {path} if that run is gone.")


# ----- taking and holding it -----

def _take_over_local(layout: SweepLayout, local: Path, stale: dict) -> None:
    """Remove the stale lock `stale` at `local`, never another one: move it aside atomically, and put
    back what was moved if it is not `stale` (a driver replaced it meanwhile)."""
    aside = local.with_name(f"{local.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(local, aside)
    except FileNotFoundError:
        return                      # another driver removed it first; the exclusive create decides
    try:
        moved = parse_holder(aside.read_bytes()) if aside.is_file() and aside.stat().st_size <= MAX_LOCK_BYTES else None
    except OSError:
        moved = None
    if moved != stale:
        try:
            os.link(aside, local)   # create-if-absent: never over a lock written since
        except OSError:
            pass
        aside.unlink(missing_ok=True)
        raise _busy(layout, moved)
    aside.unlink(missing_ok=True)


def _read_version(cond, path: str) -> tuple[dict | None, conditional.Version] | None:
    """The lock on an object store as (its content or None when it is not a lock, its version); None if absent."""
    found = cond.read(path, MAX_LOCK_BYTES)
    if found is None:
        return None
    return (parse_holder(found.data) if len(found.data) <= MAX_LOCK_BYTES else None), found


def _acquire_conditional(layout: SweepLayout, me: dict, cond) -> str:
    """Create the lock if absent, or take over a provably gone holder's lock if it is still the version
    judged; returns the version (ETag) this driver holds."""
    path, data = layout.lock_file(), json.dumps(me).encode()
    for _attempt in range(3):
        tag = cond.create(path, data)
        if tag is not None:
            return tag
        found = _read_version(cond, path)
        if found is None:
            continue                    # released in between: create again
        other, version = found
        if other is not None and other.get("token") == me["token"]:
            return version.tag          # this driver's own create, retried after its answer was lost
        if other is None or not holder_gone(other):
            raise _busy(layout, other)
        tag = cond.replace(path, data, version.tag)   # only the lock judged stale, never a newer one
        if tag is not None:
            return tag
    raise _busy(layout, _holder(layout))


def _renew_conditional(layout: SweepLayout, me: dict, held: dict) -> dict | None:
    """Renew on an object store: replace the lock only if it is still the version this driver wrote.
    Returns None when renewed (or written again after it was deleted), else the lock that replaced ours."""
    cond, path = held["cond"], layout.lock_file()
    renewed = {**me, "renewed_at": time.time()}
    data = json.dumps(renewed).encode()
    tag = cond.replace(path, data, held["tag"])
    if tag is None:
        found = _read_version(cond, path)
        if found is None:               # deleted by hand: hold it again, unless another driver already does
            tag = cond.create(path, data)
            found = None if tag is not None else _read_version(cond, path)
        if found is not None:
            current, version = found
            if current is None or current.get("token") != me["token"]:
                return current or {"pid": None}
            tag = version.tag           # this driver's own write, retried after its answer was lost
            renewed = current
        if tag is None:
            return None                 # gone again in between: the next renewal looks again
    me.update(renewed)
    held["tag"] = tag
    return None


def _acquire(layout: SweepLayout, me: dict, held: dict | None = None) -> None:
    storage, path = layout.storage, layout.lock_file()
    data = json.dumps(me).encode()
    local = storage.local_path(path)
    if local is None and held is not None and held.get("cond") is not None:
        try:
            held["tag"] = _acquire_conditional(layout, me, held["cond"])
            return
        except conditional.ConditionalWritesUnsupported as exc:
            warnings.warn(f"{storage.shown(path)}: {exc}; the sweep lock is written and read back instead, which "
                          "does not exclude two drivers started at the same moment", RuntimeWarning, stacklevel=2)
            held["cond"] = None
    if local is None:    # no conditional writes: write, then read back
        if storage.exists(path):
            other = _holder(layout)
            if other is None or not holder_gone(other):
                raise _busy(layout, other)
        storage.write_bytes(path, data)
        if (_holder(layout) or {}).get("token") != me["token"]:
            raise _busy(layout, _holder(layout))
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    for _attempt in range(2):
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)   # atomic: one winner
        except FileExistsError:
            other = _holder(layout)
            if other is None or not holder_gone(other):
                raise _busy(layout, other) from None
            _take_over_local(layout, local, other)
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    raise _busy(layout, _holder(layout))


def _renew_local(local: Path, me: dict) -> dict | None:
    """Renew this driver's lock at `local` without ever overwriting another's: move it aside (atomic, like a
    takeover), and put the renewed lock back only where no lock is (a hard link: create-if-absent). Returns
    None when renewed (or when the lock was deleted and is recreated), else the lock that replaced ours."""
    aside = local.with_name(f"{local.name}.renew-{uuid.uuid4().hex}")
    try:
        os.rename(local, aside)
    except FileNotFoundError:      # deleted by hand: hold it again, unless another driver already does
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return parse_holder(local.read_bytes()[:MAX_LOCK_BYTES]) or {"pid": None}
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(me).encode())
        return None
    try:
        current = parse_holder(aside.read_bytes()[:MAX_LOCK_BYTES + 1]) if aside.is_file() else None
        mine = current is not None and current.get("token") == me["token"]
        if mine:
            me["renewed_at"] = time.time()
            aside.write_bytes(json.dumps(me).encode())
        try:
            os.link(aside, local)
        except FileExistsError:    # a driver found no lock in this instant and took it: it holds the sweep now
            return parse_holder(local.read_bytes()[:MAX_LOCK_BYTES]) or {"pid": None}
        return None if mine else (current or {"pid": None})
    finally:
        aside.unlink(missing_ok=True)


def _renew(layout: SweepLayout, me: dict, stop: threading.Event, held: dict | None = None) -> None:
    """Renew the lease every lease / 3 while held. A lock that now belongs to another driver was taken over
    (this process was stopped past its lease): say so and stop this driver as if interrupted."""
    local = layout.storage.local_path(layout.lock_file())
    held = held if held is not None else {}
    while not stop.wait(me["lease_s"] / 3):
        try:
            if local is not None:
                other = _renew_local(local, me)
            elif held.get("cond") is not None:
                other = _renew_conditional(layout, me, held)
            else:   # no conditional writes: best effort (see the module docstring)
                current = _holder(layout)
                other = current if current and current.get("token") not in (None, me["token"]) else None
                if current is not None and current.get("token") == me["token"]:
                    me["renewed_at"] = time.time()
                    layout.storage.write_bytes(layout.lock_file(), json.dumps(me).encode())
        except Exception:  # noqa: BLE001 - a storage hiccup: the next renewal tries again (the lease allows 2)
            continue
        if other is not None:
            _LOG.error(f"another driver (pid {other.get('pid')} on {str(other.get('host'))[:100]}) took over "
                       f"{layout.storage.shown(layout.lock_file())} after this one's lease ran out; stopping this run")
            stop_this_driver()
            return


def stop_this_driver() -> None:
    """Stop the process as Ctrl-C does (finished tasks kept, exit 130). Where Python does not handle SIGINT
    (a background job of a shell ignores it), end it as SIGTERM does: like a killed driver, which loses
    nothing (every write is atomic)."""
    if callable(signal.getsignal(signal.SIGINT)):
        _thread.interrupt_main()
    else:
        os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def sweep_lock(layout: SweepLayout):
    """Hold `run.lock` of the sweep for the duration of the block (see the module docstring)."""
    me = _me()
    held = {"cond": _conditional_writes(layout), "tag": None}
    try:
        _acquire(layout, me, held)
    except OSError as exc:    # a read-only storage: one line, not a traceback
        error = refused(layout.storage.shown(layout.root), exc, f"the lock {layout.storage.shown(layout.lock_file())} "
                        "is written there")
        if error is None:
            raise
        raise error from None
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(layout, me, stop, held), name="mmc-lock-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=10)
        try:
            if held["cond"] is not None:    # delete only the version this driver holds
                found = _read_version(held["cond"], layout.lock_file())
                if found is not None and (found[0] or {}).get("token") == me["token"]:
                    held["cond"].delete(layout.lock_file(), found[1].tag)
            elif (_holder(layout) or {}).get("token") == me["token"]:
                layout.storage.delete(layout.lock_file())
        except Exception:  # noqa: BLE001 - the lock is advisory; never mask the real error
            pass


def _conditional_writes(layout: SweepLayout):
    """Conditional writes for the lock on an object store, or None (local storage; or, with a warning,
    an object store where they are not available)."""
    storage = layout.storage
    if storage.is_local:
        return None
    cond = conditional.for_storage(storage)
    if cond is None:
        reason = ("boto3 is not installed (pip install 'mmc-sweep[s3]')" if storage.base_uri.startswith("s3")
                  else "this object store's conditional writes are not implemented here")
        warnings.warn(f"{storage.shown(layout.lock_file())}: {reason}; the sweep lock is written and read back "
                      "instead, which does not exclude two drivers started at the same moment",
                      RuntimeWarning, stacklevel=3)
    return cond
