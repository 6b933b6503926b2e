"""`run.lock` across hosts: a live driver's lock is never taken over, whatever its pid looks like here;
a lock whose holder is provably gone (same machine and its process ended, or its lease expired) is.
The rule is `orchestrator.storage.lock.holder_gone` (docs/FAILURES.md, "Two runs on one sweep")."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import types
import warnings
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
    assert (lock.parse_holder(json.dumps({"pid": pid, "host": "h"}).encode()) is not None) is is_lock


def test_an_empty_lock_file_is_one_being_written_not_garbage(layout):
    """Exclusive create, then write: in between another driver reads an empty file, a lock being written."""
    Path(layout.lock_file()).write_bytes(b"")
    assert lock.parse_holder(b"") == {}
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
    monkeypatch.setattr(lock, "stop_this_driver", lambda: stopped.append(1))
    stop = _Stop(False, False, True)
    lock._renew(layout, {"lease_s": 60.0, "token": "mine"}, stop)
    assert len(tries) == 2 and len(stop.waits) == 3 and stopped == []


# ----- on an object store: conditional writes (a fake store; the same against an S3-API server: test_s3.py)

class FakeCond:
    """What `orchestrator.storage.conditional.S3Conditional` offers, on one in-memory object per path: create
    if absent, replace and delete only the version named (its tag), read with the version. `lost_create`: the
    next create lands but its answer is lost (None), as a request tried again after a lost answer sees it."""

    def __init__(self):
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.calls: list[tuple] = []
        self.lost_create = False
        self.version = 0

    def _put(self, path, data) -> str:
        self.version += 1
        self.objects[path] = (bytes(data), f'"v{self.version}"')
        return self.objects[path][1]

    def create(self, path, data):
        self.calls.append(("create", path))
        if path in self.objects:
            return None
        tag = self._put(path, data)
        if self.lost_create:
            self.lost_create = False
            return None
        return tag

    def replace(self, path, data, tag):
        self.calls.append(("replace", path, tag))
        if path not in self.objects or self.objects[path][1] != tag:
            return None
        return self._put(path, data)

    def delete(self, path, tag):
        self.calls.append(("delete", path, tag))
        if path not in self.objects or self.objects[path][1] != tag:
            return False
        del self.objects[path]
        return True

    def read(self, path, max_bytes):
        from orchestrator.storage.conditional import Version

        if path not in self.objects:
            return None
        data, tag = self.objects[path]
        return Version(data[:max_bytes + 1], tag)

    def content(self, path) -> dict | None:
        return json.loads(self.objects[path][0]) if path in self.objects else None


@pytest.fixture
def remote():
    """A sweep on storage that is not local (pyarrow's mock://, no server)."""
    return SweepLayout(Storage("mock:///bucket/runs"), "held")


def _me(token: str = "mine", **changes) -> dict:
    return {**lock._me(), "token": token, **changes}


def _stale(token: str = "theirs") -> dict:
    """A lock of another host whose lease ran out long ago: provably gone."""
    return {"pid": 4242, "host": "another-host", "boot_id": "b", "renewed_at": time.time() - 86_400, "lease_s": 60,
            "token": token}


def test_on_an_object_store_the_lock_is_created_if_absent_refused_while_held_and_deleted_as_held(remote, monkeypatch):
    cond = FakeCond()
    monkeypatch.setattr(lock, "_conditional_writes", lambda layout: cond)
    path = remote.lock_file()
    with lock.sweep_lock(remote):
        held = cond.content(path)
        assert held["pid"] == os.getpid() and cond.calls[0] == ("create", path)
        with pytest.raises(lock.LockError, match=rf"another `mmc-sweep run` \(pid {os.getpid()} on "):
            with lock.sweep_lock(remote):
                pass
        assert cond.content(path) == held
    assert path not in cond.objects and cond.calls[-1][0] == "delete"


def test_a_stale_lock_on_an_object_store_is_replaced_only_as_the_version_judged(remote):
    """Create fails (a lock exists), the lock read is provably gone: it is replaced with `If-Match` of the
    version read, never created over."""
    cond, path = FakeCond(), remote.lock_file()
    stale_tag = cond._put(path, json.dumps(_stale()).encode())
    me = _me()
    tag = lock._acquire_conditional(remote, me, cond)
    assert cond.content(path)["token"] == "mine" and tag == cond.objects[path][1]
    assert ("replace", path, stale_tag) in cond.calls


def test_a_lock_that_is_no_lock_is_never_replaced_on_an_object_store(remote):
    cond, path = FakeCond(), remote.lock_file()
    cond._put(path, b"garbled, not json")
    with pytest.raises(lock.LockError, match="is not a lock file of mmc-sweep"):
        lock._acquire_conditional(remote, _me(), cond)
    assert cond.objects[path][0] == b"garbled, not json" and not [c for c in cond.calls if c[0] == "replace"]


def test_a_create_whose_answer_was_lost_is_recognised_by_its_token(remote):
    """The create landed but its answer was lost (a retried request fails `If-None-Match` against its own first
    attempt): the lock read back carries this driver's token, so it holds the lock, at that version."""
    cond = FakeCond()
    cond.lost_create = True
    tag = lock._acquire_conditional(remote, _me(), cond)
    assert tag == cond.objects[remote.lock_file()][1] and cond.content(remote.lock_file())["token"] == "mine"


def test_a_lock_released_between_the_create_and_the_read_is_created_again(remote):
    """Create fails because a lock exists; by the read it is gone (its holder released it): create again."""
    cond, path = FakeCond(), remote.lock_file()
    cond._put(path, json.dumps({**_stale(), "renewed_at": time.time()}).encode())
    create = cond.create

    def create_then_released(p, data):
        answer = create(p, data)
        cond.objects.pop(p, None) if answer is None else None
        return answer

    cond.create = create_then_released
    tag = lock._acquire_conditional(remote, _me(), cond)
    assert tag is not None and cond.content(path)["token"] == "mine"


def test_each_renewal_on_an_object_store_replaces_the_version_the_last_one_wrote(remote, monkeypatch):
    """Three renewals: each replaces (If-Match) the version the one before wrote, and moves `renewed_at` on."""
    me = _me(renewed_at=500.0)
    clock = iter(range(1000, 1100))
    monkeypatch.setattr(lock, "time", types.SimpleNamespace(time=lambda: float(next(clock))))
    cond, path = FakeCond(), remote.lock_file()
    held = {"cond": cond, "tag": cond.create(path, json.dumps(me).encode())}
    for _ in range(3):
        before = held["tag"]
        assert lock._renew_conditional(remote, me, held) is None
        assert cond.calls[-1] == ("replace", path, before) and held["tag"] == cond.objects[path][1] != before
    assert cond.content(path)["renewed_at"] == me["renewed_at"] == 1002.0


def test_a_renewal_on_an_object_store_writes_a_deleted_lock_again_and_names_a_lock_that_replaced_it(remote):
    cond, path = FakeCond(), remote.lock_file()
    me = _me()
    held = {"cond": cond, "tag": cond.create(path, json.dumps(me).encode())}
    del cond.objects[path]                                   # deleted by hand
    assert lock._renew_conditional(remote, me, held) is None
    assert cond.content(path)["token"] == "mine" and held["tag"] == cond.objects[path][1]
    cond._put(path, json.dumps(_stale("newcomer")).encode())   # taken over while this driver was stopped
    other = lock._renew_conditional(remote, me, held)
    assert other["token"] == "newcomer" and cond.content(path)["token"] == "newcomer"


def test_a_lock_taken_over_on_an_object_store_is_left_to_its_new_holder_on_release(remote, monkeypatch):
    cond = FakeCond()
    monkeypatch.setattr(lock, "_conditional_writes", lambda layout: cond)
    with lock.sweep_lock(remote):
        cond._put(remote.lock_file(), json.dumps(_stale("newcomer")).encode())
    assert cond.content(remote.lock_file())["token"] == "newcomer"


def test_a_store_without_conditional_writes_falls_back_to_write_and_read_back(remote, monkeypatch):
    """`ConditionalWritesUnsupported` on the create: a warning, then the lock is written and read back on the
    storage itself, and released there (nothing asked of the conditional writes again)."""
    from orchestrator.storage import conditional

    class Unsupported(FakeCond):
        def create(self, path, data):
            self.calls.append(("create", path))
            raise conditional.ConditionalWritesUnsupported("the object store does not implement conditional writes")

    cond = Unsupported()
    monkeypatch.setattr(lock, "_conditional_writes", lambda layout: cond)
    with pytest.warns(RuntimeWarning, match="written and read back instead"):
        with lock.sweep_lock(remote):
            assert json.loads(remote.storage.read_bytes(remote.lock_file()))["pid"] == os.getpid()
    assert not remote.storage.exists(remote.lock_file()) and cond.calls == [("create", remote.lock_file())]


# ----- where there are no conditional writes: written and read back (best effort)

def _best_effort(layout):
    with pytest.warns(RuntimeWarning, match="this object store's conditional writes are not implemented here"):
        return lock._conditional_writes(layout)


def test_storage_without_conditional_writes_says_so_and_not_that_boto3_is_missing(remote):
    """mock:// (like gs://) has no conditional writes in this package: the warning says that, not "pip install
    boto3" (which would change nothing)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert lock._conditional_writes(remote) is None
    assert len(seen) == 1 and "boto3" not in str(seen[0].message)
    assert "not implemented here" in str(seen[0].message)


def test_without_conditional_writes_a_live_lock_is_refused_and_left_as_it_was(remote):
    record = {"pid": 1, "host": "another-host", "renewed_at": time.time(), "lease_s": 60, "token": "theirs"}
    remote.storage.write_bytes(remote.lock_file(), json.dumps(record).encode())
    with pytest.raises(lock.LockError, match=r"another `mmc-sweep run` \(pid 1 on another-host"):
        lock._acquire(remote, _me(), {"cond": None})
    assert json.loads(remote.storage.read_bytes(remote.lock_file())) == record


def test_without_conditional_writes_a_lock_overwritten_by_another_driver_is_read_back_as_theirs(remote, monkeypatch):
    """Two drivers write at once: the one that reads back another's token has lost, and says so."""
    write = remote.storage.write_bytes
    theirs = json.dumps({"pid": 1, "host": "another-host", "renewed_at": time.time(), "lease_s": 60,
                         "token": "theirs"}).encode()
    monkeypatch.setattr(remote.storage, "write_bytes", lambda path, data: write(path, data) or write(path, theirs))
    with pytest.raises(lock.LockError, match=r"another `mmc-sweep run` \(pid 1 on another-host"):
        lock._acquire(remote, _me(), {"cond": None})


def test_without_conditional_writes_the_holder_renews_and_stops_when_another_holds_the_lock(remote, monkeypatch):
    stopped = []
    monkeypatch.setattr(lock, "stop_this_driver", lambda: stopped.append(1))
    me = _me(renewed_at=1000.0, lease_s=60.0)
    remote.storage.write_bytes(remote.lock_file(), json.dumps(me).encode())
    lock._renew(remote, me, _Stop(False, True), {"cond": None})
    assert json.loads(remote.storage.read_bytes(remote.lock_file()))["renewed_at"] > 1000.0 and stopped == []
    remote.storage.write_bytes(remote.lock_file(), json.dumps(_stale("newcomer")).encode())
    lock._renew(remote, me, _Stop(False, True), {"cond": None})
    assert stopped == [1] and json.loads(remote.storage.read_bytes(remote.lock_file()))["token"] == "newcomer"


# ----- odd corners

def test_a_renewal_that_finds_a_lock_put_in_its_place_meanwhile_names_that_lock(layout, monkeypatch):
    """Between the renewal's move aside and its link back, another driver found no lock and created one: the
    link fails (create-if-absent) and the renewal returns that driver's lock (this one must stop)."""
    me = _me()
    local = Path(layout.lock_file())
    local.write_text(json.dumps(me))
    newcomer = _stale("newcomer")

    def link(src, dst):
        Path(dst).write_text(json.dumps(newcomer))
        raise FileExistsError(17, "File exists")

    monkeypatch.setattr(lock.os, "link", link)
    assert lock._renew_local(local, me) == newcomer
    assert json.loads(local.read_text()) == newcomer and sorted(p.name for p in Path(layout.root).iterdir()) == ["run.lock"]


def test_a_recorded_start_that_is_not_a_number_proves_no_reuse():
    """`pid_start: true` (a hand-edited lock) is no start time: a live holder on this machine is not gone."""
    assert not lock.holder_gone({"pid": os.getpid(), "pid_start": True, "renewed_at": time.time(), "lease_s": 60,
                                 **_this_machine()})


def test_a_start_time_beyond_any_clock_is_shown_as_unknown(layout):
    error = lock._busy(layout, {"pid": 1, "host": "h", "started_at": 1e300})
    assert "started at an unknown time" in str(error)


def test_a_read_only_storage_refuses_the_lock_in_one_line_and_other_failures_pass_through(layout, monkeypatch):
    import errno

    from orchestrator.errors import SweepError

    def refuse(*args):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(lock, "_acquire", refuse)
    with pytest.raises(SweepError, match=r"is read-only: the lock .*run\.lock is written there, and nothing was written"):
        with lock.sweep_lock(layout):
            pass

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lock, "_acquire", full)
    with pytest.raises(OSError, match="No space left") as raised:
        with lock.sweep_lock(layout):
            pass
    assert not isinstance(raised.value, SweepError)


def test_a_lock_on_an_object_store_larger_than_a_lock_is_no_lock(remote):
    cond, path = FakeCond(), remote.lock_file()
    big = json.dumps({"pid": 1, "host": "h", "pad": "x" * lock.MAX_LOCK_BYTES}).encode()
    cond._put(path, big[:lock.MAX_LOCK_BYTES + 1 - 2] + b'"}')
    assert len(cond.objects[path][0]) == lock.MAX_LOCK_BYTES + 1
    assert lock._read_version(cond, path)[0] is None


def test_without_conditional_writes_a_lock_that_is_no_lock_is_refused_and_left_as_it_was(remote):
    """Write-and-read-back keeps the rule of the other two ways: a lock file that cannot be read as a driver's
    lock is refused with a message naming it, never overwritten."""
    remote.storage.write_bytes(remote.lock_file(), b"garbled, not json")
    with pytest.raises(lock.LockError, match="is not a lock file of mmc-sweep"):
        lock._acquire(remote, _me(), {"cond": None})
    assert remote.storage.read_bytes(remote.lock_file()) == b"garbled, not json"


def test_a_renewal_on_an_object_store_that_finds_no_lock_in_its_place_stops_this_driver(remote):
    """The lock this driver wrote was replaced by something that is not a lock at all: the renewal says so
    (this driver no longer holds the sweep), it does not take the garbage for its own lock."""
    cond, path = FakeCond(), remote.lock_file()
    me = _me()
    held = {"cond": cond, "tag": cond.create(path, json.dumps(me).encode())}
    cond._put(path, b"garbled, not json")
    assert lock._renew_conditional(remote, me, held) == {"pid": None}
    assert cond.objects[path][0] == b"garbled, not json"


def test_a_renewal_that_finds_its_deleted_lock_written_again_by_another_driver_names_that_lock(layout, monkeypatch):
    """The lock was deleted by hand, and before this renewal could write it again another driver created it:
    the renewal returns that driver's lock (this one must stop), and leaves it in place."""
    me = _me()
    local = Path(layout.lock_file())
    newcomer = _stale("newcomer")

    def rename(src, dst):
        local.write_text(json.dumps(newcomer))      # gone when this driver moved it; a newcomer's now
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(lock.os, "rename", rename)
    assert lock._renew_local(local, me) == newcomer
    assert json.loads(local.read_text()) == newcomer


def test_the_refusal_never_says_a_negative_time_to_wait_for_a_lease_that_just_ran_out(layout):
    """A lock whose lease ran out between its check and the message (a takeover that found a newer lock, itself
    expired by then): "taken over if not renewed within 0 s", never a negative number of seconds."""
    now = time.time()
    said = str(lock._busy(layout, {"pid": 1, "host": "another-host", "started_at": now - 1000,
                                   "renewed_at": now - 1000, "lease_s": 60, "token": "theirs"}))
    assert "(it is taken over if not renewed within 0 s)" in said, said
