"""Validation of sweep specs through the settings declarations of `tasks/` (and of the few
orchestrator settings declared here the same way): unknown keys, types, bounds, choices, rules
between fields, swept axes, and the JSON schema for editors. Messages name the key in backticks,
the bad value (shortened) and what is allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections import Counter
import re
from dataclasses import dataclass
from typing import Any

from orchestrator import vocab
from orchestrator.spec.locations import check_root, check_storage, check_tracking_uri
from orchestrator.messages import MAX_SHOWN, a_type, show
from tasks.align import ALIGNMENTS, AlignSettings
from tasks.data import DATASETS, DataSettings
from tasks.finetune import FINETUNE_METHODS, FinetuneSettings
from tasks.models import ModelSettings
from tasks.paths import MidpointSettings, PathSettings
from tasks.settings import (INT64_MAX, Rule, Settings, SettingsError, base_type, declared_fields, rule_for, setting,
                            value_problem)
from tasks.train import OptimSettings

MAX_PROBLEMS_SHOWN = 25        # problems listed in one error message (all are kept in SpecError.problems)
MAX_DESCRIPTION = 10_000       # characters of `description`
MAX_LIST = 10_000              # items in any list of a spec
SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
RESERVED_RESOURCES = ("CPU", "GPU", "cpu", "gpu", "memory", "object_store_memory")
DEFAULT_DATASET = DataSettings().dataset

# Spec sections that hold task settings, and the `tasks/` class that declares each one.
SETTINGS_CLASSES: dict[str, type] = {"data": DataSettings, "pretrain": OptimSettings, "finetune": FinetuneSettings,
                                     "midpoint": MidpointSettings, "align": AlignSettings, "paths": PathSettings}
DATA_AXIS_FIELDS = ("cue_proportion", "seed")   # given per model by `cue_proportions` and `seeds`
# Keys of those sections that are not settings of one task (lists that shape the graph, where data lives).
STRUCTURAL = {"data": ("root",), "finetune": ("methods",), "paths": ("pairs", "kinds", "finetuned_kinds", "alignments")}
NOT_SWEEPABLE = ("data.dataset", "data.root")   # one dataset (and its profile) per sweep


class SpecError(ValueError):
    """Every problem found in a sweep spec; `str()` lists them one per line."""

    def __init__(self, problems: list[str], source: str = "<spec>"):
        super().__init__(list(problems), source)
        self.problems = list(problems)
        self.source = source

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''} in the sweep spec:"
        shown = [f"  - {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if n > MAX_PROBLEMS_SHOWN:
            shown.append(f"  ... and {n - MAX_PROBLEMS_SHOWN} more (fix these first)")
        return "\n".join([head] + shown)


# ----- settings declared by the orchestrator (where and how a sweep runs) -----

@dataclass(frozen=True)
class RunSettings(Settings):
    storage: str = setting("./mmc-runs", doc="local path or URI (file://, s3://, gs://, hdfs://); runs go "
                           "to <storage>/<name>/; on a cluster every node must see it")
    max_concurrent: int | None = setting(None, ge=1, le=10_000, doc="tasks running at once; null: as many "
                                         "as the cluster's resources allow")


@dataclass(frozen=True)
class ResourceSettings(Settings):
    cpus: float = setting(1.0, gt=0, le=1024, doc="CPUs per worker (may be fractional)")
    gpus: float = setting(0.0, ge=0, le=64, doc="GPUs per worker; a fraction < 1 shares a GPU")
    workers: int = setting(1, ge=1, le=1024, doc="> 1: data-parallel through Ray Train (training kinds only)")
    custom: tuple = setting((), doc="per worker, extra Ray resources, e.g. {accelerator_type_a100: 0.01}")

    def cross_problems(self) -> list[tuple[str, str]]:
        if self.gpus > 1 and self.gpus != int(self.gpus):
            return [("gpus", f"{self.gpus!r} is not allowed; use a fraction below 1 or a whole number of GPUs")]
        return []


@dataclass(frozen=True)
class MlflowSettings(Settings):
    enabled: bool = setting(True, doc="log every task as an MLflow child run")
    tracking_uri: str | None = setting(None, doc="null: SQLite file <storage>/<name>/mlflow.db (local storage "
                                       "only); a tracking server URI for remote storage or clusters")


# List keys: default, what an item must be, doc.
def _default_methods() -> tuple[str, ...]:
    return ("naive", "llrt", "lpft", "cbft")


LIST_KEYS = {
    "seeds": ((0, 1, 2), "replicates: each seed trains its own models (data seed = the seed; "
                         "initialisations are drawn independently per model)"),
    "cue_proportions": ((0.0, 0.8), "0.0 trains the no-cue models; each p > 0 trains cue models"),
    "finetune.methods": (_default_methods(), "fine-tuning methods applied to every cue model"),
    "paths.pairs": (vocab.PAIRS, "pair types (and controls `<pair>:<design>`) whose paths are evaluated"),
    "paths.kinds": (vocab.PATH_KINDS, "linear | quadratic (trained midpoint) | aligned (permutation)"),
    "paths.finetuned_kinds": ((vocab.LINEAR,), "path kinds of the pretrained~ft pairs (the paper's fine-tuning "
                                               "claims use the linear path; add quadratic or aligned if you need them)"),
    "paths.alignments": (("activation",), "alignment methods of aligned paths"),
}
TOP_KEYS = ("name", "description", "extends", "storage", "data", "models", "seeds", "cue_proportions",
            "pretrain", "finetune", "midpoint", "align", "paths", "axes", "resources", "max_concurrent", "mlflow")


# ----- small helpers -----

def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid"}


def _unknown(key: Any, known: list[str], where: str) -> str:
    name = f"{where}.{key}" if where else str(key)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"did you mean `{where + '.' if where else ''}{close[0]}`?" if close else f"allowed: {', '.join(known)}"
    return f"`{show(name)[1:-1] if isinstance(name, str) else name}`: unknown key; {hint}"


def section_fields(section: str) -> list[str]:
    """Keys a settings section accepts (its settings, then its structural keys)."""
    cls = SETTINGS_CLASSES[section]
    names = [f.name for f in dataclasses.fields(cls) if not (section == "data" and f.name in DATA_AXIS_FIELDS)]
    names = [n for n in names if n not in STRUCTURAL.get(section, ())]
    return names + list(STRUCTURAL.get(section, ()))


def unknown_keys(raw: dict) -> list[str]:
    problems = [_unknown(key, list(TOP_KEYS), "") for key in raw if key not in TOP_KEYS]
    for section in SETTINGS_CLASSES:
        value = raw.get(section)
        if isinstance(value, dict):
            known = section_fields(section)
            problems += [_unknown(k, known + (list(DATA_AXIS_FIELDS) if section == "data" else []), section)
                         if not (section == "data" and k in DATA_AXIS_FIELDS) else
                         f"`data.{k}`: is set per model by `{'cue_proportions' if k == 'cue_proportion' else 'seeds'}`"
                         f"; list the values there" for k in value if k not in known]
    return problems


def _check_value(value: Any, tp: Any, rule, where: str) -> tuple[Any, str | None]:
    """(normalised value, problem or None): ints become floats for float settings."""
    problem = value_problem(value, tp, rule)
    if problem:
        return value, f"`{where}`: {_shorten(problem, value)}"
    kind, _ = base_type(tp)
    if kind is float and isinstance(value, int):
        value = float(value)
    return value, None


def _shorten(problem: str, value: Any) -> str:
    full = repr(value)
    return problem.replace(full, show(value), 1) if len(full) > MAX_SHOWN else problem


def _settings(cls: type, raw: Any, where: str, problems: list[str], skip: tuple = (), extra: dict | None = None):
    """Build settings `cls` from a raw mapping through its declarations; None on problems."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"`{where}`: {show(raw)} is not allowed; must be a mapping of `key: value` lines "
                        f"(got {a_type(raw)})")
        return None
    values, before = dict(extra or {}), len(problems)
    for f, tp, rule in declared_fields(cls):
        if f.name in skip or f.name not in raw:
            continue
        value = raw[f.name]
        if f.name == "custom" and cls is ResourceSettings:
            value = _custom_resources(value, f"{where}.custom", problems)
            if value is None:
                continue
        else:
            value, problem = _check_value(value, tp, rule, f"{where}.{f.name}" if where else f.name)
            if problem:
                problems.append(problem)
                continue
        values[f.name] = value
    if len(problems) > before:
        return None
    try:
        return cls(**values)
    except SettingsError as e:
        problems.extend(f"`{where + '.' if where else ''}{name}`: {text}" for name, text in e.problems)
        return None


def _custom_resources(value: Any, where: str, problems: list[str]) -> tuple | None:
    if not isinstance(value, dict):
        problems.append(f"`{where}`: {show(value)} is not allowed; must be a mapping of resource name: amount")
        return None
    out = []
    for name, amount in value.items():
        if not isinstance(name, str) or not name or name in RESERVED_RESOURCES:
            problems.append(f"`{where}`: {show(name)} is not a custom resource name; use `cpus`/`gpus` for CPU/GPU")
        elif value_problem(amount, float, ResourceRule) is not None:
            problems.append(f"`{where}.{name}`: {value_problem(amount, float, ResourceRule)}")
        else:
            out.append((name, float(amount)))
    return tuple(sorted(out))


ResourceRule = Rule(ge=0, le=1e9)   # amount of a custom resource per worker


# ----- sections -----

def validate_sections(raw: dict, problems: list[str], where_suffix: str = "") -> dict | None:
    """The settings objects of every settings section of `raw`; None when one is invalid."""
    out, local = {}, []
    for section, cls in SETTINGS_CLASSES.items():
        body = raw.get(section)
        if body is not None and not isinstance(body, dict):
            local.append(f"`{section}`: {show(body)} is not allowed; must be a mapping of `key: value` lines "
                         f"(got {a_type(body)})")
            continue
        body = {k: v for k, v in (body or {}).items() if k not in STRUCTURAL.get(section, ())}
        skip = DATA_AXIS_FIELDS if section == "data" else ()
        out[section] = _settings(cls, body, section, local, skip=skip)
    problems.extend(p + where_suffix for p in local)
    return None if local else out


def validate_top(raw: dict, problems: list[str]) -> dict | None:
    """Everything that is not a swept setting: name, storage, models, lists, resources, MLflow."""
    before = len(problems)
    name = raw.get("name")
    if name is None:
        problems.append("`name`: is missing; it is required (letters, digits, - _ .)")
    elif not isinstance(name, str) or not SWEEP_NAME.match(name) or ".." in name:
        problems.append(f"`name`: {show(name)} is not allowed; use 1-100 letters, digits, '-', '_' or '.', "
                        "starting with a letter or digit, without '..' or path separators")
    description = raw.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        problems.append(f"`description`: {show(description)} is not allowed; must be text of at most "
                        f"{MAX_DESCRIPTION} characters")
    run = _settings(RunSettings, {k: raw[k] for k in ("storage", "max_concurrent") if k in raw}, "", problems)
    if run is not None:
        check_storage(run.storage, problems)
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    root = check_root(data.get("root"), problems)
    dataset = data.get("dataset", DEFAULT_DATASET)
    if "root" not in data and isinstance(dataset, str) and getattr(DATASETS.get(dataset), "needs_root", False):
        problems.append(f"`data.root`: is required for dataset {dataset!r} (only "
                        f"{', '.join(n for n, i in DATASETS.items() if not i.needs_root)} is built in); give the "
                        f"directory holding its files (`mmc-sweep data download {dataset} --root DIR` fetches them)")
    models = _models(raw.get("models", None), problems)
    lists = {key: _list(key, _dig(raw, key), problems) for key in LIST_KEYS}
    resources = {kind: _settings(ResourceSettings, (raw.get("resources") or {}).get(kind, {})
                                 if isinstance(raw.get("resources", {}), dict) else {},
                                 f"resources.{kind}", problems) for kind in vocab.TASK_KINDS}
    if "resources" in raw and not isinstance(raw["resources"], dict):
        problems.append(f"`resources`: {show(raw['resources'])} is not allowed; must map task kinds "
                        f"({', '.join(vocab.TASK_KINDS)}) to {{cpus, gpus, workers, custom}}")
    elif isinstance(raw.get("resources"), dict):
        problems += [_unknown(k, list(vocab.TASK_KINDS), "resources") for k in raw["resources"]
                     if k not in vocab.TASK_KINDS]
        for kind, body in raw["resources"].items():
            if kind in vocab.TASK_KINDS and isinstance(body, dict):
                known = [f.name for f in dataclasses.fields(ResourceSettings)]
                problems += [_unknown(k, known, f"resources.{kind}") for k in body if k not in known]
    mlflow = _settings(MlflowSettings, raw.get("mlflow", {}), "mlflow", problems)
    if mlflow is not None and mlflow.tracking_uri is not None:
        check_tracking_uri(mlflow.tracking_uri, problems)
    if isinstance(raw.get("mlflow"), dict):
        known = [f.name for f in dataclasses.fields(MlflowSettings)]
        problems += [_unknown(k, known, "mlflow") for k in raw["mlflow"] if k not in known]
    if len(problems) > before:
        return None
    return dict(name=name, storage=run.storage, data_root=root, models=models, seeds=lists["seeds"],
                cue_proportions=lists["cue_proportions"], methods=lists["finetune.methods"],
                pairs=lists["paths.pairs"], path_kinds=lists["paths.kinds"],
                finetuned_kinds=lists["paths.finetuned_kinds"], alignments=lists["paths.alignments"],
                resources=resources, max_concurrent=run.max_concurrent, mlflow=mlflow)


def _dig(raw: dict, key: str) -> Any:
    section, _, name = key.rpartition(".")
    body = raw.get(section, {}) if section else raw
    return body.get(name) if isinstance(body, dict) else None


def _list(key: str, value: Any, problems: list[str]) -> tuple:
    default, _doc = LIST_KEYS[key]
    if value is None:
        return tuple(default)
    if not isinstance(value, list):
        problems.append(f"`{key}`: {show(value)} is not allowed; must be a list, e.g. {show(list(default))}")
        return ()
    if key in ("seeds", "cue_proportions") and not value:
        problems.append(f"`{key}`: [] is empty; give at least one value")
    if len(value) > MAX_LIST:
        problems.append(f"`{key}`: {len(value)} items; at most {MAX_LIST}")
        return ()
    out, before = [], len(problems)
    for i, item in enumerate(value):
        problem = _item_problem(key, item)
        if problem:
            problems.append(f"`{key}[{i}]`: {problem}")
        else:
            out.append(float(item) if key == "cue_proportions" else item)
    counts = Counter(out)   # items are numbers or strings (hashable); 0.0 and -0.0 count as one
    dups = sorted({show(v) for v in out if counts[v] > 1})
    if dups:
        problems.append(f"`{key}`: {show(value)} repeats {', '.join(dups)}; list each once")
    return tuple(out) if len(problems) == before else ()


def _item_problem(key: str, item: Any) -> str | None:
    if key == "seeds":
        ok = isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= INT64_MAX
        return None if ok else f"{show(item)} is not allowed; must be a whole number in [0, 2^63 - 1]"
    if key == "cue_proportions":
        return value_problem(item, float, rule_for(DataSettings, "cue_proportion"))
    choices = {"finetune.methods": tuple(FINETUNE_METHODS), "paths.kinds": vocab.PATH_KINDS,
               "paths.finetuned_kinds": vocab.PATH_KINDS,
               "paths.alignments": tuple(ALIGNMENTS)}.get(key)
    if choices is not None:
        if not isinstance(item, str) or item not in choices:
            return f"{show(item)} is not allowed; allowed: {', '.join(choices)}"
        return None
    try:   # paths.pairs
        vocab.parse_pair_type(item)
    except ValueError as e:
        return str(e)
    return None


def _models(value: Any, problems: list[str]) -> tuple:
    if value is None:
        return (ModelSettings(),)
    if not isinstance(value, list) or not value:
        problems.append(f"`models`: {show(value)} is not allowed; must be a non-empty list, e.g. [small_cnn] "
                        "or [{name: vgg13, width: 32}]")
        return ()
    out = []
    for i, entry in enumerate(value[:MAX_LIST]):
        body = {"name": entry} if isinstance(entry, str) else entry
        if isinstance(body, dict):
            known = [f.name for f in dataclasses.fields(ModelSettings)]
            problems += [_unknown(k, known, f"models[{i}]") for k in body if k not in known]
        model = _settings(ModelSettings, body, f"models[{i}]", problems)
        if model is not None:
            out.append(model)
    labels = [m.label for m in out]
    dups = sorted({label for label in labels if labels.count(label) > 1})
    if dups:
        problems.append(f"`models`: repeats {', '.join(dups)}; list each model once")
    return tuple(out)


def settings_classes() -> dict[str, type]:
    """Section -> settings class, for every section whose values become `<section>.<field>` columns."""
    return {"data": DataSettings, "model": ModelSettings, **{k: v for k, v in SETTINGS_CLASSES.items() if k != "data"}}
