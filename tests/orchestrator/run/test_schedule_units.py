"""The searcher's arithmetic and the trial's plumbing, without Ray: the median of a kind's latest durations,
the size of a bundle, the trials in flight per resource kind, what a finished or crashed task keeps, the
trial's name, what a trial runs and reports, and where a task runs (in the trial or through Ray Train).

Every expected value is written out from the docstrings of `orchestrator.run.schedule` (and README's
MMC_MAX_BUNDLE row), not read back from the code.
"""
from __future__ import annotations

import math
import statistics
import sys
import types
from types import SimpleNamespace

import pytest
from ray.tune.search import Searcher

from orchestrator import knobs, vocab
from orchestrator.run import capacity, schedule as S, state as sweep_state
from orchestrator.graph.dag import LABEL_KEYS, Graph, Resources, Task
from orchestrator.run.task_result import TaskResult

LABELS = {k: None for k in LABEL_KEYS}


def _task(kind: str, name: str, *parents: Task, cpus: float = 1, gpus: float = 0, workers: int = 1) -> Task:
    return Task(kind, {"name": name}, tuple(p.id for p in parents), LABELS, Resources(cpus=cpus, gpus=gpus, workers=workers))


def _graph(*tasks: Task) -> Graph:
    return Graph({t.id: t for t in tasks})


def _done(searcher, trial: str, config: dict, duration_s: float = 0.01, **fields) -> None:
    results = {t: TaskResult(vocab.DONE, duration_s, **fields) for t in config["task_ids"]}
    searcher.on_trial_complete(trial, S.pack_results(results))


def _root_and(kind: str, n: int, **resources):
    root = _task("pretrain", "root")
    return root, [_task(kind, f"{kind}{i}", root, **resources) for i in range(n)]


def _started_after_root(tasks, concurrency=1, max_bundle=None):
    """A searcher whose root task (a pretraining every other task depends on) has finished."""
    state = sweep_state.SweepState(_graph(*tasks))
    searcher = S.DagSearcher(state, concurrency=concurrency, max_bundle=max_bundle)
    _done(searcher, "t0", searcher.suggest("t0"))
    return state, searcher


@pytest.fixture(autouse=True)
def no_bundle_knob(monkeypatch):
    monkeypatch.delenv(knobs.MAX_BUNDLE.name, raising=False)


# ----- a kind's typical duration ----------------------------------------------------------------

def test_the_typical_duration_is_the_median_of_the_latest_sixteen_finished_tasks_of_a_kind():
    """`typical_duration`: the *median* of the kind's latest finished tasks (16 kept), once 3 finished.
    Three tasks of 0.01, 0.02 and 0.9 s: median 0.02 (their mean, 0.31, would call the kind long). Then 20
    more of 9 s and 16 of 1 s: the latest 16 are all 1 s (the median of all 39 would be 9 s)."""
    root, mids = _root_and("midpoint", 40)
    state, searcher = _started_after_root([root, *mids], max_bundle=1)
    durations = [0.01, 0.02, 0.9] + [9.0] * 20 + [1.0] * 16
    for i, seconds in enumerate(durations, 1):
        if i == 3:
            assert searcher.typical_duration("midpoint") is None          # two samples: not yet
        config = searcher.suggest(f"t{i}")
        assert len(config["task_ids"]) == 1
        _done(searcher, f"t{i}", config, duration_s=seconds)
        if i == 3:
            assert searcher.typical_duration("midpoint") == pytest.approx(statistics.median([0.01, 0.02, 0.9]))
    assert statistics.median(durations) == 9.0
    assert searcher.typical_duration("midpoint") == pytest.approx(1.0)
    assert searcher.typical_duration("pretrain") is None                   # one sample of its own only


def test_a_kind_measured_at_exactly_the_short_threshold_is_not_bundled():
    """Kinds "whose tasks take under 0.1 s" are bundled (README, MMC_MAX_BUNDLE): a midpoint kind whose median
    is exactly SHORT_TASK_S stays one task per trial."""
    root, mids = _root_and("midpoint", 20)
    state, searcher = _started_after_root([root, *mids])
    for i in range(1, 4):
        config = searcher.suggest(f"t{i}")
        _done(searcher, f"t{i}", config, duration_s=S.SHORT_TASK_S)
    assert searcher.typical_duration("midpoint") == S.SHORT_TASK_S
    assert len(searcher.suggest("t9")["task_ids"]) == 1


def test_bundles_of_measured_short_tasks_hold_enough_tasks_for_the_target_trial_time():
    """Measured at 0.07 s a task, a bundle grows to ceil(TARGET_TRIAL_S / 0.07) = ceil(28.57) = 29 tasks (at
    least the target time per trial; below the 64-task ceiling; one trial in flight takes all it may)."""
    root, mids = _root_and("midpoint", 200)
    state, searcher = _started_after_root([root, *mids])
    for i in range(1, 4):
        _done(searcher, f"t{i}", searcher.suggest(f"t{i}"), duration_s=0.07)
    expected = math.ceil(S.TARGET_TRIAL_S / 0.07)
    assert expected == 29 and expected < S.MAX_ADAPTIVE_BUNDLE
    assert len(searcher.suggest("t9")["task_ids"]) == expected


def test_a_bundle_takes_its_share_of_the_ready_work_rounded_up():
    """Nine ready path evaluations and two trials in flight: ceil(9 / 2) = 5 in the first bundle (the ready work
    spread over the trials in flight, rounded up), then ceil(4 / 2) = 2 of the four left."""
    root, paths = _root_and("path_eval", 9)
    state, searcher = _started_after_root([root, *paths], concurrency=2, max_bundle=8)
    first = searcher.suggest("t1")["task_ids"]
    second = searcher.suggest("t2")["task_ids"]
    assert (len(first), len(second)) == (5, 2)
    assert first + second == [p.id for p in paths[:7]]


# ----- trials in flight per resource kind (a concurrency that follows the cluster) -------------------

class FixedLimits(capacity.Concurrency):
    """A cluster whose room is fixed: `limits[kind]` trials of each resource kind at once."""

    def __init__(self, **limits: int):
        self.limits = limits

    def limit(self, resources) -> int:
        return self.limits[capacity.kind_of(resources)]


def test_trials_in_flight_stay_within_each_resource_kinds_limit_and_free_their_room_when_done():
    """Two CPU trials at once: the third waits (None, not FINISHED) until one of them completes; a GPU task
    counts against the GPU limit only, so it starts while the CPU tasks fill theirs."""
    cpu = [_task("pretrain", f"c{i}") for i in range(4)]
    gpu = _task("pretrain", "g", gpus=1)
    state = sweep_state.SweepState(_graph(*cpu, gpu))
    searcher = S.DagSearcher(state, concurrency=FixedLimits(CPU=2, GPU=1))
    first, second = searcher.suggest("t1"), searcher.suggest("t2")
    assert (first["task_ids"], second["task_ids"]) == ([cpu[0].id], [cpu[1].id])
    third = searcher.suggest("t3")
    assert third["task_ids"] == [gpu.id]                                   # the GPU kind has room of its own
    assert searcher.suggest("t4") is None                                  # both kinds full
    assert searcher.suggest("t4") is None                                  # ... and still full when asked again
    _done(searcher, "t1", first)
    assert searcher.suggest("t4")["task_ids"] == [cpu[2].id]               # one CPU trial ended: room for one
    assert searcher.suggest("t5") is None
    _done(searcher, "t2", second)
    _done(searcher, "t3", third)
    assert searcher.suggest("t5")["task_ids"] == [cpu[3].id]


def test_a_bundle_spreads_the_ready_work_over_its_resource_kinds_limit():
    """With a concurrency that follows the cluster (3 CPU trials), ten ready path evaluations make bundles of
    ceil(10 / 3) = 4, then ceil(6 / 3) = 2 (cap 8)."""
    root, paths = _root_and("path_eval", 10)
    state = sweep_state.SweepState(_graph(root, *paths))
    searcher = S.DagSearcher(state, concurrency=FixedLimits(CPU=3, GPU=1), max_bundle=8)
    _done(searcher, "t0", searcher.suggest("t0"))
    assert len(searcher.suggest("t1")["task_ids"]) == 4
    assert len(searcher.suggest("t2")["task_ids"]) == 2


# ----- what an ended task keeps ---------------------------------------------------------------------

def test_a_finished_task_keeps_its_reported_duration_and_a_crashed_one_the_time_since_it_started(monkeypatch):
    """A task that finished keeps the duration its trial reported; a task whose trial crashed (no result)
    keeps the time from its start (the searcher's clock when it handed the task out) to the crash."""
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(S.time, "time", lambda: clock.now)
    a, b = _task("pretrain", "a"), _task("pretrain", "b")
    state = sweep_state.SweepState(_graph(a, b))
    searcher = S.DagSearcher(state, concurrency=2)
    first = searcher.suggest("t1")
    searcher.suggest("t2")
    assert state.states[a.id].started_at == 100.0
    clock.now = 107.5
    _done(searcher, "t1", first, duration_s=0.25)
    searcher.on_trial_complete("t2", None, error=True)
    assert state.states[a.id].status == vocab.DONE and state.states[a.id].duration_s == 0.25
    assert state.states[b.id].status == vocab.FAILED and state.states[b.id].duration_s == pytest.approx(7.5)


def _failed_cleanly():
    """One pretraining task whose trial reports it failed with its own DivergenceError:
    (the task, the sweep state, the searcher, the trial's config)."""
    a = _task("pretrain", "a")
    state = sweep_state.SweepState(_graph(a))
    searcher = S.DagSearcher(state)
    config = searcher.suggest("t1")
    result = TaskResult(vocab.FAILED, 0.5, error="DivergenceError: loss is nan", error_type="DivergenceError")
    searcher.on_trial_complete("t1", S.pack_results({a.id: result}))
    return a, state, searcher, config


def test_a_task_that_failed_cleanly_keeps_its_error_and_its_exception_type():
    a, state, searcher, config = _failed_cleanly()
    failed = state.states[a.id]
    assert (failed.status, failed.error, failed.error_type) == (vocab.FAILED, "DivergenceError: loss is nan", "DivergenceError")
    assert config["task_ids"] == [a.id] and searcher.suggest("t2") is Searcher.FINISHED


def test_a_task_result_keeps_every_field_through_the_trip_through_tune():
    """`TaskResult.to_dict`/`from_dict` (the trial's JSON report) keep every field, the exception type too."""
    result = TaskResult(vocab.FAILED, 2.5, "cpu", {"acc": 0.5}, [["loss", 1, 0.25]], "ValueError: bad", "ValueError")
    assert TaskResult.from_dict(result.to_dict()) == result
    assert S.unpack_results(S.pack_results({"x": result})) == {"x": result}


# ----- the trial ------------------------------------------------------------------------------------

def test_a_bundles_trial_is_named_after_its_first_task_and_how_many_others_it_holds():
    """`<first>+<n>` for a bundle of n + 1 tasks; a single task's trial is the task id."""
    assert S._trial_name(SimpleNamespace(config={"task_ids": ["a", "b", "c"]}, trial_id="x")) == "a+2"
    assert S._trial_name(SimpleNamespace(config={"task_ids": ["a"]}, trial_id="x")) == "a"
    assert S._trial_name(SimpleNamespace(config={}, trial_id="x")) == "x"


def test_a_bundle_kind_measured_slower_than_short_keeps_its_cap_of_eight():
    """Path evaluations are bundled whatever their speed: measured at 0.5 s a task (2 s per trial would take
    4), a bundle still holds up to the cap of 8; the measurement only ever grows a bundle."""
    root, paths = _root_and("path_eval", 30)
    state, searcher = _started_after_root([root, *paths])
    first = searcher.suggest("t1")
    assert len(first["task_ids"]) == 8
    _done(searcher, "t1", first, duration_s=0.5)
    assert searcher.typical_duration("path_eval") == 0.5
    assert len(searcher.suggest("t2")["task_ids"]) == 8


def test_a_ready_task_waiting_for_room_is_never_skipped_while_a_trial_is_in_flight():
    """The ready tasks' kinds are full (one CPU trial in flight) although none of its tasks is running any
    more (the driver marked it failed meanwhile): the searcher waits (None); it neither skips the ready
    task as never runnable nor ends the search."""
    a, b = _task("pretrain", "a"), _task("pretrain", "b")
    state = sweep_state.SweepState(_graph(a, b))
    searcher = S.DagSearcher(state, concurrency=FixedLimits(CPU=1, GPU=1))
    config = searcher.suggest("t1")
    assert config["task_ids"] == [a.id]
    state.set_status(a.id, vocab.FAILED, "stopped")
    assert searcher.suggest("t2") is None and state.states[b.id].status == vocab.PENDING
    searcher.on_trial_complete("t1", None, error=True)
    assert searcher.suggest("t2")["task_ids"] == [b.id]


def test_a_task_whose_state_changed_while_its_trial_ran_keeps_that_state_when_the_trial_reports():
    """Only the bundle's tasks still running take the trial's report: one the driver already marked
    failed stays failed, with its own reason, even when the trial reports it done."""
    a, b = _task("path_eval", "a"), _task("path_eval", "b")
    state = sweep_state.SweepState(_graph(a, b))
    searcher = S.DagSearcher(state, max_bundle=2)
    config = searcher.suggest("t1")
    assert config["task_ids"] == [a.id, b.id]
    state.set_status(a.id, vocab.FAILED, "stopped by the driver")
    _done(searcher, "t1", config)
    assert (state.states[a.id].status, state.states[a.id].error) == (vocab.FAILED, "stopped by the driver")
    assert state.states[b.id].status == vocab.DONE


def test_a_crashed_trials_reason_is_the_last_three_lines_of_its_error_file(tmp_path):
    """The traceback's end says what happened: its last three non-blank lines, joined by " | "."""
    a, state, searcher, config = _failed_cleanly()
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n\n    g()\n"
                          "  File \"y.py\", line 2, in g\nray.exceptions.ActorDiedError: The actor died\n")
    trial = SimpleNamespace(trial_id="t1", error_file=str(error_file), config=dict(config), evaluated_params={},
                            last_result={})
    S._CrashReasons(state, searcher).on_trial_error(0, [], trial)
    assert state.states[a.id].error == ("trial crashed:     g() | " + '  File "y.py", line 2, in g | '
                                        "ray.exceptions.ActorDiedError: The actor died")


def test_a_bundles_payload_names_the_kinds_of_the_parents_of_every_task_in_it():
    """Path evaluations of different pairs in one bundle: the payload carries the kind of every parent of
    every task, not only of the first task's parents."""
    a, b = _task("pretrain", "a"), _task("pretrain", "b")
    ft = _task("finetune", "ft", a)
    paths = [_task("path_eval", "p0", a, b), _task("path_eval", "p1", a, ft)]
    state = sweep_state.SweepState(_graph(a, b, ft, *paths),
                                   states={t.id: sweep_state.TaskState(status=vocab.DONE) for t in (a, b, ft)})
    searcher = S.DagSearcher(state, max_bundle=8)
    config = searcher.suggest("t1")
    assert config["task_ids"] == [p.id for p in paths]
    assert config[S.PAYLOAD_KEY].parent_kinds == {a.id: "pretrain", b.id: "pretrain", ft.id: "finetune"}


def test_a_trial_runs_every_task_of_its_bundle_and_reports_them_all(monkeypatch):
    a = _task("pretrain", "a")
    paths = [_task("path_eval", f"p{i}", a) for i in range(3)]
    ran, reports = [], []
    monkeypatch.setattr(S, "run_task", lambda task, ctx, kinds: ran.append((task.id, kinds)) or TaskResult(vocab.DONE, 0.1))
    monkeypatch.setattr(S.tune, "report", reports.append)
    ctx = S.TrialContext(graph=None, storage_uri="/nowhere", sweep="s", runner="real")
    S._trial({"task_ids": [p.id for p in paths], S.PAYLOAD_KEY: S.TrialPayload(tuple(paths), {a.id: "pretrain"})}, ctx)
    assert ran == [(p.id, {a.id: "pretrain"}) for p in paths]
    assert len(reports) == 1 and sorted(S.unpack_results(reports[0])) == sorted(p.id for p in paths)
    assert reports[0]["status"] == vocab.DONE


def test_each_task_of_a_bundle_runs_with_the_kinds_of_its_own_parents_only(monkeypatch):
    """The payload names the parents of every task of the bundle; a task gets its own (what it records it was made
    from, `meta.inputs`, names its parents alone, and `take_back` compares them with its parents alone)."""
    a, b = _task("pretrain", "a"), _task("pretrain", "b")
    ft = _task("finetune", "ft", a)
    paths = [_task("path_eval", "p0", a, b), _task("path_eval", "p1", a, ft)]
    ran = []
    monkeypatch.setattr(S, "run_task", lambda task, ctx, kinds: ran.append((task.id, kinds)) or TaskResult(vocab.DONE, 0.1))
    monkeypatch.setattr(S.tune, "report", lambda result: None)
    ctx = S.TrialContext(graph=None, storage_uri="/nowhere", sweep="s", runner="real")
    kinds = {a.id: "pretrain", b.id: "pretrain", ft.id: "finetune"}
    S._trial({"task_ids": [p.id for p in paths], S.PAYLOAD_KEY: S.TrialPayload(tuple(paths), kinds)}, ctx)
    assert ran == [(paths[0].id, {a.id: "pretrain", b.id: "pretrain"}), (paths[1].id, {a.id: "pretrain", ft.id: "finetune"})]


@pytest.fixture
def where_tasks_run(monkeypatch):
    """`run_task` with both ways stubbed: returns the list of (way, task id, parent kinds) it took."""
    taken = []
    from orchestrator.run import work

    monkeypatch.setattr(work, "run_here", lambda task, layout, runner, root, kinds:
                        taken.append(("here", task.id, kinds)) or TaskResult(vocab.DONE, 0.0))
    fake = types.ModuleType("orchestrator.run.distributed")
    fake.run_with_ray_train = lambda task, layout, runner, root, kinds: taken.append(("ray-train", task.id, kinds)) or \
        TaskResult(vocab.DONE, 0.0)
    import orchestrator.run

    monkeypatch.setitem(sys.modules, "orchestrator.run.distributed", fake)
    monkeypatch.setattr(orchestrator.run, "distributed", fake, raising=False)
    return taken


def test_only_a_training_task_with_several_workers_runs_through_ray_train(where_tasks_run, tmp_path):
    """Data-parallel training (`workers` > 1 of a training kind) goes through Ray Train; a single-worker
    training task, and a path evaluation even with `workers: 2`, run in the trial's own process. The parent
    kinds given are passed on; without them they come from the context's graph."""
    root = _task("pretrain", "root")
    single = _task("finetune", "single", root)
    ddp = _task("finetune", "ddp", root, workers=2)
    path = _task("path_eval", "path", root, workers=2)
    ctx = S.TrialContext(graph=_graph(root, single, ddp, path), storage_uri=str(tmp_path), sweep="s", runner="real")
    S.run_task(single, ctx, {root.id: "given"})
    S.run_task(ddp, ctx, {root.id: "given"})
    S.run_task(path, ctx)
    assert where_tasks_run == [("here", single.id, {root.id: "given"}), ("ray-train", ddp.id, {root.id: "given"}),
                               ("here", path.id, {root.id: "pretrain"})]


def test_a_run_with_nothing_pending_prints_its_progress_and_starts_no_tune(monkeypatch):
    a = _task("pretrain", "a")
    state = sweep_state.SweepState(_graph(a), states={a.id: sweep_state.TaskState(status=vocab.CACHED)})
    monkeypatch.setattr(S, "_fit", lambda *args, **kwargs: pytest.fail("Tune started for a sweep with nothing to run"))
    printed = []
    progress = SimpleNamespace(maybe_print=lambda force=False: printed.append(force))
    S.run_graph(state, layout=None, ctx=None, max_concurrent=2, progress=progress)
    assert printed == [True]


# ----- the size of a bundle: caps, defaults and who may share a trial ---------------------------------

def test_without_a_cap_a_bundle_holds_eight_short_tasks_and_an_explicit_cap_wins_over_mmc_max_bundle(monkeypatch):
    """README's MMC_MAX_BUNDLE row: unset, a bundle holds 8 short tasks (20 ready path evaluations, one trial in
    flight: 8); the variable caps it (3); the searcher's own `max_bundle` argument wins over the variable (5)."""
    def first_bundle(max_bundle=None) -> int:
        root, paths = _root_and("path_eval", 20)
        state, searcher = _started_after_root([root, *paths], max_bundle=max_bundle)
        return len(searcher.suggest("t1")["task_ids"])

    assert first_bundle() == 8
    monkeypatch.setenv(knobs.MAX_BUNDLE.name, "3")
    assert first_bundle() == 3
    assert first_bundle(max_bundle=5) == 5


def test_measured_short_tasks_grow_a_bundle_to_at_most_sixty_four():
    """README: bundles of a kind whose tasks take under 0.1 s grow "up to 64, about 2 s per trial". At 0.005 s a
    task, 2 s would take 400 tasks: the bundle stops at 64."""
    root, mids = _root_and("midpoint", 200)
    state, searcher = _started_after_root([root, *mids])
    for i in range(1, 4):
        _done(searcher, f"t{i}", searcher.suggest(f"t{i}"), duration_s=0.005)
    assert math.ceil(2.0 / 0.005) == 400
    assert len(searcher.suggest("t9")["task_ids"]) == 64


def test_path_evaluations_with_several_workers_are_never_bundled():
    """A bundle holds "ready single-worker tasks" (DagSearcher's docstring): path evaluations asking for two
    workers each get a trial of their own, however many are ready."""
    root, paths = _root_and("path_eval", 6, workers=2)
    state, searcher = _started_after_root([root, *paths], max_bundle=8)
    assert [len(searcher.suggest(f"t{i}")["task_ids"]) for i in (1, 2)] == [1, 1]


def test_a_kinds_median_counts_only_its_latest_sixteen_tasks():
    """Nine tasks of 9 s, then eight of 1 s: the latest sixteen are 8 x 9 s and 8 x 1 s, median (9 + 1) / 2 = 5
    (a window of the latest eight would say 1 s)."""
    root, mids = _root_and("midpoint", 20)
    state, searcher = _started_after_root([root, *mids], max_bundle=1)
    for i, seconds in enumerate([9.0] * 9 + [1.0] * 8, 1):
        _done(searcher, f"t{i}", searcher.suggest(f"t{i}"), duration_s=seconds)
    assert statistics.median([9.0] * 8 + [1.0] * 8) == 5.0
    assert searcher.typical_duration("midpoint") == pytest.approx(5.0)


def test_a_fixed_concurrency_below_one_still_runs_one_trial_at_a_time():
    """`concurrency` is the number of trials in flight; 0 (or less) means one, never none: nine ready path
    evaluations make a first bundle of min(8, ceil(9 / 1)) = 8."""
    root, paths = _root_and("path_eval", 9)
    state, searcher = _started_after_root([root, *paths], concurrency=0, max_bundle=8)
    assert len(searcher.suggest("t1")["task_ids"]) == 8


# ----- what a trial reports and what its tasks become -------------------------------------------------------

def test_a_trials_summary_status_is_finished_only_when_every_task_of_its_bundle_finished():
    """`pack_results`: "a summary status": one failed task of three makes the trial's status failed."""
    done, failed = TaskResult(vocab.DONE, 0.1), TaskResult(vocab.FAILED, 0.1, error="OSError: disk")
    assert S.pack_results({"a": done, "b": done})["status"] == vocab.DONE
    assert S.pack_results({"a": done, "b": failed, "c": done})["status"] == vocab.FAILED
    assert S.pack_results({"a": failed, "b": failed})["status"] == vocab.FAILED


def test_a_crashed_trial_keeps_the_exception_type_its_task_failed_with(tmp_path):
    """A task that failed cleanly (its own DivergenceError) in a trial that crashed afterwards: the crash's text
    becomes its error, but the exception type stays the task's own, not the crash's ActorDiedError."""
    a, state, searcher, config = _failed_cleanly()
    assert state.states[a.id].error_type == "DivergenceError"
    error_file = tmp_path / "error.txt"
    error_file.write_text("ray.exceptions.ActorDiedError: The actor died unexpectedly\n")
    trial = SimpleNamespace(trial_id="t1", error_file=str(error_file), config=dict(config), evaluated_params={},
                            last_result={})
    S._CrashReasons(state, searcher).on_trial_error(0, [], trial)
    failed = state.states[a.id]
    assert failed.error.startswith("trial crashed: ray.exceptions.ActorDiedError")
    assert failed.error_type == "DivergenceError"


def test_a_trial_of_a_context_that_carries_the_graph_runs_its_tasks_with_the_graphs_parent_kinds(monkeypatch, tmp_path):
    """Without a payload in its config, a trial takes its tasks from the context's graph and passes no parent
    kinds (None), so that `run_task` reads each parent's kind from that graph."""
    root = _task("pretrain", "root")
    path = _task("path_eval", "p", root)
    seen, reports = [], []
    monkeypatch.setattr(S, "run_task", lambda task, ctx, kinds: seen.append((task.id, kinds)) or TaskResult(vocab.DONE, 0.1))
    monkeypatch.setattr(S.tune, "report", reports.append)
    ctx = S.TrialContext(graph=_graph(root, path), storage_uri=str(tmp_path), sweep="s", runner="real")
    S._trial({"task_ids": [path.id]}, ctx)
    assert seen == [(path.id, None)] and reports[0]["status"] == vocab.DONE


# ----- what a trial reserves, and its actors' name ----------------------------------------------------------

def test_a_trial_reserves_its_tasks_resources_or_next_to_nothing_when_it_drives_ray_train_workers():
    """`trial_resources`: a single-worker task's trial holds the task's own resources (a GPU pretraining: 1 CPU,
    1 GPU); a data-parallel training task's trial only drives its Ray Train workers (which hold the resources):
    it holds a sliver of a CPU (not a whole one, which would cost a task slot on a small cluster) and no GPU."""
    single = _task("pretrain", "single", cpus=1, gpus=1)
    ddp = _task("pretrain", "ddp", cpus=2, gpus=1, workers=2)
    path = _task("path_eval", "path", cpus=2, workers=2)
    assert S.trial_resources(single) == {"cpu": 1, "gpu": 1}
    driving = S.trial_resources(ddp)
    assert set(driving) == {"cpu"} and 0 < driving["cpu"] <= 0.1
    assert S.trial_resources(path) == {"cpu": 2}          # not a training kind: runs in the trial itself


def test_the_trial_actors_are_named_after_the_sweep_as_a_python_name():
    """`mmc_sweep_<sweep>` is the trainable's `__name__` (what the Ray dashboard shows): a sweep name with dashes,
    dots or spaces still gives an identifier, each such character an underscore."""
    assert S.trainable_name("cue-sweep.v2 a") == "mmc_sweep_cue_sweep_v2_a"
    assert S.trainable_name("cue-sweep.v2 a").isidentifier()


# ----- the Tune run, with Tune's entry points replaced ---------------------------------------------------------

@pytest.fixture
def fake_tune(monkeypatch):
    """`ray.tune`'s entry points replaced by recorders: what `_fit` asks of Tune, without Ray."""
    seen = {}

    def with_parameters(fn, **kwargs):
        seen["parameters"] = kwargs

        def trainable(config):
            return fn(config, **kwargs)
        return trainable

    class Tuner:
        def __init__(self, trainable, *, tune_config, run_config):
            seen.update(trainable=trainable, tune_config=tune_config, run_config=run_config)

        def fit(self):
            seen["fit"] = True

    monkeypatch.setattr(S.tune, "with_parameters", with_parameters)
    monkeypatch.setattr(S.tune, "with_resources", lambda trainable, resources: (trainable, resources))
    monkeypatch.setattr(S.tune, "Tuner", Tuner)
    for name in ("TuneConfig", "RunConfig", "FailureConfig"):
        monkeypatch.setattr(S.tune, name, lambda **kwargs: SimpleNamespace(**kwargs))
    for name in ("RAY_AIR_NEW_OUTPUT", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "TUNE_GLOBAL_CHECKPOINT_S"):
        monkeypatch.setenv(name, "")          # recorded, so that what `_fit` sets is undone after the test
        monkeypatch.delenv(name)
    import logging

    levels = {name: logging.getLogger(name).level for name in S.QUIET_LOGGERS}
    yield seen
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_the_tune_run_never_retries_a_trial_and_lets_every_pending_task_through(fake_tune, tmp_path):
    """docs/FAILURES.md: single-process tasks are not retried inside a run (`FailureConfig(max_failures=0)`);
    Tune's own bound on trials lets all 3 pending tasks through (the searcher holds them to the cluster); the
    trials get the context without the graph; Tune's per-trial CSV/JSON loggers are off."""
    from orchestrator.storage.layout import Storage, SweepLayout

    tasks = [_task("pretrain", f"p{i}") for i in range(3)]
    graph = _graph(*tasks)
    state = sweep_state.SweepState(graph)
    ctx = S.TrialContext(graph=graph, storage_uri=str(tmp_path), sweep="my-sweep", runner="real")
    S._fit(state, SweepLayout(Storage(str(tmp_path)), "my-sweep"), ctx, FixedLimits(CPU=2, GPU=1), "run-1")
    tune_config, run_config = fake_tune["tune_config"], fake_tune["run_config"]
    assert run_config.failure_config.max_failures == 0
    assert tune_config.max_concurrent_trials == 3 and isinstance(tune_config.search_alg, S.DagSearcher)
    assert fake_tune["parameters"]["ctx"].graph is None and fake_tune["parameters"]["ctx"].sweep == "my-sweep"
    assert run_config.name == "run-1" and fake_tune["fit"]
    assert S.os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
    assert fake_tune["trainable"][0].__name__ == "mmc_sweep_my_sweep"


def test_a_run_without_a_concurrency_of_its_own_follows_the_cluster_bounded_by_max_concurrent(monkeypatch):
    """`run_graph`: trials in flight "follow the cluster (`concurrency`, by default read from the connected
    cluster), at most `max_concurrent`": 8 CPUs and max_concurrent 2 give 2 one-CPU trials at once."""
    a = _task("pretrain", "a")
    state = sweep_state.SweepState(_graph(a))
    monkeypatch.setattr(S.capacity, "read_cluster", lambda: capacity.ClusterView(({"CPU": 8.0},), {"CPU": 8.0}))
    used = []
    monkeypatch.setattr(S, "_fit", lambda state_, layout, ctx, concurrency, run_name: used.append(concurrency))
    progress = SimpleNamespace(maybe_print=lambda force=False: None, on_change=lambda *args: None)
    S.run_graph(state, layout=None, ctx=None, max_concurrent=2, progress=progress)
    assert used[0].limit(Resources(cpus=1)) == 2
    S.run_graph(state, layout=None, ctx=None, max_concurrent=None, progress=progress)
    assert used[1].limit(Resources(cpus=1)) == 8


# ----- connecting to Ray ------------------------------------------------------------------------------------

@pytest.mark.parametrize("address, env, joined", [
    (None, None, "local"),                       # a private Ray, never a `ray start` cluster on this machine
    (None, "10.0.0.9:6379", "10.0.0.9:6379"),    # RAY_ADDRESS
    ("10.0.0.1:6379", "10.0.0.9:6379", "10.0.0.1:6379"),   # the argument wins over RAY_ADDRESS
])
def test_ray_is_joined_at_the_given_address_else_at_ray_address_else_started_privately(monkeypatch, address, env, joined):
    calls = []
    monkeypatch.setattr(S.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(S.ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv("RAY_TRAIN_V2_ENABLED", "1")
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    S.init_ray(num_cpus=2, address=address)
    assert len(calls) == 1 and calls[0]["address"] == joined
    assert calls[0].get("num_cpus") == (2 if joined == "local" else None)


def test_tune_copies_no_credential_into_a_trials_runtime_environment(monkeypatch):
    """Ray Tune copies the driver's AWS_* credentials into every trial's runtime environment, which Ray keeps in
    its actor table and logs: while a sweep's Tune runs, its list holds none (and everything else it held);
    after, it is as Ray made it. A trial class registered inside gets a runtime environment without them."""
    from ray.tune.execution import class_cache
    from orchestrator.run.schedule import CREDENTIAL_ENV, credentials_kept_out_of_trials
    before = set(class_cache.ENV_VARS_TO_PROPAGATE)
    assert CREDENTIAL_ENV <= before            # what Ray does today; if it stops, this test says so
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SUPERSECRETfake7f3a")
    monkeypatch.setenv("RAY_CHDIR_TO_TRIAL_DIR", "0")
    registered = {}
    monkeypatch.setattr(class_cache.ray, "remote", lambda runtime_env: registered.setdefault("env", runtime_env) and
                        (lambda cls: cls))
    with credentials_kept_out_of_trials():
        assert class_cache.ENV_VARS_TO_PROPAGATE == before - CREDENTIAL_ENV
        class_cache._ActorClassCache().get(type("Trial", (), {}))
    assert class_cache.ENV_VARS_TO_PROPAGATE == before
    assert "AWS_SECRET_ACCESS_KEY" not in registered["env"]["env_vars"]
    assert registered["env"]["env_vars"]["RAY_CHDIR_TO_TRIAL_DIR"] == "0"


def test_a_crashed_trial_without_an_error_file_keeps_its_tasks_reason(tmp_path):
    """A trial whose error file is missing or empty says nothing new: its failed task keeps the reason it
    already has (not an empty "trial crashed: ")."""
    a, state, searcher, config = _failed_cleanly()
    for error_file in (None, str(tmp_path / "gone.txt"), str(tmp_path / "empty.txt")):
        (tmp_path / "empty.txt").write_text("\n\n")
        trial = SimpleNamespace(trial_id="t1", error_file=error_file, config=dict(config), evaluated_params={},
                                last_result={})
        searcher._finished_trials["t1"] = [a.id]          # as `on_trial_complete` left it
        S._CrashReasons(state, searcher).on_trial_error(0, [], trial)
        assert (state.states[a.id].error, state.states[a.id].error_type) == \
            ("DivergenceError: loss is nan", "DivergenceError")


def test_a_result_without_the_tasks_results_unpacks_to_none():
    """What Tune hands the searcher for a trial that ended before reporting (its own keys only, or nothing):
    no task results, never an error."""
    assert S.unpack_results(None) == S.unpack_results({}) == {}
    assert S.unpack_results({"done": True, "trial_id": "t1", "time_total_s": 3.2}) == {}


def test_a_task_taken_back_is_cached_without_a_duration_and_its_children_run():
    """A trial whose task was taken back (`outputs.take_back`: made from the same bits as its recomputed
    parent) reports `reused`: the task is cached, as if finished before the run (no new `tasks` row, no duration
    counted into its kind's typical one), and the tasks made from it are ready. The flag survives Tune's JSON."""
    root, (child,) = _root_and("finetune", 1)
    leaf = _task("path_eval", "leaf", root, child)
    state = sweep_state.SweepState(_graph(root, child, leaf))
    searcher = S.DagSearcher(state)
    _done(searcher, "t0", searcher.suggest("t0"))
    config = searcher.suggest("t1")
    assert config["task_ids"] == [child.id]
    searcher.on_trial_complete("t1", S.pack_results({child.id: TaskResult(vocab.DONE, 0.0, reused=True)}))
    assert state.states[child.id].status == vocab.CACHED and state.states[child.id].duration_s is None
    assert list(searcher._durations.get("finetune", [])) == []
    assert searcher.suggest("t2")["task_ids"] == [leaf.id]
    assert TaskResult.from_dict(TaskResult(vocab.DONE, 0.0, reused=True).to_dict()).reused is True


# ----- the trial Tune starts next ---------------------------------------------------------------

class _Trial:
    """What a scheduler reads of a Tune trial: its status (hashable by identity, like Tune's)."""

    def __init__(self, name: str):
        self.name, self.status = name, "PENDING"

    def __repr__(self) -> str:
        return f"{self.name}:{self.status}"


def test_the_live_fifo_scheduler_chooses_what_tunes_fifo_chooses_without_reading_every_trial():
    """Through adds, starts, pauses, ends, errors and a trial started again after a failure (which Tune moves to
    the end of its list and adds again), `LiveFifo` picks the trial Tune's FIFOScheduler picks from the whole
    list, at every turn, and never asks the controller for its trials (Tune's FIFO scans them all per turn)."""
    import random

    from ray.tune.schedulers import FIFOScheduler

    rng = random.Random(7)
    trials: list[_Trial] = []                           # Tune's `_trials`, in its order
    whole = SimpleNamespace(get_trials=lambda: trials)
    blind = SimpleNamespace(get_trials=lambda: pytest.fail("LiveFifo read every trial"))
    reference, live = FIFOScheduler(), S.LiveFifo()
    for step in range(600):
        running = [t for t in trials if t.status == "RUNNING"]
        paused = [t for t in trials if t.status == "PAUSED"]
        pending = [t for t in trials if t.status == "PENDING"]
        event = rng.choice(["add", "add", "start", "pause", "resume", "end", "error", "again"])
        if event == "add" or not trials:
            trial = _Trial(f"t{step}")
            trials.append(trial)
            live.on_trial_add(blind, trial)
        elif event == "start" and pending:
            rng.choice(pending).status = "RUNNING"
        elif event == "pause" and running:
            rng.choice(running).status = "PAUSED"
        elif event == "resume" and paused:
            rng.choice(paused).status = "PENDING"
        elif event == "end" and running:
            trial = rng.choice(running)
            live.on_trial_complete(blind, trial, {})
            trial.status = "TERMINATED"
        elif event == "end" and pending:             # ended before it ran (the run stopped)
            trial = rng.choice(pending)
            live.on_trial_remove(blind, trial)
            trial.status = "TERMINATED"
        elif event == "error" and running:
            trial = rng.choice(running)
            live.on_trial_error(blind, trial)
            trial.status = "ERROR"
        elif event == "again" and running:            # Tune's `_try_recover`
            trial = rng.choice(running)
            live.on_trial_error(blind, trial)
            trial.status = "PENDING"
            trials.remove(trial)
            trials.append(trial)
            live.on_trial_add(blind, trial)
        assert live.choose_trial_to_run(blind) is reference.choose_trial_to_run(whole), (step, event, trials)
    assert len(live._live) == sum(t.status not in ("TERMINATED", "ERROR") for t in trials)
