"""The dependency-aware scheduler: SweepState/DagSearcher alone, then a graph of sleeping tasks on Ray."""

from __future__ import annotations

import re

import pytest
from ray.tune.search import Searcher

from orchestrator import schedule as S
from orchestrator.graph import build_graph
from orchestrator.layout import Storage, SweepLayout
from orchestrator.outputs import read_marker
from orchestrator.spec import load_spec
from orchestrator.work import FAIL_TASK_ENV_VAR, SLEEP_S_ENV_VAR
from tests.conftest import write_spec

SLEEP_S = 1.2   # long enough that a second trial actor starts (1-3 s) before the first task ends
FAILING_KIND = "midpoint"   # the sleep runner fails every task of this kind (set before Ray starts)


def _graph(tmp_path, **overrides):
    return build_graph(load_spec(write_spec(tmp_path, **overrides)))


@pytest.fixture
def graph(tmp_path):
    """The smoke graph: 2 pretrain, 2 finetune, 3 midpoint, 6 align, 12 path_eval."""
    return _graph(tmp_path)


def _searcher(state):
    started, finished = [], []
    return S.DagSearcher(state, on_start=started.append, on_finish=finished.append), started, finished


def _ready(state) -> set[str]:
    return {t for t in state.graph.tasks if state.is_ready(t)}


# ----- SweepState -----

def test_only_tasks_whose_parents_finished_are_ready(graph):
    state = S.SweepState(graph)
    roots = {t for t, task in graph.tasks.items() if not task.parents}
    assert roots and {graph.tasks[t].kind for t in roots} == {"pretrain"}
    assert _ready(state) == roots
    nocue, cue = sorted(roots, key=lambda t: graph.tasks[t].labels["cue_proportion"])
    state.states[cue].status = S.DONE
    assert _ready(state) == {nocue} | {t for t, task in graph.tasks.items() if task.parents == (cue,)}
    state.states[nocue].status = S.CACHED          # cached counts as finished
    expected = {t for t, task in graph.tasks.items()
                if task.parents and set(task.parents) <= {cue, nocue}}
    assert _ready(state) == expected
    state.states[cue].status = S.RUNNING           # running does not
    assert all(cue not in graph.tasks[t].parents for t in _ready(state))


def test_a_failure_skips_exactly_the_pending_descendants(graph):
    state = S.SweepState(graph)
    nocue = next(t for t, task in graph.tasks.items()
                 if task.kind == "pretrain" and task.labels["cue_proportion"] == 0.0)
    skipped = state.mark_failed(nocue, "boom")
    assert skipped == graph.descendants(nocue) and skipped
    assert state.states[nocue].status == S.FAILED and state.states[nocue].error == "boom"
    for task_id in skipped:
        assert state.states[task_id].status == S.SKIPPED
        assert nocue in state.states[task_id].error
    untouched = set(graph.tasks) - set(skipped) - {nocue}
    assert untouched and all(state.states[t].status == S.PENDING for t in untouched)
    assert state.counts()[S.SKIPPED] == len(skipped) and state.counts()[S.FAILED] == 1


def test_progress_line_counts_every_status_and_estimates_the_rest(graph):
    state = S.SweepState(graph)
    ids = list(graph.tasks)
    for task_id in ids[:2]:
        state.states[task_id].status, state.states[task_id].duration_s = S.DONE, 10.0
    state.states[ids[2]].status = S.CACHED
    state.states[ids[3]].status = S.RUNNING
    state.states[ids[4]].status = S.FAILED
    state.states[ids[5]].status = S.SKIPPED
    line = state.progress_line(concurrency=2)
    fields = {k: int(v) for k, v in re.findall(r"(done|cached|running|pending|failed|skipped) (\d+)", line)}
    assert fields == {"done": 2, "cached": 1, "running": 1, "pending": len(ids) - 6, "failed": 1, "skipped": 1}
    assert f"3/{len(ids)} finished" in line
    remaining = len(ids) - 6 + 1                   # pending + running, 10 s each, 2 at a time
    assert re.search(r"ETA (\d+)s", line).group(1) == f"{10.0 * remaining / 2:.0f}"
    assert "ETA ?" in S.SweepState(graph).progress_line(concurrency=2)   # nothing measured yet


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
                    assert state.states[parent].status in (S.DONE, S.CACHED), (task_id, parent)
                assert state.states[task_id].status == S.RUNNING
            running.append((f"trial{n}", bundle))
            order.extend(bundle)
            n += 1
            continue
        assert running, "the searcher waits although nothing runs"
        trial_id, bundle = running.pop(0)
        results = {task_id: ({"status": "failed", "error": "injected"} if task_id in fail
                             else {"status": "done", "duration_s": 1.0}) for task_id in bundle}
        searcher.on_trial_complete(trial_id, S.pack_results(results))


def test_searcher_releases_every_task_after_its_parents(graph):
    state = S.SweepState(graph)
    searcher, started, finished = _searcher(state)
    order = _drive(state, searcher, concurrency=3)
    assert sorted(order) == sorted(graph.tasks) and started == order and sorted(finished) == sorted(order)
    assert state.counts()[S.DONE] == len(graph)


def test_searcher_skips_descendants_of_a_failed_task_and_finishes(graph):
    state = S.SweepState(graph)
    midpoint = next(t for t, task in graph.tasks.items() if task.kind == "midpoint")
    searcher, _, _ = _searcher(state)
    order = _drive(state, searcher, concurrency=2, fail={midpoint})
    skipped = set(graph.descendants(midpoint))
    assert set(order) == set(graph.tasks) - skipped
    assert state.states[midpoint].status == S.FAILED and state.states[midpoint].error == "injected"
    assert {t for t, s in state.states.items() if s.status == S.SKIPPED} == skipped
    assert state.counts()[S.DONE] == len(graph) - len(skipped) - 1


def test_crashed_trial_without_result_fails_its_task(graph):
    state = S.SweepState(graph)
    searcher, _, finished = _searcher(state)
    [task_id] = searcher.suggest("t0")["task_ids"]
    searcher.on_trial_complete("t0", None, error=True)
    assert state.states[task_id].status == S.FAILED and "crashed" in state.states[task_id].error
    assert finished == [task_id] and searcher.tasks_of("t0") == [task_id]
    searcher.on_trial_complete("unknown-trial", {"status": "done"})    # ignored


def test_searcher_waits_while_tasks_run_and_finishes_when_nothing_can_run(graph):
    state = S.SweepState(graph)
    searcher, _, _ = _searcher(state)
    first = [searcher.suggest(f"t{i}") for i in range(3)]
    assert [c is not None for c in first] == [True, True, False]   # two roots, then wait (None)
    state.states[first[0]["task_ids"][0]].status = S.FAILED          # failed without marking descendants
    state.states[first[1]["task_ids"][0]].status = S.DONE
    while (config := searcher.suggest("tx")) not in (None, Searcher.FINISHED):
        for task_id in config["task_ids"]:
            state.states[task_id].status = S.DONE
    assert config is Searcher.FINISHED
    assert state.count(S.PENDING) == 0 and state.count(S.SKIPPED) > 0
    assert all("never" in s.error for s in state.states.values() if s.status == S.SKIPPED)


def test_bundle_results_survive_the_trip_through_tune():
    results = {"a": {"status": "done", "metrics": {"x.y": 1.0}}, "b": {"status": "failed", "error": "boom"}}
    packed = S.pack_results(results)
    assert packed["status"] == S.FAILED and set(packed) == {"status", S.RESULTS_KEY}
    assert S.unpack_results(packed) == results
    assert S.unpack_results(None) == {} and S.unpack_results({"status": "done"}) == {}


def test_short_tasks_are_bundled_and_spread_over_the_concurrency(graph):
    state = S.SweepState(graph)
    for task_id, task in graph.tasks.items():            # make every non-path task finished
        if task.kind != "path_eval":
            state.states[task_id].status = S.DONE
    n_paths = sum(1 for t in graph.tasks.values() if t.kind == "path_eval")
    searcher = S.DagSearcher(state, on_start=lambda t: None, on_finish=lambda t: None, concurrency=2, max_bundle=8)
    first = searcher.suggest("t0")["task_ids"]
    assert len(first) == min(8, -(-n_paths // 2)) and len(first) > 1
    assert all(graph.tasks[t].kind == "path_eval" for t in first)
    single = S.DagSearcher(S.SweepState(graph), on_start=lambda t: None, on_finish=lambda t: None,
                           concurrency=2, max_bundle=1)
    assert len(single.suggest("t0")["task_ids"]) == 1


def test_trial_resources_follow_the_task():
    from orchestrator.graph import Resources, Task

    def task(kind, **r):
        return Task(kind, {"x": 1}, (), {}, Resources(**r))

    assert S.trial_resources(task("pretrain", cpus=0.5)) == {"cpu": 0.5}
    assert S.trial_resources(task("align", cpus=1, gpus=0.25, custom=(("fake_gpu", 1.0),))) == {
        "cpu": 1, "gpu": 0.25, "fake_gpu": 1.0}
    # a trial that only drives Ray Train workers reserves (almost) nothing itself
    assert S.trial_resources(task("pretrain", cpus=1, workers=2)) == {"cpu": S.TRIAL_CPU_WITH_TRAIN_WORKERS}
    assert S.trial_resources(task("path_eval", cpus=1, workers=2)) == {"cpu": 1}


# ----- on Ray -----

@pytest.fixture(scope="module")
def sleepy_ray():
    """Local Ray whose workers sleep SLEEP_S per task and fail every FAILING_KIND task."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SLEEP_S_ENV_VAR, str(SLEEP_S))
        mp.setenv(FAIL_TASK_ENV_VAR, FAILING_KIND)
        import ray

        if ray.is_initialized():
            ray.shutdown()
        S.init_ray(num_cpus=2)
        yield
        ray.shutdown()


def _run(tmp_path, graph, max_concurrent: int):
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "sched")
    ctx = S.TrialContext(graph=graph, storage_uri=layout.storage.uri, sweep="sched", runner="sleep")
    state, finished = S.SweepState(graph), []
    S.run_graph(state, layout, ctx, max_concurrent=max_concurrent, on_finish=finished.append)
    return state, layout, finished


def _max_overlap(intervals) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    level = peak = 0
    for _, step in events:            # ends sort before starts at equal times
        level += step
        peak = max(peak, level)
    return peak


def test_ray_run_respects_max_concurrent_and_dependencies(sleepy_ray, tmp_path):
    # 0.5 CPU per task: 4 would fit on 2 CPUs, so only max_concurrent limits the width
    half = {"cpus": 0.5}
    graph = _graph(tmp_path, paths={"kinds": ["linear", "aligned"], "alignments": ["weight"]},
                   resources={k: half for k in ("pretrain", "finetune", "align", "path_eval")})
    assert "midpoint" not in graph.counts()
    state, layout, finished = _run(tmp_path, graph, max_concurrent=2)
    assert state.counts()[S.DONE] == len(graph), state.progress_line(2)
    assert sorted(finished) == sorted(graph.tasks)
    times = {t: (s.result["metrics"]["started_at"], s.result["metrics"]["finished_at"])
             for t, s in state.states.items()}
    assert _max_overlap(times.values()) == 2
    for task_id, task in graph.tasks.items():
        for parent in task.parents:
            assert times[task_id][0] >= times[parent][1], (task_id, parent)
        marker = read_marker(layout, task)
        assert marker is not None and marker["meta"]["node_id"]


def test_ray_run_fails_a_kind_and_skips_what_depends_on_it(sleepy_ray, tmp_path):
    graph = _graph(tmp_path, paths={"kinds": ["quadratic"]})
    state, _, finished = _run(tmp_path, graph, max_concurrent=2)
    midpoints = {t for t, task in graph.tasks.items() if task.kind == FAILING_KIND}
    skipped = {d for m in midpoints for d in graph.descendants(m)}
    assert midpoints and skipped
    assert {t for t, s in state.states.items() if s.status == S.FAILED} == midpoints
    assert {t for t, s in state.states.items() if s.status == S.SKIPPED} == skipped
    assert state.counts()[S.DONE] == len(graph) - len(midpoints) - len(skipped)
    assert all("injected failure" in state.states[m].error for m in midpoints)
    assert set(finished) == set(graph.tasks) - skipped     # skipped tasks never reach a trial
