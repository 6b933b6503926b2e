"""The sweep state the recorder listens to (`orchestrator/run/state.py`): a failure skips only the pending
descendants, a result reaches the listeners and is kept only when asked, a task that failed and then
finished has no error left. The graph is tests/support/work_graph.py's."""
from __future__ import annotations

import pytest

from orchestrator import vocab
from orchestrator.run import work
from tests.support.work_graph import first, smoke_graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return smoke_graph(tmp_path_factory.mktemp("work"))


def test_a_failure_skips_only_the_pending_descendants_and_keeps_its_error_type(graph):
    from orchestrator.run.state import SweepState

    state = SweepState(graph)
    root = first(graph, vocab.PRETRAIN)
    below = list(graph.descendants(root.id))
    assert len(below) >= 3
    running, cached = below[0], below[1]
    state.set_status(cached, vocab.CACHED)
    state.set_status(running, vocab.RUNNING)
    skipped = state.set_status(root.id, vocab.FAILED, "boom", error_type="ValueError")
    assert sorted(skipped) == sorted(set(below) - {running, cached})
    assert state.states[running].status == vocab.RUNNING and state.states[cached].status == vocab.CACHED
    assert state.states[root.id].error_type == "ValueError" and state.states[root.id].error == "boom"
    assert all(state.states[t].error_type is None for t in skipped)



def test_every_listener_hears_of_a_failure_and_its_skips_with_counts_that_hold_all_of_them(graph):
    """The progress line printed at a skip said `failed 0 | skipped 1` while the failure was on its way."""
    from orchestrator.run.state import SweepState

    state = SweepState(graph)
    root = first(graph, vocab.PRETRAIN)
    heard = []
    state.subscribe(lambda task_id, before, after: heard.append((after.status, state.count(vocab.FAILED),
                                                                 state.count(vocab.SKIPPED))))
    skipped = state.set_status(root.id, vocab.FAILED, "boom")
    assert len(skipped) >= 2
    assert [status for status, _, _ in heard] == [vocab.SKIPPED] * len(skipped) + [vocab.FAILED]   # the failure last
    assert {(failed, skips) for _, failed, skips in heard} == {(1, len(skipped))}


@pytest.mark.parametrize("keep", [True, False])
def test_a_result_goes_to_the_listeners_and_is_kept_only_when_asked(graph, keep):
    from orchestrator.run.state import SweepState

    state = SweepState(graph, keep_results=keep)
    heard = []
    state.subscribe(lambda task_id, before, after: heard.append(after.result))
    task = first(graph, vocab.PRETRAIN)
    result = work.TaskResult(vocab.DONE, 1.0, "cpu", {"m": 1.0})
    state.set_status(task.id, vocab.DONE, result=result, duration_s=1.0)
    assert heard == [result]
    assert (state.states[task.id].result is result) is keep
    assert state.states[task.id].status == vocab.DONE and state.states[task.id].duration_s == 1.0


def test_a_task_that_failed_and_then_finished_has_no_error_left(graph):
    from orchestrator.run.state import SweepState

    state = SweepState(graph)
    task = next(t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL and not list(graph.descendants(t.id)))
    state.set_status(task.id, vocab.FAILED, "boom", error_type="RuntimeError")
    state.set_status(task.id, vocab.RUNNING)
    state.set_status(task.id, vocab.DONE, duration_s=2.0)
    assert (state.states[task.id].error, state.states[task.id].error_type) == (None, None)


def _pending_pair(graph):
    """A pretraining task and one of its children (both pending at the start)."""
    root = first(graph, vocab.PRETRAIN)
    child = next(c for c in graph.children(root.id) if set(graph.tasks[c].parents) == {root.id})
    return root, child


def test_the_eta_is_the_mean_duration_of_the_tasks_done_now_times_the_tasks_left_over_the_concurrency(graph):
    """Done tasks took 10 s and 20 s (mean 15 s); a cached task's duration is another run's; 3 pending and
    1 running are left; 2 at a time: 15 x 4 / 2 = 30 s."""
    from orchestrator.run.state import SweepState, TaskState

    ids = list(graph.tasks)
    assert len(ids) >= 7
    given = {ids[0]: TaskState(vocab.DONE, duration_s=10.0), ids[1]: TaskState(vocab.DONE, duration_s=20.0),
             ids[2]: TaskState(vocab.CACHED, duration_s=500.0), ids[3]: TaskState(vocab.RUNNING),
             ids[4]: TaskState(vocab.FAILED, duration_s=900.0)}
    given.update({t: TaskState(vocab.SKIPPED) for t in ids[8:]})
    state = SweepState(graph, given)
    assert state.count(vocab.PENDING) == 3
    assert state.eta_s(2) == pytest.approx(30.0)
    assert state.eta_s(0) == pytest.approx(60.0)        # no concurrency known: one at a time
    assert SweepState(graph).eta_s(4) is None             # nothing done yet: unknown


def test_the_progress_line_counts_every_status_and_finished_as_done_plus_cached(graph, monkeypatch):
    from orchestrator.run import state as state_mod
    from orchestrator.run.state import SweepState, TaskState

    ids = list(graph.tasks)
    given = {ids[0]: TaskState(vocab.DONE, duration_s=4.0), ids[1]: TaskState(vocab.CACHED),
             ids[2]: TaskState(vocab.CACHED), ids[3]: TaskState(vocab.RUNNING), ids[4]: TaskState(vocab.FAILED),
             ids[5]: TaskState(vocab.SKIPPED), ids[6]: TaskState(vocab.SKIPPED)}
    monkeypatch.setattr(state_mod.time, "time", lambda: 1000.0)
    state = SweepState(graph, given)
    state.started_at = 988.0
    pending = len(ids) - 7
    line = state.progress_line(1)
    assert line == (f"[   12.0s] 3/{len(ids)} finished | done 1 | cached 2 | running 1 | pending {pending} | failed 1 | "
                    f"skipped 2 | ETA {4 * (pending + 1)}s")


def test_a_state_kept_for_a_task_outside_the_graph_stays_and_is_counted(graph):
    """States given for tasks that are no longer in the graph (an earlier spec's) are kept, not dropped."""
    from orchestrator.run.state import SweepState, TaskState

    state = SweepState(graph, {"pretrain-0123456789abcdef": TaskState(vocab.DONE, duration_s=1.0)})
    assert state.states["pretrain-0123456789abcdef"].status == vocab.DONE
    assert state.count(vocab.DONE) == 1 and state.count(vocab.PENDING) == len(graph.tasks)


def test_a_state_kept_for_a_task_outside_the_graph_changes_without_touching_the_ready_set(graph):
    """A task outside the graph (an earlier spec's) has no children here: its change is counted and heard,
    and the ready set (built before) stays as it was."""
    from orchestrator.run.state import SweepState, TaskState

    outside = "pretrain-0123456789abcdef"
    state = SweepState(graph, {outside: TaskState(vocab.PENDING)})
    ready = list(state.ready)
    heard = []
    state.subscribe(lambda task_id, before, after: heard.append((task_id, after.status)))
    state.set_status(outside, vocab.DONE)
    state.set_status(outside, vocab.PENDING)
    assert heard == [(outside, vocab.DONE), (outside, vocab.PENDING)] and list(state.ready) == ready
    assert outside not in state.ready and state.count(vocab.PENDING) == len(graph.tasks) + 1


def test_listeners_hear_of_a_change_after_the_counts_and_the_ready_set_are_up_to_date(graph):
    """SweepState's docstring: the counts changed first, then the listeners told: (once built) the ready set
    first, even before a listener that subscribed before it was built."""
    from orchestrator.run.state import SweepState

    state = SweepState(graph)
    root, child = _pending_pair(graph)
    seen = []
    state.subscribe(lambda task_id, before, after: seen.append((task_id, state.count(vocab.DONE), child in state.ready)))
    assert child not in state.ready
    state.set_status(root.id, vocab.DONE)
    assert seen == [(root.id, 1, True)]


def test_a_change_a_listener_makes_while_it_hears_of_another_is_not_undone(graph):
    """keep_results=False drops the result from the state it set, never from a newer one a listener set."""
    from orchestrator.run.state import SweepState

    state = SweepState(graph, keep_results=False)
    task = first(graph, vocab.PATH_EVAL)
    result = work.TaskResult(vocab.DONE, 1.0)

    def demote(task_id, before, after):
        if after.status == vocab.DONE:
            state.set_status(task_id, vocab.FAILED, "its outputs did not verify")

    state.subscribe(demote)
    state.set_status(task.id, vocab.DONE, result=result)
    assert (state.states[task.id].status, state.states[task.id].error) == (vocab.FAILED, "its outputs did not verify")


def test_tasks_taken_from_the_ready_set_leave_it(graph):
    from orchestrator.run.state import SweepState

    state = SweepState(graph)
    ready = state.ready
    first_id = ready.first()
    group = ready.group(first_id)
    before, size = len(ready), ready.size(group)
    assert ready.take(group, 1) == [first_id]
    assert first_id not in ready and len(ready) == before - 1 and ready.size(group) == size - 1
    assert first_id not in list(ready)


class _Clock:
    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


class _Terminal:
    """A stream that says it is a terminal and keeps what is written."""

    def __init__(self):
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def _printer(graph, monkeypatch, stream, given=None, interval_s=100.0):
    import os
    import shutil

    from orchestrator.run import state as state_mod
    from orchestrator.run.state import ProgressPrinter, SweepState

    monkeypatch.delenv("MMC_PROGRESS_INTERVAL_S", raising=False)
    assert "MMC_PROGRESS_INTERVAL_S" not in os.environ
    clock = _Clock(10_000.0)
    monkeypatch.setattr(state_mod, "time", clock)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a, **k: os.terminal_size((300, 24)))
    state = SweepState(graph, given)
    printer = ProgressPrinter(state, 1, interval_s=interval_s, stream=stream)
    state.subscribe(printer.on_change)
    return state, clock


def test_the_progress_line_is_printed_at_most_every_interval_and_at_once_when_a_task_fails(graph, monkeypatch):
    """`interval_s` (no $MMC_PROGRESS_INTERVAL_S): a status change prints once `interval_s` has passed since the
    last line (exactly then included); a failure prints at once; a change that keeps the status prints nothing."""
    import io

    stream = io.StringIO()
    state, clock = _printer(graph, monkeypatch, stream)
    ids = [t for t in graph.tasks if not list(graph.descendants(t))]
    assert len(ids) >= 4
    lines = lambda: stream.getvalue().count("\n")   # noqa: E731
    state.set_status(ids[0], vocab.RUNNING)
    assert lines() == 1
    clock.now += 50.0
    state.set_status(ids[1], vocab.RUNNING)
    assert lines() == 1                                   # 50 s < 100 s
    clock.now += 50.0
    state.set_status(ids[2], vocab.RUNNING)
    assert lines() == 2                                   # exactly 100 s after the last line
    clock.now += 1.0
    state.set_status(ids[0], vocab.FAILED, "boom")
    assert lines() == 3 and "failed 1" in stream.getvalue().splitlines()[-1]
    clock.now += 1.0
    state.set_status(ids[0], vocab.FAILED, "boom, with its traceback")   # the same status: no new line
    assert lines() == 3


def test_on_a_terminal_the_bar_shows_the_finished_fraction_and_a_failure_ends_the_line(graph, monkeypatch):
    """The bar (20 wide) fills (done + cached) / all tasks; the line is redrawn in place (carriage return, clear
    line) and only a failure's line ends with a newline."""
    from orchestrator.run import progress
    from orchestrator.run.state import TaskState

    ids = list(graph.tasks)
    given = {t: TaskState(vocab.CACHED) for t in ids[: len(ids) // 2]}
    stream = _Terminal()
    state, clock = _printer(graph, monkeypatch, stream, given)
    pending = [t for t in ids if t not in given and not list(graph.descendants(t))]
    state.set_status(pending[0], vocab.DONE)
    fraction = (len(given) + 1) / len(ids)
    assert stream.text.startswith("\r\x1b[2K" + progress.bar(fraction, 20) + " [")
    assert not stream.text.endswith("\n")
    stream.text = ""
    state.set_status(pending[1], vocab.FAILED, "boom")
    assert stream.text.startswith("\r\x1b[2K" + progress.bar(fraction, 20)) and stream.text.endswith("\n")


def test_a_skipped_task_says_which_upstream_task_failed(graph):
    """FAILURES.md: a skipped task's `error` is `skipped: upstream task <id> failed`, the id of the task that
    failed, not its own."""
    from orchestrator.run.state import SweepState

    state = SweepState(graph)
    root = first(graph, vocab.PRETRAIN)
    skipped = state.set_status(root.id, vocab.FAILED, "boom")
    assert skipped
    assert {state.states[t].error for t in skipped} == {f"skipped: upstream task {root.id} failed"}


def test_the_progress_line_reads_the_concurrency_of_now_for_its_eta_and_ends_with_the_cluster(graph, monkeypatch):
    """ProgressPrinter: `concurrency` as a function is re-read per line; `cluster()` ends the line."""
    import io

    from orchestrator.run.state import ProgressPrinter, TaskState

    ids = [t for t in graph.tasks if not list(graph.descendants(t))]
    stream = io.StringIO()
    state, _clock = _printer(graph, monkeypatch, stream, {ids[0]: TaskState(vocab.DONE, duration_s=8.0)})
    left = state.count(vocab.PENDING) + state.count(vocab.RUNNING)
    printer = ProgressPrinter(state, lambda: 4, interval_s=100.0, stream=stream, cluster=lambda: "2 nodes, 1 GPU")
    printer.maybe_print(force=True)
    last = stream.getvalue().splitlines()[-1]
    assert last.endswith(f"ETA {8 * left / 4:.0f}s | 2 nodes, 1 GPU")


def test_a_task_that_ends_while_another_is_ready_leaves_the_line_to_the_start_that_follows(graph, monkeypatch):
    """The line is due at the first change after `interval_s`; when that change is a task ending and a ready
    task starts next, the line waits for the start, so `running` counts every task in flight (on 2 CPUs a run
    printed `running 1` throughout while two tasks ran). It waits one more interval at most (a ready task may
    wait for resources); with nothing ready the end prints at once."""
    import io

    stream = io.StringIO()
    state, clock = _printer(graph, monkeypatch, stream)        # interval 100 s
    roots = [t for t in graph.tasks if not graph.tasks[t].parents]
    assert len(roots) == 2
    state.set_status(roots[0], vocab.RUNNING)
    state.set_status(roots[1], vocab.RUNNING)
    lines = lambda: stream.getvalue().count("\n")   # noqa: E731
    before = lines()
    clock.now += 150.0
    state.set_status(roots[0], vocab.DONE)
    assert len(state.ready) and lines() == before          # a child of roots[0] is ready: its start prints
    child = state.ready.first()
    state.set_status(child, vocab.RUNNING)
    last = stream.getvalue().splitlines()[-1]
    assert lines() == before + 1 and "running 2 |" in last and "done 1 |" in last
    clock.now += 200.0                                     # two intervals since that line, and no start came:
    state.set_status(child, vocab.DONE)                    # the end prints though tasks are ready
    assert len(state.ready) and lines() == before + 2
    for t in graph.tasks:                                  # nothing else ready: an end prints at once
        if state.states[t].status == vocab.PENDING:
            state.set_status(t, vocab.SKIPPED, "not this test's")
    clock.now += 100.0
    state.set_status(roots[1], vocab.DONE)
    assert lines() == before + 3 and "running 0 |" in stream.getvalue().splitlines()[-1]


def test_a_task_taken_back_while_another_is_ready_leaves_the_line_to_the_start_that_follows(graph, monkeypatch):
    """A running task that ends cached (taken back: made from the same bits) is an end like a done one: with a
    ready task about to start, the due line waits for that start, so `running` counts the task in flight."""
    import io

    stream = io.StringIO()
    state, clock = _printer(graph, monkeypatch, stream)        # interval 100 s
    roots = [t for t in graph.tasks if not graph.tasks[t].parents]
    state.set_status(roots[0], vocab.RUNNING)
    lines = lambda: stream.getvalue().count("\n")   # noqa: E731
    before = lines()
    clock.now += 150.0
    state.set_status(roots[0], vocab.CACHED)
    assert len(state.ready) and lines() == before
    state.set_status(state.ready.first(), vocab.RUNNING)
    assert lines() == before + 1 and "running 1 |" in stream.getvalue().splitlines()[-1]
