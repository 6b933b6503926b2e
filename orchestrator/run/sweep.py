"""One `mmc-sweep run`: spec → graph → checks → cache → Ray → tables, MLflow, summary, report.

The story of a run, in order; each step is a call into the module that owns it:
1. plan the graph (`graph`), check data, endpoints and storage (`preflight`), read the autoscaler's node
   types if given (`node_types`);
2. take the sweep's lock (`lock`), compare the spec with the stored one, verify finished outputs
   (`cache`), and only if something is left to do, connect to Ray and check the cluster: what it has,
   or can grow to, waiting a bounded time for nodes that are on their way (`capacity`, `preflight`);
3. write the resolved spec and the plan (`plan`), mend damaged result parts (`compact.repair`), run what
   is left (`schedule`), recording every task's row and MLflow run as it ends (`recording`);
4. print the summary and write the report (`report`).
Task states change through `SweepState.set_status`; the recorder and the progress line listen to them.
SIGTERM and SIGHUP stop a run as Ctrl-C does (`signals`). A killed driver leaves only finished tasks
behind (each behind its `done.json`), so rerunning the same command resumes.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field

from orchestrator import knobs, vocab
from orchestrator.messages import to_console, logger
from orchestrator.results import compact, plan, tables
from orchestrator.run import capacity, preflight
from orchestrator.run.cache import mark_cached, unfinished_kinds, verify_all
from orchestrator.run.capacity import ClusterView, Concurrency, read_cluster
from orchestrator.run.node_types import AUTOSCALER_CONFIG_FLAG, NodeTypes, head_autoscaler_config, read_node_types
from orchestrator.errors import MmcError, SweepError
from orchestrator.provenance import SourceRevision, keep_source_diff, source_revision, torch_version
from orchestrator.graph.dag import Graph, build_graph, check_settings_read, planning_line
from orchestrator.storage.layout import SweepLayout
from orchestrator.uris import redact, redacting
from orchestrator.storage.lock import sweep_lock
from orchestrator.run import tracking
from orchestrator.run.recording import TaskRecorder
from orchestrator.run.runners import plugin_runner
from orchestrator.run.schedule import TrialContext, init_ray, run_graph
from orchestrator.run.signals import STOPS, ray_processes_apart, stop_like_ctrl_c
from orchestrator.run.state import ProgressPrinter, SweepState
from orchestrator.run.unlearnt_watch import UnlearntWatch
from orchestrator.spec.sweep_spec import SweepSpec, dump_spec, spec_hash

_LOG = logger(__name__)


@dataclass
class SweepOutcome:
    layout: SweepLayout
    state: SweepState
    summary: object = None            # pandas DataFrame of aggregate barrier statistics
    report_html: str | None = None
    mlflow_ui: str | None = None      # the command that serves a store without a server (`mlflow ui ...`)
    mlflow_url: str | None = None     # the experiment's runs table in MLflow's UI
    wall_s: float = 0.0
    counts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.counts.get(vocab.FAILED, 0) == 0 and self.counts.get(vocab.SKIPPED, 0) == 0


def short_hash(spec: SweepSpec) -> str:
    return spec_hash(spec)[:16]


def run_sweep(spec: SweepSpec, *, runner: str = vocab.REAL_RUNNER, num_cpus: int | None = None, ray_address: str | None = None,
              report: bool = True, new_version: bool = False, log=None, autoscaler_config: str | None = None,
              wait_for_nodes_s: float = capacity.DEFAULT_WAIT_FOR_NODES_S) -> SweepOutcome:
    """Run (or resume) a sweep; never raises for task failures (see `SweepOutcome.ok`); raises an
    MmcError (before any work, leaving nothing behind) for bad input, KeyboardInterrupt when stopped
    (Ctrl-C, SIGTERM, SIGHUP). `runner`: `real`, or an import path `package.module:function` (tests,
    benchmarks). `log`: where the story of the run goes (default: INFO messages of this module, shown
    on the terminal unless logging is set up otherwise); every line is redacted (credentials in URIs are
    never printed, whatever message carries them).
    `autoscaler_config`: the autoscaler's node types (a `ray up` or KubeRay YAML; default: the config of the
    head's autoscaler when this runs on the head). `wait_for_nodes_s`: how long to wait for nodes that are
    on their way before refusing a sweep the cluster cannot run yet (a cluster at `ray_address` only)."""
    to_console(only_if_unhandled=True)
    log = log or _LOG.info
    knobs.check_all()
    if runner != vocab.REAL_RUNNER:   # a test's or benchmark's runner, by import path: one clear error now
        plugin_runner(runner)
    with stop_like_ctrl_c():
        return _run_sweep(spec, runner, num_cpus, ray_address, report, new_version, log, autoscaler_config,
                          wait_for_nodes_s)


def _run_sweep(spec: SweepSpec, runner: str, num_cpus: int | None, ray_address: str | None, report: bool,
               new_version: bool, log, autoscaler_config: str | None, wait_for_nodes_s: float) -> SweepOutcome:
    start = time.time()
    log = redacting(log)
    # the code's source revision, read once (git runs three commands): a malformed MMC_SOURCE_REVISION
    # stops here, before anything is written
    revision = source_revision()
    graph = build_graph(spec, progress=lambda tasks, seconds: log(planning_line(tasks, seconds)))
    unread = check_settings_read(spec, graph)
    preflight.check_data(spec)
    preflight.check_tracking_server(spec.mlflow.tracking_uri if spec.mlflow.enabled else None)
    if not spec.mlflow.enabled and spec.explicit("mlflow.tracking_uri"):     # `--tracking-uri` on a spec without MLflow
        _LOG.warning(f"`mlflow.tracking_uri` is set ({redact(spec.provenance.keys['mlflow.tracking_uri'])}), but "
                     "`mlflow.enabled` is false: nothing is logged to MLflow; add mlflow.enabled=true to log there")
    address = ray_address or os.environ.get("RAY_ADDRESS")
    preflight.check_ray_address(address)
    given_types = read_node_types(autoscaler_config) if autoscaler_config else None
    layout = preflight.open_layout(spec)
    created = preflight.new_directories(layout)
    preflight.check_storage(layout)
    try:
        with sweep_lock(layout):
            changes = preflight.check_spec_unchanged(layout, spec, new_version, unread)
            preflight.check_report_dir(layout)
            verified = verify_all(graph, layout)
            kinds = unfinished_kinds(graph, verified)
            concurrency = None
            if kinds:   # a finished sweep needs no cluster: skip Ray's ~10 s start
                _connect(num_cpus, address)
                STOPS.install()   # ray.init put Ray's own SIGTERM handler (exit 134, a stack dump) in place
                read = _cluster_reader(given_types, local=not address, log=log)
                view = _wait_for_cluster(spec, graph, verified, kinds, read, wait_s=wait_for_nodes_s if address else 0,
                                         log=log)
                preflight.check_cluster(spec, layout, view.at_most(), kinds, grows=view.can_grow)
                concurrency = Concurrency(read, spec.max_concurrent, view=view)
            return _run_locked(spec, graph, layout, start, verified, changes, runner=runner, report=report, log=log,
                               concurrency=concurrency, revision=revision,
                               stall_wait_s=wait_for_nodes_s if address else None)
    except MmcError:
        preflight.remove_new_directories(layout, created)   # refused before any work: leave nothing behind
        raise


def _connect(num_cpus: int | None, address: str | None) -> None:
    try:
        with ray_processes_apart():   # a stop signal to the driver's group or cgroup stops the run as Ctrl-C does
            init_ray(num_cpus=num_cpus, address=address)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise SweepError(f"cannot connect to Ray{' at ' + redact(address) if address else ''}: "
                         f"{redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__}; check --address "
                         "(or RAY_ADDRESS), or leave it out to run on a local Ray") from None


def _cluster_reader(given: NodeTypes | None, *, local: bool, log):
    """`read()` -> the cluster now (`capacity.ClusterView`), with the autoscaler's node types: `given`
    (checked against the autoscaler that runs), else those of the head's autoscaler when this runs on
    the head. A local Ray this run started has no autoscaler."""
    types = given if given is not None or local else _head_node_types(log)

    def read() -> ClusterView:
        return read_cluster(types, autoscaled=not local)

    if given is not None:
        _check_autoscaler(given, read())
    return read


def _head_node_types(log) -> NodeTypes | None:
    try:
        import ray

        path = head_autoscaler_config(ray.get_runtime_context().gcs_address)
        return read_node_types(path, "the head's autoscaler config") if path else None
    except SweepError as exc:   # not the user's input: go on as without an autoscaler config
        _LOG.warning(f"{exc}; going on without the autoscaler's node types")
    except Exception:  # noqa: BLE001 - no address to match, /proc unreadable: nothing found
        pass
    return None


def _check_autoscaler(types: NodeTypes, view: ClusterView) -> None:
    flag = f"{AUTOSCALER_CONFIG_FLAG} {types.source}"
    if view.autoscaler is None:
        raise SweepError(f"{flag}: the cluster runs no autoscaler (`ray status` shows none), so no node of those "
                         f"types would start; start the cluster with `ray up {types.source}` (KubeRay: "
                         f"`enableInTreeAutoscaling: true`), or leave {AUTOSCALER_CONFIG_FLAG} out")
    if not view.autoscaler.types & types.names():
        raise SweepError(f"{flag} names the node types {', '.join(sorted(types.names()))}, but the cluster's "
                         f"autoscaler reports {', '.join(sorted(view.autoscaler.types))}; give the file the cluster "
                         f"was started with, or leave {AUTOSCALER_CONFIG_FLAG} out")


def _wait_for_cluster(spec: SweepSpec, graph: Graph, verified: dict, kinds: list[str], read, *, wait_s: float,
                      log) -> ClusterView:
    counts: dict[str, int] = {}
    for task_id, (ok, _) in verified.items():
        if not ok:
            counts[graph.tasks[task_id].kind] = counts.get(graph.tasks[task_id].kind, 0) + 1
    ask = capacity.ResourceRequest()
    try:
        return preflight.wait_for_cluster(spec, kinds, read, wait_s=wait_s, counts=counts, ask=ask, log=log)
    finally:
        ask.clear()   # a request stays until replaced: the tasks' own demand takes over from here


def archived_versions(layout: SweepLayout) -> int:
    """How many earlier spec versions the sweep keeps (`spec-v<N>.yaml`); the current one is this + 1."""
    version = 0
    while layout.storage.exists(layout.spec_version_file(version + 1)):
        version += 1
    return version


def _archive_spec(layout: SweepLayout) -> str:
    storage = layout.storage
    path = layout.spec_version_file(archived_versions(layout) + 1)
    storage.write_bytes(path, storage.read_bytes(layout.spec_file()))
    return path


def _run_locked(spec: SweepSpec, graph: Graph, layout: SweepLayout, start: float, verified: dict,
                changes: list[str], *, runner: str, report: bool, log,
                concurrency: Concurrency | None = None, revision: SourceRevision | None = None,
                stall_wait_s: float | None = None) -> SweepOutcome:
    """The body of `run_sweep` once the lock is held and the cluster fits the sweep."""
    if changes:
        log(f"new version of sweep `{spec.name}` ({len(changes)} setting(s) changed); the previous spec is kept "
            f"as {_archive_spec(layout)}")
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    plan.write_plan(layout, graph)
    if any(c.changed for c in compact.repair(layout, log).values()):   # damaged or lost result parts mended
        verified = verify_all(graph, layout)
    state = SweepState(graph, keep_results=False)   # the recorder takes each result as its task ends
    mark_cached(state, layout, verified, log)
    for note in spec.notes:
        log(f"note: {note}")
    log(f"sweep `{spec.name}`: {len(graph.tasks)} tasks ({_kind_counts(graph)}); "
        f"{state.count(vocab.CACHED)} already finished, {state.count(vocab.PENDING)} to run; "
        f"storage {redact(layout.root)}")
    rev = revision.label if revision is not None else None
    keep_source_diff(layout, revision)
    tracker = _start_tracking(spec, layout, graph, log, revision)
    recorder = TaskRecorder(layout, state, short_hash(spec), tracker, rev)
    for task_id, s in state.states.items():
        if s.status == vocab.CACHED and not tables.verify_fragment(layout, vocab.TASKS, task_id):
            recorder.record(task_id)   # a driver killed between done.json and the tasks row
    state.subscribe(recorder.on_status)   # every task that ends from now on: its row and MLflow run
    UnlearntWatch(state, spec.claims.floor_acc, log)   # a model that finished at chance: said as it ends
    ctx = TrialContext(graph=graph, storage_uri=layout.storage.uri, sweep=spec.name, runner=runner,
                       data_root=spec.data_root)
    if concurrency is not None and state.count(vocab.PENDING):
        progress = ProgressPrinter(state, concurrency.typical, cluster=concurrency.summary)
    else:
        progress = ProgressPrinter(state, spec.max_concurrent or 1)
    interrupted: KeyboardInterrupt | None = None
    try:
        run_graph(state, layout, ctx, max_concurrent=spec.max_concurrent, progress=progress,
                  concurrency=concurrency, stall_wait_s=stall_wait_s)
    except KeyboardInterrupt as exc:   # stopped before Tune ran (Tune itself stops gracefully and returns)
        interrupted = exc
    finally:   # also when interrupted: every queued `tasks` row is written, then the fragments compacted
        # Tune stops gracefully on Ctrl-C (and SIGTERM, SIGHUP) and returns: tasks left running or pending
        # mean an interrupt.
        if interrupted is None and (state.count(vocab.RUNNING) or state.count(vocab.PENDING)):
            interrupted = KeyboardInterrupt()
        if interrupted is not None:
            STOPS.stopping = True   # a stop signal from now on ends the driver at once
        recorder.close()   # (it compacted a bundle every `compact.bundle_tasks` ended tasks: the tail is left)
        compact.compact_after_run(layout, log, rows_of=recorder.table.rows_of, one_part=interrupted is None)
    if interrupted is not None:
        tracker.finish(vocab.MLFLOW_KILLED)
        raise interrupted
    outcome = SweepOutcome(layout=layout, state=state, counts=state.counts(), wall_s=time.time() - start)
    report_files = _write_report(outcome, spec, rev, log) if report else _summarize(outcome, log)
    with tempfile.TemporaryDirectory(prefix="mmc-report-") as scratch:   # a report on an object store, copied
        from orchestrator.report import build as report   # the report's and tables' files, local for MLflow
        tracker.finish(vocab.MLFLOW_FINISHED if outcome.ok else vocab.MLFLOW_FAILED,
                       metrics={f"tasks_{k}": v for k, v in outcome.counts.items()} | {"wall_s": outcome.wall_s},
                       artifacts=_report_artifacts(layout, report_files, scratch),
                       tables=None if tracker.per_task else report.table_files(layout, scratch))
    outcome.mlflow_ui, outcome.mlflow_url = tracker.ui_command(), tracker.browse_url()
    _print_failures(outcome, log)
    log(f"finished in {outcome.wall_s:.1f}s: " + ", ".join(f"{k} {v}" for k, v in outcome.counts.items()))
    log(f"results: {layout.storage.shown(layout.storage.join(layout.root, 'results'))}")
    if outcome.report_html:
        log(f"report:  {outcome.report_html}")
    if outcome.mlflow_url:
        if outcome.mlflow_ui:
            log(f"mlflow:  {outcome.mlflow_ui}")
        log(f"browse:  {outcome.mlflow_url}")
    return outcome


def _kind_counts(graph: Graph) -> str:
    return ", ".join(f"{k} {v}" for k, v in graph.counts().items())


def _tracking_uri(spec: SweepSpec, layout: SweepLayout) -> str:
    return spec.mlflow.tracking_uri or layout.mlflow_uri()


def _start_tracking(spec: SweepSpec, layout: SweepLayout, graph: Graph, log, revision: SourceRevision | None):
    """The sweep's tracker, its parent run started; a `NullTracker` when tracking is off or unavailable."""
    if not spec.mlflow.enabled:
        return tracking.NullTracker()
    uri = None
    try:
        uri = _tracking_uri(spec, layout)
        tracker = tracking.MlflowTracker(uri, experiment_name=spec.name)
        tracker.start(tracking.SweepRun(
            graph=graph, sweep=spec.name, version=archived_versions(layout) + 1, spec_hash=short_hash(spec),
            spec_text=dump_spec(spec), source=spec.source, git_commit=revision.commit if revision is not None else None,
            git_rev=revision.label if revision is not None else None, params={"swept": ", ".join(spec.swept_keys) or "-"},
            tags={"mmc.storage": layout.storage.shown(layout.root), "mmc.max_concurrent": spec.max_concurrent}))
        return tracker
    except Exception as exc:  # noqa: BLE001 - results still land in Parquet
        _LOG.warning(f"MLflow tracking at {redact(str(uri))} unavailable ({redact(str(exc)).splitlines()[0]}); "
                     "results go to Parquet only")
        return tracking.NullTracker()


def mlflow_ui_command(spec: SweepSpec, layout: SweepLayout) -> str | None:
    """The command that serves the sweep's MLflow store on 127.0.0.1 (None for a tracking server)."""
    return tracking.ui_command(_tracking_uri(spec, layout))


def _summarize(outcome: SweepOutcome, log) -> list[str]:
    """Print the summary (no report); no files to upload."""
    from orchestrator.report import build as report
    try:
        outcome.summary, text = report.summary_text(outcome.layout)
    except Exception as exc:  # noqa: BLE001 - a summary failure must not hide finished results
        log(f"(summary unavailable: {type(exc).__name__}: {redact(str(exc))})")
        return []
    if text:
        log(text)
    return []


def _report_artifacts(layout: SweepLayout, paths: list[str], scratch: str) -> list[str]:
    """The report's files as local files for MLflow: as they are on local storage, copied into `scratch` from
    an object store."""
    if not paths:
        return []
    from orchestrator.report import build as report
    try:
        return report.local_paths(layout, paths, scratch)
    except Exception as exc:  # noqa: BLE001 - the report is in the sweep directory all the same
        _LOG.warning(f"the report could not be copied for MLflow: {type(exc).__name__}: {redact(str(exc))}")
        return []


def _write_report(outcome: SweepOutcome, spec: SweepSpec, rev, log) -> list[str]:
    """Write the report; returns its files (report.html and the figures, storage paths) for MLflow."""
    from orchestrator.report import build as report
    try:
        rep = report.write_report(outcome.layout, provenance={"spec_hash": short_hash(spec), "git_rev": rev,
                                                              "torch": torch_version(), "wall_s": outcome.wall_s})
        outcome.report_html = outcome.layout.storage.shown(rep.html)
        outcome.summary = rep.summary_table
        if rep.text:
            log(rep.text)
        return [rep.html, *rep.figures, *([rep.clusters] if rep.clusters else [])]
    except Exception as exc:  # noqa: BLE001 - a report failure must not hide finished results
        _LOG.warning(f"report failed: {type(exc).__name__}: {redact(str(exc))}")
        return []


def _print_failures(outcome: SweepOutcome, log) -> None:
    failed = [(tid, s) for tid, s in outcome.state.states.items() if s.status == vocab.FAILED]
    skipped = outcome.state.count(vocab.SKIPPED)
    if not failed and not skipped:
        return
    log(f"\n{len(failed)} task(s) failed, {skipped} skipped because of them:")
    for tid, s in failed[:20]:
        first = (s.error or "").strip().splitlines()[0] if s.error else "unknown error"
        log(f"  - {tid}: {redact(first)}")
    if len(failed) > 20:
        log(f"  ... and {len(failed) - 20} more (see the `tasks` table)")
    same = [vocab.error_type(s.error) for _, s in failed if vocab.error_type(s.error) in vocab.DETERMINISTIC_ERRORS]
    if same:
        log(f"{len(same)} of them ({', '.join(sorted(set(same)))}) would fail the same way again: training is seeded "
            "and their settings stay what they are. Change what the error names (e.g. a lower `lr` after a "
            "DivergenceError), then rerun; finished tasks are not recomputed.")
    if len(same) < len(failed):
        log(f"Rerun the same command to retry {'the others' if same else 'them'}; finished tasks are not recomputed.")
