"""The searcher's incremental ready set and status counts (no Ray): SweepState, ReadySet, DagSearcher.

The ready set and the counts listen to `SweepState.set_status` instead of scanning the pending tasks;
these tests compare them with the definition (`SweepState.is_ready`) on diamonds, failures, cached
parents, statuses set from outside, and random walks over the default graph.
"""
from __future__ import annotations

import random

import pytest
from ray.tune.search import Searcher

from orchestrator import knobs, vocab
from orchestrator.run import schedule as S, state as sweep_state
from orchestrator.graph.dag import LABEL_KEYS, Graph, Resources, Task, build_graph
from orchestrator.spec.sweep_spec import load_spec
from orchestrator.run.work import TaskResult

LABELS = {k: None for k in LABEL_KEYS}


def _task(kind: str, name: str, *parents: Task, cpus: float = 1) -> Task:
    return Task(kind, {"name": name}, tuple(p.id for p in parents), LABELS, Resources(cpus=cpus))


def _graph(*tasks: Task) -> Graph:
    return Graph({t.id: t for t in tasks})


def _diamond():
    """a -> b, a -> c, (b, c) -> d, plus an unrelated e."""
    a = _task("pretrain", "a")
    b = _task("finetune", "b", a)
    c = _task("midpoint", "c", a)
    d = _task("path_eval", "d", b, c)
    e = _task("pretrain", "e")
    return _graph(a, b, c, d, e), (a, b, c, d, e)


def _by_definition(state: sweep_state.SweepState) -> set[str]:
    return {t for t in state.graph.tasks if state.is_ready(t)}


def _counted(state: sweep_state.SweepState) -> dict[str, int]:
    return {k: sum(1 for s in state.states.values() if s.status == k) for k in state.counts()}


def _check(state: sweep_state.SweepState) -> None:
    assert set(state.ready) == _by_definition(state)
    assert state.counts() == _counted(state)


def _searcher(state, concurrency: int = 1, max_bundle: int | None = None):
    """A searcher, and the tasks it started and the tasks that ended, in order (heard from the state)."""
    started, finished = [], []

    def listen(task_id, before, after):
        if after.status == vocab.RUNNING and before.status != vocab.RUNNING:
            started.append(task_id)
        elif before.status == vocab.RUNNING and after.status in (vocab.DONE, vocab.FAILED):
            finished.append(task_id)

    state.subscribe(listen)
    searcher = S.DagSearcher(state, concurrency=concurrency, max_bundle=max_bundle)
    return searcher, started, finished


def _complete(searcher, trial: str, config: dict, failed: set[str] = frozenset(), crashed: bool = False,
              duration_s: float = 0.01) -> None:
    results = {t: TaskResult(vocab.FAILED if t in failed else vocab.DONE, duration_s, error="boom" if t in failed else None)
               for t in config["task_ids"]}
    searcher.on_trial_complete(trial, None if crashed else S.pack_results(results), error=crashed)


# ----- the ready set ---------------------------------------------------------------------------

def test_diamond_child_waits_for_both_parents():
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph)
    assert list(state.ready) == [a.id, e.id]
    state.set_status(a.id, vocab.RUNNING)
    assert list(state.ready) == [e.id]
    state.set_status(a.id, vocab.DONE)
    assert list(state.ready) == [b.id, c.id, e.id]
    state.set_status(b.id, vocab.DONE)
    assert d.id not in state.ready                  # c has not finished
    state.set_status(c.id, vocab.CACHED)            # cached counts as finished
    assert d.id in state.ready
    _check(state)


def test_ready_set_follows_statuses_set_from_outside():
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph)
    state.ready   # built now; every change below must reach it
    for tid in (a.id, b.id, c.id):
        state.set_status(tid, vocab.DONE)
    assert d.id in state.ready
    state.set_status(b.id, vocab.PENDING)           # a finished parent is pending again (e.g. invalidated)
    assert d.id not in state.ready and b.id in state.ready
    state.set_status(b.id, vocab.CACHED)
    assert d.id in state.ready
    _check(state)


def test_states_change_only_through_set_status_and_every_listener_hears_each_change():
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph)
    with pytest.raises(TypeError):
        state.states[a.id] = sweep_state.TaskState(status=vocab.DONE)    # read-only ...
    with pytest.raises(AttributeError):
        state.states[a.id].status = vocab.DONE                           # ... and frozen
    heard = []
    unsubscribe = state.subscribe(lambda t, before, after: heard.append((t, before.status, after.status,
                                                                         state.count(vocab.SKIPPED))))
    state.set_status(a.id, vocab.RUNNING, started_at=5.0)
    skipped = state.set_status(a.id, vocab.FAILED, "boom", error_type="RuntimeError")
    assert skipped == [b.id, c.id, d.id] == graph.descendants(a.id)
    # the skipped descendants first, then the failure itself, each heard when the counts hold everything
    assert heard == [(a.id, vocab.PENDING, vocab.RUNNING, 0), (b.id, vocab.PENDING, vocab.SKIPPED, 3),
                     (c.id, vocab.PENDING, vocab.SKIPPED, 3), (d.id, vocab.PENDING, vocab.SKIPPED, 3),
                     (a.id, vocab.RUNNING, vocab.FAILED, 3)]
    failed = state.states[a.id]
    assert (failed.error, failed.error_type, failed.started_at) == ("boom", "RuntimeError", 5.0)   # facts kept
    unsubscribe()
    state.set_status(e.id, vocab.DONE)
    assert len(heard) == 5
    with pytest.raises(ValueError, match="unknown task status"):
        state.set_status(e.id, "finished")


def test_state_built_from_given_statuses():
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph, states={a.id: sweep_state.TaskState(status=vocab.CACHED), b.id: sweep_state.TaskState(status=vocab.DONE)})
    assert list(state.ready) == [c.id, e.id]
    assert state.counts()[vocab.CACHED] == 1 and state.counts()[vocab.PENDING] == 3
    _check(state)


def test_a_failure_skips_exactly_the_pending_descendants_in_graph_order():
    graph = build_graph(load_spec(None, ["seeds=[0,1]"]))
    state = sweep_state.SweepState(graph)
    root = next(t for t, task in graph.tasks.items() if task.kind == "pretrain")
    skipped = state.set_status(root, vocab.FAILED, "boom")
    assert skipped == graph.descendants(root) and skipped
    assert all(state.states[t].status == vocab.SKIPPED and root in state.states[t].error for t in skipped)
    assert state.counts()[vocab.SKIPPED] == len(skipped) and state.counts()[vocab.FAILED] == 1
    assert not set(skipped) & set(state.ready)
    _check(state)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_walk_over_the_default_graph_matches_the_definition(seed):
    graph = build_graph(load_spec(None, ["seeds=[0,1]"]))
    state = sweep_state.SweepState(graph)
    rng = random.Random(seed)
    ids = list(graph.tasks)
    for step in range(400):
        task_id = rng.choice(ids)
        if rng.random() < 0.1:
            state.set_status(task_id, vocab.FAILED, "boom")
        else:
            state.set_status(task_id, rng.choice(vocab.RUN_STATUSES))
        if step % 20 == 0:
            _check(state)
    _check(state)


# ----- the searcher ----------------------------------------------------------------------------

def test_searcher_runs_a_diamond_in_order():
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph)
    searcher, started, finished = _searcher(state)
    first, second = searcher.suggest("t1"), searcher.suggest("t2")
    assert (first["task_ids"], second["task_ids"]) == ([a.id], [e.id])
    assert searcher.suggest("t3") is None            # b, c, d wait for a; something is running
    _complete(searcher, "t1", first)
    got = [searcher.suggest("t3"), searcher.suggest("t4")]
    assert [g["task_ids"] for g in got] == [[b.id], [c.id]]
    _complete(searcher, "t3", got[0])
    assert searcher.suggest("t5") is None            # d still waits for c
    _complete(searcher, "t4", got[1])
    last = searcher.suggest("t5")
    assert last["task_ids"] == [d.id]
    _complete(searcher, "t2", second)
    _complete(searcher, "t5", last)
    assert searcher.suggest("t6") is Searcher.FINISHED
    assert started == [a.id, e.id, b.id, c.id, d.id] and sorted(finished) == sorted(started)
    assert state.counts()[vocab.DONE] == 5 and len(state.ready) == 0


def test_searcher_failure_skips_descendants_and_the_rest_goes_on():
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph)
    searcher, _, finished = _searcher(state)
    cfg = searcher.suggest("t1")
    _complete(searcher, "t1", cfg)
    b_cfg, c_cfg = searcher.suggest("t2"), searcher.suggest("t3")
    _complete(searcher, "t2", b_cfg, failed={b.id})
    assert state.states[b.id].status == vocab.FAILED and state.states[b.id].error == "boom"
    assert state.states[d.id].status == vocab.SKIPPED
    e_cfg = searcher.suggest("t4")
    assert e_cfg["task_ids"] == [e.id]
    _complete(searcher, "t3", c_cfg, crashed=True)   # a crashed trial fails its task with a reason
    assert "crashed" in state.states[c.id].error
    _complete(searcher, "t4", e_cfg)
    assert searcher.suggest("t5") is Searcher.FINISHED
    assert state.counts() == {vocab.DONE: 2, vocab.RUNNING: 0, vocab.PENDING: 0, vocab.FAILED: 2, vocab.SKIPPED: 1, vocab.CACHED: 0}


def test_pending_tasks_that_can_never_run_are_skipped_at_the_end():
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph, states={a.id: sweep_state.TaskState(status=vocab.FAILED),  # from before:
                                                  e.id: sweep_state.TaskState(status=vocab.CACHED)})  # b, c, d pending
    searcher, _, _ = _searcher(state)
    assert searcher.suggest("t1") is Searcher.FINISHED
    assert {state.states[t].status for t in (b.id, c.id, d.id)} == {vocab.SKIPPED}
    assert "never became available" in state.states[d.id].error


def test_bundles_take_ready_tasks_of_one_group_in_graph_order():
    root = _task("pretrain", "root")
    paths = [_task("path_eval", f"p{i}", root) for i in range(10)]
    other = _task("path_eval", "big", root, cpus=2)     # other resources: never in the same bundle
    aligns = [_task("align", f"a{i}", root) for i in range(3)]
    graph = _graph(root, paths[0], other, *paths[1:], *aligns)
    state = sweep_state.SweepState(graph)
    searcher, _, _ = _searcher(state, concurrency=2, max_bundle=4)
    _complete(searcher, "t0", searcher.suggest("t0"))
    first = searcher.suggest("t1")["task_ids"]
    assert first == [p.id for p in paths[:4]]              # ceil(10 / 2) = 5, capped at 4
    second = searcher.suggest("t2")["task_ids"]
    assert second == [other.id]
    third = searcher.suggest("t3")["task_ids"]
    assert third == [p.id for p in paths[4:7]]             # ceil(6 / 2) = 3
    assert all(state.states[t].status == vocab.RUNNING for t in first + second + third)
    _check(state)


def test_the_searcher_drops_its_live_state_when_pickled():
    import pickle

    graph, _ = _diamond()
    searcher, _, _ = _searcher(sweep_state.SweepState(graph))
    assert pickle.loads(pickle.dumps(searcher)).__dict__ == {}


def test_a_trial_gets_its_own_tasks_and_resources_not_the_graph():
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph, states={t: sweep_state.TaskState(status=vocab.DONE) for t in (a.id, b.id, c.id)})
    searcher, _, _ = _searcher(state)
    config = searcher.suggest("t1")
    payload = config[S.PAYLOAD_KEY]
    assert [t.id for t in payload.tasks] == [d.id] and payload.parent_kinds == {b.id: "finetune", c.id: "midpoint"}
    assert S._config_resources(config) == S.trial_resources(d) == {"cpu": 1}
    import copy
    import pickle

    assert copy.deepcopy(config)[S.PAYLOAD_KEY] is payload and str(payload) == "1tasks"   # cheap for Tune
    again = pickle.loads(pickle.dumps(payload))
    assert [t.id for t in again.tasks] == [d.id] and again.tasks[0] == d


def test_tune_keeps_a_finished_trial_small_and_can_still_save_it():
    """Tune keeps every trial to the end of the run; once finished, neither its tasks (in its config and
    again in every result's copy of the config) nor the tasks' results nor Tune's running statistics of
    every reported number stay with it, and Tune can still write its experiment state."""
    from ray.tune.experiment import Trial

    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph, states={t: sweep_state.TaskState(status=vocab.DONE) for t in (a.id, b.id, c.id)})
    searcher, _, _ = _searcher(state)
    config = searcher.suggest("t1")
    trial = Trial("mmc_sweep_test", stub=True, trial_id="t1", config=config, evaluated_params=dict(config))
    result = S.pack_results({d.id: TaskResult(vocab.DONE, 0.1)})
    for step in (1, 2):   # what Tune fills in: the config, timings, the iteration
        trial.update_last_result({**result, "config": trial.config, "training_iteration": step, "time_this_iter_s": 0.1})
    assert trial.metric_analysis and trial.metric_n_steps and "config" in trial.last_result
    searcher.on_trial_complete("t1", trial.last_result)
    assert state.states[d.id].status == vocab.DONE
    S.forget_finished_trial(trial)
    assert S.PAYLOAD_KEY not in trial.config and S.PAYLOAD_KEY not in trial.evaluated_params
    assert trial.config["task_ids"] == [d.id]                   # what names it stays
    assert S.RESULTS_KEY not in trial.last_result and "config" not in trial.last_result
    assert trial.last_result["status"] == vocab.DONE and trial.last_result["training_iteration"] == 2
    assert trial.metric_analysis == {} and trial.metric_n_steps == {}
    saved, metadata = trial.get_json_state()                    # Tune's experiment state, as it writes it at the end
    assert d.id in saved and S.RESULTS_KEY not in metadata and b"TrialPayload".hex() not in saved + metadata
    assert searcher.tasks_of("t1") == [d.id] and searcher.forget_trial("t1") == [d.id]
    assert searcher.tasks_of("t1") == [] and searcher.forget_trial("t1") == []


def _many(kind: str, n: int):
    root = _task("pretrain", "root")
    return root, [_task(kind, f"{kind}{i}", root) for i in range(n)]


@pytest.mark.parametrize("duration_s, bundled", [(0.005, True), (0.5, False)])
def test_kinds_measured_short_are_bundled_and_bundles_grow(duration_s, bundled, monkeypatch):
    monkeypatch.delenv(knobs.MAX_BUNDLE.name, raising=False)
    root, mids = _many("midpoint", 300)
    state = sweep_state.SweepState(_graph(root, *mids))
    searcher, _, _ = _searcher(state, concurrency=2)
    _complete(searcher, "t0", searcher.suggest("t0"))
    for i in range(1, 4):                              # three single tasks measure the kind
        config = searcher.suggest(f"t{i}")
        assert len(config["task_ids"]) == 1
        _complete(searcher, f"t{i}", config, duration_s=duration_s)
    assert searcher.typical_duration("midpoint") == pytest.approx(duration_s)
    size = len(searcher.suggest("t9")["task_ids"])
    assert size == (S.MAX_ADAPTIVE_BUNDLE if bundled else 1)


def test_an_explicit_bundle_cap_holds_for_short_kinds_too(monkeypatch):
    monkeypatch.setenv(knobs.MAX_BUNDLE.name, "4")
    root, paths = _many("path_eval", 40)
    state = sweep_state.SweepState(_graph(root, *paths))
    searcher, _, _ = _searcher(state, concurrency=1)
    _complete(searcher, "t0", searcher.suggest("t0"))
    config = searcher.suggest("t1")
    _complete(searcher, "t1", config, duration_s=0.001)
    assert len(config["task_ids"]) == 4 and len(searcher.suggest("t2")["task_ids"]) == 4


def test_a_crashed_trial_gets_the_reason_and_the_exception_type_from_its_error_file(tmp_path):
    from types import SimpleNamespace

    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph)
    searcher, _, finished = _searcher(state)
    config = searcher.suggest("t1")
    searcher.on_trial_complete("t1", None, error=True)          # Tune tells the searcher first ...
    assert state.states[a.id].error.startswith("the trial crashed") and state.states[a.id].error_type is None
    error_file = tmp_path / "error.txt"
    error_file.write_text("Failure # 1 (occurred at 2026-01-01)\nray::ImplicitFunc.train() (pid=7)\n"
                          "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n")
    trial = SimpleNamespace(trial_id="t1", error_file=str(error_file), config=dict(config), evaluated_params={},
                            last_result={})
    S._CrashReasons(state, searcher).on_trial_error(0, [], trial)   # ... then its callbacks
    failed = state.states[a.id]
    assert failed.status == vocab.FAILED and failed.error_type == "ActorDiedError"
    assert failed.error == ("trial crashed: Failure # 1 (occurred at 2026-01-01) | ray::ImplicitFunc.train() (pid=7) | "
                            "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.")
    assert finished == [a.id] and state.count(vocab.FAILED) == 1 and state.count(vocab.SKIPPED) == 3


@pytest.mark.parametrize("lines, expected", [
    (["Traceback (most recent call last):", '  File "x.py", line 1', "RuntimeError: boom"], "RuntimeError"),
    (["ray.exceptions.RayTaskError(ZeroDivisionError): ray::f() (pid=1)"], "ZeroDivisionError"),
    (["tasks.train.DivergenceError: loss is nan", "", "During handling ...", "KeyboardInterrupt"], "KeyboardInterrupt"),
    (["no exception here", "ValueErrorish text"], None),
])
def test_the_exception_type_is_read_from_a_traceback(lines, expected):
    assert S.error_type_in(lines) == expected


# ----- tasks of a crashed trial started again --------------------------------------------------

class _Cluster:
    """A `capacity.Concurrency` whose cluster has room for a task (or not), counting the fresh reads."""

    def __init__(self, room: bool):
        self.room, self.asked = room, 0

    def limit(self, resources) -> int:
        return 2

    def can_replace(self, resources) -> bool:
        self.asked += 1
        return self.room


def _restarting(state, restarts: int, room: bool = True):
    cluster = _Cluster(room)
    searcher = S.DagSearcher(state, concurrency=1, restarts=restarts)
    searcher._capacity = cluster
    return searcher, cluster


def test_a_crashed_trials_tasks_are_pending_again_up_to_restarts_times_then_fail(tmp_path, caplog):
    """A crash (no result, Tune's error flag): each task of the bundle is given back as pending, as often as
    `restarts` allows, and is suggested again like any ready task; one crash more fails it (and skips its
    descendants). The callback names each restart, with the crash's last line."""
    from types import SimpleNamespace

    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph)
    searcher, cluster = _restarting(state, restarts=2)
    error_file = tmp_path / "error.txt"
    error_file.write_text("ray.exceptions.ActorDiedError: The actor died because its node has died.\n")
    for attempt in (1, 2):
        config = searcher.suggest(f"t{attempt}")
        assert config["task_ids"] == [a.id]
        searcher.on_trial_complete(f"t{attempt}", None, error=True)
        assert state.states[a.id].status == vocab.PENDING and state.states[a.id].started_at is None
        assert searcher.restarted(a.id) == state.states[a.id].restarts == attempt and a.id in state.ready
        trial = SimpleNamespace(trial_id=f"t{attempt}", error_file=str(error_file), config=dict(config),
                                evaluated_params={}, last_result={})
        with caplog.at_level("WARNING", logger="orchestrator.run.schedule"):
            S._CrashReasons(state, searcher).on_trial_error(0, [], trial)
        assert (f"{a.id}: its trial crashed (ray.exceptions.ActorDiedError: The actor died because its node has died.); "
                f"started again ({attempt} of MMC_TASK_RESTARTS=2)") in caplog.text
    _check(state)
    assert searcher.suggest("t3")["task_ids"] == [a.id]
    searcher.on_trial_complete("t3", None, error=True)
    assert state.states[a.id].status == vocab.FAILED and "crashed" in state.states[a.id].error
    assert state.states[d.id].status == vocab.SKIPPED and searcher.restarted(a.id) == 2
    assert cluster.asked == 2       # the cluster is read afresh for each restart, not once restarts are spent
    _check(state)


def test_a_task_that_raised_or_a_cluster_without_room_for_it_is_never_restarted():
    """A task that failed cleanly (its result says so) is not crashed: it fails at once. Without room for the
    task (its node died and no node can take its place), a crash fails it at once, as with no restarts."""
    graph, (a, b, c, d, e) = _diamond()
    state = sweep_state.SweepState(graph)
    searcher, cluster = _restarting(state, restarts=3)
    _complete(searcher, "t1", searcher.suggest("t1"), failed={a.id})
    assert state.states[a.id].status == vocab.FAILED and state.states[a.id].error == "boom"
    assert cluster.asked == 0 and searcher.restarted(a.id) == 0

    state = sweep_state.SweepState(graph)
    searcher, cluster = _restarting(state, restarts=3, room=False)
    _complete(searcher, "t1", searcher.suggest("t1"), crashed=True)
    assert state.states[a.id].status == vocab.FAILED and cluster.asked == 1 and searcher.restarted(a.id) == 0

    state = sweep_state.SweepState(graph)
    searcher, cluster = _restarting(state, restarts=3)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {}, error=False)     # ended without a crash, but without the task's result
    assert state.states[a.id].status == vocab.FAILED and cluster.asked == 0

    state = sweep_state.SweepState(graph)
    searcher = S.DagSearcher(state, concurrency=1)         # no restarts asked for (the default of the class)
    _complete(searcher, "t1", searcher.suggest("t1"), crashed=True)
    assert state.states[a.id].status == vocab.FAILED


def test_a_run_restarts_as_often_as_its_variable_says(monkeypatch):
    """`run_graph` gives the searcher MMC_TASK_RESTARTS (default 2)."""
    seen = []

    class Recording(S.DagSearcher):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("restarts"))
            raise RuntimeError("enough")

    monkeypatch.setattr(S, "DagSearcher", Recording)
    monkeypatch.setattr(S, "quiet_ray_logs", lambda: None)
    graph, _ = _diamond()
    for value in (None, "0", "5"):
        if value is None:
            monkeypatch.delenv(knobs.TASK_RESTARTS.name, raising=False)
        else:
            monkeypatch.setenv(knobs.TASK_RESTARTS.name, value)
        with pytest.raises(RuntimeError, match="enough"):
            S._fit(sweep_state.SweepState(graph), None, None, None, None)
    assert seen == [2, 0, 5]
