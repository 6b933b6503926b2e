"""The YAML sweep spec: load, validate (every problem at once), resolve defaults.

A spec names the axes of a sweep (models, seeds, cue proportions), the settings of each task kind
(their sections mirror the `tasks/` settings dataclasses field for field, defaults included) and
where and how it runs (storage, resources, MLflow). `load_spec(None)` is the built-in default
sweep, `orchestrator/sweeps/default.yaml`, which lists every key.

Validation collects every problem into one `SpecError`; each message names the field in
backticks, the bad value and what is allowed. Cross-field rules live in `cross_problems`.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import json
import os
import re
import types
import typing
from functools import cache
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter,
                      ValidationError, model_validator)

DEFAULT_SPEC_RESOURCE = "sweeps/default.yaml"   # package data of `orchestrator`


# ----- names and defaults, taken from `tasks/` when importable (one source of truth) -----

def _tasks_names(module: str, attr: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
    """Names of a `tasks/` registry (dict keys or tuple), or `fallback` while it is not importable."""
    try:
        registry = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return fallback
    return tuple(registry)


def _tasks_defaults(module: str, cls: str, fallback: dict[str, Any]) -> dict[str, Any]:
    """Field defaults of a `tasks/` settings dataclass, or `fallback` while it is not importable."""
    try:
        settings = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return dict(fallback)
    found = {f.name: f.default for f in dataclasses.fields(settings)
             if f.default is not dataclasses.MISSING}
    return {**fallback, **found}


def _dataset_facts() -> dict[str, tuple[tuple[str, ...], bool]]:
    """Per dataset: (allowed cues, the first being its default; whether it needs `data.root`)."""
    try:
        from tasks.data import DATASETS as infos
    except ImportError:
        return {"digits": (("box",), False), "cifar10": (("box",), True), "cifar100": (("box",), True),
                "fashion_mnist": (("box",), True), "dominoes": (("dominoes",), True)}
    return {name: (tuple(info.cues), bool(info.needs_root)) for name, info in infos.items()}


DATASET_CUES = {name: cues for name, (cues, _) in _dataset_facts().items()}
DATASETS = tuple(DATASET_CUES)
BUILTIN_DATASETS = tuple(name for name, (_, needs_root) in _dataset_facts().items() if not needs_root)
CUES = _tasks_names("tasks.data", "CUES", ("box", "dominoes"))
MODELS = _tasks_names("tasks.models", "MODELS", ("small_cnn", "vgg13", "resnet18"))
FINETUNE_METHODS = _tasks_names("tasks.finetune", "FINETUNE_METHODS", ("naive", "llrt", "lpft", "cbft"))
ALIGNMENTS = _tasks_names("tasks.align", "ALIGNMENTS", ("activation", "weight"))
SCHEDULES = _tasks_names("tasks.train", "SCHEDULES", ("step", "cosine", "constant"))
MIDPOINT_INITS = _tasks_names("tasks.paths", "MIDPOINT_INITS", ("fresh", "linear"))
PRECISIONS = _tasks_names("tasks.evaluate", "PRECISIONS", ("auto", "fp32", "bf16"))
PATH_KINDS = ("linear", "quadratic", "aligned")
PAIRS = ("cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft")
RESOURCE_KINDS = ("pretrain", "finetune", "midpoint", "align", "path_eval")   # = graph.TASK_KINDS
TRAINING_KINDS = ("pretrain", "finetune", "midpoint")   # may use several workers; resume after every epoch
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")

DATA_DEFAULTS = _tasks_defaults("tasks.data", "DataSettings", dict(
    dataset="digits", cue="box", cue_proportion=0.0, seed=0, root=None))
OPTIM_DEFAULTS = _tasks_defaults("tasks.train", "OptimSettings", dict(
    epochs=20, lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=128, schedule="step",
    step_epochs=40, gamma=0.1))
MIDPOINT_DEFAULTS = _tasks_defaults("tasks.paths", "MidpointSettings", dict(
    OPTIM_DEFAULTS, epochs=15, lr=0.1, step_epochs=10, init="fresh"))
PATH_DEFAULTS = _tasks_defaults("tasks.paths", "PathSettings", dict(
    num_alphas=11, bn_reset_samples=1000, eval_batch_size=1024, precision="auto"))
FINETUNE_DEFAULTS = _tasks_defaults("tasks.finetune", "FinetuneSettings", dict(
    clean_subset=200, epochs=20, lr=0.01, batch_size=64, weight_decay=1e-4, momentum=0.9,
    llrt_epochs=100, llrt_lr=1.0, margin=1.0, lam=1.0, warmup_epochs=1))

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class SpecError(ValueError):
    """Every problem found in a sweep spec; `str()` lists them one per line."""

    def __init__(self, problems: list[str], source: str = "<spec>"):
        super().__init__(list(problems), source)
        self.problems = list(problems)
        self.source = source

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''} in the sweep spec:"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


# ----- value checks used as pydantic validators (messages without the field; it is added) -----

def _one_of(kind: str, allowed: tuple[str, ...]):
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not a known {kind}; allowed: {', '.join(allowed)}")
        return value
    return check


def _unique(what: str):
    def check(values: list) -> list:
        seen, dups = set(), []
        for v in values:
            key = _hashable(v)
            if key in seen and v not in dups:
                dups.append(v)
            seen.add(key)
        if dups:
            raise ValueError(f"{_show(values)} repeats {', '.join(_show(d) for d in dups)}; "
                             f"list each {what} once")
        return values
    return check


def _check_sweep_name(value: str) -> str:
    if not _SWEEP_NAME.match(value) or ".." in value:
        raise ValueError(f"{value!r} is not allowed; use 1-100 letters, digits, '-', '_' or '.', "
                         f"starting with a letter or digit, without '..' or path separators")
    return value


def _check_storage(value: str) -> str:
    match = _SCHEME.match(value)
    if match:
        if match.group(1).lower() not in STORAGE_SCHEMES:
            raise ValueError(f"{value!r} has an unknown URI scheme {match.group(1)!r}; allowed: a "
                             f"local path or {', '.join(s + '://' for s in STORAGE_SCHEMES)}")
        if not value[match.end():].strip("/"):
            raise ValueError(f"{value!r} names no location after the scheme")
    elif not value.strip():
        raise ValueError("'' is not allowed; give a local directory or a URI such as s3://bucket/runs")
    return value


def _check_root(value: str | None) -> str | None:
    """An existing local directory (returned absolute) or a URI; None passes."""
    if value is None or _SCHEME.match(value):
        return value
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError(f"{value!r} is not an existing directory; download a dataset with "
                         f"`mmc-sweep data download NAME --root {value}`")
    return str(path.resolve())


def _check_gpus(value: float) -> float:
    if value > 1 and value != int(value):
        raise ValueError(f"{value!r} is not allowed; use a fraction below 1 or a whole number of GPUs")
    return value


def _model_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


# ----- the spec sections -----

class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


Dataset = Annotated[str, AfterValidator(_one_of("dataset", DATASETS))]
Cue = Annotated[str, AfterValidator(_one_of("cue", CUES))]
ModelName = Annotated[str, AfterValidator(_one_of("model", MODELS))]
Method = Annotated[str, AfterValidator(_one_of("fine-tuning method", FINETUNE_METHODS))]
Alignment = Annotated[str, AfterValidator(_one_of("alignment", ALIGNMENTS))]
PathKind = Annotated[str, AfterValidator(_one_of("path kind", PATH_KINDS))]
Precision = Annotated[str, AfterValidator(_one_of("precision", PRECISIONS))]
Pair = Annotated[str, AfterValidator(_one_of("pair", PAIRS))]
Schedule = Annotated[str, AfterValidator(_one_of("schedule", SCHEDULES))]
MidpointInit = Annotated[str, AfterValidator(_one_of("midpoint init", MIDPOINT_INITS))]
Seed = Annotated[int, Field(ge=0)]
Proportion = Annotated[float, Field(ge=0.0, le=1.0)]


class DataSection(_Section):
    """`tasks.data.DataSettings` without the swept fields (`cue_proportion`, `seed`)."""
    dataset: Dataset = DATA_DEFAULTS["dataset"]
    cue: Cue | None = None   # None: the dataset's own cue ("box"; "dominoes" for dominoes)
    root: Annotated[str | None, AfterValidator(_check_root)] = DATA_DEFAULTS["root"]

    @model_validator(mode="before")
    @classmethod
    def _resolve_cue(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("cue") is None:
            cues = DATASET_CUES.get(data.get("dataset", DATA_DEFAULTS["dataset"]), (DATA_DEFAULTS["cue"],))
            data = {**data, "cue": cues[0]}
        return data


class ModelSection(_Section):
    name: ModelName
    width: Annotated[int, Field(ge=1)] | None = None   # None: the model's own default width

    @property
    def label(self) -> str:
        return self.name if self.width is None else f"{self.name}-w{self.width}"


ModelEntry = Annotated[ModelSection, BeforeValidator(_model_shorthand, json_schema_input_type=Union[str, ModelSection])]


class OptimSection(_Section):
    """`tasks.train.OptimSettings`, for `pretrain`."""
    epochs: Annotated[int, Field(ge=1)] = OPTIM_DEFAULTS["epochs"]
    lr: Annotated[float, Field(gt=0)] = OPTIM_DEFAULTS["lr"]
    momentum: Annotated[float, Field(ge=0, lt=1)] = OPTIM_DEFAULTS["momentum"]
    weight_decay: Annotated[float, Field(ge=0)] = OPTIM_DEFAULTS["weight_decay"]
    batch_size: Annotated[int, Field(ge=1)] = OPTIM_DEFAULTS["batch_size"]
    schedule: Schedule = OPTIM_DEFAULTS["schedule"]
    step_epochs: Annotated[int, Field(ge=1)] = OPTIM_DEFAULTS["step_epochs"]
    gamma: Annotated[float, Field(gt=0, le=1)] = OPTIM_DEFAULTS["gamma"]


class MidpointSection(_Section):
    """`tasks.paths.MidpointSettings`: training of the quadratic path's control point."""
    epochs: Annotated[int, Field(ge=1)] = MIDPOINT_DEFAULTS["epochs"]
    lr: Annotated[float, Field(gt=0)] = MIDPOINT_DEFAULTS["lr"]
    momentum: Annotated[float, Field(ge=0, lt=1)] = MIDPOINT_DEFAULTS["momentum"]
    weight_decay: Annotated[float, Field(ge=0)] = MIDPOINT_DEFAULTS["weight_decay"]
    batch_size: Annotated[int, Field(ge=1)] = MIDPOINT_DEFAULTS["batch_size"]
    schedule: Schedule = MIDPOINT_DEFAULTS["schedule"]
    step_epochs: Annotated[int, Field(ge=1)] = MIDPOINT_DEFAULTS["step_epochs"]
    gamma: Annotated[float, Field(gt=0, le=1)] = MIDPOINT_DEFAULTS["gamma"]
    init: MidpointInit = MIDPOINT_DEFAULTS["init"]


class FinetuneSection(_Section):
    """`methods` to apply to every cue model + `tasks.finetune.FinetuneSettings`."""
    methods: Annotated[list[Method], AfterValidator(_unique("method"))] = list(FINETUNE_METHODS)
    clean_subset: Annotated[int, Field(ge=1)] = FINETUNE_DEFAULTS["clean_subset"]   # samples
    epochs: Annotated[int, Field(ge=1)] = FINETUNE_DEFAULTS["epochs"]
    lr: Annotated[float, Field(gt=0)] = FINETUNE_DEFAULTS["lr"]
    batch_size: Annotated[int, Field(ge=1)] = FINETUNE_DEFAULTS["batch_size"]
    weight_decay: Annotated[float, Field(ge=0)] = FINETUNE_DEFAULTS["weight_decay"]
    momentum: Annotated[float, Field(ge=0, lt=1)] = FINETUNE_DEFAULTS["momentum"]
    schedule: Schedule = FINETUNE_DEFAULTS["schedule"]
    llrt_epochs: Annotated[int, Field(ge=1)] = FINETUNE_DEFAULTS["llrt_epochs"]
    llrt_lr: Annotated[float, Field(gt=0)] = FINETUNE_DEFAULTS["llrt_lr"]
    margin: Annotated[float, Field(ge=0)] = FINETUNE_DEFAULTS["margin"]        # CBFT barrier margin
    lam: Annotated[float, Field(ge=0)] = FINETUNE_DEFAULTS["lam"]              # CBFT invariance weight
    warmup_epochs: Annotated[int, Field(ge=0)] = FINETUNE_DEFAULTS["warmup_epochs"]
    cue_batch_size: Annotated[int, Field(ge=1)] | None = FINETUNE_DEFAULTS["cue_batch_size"]  # None: batch_size


class AlignSection(_Section):
    samples: Annotated[int, Field(ge=1)] = 500   # training images used to match activations


class PathsSection(_Section):
    """Which pairs and paths to evaluate + `tasks.paths.PathSettings`."""
    pairs: Annotated[list[Pair], AfterValidator(_unique("pair"))] = list(PAIRS)
    kinds: Annotated[list[PathKind], AfterValidator(_unique("path kind"))] = list(PATH_KINDS)
    alignments: Annotated[list[Alignment], AfterValidator(_unique("alignment"))] = list(ALIGNMENTS)
    num_alphas: Annotated[int, Field(ge=2)] = PATH_DEFAULTS["num_alphas"]
    bn_reset_samples: Annotated[int, Field(ge=1)] = PATH_DEFAULTS["bn_reset_samples"]
    eval_batch_size: Annotated[int, Field(ge=1)] = PATH_DEFAULTS["eval_batch_size"]
    precision: Precision = PATH_DEFAULTS["precision"]


RESERVED_RESOURCES = ("CPU", "GPU", "cpu", "gpu", "memory", "object_store_memory")


def _check_custom_name(name: str) -> str:
    if not name or name in RESERVED_RESOURCES:
        raise ValueError(f"{name!r} is not a custom resource name; use `cpus`/`gpus` for "
                         f"{'/'.join(RESERVED_RESOURCES[:4])}")
    return name


class ResourceSection(_Section):
    cpus: Annotated[float, Field(gt=0)] = 1.0          # per worker; may be fractional
    gpus: Annotated[float, Field(ge=0), AfterValidator(_check_gpus)] = 0.0   # per worker; < 1 shares a GPU
    workers: Annotated[int, Field(ge=1)] = 1           # > 1: data-parallel through Ray Train
    # per worker, extra Ray resources (e.g. {accelerator_type_a100: 0.01} or a node label resource)
    custom: dict[Annotated[str, AfterValidator(_check_custom_name)], Annotated[float, Field(ge=0)]] = {}


class ResourcesSection(_Section):
    pretrain: ResourceSection = ResourceSection()
    finetune: ResourceSection = ResourceSection()
    midpoint: ResourceSection = ResourceSection()
    align: ResourceSection = ResourceSection()
    path_eval: ResourceSection = ResourceSection()


class MlflowSection(_Section):
    enabled: bool = True
    tracking_uri: str | None = None   # None: SQLite file `mlflow.db` under the sweep's storage


class SweepSpec(_Section):
    """A whole sweep. See `orchestrator/sweeps/default.yaml` for every key with comments."""
    name: Annotated[str, AfterValidator(_check_sweep_name)]
    storage: Annotated[str, AfterValidator(_check_storage)] = "./mmc-runs"
    data: DataSection = DataSection()
    models: Annotated[list[ModelEntry], Field(min_length=1), AfterValidator(_unique("model"))] = \
        [ModelSection(name="small_cnn")]
    seeds: Annotated[list[Seed], Field(min_length=1), AfterValidator(_unique("seed"))] = [0, 1, 2]
    cue_proportions: Annotated[list[Proportion], Field(min_length=1),
                               AfterValidator(_unique("cue proportion"))] = [0.0, 0.9]
    pretrain: OptimSection = OptimSection()
    finetune: FinetuneSection = FinetuneSection()
    midpoint: MidpointSection = MidpointSection()
    align: AlignSection = AlignSection()
    paths: PathsSection = PathsSection()
    resources: ResourcesSection = ResourcesSection()
    max_concurrent: Annotated[int, Field(ge=1)] | None = None   # None: as many as resources allow
    mlflow: MlflowSection = MlflowSection()

    @model_validator(mode="after")
    def _check_combinations(self) -> SweepSpec:
        problems = cross_problems({name: getattr(self, name) for name in type(self).model_fields})
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def cue_models(self) -> list[float]:
        """Cue proportions > 0 (each trains cue models)."""
        return [p for p in self.cue_proportions if p > 0]

    @property
    def has_nocue(self) -> bool:
        return 0.0 in self.cue_proportions


# ----- rules across fields -----

def cross_problems(values: dict[str, Any]) -> list[str]:
    """Problems between fields; `values` holds the validated top-level fields (missing: skipped)."""
    problems: list[str] = []
    data, paths = values.get("data"), values.get("paths")
    if data is not None:
        allowed = DATASET_CUES[data.dataset]
        if data.cue not in allowed:
            problems.append(f"`data.cue`: {data.cue!r} is not available for dataset {data.dataset!r}; "
                            f"allowed: {', '.join(allowed)}")
        if data.root is None and data.dataset not in BUILTIN_DATASETS:
            problems.append(f"`data.root`: is required for dataset {data.dataset!r} (only "
                            f"{', '.join(BUILTIN_DATASETS)} is built in); give the directory holding "
                            f"its files (`mmc-sweep data download {data.dataset} --root DIR` fetches them)")
    seeds, props, finetune = values.get("seeds"), values.get("cue_proportions"), values.get("finetune")
    if paths is not None:
        if "aligned" in paths.kinds and not paths.alignments:
            problems.append("`paths.alignments`: [] is empty but `paths.kinds` has 'aligned'; "
                            f"give at least one of {', '.join(ALIGNMENTS)}")
        if props is not None:
            has_cue, has_nocue = any(p > 0 for p in props), 0.0 in props
            needs = {"cue~nocue": (has_cue and has_nocue, "both 0.0 and a proportion > 0"),
                     "cue~cue": (has_cue, "a proportion > 0"),
                     "nocue~nocue": (has_nocue, "0.0"),
                     "pretrained~ft": (has_cue, "a proportion > 0")}
            for pair in paths.pairs:
                ok, what = needs[pair]
                if not ok:
                    problems.append(f"`paths.pairs`: {pair!r} needs `cue_proportions` to contain "
                                    f"{what}; got {_show(props)}")
        if seeds is not None and len(seeds) < 2:
            for pair in ("cue~cue", "nocue~nocue"):
                if pair in paths.pairs:
                    problems.append(f"`paths.pairs`: {pair!r} compares two seeds but `seeds` is "
                                    f"{_show(seeds)}; give at least 2 seeds or drop {pair!r}")
        if finetune is not None and "pretrained~ft" in paths.pairs and not finetune.methods:
            problems.append("`paths.pairs`: 'pretrained~ft' needs `finetune.methods`, which is empty; "
                            f"give some of {', '.join(FINETUNE_METHODS)}")
    resources = values.get("resources")
    if resources is not None:
        for kind in RESOURCE_KINDS:
            workers = getattr(resources, kind).workers
            if workers > 1 and kind not in TRAINING_KINDS:
                problems.append(f"`resources.{kind}.workers`: {workers} is not allowed; only "
                                f"{', '.join(TRAINING_KINDS)} run data-parallel, use 1")
    storage, mlflow = values.get("storage"), values.get("mlflow")
    if storage is not None and mlflow is not None and mlflow.enabled and mlflow.tracking_uri is None:
        match = _SCHEME.match(storage)
        if match and match.group(1).lower() != "file":
            problems.append(f"`mlflow.tracking_uri`: is required when `storage` is the remote URI "
                            f"{storage!r} (the default SQLite store needs a local directory); give a "
                            f"tracking server URI or set `mlflow.enabled: false`")
    return problems


def check_resources(spec: SweepSpec, cluster: dict) -> list[str]:
    """Problems running `spec` on a cluster. `cluster` is `ray.cluster_resources()` ({"CPU": n,
    "GPU": n, ...}), optionally with "nodes": a list of such dicts, one per node."""
    problems: list[str] = []
    total_cpu, total_gpu = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    nodes = cluster.get("nodes") or [{"CPU": total_cpu, "GPU": total_gpu}]
    node_cpu = max(float(n.get("CPU", 0)) for n in nodes)
    node_gpu = max(float(n.get("GPU", 0)) for n in nodes)
    for kind in used_kinds(spec):
        r = getattr(spec.resources, kind)
        field = f"`resources.{kind}"
        if r.gpus > 0 and total_gpu == 0:
            problems.append(f"{field}.gpus`: {r.gpus:g} but the cluster has no GPU; set "
                            f"`resources.{kind}.gpus: 0` to run on CPUs")
            continue
        for unit, per, node_max, total in (("cpus", r.cpus, node_cpu, total_cpu),
                                           ("gpus", r.gpus, node_gpu, total_gpu)):
            if per > node_max:
                problems.append(f"{field}.{unit}`: {per:g} per worker but the largest node has "
                                f"{node_max:g}; use at most {node_max:g}")
            elif per * r.workers > total:
                problems.append(f"{field}`: {r.workers} workers x {per:g} {unit} = {per * r.workers:g} "
                                f"but the cluster has {total:g}; use fewer workers or {unit}")
        for name, amount in r.custom.items():   # a missing custom resource would wait forever
            have = float(cluster.get(name, 0))
            if amount * r.workers > have:
                problems.append(f"{field}.custom.{name}`: {r.workers} workers x {amount:g} but the cluster "
                                f"has {have:g} of `{name}`; start nodes with that resource or remove it")
    return problems


def used_kinds(spec: SweepSpec) -> list[str]:
    """Task kinds that the sweep's graph contains."""
    kinds = ["pretrain"]
    if spec.cue_models and spec.finetune.methods:
        kinds.append("finetune")
    if spec.paths.pairs and spec.paths.kinds:
        if "quadratic" in spec.paths.kinds:
            kinds.append("midpoint")
        if "aligned" in spec.paths.kinds:
            kinds.append("align")
        kinds.append("path_eval")
    return kinds


# ----- loading -----

class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loader that rejects a key repeated in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, typing.Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {seen[key] + 1})", key_node.start_mark)
        if isinstance(key, typing.Hashable):
            seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_spec(path: str | os.PathLike | None = None) -> SweepSpec:
    """Read and validate a sweep spec file; None reads the built-in default sweep."""
    if path is None:
        text = importlib_resources.files("orchestrator").joinpath(DEFAULT_SPEC_RESOURCE).read_text()
        return parse_spec(text, f"<built-in {DEFAULT_SPEC_RESOURCE}>")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError([f"cannot read the spec file: {e.strerror or e}"], str(path)) from None
    return parse_spec(text, str(path))


def parse_spec(text: str, source: str = "<spec>") -> SweepSpec:
    """Validate the YAML `text` of a spec; `source` names it in error messages."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)   # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and start:
            problem += f" ({context} started on line {start.line + 1})"
        raise SpecError([f"invalid YAML at {where}{problem}"], source) from None
    return validate_spec(raw, source)


def validate_spec(raw: Any, source: str = "<spec>") -> SweepSpec:
    """Validate already-parsed spec data (a dict), collecting every problem."""
    if raw is None:
        raise SpecError(["the spec is empty; it needs at least `name:` (see `mmc-sweep plan` "
                         "with no argument for the built-in default sweep)"], source)
    if not isinstance(raw, dict):
        raise SpecError([f"the spec must be a mapping of `key: value` lines, not a "
                         f"{_type_name(raw)}"], source)
    problems: list[str] = []
    fields = SweepSpec.model_fields
    for key in raw:
        if key not in fields:
            problems.append(_unknown_key(str(key), list(fields), (key,)))
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in raw:
            if field.is_required():
                problems.append(f"`{name}`: is missing; it is required")
            else:
                values[name] = field.get_default(call_default_factory=True)
            continue
        try:
            values[name] = _field_adapter(name).validate_python(raw[name])
        except ValidationError as e:
            problems.extend(_describe(err, (name,)) for err in e.errors())
    problems.extend(cross_problems(values))
    if problems:
        raise SpecError(problems, source)
    return SweepSpec.model_validate(raw)


def dump_spec(spec: SweepSpec) -> str:
    """The resolved spec as YAML (every key), loadable again with `parse_spec`."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def spec_hash(spec: SweepSpec) -> str:
    """sha256 of what determines results: the spec without where things live or run
    (`storage`, `data.root`, `resources`, `max_concurrent`, `mlflow`)."""
    science = spec.model_dump(mode="json", exclude={"storage": True, "resources": True,
                                                    "max_concurrent": True, "mlflow": True,
                                                    "data": {"root"}})
    text = json.dumps(science, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def spec_json_schema() -> dict:
    """JSON schema of a sweep spec (for editors; validation itself is `parse_spec`)."""
    return SweepSpec.model_json_schema()


# ----- turning pydantic errors into messages -----

@cache
def _field_adapter(name: str) -> TypeAdapter:
    field = SweepSpec.model_fields[name]
    annotated = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
        return TypeAdapter(annotated)
    return TypeAdapter(annotated, config=ConfigDict(strict=True))


_REQUIREMENTS = {
    "greater_than_equal": lambda c: f"must be >= {_show(c['ge'])}",
    "greater_than": lambda c: f"must be > {_show(c['gt'])}",
    "less_than_equal": lambda c: f"must be <= {_show(c['le'])}",
    "less_than": lambda c: f"must be < {_show(c['lt'])}",
    "too_short": lambda c: f"must have at least {c['min_length']} item(s)",
    "int_type": lambda c: "must be a whole number",
    "int_from_float": lambda c: "must be a whole number",
    "float_type": lambda c: "must be a number",
    "string_type": lambda c: "must be a string",
    "bool_type": lambda c: "must be true or false",
    "list_type": lambda c: "must be a list, e.g. [a, b]",
    "model_type": lambda c: "must be a mapping of `key: value` lines",
    "dict_type": lambda c: "must be a mapping of `key: value` lines",
    "finite_number": lambda c: "must be a finite number",
}


def _describe(err: dict, prefix: tuple) -> str:
    """One readable message for one pydantic error."""
    loc = prefix + tuple(err["loc"])
    where = _loc_name(loc)
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _known_keys(loc[:-1]), loc)
    if kind == "missing":
        return f"`{where}`: is missing; it is required"
    if kind == "value_error":
        message = str(ctx.get("error", err["msg"]))
        return message if message.startswith("`") else f"`{where}`: {message}"
    value = err.get("input")
    if kind in _REQUIREMENTS:
        got = f" (got a {_type_name(value)})" if kind.endswith("_type") else ""
        return f"`{where}`: {_show(value)} is not allowed; {_REQUIREMENTS[kind](ctx)}{got}"
    return f"`{where}`: {_show(value)} is not allowed; {err['msg']}"


def _unknown_key(key: str, known: list[str], loc: tuple) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean `{_loc_name(loc[:-1] + (close[0],))}`?" if close else \
        f"allowed: {', '.join(known)}"
    return f"`{_loc_name(loc)}`: unknown key; {hint}"


def _known_keys(loc: tuple) -> list[str]:
    """Field names of the section found at `loc` in a SweepSpec."""
    tp: Any = SweepSpec
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, str) and isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return []
            tp = field.annotation
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _unwrap(tp: Any) -> Any:
    """Strip Annotated, Optional and list[...] down to the element type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated or origin is list:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = (models or members)[0]
        else:
            return tp


def _loc_name(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show(value: Any) -> str:
    """A value roughly as YAML would spell it."""
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bool, list, dict)) or value is None:
        plain = json.dumps(value, default=lambda v: v.model_dump(exclude_none=True)
                           if isinstance(v, BaseModel) else str(v))
        return plain.replace('"', "'")
    return repr(value)


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _hashable(value: Any) -> Any:
    return value.model_dump_json() if isinstance(value, BaseModel) else value
