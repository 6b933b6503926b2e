"""The state of a sweep's tasks while it runs: each task's status, result and timing (`SweepState`),
the tasks ready to start (`ReadySet`), and the progress line (`ProgressPrinter`).

A task's status changes in one place, `SweepState.set_status`; whatever follows a change listens to
it (`SweepState.subscribe`, like the callbacks of Ray Train's controller): the counts per status, the
ready set, the progress line, the driver's recorder. A task that fails skips its pending
descendants right there (`Graph.descendants`), each a change the listeners hear of. Task states are
frozen: a listener keeps the one it is handed, and nothing changes one behind the listeners' backs.
"""
from __future__ import annotations

import heapq
import threading
import time
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import MappingProxyType

from orchestrator import knobs
from orchestrator.graph.dag import Graph
from orchestrator.messages import logger
from orchestrator.vocab import CACHED, DONE, FAILED, PENDING, RUN_STATUSES, RUNNING, SKIPPED
from orchestrator.run.progress import TerminalLine
from orchestrator.run.task_result import TaskResult

FINISHED_STATUSES = (DONE, CACHED)   # a parent in one of these lets its children run

log = logger(__name__)


@dataclass(frozen=True)
class TaskState:
    status: str = PENDING
    error: str | None = None           # why a task failed or was skipped
    error_type: str | None = None      # the class name of the exception a failed task raised
    duration_s: float | None = None
    started_at: float | None = None
    result: TaskResult | None = None
    restarts: int = 0                  # times it was started again after its trial crashed in this run


Listener = Callable[[str, TaskState, TaskState], None]   # (task id, state before, state after)


class SweepState:
    """Status of every task of one invocation; the searcher and the progress line read it.

    `states` is read-only; `set_status` changes a task's state and its counts (a failure with the skips
    it causes, as one change), then tells the listeners: first (once built) the ready set, then the others
    in the order they subscribed. Nothing here scans the whole graph per change.

    `keep_results=False`: a task's `result` (its metrics and step series, ~38 KB for a path evaluation)
    goes to the listeners with the change and is then not kept in `states` (the driver's recorder, a
    listener, writes it out): at 10^5 tasks, kept results would be gigabytes of the driver's memory."""

    def __init__(self, graph: Graph, states: dict[str, TaskState] | None = None, *, keep_results: bool = True):
        self.graph = graph
        self.keep_results = keep_results
        self.started_at = time.time()
        given = dict(states or {})
        self._states = {task_id: given.pop(task_id, None) or TaskState() for task_id in graph.tasks}
        self._states.update(given)
        self.states = MappingProxyType(self._states)
        self._counts: dict[str, int] = dict.fromkeys(RUN_STATUSES, 0)
        for s in self._states.values():
            self._counts[s.status] = self._counts.get(s.status, 0) + 1
        self._listeners: list[Listener] = []
        self._ready: ReadySet | None = None

    # ---- changes ----------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(task_id, before, after)` after every change; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def set_status(self, task_id: str, status: str, reason: str | None = None, **facts) -> list[str]:
        """Give `task_id` the status `status` (`reason`: why it failed or was skipped; `facts`: its other
        fields, `started_at`, `duration_s` and `result` kept from before unless given; `error` and
        `error_type` are this status's: None unless given, so a task that failed and then finished has none).
        A task that fails skips its pending descendants (returned, in the graph's order). The whole change is
        made and counted first; then the listeners hear of each skip and last of the failure, so every
        listener (the progress line among them) sees counts that hold all of it."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown task status {status!r}; allowed: {', '.join(RUN_STATUSES)}")
        before = self._states[task_id]
        after = replace(before, status=status, error=reason, error_type=facts.pop("error_type", None), **facts)
        skips = self._skips(task_id) if status == FAILED else []
        changes = [*skips, (task_id, before, after)]
        for changed, was, now in changes:
            self._states[changed] = now
            self._counts[was.status] -= 1
            self._counts[now.status] = self._counts.get(now.status, 0) + 1
        for change in changes:
            self._tell(*change)
        if not self.keep_results and after.result is not None and self._states[task_id] is after:
            self._states[task_id] = replace(after, result=None)   # the listeners have it
        return [child for child, _, _ in skips]

    def _skips(self, task_id: str) -> list[tuple[str, TaskState, TaskState]]:
        """(child, before, after) for each pending descendant of the failed `task_id`, now skipped."""
        reason = f"skipped: upstream task {task_id} failed"
        return [(child, self._states[child], replace(self._states[child], status=SKIPPED, error=reason, error_type=None))
                for child in self.graph.descendants(task_id) if self._states[child].status == PENDING]

    def _tell(self, task_id: str, before: TaskState, after: TaskState) -> None:
        for listener in list(self._listeners):
            listener(task_id, before, after)

    # ---- reading ----------------------------------------------------------------------------
    @property
    def ready(self) -> ReadySet:
        """The pending tasks whose parents have all finished (built once, then kept up to date)."""
        if self._ready is None:
            self._ready = ReadySet(self)
            self._listeners.insert(0, self._ready.status_changed)   # before any other listener
        return self._ready

    def count(self, status: str) -> int:
        return self._counts.get(status, 0)

    def counts(self) -> dict[str, int]:
        keys = (DONE, RUNNING, PENDING, FAILED, SKIPPED, CACHED)
        return {k: self.count(k) for k in keys}

    def is_ready(self, task_id: str) -> bool:
        task = self.graph.tasks[task_id]
        return self.states[task_id].status == PENDING and all(
            self.states[p].status in FINISHED_STATUSES for p in task.parents
        )

    def eta_s(self, concurrency: int) -> float | None:
        finished = [s.duration_s for s in self.states.values() if s.status == DONE and s.duration_s is not None]
        remaining = self.count(PENDING) + self.count(RUNNING)
        if not finished:
            return None
        return sum(finished) / len(finished) * remaining / max(1, concurrency)

    def progress_line(self, concurrency: int) -> str:
        c = self.counts()
        elapsed = time.time() - self.started_at
        eta = self.eta_s(concurrency)
        eta_text = "?" if eta is None else f"{eta:.0f}s"
        total = len(self.states)
        return (
            f"[{elapsed:7.1f}s] {c[DONE] + c[CACHED]}/{total} finished | done {c[DONE]} | cached {c[CACHED]} | "
            f"running {c[RUNNING]} | pending {c[PENDING]} | failed {c[FAILED]} | skipped {c[SKIPPED]} | ETA {eta_text}"
        )


class ReadySet:
    """The ready tasks of a SweepState, by (kind, resources), each group in graph order.

    Every task counts its parents that have not finished; a parent finishing decrements its children's
    counts and a child reaching zero while pending becomes ready. Updates cost O(children) per status
    change and picking the next task O(log n): no scan of the pending tasks per suggestion."""

    def __init__(self, state: SweepState):
        graph = state.graph
        self._state = state
        self.index = {task_id: i for i, task_id in enumerate(graph.tasks)}
        self._unfinished: dict[str, int] = {}
        self._heaps: dict[tuple, list[tuple[int, str]]] = {}
        self._sizes: dict[tuple, int] = {}
        self._members: set[str] = set()
        for task_id, task in graph.tasks.items():
            self._unfinished[task_id] = sum(
                1 for p in task.parents if state.states[p].status not in FINISHED_STATUSES)
            if self._unfinished[task_id] == 0 and state.states[task_id].status == PENDING:
                self._add(task_id)

    def group(self, task_id: str) -> tuple:
        task = self._state.graph.tasks[task_id]
        return task.kind, task.resources

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._members

    def __iter__(self):
        return iter(sorted(self._members, key=self.index.__getitem__))

    def size(self, group: tuple) -> int:
        return self._sizes.get(group, 0)

    def _add(self, task_id: str) -> None:
        if task_id not in self._members:
            self._members.add(task_id)
            group = self.group(task_id)
            heapq.heappush(self._heaps.setdefault(group, []), (self.index[task_id], task_id))
            self._sizes[group] = self._sizes.get(group, 0) + 1

    def _discard(self, task_id: str) -> None:
        if task_id in self._members:     # its heap entry goes lazily
            self._members.discard(task_id)
            self._sizes[self.group(task_id)] -= 1

    def _head(self, group: tuple) -> tuple[int, str] | None:
        heap = self._heaps[group]
        while heap and heap[0][1] not in self._members:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def first(self, allowed: Callable[[str], bool] | None = None) -> str | None:
        """The ready task that comes first in the graph's order (of the groups whose first task is `allowed`)."""
        heads = [h for h in (self._head(g) for g in list(self._heaps)) if h is not None]
        if allowed is not None:
            heads = [h for h in heads if allowed(h[1])]
        return min(heads)[1] if heads else None

    def take(self, group: tuple, n: int) -> list[str]:
        """Up to `n` ready tasks of `group`, first in the graph's order first; they leave the set."""
        out = []
        while len(out) < n and self._head(group) is not None:
            _, task_id = heapq.heappop(self._heaps[group])
            self._discard(task_id)
            out.append(task_id)
        return out

    def status_changed(self, task_id: str, before: TaskState, after: TaskState) -> None:
        """The listener that keeps the set up to date (`SweepState.ready` subscribes it)."""
        if task_id not in self._unfinished:   # a state kept for a task outside the graph
            return
        old, new = before.status, after.status
        was, now = old in FINISHED_STATUSES, new in FINISHED_STATUSES
        if was != now:
            delta = -1 if now else 1
            states = self._state.states
            for child in self._state.graph.children(task_id):
                self._unfinished[child] += delta
                if self._unfinished[child] == 0 and states[child].status == PENDING:
                    self._add(child)
                elif delta > 0:
                    self._discard(child)
        if new == PENDING and self._unfinished[task_id] == 0:
            self._add(task_id)
        elif new != PENDING:
            self._discard(task_id)


class ProgressPrinter:
    """The progress line: on a change at most every `interval_s` (`$MMC_PROGRESS_INTERVAL_S` wins), at
    once when a task fails, and on demand. Subscribe `on_change`. On a terminal (or to `stream`) it is a
    bar redrawn in place (`progress.TerminalLine`); elsewhere (a log file, `ray job logs`, a pipe) an INFO
    message, like every other line of the run. `concurrency` (for the ETA) may be a function, re-read per
    line; `cluster()` ends the line (the cluster's nodes and GPUs now)."""

    def __init__(self, state: SweepState, concurrency: int | Callable[[], int], interval_s: float | None = None,
                 stream=None, cluster: Callable[[], str] | None = None):
        self._state = state
        self._concurrency = concurrency
        self._cluster = cluster
        self._interval_s = knobs.given(knobs.PROGRESS_INTERVAL_S) or interval_s or knobs.PROGRESS_INTERVAL_S.default
        terminal = stream is None and bool(getattr(sys.stdout, "isatty", None) and sys.stdout.isatty())
        self._line = TerminalLine(stream or sys.stdout) if stream is not None or terminal else None
        self._last = 0.0
        self._lock = threading.Lock()

    def on_change(self, task_id: str, before: TaskState, after: TaskState) -> None:
        if before.status == after.status:
            return
        if before.status == RUNNING and after.status in (DONE, CACHED) and len(self._state.ready) \
                and time.time() - self._last < 2 * self._interval_s:
            # a task ended and a ready one starts next: the line waits for it, so `running` counts both (for at
            # most another interval: a ready task may wait for resources, e.g. GPU nodes still starting)
            return
        self.maybe_print(force=after.status == FAILED)

    def maybe_print(self, force: bool = False) -> None:
        with self._lock:
            now = time.time()
            if force or now - self._last >= self._interval_s:
                self._last = now
                concurrency = self._concurrency() if callable(self._concurrency) else self._concurrency
                line = self._state.progress_line(concurrency) + (f" | {self._cluster()}" if self._cluster else "")
                if self._line is None:
                    log.info(line)
                    return
                done = self._state.count(DONE) + self._state.count(CACHED)
                self._line.show(line, done / max(1, len(self._state.states)), final=force)
