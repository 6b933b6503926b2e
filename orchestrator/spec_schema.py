"""Validation of sweep specs through the settings declarations of `tasks/` (and of the few
orchestrator settings declared here the same way): unknown keys, types, bounds, choices, rules
between fields, swept axes, and the JSON schema for editors. Messages name the key in backticks,
the bad value (shortened) and what is allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
from collections import Counter
import json
import re
from dataclasses import dataclass
from typing import Any

from orchestrator import vocab
from tasks.align import ALIGNMENTS, AlignSettings
from tasks.data import DATASETS, DataError, DataSettings, dataset_info
from tasks.finetune import CBFT_FAMILY, FINETUNE_METHODS, FinetuneSettings
from tasks.models import ModelSettings, supports_alignment
from tasks.paths import MidpointSettings, PathSettings
from tasks.settings import (INT64_MAX, Rule, Settings, SettingsError, base_type, declared_fields, rule_for, setting,
                            value_problem)
from tasks.train import OptimSettings

MAX_SHOWN = 80                 # characters of a value shown in a message
MAX_PROBLEMS_SHOWN = 25        # problems listed in one error message (all are kept in SpecError.problems)
MAX_DESCRIPTION = 10_000       # characters of `description`
MAX_LIST = 10_000              # items in any list of a spec
MAX_TASKS = 2_000_000          # tasks a spec may plan
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
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

def show(value: Any) -> str:
    """A value roughly as YAML spells it, at most MAX_SHOWN characters."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (bool, list, dict, tuple)) or value is None:
        try:
            text = json.dumps(value, default=str, allow_nan=True).replace('"', "'")
        except (ValueError, RecursionError):
            text = type(value).__name__
    else:
        text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


def type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def a_type(value: Any) -> str:
    """`type_name` with its article: "a list", "an integer"."""
    name = type_name(value)
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


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


def sweepable_keys() -> list[str]:
    out = []
    for section in SETTINGS_CLASSES:
        for name in section_fields(section):
            key = f"{section}.{name}"
            if name not in STRUCTURAL.get(section, ()) and key not in NOT_SWEEPABLE:
                out.append(key)
    return out


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


# ----- axes -----

def extract_axes(raw: dict, problems: list[str]) -> tuple[tuple, dict]:
    """Swept settings: inline `{grid: [...]}` values and zipped groups under `axes:`. Returns
    (axes, raw with each swept key set to its first value)."""
    base = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items() if k != "axes"}
    groups: list[tuple[tuple[str, tuple], ...]] = []
    for section in SETTINGS_CLASSES:
        body = base.get(section)
        if not isinstance(body, dict):
            continue
        for name, value in list(body.items()):
            if is_grid(value):
                values = _axis_values(f"{section}.{name}", value["grid"], problems)
                if values:
                    groups.append(((f"{section}.{name}", values),))
                    body[name] = values[0]
                else:
                    del body[name]   # reported; validate the rest without it
    written = raw.get("axes", [])
    if not isinstance(written, list):
        problems.append(f"`axes`: {show(written)} is not allowed; must be a list of mappings "
                        "(each maps dotted keys to equal-length lists, zipped together)")
        written = []
    for i, group in enumerate(written):
        if not isinstance(group, dict) or not group:
            problems.append(f"`axes[{i}]`: {show(group)} is not allowed; must map dotted keys to lists, "
                            "e.g. {finetune.lr: [0.01, 0.1], finetune.epochs: [30, 10]}")
            continue
        zipped = len(group) > 1   # a key may repeat a value there; the combinations must differ
        entries = [(str(k), _axis_values(f"axes[{i}].{k}", v, problems, unique=not zipped)) for k, v in group.items()]
        lengths = {len(v) for _, v in entries if v}
        if len(lengths) > 1:
            problems.append(f"`axes[{i}]`: the lists have different lengths {sorted(lengths)}; zipped keys "
                            "need one value each per combination")
            continue
        if any(not v for _, v in entries):
            continue
        combos = [json.dumps(c, sort_keys=True, default=str) for c in zip(*(v for _, v in entries))]
        if len(set(combos)) < len(combos):
            problems.append(f"`axes[{i}]`: repeats a combination of values; list each combination once")
            continue
        groups.append(tuple(entries))
        for key, values in entries:
            section, _, name = key.partition(".")
            if section in SETTINGS_CLASSES and isinstance(base.get(section, {}), dict):
                base.setdefault(section, {})
                base[section] = {**base[section], name: values[0]}
    seen: set[str] = set()
    sweepable = sweepable_keys()
    valid = []
    for group in groups:
        ok = True
        for key, _ in group:
            if key not in sweepable:
                section, _, name = key.partition(".")
                close = difflib.get_close_matches(key, sweepable, n=1, cutoff=0.6)
                if key in NOT_SWEEPABLE:
                    why = "one dataset per sweep (its profile sets the defaults); run one sweep per dataset"
                elif name in STRUCTURAL.get(section, ()):
                    why = "it is a list already; every value listed there runs in the same sweep"
                elif section == "data" and name in DATA_AXIS_FIELDS:
                    why = f"list the values in `{'seeds' if name == 'seed' else 'cue_proportions'}`"
                elif close:
                    why = f"did you mean `{close[0]}`?"
                else:
                    why = (f"sweepable: {', '.join(sweepable[:8])}, ... (any setting of data, pretrain, finetune, "
                           "midpoint, align, paths, as `section.setting`)")
                problems.append(f"`{show(key)[1:-1]}`: cannot be swept; {why}")
                ok = False
            elif key in seen:
                problems.append(f"`{key}`: is swept twice; sweep each key in one place")
                ok = False
            seen.add(key)
        if ok:
            valid.append(group)
    groups = valid   # only valid groups become combinations (the problems are reported)
    return tuple(groups), base


def _axis_values(where: str, values: Any, problems: list[str], unique: bool = True) -> tuple:
    if not isinstance(values, list) or not values:
        problems.append(f"`{where}`: {show(values)} is not allowed; give a non-empty list of values to sweep")
        return ()
    if len(values) > MAX_LIST:
        problems.append(f"`{where}`: {len(values)} values; at most {MAX_LIST}")
        return ()
    keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
    if unique and len(set(keys)) < len(keys):
        problems.append(f"`{where}`: {show(values)} repeats a value; list each value once")
        return ()
    return tuple(values)


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
    elif not isinstance(name, str) or not _SWEEP_NAME.match(name) or ".." in name:
        problems.append(f"`name`: {show(name)} is not allowed; use 1-100 letters, digits, '-', '_' or '.', "
                        "starting with a letter or digit, without '..' or path separators")
    description = raw.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        problems.append(f"`description`: {show(description)} is not allowed; must be text of at most "
                        f"{MAX_DESCRIPTION} characters")
    run = _settings(RunSettings, {k: raw[k] for k in ("storage", "max_concurrent") if k in raw}, "", problems)
    if run is not None:
        _check_storage(run.storage, problems)
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    root = _check_root(data.get("root"), problems)
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
        _check_tracking_uri(mlflow.tracking_uri, problems)
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


def _check_storage(value: str, problems: list[str]) -> None:
    match = _SCHEME.match(value)
    if not value.strip():
        problems.append("`storage`: '' is not allowed; give a local directory or a URI such as s3://bucket/runs")
    elif match and len(match.group(1)) > 1:   # "C:" would be a Windows drive, not a scheme
        scheme = match.group(1).lower()
        if scheme not in STORAGE_SCHEMES:
            problems.append(f"`storage`: {show(redact(value))} has an unknown URI scheme {scheme!r}; allowed: a "
                            f"local path or {', '.join(s + '://' for s in STORAGE_SCHEMES)}")
        elif not value[match.end():].strip("/"):
            problems.append(f"`storage`: {show(redact(value))} names no location after the scheme")
        elif scheme == "file":
            from orchestrator.layout import LayoutError, local_path_of

            try:
                local_path_of(value)
            except LayoutError as e:
                problems.append(f"`storage`: {e}")


def _check_root(value: Any, problems: list[str]) -> str | None:
    """An existing local directory (returned absolute; `file://` URIs are local paths); None passes.
    Other URIs are refused: the dataset loaders read local files only."""
    from pathlib import Path

    from orchestrator.layout import LayoutError, local_path_of

    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.append(f"`data.root`: {show(value)} is not allowed; give the directory holding the dataset files")
        return None
    if _SCHEME.match(value) and len(_SCHEME.match(value).group(1)) > 1:
        try:
            local = local_path_of(value)
        except LayoutError:
            local = None
        if local is None:
            problems.append(f"`data.root`: {show(redact(value))} is not a local directory; the datasets are read from "
                            "local files (on a cluster: a directory every node mounts), so copy them there and give "
                            "its path")
            return None
        value = local
    path = Path(value).expanduser()
    if not path.is_dir():
        problems.append(f"`data.root`: {show(value)} is not an existing directory; download a dataset with "
                        f"`mmc-sweep data download NAME --root {value}`")
        return None
    return str(path.resolve())


TRACKING_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")


def _check_tracking_uri(value: str, problems: list[str]) -> None:
    """An MLflow tracking URI: a server (http/https with a host), a database URI, or a local path."""
    import urllib.parse

    fix = ("give a tracking server (http://host:5000), a database URI (sqlite:////abs/mlflow.db, "
           "postgresql://host/db) or leave it out for the SQLite file in the sweep directory")
    if not value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} is not allowed; {fix}")
        return
    match = _SCHEME.match(value)
    if not match or len(match.group(1)) == 1:
        return   # a local path (MLflow's file store)
    scheme = match.group(1).lower().split("+", 1)[0]
    if scheme not in TRACKING_SCHEMES:
        problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} has the scheme {scheme!r}, which MLflow does "
                        f"not track to; {fix}")
        return
    if scheme in ("http", "https"):
        try:
            parsed = urllib.parse.urlsplit(value)
            ok = bool(parsed.hostname) and (parsed.port or 1) > 0
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"`mlflow.tracking_uri`: {show(redact(value))} names no valid host[:port]; {fix}")


def redact(text: str) -> str:
    """Credentials in URIs (`s3://KEY:SECRET@bucket` -> `s3://***@bucket`, `?token=...` -> `?token=***`)."""
    from orchestrator.layout import redact as layout_redact

    return layout_redact(text)


# ----- rules across sections -----

def spec_problems(top: dict, variants: list) -> list[str]:
    """Rules between keys of different sections (checked for every combination of swept values)."""
    problems: list[str] = []
    props, pairs = top["cue_proportions"], [vocab.parse_pair_type(p) for p in top["pairs"]]
    has_cue, has_nocue = any(p > 0 for p in props), 0.0 in props
    needs = {vocab.CUE_NOCUE: (has_cue and has_nocue, "both 0.0 and a proportion > 0"),
             vocab.CUE_CUE: (has_cue, "a proportion > 0"), vocab.NOCUE_NOCUE: (has_nocue, "0.0"),
             vocab.PRETRAINED_FT: (has_cue, "a proportion > 0")}
    for text, (pair, _design, _epoch) in zip(top["pairs"], pairs):
        ok, what = needs[pair]
        if not ok:
            problems.append(f"`paths.pairs`: {text!r} needs `cue_proportions` to contain {what}; got {show(list(props))}")
    if any(p == vocab.PRETRAINED_FT for p, _, _ in pairs) and not top["methods"]:
        problems.append("`paths.pairs`: 'pretrained~ft' needs `finetune.methods`, which is empty")
    for key in ("path_kinds", "finetuned_kinds"):
        name = "paths.kinds" if key == "path_kinds" else "paths.finetuned_kinds"
        if vocab.ALIGNED not in top[key] or (key == "finetuned_kinds" and
                                             not any(p == vocab.PRETRAINED_FT for p, _, _ in pairs)):
            continue
        if not top["alignments"]:
            problems.append(f"`paths.alignments`: [] is empty but `{name}` has 'aligned'; give at least one "
                            f"of {', '.join(ALIGNMENTS)}")
        for model in top["models"]:
            if not supports_alignment(model.name):
                problems.append(f"`{name}`: 'aligned' needs a permutation spec, which model {model.name!r} "
                                "does not have (tasks/align.py knows the built-in models); drop 'aligned'")
    for kind, r in top["resources"].items():
        if r.workers > 1 and kind not in vocab.TRAINING_KINDS:
            problems.append(f"`resources.{kind}.workers`: {r.workers} is not allowed; only "
                            f"{', '.join(vocab.TRAINING_KINDS)} run data-parallel, use 1")
    storage, mlflow = top["storage"], top["mlflow"]
    match = _SCHEME.match(storage)
    if mlflow.enabled and mlflow.tracking_uri is None and match and match.group(1).lower() != "file" \
            and len(match.group(1)) > 1:
        problems.append(f"`mlflow.tracking_uri`: is required when `storage` is the remote URI {show(redact(storage))} "
                        "(the default SQLite store needs a local directory); give a tracking server URI or set "
                        "`mlflow.enabled: false`")
    for variant in variants:
        problems += [p + _suffix(variant) for p in _variant_problems(top, variant, pairs)]
    estimate = estimate_tasks(top, len(variants), pairs)
    if estimate > MAX_TASKS:
        problems.append(f"the spec plans about {estimate:,} tasks; at most {MAX_TASKS:,} (fewer seeds, "
                        "models, proportions, methods, pairs or swept values)")
    return problems


def _suffix(variant) -> str:
    return f" (in the combination {variant.label()})" if variant.swept else ""


def _variant_problems(top: dict, v, pairs: list) -> list[str]:
    out: list[str] = []
    try:
        info = dataset_info(v.data.dataset, top["data_root"])
    except (DataError, ValueError) as exc:
        return [f"`data.dataset`: {exc}"]
    if info.needs_root and top["data_root"] is None:
        out.append(f"`data.root`: is required for dataset {v.data.dataset!r} (only "
                   f"{', '.join(n for n, i in DATASETS.items() if not i.needs_root)} is built in); give the directory "
                   f"holding its files (`mmc-sweep data download {v.data.dataset} --root DIR` fetches them)")
    n_train = getattr(info, "train_size", None)
    if n_train:
        for key, value in (("finetune.clean_subset", v.finetune.clean_subset),
                           ("paths.bn_reset_samples", v.paths.bn_reset_samples), ("align.samples", v.align.samples)):
            if value > n_train:
                out.append(f"`{key}`: {value} is more than the {n_train} training images of {v.data.dataset!r}; "
                           f"use at most {n_train}")
        for key, value in (("pretrain.batch_size", v.pretrain.batch_size),
                           ("midpoint.batch_size", v.midpoint.batch_size)):
            if value > n_train:
                out.append(f"`{key}`: {value} is more than the {n_train} training images of {v.data.dataset!r}, so "
                           f"an epoch would have no full batch; use at most {n_train}")
        cue_batch = v.finetune.cue_batch_size or v.finetune.batch_size
        if any(m in CBFT_FAMILY for m in top["methods"]) and v.finetune.clean_subset <= n_train \
                and n_train - v.finetune.clean_subset < cue_batch:
            out.append(f"`finetune.clean_subset`: {v.finetune.clean_subset} leaves {n_train - v.finetune.clean_subset} "
                       f"cued training images for cbft, fewer than its cue batch {cue_batch}; lower `clean_subset`, "
                       "`cue_batch_size` or `batch_size`")
    for kind, batches in (("pretrain", [("batch_size", v.pretrain.batch_size)]),
                          ("midpoint", [("batch_size", v.midpoint.batch_size)]),
                          ("finetune", [("batch_size", v.finetune.batch_size),
                                        ("cue_batch_size", v.finetune.cue_batch_size)])):
        workers = top["resources"][kind].workers
        for name, size in batches:
            if size is not None and size % workers:
                out.append(f"`{kind}.{name}`: {size} is not divisible by `resources.{kind}.workers` {workers}; "
                           f"use a multiple of {workers}")
    for pair, design, epoch in pairs:
        if design == vocab.SPAWN and epoch > v.pretrain.epochs:
            out.append(f"`paths.pairs`: '{pair}:spawn@{epoch}' shares {epoch} epochs but `pretrain.epochs` is "
                       f"{v.pretrain.epochs}; use K <= {v.pretrain.epochs}")
    return out


def estimate_tasks(top: dict, n_variants: int, pairs: list) -> int:
    """The tasks a spec plans, counted the way graph.py plans them without building anything: exact
    for a spec without axes, an upper bound with them (tasks shared between combinations counted
    once per combination)."""
    cue = sum(1 for p in top["cue_proportions"] if p > 0)
    nocue = int(0.0 in top["cue_proportions"])
    methods = len(top["methods"])

    def per_path(kinds) -> int:
        return ((vocab.LINEAR in kinds) + 2 * (vocab.QUADRATIC in kinds)
                + 2 * len(top["alignments"]) * (vocab.ALIGNED in kinds))
    models: set = set()
    finetunes = paths = 0
    for pair, design, epoch in pairs:
        props = nocue if pair == vocab.NOCUE_NOCUE else cue
        n_pairs = props * (methods if pair == vocab.PRETRAINED_FT else 1)
        kinds = top["finetuned_kinds"] if pair == vocab.PRETRAINED_FT else top["path_kinds"]
        paths += n_pairs * (1 if design == vocab.SELF else per_path(kinds))
        models.update(("primary", "nocue" if pair == vocab.NOCUE_NOCUE else p) for p in range(props))
        if pair == vocab.CUE_NOCUE:
            models.update([("primary", "nocue")] + ([("same-init", p) for p in range(cue)] if design == vocab.SAME_INIT
                                                    else []))
        elif pair == vocab.PRETRAINED_FT:
            finetunes = cue * methods
        elif design in (vocab.INDEPENDENT, vocab.SPAWN):
            models.update((pair, design, epoch, p) for p in range(props))
    per_seed = len(models) + finetunes + paths
    return n_variants * len(top["models"]) * len(top["seeds"]) * per_seed


# ----- the settings every result row carries -----

SETTINGS_COLUMN_SECTIONS = ("data", "model", "pretrain", "finetune", "midpoint", "align", "paths")


def settings_classes() -> dict[str, type]:
    """Section -> settings class, for every section whose values become `<section>.<field>` columns."""
    return {"data": DataSettings, "model": ModelSettings, **{k: v for k, v in SETTINGS_CLASSES.items() if k != "data"}}


def settings_columns() -> list[tuple[str, type]]:
    """(`<section>.<field>`, python type) of every setting a result row can carry, in a fixed order."""
    return list(_settings_columns())


@functools.lru_cache(maxsize=None)
def _settings_columns() -> tuple[tuple[str, type], ...]:
    out = []
    for section, cls in settings_classes().items():
        for f, tp, _rule in declared_fields(cls):
            if section == "data" and f.name in (*DATA_AXIS_FIELDS, "root"):
                continue
            out.append((f"{section}.{f.name}", base_type(tp)[0]))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def _column_names() -> frozenset[str]:
    return frozenset(name for name, _ in _settings_columns())


def settings_values(section: str, settings: Any) -> dict[str, Any]:
    """`<section>.<field>` -> value for one settings object (the columns of `settings_columns`).
    Called for every planned task: the columns are computed once (type hints are slow)."""
    names = _column_names()
    return {key: value for f in dataclasses.fields(settings)
            if (key := f"{section}.{f.name}") in names and not isinstance(value := getattr(settings, f.name), tuple)}


# ----- JSON schema -----

def _field_schema(tp: Any, rule, default: Any) -> dict:
    kind, nullable = base_type(tp)
    js = {int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
          bool: {"type": "boolean"}}.get(kind, {"type": "object"})
    for key, bound in (("minimum", rule.ge), ("exclusiveMinimum", rule.gt), ("maximum", rule.le),
                       ("exclusiveMaximum", rule.lt)):
        if bound is not None:
            js[key] = bound
    if rule.allowed() is not None:
        js["enum"] = list(rule.allowed())
    if nullable:
        js = {"anyOf": [js, {"type": "null"}]}
    grid = {"type": "object", "properties": {"grid": {"type": "array", "items": js}}, "required": ["grid"],
            "additionalProperties": False}
    out = {"anyOf": [js, grid], "description": rule.doc}
    if isinstance(default, (int, float, str, bool)) or default is None:
        out["default"] = default
    return out


def _class_schema(cls: type, skip: tuple = ()) -> dict:
    props = {f.name: _field_schema(tp, rule, f.default) for f, tp, rule in declared_fields(cls)
             if f.name not in skip and f.name != "custom"}
    return {"type": "object", "properties": props, "additionalProperties": False}


def json_schema() -> dict:
    str_list = {"type": "array", "items": {"type": "string"}}
    sections = {name: _class_schema(cls, DATA_AXIS_FIELDS if name == "data" else ())
                for name, cls in SETTINGS_CLASSES.items()}
    sections["data"]["properties"]["root"] = {"type": ["string", "null"], "description": "dataset files"}
    sections["finetune"]["properties"]["methods"] = {**str_list, "description": LIST_KEYS["finetune.methods"][1]}
    for key in ("pairs", "kinds", "finetuned_kinds", "alignments"):
        sections["paths"]["properties"][key] = {**str_list, "description": LIST_KEYS[f"paths.{key}"][1]}
    resource = _class_schema(ResourceSettings)
    resource["properties"]["custom"] = {"type": "object", "additionalProperties": {"type": "number"}}
    run = _class_schema(RunSettings)["properties"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "mmc-sweep spec", "type": "object",
        "required": ["name"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": _SWEEP_NAME.pattern.replace("\\Z", "$")},
            "description": {"type": "string"}, "extends": {"type": "string"},
            "storage": run["storage"], "max_concurrent": run["max_concurrent"],
            **sections,
            "models": {"type": "array", "items": {"anyOf": [{"type": "string"}, _class_schema(ModelSettings)]}},
            "seeds": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "cue_proportions": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
            "axes": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "array"}}},
            "resources": {"type": "object", "properties": {k: resource for k in vocab.TASK_KINDS},
                          "additionalProperties": False},
            "mlflow": _class_schema(MlflowSettings),
        },
    }
