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
