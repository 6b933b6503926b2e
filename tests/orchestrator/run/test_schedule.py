"""The dependency-aware scheduler: SweepState/DagSearcher alone, then a graph of `events` tasks on Ray
(tests/support/runners.py: each task records how many tasks run beside it, and the pretrain tasks wait
for each other, so concurrency is shown by a barrier rather than by overlapping sleeps)."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from ray.tune.search import Searcher

from orchestrator import knobs
from orchestrator.run import capacity, schedule as S, state as sweep_state
from orchestrator.graph.dag import build_graph
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.results.outputs import read_marker
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.vocab import CACHED, DONE, FAILED, PENDING, RUNNING, SKIPPED
from orchestrator.run.work import TaskResult
from tests.conftest import start_local_ray, write_spec
from tests.support import runners
from tests.support.runners import FAIL_ENV, HOLD_ENV, WAIT_ENV, hook_env

FAILING_KIND = "midpoint"   # the events runner fails every task of this kind (set before Ray starts)


def _graph(tmp_path, **overrides):
    return build_graph(load_spec(write_spec(tmp_path, **overrides)))


@pytest.fixture
def graph(tmp_path):
    """The smoke graph: 2 pretrain, 2 finetune, 1 midpoint, 2 align, 6 path_eval."""
    return _graph(tmp_path)


def _ended(state) -> list[str]:
    """The tasks that end (done or failed) from now on, in order, as the state tells its listeners."""
    ended = []
    state.subscribe(lambda t, before, after: ended.append(t) if before.status == RUNNING and after.status in
                    (DONE, FAILED) else None)
    return ended


def _searcher(state):
    started = []
    state.subscribe(lambda t, before, after: started.append(t) if after.status == RUNNING else None)
    return S.DagSearcher(state), started, _ended(state)


def _ready(state) -> set[str]:
    return {t for t in state.graph.tasks if state.is_ready(t)}


# ----- SweepState -----

def test_only_tasks_whose_parents_finished_are_ready(graph):
    state = sweep_state.SweepState(graph)
    roots = {t for t, task in graph.tasks.items() if not task.parents}
    assert roots and {graph.tasks[t].kind for t in roots} == {"pretrain"}
    assert _ready(state) == roots
    nocue, cue = sorted(roots, key=lambda t: graph.tasks[t].labels["cue_proportion"])
    state.set_status(cue, DONE)
    assert _ready(state) == {nocue} | {t for t, task in graph.tasks.items() if task.parents == (cue,)}
    state.set_status(nocue, CACHED)              # cached counts as finished
    expected = {t for t, task in graph.tasks.items()
                if task.parents and set(task.parents) <= {cue, nocue}}
    assert _ready(state) == expected
    state.set_status(cue, RUNNING)               # running does not
    assert all(cue not in graph.tasks[t].parents for t in _ready(state))


def test_a_failure_skips_exactly_the_pending_descendants(graph):
    state = sweep_state.SweepState(graph)
    nocue = next(t for t, task in graph.tasks.items()
                 if task.kind == "pretrain" and task.labels["cue_proportion"] == 0.0)
    skipped = state.set_status(nocue, FAILED, "boom")
    assert skipped == graph.descendants(nocue) and skipped
    assert state.states[nocue].status == FAILED and state.states[nocue].error == "boom"
    for task_id in skipped:
        assert state.states[task_id].status == SKIPPED
        assert nocue in state.states[task_id].error
    untouched = set(graph.tasks) - set(skipped) - {nocue}
    assert untouched and all(state.states[t].status == PENDING for t in untouched)
    assert state.counts()[SKIPPED] == len(skipped) and state.counts()[FAILED] == 1


def test_progress_line_counts_every_status_and_estimates_the_rest(graph):
    state = sweep_state.SweepState(graph)
    ids = list(graph.tasks)
    for task_id in ids[:2]:
        state.set_status(task_id, DONE, duration_s=10.0)
    state.set_status(ids[2], CACHED)
    state.set_status(ids[3], RUNNING)
    state.set_status(ids[5], SKIPPED)
    assert not graph.descendants(ids[-1])          # the last task (graph order): its failure skips nothing
    state.set_status(ids[-1], FAILED)
    line = state.progress_line(concurrency=2)
    fields = {k: int(v) for k, v in re.findall(r"(done|cached|running|pending|failed|skipped) (\d+)", line)}
    assert fields == {"done": 2, "cached": 1, "running": 1, "pending": len(ids) - 6, "failed": 1, "skipped": 1}
    assert f"3/{len(ids)} finished" in line
    remaining = len(ids) - 6 + 1                   # pending + running, 10 s each, 2 at a time
    assert re.search(r"ETA (\d+)s", line).group(1) == f"{10.0 * remaining / 2:.0f}"
    assert "ETA ?" in sweep_state.SweepState(graph).progress_line(concurrency=2)   # nothing measured yet


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_a_log_line_off_a_terminal_and_a_bar_on_one(graph, caplog, monkeypatch):
    """A log file, `ray job logs`, a pipe: the line is an INFO message of the `orchestrator` logger, like
    every other line of a run; on a terminal a bar redrawn in place, not a log record."""
    state = sweep_state.SweepState(graph)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    with caplog.at_level(logging.INFO, logger="orchestrator"):
        sweep_state.ProgressPrinter(state, 2).maybe_print(force=True)
    # no bar drawn (a log handler an earlier test installed may echo the record itself)
    assert [r.getMessage() for r in caplog.records] == [state.progress_line(2)] and "\x1b[2K" not in sys.stdout.getvalue()
    caplog.clear()
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    with caplog.at_level(logging.INFO, logger="orchestrator"):
        sweep_state.ProgressPrinter(state, 2).maybe_print(force=True)
    assert caplog.records == [] and terminal.getvalue().startswith("\r\x1b[2K")
    assert f"0/{len(graph)} finished" in terminal.getvalue()


# ----- DagSearcher (driven by hand like Tune would) -----

def _drive(state, searcher, concurrency: int, fail: set[str] = frozenset()):
    """Suggest up to `concurrency` trials, complete the oldest, repeat; returns the suggestion order."""
    running, order, n = [], [], 0
    while True:
        config = searcher.suggest(f"trial{n}") if len(running) < concurrency else None
        if config is Searcher.FINISHED:
            assert not running
            return order
        if config is not None:
            bundle = config["task_ids"]
            for task_id in bundle:
                for parent in state.graph.tasks[task_id].parents:
                    assert state.states[parent].status in (DONE, CACHED), (task_id, parent)
                assert state.states[task_id].status == RUNNING
            running.append((f"trial{n}", bundle))
            order.extend(bundle)
            n += 1
            continue
        assert running, "the searcher waits although nothing runs"
        trial_id, bundle = running.pop(0)
        results = {task_id: (TaskResult(FAILED, 0.5, error="injected") if task_id in fail
                             else TaskResult(DONE, 1.0)) for task_id in bundle}
        searcher.on_trial_complete(trial_id, S.pack_results(results))


def test_searcher_releases_every_task_after_its_parents(graph):
    state = sweep_state.SweepState(graph)
    searcher, started, finished = _searcher(state)
    order = _drive(state, searcher, concurrency=3)
    assert sorted(order) == sorted(graph.tasks) and started == order and sorted(finished) == sorted(order)
    assert state.counts()[DONE] == len(graph)


def test_searcher_skips_descendants_of_a_failed_task_and_finishes(graph):
    state = sweep_state.SweepState(graph)
    midpoint = next(t for t, task in graph.tasks.items() if task.kind == "midpoint")
    searcher, _, _ = _searcher(state)
    order = _drive(state, searcher, concurrency=2, fail={midpoint})
    skipped = set(graph.descendants(midpoint))
    assert set(order) == set(graph.tasks) - skipped
    assert state.states[midpoint].status == FAILED and state.states[midpoint].error == "injected"
    assert {t for t, s in state.states.items() if s.status == SKIPPED} == skipped
    assert state.counts()[DONE] == len(graph) - len(skipped) - 1


def test_crashed_trial_without_result_fails_its_task(graph):
    state = sweep_state.SweepState(graph)
    searcher, _, finished = _searcher(state)
    [task_id] = searcher.suggest("t0")["task_ids"]
    searcher.on_trial_complete("t0", None, error=True)
    assert state.states[task_id].status == FAILED and "crashed" in state.states[task_id].error
    assert finished == [task_id] and searcher.tasks_of("t0") == [task_id]
    searcher.on_trial_complete("unknown-trial", {"status": DONE})    # ignored


def test_searcher_waits_while_tasks_run_and_finishes_when_nothing_can_run(graph):
    state = sweep_state.SweepState(graph)
    searcher, _, _ = _searcher(state)
    first = [searcher.suggest(f"t{i}") for i in range(3)]
    assert [c is not None for c in first] == [True, True, False]   # two roots, then wait (None)
    state.set_status(first[0]["task_ids"][0], FAILED)              # its descendants are skipped
    state.set_status(first[1]["task_ids"][0], DONE)
    while (config := searcher.suggest("tx")) not in (None, Searcher.FINISHED):
        for task_id in config["task_ids"]:
            state.set_status(task_id, DONE)
    assert config is Searcher.FINISHED
    assert state.count(PENDING) == 0 and state.count(SKIPPED) > 0 and state.count(RUNNING) == 0


def test_bundle_results_survive_the_trip_through_tune():
    results = {"a": TaskResult(DONE, 1.5, "cpu:x", {"x.y": 1.0}, [["train_loss", 0, 0.5]]),
               "b": TaskResult(FAILED, 0.1, error="boom")}
    packed = S.pack_results(results)
    assert packed["status"] == FAILED and set(packed) == {"status", S.RESULTS_KEY}
    assert isinstance(packed[S.RESULTS_KEY], str)          # one value: Tune would flatten a nested dict
    assert S.unpack_results(packed) == results
    assert S.pack_results({"a": results["a"]})["status"] == DONE
    assert S.unpack_results(None) == {} and S.unpack_results({"status": DONE}) == {}


def test_short_tasks_are_bundled_and_spread_over_the_concurrency(graph, monkeypatch):
    monkeypatch.setenv(knobs.MAX_BUNDLE.name, "1")           # as events_ray sets it: the argument still wins
    state = sweep_state.SweepState(graph)
    for task_id, task in graph.tasks.items():            # make every non-path task finished
        if task.kind != "path_eval":
            state.set_status(task_id, DONE)
    n_ready = sum(1 for t, task in graph.tasks.items() if task.kind == "path_eval" and state.is_ready(t))
    assert 1 < n_ready < sum(1 for t in graph.tasks.values() if t.kind == "path_eval")   # aligned wait for linear
    searcher = S.DagSearcher(state, concurrency=2, max_bundle=8)
    first = searcher.suggest("t0")["task_ids"]
    assert len(first) == min(8, -(-n_ready // 2)) and len(first) > 1
    assert all(graph.tasks[t].kind == "path_eval" for t in first)
    single = S.DagSearcher(sweep_state.SweepState(graph), concurrency=2, max_bundle=1)
    assert len(single.suggest("t0")["task_ids"]) == 1


def test_trial_resources_follow_the_task():
    from orchestrator.graph.dag import Resources, Task

    def task(kind, **r):
        return Task(kind, {"x": 1}, (), {}, Resources(**r))

    assert S.trial_resources(task("pretrain", cpus=0.5)) == {"cpu": 0.5}
    assert S.trial_resources(task("align", cpus=1, gpus=0.25, custom=(("fake_gpu", 1.0),))) == {
        "cpu": 1, "gpu": 0.25, "fake_gpu": 1.0}
    # a trial that only drives Ray Train workers reserves (almost) nothing itself
    assert S.trial_resources(task("pretrain", cpus=1, workers=2)) == {"cpu": capacity.TRAINER_CPU}
    assert S.trial_resources(task("path_eval", cpus=1, workers=2)) == {"cpu": 1}


# ----- on Ray -----

@pytest.fixture(scope="module")
def events_ray(tmp_path_factory):
    """Local Ray whose workers run the `events` runner (tests/support/runners.py), fail every FAILING_KIND task,
    hold each pretrain task until both pretrain tasks run, and keep each align task running until 3
    align tasks run at once or 10 s pass (set before Ray starts: workers inherit it). One task per
    trial (no bundles), so that the number of trials is the number of tasks running."""
    events = tmp_path_factory.mktemp("events")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in hook_env(events, **{FAIL_ENV: FAILING_KIND, WAIT_ENV: "pretrain:2",
                                              HOLD_ENV: "align:3:10"}).items():
            mp.setenv(key, value)
        mp.setenv(knobs.MAX_BUNDLE.name, "1")
        start_local_ray(2)
        import ray

        yield events
        ray.shutdown()


def _run(tmp_path, graph, max_concurrent: int):
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "sched")
    ctx = S.TrialContext(graph=graph, storage_uri=layout.storage.uri, sweep="sched", runner=runners.name("events"))
    state = sweep_state.SweepState(graph)
    finished = _ended(state)
    S.run_graph(state, layout, ctx, max_concurrent=max_concurrent)
    return state, layout, finished


def test_ray_run_respects_max_concurrent_and_dependencies(events_ray, tmp_path):
    # 0.5 CPU per task: 4 would fit on 2 CPUs, so only max_concurrent limits the width
    half = {"cpus": 0.5}
    graph = _graph(tmp_path, paths={"kinds": ["linear", "aligned"], "finetuned_kinds": ["linear", "aligned"],
                                    "alignments": ["weight"]},
                   resources={k: half for k in ("pretrain", "finetune", "align", "path_eval")})
    assert "midpoint" not in graph.counts()
    state, layout, finished = _run(tmp_path, graph, max_concurrent=2)
    assert state.counts()[DONE] == len(graph), state.progress_line(2)
    assert sorted(finished) == sorted(graph.tasks)
    metrics = {t: s.result.metrics for t, s in state.states.items()}
    assert max(m["running_at_start"] for m in metrics.values()) <= 2       # never wider than max_concurrent ...
    aligns = [t for t, task in graph.tasks.items() if task.kind == "align"]
    assert len(aligns) == 3 and max(metrics[t]["peak"] for t in aligns) == 2   # ... although 3 could run (CPUs)
    pretrains = [t for t, task in graph.tasks.items() if task.kind == "pretrain"]
    assert [metrics[t]["partners"] for t in pretrains] == [2, 2]            # and as wide (both ran at once)
    for task_id, task in graph.tasks.items():
        for parent in task.parents:
            assert metrics[task_id]["started_at"] >= metrics[parent]["finished_at"], (task_id, parent)
        marker = read_marker(layout, task.kind, task.id)
        assert marker is not None and marker["meta"]["node_id"]


def test_ray_run_fails_a_kind_and_skips_what_depends_on_it(events_ray, tmp_path):
    graph = _graph(tmp_path, paths={"kinds": ["quadratic"]})
    state, _, finished = _run(tmp_path, graph, max_concurrent=2)
    midpoints = {t for t, task in graph.tasks.items() if task.kind == FAILING_KIND}
    skipped = {d for m in midpoints for d in graph.descendants(m)}
    assert midpoints and skipped
    assert {t for t, s in state.states.items() if s.status == FAILED} == midpoints
    assert {t for t, s in state.states.items() if s.status == SKIPPED} == skipped
    assert state.counts()[DONE] == len(graph) - len(midpoints) - len(skipped)
    assert all("injected failure" in state.states[m].error for m in midpoints)
    assert set(finished) == set(graph.tasks) - skipped     # skipped tasks never reach a trial
