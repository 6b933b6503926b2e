"""What a task's MLflow child run holds, decided once for every way of writing it (`ChildRun`).

- **Name**: what the task is (`run_names`): `pretrain cue p=0.8 seed 0`, `finetune cbft seed 0`,
  `midpoint cue~nocue seed 1`, `path linear cue~nocue seed 1`, `align activation cue~cue seed 0`; where
  two tasks of a graph would share a name, the labels that tell them apart are added (`model=`,
  `variant=`, ...), and where nothing else does, the start of the task id (`#8a1b2c`) to all but the first. The task id is the
  `task_id` tag, the kind the `task_kind` tag.
- **Params**: the task's labels and settings (nested keys dotted), its resources.
- **Metrics**: its numbers at step 0 (`eval.<set>.acc`, `barrier.<set>.loss.chord`, `duration_s`) and its
  curves as step series: training curves per epoch (`train_loss`, `train_acc`, `llrt_loss`, ...), path
  curves per α at step round(`ALPHA_STEPS`·α) (`path.<set>.loss`, `.acc`, `.agree_a`, `.agree_b`): the
  charts' x-axis is α·1000 (the run's description says so).
- **Inputs**: the datasets a training task learns from (`dataset_inputs`), as MLflow datasets.
- Keys that may hold credentials are never logged; values are redacted and cut to MLflow's limits.
"""
from __future__ import annotations

import functools
import getpass
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator import vocab
from orchestrator.graph.dag import Graph, Task
from orchestrator.uris import redact

SECRET_WORDS = ("token", "secret", "password", "credential")
MAX_PARAM_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
ALPHA_STEPS = 1000          # a path curve's point at α is logged at step round(ALPHA_STEPS * α)
PATH_NOTE = (f"Path curves (`path.<eval set>.<metric>`) are logged against α: step = round({ALPHA_STEPS}·α), "
             f"so step 0 is model A, step {ALPHA_STEPS // 2} the middle of the path, step {ALPHA_STEPS} model B. "
             "Barriers are the `barrier.<eval set>.<metric>.<definition>` metrics.")
RESTARTS_TAG = "restarts"   # on a task started again after its trial crashed: how many times (MMC_TASK_RESTARTS)
DATASET_CONTEXT = "training"  # the `mlflow.data.context` of a training task's datasets

NOTE_TAG, USER_TAG, RUN_NAME_TAG = "mlflow.note.content", "mlflow.user", "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"


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


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as MLflow stores them: no None values, no secret keys, redacted, cut to MLflow's limit."""
    return {k: redact(str(v))[:MAX_TAG_VALUE] for k, v in tags.items() if v is not None and not is_secret(k)}


def metric_value(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def user() -> str:
    """The user name MLflow's client would record (`mlflow.user`)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment (some containers)
        return "unknown"


# ---------------------------------------------------------------------------------------------- names

def _cue(p) -> str:
    return "nocue" if not p else f"cue p={p:g}"


def base_name(task: Task) -> str:
    """What the task is, in a few words (before telling apart tasks that share them)."""
    lab = task.labels
    seed = f"seed {lab.get('seed')}"
    if task.kind == vocab.PRETRAIN:
        return f"pretrain {_cue(lab.get('cue_proportion'))} {seed}"
    if task.kind == vocab.FINETUNE:
        return f"finetune {lab.get('method')} {_cue(lab.get('cue_proportion'))} {seed}"
    if task.kind == vocab.MIDPOINT:
        return f"midpoint {lab.get('pair_type')} {seed}"
    if task.kind == vocab.ALIGN:
        return f"align {lab.get('alignment')} {lab.get('pair_type')} {seed}"
    if task.kind == vocab.PATH_EVAL:
        kind = lab.get("path_kind")
        if kind == vocab.ALIGNED and lab.get("alignment"):
            kind = f"{kind} {lab['alignment']}"
        return f"path {kind} {lab.get('pair_type')} {seed}"
    return f"{task.kind} {seed}"


# labels that may tell apart two tasks of the same base name, in the order they are added
_DISTINGUISHING = ("variant", "dataset", "model", "cue_proportion", "method", "data_seed", "data_seed_b")


def run_names(graph: Graph) -> dict[str, str]:
    """task id -> its run name; unique within the graph. Tasks sharing a base name get the labels that tell
    them apart; those still alike (e.g. a pair's second model of the same cue and seed) keep the name for the
    first in the graph's order and add the start of their task id after it."""
    groups: dict[str, list[Task]] = defaultdict(list)
    for task in graph.tasks.values():
        groups[base_name(task)].append(task)
    names: dict[str, str] = {}
    for base, tasks in groups.items():
        differing = [k for k in _DISTINGUISHING
                     if len({json.dumps(t.labels.get(k), default=str) for t in tasks}) > 1]
        taken: set[str] = set()
        for task in tasks:
            name = " ".join([base, *(f"{k}={task.labels.get(k)}" for k in differing)])
            names[task.id] = name if name not in taken else f"{name} #{task.id.rsplit('-', 1)[-1][:6]}"
            taken.add(name)
    return names


# ---------------------------------------------------------------------------------------------- datasets

@dataclass(frozen=True)
class DatasetRef:
    """An MLflow dataset (metadata only: nothing is read or copied) by name and digest."""

    name: str
    digest: str
    source: str      # JSON: the dataset and its data settings (no paths: where is not what)
    profile: str     # JSON

    SOURCE_TYPE = "code"

    def entity(self):
        from mlflow.entities import Dataset

        return Dataset(name=self.name, digest=self.digest, source_type=self.SOURCE_TYPE, source=self.source,
                       profile=self.profile)


def dataset_inputs(task: Task) -> tuple[DatasetRef, ...]:
    """The datasets a training task learns from (a midpoint: both endpoints'); none for other kinds."""
    if task.kind not in (vocab.PRETRAIN, vocab.FINETUNE, vocab.MIDPOINT):
        return ()
    configs = task.config.get("data")
    configs = configs if isinstance(configs, list) else [configs]
    out = []
    for config in configs:
        if not isinstance(config, Mapping):
            continue
        what = {"dataset": task.labels.get("dataset"), **{k: v for k, v in config.items() if k != "root"}}
        text = json.dumps(what, sort_keys=True, default=str)
        name = f"{what['dataset']} {_cue(config.get('cue_proportion'))}"
        out.append(DatasetRef(name=name, digest=hashlib.sha256(text.encode()).hexdigest()[:16],
                              source=redact(text), profile=json.dumps({"cue_proportion": config.get("cue_proportion")})))
    return tuple(dict.fromkeys(out))


def sweep_datasets(graph: Graph) -> tuple[DatasetRef, ...]:
    """Every dataset the graph's training tasks learn from, once each."""
    return tuple(dict.fromkeys(d for task in graph.tasks.values() for d in dataset_inputs(task)))


# ---------------------------------------------------------------------------------------------- child runs

@dataclass(frozen=True)
class ChildRun:
    """One task's child run, exactly as it is stored (every rule above applied)."""

    task_id: str
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: tuple[tuple[str, float, int], ...]     # (key, value, step); no repeats
    status: str                                     # vocab.MLFLOW_STATUSES
    start_ms: int
    end_ms: int
    error: str | None                               # stored as error.txt too
    datasets: tuple[DatasetRef, ...]


def child_run(ended, name: str, parent_run_id: str, common_tags: Mapping[str, Any] = ()) -> ChildRun:
    """The child run of `ended` (an `orchestrator.run.recording.EndedTask`) under `parent_run_id`."""
    task: Task = ended.task
    status = vocab.STATUS_IN_MLFLOW[ended.status]
    error = redact(ended.error) if ended.error else None
    tags = {**dict(common_tags), PARENT_TAG: parent_run_id, RUN_NAME_TAG: name, "task_kind": task.kind,
            "task_id": task.id, "error": error, USER_TAG: user(),
            NOTE_TAG: PATH_NOTE if task.kind == vocab.PATH_EVAL else None,
            RESTARTS_TAG: str(ended.restarts) if getattr(ended, "restarts", 0) else None}
    params = {"kind": task.kind, "task_id": task.id, **{k: v for k, v in task.labels.items() if v is not None},
              **{k: v for k, v in task.settings.items() if v is not None},
              "resources": {"cpus": task.resources.cpus, "gpus": task.resources.gpus,
                            "workers": task.resources.workers}}
    metrics = dict(ended.metrics)
    if ended.duration_s is not None:
        metrics["duration_s"] = ended.duration_s
    start = ended.started_at or ended.ended_at
    return ChildRun(task.id, name, clean_tags(tags), flatten_params(params),
                    points([(k, v, 0) for k, v in metrics.items()] + [(k, v, int(s)) for k, s, v in ended.steps]),
                    status, int(start * 1000), int(ended.ended_at * 1000), error,
                    () if ended.status == vocab.SKIPPED else dataset_inputs(task))


def points(points: Iterable[tuple[str, Any, int]]) -> tuple[tuple[str, float, int], ...]:
    out, seen = [], set()
    for key, value, step in points:
        v = metric_value(value)
        if v is None or is_secret(key):
            continue
        point = (key, step, "nan" if math.isnan(v) else v)
        if point not in seen:
            seen.add(point)
            out.append((key, v, step))
    return tuple(out)
