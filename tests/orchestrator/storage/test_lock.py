"""`run.lock` across hosts: a live driver's lock is never taken over, whatever its pid looks like here;
a lock whose holder is provably gone (same machine and its process ended, or its lease expired) is.
The rule is `orchestrator.storage.lock.holder_gone` (docs/FAILURES.md, "Two runs on one sweep")."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator import knobs
from orchestrator.storage import lock
from orchestrator.storage.layout import Storage, SweepLayout


@pytest.fixture
def layout(tmp_path):
    layout = SweepLayout(Storage(tmp_path), "held")
    Path(layout.root).mkdir()
    return layout


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _plant(layout, **record) -> dict:
    Path(layout.lock_file()).write_text(json.dumps(record))
    return record


def _this_machine() -> dict:
    return {"host": socket.gethostname(), "boot_id": lock._boot_id(), "pid_ns": lock._pid_namespace()}


def _refused(layout, record) -> None:
    with pytest.raises(lock.LockError, match=r"another `mmc-sweep run` \(pid \d+ on "):
        with lock.sweep_lock(layout):
            pass
    assert json.loads(Path(layout.lock_file()).read_text()) == record      # left exactly as it was
    assert sorted(p.name for p in Path(layout.root).iterdir()) == ["run.lock"]


def _taken_over(layout) -> None:
    with lock.sweep_lock(layout):
        held = json.loads(Path(layout.lock_file()).read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert sorted(p.name for p in Path(layout.root).iterdir()) == []          # released, nothing left aside


@pytest.mark.parametrize("pid", ["dead", "alive", "init"])
def test_a_live_lease_of_another_host_is_never_taken_over_whatever_its_pid_is_here(layout, pid):
    number = {"dead": _dead_pid(), "alive": os.getpid(), "init": 1}[pid]
    record = _plant(layout, pid=number, host="another-host", boot_id="another-boot", pid_ns="pid:[1]",
                    started_at=time.time(), renewed_at=time.time(), lease_s=60, token="theirs")
    _refused(layout, record)


def test_a_lock_of_another_host_without_a_lease_is_never_taken_over(layout):
    record = _plant(layout, pid=_dead_pid(), host="another-host", started_at=time.time() - 86_400)
    _refused(layout, record)


def test_the_same_host_name_on_another_machine_is_not_this_machine(layout):
    """Containers on several machines may share a host name: a dead pid here proves nothing there."""
    record = _plant(layout, pid=_dead_pid(), host=socket.gethostname(), boot_id="another-boot",
                    renewed_at=time.time(), lease_s=60, token="theirs")
    _refused(layout, record)


def test_an_expired_lease_is_taken_over_even_from_another_host_with_a_live_pid(layout):
    _plant(layout, pid=os.getpid(), host="another-host", boot_id="another-boot",
           renewed_at=time.time() - knobs.LOCK_LEASE_S.default - lock.MAX_CLOCK_SKEW_S - 60, lease_s=knobs.LOCK_LEASE_S.default, token="theirs")
    _taken_over(layout)


def test_a_dead_pid_on_this_machine_is_taken_over_at_once(layout):
    _plant(layout, pid=_dead_pid(), renewed_at=time.time(), lease_s=60, token="theirs", **_this_machine())
    _taken_over(layout)


@pytest.mark.skipif(lock._process_start(os.getpid()) is None, reason="needs /proc/<pid>/stat")
def test_a_pid_reused_by_another_process_on_this_machine_is_taken_over(layout):
    _plant(layout, pid=os.getpid(), pid_start=lock._process_start(os.getpid()) + 1, renewed_at=time.time(),
           lease_s=60, token="theirs", **_this_machine())
    _taken_over(layout)


def test_a_live_driver_on_this_machine_is_not_taken_over(layout):
    holder = subprocess.Popen(["sleep", "60"])
    try:
        record = _plant(layout, pid=holder.pid, pid_start=lock._process_start(holder.pid), renewed_at=time.time(),
                        lease_s=60, token="theirs", **_this_machine())
        _refused(layout, record)
    finally:
        holder.kill()
        holder.wait()


def _read(layout) -> dict | None:
    """The lock as it is now; None in the instant a renewal has moved it aside."""
    try:
        return json.loads(Path(layout.lock_file()).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _read_held(layout) -> dict:
    found: list[dict] = []
    _wait_for(lambda: found.append(_read(layout)) or found[-1] is not None, "a readable lock")
    return found[-1]


def _wait_for(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def test_the_holder_renews_its_lease(layout, monkeypatch):
    monkeypatch.setenv(knobs.LOCK_LEASE_S.name, "0.3")
    with lock.sweep_lock(layout):
        first = _read_held(layout)
        assert first["lease_s"] == 0.3 and first["token"]
        _wait_for(lambda: (_read(layout) or first)["renewed_at"] > first["renewed_at"], "a renewal")


@pytest.fixture
def sigint_handled():
    """Ctrl-C handled by Python, as in a shell's foreground (a background job of a script ignores it)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_holder_whose_lock_was_taken_over_stops_and_leaves_the_new_lock(layout, monkeypatch, sigint_handled):
    monkeypatch.setenv(knobs.LOCK_LEASE_S.name, "0.3")
    newcomer = {"pid": 1, "host": "another-host", "renewed_at": time.time(), "lease_s": 60, "token": "theirs"}
    with pytest.raises(KeyboardInterrupt):
        with lock.sweep_lock(layout):
            fresh = Path(layout.root) / "newcomer"
            fresh.write_text(json.dumps(newcomer))
            os.replace(fresh, layout.lock_file())       # as a takeover writes it: atomically
            _wait_for(lambda: False, "the stop")
    assert json.loads(Path(layout.lock_file()).read_text()) == newcomer
    assert sorted(p.name for p in Path(layout.root).iterdir()) == ["run.lock"]


def test_a_lock_deleted_by_hand_while_held_is_written_again(layout, monkeypatch):
    monkeypatch.setenv(knobs.LOCK_LEASE_S.name, "0.3")
    with lock.sweep_lock(layout):
        token = _read_held(layout)["token"]
        Path(layout.lock_file()).unlink()
        _wait_for(lambda: (_read(layout) or {}).get("token") == token, "the lock written again")


def test_a_bad_lease_setting_is_refused(layout, monkeypatch):
    monkeypatch.setenv(knobs.LOCK_LEASE_S.name, "soon")
    with pytest.raises(knobs.KnobError, match="`MMC_LOCK_LEASE_S`='soon' is not a number"):
        with lock.sweep_lock(layout):
            pass
    assert not Path(layout.lock_file()).exists()


def test_a_takeover_never_removes_a_lock_written_since_the_stale_one_was_read(layout):
    """Two drivers judge one lock stale; the first replaces it; the second must not remove the new one."""
    fresh = _plant(layout, pid=os.getpid(), renewed_at=time.time(), lease_s=60, token="first", **_this_machine())
    stale = {"pid": _dead_pid(), "host": "another-host", "renewed_at": 0, "lease_s": 60, "token": "old"}
    with pytest.raises(lock.LockError, match="another `mmc-sweep run`"):
        lock._take_over_local(layout, Path(layout.lock_file()), stale)
    assert json.loads(Path(layout.lock_file()).read_text()) == fresh
    assert sorted(p.name for p in Path(layout.root).iterdir()) == ["run.lock"]


def test_a_holder_that_ignores_sigint_is_terminated_when_its_lock_is_taken_over(layout):
    import signal
    import sys

    script = f"""
import json, os, signal, sys, time
from pathlib import Path
signal.signal(signal.SIGINT, signal.SIG_IGN)
from orchestrator.storage import lock
from orchestrator.storage.layout import Storage, SweepLayout
layout = SweepLayout(Storage({str(Path(layout.root).parent)!r}), {Path(layout.root).name!r})
with lock.sweep_lock(layout):
    fresh = Path(layout.root) / "newcomer"
    fresh.write_text(json.dumps({{"pid": 1, "host": "another-host", "token": "theirs"}}))
    os.replace(fresh, layout.lock_file())
    time.sleep(60)
sys.exit(3)
"""
    env = {**os.environ, knobs.LOCK_LEASE_S.name: "0.3", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, proc.stderr)
    assert "took over" in proc.stderr and json.loads(Path(layout.lock_file()).read_text())["token"] == "theirs"


# ----- the parts of the rule, one by one

@pytest.mark.skipif(lock._process_start(os.getpid()) is None, reason="needs /proc/<pid>/stat")
def test_a_process_start_is_its_start_time_in_clock_ticks_since_boot():
    """Field 22 of /proc/<pid>/stat: of two processes started 0.3 s apart, the second started about 0.3 s of
    clock ticks later (and both after this one)."""
    first = subprocess.Popen(["sleep", "5"])
    time.sleep(0.3)
    second = subprocess.Popen(["sleep", "5"])
    try:
        apart = (lock._process_start(second.pid) - lock._process_start(first.pid)) / os.sysconf("SC_CLK_TCK")
        assert 0.25 <= apart < 3
        assert lock._process_start(os.getpid()) <= lock._process_start(first.pid)
    finally:
        for child in (first, second):
            child.kill()
            child.wait()


def test_a_process_name_with_a_parenthesis_does_not_shift_the_fields_of_stat(monkeypatch):
    """The name (field 2) is any text in parentheses, `)` included: the fields start after the last `)`."""
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["777777"] + ["0"] * 20   # field 3, 4..21, 22, ...
    monkeypatch.setattr(lock, "_read_first_line", lambda path: "4242 (evil) S 1 2) " + " ".join(fields))
    assert lock._process_start(4242) == 777777


@pytest.mark.parametrize("pid, is_lock", [
    (1, True), (lock.MAX_PID, True), (0, False), (-5, False), (lock.MAX_PID + 1, False), (True, False),
    ("12", False), (1.0, False), (None, True),
])
def test_a_lock_names_a_pid_between_1_and_the_largest_pid_or_none_yet(pid, is_lock):
    assert (lock._parse(json.dumps({"pid": pid, "host": "h"}).encode()) is not None) is is_lock


def test_an_empty_lock_file_is_one_being_written_not_garbage(layout):
    """Exclusive create, then write: in between another driver reads an empty file, a lock being written."""
    Path(layout.lock_file()).write_bytes(b"")
    assert lock._parse(b"") == {}
    with pytest.raises(lock.LockError, match=r"another `mmc-sweep run` \(its lock file is being written\)"):
        with lock.sweep_lock(layout):
            pass
    assert Path(layout.lock_file()).read_bytes() == b""


@pytest.mark.parametrize("record", [
    {"renewed_at": 1000.0, "lease_s": 0}, {"renewed_at": 1000.0, "lease_s": -60}, {"renewed_at": 1000.0},
    {"renewed_at": float("inf"), "lease_s": 60}, {"renewed_at": float("nan"), "lease_s": 60},
    {"renewed_at": 1000.0, "lease_s": float("inf")}, {"renewed_at": True, "lease_s": 60},
    {"renewed_at": 1000.0, "lease_s": True}, {"renewed_at": "1000", "lease_s": 60},
])
def test_a_lease_that_is_not_a_positive_finite_number_of_seconds_is_no_lease(record):
    assert lock.lease_left(record, now=1000.0) is None


def test_a_lease_lasts_its_seconds_plus_the_clock_skew_from_its_renewal():
    """Renewed at t=1000 for 30 s: expires at 1000 + 30 + 60 (MAX_CLOCK_SKEW_S) = 1090."""
    record = {"renewed_at": 1000.0, "lease_s": 30}
    assert lock.lease_left(record, now=1000.0) == 90.0 and lock.lease_left(record, now=1100.0) == -10.0


def test_an_older_lock_that_records_only_this_host_name_is_of_this_machine(layout):
    """Older locks record the host and pid only: on this host their dead pid proves the holder gone."""
    assert lock.same_machine({"host": socket.gethostname()})
    _plant(layout, pid=_dead_pid(), host=socket.gethostname(), started_at=time.time())
    _taken_over(layout)


def test_a_pid_this_driver_may_not_signal_is_a_running_process(monkeypatch):
    """`kill(pid, 0)` answers EPERM for a live process of another user: alive, never taken over for it."""
    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(lock.os, "kill", kill)
    assert not lock.holder_gone({"pid": 4242, "renewed_at": time.time(), "lease_s": 60, **_this_machine()})


def test_a_live_pid_whose_start_time_cannot_be_read_is_not_proof_of_reuse(monkeypatch):
    monkeypatch.setattr(lock, "_process_start", lambda pid: None)
    assert not lock.holder_gone({"pid": os.getpid(), "pid_start": 12345, "renewed_at": time.time(), "lease_s": 60,
                                 **_this_machine()})


def test_the_refusal_says_when_a_live_lease_is_taken_over_or_that_a_lock_without_one_never_is(layout):
    """Renewed now with a 60 s lease: taken over if not renewed within 60 + 60 (skew) s. A lock of another host
    without a lease is never taken over; one of this machine without a lease says nothing about hosts."""
    _plant(layout, pid=1, host="another-host", renewed_at=time.time(), lease_s=60, token="theirs")
    with pytest.raises(lock.LockError, match=r"\(it is taken over if not renewed within 120 s\)\. Wait for it"):
        with lock.sweep_lock(layout):
            pass
    _plant(layout, pid=1, host="another-host", token="theirs")
    with pytest.raises(lock.LockError, match=r"\(it holds no lease, so it is never taken over from another host\)"):
        with lock.sweep_lock(layout):
            pass
    _plant(layout, pid=os.getpid(), pid_start=lock._process_start(os.getpid()), token="theirs", **_this_machine())
    with pytest.raises(lock.LockError) as raised:
        with lock.sweep_lock(layout):
            pass
    assert "another host" not in str(raised.value) and "lease" not in str(raised.value)


def test_a_second_driver_in_the_same_process_is_refused_while_the_first_holds_the_lock(layout):
    """A fresh lock has a live lease and names this live process with its start time: nothing is gone."""
    with lock.sweep_lock(layout):
        held = json.loads(Path(layout.lock_file()).read_text())
        assert lock.lease_left(held) > 0 and held["pid_start"] == lock._process_start(os.getpid())
        with pytest.raises(lock.LockError, match=rf"another `mmc-sweep run` \(pid {os.getpid()} on "):
            with lock.sweep_lock(layout):
                pass
        assert json.loads(Path(layout.lock_file()).read_text())["token"] == held["token"]


class _Stop:
    """`threading.Event` of the renewer: `wait` answers from a list and records its timeouts."""

    def __init__(self, *answers: bool):
        self.answers, self.waits = list(answers), []

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return self.answers.pop(0)


def test_the_lease_is_renewed_every_third_of_it(layout):
    stop = _Stop(True)
    lock._renew(layout, {"lease_s": 60.0, "token": "mine"}, stop)
    assert stop.waits == [20.0]


def test_a_renewal_that_fails_on_storage_is_tried_again_at_the_next_one(layout, monkeypatch):
    """A storage hiccup: the lease allows two more renewals; the driver is not stopped."""
    tries, stopped = [], []

    def renew_local(local, me):
        tries.append(local)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(lock, "_renew_local", renew_local)
    monkeypatch.setattr(lock, "_stop_this_driver", lambda: stopped.append(1))
    stop = _Stop(False, False, True)
    lock._renew(layout, {"lease_s": 60.0, "token": "mine"}, stop)
    assert len(tries) == 2 and len(stop.waits) == 3 and stopped == []
