"""Run a task graph on Ray: one Ray Tune run per invocation, a dependency-aware searcher.

The searcher hands Tune a task only when all of its parents have finished; a failed task marks
its descendants skipped and the rest of the graph goes on. Tasks whose verified output already
exists (see `orchestrator.results.outputs`) never reach Ray. Training tasks with more than one worker run
through Ray Train (`TorchTrainer`, DDP) inside their Tune trial; single-worker tasks run directly
in the trial process, which avoids the ~20 s start of a Train worker group.

Why one module: the searcher, the trial function and the Tune run share the task graph's state machine;
the searcher's hand-out and the trial's report are two halves of one protocol.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import statistics
import time
from collections import deque
from dataclasses import dataclass

import ray
from ray import tune
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import Searcher

from orchestrator import knobs
from orchestrator.messages import cut, logger
from orchestrator.run import capacity, stall
from orchestrator.graph.dag import Graph, Task
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.run.signals import STOPS
from orchestrator.run.state import ProgressPrinter, SweepState
from orchestrator.vocab import BUNDLE_KINDS, CACHED, DONE, FAILED, PENDING, RUNNING, SKIPPED
from orchestrator.run.task_result import TaskResult



log = logger(__name__)

DEFAULT_MAX_BUNDLE = 8         # tasks per bundle unless MMC_MAX_BUNDLE or `max_bundle` say otherwise
SHORT_TASK_S = 0.1           # a kind whose tasks take less than this (median so far) is bundled too
TARGET_TRIAL_S = 2.0         # bundles of measured-short tasks grow until a trial takes about this long ...
MAX_ADAPTIVE_BUNDLE = 64     # ... up to this many tasks (unless MMC_MAX_BUNDLE or `max_bundle` caps them)
_DURATION_SAMPLES = 3        # finished tasks of a kind before its median counts


class DagSearcher(Searcher):
    """Suggests tasks only when their parents are done; FINISHED once nothing can run any more.

    A trial runs one task, or a *bundle* of up to `max_bundle` ready single-worker tasks of a short
    kind (`BUNDLE_KINDS`) with the same resources: starting a trial costs about as much as a path
    evaluation on the built-in data, so bundling keeps small sweeps from being all overhead. Bundles
    are sized so that the ready work still spreads over `concurrency` trials. Kinds measured in this
    run to take under `SHORT_TASK_S` per task are bundled as well, and bundles of measured-short tasks
    grow towards `TARGET_TRIAL_S` per trial (at most `MAX_ADAPTIVE_BUNDLE` tasks) unless `max_bundle`
    or MMC_MAX_BUNDLE set a cap. The ready tasks come from `SweepState.ready`, kept up to date
    incrementally: a suggestion costs O(log n), not a scan.

    `concurrency` is a fixed number of trials in flight, or a `capacity.Concurrency` that follows the
    cluster: then the trials in flight of each resource kind (GPU tasks, CPU tasks) stay within what
    the cluster has (or can grow to), re-read as nodes join and leave, and a ready task of a kind with
    room goes before one of a kind without.

    A trial that crashed (no result: its process or node died; a task that raised reports a result) gives
    its tasks back as pending, each up to `restarts` times, where the cluster's autoscaler can start a node
    for it (`capacity.Concurrency.can_replace`): a spot node taken back, or one the autoscaler removed,
    costs the task its time since its last stored epoch, not the sweep. Elsewhere the task fails at once,
    as before (a rerun retries it). `restarted(task_id)` counts them.
    """

    def __init__(self, state: SweepState, concurrency: int | capacity.Concurrency = 1, max_bundle: int | None = None,
                 restarts: int = 0):
        super().__init__()
        self._state = state
        self.restarts = restarts
        self._trial_to_tasks: dict[str, list[str]] = {}
        self._finished_trials: dict[str, list[str]] = {}
        self._capacity = concurrency if isinstance(concurrency, capacity.Concurrency) else None
        self._concurrency = 1 if self._capacity is not None else max(1, concurrency)
        self._in_flight: dict[str, int] = {}      # resource kind -> trials suggested and not completed
        explicit = max_bundle if max_bundle is not None else knobs.given(knobs.MAX_BUNDLE)   # the argument wins
        self._max_bundle = max(1, int(explicit or DEFAULT_MAX_BUNDLE))
        self._adaptive = not explicit
        self._durations: dict[str, deque] = {}     # kind -> durations of its latest finished tasks

    def __getstate__(self) -> dict:
        # Tune pickles its searcher for experiment restore; we resume from the output cache
        # instead (see orchestrator.results.outputs), so drop the live callbacks and state.
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:  # noqa: D102 - see __getstate__
        pass

    def restore(self, checkpoint_path: str) -> None:  # noqa: D102
        pass

    def tasks_of(self, trial_id: str) -> list[str]:
        return self._finished_trials.get(trial_id) or self._trial_to_tasks.get(trial_id) or []

    def forget_trial(self, trial_id: str) -> list[str]:
        """The tasks of a finished trial, forgotten here (Tune's callbacks have heard of its end)."""
        return self._finished_trials.pop(trial_id, None) or []

    def restarted(self, task_id: str) -> int:
        """How often `task_id` was given back as pending after its trial crashed (its state's `restarts`)."""
        return self._state.states[task_id].restarts

    def _may_restart(self, task_id: str) -> bool:
        if self.restarted(task_id) >= self.restarts:
            return False
        return self._capacity is None or self._capacity.can_replace(self._state.graph.tasks[task_id].resources)

    def typical_duration(self, kind: str) -> float | None:
        """Median duration of the latest finished tasks of `kind` in this run (None: too few yet)."""
        recent = self._durations.get(kind)
        return statistics.median(recent) if recent and len(recent) >= _DURATION_SAMPLES else None

    def _limit(self, task: Task) -> int:
        return self._capacity.limit(task.resources) if self._capacity is not None else self._concurrency

    def _has_room(self, task_id: str) -> bool:
        task = self._state.graph.tasks[task_id]
        return self._in_flight.get(capacity.kind_of(task.resources), 0) < self._limit(task)

    def _bundle(self, first: str) -> list[str]:
        ready = self._state.ready
        head = self._state.graph.tasks[first]
        group = ready.group(first)
        typical = self.typical_duration(head.kind)
        short = typical is not None and typical < SHORT_TASK_S
        if (head.kind not in BUNDLE_KINDS and not short) or head.resources.workers > 1 or self._max_bundle == 1:
            return ready.take(group, 1)
        cap = self._max_bundle
        if self._adaptive and typical is not None:
            cap = max(cap, min(MAX_ADAPTIVE_BUNDLE, math.ceil(TARGET_TRIAL_S / max(typical, 1e-3))))
        size = min(cap, max(1, -(-ready.size(group) // self._limit(head))))
        return ready.take(group, size)

    def suggest(self, trial_id: str):
        first = self._state.ready.first(self._has_room if self._capacity is not None else None)
        if first is None and len(self._state.ready):
            return None     # ready tasks, but their kinds have as many trials in flight as the cluster holds
        if first is not None:
            bundle = self._bundle(first)
            kind = capacity.kind_of(self._state.graph.tasks[first].resources)
            self._in_flight[kind] = self._in_flight.get(kind, 0) + 1
            now = time.time()
            self._trial_to_tasks[trial_id] = bundle
            for task_id in bundle:
                self._state.set_status(task_id, RUNNING, started_at=now)
            graph = self._state.graph
            tasks = tuple(graph.tasks[t] for t in bundle)
            parent_kinds = {p: graph.tasks[p].kind for task in tasks for p in task.parents}
            return {"task_ids": bundle, RESOURCES_KEY: trial_resources(tasks[0]),
                    PAYLOAD_KEY: TrialPayload(tasks, parent_kinds)}
        if self._state.count(RUNNING) == 0:
            # Nothing runs and nothing is ready: whatever is still pending can never run.
            for task_id in [t for t, s in self._state.states.items() if s.status == PENDING]:
                self._state.set_status(task_id, SKIPPED, "skipped: inputs never became available")
            return Searcher.FINISHED
        return None

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        bundle = self._trial_to_tasks.pop(trial_id, None)
        if bundle is None:
            return
        self._finished_trials[trial_id] = bundle
        kind = capacity.kind_of(self._state.graph.tasks[bundle[0]].resources)
        self._in_flight[kind] = self._in_flight.get(kind, 0) - 1
        per_task = unpack_results(result)
        for task_id in bundle:
            state = self._state.states[task_id]
            if state.status != RUNNING:
                continue
            task_result = per_task.get(task_id)
            if error and task_result is None and self._may_restart(task_id):     # crashed: started again
                self._state.set_status(task_id, PENDING, started_at=None, restarts=state.restarts + 1)
            elif error or task_result is None or task_result.status != DONE:
                reason = (task_result.error if task_result else None) or \
                    "the trial crashed (worker died or was killed); see the Ray logs"
                self._state.set_status(task_id, FAILED, reason, result=task_result,
                                       error_type=task_result.error_type if task_result else None,
                                       duration_s=time.time() - (state.started_at or time.time()))
            elif task_result.reused:   # finished as it was: made from the same bits (`outputs.take_back`)
                self._state.set_status(task_id, CACHED, result=None)
            else:
                self._state.set_status(task_id, DONE, result=task_result, duration_s=task_result.duration_s)
                if task_result.duration_s is not None:
                    kind = self._state.graph.tasks[task_id].kind
                    self._durations.setdefault(kind, deque(maxlen=16)).append(float(task_result.duration_s))


RESULTS_KEY = "task_results_json"   # one JSON string: Tune would flatten a nested dict of results


def pack_results(results: dict[str, TaskResult]) -> dict:
    """The trial's report: per-task results as one JSON string, plus a summary status."""
    status = DONE if all(r.status == DONE for r in results.values()) else FAILED
    return {"status": status, RESULTS_KEY: json.dumps({k: r.to_dict() for k, r in results.items()}, default=str)}


def unpack_results(result: dict | None) -> dict[str, TaskResult]:
    if not result or RESULTS_KEY not in result:
        return {}
    return {k: TaskResult.from_dict(v) for k, v in json.loads(result[RESULTS_KEY]).items()}


class _CrashReasons(Callback):
    """Copies the error of a crashed trial (not a task that failed cleanly) into its task state."""

    def __init__(self, state: SweepState, searcher: DagSearcher):
        self._state, self._searcher = state, searcher

    def __getstate__(self) -> dict:
        return {}   # Tune pickles its callbacks for experiment restore; like the searcher's, this is live state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        forget_finished_trial(trial)
        self._searcher.forget_trial(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        forget_finished_trial(trial)
        task_ids = self._searcher.forget_trial(trial.trial_id)
        path = getattr(trial, "error_file", None)
        lines = []
        try:
            if task_ids and path:
                with open(path) as f:
                    lines = [line for line in f.read().strip().splitlines() if line.strip()]
        except OSError:
            pass
        error_type = error_type_in(lines)
        for task_id in task_ids:
            state = self._state.states[task_id]
            if state.status == FAILED and lines:
                self._state.set_status(task_id, FAILED, "trial crashed: " + " | ".join(lines[-3:]),
                                       error_type=state.error_type or error_type)
            elif state.status == PENDING and self._searcher.restarted(task_id):   # given back by the searcher
                log.warning(f"{task_id}: its trial crashed ({cut(lines[-1].strip(), 300) if lines else 'no error file'}); "
                            f"started again ({self._searcher.restarted(task_id)} of {knobs.TASK_RESTARTS.name}="
                            f"{self._searcher.restarts})")


_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt))"
                             r"(?:\((?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)\))?(?::|$)")


def error_type_in(lines: list[str]) -> str | None:
    """The class name of the last exception a traceback's text names (`ray.exceptions.ActorDiedError:
    ...` -> `ActorDiedError`, `RayTaskError(ValueError): ...` -> `ValueError`); None when no line starts
    with one. (Read from text: Tune's pickled copy
    of the exception is never unpickled here.)"""
    for line in reversed(lines):
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            return match.group(2) or match.group(1)   # RayTaskError(ZeroDivisionError): the inner one
    return None


TUNE_CONFIG_IN_RESULT = "config"   # the key of the trial's config in every result Tune fills in (`Trainable`)


def forget_finished_trial(trial) -> None:
    """Cut what Tune keeps of a finished trial to what names it. Tune keeps every trial to the end of the
    run, writes each into its experiment state and reads them back into its result grid; the run reads none
    of it back (the searcher has the tasks' results, the recorder writes them out). Dropped: the bundle's
    tasks in the config (`TrialPayload`), the tasks' results in the last result, the copy of the config
    (tasks included, unpickled per trial) that every result carries, and Tune's running statistics of every
    number reported (`metric_analysis`, `metric_n_steps`: 6 numbers and 2 deques per number), which only
    schedulers and stoppers read (a sweep has neither). What is left: the task ids, the resources, the
    result's status and Tune's own timings."""
    # the result as stored (`Trial.last_result` of a trial that never reported asks its actor for a default one)
    metadata = getattr(trial, "run_metadata", None)
    result = metadata.last_result if metadata is not None else None
    for holder, keys in ((getattr(trial, "config", None), (PAYLOAD_KEY,)),
                         (getattr(trial, "evaluated_params", None), (PAYLOAD_KEY,)),
                         (result, (RESULTS_KEY, TUNE_CONFIG_IN_RESULT))):
        if isinstance(holder, dict):
            for key in keys:
                holder.pop(key, None)
    if metadata is not None:
        metadata.metric_analysis, metadata.metric_n_steps = {}, {}


class LiveFifo(FIFOScheduler):
    """Tune's first-in-first-out order (a pending trial, else a paused one, the earliest added first), looked
    for among the trials that have not ended. Tune's `FIFOScheduler` scans every trial of the run, ended ones
    first, at each turn of its loop: O(trials) per turn, O(trials^2) per run (2.5 s of the driver's main
    thread at 16,000 tasks, growing with the square of the trials). Here a trial leaves the scan when Tune
    says it ended (`on_trial_complete`, `on_trial_error`, `on_trial_remove`); one Tune starts again after a
    failure comes back at the end (`on_trial_add`), where Tune moves it in its own list."""

    def __init__(self):
        super().__init__()
        self._live: dict[Trial, None] = {}   # in the order added (an ordered set)

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._live[trial] = None

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._live.pop(trial, None)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self._live.pop(trial, None)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._live.pop(trial, None)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in self._live:
                if trial.status == status:
                    return trial
        return None


EXPERIMENT_STATE_PERIOD_S = 24 * 3600   # how often Tune saves its experiment state (TUNE_GLOBAL_CHECKPOINT_S)
QUIET_LOGGERS = ("ray.tune", "ray.train", "ray.air", "ray.tune.execution.tune_controller")


def quiet_ray_logs() -> None:
    """Our progress line replaces Tune's tables; failures are reported by us with their reasons."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's default CSV/JSON/TensorBoard loggers write (and fsync) files for every trial: the results
    # go to our tables and MLflow instead
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Tune's experiment state (every trial re-serialised, O(trials) per save, "auto": ~5% of the wall time;
    # 3.2 s of a 1,008-task run) serves Tune's own restore, which a sweep never uses (it resumes from its
    # outputs): saved once, when the run ends
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(EXPERIMENT_STATE_PERIOD_S))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its task id; shipped once through the object store."""

    graph: Graph | None  # the driver's; trials get their own tasks in their config (TrialPayload)
    storage_uri: str
    sweep: str
    runner: str          # a name in orchestrator.run.work.RUNNERS, or an import path (`work.resolve_runner`)
    data_root: str | None = None


def run_task(task: Task, ctx: TrialContext, parent_kinds: dict[str, str] | None = None) -> TaskResult:
    """Run one task from a trial: a training task with several workers through Ray Train, any
    other task in this process. `parent_kinds`: kind of each parent (default: from `ctx.graph`)."""
    layout = SweepLayout(Storage(ctx.storage_uri), ctx.sweep)
    if parent_kinds is None:
        parent_kinds = {p: ctx.graph.tasks[p].kind for p in task.parents}
    from orchestrator.results import outputs

    if outputs.take_back(layout, task.kind, task.id, parent_kinds) is not None:   # its recomputed parents' bits
        return TaskResult(DONE, 0.0, reused=True)                                  # are those it was made from
    # imported here, in the trial's process: the driver imports neither torch nor Ray Train's torch module
    if capacity.drives_ray_train(task.kind, task.resources):
        from orchestrator.run import distributed

        return distributed.run_with_ray_train(task, layout, ctx.runner, ctx.data_root, parent_kinds)
    from orchestrator.run import work

    return work.run_here(task, layout, ctx.runner, ctx.data_root, parent_kinds)


PAYLOAD_KEY = "tasks"        # the trial config's entry holding the bundle's tasks (a TrialPayload)
RESOURCES_KEY = "resources"  # ... and what the trial reserves (`trial_resources` of its first task)


class TrialPayload:
    """The tasks a trial runs and their parents' kinds, shipped in the trial's config: a trial gets its
    own tasks, not the whole graph (which would be O(graph) to ship and unpickle per trial). Opaque to
    Tune: it prints as a short tag and is never deep-copied."""

    __slots__ = ("tasks", "parent_kinds")

    def __init__(self, tasks: tuple[Task, ...], parent_kinds: dict[str, str]):
        self.tasks, self.parent_kinds = tasks, parent_kinds

    def __reduce__(self):
        return TrialPayload, (self.tasks, self.parent_kinds)

    def __deepcopy__(self, memo) -> TrialPayload:
        return self

    def __repr__(self) -> str:
        return f"{len(self.tasks)}tasks"

    __str__ = __repr__


def _trial(config: dict, ctx: TrialContext) -> None:
    payload = config.get(PAYLOAD_KEY)
    if payload is None:   # a context that still carries the graph
        tasks, parent_kinds = [ctx.graph.tasks[t] for t in config["task_ids"]], None
    else:
        tasks, parent_kinds = payload.tasks, payload.parent_kinds
    # each task gets the kinds of its own parents: the payload's are every parent of the bundle, and what a task
    # records it was made from (`outputs.inputs_of`) must name its parents alone
    results = {task.id: run_task(task, ctx, None if parent_kinds is None else {p: parent_kinds[p] for p in task.parents})
               for task in tasks}
    tune.report(pack_results(results))


def _config_resources(config: dict) -> dict:
    """What a trial reserves, from its config (a function of the config alone: nothing else is pickled)."""
    return config[RESOURCES_KEY]


def trainable_name(sweep: str) -> str:
    """`mmc_sweep_<sweep>`: the name of the trials' actors (their `repr` in the Ray dashboard)."""
    return "mmc_sweep_" + re.sub(r"\W", "_", sweep)


def _trial_name(trial) -> str:
    """The task id (`pretrain-3f9c…`: its kind and hash), `<first>+<n>` for a bundle of n + 1 tasks."""
    ids = trial.config.get("task_ids") or [trial.trial_id]
    return ids[0] if len(ids) == 1 else f"{ids[0]}+{len(ids) - 1}"


def trial_resources(task: Task) -> dict:
    """What the task's Tune trial reserves: the first of `capacity.task_bundles` (the bundles the
    preflight checks), the task's own resources, or next to nothing when it only drives Ray Train
    workers (whose bundles follow it)."""
    request = dict(capacity.task_bundles(task.kind, task.resources)[0])
    return {"cpu": request.pop("CPU"), **({"gpu": request.pop("GPU")} if "GPU" in request else {}), **request}


def run_graph(
    state: SweepState,
    layout: SweepLayout,
    ctx: TrialContext,
    *,
    max_concurrent: int | None,
    progress: ProgressPrinter | None = None,
    run_name: str | None = None,
    concurrency: capacity.Concurrency | None = None,
    stall_wait_s: float | None = None,
) -> None:
    """Run every pending task of `state` on the connected Ray cluster; statuses land in `state` (listen
    to them with `state.subscribe`). `progress` prints as tasks start and end. Trials in flight follow
    the cluster (`concurrency`, by default read from the connected cluster), at most `max_concurrent`.
    `stall_wait_s`: stop the run when tasks have waited this long for what no node has (`run.stall`)."""
    if state.count(PENDING) == 0:   # nothing to run (Ray may not even be started)
        (progress or ProgressPrinter(state, max_concurrent or 1)).maybe_print(force=True)
        return
    concurrency = concurrency or capacity.Concurrency(capacity.read_cluster, max_concurrent)
    progress = progress or ProgressPrinter(state, concurrency.typical, cluster=concurrency.summary)
    unsubscribe = state.subscribe(progress.on_change)
    try:
        with stall.watching(state, concurrency, stall_wait_s):
            _fit(state, layout, ctx, concurrency, run_name)
    finally:
        unsubscribe()
    progress.maybe_print(force=True)


def _fit(state: SweepState, layout: SweepLayout, ctx: TrialContext, concurrency: capacity.Concurrency,
         run_name: str | None) -> None:
    quiet_ray_logs()
    searcher = DagSearcher(state, concurrency=concurrency, restarts=knobs.read(knobs.TASK_RESTARTS))
    with_context = tune.with_parameters(_trial, ctx=dataclasses.replace(ctx, graph=None))
    with_context.__name__ = trainable_name(ctx.sweep)   # what the Ray dashboard calls the trial actors
    trainable = tune.with_resources(with_context, _config_resources)   # no trainable holds the graph
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=LiveFifo(),
            num_samples=-1,
            # the searcher holds the trials in flight to what the cluster holds and to max_concurrent
            # (capacity.Concurrency); Tune's bound only has to let that many through, and keeps those that
            # wait for resources pending: the demand an autoscaler starts nodes for
            max_concurrent_trials=max(1, state.count(PENDING)),
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=run_name or f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
            **layout.ray_storage(),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=[_CrashReasons(state, searcher)],
        ),
    )
    with STOPS.tune_running(), credentials_kept_out_of_trials():   # a first stop signal goes to Tune
        tuner.fit()


# Ray Tune hands the driver's AWS credentials to every trial in its runtime environment, which Ray records (the
# actor table: `ray list actors --detail`; the runtime-env agent's log): they are kept out of it. A trial reads
# those of its node (README: "on every node"); a local Ray's processes have the driver's own environment.
CREDENTIAL_ENV = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"})


@contextlib.contextmanager
def credentials_kept_out_of_trials():
    """Around `Tuner.fit`: Tune's list of environment variables it copies into trials, without credentials."""
    try:
        from ray.tune.execution import class_cache
        propagated = class_cache.ENV_VARS_TO_PROPAGATE      # read at each trial class's first creation
    except (ImportError, AttributeError):                   # another Ray: nothing of this kind to take out
        propagated = set()
    held = propagated & CREDENTIAL_ENV if isinstance(propagated, set) else set()
    propagated -= held
    try:
        yield
    finally:
        propagated |= held


def init_ray(num_cpus: int | None = None, address: str | None = None) -> None:
    """Connect to RAY_ADDRESS / `address` if given (cluster, `ray job submit`), else start a local Ray."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:   # "local": a private Ray, never a `ray start` cluster that happens to run on this machine
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=True, logging_level="WARNING")


def cluster_resources() -> dict:
    return dict(ray.cluster_resources())
