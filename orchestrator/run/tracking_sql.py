"""MLflow's SQL store (SQLite, PostgreSQL, MySQL) written directly, for the two things its client cannot do
well: many child runs in one transaction (`SqlRunWriter.write`: ~1 ms of CPU per run instead of ~25-40 ms
through one client call per run, table and step), and the experiment's artifact location re-pointed to
where the sweep directory is now (`SqlRunWriter.relocate_artifacts`: MLflow stores it as an absolute path).

The rows are the ones MLflow's client leaves for the same `child_runs.ChildRun` (runs, tags, params, metrics,
latest metrics, dataset inputs; a test compares the two), inserted with SQLAlchemy's executemany through
MLflow's own table models. These are MLflow internals, not its API: `missing_internals` names what an MLflow
lacks of them; `tests/orchestrator/run/test_tracking.py` calls it so that an MLflow that changed them fails loudly,
and at run time the tracker then logs run by run (and says so) instead.
"""
from __future__ import annotations

import inspect
import time
import uuid

from orchestrator.run.child_runs import DATASET_CONTEXT, ChildRun, DatasetRef

MODELS = ("SqlExperiment", "SqlRun", "SqlTag", "SqlParam", "SqlMetric", "SqlLatestMetric", "SqlDataset",
          "SqlInput", "SqlInputTag")
STORE_METHODS = ("ManagedSessionMaker", "sanitize_metric_value")
DATASET_CONTEXT_TAG = "mlflow.data.context"


def sql_store(client):
    """The client's store if it is MLflow's SQL store, else None (a tracking server over HTTP)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = client._tracking_client.store
    return store if isinstance(store, SqlAlchemyStore) else None


def missing_internals(store) -> list[str]:
    """The MLflow internals the writer uses that `store` (a SQL store) or this MLflow lacks; [] if none."""
    missing = [f"SqlAlchemyStore.{name}" for name in STORE_METHODS if not hasattr(store, name)]
    try:
        from mlflow.store.tracking.dbmodels import models
    except ImportError:
        return [*missing, "mlflow.store.tracking.dbmodels.models"]
    missing += [f"dbmodels.models.{name}" for name in MODELS if not hasattr(models, name)]
    try:
        from mlflow.utils.uri import append_to_uri_path  # noqa: F401
    except ImportError:
        missing.append("mlflow.utils.uri.append_to_uri_path")
    return missing


def forget_artifact_repos(location: str) -> None:
    """Drop the artifact repositories MLflow's client cached (per run id, for the process) under `location`,
    so that this process too logs into the relocated place."""
    try:
        from mlflow.tracking._tracking_service import utils
        cache = utils._artifact_repos_cache
        for run_id, repo in list(cache.items()):
            if str(getattr(repo, "artifact_uri", "")).startswith(location):
                cache.pop(run_id, None)
    except (ImportError, AttributeError):
        pass   # an MLflow without that cache: nothing cached to forget


def _takes_read_only(session_maker) -> bool:
    try:
        return "read_only" in inspect.signature(session_maker).parameters
    except (TypeError, ValueError):
        return False


class SqlRunWriter:
    """Writes child runs of one experiment straight into MLflow's SQL store."""

    def __init__(self, store, experiment_id: str):
        from mlflow.store.tracking.dbmodels import models

        self.store, self.models, self.experiment_id = store, models, int(experiment_id)
        self._datasets: dict[tuple[str, str], str] = {}     # (name, digest) -> dataset uuid
        # MLflow >= 3.1x routes sessions not marked `read_only=False` to a read replica (where one is configured)
        self._write = {"read_only": False} if _takes_read_only(store.ManagedSessionMaker) else {}

    def _session(self):
        return self.store.ManagedSessionMaker(**self._write)

    def artifact_location(self) -> str:
        with self._session() as session:
            experiment = session.get(self.models.SqlExperiment, self.experiment_id)
            return experiment.artifact_location

    def relocate_artifacts(self, location: str) -> str | None:
        """Point the experiment and its runs at `location`; returns the old location (None: unchanged)."""
        from sqlalchemy import func, update

        m = self.models
        with self._session() as session:
            experiment = session.get(m.SqlExperiment, self.experiment_id)
            old = experiment.artifact_location
            if old == location:
                return None
            experiment.artifact_location = location
            # each run's artifact URI is `<old>/<run id>/artifacts`: swap the prefix
            session.execute(update(m.SqlRun)
                            .where(m.SqlRun.experiment_id == self.experiment_id,
                                   func.substr(m.SqlRun.artifact_uri, 1, len(old)) == old)
                            .values(artifact_uri=location + func.substr(m.SqlRun.artifact_uri, len(old) + 1)),
                            execution_options={"synchronize_session": False})
        forget_artifact_repos(old)
        return old

    def write(self, runs: list[ChildRun]) -> dict[str, str]:
        """Insert the runs (one transaction); returns task id -> run id."""
        from mlflow.utils.uri import append_to_uri_path
        from sqlalchemy import insert

        m = self.models
        location = self.artifact_location()
        rows: dict[str, list] = {"runs": [], "tags": [], "params": [], "metrics": [], "latest": [], "inputs": [],
                                 "input_tags": []}
        ids: dict[str, str] = {}
        now_ms = int(time.time() * 1000)
        with self._session() as session:
            datasets = self._dataset_ids(session, {d for run in runs for d in run.datasets})
            for run in runs:
                run_id = uuid.uuid4().hex
                ids[run.task_id] = run_id
                rows["runs"].append({
                    "run_uuid": run_id, "name": run.name, "experiment_id": self.experiment_id,
                    "artifact_uri": append_to_uri_path(location, run_id, "artifacts"),
                    "source_type": "UNKNOWN", "source_name": "", "entry_point_name": "",
                    "user_id": run.tags.get("mlflow.user", "unknown"), "status": run.status,
                    "start_time": run.start_ms, "end_time": run.end_ms, "deleted_time": None, "source_version": "",
                    "lifecycle_stage": "active"})
                rows["tags"] += [{"run_uuid": run_id, "key": k, "value": v} for k, v in run.tags.items()]
                rows["params"] += [{"run_uuid": run_id, "key": k, "value": v} for k, v in run.params.items()]
                latest: dict[str, dict] = {}
                for key, value, step in run.metrics:
                    is_nan, value = self.store.sanitize_metric_value(value)
                    row = {"run_uuid": run_id, "key": key, "value": value, "timestamp": now_ms, "step": step,
                           "is_nan": is_nan}
                    rows["metrics"].append(row)
                    if key not in latest or (step, value) > (latest[key]["step"], latest[key]["value"]):
                        latest[key] = row
                rows["latest"] += list(latest.values())
                for dataset in run.datasets:
                    input_id = uuid.uuid4().hex
                    rows["inputs"].append({"input_uuid": input_id, "source_type": "DATASET",
                                           "source_id": datasets[dataset.name, dataset.digest],
                                           "destination_type": "RUN", "destination_id": run_id, "step": 0})
                    rows["input_tags"].append({"input_uuid": input_id, "name": DATASET_CONTEXT_TAG,
                                               "value": DATASET_CONTEXT})
            for model, name in ((m.SqlRun, "runs"), (m.SqlTag, "tags"), (m.SqlParam, "params"),
                                (m.SqlMetric, "metrics"), (m.SqlLatestMetric, "latest"), (m.SqlInput, "inputs"),
                                (m.SqlInputTag, "input_tags")):
                if rows[name]:
                    session.execute(insert(model), rows[name])
        return ids

    def _dataset_ids(self, session, datasets: set[DatasetRef]) -> dict[tuple[str, str], str]:
        """(name, digest) -> the experiment's dataset uuid, creating the datasets not stored yet."""
        from sqlalchemy import insert, select

        m = self.models
        wanted = {(d.name, d.digest): d for d in datasets if (d.name, d.digest) not in self._datasets}
        if wanted:
            found = session.execute(select(m.SqlDataset.name, m.SqlDataset.digest, m.SqlDataset.dataset_uuid)
                                    .where(m.SqlDataset.experiment_id == self.experiment_id,
                                           m.SqlDataset.name.in_([k[0] for k in wanted])))
            for name, digest, dataset_id in found:
                self._datasets[name, digest] = dataset_id
            new = [d for key, d in wanted.items() if key not in self._datasets]
            for d in new:
                self._datasets[d.name, d.digest] = uuid.uuid4().hex
            if new:
                session.execute(insert(m.SqlDataset), [
                    {"dataset_uuid": self._datasets[d.name, d.digest], "experiment_id": self.experiment_id,
                     "name": d.name, "digest": d.digest, "dataset_source_type": d.SOURCE_TYPE,
                     "dataset_source": d.source, "dataset_schema": None, "dataset_profile": d.profile}
                    for d in new])
        return self._datasets
