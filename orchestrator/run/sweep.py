"""One `mmc-sweep run`: spec → graph → checks → cache → Ray → tables, MLflow, summary, report.

The story of a run, in order; each step is a call into the module that owns it:
1. plan the graph (`graph`), check data, endpoints and storage (`preflight`);
2. take the sweep's lock (`lock`), compare the spec with the stored one, verify finished outputs
   (`outputs`), and only if something is left to do, connect to Ray and check the cluster;
3. write the resolved spec and the plan (`plan`), run what is left (`schedule`), recording every
   task's row and MLflow run as it ends (`recording`);
4. print the summary and write the report (`report`).
A killed driver leaves only finished tasks behind (each behind its `done.json`), so rerunning the
same command resumes.
"""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from orchestrator import vocab
from orchestrator.results import compact, outputs, plan, tables
from orchestrator.run import preflight
from orchestrator.errors import SweepError
from orchestrator.graph.dag import Graph, build_graph
from orchestrator.storage.layout import SweepLayout
from orchestrator.uris import redact
from orchestrator.storage.lock import sweep_lock
from orchestrator.run.recording import TaskRecorder
from orchestrator.run.schedule import TrialContext, cluster_resources, init_ray, run_graph
from orchestrator.run.state import ProgressPrinter, SweepState
from orchestrator.spec.sweep_spec import SweepSpec, dump_spec, spec_hash

MLFLOW_TIMEOUT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
                      "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}   # fail in seconds, not minutes


@dataclass
class SweepOutcome:
    layout: SweepLayout
    state: SweepState
    summary: object = None            # pandas DataFrame of aggregate barrier statistics
    report_html: str | None = None
    mlflow_ui: str | None = None
    wall_s: float = 0.0
    counts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.counts.get(vocab.FAILED, 0) == 0 and self.counts.get(vocab.SKIPPED, 0) == 0


def git_rev() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def short_hash(spec: SweepSpec) -> str:
    return spec_hash(spec)[:16]


def verify_all(graph: Graph, layout: SweepLayout) -> dict[str, tuple[bool, str]]:
    """`outputs.verify_outputs` of every task (reads and hashes every output file once)."""
    return {task_id: outputs.verify_outputs(layout, task.kind, task_id) for task_id, task in graph.tasks.items()}


def mark_cached(state: SweepState, layout: SweepLayout, verified: dict[str, tuple[bool, str]], log=print) -> None:
    """Tasks with verified outputs are cached; broken outputs are invalidated and recomputed."""
    for task_id, task in state.graph.tasks.items():
        ok, reason = verified[task_id]
        if ok:
            state.states[task_id].status = vocab.CACHED
        elif reason != "no done.json":
            log(f"recomputing {task_id}: its stored output is not valid ({reason})")
            outputs.invalidate(layout, task.kind, task_id)


def unfinished_kinds(graph: Graph, verified: dict) -> list[str]:
    kinds = {graph.tasks[t].kind for t, (ok, _) in verified.items() if not ok}
    return [k for k in vocab.TASK_KINDS if k in kinds]


def run_sweep(spec: SweepSpec, *, runner: str = "real", num_cpus: int | None = None, ray_address: str | None = None,
              report: bool = True, new_version: bool = False, log=print) -> SweepOutcome:
    """Run (or resume) a sweep; never raises for task failures (see `SweepOutcome.ok`); raises
    SweepError (before any work, leaving nothing behind) for bad input."""
    start = time.time()
    for key, value in MLFLOW_TIMEOUT_ENV.items():
        os.environ.setdefault(key, value)
    graph = build_graph(spec)
    preflight.check_data(spec)
    preflight.check_tracking_server(spec.mlflow.tracking_uri if spec.mlflow.enabled else None)
    address = ray_address or os.environ.get("RAY_ADDRESS")
    preflight.check_ray_address(address)
    layout = preflight.open_layout(spec)
    created = preflight.new_directories(layout)
    preflight.check_storage(layout)
    try:
        with sweep_lock(layout):
            changes = preflight.check_spec_unchanged(layout, spec, new_version)
            preflight.check_report_dir(layout)
            verified = verify_all(graph, layout)
            kinds = unfinished_kinds(graph, verified)
            if kinds:   # a finished sweep needs no cluster: skip Ray's ~10 s start
                _connect(num_cpus, address)
                preflight.check_cluster(spec, layout, cluster_resources(), kinds)
            return _run_locked(spec, graph, layout, start, verified, changes, runner=runner, report=report, log=log)
    except SweepError:
        preflight.remove_new_directories(layout, created)   # refused before any work: leave nothing behind
        raise


def _connect(num_cpus: int | None, address: str | None) -> None:
    try:
        init_ray(num_cpus=num_cpus, address=address)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise SweepError(f"cannot connect to Ray{' at ' + redact(address) if address else ''}: "
                         f"{redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__}; check --address "
                         "(or RAY_ADDRESS), or leave it out to run on a local Ray") from None


def _archive_spec(layout: SweepLayout) -> str:
    storage = layout.storage
    version = 1
    while storage.exists(layout.spec_version_file(version)):
        version += 1
    storage.write_bytes(layout.spec_version_file(version), storage.read_bytes(layout.spec_file()))
    return layout.spec_version_file(version)


def _run_locked(spec: SweepSpec, graph: Graph, layout: SweepLayout, start: float, verified: dict,
                changes: list[str], *, runner: str, report: bool, log) -> SweepOutcome:
    """The body of `run_sweep` once the lock is held and the cluster fits the sweep."""
    if changes:
        log(f"new version of sweep `{spec.name}` ({len(changes)} setting(s) changed); the previous spec is kept "
            f"as {_archive_spec(layout)}")
    layout.storage.write_bytes(layout.spec_file(), dump_spec(spec).encode())
    plan.write_plan(layout, graph)
    state = SweepState(graph)
    mark_cached(state, layout, verified, log)
    log(f"sweep `{spec.name}`: {len(graph.tasks)} tasks ({_kind_counts(graph)}); "
        f"{state.count(vocab.CACHED)} already finished, {state.count(vocab.PENDING)} to run; "
        f"storage {redact(layout.root)}")
    mlflow_sink, parent_run_id = _start_mlflow(spec, layout, state, log)
    rev = git_rev()
    recorder = TaskRecorder(layout, state, short_hash(spec), mlflow_sink, parent_run_id, rev)
    for task_id, s in state.states.items():
        if s.status == vocab.CACHED and not tables.verify_fragment(layout, vocab.TASKS, task_id):
            recorder.record(task_id)   # a driver killed between done.json and the tasks row
    ctx = TrialContext(graph=graph, storage_uri=layout.storage.uri, sweep=spec.name, runner=runner,
                       data_root=spec.data_root)

    def finished(task_id: str) -> None:
        recorder.record(task_id)
        if state.states[task_id].status == vocab.FAILED:
            for child in graph.descendants(task_id):
                if state.states[child].status == vocab.SKIPPED:
                    recorder.record(child)

    progress = ProgressPrinter(state, spec.max_concurrent or (_default_concurrency() if state.count(vocab.PENDING)
                                                             else 1))
    try:
        run_graph(state, layout, ctx, max_concurrent=spec.max_concurrent, on_finish=finished, progress=progress)
        for task_id, s in state.states.items():   # pending tasks that could never run
            if s.status == vocab.SKIPPED and not tables.verify_fragment(layout, vocab.TASKS, task_id):
                recorder.record(task_id)
    finally:   # also when interrupted: every queued `tasks` row is written, then the fragments compacted
        recorder.close()
        compact.compact_after_run(layout, log)
    if state.count(vocab.RUNNING) or state.count(vocab.PENDING):
        # Tune stops gracefully on Ctrl-C and returns: tasks left running or pending mean an interrupt.
        if mlflow_sink is not None:
            mlflow_sink.finish_parent(parent_run_id, status=vocab.MLFLOW_KILLED)
        raise KeyboardInterrupt
    outcome = SweepOutcome(layout=layout, state=state, counts=state.counts(), wall_s=time.time() - start)
    if report:
        _write_report(outcome, spec, rev, mlflow_sink, parent_run_id, log)
    else:
        _summarize(outcome, log)
    if mlflow_sink is not None:
        mlflow_sink.finish_parent(parent_run_id, status=vocab.MLFLOW_FINISHED if outcome.ok else vocab.MLFLOW_FAILED,
                                  metrics={f"tasks_{k}": v for k, v in outcome.counts.items()} |
                                  {"wall_s": outcome.wall_s})
        outcome.mlflow_ui = mlflow_ui_command(spec, layout)
    _print_failures(outcome, log)
    log(f"finished in {outcome.wall_s:.1f}s: " + ", ".join(f"{k} {v}" for k, v in outcome.counts.items()))
    log(f"results: {redact(layout.storage.join(layout.root, 'results'))}")
    if outcome.report_html:
        log(f"report:  {outcome.report_html}")
    if outcome.mlflow_ui:
        log(f"browse:  {outcome.mlflow_ui}")
    return outcome


def _default_concurrency() -> int:
    """Without `max_concurrent`: as many tasks as the cluster has CPUs (resources cap it further)."""
    try:
        return max(1, int(cluster_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001 - Ray not started (nothing to run)
        return 1


def _kind_counts(graph: Graph) -> str:
    return ", ".join(f"{k} {v}" for k, v in graph.counts().items())


def _tracking_uri(spec: SweepSpec, layout: SweepLayout) -> str:
    return spec.mlflow.tracking_uri or layout.mlflow_uri()


def _start_mlflow(spec: SweepSpec, layout: SweepLayout, state: SweepState, log):
    if not spec.mlflow.enabled:
        return None, None
    from orchestrator.run.tracking import MlflowSink

    uri = None
    try:
        uri = _tracking_uri(spec, layout)
        sink = MlflowSink(uri, experiment_name=spec.name)
        run_id = sink.start_parent(
            params={"sweep": spec.name, "tasks": len(state.graph.tasks), "spec_hash": short_hash(spec),
                    "storage": redact(layout.root), "max_concurrent": spec.max_concurrent,
                    "swept": ", ".join(spec.swept_keys) or "-"},
            tags={"mmc.spec_hash": short_hash(spec), "mmc.git_rev": git_rev() or "unknown"})
        return sink, run_id
    except Exception as exc:  # noqa: BLE001 - results still land in Parquet
        log(f"warning: MLflow tracking at {redact(str(uri))} unavailable ({redact(str(exc)).splitlines()[0]}); "
            "results go to Parquet only")
        return None, None


def mlflow_ui_command(spec: SweepSpec, layout: SweepLayout) -> str:
    uri = redact(_tracking_uri(spec, layout))
    if not uri.startswith("sqlite:"):
        return f"open {uri} in a browser (experiment `{spec.name}`)"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def _summarize(outcome: SweepOutcome, log) -> None:
    from orchestrator.report import build as report
    try:
        outcome.summary, text = report.summary_text(outcome.layout)
    except Exception as exc:  # noqa: BLE001 - a summary failure must not hide finished results
        log(f"(summary unavailable: {type(exc).__name__}: {exc})")
        return
    if text:
        log(text)


def _write_report(outcome: SweepOutcome, spec: SweepSpec, rev, mlflow_sink, parent_run_id, log) -> None:
    from orchestrator.report import build as report
    try:
        rep = report.write_report(outcome.layout, provenance={"spec_hash": short_hash(spec), "git_rev": rev,
                                                              "torch": torch.__version__, "wall_s": outcome.wall_s})
        outcome.report_html = str(rep.html)
        outcome.summary = rep.summary_table
        if rep.text:
            log(rep.text)
        if mlflow_sink is not None:
            mlflow_sink.log_artifacts(parent_run_id, [outcome.report_html, *[str(f) for f in rep.figures],
                                                      *([rep.clusters] if rep.clusters else [])])
    except Exception as exc:  # noqa: BLE001 - a report failure must not hide finished results
        log(f"warning: report failed: {type(exc).__name__}: {exc}")


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
    log("Rerun the same command to retry them; finished tasks are not recomputed.")
