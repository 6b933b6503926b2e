"""Stop signals: SIGTERM (what `ray job stop`, Kubernetes, systemd and pre-empted machines send) and
SIGHUP (a closed terminal) stop a run the way Ctrl-C does. Ray Tune stops its trials, the driver
writes the `tasks` row of every finished task, compacts the tables, marks the MLflow parent run
KILLED, and `mmc-sweep` exits 130 ("interrupted"). Without this, Ray's own handler turns SIGTERM into
exit 134 and a C++ stack dump.

A second stop signal (SIGTERM, SIGHUP or Ctrl-C) while the first is being handled ends the driver at
once (exit 130): every write is atomic (a temporary file renamed into place), so nothing is left
half-written. What is lost: the work of the tasks that were running (a training task keeps its last
finished epoch), and the `tasks` rows still queued, which the next run writes for every finished task.

A stop signal sent to the driver's whole process group (`timeout 25 mmc-sweep run ...`, `kill -TERM -- -PGID`,
a closed terminal's SIGHUP), or to every process of its cgroup (systemd's default `KillMode=control-group`,
`kill -TERM` of every process of a container), must act on the driver alone: the GCS and raylet of a local Ray
die of SIGTERM and SIGHUP, and a driver whose raylet is gone is ended by Ray's core worker within a fraction of a
second (exit 1, "The connection to the plasma store is failed"), one whose GCS is gone waits a minute for it,
then exits 1; either way nothing is compacted and the MLflow run stays RUNNING. `ray_processes_apart` starts
each of them in a process group of its own (the raylet gives each worker its own already) with SIGTERM and SIGHUP
blocked (Ray blocks SIGINT itself; the raylet's agents and workers inherit the mask), so the signal waits, pending,
in them while the driver stops the run as for Ctrl-C and then ends them itself with SIGKILL. Whichever gets the
signal first, the driver or Ray's processes, makes no difference. A driver connected to a cluster (`--address`)
starts no Ray process: a signal to its cgroup does not reach the cluster.

A signal the process was started ignoring stays ignored (`nohup mmc-sweep run ...` survives a closed
terminal; a shell script's background job, which starts with SIGINT ignored, survives Ctrl-C: Tune too is told
to leave SIGINT alone). Ray replaces the SIGTERM handler when it starts: `StopSignals.install` runs again after `ray.init`.
Signal handlers belong to the main thread; elsewhere (a run started from a thread) nothing is installed.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

from orchestrator.messages import logger

log = logger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TUNE_SIGINT_ENV = "TUNE_DISABLE_SIGINT_HANDLER"      # Tune leaves SIGINT alone (it installs its handler otherwise)
TUNE_STOP_SIGNAL = getattr(signal, "SIGUSR1", signal.SIGINT)   # Tune's handler, whatever TUNE_SIGINT_ENV says
EXIT_INTERRUPTED = 130


class StopSignals:
    """The process's handler of stop signals while a run is under way (one per process: `STOPS`)."""

    def __init__(self):
        self.stopping = False          # a first stop signal (or Ctrl-C through Tune) was received
        self._in_tune = False          # Tune's own SIGINT handler is in place (it stops trials gracefully)
        self._previous: dict[int, object] = {}
        self._ignored: set[int] = set()
        self.active = False            # inside `stop_like_ctrl_c`

    # ---- installing -------------------------------------------------------------------------------
    def install(self) -> None:
        """Handle SIGINT, SIGTERM and SIGHUP here (again: after Ray replaced a handler)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            if sig == signal.SIGINT and self._in_tune:
                continue                    # Tune's handler stays in place while Tune runs
            if sig not in self._previous and signal.getsignal(sig) == signal.SIG_IGN:
                self._ignored.add(sig)      # ignored on purpose (`nohup`, a shell's background job): left so
            if sig in self._ignored:
                continue
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        """Put back the handlers there were before `install`."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        self._ignored.clear()
        self.stopping, self._in_tune, self.active = False, False, False

    @contextmanager
    def tune_running(self):
        """Around `Tuner.fit`: a first stop signal goes to Tune's handler, which stops the trials. Where SIGINT
        was ignored at start, Tune is told to leave it so (`TUNE_DISABLE_SIGINT_HANDLER`), and the stop goes to
        the same handler through SIGUSR1, which Tune takes whatever that variable says."""
        self._in_tune = True
        leave_sigint = signal.SIGINT in self._ignored and TUNE_SIGINT_ENV not in os.environ
        if leave_sigint:
            os.environ[TUNE_SIGINT_ENV] = "1"
        try:
            yield
        finally:
            self._in_tune = False
            if leave_sigint:
                os.environ.pop(TUNE_SIGINT_ENV, None)

    # ---- handling -----------------------------------------------------------------------------------
    def _tune_took_the_first(self) -> bool:
        """Tune's SIGINT handler fired (it puts the previous handler, ours, back when it does)."""
        return self._in_tune and signal.getsignal(signal.SIGINT) == self._handle

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.stopping or self._tune_took_the_first():
            stop_now(name)
        self.stopping = True
        log.warning(f"{name} received: stopping as for Ctrl-C (finished tasks are recorded and the tables "
                    "compacted); send it again to stop at once")
        tune_signal = TUNE_STOP_SIGNAL if signal.SIGINT in self._ignored else signal.SIGINT
        tune_handler = signal.getsignal(tune_signal)
        if self._in_tune and callable(tune_handler) and tune_handler != self._handle:
            tune_handler(tune_signal, frame)        # Tune stops its trials and returns
        else:
            raise KeyboardInterrupt


def stop_now(name: str) -> None:
    """End the process at once (a second stop signal), and the processes it started: a local Ray's
    raylet, its agents and workers would otherwise stay up to a minute or two after the driver is gone."""
    message = (f"interrupted again ({name}): stopped at once; the tasks that were running are lost, finished tasks "
               "are kept (a `tasks` row still queued is written by the next run); rerun the same command to resume")
    try:
        log.error(message)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    finally:
        os._exit(EXIT_INTERRUPTED)


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (from /proc; none where there is no /proc)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


STOPS = StopSignals()


@contextmanager
def ray_processes_apart():
    """Around `ray.init` of a local Ray: every process Ray starts (GCS, raylet, the helpers they start) leads
    a process group of its own and blocks SIGTERM and SIGHUP, so that a stop signal to the driver's group, or
    to every process of its cgroup, stops the run as Ctrl-C does instead of killing the GCS and raylet under
    the driver (module docstring); the driver ends them itself (`started_apart`). Only where the kernel ends
    those processes with the driver (Linux's PR_SET_PDEATHSIG, which Ray sets): elsewhere Ray's reaper ends
    them by killing the driver's process group, so they must stay in it. Connecting to a running cluster
    starts nothing."""
    from ray._private import services, utils

    popen = getattr(services, "ConsolePopen", None)   # what Ray starts its processes with
    if popen is None or not hasattr(os, "setpgid") or not utils.detect_fate_sharing_support():
        yield
        return
    services.ConsolePopen = started_apart(popen)
    try:
        yield
    finally:
        services.ConsolePopen = popen


SHIELDED = (signal.SIGTERM, signal.SIGHUP)   # blocked in a local Ray's processes (Ray blocks SIGINT itself)


def started_apart(popen: type) -> type:
    """A subclass of the Popen class `popen` whose child leads a new process group and blocks `SHIELDED` before
    Ray's own `preexec_fn` (which blocks SIGINT and sets the death signal) runs. A blocked signal stays blocked
    across exec, in every thread, and in every process the child starts (the raylet's agents and workers): a
    SIGTERM sent to them all at once waits, pending, and the driver stops the run with its Ray alive.
    `terminate` (Ray's first step in ending a process, with SIGTERM, then SIGKILL one second later) ends the
    process and every process it started at once with SIGKILL: SIGTERM would only wait out that second, and
    the raylet's agents, which its graceful stop used to end, would outlive it. Task code on a local Ray inherits
    the mask too: a process it starts does not die of SIGTERM or SIGHUP (end it with SIGKILL, or unblock them in
    it); this project's tasks start none."""

    class ApartPopen(popen):
        def __init__(self, *args, preexec_fn=None, **kwargs):
            def preexec():
                os.setpgid(0, 0)
                signal.pthread_sigmask(signal.SIG_BLOCK, SHIELDED)
                if preexec_fn is not None:
                    preexec_fn()

            super().__init__(*args, preexec_fn=preexec, **kwargs)

        def terminate(self):
            if self.poll() is not None:      # reaped: its pid may be another process's by now
                return
            below = descendants(self.pid)    # read first: once it is gone they are no longer its own
            for pid in (self.pid, *below):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    return ApartPopen


@contextmanager
def stop_like_ctrl_c():
    """While inside: SIGTERM and SIGHUP stop the run as Ctrl-C does; a second stop signal ends it at once.
    Nested uses (the CLI around `run_sweep`) share the outermost one."""
    if STOPS.active:
        yield STOPS
        return
    STOPS.install()
    STOPS.active = True
    try:
        yield STOPS
    finally:
        STOPS.restore()
