"""Stop signals end a run as Ctrl-C does: SIGTERM (`ray job stop`, Kubernetes, systemd, pre-emption) and
SIGHUP stop the driver with exit 130, "interrupted", the finished task's row written and compacted,
the MLflow parent run KILLED, and nothing of its local Ray left behind. A second signal ends the
driver at once, and the rerun finishes with every row once. (One driver per claim: SIGTERM's whole
stop, and a SIGHUP then a SIGTERM for the second signal; the handler that takes all three is one.)

Each test drives the real CLI in a session of its own with the `sleep` test runner: the first
pretraining finishes, the second blocks (tests/support/runners.py, MMC_TEST_BLOCK) until the driver
is stopped, so the signal always comes while a task runs. (`ray job stop`: tests/orchestrator/run/test_job_submit.py.)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.results import manifest, tables
from orchestrator.run import signals
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.storage.layout import Storage, SweepLayout
from tests.conftest import REPO, clean_env, write_spec
from tests.support import runners
from tests.support.processes import START_TIMEOUT_S, kill_session, session_pids, start_until

STOP_TIMEOUT_S = 120
GONE_TIMEOUT_S = 10        # what is left of the driver's local Ray after it exited
EVERY_PROCESS_STOP_S = 30  # signal to the driver and its Ray at once -> exit 130: ~12 s (Tune's 10 s grace), not a minute
RAY_DUMP = "SIGTERM received at time"   # Ray's own handler: a C++ stack dump and exit 134

# two pretrainings (the first finishes, the second blocks) and the path between them, one at a time
SECTIONS = {"finetune": {"methods": []}, "paths": {"pairs": ["cue~nocue"], "kinds": ["linear"], "num_alphas": 2},
            "max_concurrent": 1}


@pytest.fixture
def sweep(tmp_path):
    path = write_spec(tmp_path, "stopped", **SECTIONS)
    graph = build_graph(load_spec(path))
    first, blocked = [t for t, task in graph.tasks.items() if task.kind == vocab.PRETRAIN]
    return path, graph, first, blocked, SweepLayout(Storage(str(tmp_path / "runs")), "stopped"), tmp_path / "events"


def command(path: Path) -> list[str]:
    return [sys.executable, "-m", "orchestrator", "run", str(path), "--num-cpus", "2", "--no-report",
            "--runner", runners.name("sleep")]


def env(events: Path, **extra: str) -> dict:
    return clean_env(**runners.hook_env(events, **{runners.SLEEP_ENV: "0.1"}), MMC_PROGRESS_INTERVAL_S="60",
                     MMC_COMPACT_MIN_FRAGMENTS="1", **extra)


def start_blocked(path: Path, events: Path, blocked: str) -> subprocess.Popen:
    """The CLI in a session of its own; returns once the second pretraining blocks (the first finished)."""
    return start_until(command(path), env(events, **{runners.BLOCK_ENV: blocked}), REPO, events / f"blocked-{blocked}",
                       f"blocked {blocked}", START_TIMEOUT_S)


def wait_gone(sid: int) -> list[int]:
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while (left := session_pids(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def parent_runs(layout) -> list:
    client = mlflow.MlflowClient(layout.mlflow_uri())
    runs = client.search_runs([client.get_experiment_by_name("stopped").experiment_id])
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def test_an_ignored_signal_stays_ignored_and_every_handler_comes_back():
    """`nohup mmc-sweep run` ignores SIGHUP: the run leaves it ignored; after the run the process's own
    handlers are back (the Python API restores them too)."""
    from orchestrator.run.signals import STOPS, stop_like_ctrl_c

    original = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    # a process's usual handlers (a test worker started from a shell's background job inherits SIGINT ignored,
    # which the run rightly leaves ignored), then SIGHUP ignored as `nohup` leaves it
    before = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    try:
        for s, handler in before.items():
            signal.signal(s, handler)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with stop_like_ctrl_c():
            with stop_like_ctrl_c():                              # nested (the CLI around run_sweep): one
                assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
                assert signal.getsignal(signal.SIGTERM) == signal.getsignal(signal.SIGINT) == STOPS._handle
                STOPS.install()                                   # again, as after ray.init
                assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == STOPS._handle
            with pytest.raises(KeyboardInterrupt):               # outside Tune: as Ctrl-C
                signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} == \
            {s: before[s] for s in (signal.SIGINT, signal.SIGTERM)}
    finally:
        for s, handler in original.items():
            signal.signal(s, handler)


@pytest.mark.slow
def test_a_stop_signal_ends_the_run_like_ctrl_c(sweep):
    """SIGTERM, the signal Ray takes over when it starts. SIGHUP goes to the same handler (installed for
    all three: the test above); the test below shows a driver taking a SIGHUP as its first stop."""
    sig = signal.SIGTERM
    path, graph, first, blocked, layout, events = sweep
    proc = start_blocked(path, events, blocked)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
        left = wait_gone(proc.pid)
    finally:
        kill_session(proc)
    assert proc.returncode == 130, f"exit {proc.returncode}:\n{out[-2000:]}\n{err[-3000:]}"
    assert f"warning: {sig.name} received: stopping as for Ctrl-C" in err
    assert err.rstrip().endswith("interrupted: finished tasks are kept; rerun the same command to resume"), err[-2000:]
    assert "Traceback" not in err and RAY_DUMP not in err, err[-3000:]
    assert not left, f"processes of the stopped driver are still alive: {left}"
    rows = tables.read_table(layout, vocab.TASKS)
    assert list(rows["task_id"]) == [first] and list(rows["status"]) == [vocab.FINISHED]   # the running one: no row
    assert manifest.read_manifest(layout, vocab.TASKS).parts                                # compacted
    assert [r.info.status for r in parent_runs(layout)] == [vocab.MLFLOW_KILLED]


@pytest.mark.slow
def test_a_second_signal_ends_the_driver_at_once_and_the_rerun_loses_nothing(sweep):
    """The first stop is a SIGHUP (a closed terminal): the driver takes it as Ctrl-C, as it does SIGTERM
    (the test above), rather than dying of it; a SIGTERM while it stops ends it at once."""
    path, graph, first, blocked, layout, events = sweep
    proc = start_blocked(path, events, blocked)
    try:
        proc.send_signal(signal.SIGHUP)
        err_lines = []
        for line in proc.stderr:              # the first is being handled: the driver says so, then ...
            err_lines.append(line)
            if "send it again to stop at once" in line:
                break
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)      # ... a second one ends it at once
        out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
        took = time.monotonic() - sent
        left = wait_gone(proc.pid)
    finally:
        kill_session(proc)
    err = "".join(err_lines) + err
    assert proc.returncode == 130, f"exit {proc.returncode}:\n{out[-2000:]}\n{err[-3000:]}"
    assert "warning: SIGHUP received: stopping as for Ctrl-C" in err, f"SIGHUP was not taken as Ctrl-C:\n{err[-3000:]}"
    assert "error: interrupted again (SIGTERM): stopped at once; the tasks that were running are lost" in err
    assert "Traceback" not in err and RAY_DUMP not in err, err[-3000:]
    assert took < STOP_TIMEOUT_S / 2
    assert not left, f"the driver's local Ray outlived it: {left}"

    rerun = subprocess.run(command(path), cwd=REPO, env=env(events), capture_output=True, text=True,
                           timeout=START_TIMEOUT_S + STOP_TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Traceback" not in rerun.stderr
    rows = tables.read_table(layout, vocab.TASKS)
    assert sorted(rows["task_id"]) == sorted(graph.tasks) and set(rows["status"]) == {vocab.FINISHED}
    assert rows["task_id"].is_unique
    assert vocab.MLFLOW_FINISHED in [r.info.status for r in parent_runs(layout)]


@pytest.mark.slow
def test_a_stop_signal_to_every_process_of_the_driver_and_its_ray_ends_the_run_like_ctrl_c(sweep):
    """A stop signal to the driver's process group (`timeout 25 mmc-sweep run`, a closed terminal, `kill -TERM
    -- -PGID`) and to every process of its cgroup (systemd's default `KillMode=control-group`, `kill -TERM` of
    every process of a container) at once: the driver's group and its local Ray's GCS, raylet and workers.
    Those lead groups of their own with SIGTERM and SIGHUP blocked (`signals.ray_processes_apart`), so they
    outlive it and the driver stops the run as for Ctrl-C: exit 130, the finished task's row written and
    compacted, the MLflow parent run KILLED, nothing left behind. Before, the driver died with its raylet
    (exit 1, "The connection to the plasma store is failed") or waited a minute for its GCS (exit 1), nothing
    compacted, the MLflow run left RUNNING."""
    path, graph, first, blocked, layout, events = sweep
    proc = start_blocked(path, events, blocked)
    try:
        ray_pids = signals.descendants(proc.pid)
        assert ray_pids, "the driver started no local Ray"
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)   # the driver leads its group (a session of its own)
        for pid in ray_pids:                  # and the rest of its cgroup, as `kill -TERM` of every pid
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        out, err = proc.communicate(timeout=STOP_TIMEOUT_S)
        took = time.monotonic() - sent
        left = wait_gone(proc.pid)
    finally:
        kill_session(proc)
    assert proc.returncode == 130, f"exit {proc.returncode} after {took:.1f} s:\n{out[-2000:]}\n{err[-3000:]}"
    assert took < EVERY_PROCESS_STOP_S, f"{took:.1f} s to stop:\n{err[-3000:]}"
    assert err.rstrip().endswith("interrupted: finished tasks are kept; rerun the same command to resume"), err[-2000:]
    assert "Traceback" not in err and "Failed to connect to GCS" not in err, err[-3000:]
    assert not left, f"processes of the stopped driver are still alive: {left}"
    rows = tables.read_table(layout, vocab.TASKS)
    assert list(rows["task_id"]) == [first] and list(rows["status"]) == [vocab.FINISHED]
    assert manifest.read_manifest(layout, vocab.TASKS).parts
    assert [r.info.status for r in parent_runs(layout)] == [vocab.MLFLOW_KILLED]


# ----- where a local Ray's processes run (fast, no Ray started) ---------------------------------------

PROCESS_GROUP = ("import os, signal; blocked = signal.pthread_sigmask(signal.SIG_BLOCK, []); "
                 "print(os.getpgrp(), os.getpid(), ','.join(sorted(s.name for s in blocked)) or '-')")
STOP_NAMES = {"SIGINT", "SIGTERM", "SIGHUP"}


def started_by_ray() -> tuple[int, int, set[str]]:
    """(process group, pid, the stop signals it blocks) of a process started the way Ray starts its GCS and raylet."""
    from ray._private import services, utils

    info = services.start_ray_process([sys.executable, "-c", PROCESS_GROUP], "mmc_test", stdout_file=subprocess.PIPE,
                                      fate_share=bool(utils.detect_fate_sharing_support()))   # as Ray's node does
    out, _ = info.process.communicate(timeout=60)
    group, pid, blocked = out.decode().split()
    return int(group), int(pid), set(blocked.split(",")) & STOP_NAMES


def test_the_processes_ray_starts_lead_their_own_process_group_and_keep_rays_setup():
    """Inside `ray_processes_apart` a process Ray starts leads a group of its own (a signal to the driver's group
    passes it by) and blocks SIGTERM and SIGHUP (a signal to every process of the driver's cgroup waits, pending),
    and Ray's own set-up still runs in it (SIGINT blocked, the death signal set); outside, it is in the driver's
    group and blocks SIGINT alone, as Ray leaves it."""
    from ray._private import services

    from orchestrator.run.signals import ray_processes_apart

    before = services.ConsolePopen
    with ray_processes_apart():
        group, pid, blocked = started_by_ray()
    assert group == pid != os.getpgrp() and blocked == STOP_NAMES
    assert services.ConsolePopen is before
    group, pid, blocked = started_by_ray()
    assert group == os.getpgrp() and blocked == {"SIGINT"}


def test_without_the_kernels_death_signal_rays_processes_stay_in_the_drivers_group(monkeypatch):
    """Where the kernel cannot end Ray's processes with the driver, Ray's reaper ends them by killing the driver's
    process group: they must stay in it."""
    from ray._private import utils

    from orchestrator.run.signals import ray_processes_apart

    monkeypatch.setattr(utils, "detect_fate_sharing_support", lambda: False)
    with ray_processes_apart():
        group, pid, _ = started_by_ray()
    assert group == os.getpgrp()


TREE = ("import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        "print(child.pid, flush=True); time.sleep(600)")


def alive(pid: int) -> bool:
    """`pid` runs (a zombie has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ending_a_process_ray_started_apart_ends_it_and_what_it_started_at_once():
    """Ray ends its processes with `terminate` (SIGTERM), then SIGKILL a second later. They block SIGTERM, so
    `terminate` SIGKILLs the process and every process it started (the raylet's agents would outlive it): both
    are gone at once, and a process already reaped is left alone."""
    from orchestrator.run.signals import started_apart

    popen = started_apart(subprocess.Popen)
    proc = popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(proc.stdout.readline())
        sent = time.monotonic()
        proc.terminate()
        assert proc.wait(timeout=10) == -signal.SIGKILL and time.monotonic() - sent < 1
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the process it started outlived it"
        proc.terminate()                      # reaped: nothing is sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


# ----- the handler's decisions, without a driver (fast) -----------------------------------------------

class StoppedAtOnce(Exception):
    """`stop_now` was called: the driver would end here (exit 130)."""


@pytest.fixture
def handlers(monkeypatch):
    """The process's usual handlers of the three stop signals for the test (put back after it), and `stop_now`
    replaced by a stand-in that raises StoppedAtOnce naming the signal."""
    from orchestrator.run import signals

    original = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    for s, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                       (signal.SIGHUP, signal.SIG_DFL)):
        signal.signal(s, handler)

    def stop_now(name):
        raise StoppedAtOnce(name)

    monkeypatch.setattr(signals, "stop_now", stop_now)
    try:
        yield signals
    finally:
        signals.STOPS.restore()
        for s, handler in original.items():
            signal.signal(s, handler)


def outcome(sig) -> str:
    """What raising `sig` in this process did: `KeyboardInterrupt` (stopped as Ctrl-C), `at once (NAME)`
    (`stop_now`), or `returned` (handed to Tune's handler). Caught here, so that a wrong outcome fails the
    test instead of interrupting the test session."""
    try:
        signal.raise_signal(sig)
    except KeyboardInterrupt:
        return "KeyboardInterrupt"
    except StoppedAtOnce as exc:
        return f"at once ({exc})"
    return "returned"


def test_a_second_stop_signal_ends_the_driver_at_once_and_a_new_run_starts_afresh(handlers):
    """The first SIGTERM stops the run as Ctrl-C (KeyboardInterrupt) and is remembered; a second one ends the
    driver at once. Once that run is over, the next run in the same process takes its first signal as a first."""
    with handlers.stop_like_ctrl_c() as stops:
        assert outcome(signal.SIGTERM) == "KeyboardInterrupt" and stops.stopping
        assert outcome(signal.SIGHUP) == "at once (SIGHUP)"
    assert not handlers.STOPS.stopping
    with handlers.stop_like_ctrl_c():
        assert outcome(signal.SIGTERM) == "KeyboardInterrupt"


def tune_like_handler(calls: list, ours):
    """What Tune's SIGINT handler does: it stops the trials and puts the previous handler (ours) back."""
    def handler(signum, frame):
        calls.append(signum)
        signal.signal(signal.SIGINT, ours)
    return handler


def test_while_tune_runs_the_first_signal_goes_to_tunes_handler_and_the_second_ends_at_once(handlers):
    """Inside `tune_running` with Tune's SIGINT handler in place: a first SIGTERM is handed to Tune's handler
    (which stops its trials and returns; no KeyboardInterrupt), a second ends the driver at once."""
    stops = handlers.STOPS
    calls = []
    with handlers.stop_like_ctrl_c(), stops.tune_running():
        signal.signal(signal.SIGINT, tune_like_handler(calls, stops._handle))   # Tuner.fit installs its own
        assert outcome(signal.SIGTERM) == "returned"
        assert calls == [signal.SIGINT] and stops.stopping
        assert outcome(signal.SIGTERM) == "at once (SIGTERM)"


def test_a_stop_signal_after_tune_took_a_ctrl_c_ends_the_driver_at_once(handlers):
    """Ctrl-C while Tune runs goes straight to Tune's handler (ours never hears of it), which puts ours back:
    a SIGTERM after that is a second stop signal."""
    stops = handlers.STOPS
    calls = []
    with handlers.stop_like_ctrl_c(), stops.tune_running():
        signal.signal(signal.SIGINT, tune_like_handler(calls, stops._handle))
        assert outcome(signal.SIGINT) == "returned"
        assert calls == [signal.SIGINT] and not stops.stopping
        assert outcome(signal.SIGTERM) == "at once (SIGTERM)"


def test_a_sigint_ignored_at_start_stays_ignored_by_tune_and_a_stop_goes_to_tunes_sigusr1_handler(handlers, monkeypatch):
    """A shell script's background job starts with SIGINT ignored: Ctrl-C in its terminal must not stop the sweep.
    Tune installs its SIGINT handler unless `TUNE_DISABLE_SIGINT_HANDLER` says not to (it is said, while Tune
    runs, and only then), and always takes SIGUSR1 with the same handler: a SIGTERM is handed to that one, which
    puts back SIGINT's handler as it found it (ignored); a second SIGTERM ends the driver at once."""
    stops = handlers.STOPS
    monkeypatch.delenv(handlers.TUNE_SIGINT_ENV, raising=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    calls = []

    def tunes(signum, frame):           # Tune's handler: stops the trials, restores SIGINT's handler at its start
        calls.append(signum)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_usr1 = signal.getsignal(signal.SIGUSR1)
    try:
        with handlers.stop_like_ctrl_c(), stops.tune_running():
            assert os.environ[handlers.TUNE_SIGINT_ENV] == "1" and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            signal.signal(signal.SIGUSR1, tunes)                      # what Tuner.fit installs
            assert outcome(signal.SIGINT) == "returned" and calls == [] and not stops.stopping
            assert outcome(signal.SIGTERM) == "returned" and calls == [signal.SIGUSR1] and stops.stopping
            assert outcome(signal.SIGTERM) == "at once (SIGTERM)"
        assert handlers.TUNE_SIGINT_ENV not in os.environ
        signal.signal(signal.SIGINT, signal.default_int_handler)    # SIGINT handled at start: Tune takes it
        with handlers.stop_like_ctrl_c(), stops.tune_running():
            assert handlers.TUNE_SIGINT_ENV not in os.environ
    finally:
        signal.signal(signal.SIGUSR1, previous_usr1)


def test_once_tune_returned_a_first_signal_stops_as_ctrl_c_again(handlers):
    with handlers.stop_like_ctrl_c() as stops:
        with stops.tune_running():
            pass
        assert outcome(signal.SIGTERM) == "KeyboardInterrupt"


def test_stopping_at_once_kills_every_process_the_driver_started_and_exits_130(monkeypatch):
    """`stop_now`: SIGKILL to each descendant (a raylet left alive would outlive the driver), then exit 130."""
    from orchestrator.run import signals

    class Exited(Exception):
        pass

    killed, exits = [], []
    monkeypatch.setattr(signals, "descendants", lambda pid: [11, 12] if pid == signals.os.getpid() else [])
    monkeypatch.setattr(signals.os, "kill", lambda pid, sig: killed.append((pid, sig)))

    def exit_(code):
        exits.append(code)
        raise Exited

    monkeypatch.setattr(signals.os, "_exit", exit_)
    with pytest.raises(Exited):
        signals.stop_now("SIGTERM")
    assert killed == [(11, signal.SIGKILL), (12, signal.SIGKILL)] and exits == [130]


def test_the_descendants_of_a_process_are_read_from_proc_down_the_whole_tree(monkeypatch):
    """/proc/<pid>/stat is `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so the parent is
    the second field after the *last* `)`. Driver 100 started 200 and 400; 200 started 300 (its comm holds
    `) `); 500 belongs to someone else; entries that are not pids are skipped."""
    from orchestrator.run import signals

    stats = {"100": "100 (python) S 1 100", "200": "200 (ray::IDLE) S 100 100", "300": "300 (a) b (c)) R 200 100",
             "400": "400 (raylet) S 100 100", "500": "500 (other) S 1 500"}
    monkeypatch.setattr(signals.os, "listdir", lambda path: ["self", "net", *stats] if path == "/proc" else [])

    def fake_open(path, *args, **kwargs):
        import io

        pid = path.split("/")[2]
        if pid not in stats:
            raise FileNotFoundError(path)
        return io.StringIO(stats[pid])

    monkeypatch.setattr(signals, "open", fake_open, raising=False)
    assert sorted(signals.descendants(100)) == [200, 300, 400]
    assert signals.descendants(200) == [300] and signals.descendants(500) == []


def test_while_tune_runs_a_reinstall_takes_back_sigterm_and_sighup_but_leaves_sigint_to_tune(handlers):
    """`install` runs again after Ray replaced a handler; while Tune runs, only SIGINT stays Tune's (its handler
    stops the trials): SIGTERM and SIGHUP, replaced meanwhile, are ours again."""
    stops = handlers.STOPS

    def tunes(signum, frame):
        pass

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    with handlers.stop_like_ctrl_c(), stops.tune_running():
        signal.signal(signal.SIGINT, tunes)            # Tuner.fit's own handler
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # replaced by someone else (as ray.init does)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        stops.install()
        assert signal.getsignal(signal.SIGINT) is tunes
        assert signal.getsignal(signal.SIGTERM) == signal.getsignal(signal.SIGHUP) == stops._handle


def test_a_signal_ignored_in_one_run_is_handled_in_the_next_run_that_does_not_ignore_it(handlers):
    """`nohup` leaves SIGHUP ignored for that run only: once the run is over and SIGHUP has its default handler
    again, the next run in the same process handles it (the set of ignored signals does not outlive its run)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with handlers.stop_like_ctrl_c():
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    with handlers.stop_like_ctrl_c() as stops:
        assert signal.getsignal(signal.SIGHUP) == stops._handle
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


def test_a_run_started_from_another_thread_installs_no_handler(handlers):
    """Signal handlers belong to the main thread (signals' docstring): from another thread `install` and `restore`
    do nothing, and raise nothing (Python refuses `signal.signal` there)."""
    import threading

    before = {s: signal.getsignal(s) for s in handlers.STOP_SIGNALS}
    errors = []

    def in_thread():
        try:
            handlers.STOPS.install()
            handlers.STOPS.restore()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert errors == [] and {s: signal.getsignal(s) for s in handlers.STOP_SIGNALS} == before


def test_a_process_already_reaped_is_sent_nothing_as_its_pid_may_be_anothers(monkeypatch):
    """`terminate` of a process Ray started apart that has ended and been reaped sends no signal at all: its pid
    (and what looks like its children) may belong to other processes by now."""
    from orchestrator.run import signals

    proc = signals.started_apart(subprocess.Popen)([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    sent = []
    monkeypatch.setattr(signals.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(signals, "descendants", lambda pid: [pid + 1])
    proc.terminate()
    assert sent == []


def test_a_tune_sigint_setting_the_user_gave_is_left_in_place_after_the_run(handlers, monkeypatch):
    """SIGINT ignored at start and `TUNE_DISABLE_SIGINT_HANDLER` already set by the user: the run takes back only
    what it set itself, so the user's setting is still there once Tune returned."""
    monkeypatch.setenv(handlers.TUNE_SIGINT_ENV, "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with handlers.stop_like_ctrl_c() as stops, stops.tune_running():
        assert os.environ[handlers.TUNE_SIGINT_ENV] == "1"
    assert os.environ.get(handlers.TUNE_SIGINT_ENV) == "1"
