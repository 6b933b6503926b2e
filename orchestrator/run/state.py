"""The state of a sweep's tasks while it runs: each task's status, result and timing (`SweepState`),
the tasks ready to start (`ReadySet`, kept up to date as tasks finish: no scan per suggestion), and
the progress line (`ProgressPrinter`)."""
from __future__ import annotations

import heapq
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from orchestrator.graph.dag import Graph
from orchestrator.vocab import CACHED, DONE, FAILED, PENDING, RUN_STATUSES, RUNNING, SKIPPED
from orchestrator.run.progress import TerminalLine
from orchestrator.run.work import TaskResult

PROGRESS_INTERVAL_S_ENV_VAR = "MMC_PROGRESS_INTERVAL_S"
DEFAULT_PROGRESS_INTERVAL_S = 5.0

FINISHED_STATUSES = (DONE, CACHED)   # a parent in one of these lets its children run


@dataclass
class TaskState:
    status: str = PENDING
    error: str | None = None
    duration_s: float | None = None
    started_at: float | None = None
    result: TaskResult | None = None

    def __setattr__(self, name: str, value) -> None:
        old = self.__dict__.get(name)
        object.__setattr__(self, name, value)
        if name == "status" and old != value:
            owner = self.__dict__.get("_owner")
            if owner is not None:
                owner._status_changed(self.__dict__["_task_id"], old, value)


class _States(dict):
    """task id -> TaskState; a state put in is counted (and watched) by its SweepState."""

    def __init__(self, owner: SweepState, states: dict):
        super().__init__()
        self._owner = owner
        for task_id, s in states.items():
            self[task_id] = s

    def __setitem__(self, task_id: str, s: TaskState) -> None:
        old = self.get(task_id)
        if old is not None:
            object.__setattr__(old, "_owner", None)
            self._owner._status_changed(task_id, old.status, None)
        super().__setitem__(task_id, s)
        object.__setattr__(s, "_owner", self._owner)
        object.__setattr__(s, "_task_id", task_id)
        self._owner._status_changed(task_id, None, s.status)


@dataclass
class SweepState:
    """Status of every task of one invocation; the searcher and the progress line read it.

    Counts per status and the set of ready tasks are kept up to date as statuses change (assigning
    `states[t].status` is enough), so nothing here scans the whole graph per event."""

    graph: Graph
    states: dict[str, TaskState] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self._counts: dict[str | None, int] = dict.fromkeys(RUN_STATUSES, 0)
        self._ready: ReadySet | None = None
        given = self.states
        self.states = _States(self, {})
        for task_id in self.graph.tasks:
            self.states[task_id] = given.get(task_id) or TaskState()
        for task_id, s in given.items():
            if task_id not in self.states:
                self.states[task_id] = s

    def _status_changed(self, task_id: str, old: str | None, new: str | None) -> None:
        if old is not None:
            self._counts[old] = self._counts.get(old, 0) - 1
        if new is not None:
            self._counts[new] = self._counts.get(new, 0) + 1
        if self._ready is not None and task_id in self.graph.tasks:
            self._ready.status_changed(task_id, old, new)

    @property
    def ready(self) -> ReadySet:
        """The pending tasks whose parents have all finished (built once, then kept up to date)."""
        if self._ready is None:
            self._ready = ReadySet(self)
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

    def mark_failed(self, task_id: str, error: str) -> list[str]:
        """Mark a task failed and its pending descendants skipped; return the skipped ids (in the
        graph's order). Visits the task's descendants only."""
        self.states[task_id].status = FAILED
        self.states[task_id].error = error
        found, stack = set(), [task_id]
        while stack:
            for child in self.graph.children(stack.pop()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        order = self.ready.index
        skipped = []
        for child in sorted(found, key=order.__getitem__):
            state = self.states[child]
            if state.status == PENDING:
                state.status = SKIPPED
                state.error = f"skipped: upstream task {task_id} failed"
                skipped.append(child)
        return skipped

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

    def status_changed(self, task_id: str, old: str | None, new: str | None) -> None:
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
    """Prints one progress line on every change, at most every `interval_s`, and on demand.
    `concurrency` (for the ETA) may be a function, re-read per line; `cluster()` ends the line (the
    cluster's nodes and GPUs now)."""

    def __init__(self, state: SweepState, concurrency: int | Callable[[], int], interval_s: float | None = None,
                 stream=None, cluster: Callable[[], str] | None = None):
        self._state = state
        self._concurrency = concurrency
        self._cluster = cluster
        self._interval_s = float(os.environ.get(PROGRESS_INTERVAL_S_ENV_VAR, interval_s or DEFAULT_PROGRESS_INTERVAL_S))
        self._line = TerminalLine(stream or sys.stdout)   # a bar redrawn in place on a terminal
        self._last = 0.0
        self._lock = threading.Lock()

    def maybe_print(self, force: bool = False) -> None:
        with self._lock:
            now = time.time()
            if force or now - self._last >= self._interval_s:
                self._last = now
                concurrency = self._concurrency() if callable(self._concurrency) else self._concurrency
                line = self._state.progress_line(concurrency) + (f" | {self._cluster()}" if self._cluster else "")
                done = self._state.count(DONE) + self._state.count(CACHED)
                self._line.show(line, done / max(1, len(self._state.states)), final=force)
