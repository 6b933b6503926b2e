"""Tasks that wait for what no node has: a run on a cluster that lost a node it cannot replace.

The searcher hands a task to Ray Tune once its parents have finished and its kind has room, and Tune keeps
the trial pending until a node can place it. On a cluster that cannot grow (no autoscaler, or none that
starts such a node), a node that left takes with it what only it had (a custom resource, the only GPU), and
the tasks that need it would wait silently for ever. `StallWatch` reads the cluster every
`capacity.REFRESH_S`: tasks handed out (running, to the state) that ask for more than every node of the
cluster has together now, or could have once the autoscaler started every node it may, while no node is on
its way, are *stranded*. It says so once. Once every task handed out is stranded (nothing else runs, so the
run can do nothing more) and no task has ended for `wait_s` (`--wait-for-nodes`, 600 s by default), it stops
the run as Ctrl-C does (finished tasks recorded, exit 130), naming what the tasks wait for, so that the same
command resumes once such a node has joined. A task still running elsewhere (an hour's training) runs to
its end first.

A run on a local Ray (no `--address`) is not watched: its one node does not leave.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from orchestrator.messages import logger
from orchestrator.run import capacity
from orchestrator.run.node_types import describe_resources
from orchestrator.run.state import SweepState, TaskState
from orchestrator.storage.lock import stop_this_driver   # as a lock taken over stops it
from orchestrator.vocab import DONE, FAILED, RUNNING

log = logger(__name__)


class StallWatch:
    """See the module docstring. `check()` is one look (the thread of `watching` calls it)."""

    def __init__(self, state: SweepState, concurrency: capacity.Concurrency, wait_s: float, *,
                 stop: Callable[[], None] = stop_this_driver, clock: Callable[[], float] = time.monotonic):
        self._state, self._concurrency, self.wait_s = state, concurrency, wait_s
        self._stop, self._clock = stop, clock
        self._since: float | None = None        # when tasks were first seen stranded, this time
        self._progress = clock()                # when a task last ended
        self._said = False
        self.stopped = False
        self._asks = {task.resources for task in state.graph.tasks.values()}   # the distinct kinds of ask
        self.close = state.subscribe(self._status_changed)    # call when the run has ended

    def _status_changed(self, task_id: str, before: TaskState, after: TaskState) -> None:
        if after.status in (DONE, FAILED) and before.status != after.status:
            self._progress = self._clock()

    def stranded(self) -> tuple[dict[tuple[str, str], int], int]:
        """(task kind, what one task asks for) -> tasks handed out that no node of the cluster can place; and
        how many tasks are handed out in all."""
        view = self._concurrency.view()
        graph = self._state.graph
        placeable = {asks: view.starting or view.slots(capacity.demand_of(asks)) >= 1 for asks in self._asks}
        if all(placeable.values()):     # the usual case: no need to look at each task
            return {}, self._state.count(RUNNING)
        found: Counter = Counter()
        running = 0
        for task_id, state in list(self._state.states.items()):
            if state.status != RUNNING:
                continue
            running += 1
            task = graph.tasks[task_id]
            if not placeable[task.resources]:
                found[(task.kind, describe_resources(capacity.demand_of(task.resources)))] += 1
        return dict(found), running

    def check(self) -> bool:
        """One look at the cluster; True when it stopped the run."""
        if self.stopped:
            return True
        stranded, running = self.stranded()
        now = self._clock()
        if not stranded:
            self._since, self._said = None, False
            return False
        if sum(stranded.values()) < running:    # something else runs: it may end (and a stop would lose it)
            self._since = None
        elif self._since is None:
            self._since = now
        what = "; ".join(f"{n} {kind} task{'s' if n != 1 else ''} asking for {{{amounts}}}"
                         for (kind, amounts), n in sorted(stranded.items()))
        if not self._said:
            self._said = True
            log.warning(f"waiting: {what}, which no node of the cluster has (a node left?) and none is starting; once "
                        f"nothing else runs, the run stops after {self.wait_s:g} s in which no task ends "
                        "(--wait-for-nodes) unless such a node joins")
        if self._since is None:
            return False
        waited = now - max(self._since, self._progress)
        if waited < self.wait_s:
            return False
        self.stopped = True
        log.error(f"stopping the run: {what}, which no node of the cluster has had for {waited:.0f} s while no task "
                  f"ended (--wait-for-nodes {self.wait_s:g}); finished tasks are kept: run the same command again once "
                  "a node that has it has joined")
        self._stop()
        return True


@contextmanager
def watching(state: SweepState, concurrency: capacity.Concurrency | None, wait_s: float | None) -> Iterator[None]:
    """A `StallWatch` looking every `capacity.REFRESH_S` while the block runs (nothing where `wait_s` or
    `concurrency` is None: a local Ray)."""
    if concurrency is None or wait_s is None:
        yield
        return
    watch = StallWatch(state, concurrency, wait_s)
    done = threading.Event()

    def look() -> None:
        while not done.wait(capacity.REFRESH_S):
            try:
                if watch.check():
                    return
            except Exception:  # noqa: BLE001 - a cluster that cannot be read now: the next look tries again
                continue

    thread = threading.Thread(target=look, name="mmc-stall-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)
        watch.close()
