"""MLflow, the one outside system a sweep reports to as it runs, behind one small interface:

    tracker.start(sweep_run)          the sweep version's parent run (created, or continued on a rerun)
    tracker.tasks_ended(ended)        child runs of tasks that ended (a batch); returns task id -> run id
    tracker.finish(status, metrics=, artifacts=)    the report on the parent run, which is then closed

Why one module: the parent run, the child runs (per task, or per kind above `MMC_MLFLOW_TASK_RUNS`) and the
artifacts share one client, one experiment and one failure rule (a warning, never a raise); split, each
piece would re-derive them.

`MlflowTracker` does it; `NullTracker` does nothing (tracking off or unavailable). Neither raises once
started: a run that cannot be logged is a warning, and the results still land in Parquet.

What a user of MLflow finds: one experiment per sweep; one parent run per sweep version (a rerun of the
same spec continues it, `<sweep> v<N>`) with the resolved spec as `spec.yaml`, the report and its figures,
the datasets as inputs, `mlflow.source.name` (the spec) and `mlflow.source.git.commit`; one child run per
task (what it holds: `child_runs`). The parent's commit and `mmc.git_rev` name the code of the latest
invocation that computed a task (a rerun that reused every result credits nothing to its code), and
`mmc.git_revs` every revision that computed tasks of the version, in order; a child run has its own
invocation's. `browse_url()` opens the experiment on its runs table: MLflow 3's UI
shows a GenAI overview unless the URL says `workflowType=machine_learning` (it reads that, not the
experiment's `mlflow.experimentKind` tag, which is set too).

At scale, one child run per task does not serve: MLflow's search and UI slow down with the runs of an
experiment (BENCHMARKS.md §7: listing a sweep's children takes ~7 ms per run, minutes at 10^4-10^5). A
sweep of more than `knobs.MLFLOW_TASK_RUNS` tasks gets one child run per task kind instead (`GroupRun`:
its tasks' counts per status and the mean of each of their numbers, per invocation, and the failed tasks'
errors in `errors.txt`, the first `GROUP_ERRORS` of them), and its result
tables, the per-task numbers, are logged on the parent run under `tables/<table>/` when it finishes; a
task's `tasks` row then names its kind's run. Which of the two a sweep gets is decided by its size alone.

Child runs go in one SQL transaction per batch where the store is MLflow's SQL store (`tracking_sql`), else
(a tracking server, or after any failure of the SQL path) run by run through the client. For a SQLite store
the artifacts live next to the database (`<sweep>/mlflow-artifacts`); MLflow records that location as an
absolute path, so it is re-pointed at every start: a moved or copied sweep directory logs into itself.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import knobs, vocab
from orchestrator.graph.dag import Graph
from orchestrator.messages import logger
from orchestrator.run import child_runs, tracking_sql
from orchestrator.run.child_runs import ChildRun, clean_tags, flatten_params
from orchestrator.uris import redact

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
RUNS_VIEW = "workflowType=machine_learning"      # what makes MLflow 3's UI show the runs table
UI_PORT = 5000
ARTIFACTS_DIR = "mlflow-artifacts"               # next to a SQLite store
SWEEP_ROLE_TAG, SWEEP_ROLE = "mmc.role", "sweep"
SPEC_HASH_TAG, VERSION_TAG, INVOCATIONS_TAG = "mmc.spec_hash", "mmc.version", "mmc.invocations"
SOURCE_NAME_TAG, SOURCE_TYPE_TAG, GIT_COMMIT_TAG = "mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit"
GIT_REV_TAG, GIT_REVS_TAG = "mmc.git_rev", "mmc.git_revs"   # the revision label (`provenance.SourceRevision`)
GROUP_TAG = "mmc.group"                          # a child run of one task kind (`GroupRun`)
TABLES_ARTIFACT_DIR = "tables"                   # the result tables on the parent run, with group runs
GROUP_ERRORS = 1000                              # failed tasks whose whole error a group run keeps in `errors.txt`
FAILURES_IN_A_ROW = 3        # child runs that failed to log, one after another, after which an invocation stops trying
MAX_ERROR_CHARS = 300
STORE_LOGGER = "mlflow.store.db.utils"           # logs a traceback for every failed call of a SQL store
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
TIMEOUT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}   # a tracking server fails in seconds, not minutes


log = logger(__name__)


def warn(message: str) -> None:
    """A warning of the tracker (the `orchestrator` logger: `warning: ...` on the console)."""
    log.warning(redact(message))


def brief(exc: BaseException) -> str:
    """`Type: message` in one line, without the SQL statement, parameters and links of a store's error."""
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.lstrip().startswith(("[SQL:", "[parameters:", "(Background on", "(raised as a result"))]
    text = " ".join(lines)
    return f"{type(exc).__name__}: {text[:MAX_ERROR_CHARS]}{'...' if len(text) > MAX_ERROR_CHARS else ''}"


class _StoreErrorsSaid(logging.Filter):
    """Drops the SQL store's own ERROR record (a traceback per failed call) while the tracker makes calls
    whose failures it says itself, in one line (`brief`)."""

    active = 0

    def filter(self, record: logging.LogRecord) -> bool:
        return not (type(self).active and record.levelno >= logging.ERROR)


@contextlib.contextmanager
def _saying_store_errors() -> Iterator[None]:
    _StoreErrorsSaid.active += 1
    try:
        yield
    finally:
        _StoreErrorsSaid.active -= 1


@dataclass(frozen=True)
class SweepRun:
    """What the parent run of a sweep version holds."""

    graph: Graph
    sweep: str                    # the sweep's name (= the experiment's)
    version: int                  # the sweep's spec version (1 + the archived specs)
    spec_hash: str                # identifies the version: a rerun with this hash continues its parent run
    spec_text: str = ""           # the resolved spec, logged as spec.yaml
    source: str = ""              # mlflow.source.name: the spec file (and overrides)
    git_commit: str | None = None
    git_rev: str | None = None    # the revision's label (commit, +dirty.<hash>): None where unknown
    params: Mapping[str, Any] = field(default_factory=dict)   # set once, when the parent run is created
    tags: Mapping[str, Any] = field(default_factory=dict)     # set at every start (storage, max_concurrent)


class GroupRun:
    """The child run of one task kind in a sweep too large for a child run per task: what it logs when the
    sweep run ends (`metrics`) is gathered in memory as its tasks end, O(number of distinct metrics)."""

    def __init__(self, kind: str, run_id: str):
        self.kind, self.run_id = kind, run_id
        self.counts: dict[str, int] = {}                 # run status (done, cached, failed, skipped) -> tasks
        self.sums: dict[str, float] = {}                 # metric -> sum over finished tasks (finite values)
        self.numbers: dict[str, int] = {}                # metric -> how many values the sum holds
        self.errors: dict[str, str] = {}                 # failed task id -> its error (redacted), in `errors.txt`

    def add(self, ended) -> None:
        self.counts[ended.status] = self.counts.get(ended.status, 0) + 1
        if ended.status == vocab.FAILED and len(self.errors) < GROUP_ERRORS:
            self.errors[ended.task.id] = redact(ended.error or "unknown error").rstrip()
        if ended.status not in (vocab.DONE, vocab.CACHED):
            return
        values = dict(ended.metrics)
        if ended.duration_s is not None:
            values["duration_s"] = ended.duration_s
        for key, value in values.items():
            v = child_runs.metric_value(value)
            if v is None or not math.isfinite(v) or child_runs.is_secret(key):
                continue
            self.sums[key] = self.sums.get(key, 0.0) + v
            self.numbers[key] = self.numbers.get(key, 0) + 1

    def errors_text(self) -> str:
        """The failed tasks' errors, one block each (`errors.txt` of the run; the `tasks` table has them all)."""
        failed = self.counts.get(vocab.FAILED, 0)
        more = (f"\n... and {failed - len(self.errors)} more failed tasks: their errors are in the `tasks` table\n"
                if failed > len(self.errors) else "")
        return "".join(f"== {task_id}\n{error}\n\n" for task_id, error in self.errors.items()) + more

    def metrics(self) -> dict[str, float]:
        """`tasks_<status>` (counts of this invocation) and `mean.<metric>` over its finished tasks."""
        out: dict[str, float] = {f"tasks_{status}": n for status, n in sorted(self.counts.items())}
        out.update({f"mean.{key}": self.sums[key] / self.numbers[key] for key in sorted(self.sums)})
        return out

    def status(self, sweep_status: str) -> str:
        """The run's end status: the sweep's, except that a sweep that finished ends FAILED where one of its
        tasks failed (a killed or failed sweep keeps its own status)."""
        if sweep_status == vocab.MLFLOW_FINISHED and self.counts.get(vocab.FAILED):
            return vocab.MLFLOW_FAILED
        return sweep_status


def per_task_runs(tasks: int) -> bool:
    """Whether a sweep of `tasks` tasks gets a child run per task (else one per task kind)."""
    return tasks <= knobs.read(knobs.MLFLOW_TASK_RUNS)


class NullTracker:
    """Tracking off: every call does nothing."""

    experiment_id = parent_run_id = None
    per_task = True

    def start(self, run: SweepRun) -> None:
        pass

    def tasks_ended(self, ended: Sequence) -> dict[str, str]:
        return {}

    def finish(self, status: str, metrics: Mapping[str, Any] | None = None,
               artifacts: Iterable[str | Path] = (), tables: Mapping[str, Sequence[str | Path]] | None = None) -> None:
        pass

    def ui_command(self) -> str | None:
        return None

    def browse_url(self) -> str | None:
        return None


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a local SQLite store, artifacts next to the database (not in the CWD); None for other stores."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        db = Path(tracking_uri[len(prefix):])
        return (db.parent / ARTIFACTS_DIR).absolute().as_uri()
    return None


def ui_command(tracking_uri: str) -> str | None:
    """The command that serves a store without a server (None for a tracking server: it is one), quoted for a
    shell (a storage path with a space)."""
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    return f"mlflow ui --backend-store-uri {shlex.quote(redact(tracking_uri))} --host 127.0.0.1 --port {UI_PORT}"


def browse_url(tracking_uri: str, experiment_id: str | None) -> str | None:
    """The URL of the experiment's runs table (on `mlflow ui`'s address for a store without a server);
    None for Databricks, whose workspace address the URI does not hold."""
    if tracking_uri.startswith("databricks"):
        return None
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else \
        f"http://127.0.0.1:{UI_PORT}"
    where = f"#/experiments/{urllib.parse.quote(str(experiment_id))}/runs" if experiment_id else "#/experiments"
    return redact(f"{base}/{where}?{RUNS_VIEW}")


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class MlflowTracker:
    """One sweep's MLflow experiment. Explicit run ids throughout (no global active run), so `tasks_ended`
    may run on another thread than `start`/`finish`."""

    def __init__(self, tracking_uri: str, experiment_name: str):
        for key, value in TIMEOUT_ENV.items():
            os.environ.setdefault(key, value)
        from mlflow import MlflowClient  # imported lazily: mlflow is slow to import

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = self._experiment(experiment_name)
        self.parent_run_id: str | None = None
        self.invocation = 0
        self._names: dict[str, str] = {}
        self._common_tags: dict[str, str] = {}
        self.per_task = True                       # a child run per task (else per kind: `GroupRun`)
        self._groups: dict[str, GroupRun] = {}
        self.sql = self._sql_writer()
        self._failures_in_a_row = 0
        self._run: SweepRun | None = None
        self._credited = False                     # this invocation's code is named on the parent run
        self.stopped = False                       # this invocation logs no more child runs (`FAILURES_IN_A_ROW`)
        if not any(isinstance(f, _StoreErrorsSaid) for f in logging.getLogger(STORE_LOGGER).filters):
            logging.getLogger(STORE_LOGGER).addFilter(_StoreErrorsSaid())
        self._relocate_artifacts()

    # ---- the interface -------------------------------------------------------------------------
    def start(self, run: SweepRun) -> str:
        """Create the version's parent run, or continue it (same spec hash); returns its run id."""
        self.per_task = per_task_runs(len(run.graph.tasks))
        self._names = child_runs.run_names(run.graph) if self.per_task else {}
        self._common_tags = clean_tags({SOURCE_NAME_TAG: run.source or None, SOURCE_TYPE_TAG: "LOCAL",
                                        GIT_COMMIT_TAG: run.git_commit})
        self._run, self._credited = run, False
        found = self._parent_of(run.spec_hash)
        if found is None:
            tags = {SWEEP_ROLE_TAG: SWEEP_ROLE, SPEC_HASH_TAG: run.spec_hash, VERSION_TAG: run.version,
                    child_runs.USER_TAG: child_runs.user(), child_runs.NOTE_TAG: _parent_note(run),
                    GIT_COMMIT_TAG: run.git_commit, GIT_REV_TAG: run.git_rev or "unknown"}
            created = self.client.create_run(self.experiment_id, run_name=f"{run.sweep} v{run.version}",
                                             tags=clean_tags(tags))
            self.parent_run_id, self.invocation = created.info.run_id, 1
            self._log(self.parent_run_id, params={"sweep": run.sweep, "version": run.version,
                                                  "spec_hash": run.spec_hash, "tasks": len(run.graph.tasks),
                                                  **run.params})
            self._log_datasets(self.parent_run_id, child_runs.sweep_datasets(run.graph))
        else:
            self.parent_run_id = found.info.run_id
            self.invocation = int(found.data.tags.get(INVOCATIONS_TAG, "1")) + 1
            self.client.update_run(self.parent_run_id, status="RUNNING")
        common = {k: v for k, v in self._common_tags.items() if k != GIT_COMMIT_TAG}   # `_credit_code` sets it
        for key, value in {**common, INVOCATIONS_TAG: str(self.invocation), **clean_tags(run.tags)}.items():
            self.client.set_tag(self.parent_run_id, key, value)
        if run.spec_text:
            self.client.log_text(self.parent_run_id, redact(run.spec_text), "spec.yaml")
        if not self.per_task:
            self._groups = {kind: GroupRun(kind, self._group_run(kind, n)) for kind, n in run.graph.counts().items()}
        return self.parent_run_id

    def tasks_ended(self, ended: Sequence) -> dict[str, str]:
        """Child runs of `ended` (`recording.EndedTask`s): task id -> run id of those logged (never raises).
        After `FAILURES_IN_A_ROW` child runs failed one after another (a full disk, a store gone), this
        invocation stops trying, with one warning: the results are in the Parquet tables."""
        if self.parent_run_id is None or not ended or self.stopped:
            return {}
        if not self._credited and any(e.status == vocab.DONE for e in ended):
            self._credit_code()
        if not self.per_task:
            return self._to_groups(ended)
        with _saying_store_errors():
            return self._log_children(ended)

    def _credit_code(self) -> None:
        """The first task this invocation computed names its code on the parent run: the commit and
        revision, and the revision appended to `mmc.git_revs` (its last `child_runs.MAX_TAG_VALUE` characters kept)."""
        self._credited, run = True, self._run
        rev = run.git_rev or "unknown"
        try:
            before = self.client.get_run(self.parent_run_id).data.tags.get(GIT_REVS_TAG, "")
            revs = [r for r in before.split(",") if r] if before else []
            if not revs or revs[-1] != rev:
                revs.append(rev)
            tags = clean_tags({GIT_COMMIT_TAG: run.git_commit, GIT_REV_TAG: rev,
                               GIT_REVS_TAG: ",".join(revs)[-child_runs.MAX_TAG_VALUE:].lstrip(",")})
            for key, value in tags.items():
                self.client.set_tag(self.parent_run_id, key, value)
        except Exception as exc:  # noqa: BLE001 - the tasks table's `git_rev` says it too
            warn(f"MLflow could not name this run's code on the sweep's run ({brief(exc)}); the `tasks` table's "
                 "`git_rev` says which revision computed each task")

    def _log_children(self, ended: Sequence) -> dict[str, str]:
        runs = []
        for e in ended:
            try:
                runs.append(child_runs.child_run(e, self._names.get(e.task.id, e.task.id), self.parent_run_id,
                                                 self._common_tags))
            except Exception as exc:  # noqa: BLE001 - tracking must never lose computed results
                warn(f"MLflow run of {e.task.id} not logged: {brief(exc)}")
        ids: dict[str, str] = {}
        if self.sql is not None:
            try:
                ids = self.sql.write(runs)
            except Exception as exc:  # noqa: BLE001 - fall back to one call per run, for good
                warn(f"batched MLflow logging failed ({brief(exc)}); "
                     "logging run by run from now on")
                self.sql = None
        for run in runs:
            if run.task_id not in ids and not self.stopped:
                try:
                    ids[run.task_id] = self._log_child(run)
                    self._failures_in_a_row = 0
                except Exception as exc:  # noqa: BLE001 - tracking must never lose computed results
                    self._failed(f"MLflow logging failed for {run.task_id}: {brief(exc)}")
        for run in runs:
            if run.error and run.task_id in ids:
                try:
                    self.client.log_text(ids[run.task_id], run.error, "error.txt")
                except Exception as exc:  # noqa: BLE001 - the run and its error tag are there already
                    warn(f"MLflow could not store error.txt of {run.task_id}: {brief(exc)}")
        return ids

    def _failed(self, message: str) -> None:
        self._failures_in_a_row += 1
        warn(message)
        if self._failures_in_a_row >= FAILURES_IN_A_ROW:
            self.stopped = True
            warn(f"MLflow logging stops for this run after {FAILURES_IN_A_ROW} failures in a row: the tasks that end "
                 "from now on get no child run (their results are in the Parquet tables); the sweep's run is still "
                 "closed at the end if MLflow allows")

    def finish(self, status: str, metrics: Mapping[str, Any] | None = None,
               artifacts: Iterable[str | Path] = (), tables: Mapping[str, Sequence[str | Path]] | None = None) -> None:
        """Log this invocation's metrics (step: the invocation) and `artifacts` (missing files skipped) on the
        parent run and close it with `status` (vocab.MLFLOW_STATUSES); failures are warnings. With group runs
        (`per_task` false) these are closed first, and `tables` (table -> its Parquet files) are logged
        under `tables/<table>/` of the parent run."""
        if status not in vocab.MLFLOW_STATUSES:
            raise ValueError(f"`status`: {status!r} is not allowed; allowed: {', '.join(vocab.MLFLOW_STATUSES)}")
        if self.parent_run_id is None:
            return
        with _saying_store_errors():
            self._finish(status, metrics, artifacts, tables)

    def _finish(self, status: str, metrics: Mapping[str, Any] | None, artifacts: Iterable[str | Path],
                tables: Mapping[str, Sequence[str | Path]] | None) -> None:
        self._finish_groups(status)
        try:
            self._log(self.parent_run_id, metrics=metrics, step=self.invocation)
            self.log_artifacts(artifacts)
            if not self.per_task:
                for table, files in (tables or {}).items():
                    self.log_artifacts(files, f"{TABLES_ARTIFACT_DIR}/{table}")
        except Exception as exc:  # noqa: BLE001 - the results are in Parquet and the report
            warn(f"MLflow could not store the sweep's report or metrics ({brief(exc)}); "
                 "the report and the Parquet tables are in the sweep directory")
        try:
            self.end_parent(status)
        except Exception as exc:  # noqa: BLE001
            warn(f"MLflow could not close the sweep's run ({brief(exc)}); "
                 "the results are in the Parquet tables")

    def log_artifacts(self, paths: Iterable[str | Path], directory: str | None = None) -> None:
        """Upload local files to the parent run, into `directory` (missing files are skipped)."""
        for path in paths:
            if Path(path).is_file():
                self.client.log_artifact(self.parent_run_id, str(path), directory)

    def end_parent(self, status: str) -> None:
        self.client.set_terminated(self.parent_run_id, status)

    def ui_command(self) -> str | None:
        return ui_command(self.tracking_uri)

    def browse_url(self) -> str | None:
        return browse_url(self.tracking_uri, self.experiment_id)

    # ---- internals -----------------------------------------------------------------------------
    def _group_run(self, kind: str, tasks: int) -> str:
        """The child run of `kind` under the parent: created, or continued on a rerun."""
        found = self.client.search_runs(
            [self.experiment_id], max_results=1,
            filter_string=f"tags.`{child_runs.PARENT_TAG}` = '{self.parent_run_id}' AND tags.`{GROUP_TAG}` = '{kind}'")
        if found:
            self.client.update_run(found[0].info.run_id, status="RUNNING")
            return found[0].info.run_id
        tags = {**self._common_tags, child_runs.PARENT_TAG: self.parent_run_id, GROUP_TAG: kind, "task_kind": kind,
                child_runs.USER_TAG: child_runs.user(),
                child_runs.NOTE_TAG: (f"The {tasks} `{kind}` tasks of the sweep, in one run: per invocation (step), "
                                      "their counts per status (`tasks_<status>`) and the mean of each number over "
                                      "the finished ones (`mean.<metric>`). Every task's own numbers are in the "
                                      f"result tables, logged on the parent run under `{TABLES_ARTIFACT_DIR}/`.")}
        run_id = self.client.create_run(self.experiment_id, run_name=f"{kind} ({tasks} tasks)",
                                        tags=clean_tags(tags)).info.run_id
        self._log(run_id, params={"kind": kind, "tasks": tasks})
        return run_id

    def _to_groups(self, ended: Sequence) -> dict[str, str]:
        ids = {}
        for e in ended:
            group = self._groups.get(e.task.kind)
            if group is not None:
                group.add(e)
                ids[e.task.id] = group.run_id
        return ids

    def _finish_groups(self, status: str) -> None:
        for group in self._groups.values():
            try:
                self._log(group.run_id, metrics=group.metrics(), step=self.invocation)
                if group.errors:
                    self.client.log_text(group.run_id, group.errors_text(), "errors.txt")
                self.client.set_terminated(group.run_id, group.status(status))
            except Exception as exc:  # noqa: BLE001 - the results are in the Parquet tables
                warn(f"MLflow could not close the run of the `{group.kind}` tasks ({brief(exc)})")

    def _experiment(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(
                    name, artifact_location=default_artifact_location(self.tracking_uri))
            except Exception:  # noqa: BLE001 - another process created it first
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
        # the experiment kind MLflow 3 shows (its UI reads the URL's workflowType first: `browse_url`)
        self.client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment_id

    def _sql_writer(self) -> tracking_sql.SqlRunWriter | None:
        store = tracking_sql.sql_store(self.client)
        if store is None:
            return None
        missing = tracking_sql.missing_internals(store)
        if missing:
            import mlflow

            warn(f"MLflow {mlflow.__version__} lacks {', '.join(missing)}: child runs are logged one by one "
                 "(slower)")
            return None
        return tracking_sql.SqlRunWriter(store, self.experiment_id)

    def _relocate_artifacts(self) -> None:
        """A SQLite store keeps its artifacts next to it, wherever the sweep directory is now."""
        location = default_artifact_location(self.tracking_uri)
        if location is None:
            return
        if self.sql is None:
            current = self.client.get_experiment(self.experiment_id).artifact_location
            if current != location:
                warn(f"the MLflow experiment's artifacts stay in {current} (this MLflow cannot re-point them "
                     f"to {location})")
            return
        old = self.sql.artifact_location()
        if old != location and (old.startswith("file:") or old.startswith("/")):
            self.sql.relocate_artifacts(location)

    def _parent_of(self, spec_hash: str):
        found = self.client.search_runs(
            [self.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=f"tags.`{SWEEP_ROLE_TAG}` = '{SWEEP_ROLE}' AND tags.`{SPEC_HASH_TAG}` = '{spec_hash}'")
        return found[0] if found else None

    def _log(self, run_id: str, params: Mapping[str, Any] | None = None,
             metrics: Mapping[str, Any] | None = None, step: int = 0) -> None:
        from mlflow.entities import Metric, Param

        now_ms = int(time.time() * 1000)
        param_list = [Param(k, v) for k, v in flatten_params(params or {}).items()]
        metric_list = [Metric(k, v, now_ms, step) for k, v, _ in child_runs.points(
            (k, v, step) for k, v in (metrics or {}).items())]
        for chunk in _chunks(param_list, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(metric_list, MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def _log_datasets(self, run_id: str, datasets: Sequence[child_runs.DatasetRef]) -> None:
        if not datasets:
            return
        from mlflow.entities import DatasetInput, InputTag

        self.client.log_inputs(run_id, datasets=[
            DatasetInput(d.entity(), tags=[InputTag(tracking_sql.DATASET_CONTEXT_TAG, child_runs.DATASET_CONTEXT)])
            for d in datasets])

    def _log_child(self, run: ChildRun) -> str:
        """One child run through the client (what `tracking_sql.SqlRunWriter.write` does for many at once)."""
        from mlflow.entities import Metric, Param

        tags = {k: v for k, v in run.tags.items() if k != child_runs.RUN_NAME_TAG}
        run_id = self.client.create_run(self.experiment_id, start_time=run.start_ms, tags=tags,
                                        run_name=run.name).info.run_id
        try:
            now_ms = int(time.time() * 1000)
            for chunk in _chunks([Param(k, v) for k, v in run.params.items()], MAX_PARAMS_PER_BATCH):
                self.client.log_batch(run_id, params=chunk)
            for chunk in _chunks([Metric(k, v, now_ms, s) for k, v, s in run.metrics], MAX_METRICS_PER_BATCH):
                self.client.log_batch(run_id, metrics=chunk)
            self._log_datasets(run_id, run.datasets)
        finally:
            self.client.set_terminated(run_id, run.status, end_time=run.end_ms)
        return run_id


def _parent_note(run: SweepRun) -> str:
    tasks = len(run.graph.tasks)
    children = ("one child run each that this version runs (open a child for its settings, metrics and curves; a "
                "task an earlier spec version finished keeps its child run under that version's run)" if per_task_runs(tasks)
                else f"one child run per task kind (more than {knobs.read(knobs.MLFLOW_TASK_RUNS)} tasks; every "
                     f"task's numbers are in the result tables under `{TABLES_ARTIFACT_DIR}/`)")
    return (f"Sweep `{run.sweep}`, spec version {run.version} (spec hash {run.spec_hash[:16]}): {tasks} tasks, "
            f"{children}. A rerun of the same spec continues this run; its metrics are per invocation "
            f"(step = invocation). {child_runs.PATH_NOTE}")
