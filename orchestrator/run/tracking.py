"""MLflow tracking: one experiment per sweep, one parent run per invocation, one child run per task.

Runs are created with explicit ids (no global active run), parameters and metrics go in batches,
keys that may hold credentials are never logged, and URIs are redacted in every tag and message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator import vocab
from orchestrator.uris import redact

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
SECRET_WORDS = ("token", "secret", "password", "credential")
MAX_PARAM_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


def is_secret(key: str) -> bool:
    """Keys that may hold credentials are never logged."""
    low = key.lower()
    return any(word in low for word in SECRET_WORDS)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> dotted keys; values as strings (lists as JSON), truncated to MLflow's limits.
    Secret-looking keys are dropped; credentials in URIs are redacted."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        full = f"{prefix}{key}"
        if is_secret(full):
            continue
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{full}."))
            continue
        if isinstance(value, (list, tuple)):
            text = json.dumps(list(value), default=str)
        else:
            text = "None" if value is None else str(value)
        flat[full[:MAX_PARAM_KEY]] = redact(text)[:MAX_PARAM_VALUE]
    return flat


def metric_value(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a local SQLite store, keep artifacts next to the database (not in the CWD)."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        db = Path(tracking_uri[len(prefix):])
        return (db.parent / "mlflow-artifacts").absolute().as_uri()
    return None


class MlflowSink:
    """One parent run per invocation, one child run per task; explicit run ids throughout (no
    global active run), so it may be used from several threads at once."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None = None):
        from mlflow import MlflowClient  # imported lazily: mlflow is slow to import

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            location = artifact_location or default_artifact_location(tracking_uri)
            try:
                self.experiment_id = self.client.create_experiment(experiment_name,
                                                                   artifact_location=location)
            except Exception:  # noqa: BLE001 - another process created it first
                experiment = self.client.get_experiment_by_name(experiment_name)
                if experiment is None:
                    raise
                self.experiment_id = experiment.experiment_id
        else:
            self.experiment_id = experiment.experiment_id
        # MLflow 3 opens experiments without this tag on its GenAI overview ("0 traces"); a sweep is
        # classic model development: show its runs table.
        self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)

    # -- internals -------------------------------------------------------------------------------
    def _create_run(self, run_name: str, tags: Mapping[str, Any]) -> str:
        clean = {k: redact(str(v))[:MAX_TAG_VALUE] for k, v in tags.items()
                 if v is not None and not is_secret(k)}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=clean)
        return run.info.run_id

    def _log(self, run_id: str, params: Mapping[str, Any] | None = None,
             metrics: Mapping[str, Any] | None = None,
             curves: Sequence[tuple[str, int, float]] = ()) -> None:
        from mlflow.entities import Metric, Param

        now_ms = int(time.time() * 1000)
        param_list = [Param(k, v) for k, v in flatten_params(params or {}).items()]
        metric_list = []
        for key, value in (metrics or {}).items():
            v = metric_value(value)
            if v is not None and not is_secret(key):
                metric_list.append(Metric(key, v, now_ms, 0))
        for key, step, value in curves:
            v = metric_value(value)
            if v is not None and not is_secret(key):
                metric_list.append(Metric(key, v, now_ms, int(step)))
        for chunk in _chunks(param_list, MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(metric_list, MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def log_artifacts(self, run_id: str, artifacts: Iterable[str | Path]) -> None:
        """Upload local files to a run (missing files are skipped)."""
        for path in artifacts:
            if Path(path).is_file():
                self.client.log_artifact(run_id, str(path))

    # -- public ----------------------------------------------------------------------------------
    def start_parent(self, params: Mapping[str, Any] | None = None,
                     tags: Mapping[str, Any] | None = None, run_name: str | None = None) -> str:
        """Create the invocation's parent run; returns its run id."""
        run_id = self._create_run(run_name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}", tags or {})
        self._log(run_id, params=params)
        return run_id

    def log_task(self, parent_run_id: str, task_kind: str, task_id: str,
                 params: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
                 curves: Sequence[tuple[str, int, float]] = (),
                 artifacts: Sequence[str | Path] = (), status: str = vocab.MLFLOW_FINISHED,
                 error: str | None = None) -> str:
        """One finished (or failed) task as a child run of `parent_run_id`; returns its run id."""
        if status not in vocab.MLFLOW_STATUSES:
            raise ValueError(f"`status`: {status!r} is not allowed; allowed: {', '.join(vocab.MLFLOW_STATUSES)}")
        tags = {"mlflow.parentRunId": parent_run_id, "task_kind": task_kind, "task_id": task_id}
        if error:
            tags["error"] = error
        run_id = self._create_run(task_id, tags)
        try:
            self._log(run_id, params=params, metrics=metrics, curves=curves)
            self.log_artifacts(run_id, artifacts)
            if error:
                self.client.log_text(run_id, redact(error), "error.txt")
        finally:
            self.client.set_terminated(run_id, status)
        return run_id

    def finish_parent(self, run_id: str, status: str = vocab.MLFLOW_FINISHED,
                      metrics: Mapping[str, Any] | None = None,
                      artifacts: Sequence[str | Path] = ()) -> None:
        """Log the invocation's summary metrics and artifacts (e.g. report figures) and close it."""
        if status not in vocab.MLFLOW_STATUSES:
            raise ValueError(f"`status`: {status!r} is not allowed; allowed: {', '.join(vocab.MLFLOW_STATUSES)}")
        try:
            self._log(run_id, metrics=metrics)
            self.log_artifacts(run_id, artifacts)
        finally:
            self.client.set_terminated(run_id, status)

