"""The sweep spec, declared once: `TopLevel` names every top-level key with `key(...)` (a `setting(...)`
of `tasks/settings.py` plus how the spec reads it), and each settings section names the `tasks/` class
that declares its settings. Validation (`validation.py`), the JSON schema (`jsonschema.py`), the
resolved spec and `plan --resolved --explain` (`sweep_spec.py`, `layers.py`) all walk this declaration.

A new top-level key or section is one field of `TopLevel` (and, for a section, the settings class
it names); a section whose settings may be swept also needs a field of `sweep_spec.Variant` (a
test checks the two agree).
"""
from __future__ import annotations

import dataclasses
import functools
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from orchestrator import vocab
from orchestrator.spec.claim_rules import ClaimRules
from orchestrator.spec.population import Population
from orchestrator.errors import MmcError
from orchestrator.messages import show
from orchestrator.uris import redact
from orchestrator.spec.locations import (ROOT_JSON, STORAGE_JSON, TRACKING_JSON, check_root, check_storage,
                                        check_tracking_uri)
from tasks.settings.align import ALIGNMENT_NAMES, AlignSettings
from tasks.settings.data import DATASETS, DataSettings
from tasks.settings.finetune import FINETUNE_METHOD_NAMES, FinetuneSettings
from tasks.settings.models import ModelSettings
from tasks.settings.paths import MidpointSettings, PathSettings
from tasks.settings import INT64_MAX, Rule, Settings, declared_fields, rule_for, setting, value_problem
from tasks.settings.train import OptimSettings

MAX_PROBLEMS_SHOWN = 25        # problems listed in one error message (all are kept in SpecError.problems)
MAX_DESCRIPTION = 10_000       # characters of `description`
MAX_LIST = 10_000              # items in any list of a spec
SWEEP_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")   # and no '..'
RESERVED_RESOURCES = ("CPU", "GPU", "cpu", "gpu", "memory", "object_store_memory")
DEFAULT_DATASET = DataSettings().dataset
SPEC_KEY = "mmc_spec_key"      # field metadata: the Key


class SpecError(MmcError, ValueError):
    """Every problem found in a sweep spec; `str()` lists them one per line, credentials redacted (the source
    names the overrides given, which may hold a URI's: an API caller's traceback prints it)."""

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
        return redact("\n".join([head] + shown))


# ----- how the spec reads a key -----

Check = Callable[[Any, str, list, dict], Any]   # (valid value, dotted key, problems, the mapping it is in) -> value


@dataclass(frozen=True)
class Key:
    """How the spec reads one key, beyond its `setting(...)` rule (bounds, choices and doc; for a
    list, of each item). Kept in the field's metadata next to the rule."""

    required: str = ""            # the key must be given; the text says what it takes
    fix: str = ""                 # any bad value: "`key`: <value> is not allowed; <fix>" (for a list: each item)
    pattern: re.Pattern | None = None
    min_length: int | None = None
    max_length: int | None = None
    non_empty: bool = False       # a list needs at least one item
    check: Check | None = None    # what a rule cannot say (URIs, directories, unique labels); returns the value
    item_check: Callable[[Any], str | None] | None = None   # a list item's problem (pair types)
    read: Check | None = None     # reads the raw value instead of the rule (a custom mapping)
    write: Callable[[Any], Any] | None = None   # the value as the resolved spec writes it
    json: dict | None = None      # JSON schema the rule cannot generate (of each item of a list; with `per`:
                                  # of the whole mapping, applied next to the generated one)
    shorthand: str = ""           # a list item of settings may be this field's value alone (`models: [vgg13]`)
    science: bool = True          # False: where and how a sweep runs, not what it computes (not in spec_hash)
    layer: bool = False           # read while resolving the layers (`extends`), not a key of the resolved spec
    axes: bool = False            # the zipped swept groups (read by spec/axes.py)
    per: tuple = ()               # a mapping of these names (task kinds) to settings of the field's class
    swept: type | None = None     # a section: the `tasks/` class of its settings, any of which may be swept
    per_model: tuple = ()         # fields of `swept` given per model by other keys (`seeds`, `cue_proportions`)
    once: tuple = ()              # fields of the section with one value per sweep (not sweepable)


def key(default: Any, *, doc: str = "", ge: float | None = None, le: float | None = None,
        choices: tuple | Callable[[], tuple] | None = None, like: Rule | None = None, **how: Any) -> Any:
    """A key of the spec: `setting(default, ge=, le=, choices=, doc=)` (or the rule of another
    declaration, `like=rule_for(DataSettings, "seed")`) plus `Key(**how)`."""
    if like is not None:
        ge, le, choices, doc = like.ge, like.le, like.choices, doc or like.doc
    rule = setting(default, ge=ge, le=le, choices=choices, doc=doc).metadata
    metadata = {**rule, SPEC_KEY: Key(**how)}
    if isinstance(default, dict):   # a mutable default: a fresh copy per instance
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def key_of(f: dataclasses.Field) -> Key:
    return f.metadata.get(SPEC_KEY) or Key()


# ----- what rules cannot say (named by the declarations below) -----

def _storage(value: str, where: str, problems: list[str], body: dict) -> str:
    check_storage(value, problems)
    return value


def _data_root(value: Any, where: str, problems: list[str], body: dict) -> str | None:
    dataset = body.get("dataset", DEFAULT_DATASET)
    if body.get("root") is None and isinstance(dataset, str) and getattr(DATASETS.get(dataset), "needs_root", False):
        problems.append(f"`data.root`: is required for dataset {dataset!r} (only "
                        f"{', '.join(n for n, i in DATASETS.items() if not i.needs_root)} is built in); give the "
                        f"directory holding its files (`mmc-sweep data download {dataset} --root DIR` fetches them)")
    return check_root(value, problems)


def _tracking(value: Any, where: str, problems: list[str], body: dict) -> Any:
    if value.tracking_uri is not None:
        check_tracking_uri(value.tracking_uri, problems)
    return value


def _unique_labels(models: tuple, where: str, problems: list[str], body: dict) -> tuple:
    labels = [m.label for m in models]
    dups = sorted({label for label in labels if labels.count(label) > 1})
    if dups:
        problems.append(f"`{where}`: repeats {', '.join(dups)}; list each model once")
    built: dict[tuple, str] = {}
    for m in models:     # small_cnn and small_cnn-w16: one model, trained twice under two labels
        other = built.setdefault(m.built, m.label)
        if other != m.label:
            problems.append(f"`{where}`: {other} and {m.label} are one model ({m.name}'s own width is "
                            f"{m.built[1]}); list it once")
    return models


def _pair_type(item: Any) -> str | None:
    try:
        vocab.parse_pair_type(item)
    except ValueError as e:
        return str(e)
    return None


RESOURCE_AMOUNT = Rule(ge=0, le=1e9)   # of a custom resource, per worker
RESOURCE_UNIT = 0.0001                 # Ray's smallest amount of a resource: a nonzero amount below it is refused
BELOW_RESOURCE_UNIT = {"exclusiveMinimum": 0, "exclusiveMaximum": RESOURCE_UNIT}     # (JSON schema)
# only training kinds run data-parallel (spec/rules.py says so to the validator)
_ONE_WORKER_JSON = {"properties": {kind: {"properties": {"workers": {"const": 1}}}
                                   for kind in vocab.TASK_KINDS if kind not in vocab.TRAINING_KINDS}}


def _custom_resources(value: Any, where: str, problems: list[str], body: dict) -> tuple | None:
    if not isinstance(value, dict):
        problems.append(f"`{where}`: {show(value)} is not allowed; must be a mapping of resource name: amount")
        return None
    out = []
    for name, amount in value.items():
        if not isinstance(name, str) or not name or name in RESERVED_RESOURCES:
            problems.append(f"`{where}`: {show(name)} is not a custom resource name; use `cpus`/`gpus` for CPU/GPU")
        elif value_problem(amount, float, RESOURCE_AMOUNT) is not None:
            problems.append(f"`{where}.{name}`: {value_problem(amount, float, RESOURCE_AMOUNT)}")
        else:
            out.append((name, float(amount)))
    return tuple(sorted(out))


# ----- settings declared by the orchestrator (how a sweep runs; the lists inside sections) -----

@dataclass(frozen=True)
class ResourceSettings(Settings):
    cpus: float = setting(1.0, ge=RESOURCE_UNIT, le=1024, doc="CPUs per worker (may be fractional)")
    gpus: float = key(0.0, ge=0, le=64, json={"anyOf": [{"maximum": 1}, {"multipleOf": 1}],   # cross_problems
                                               "not": BELOW_RESOURCE_UNIT},
                      doc="GPUs per worker; a fraction < 1 shares a GPU")
    workers: int = setting(1, ge=1, le=1024, doc="> 1: data-parallel through Ray Train (training kinds only)")
    custom: tuple = key((), doc="per worker, extra Ray resources, e.g. {accelerator_type_a100: 0.01}",
                        read=_custom_resources, write=dict,
                        json={"type": "object",
                              "propertyNames": {"minLength": 1, "not": {"enum": list(RESERVED_RESOURCES)}},
                              "additionalProperties": {"type": "number", "minimum": 0, "maximum": RESOURCE_AMOUNT.le,
                                                       "not": BELOW_RESOURCE_UNIT}})

    def cross_problems(self) -> list[tuple[str, str]]:
        if self.gpus > 1 and self.gpus != int(self.gpus):
            return [("gpus", f"{self.gpus!r} is not allowed; use a fraction below 1 or a whole number of GPUs")]
        return [(name, f"{amount!r} is not allowed; Ray counts resources in steps of {RESOURCE_UNIT:g}, so a "
                       f"nonzero amount is at least {RESOURCE_UNIT:g}")
                for name, amount in (("gpus", self.gpus), *((f"custom.{n}", a) for n, a in self.custom))
                if 0 < amount < RESOURCE_UNIT]


@dataclass(frozen=True)
class MlflowSettings(Settings):
    enabled: bool = setting(True, doc="log every task as an MLflow child run")
    tracking_uri: str | None = key(None, json=TRACKING_JSON, doc="null: SQLite file <storage>/<name>/mlflow.db "
                                   "(local storage only); a tracking server URI for remote storage or clusters")


@dataclass(frozen=True)
class DataPlace:
    """The `data` keys that are not settings of a task: where the files are."""

    root: str | None = key(None, like=rule_for(DataSettings, "root"), fix="give the directory holding the dataset "
                           "files", min_length=1, check=_data_root, json=ROOT_JSON, science=False)


@dataclass(frozen=True)
class FinetuneLists:
    """The `finetune` keys that shape the graph rather than set a task."""

    methods: tuple[str, ...] = key(("naive", "llrt", "lpft", "cbft", "naive_cued"), choices=FINETUNE_METHOD_NAMES,
                                   doc="fine-tuning methods applied to every cue model (naive_cued: naive "
                                       "fine-tuning with CBFT's extra cued data, claim (c)'s control)")


# The pairs a spec evaluates unless it lists its own: the main pairs (independent initialisations), then
# the same-init design that separates mechanism from initialisation (claim (d)), its same-data controls
# from one initialisation, and the noise floor. A default whose models `cue_proportions` cannot train is
# left out (sweep_spec.py says so when it plans).
DEFAULT_PAIRS = (*vocab.PAIRS, vocab.pair_type_name(vocab.CUE_NOCUE, vocab.SAME_INIT),
                 vocab.pair_type_name(vocab.CUE_CUE, vocab.SPAWN, 0), vocab.pair_type_name(vocab.CUE_CUE, vocab.RESUBSET),
                 vocab.pair_type_name(vocab.NOCUE_NOCUE, vocab.SELF))


@dataclass(frozen=True)
class PathLists:
    """The `paths` keys that shape the graph rather than set a task."""

    pairs: tuple[str, ...] = key(DEFAULT_PAIRS, item_check=_pair_type, json={"pattern": vocab.pair_type_pattern()},
                                 doc="pair types (and controls `<pair>:<design>`) whose paths are evaluated; "
                                     "by default the main pairs and the controls the claims need, less those "
                                     "`cue_proportions` cannot train")
    kinds: tuple[str, ...] = key(vocab.PATH_KINDS, choices=vocab.PATH_KINDS,
                                 doc="linear | quadratic (trained midpoint) | aligned (permutation)")
    finetuned_kinds: tuple[str, ...] = key((vocab.LINEAR,), choices=vocab.PATH_KINDS,
                                           doc="path kinds of the pretrained~ft pairs (the paper's fine-tuning "
                                               "claims use the linear path; add quadratic or aligned if you need "
                                               "them)")
    alignments: tuple[str, ...] = key(("activation",), choices=ALIGNMENT_NAMES,
                                      doc="alignment methods of aligned paths")


# ----- the top level -----

@dataclass(frozen=True)
class TopLevel:
    """Every top-level key of a sweep spec, in the order the resolved spec writes them. A section
    whose settings may be swept (`Key.swept`) holds here only its keys with one value per sweep
    (None when it has none); its settings are in each `sweep_spec.Variant`."""

    name: str = key(None, required="it is required (letters, digits, - _ .); a spec file without one is named after "
                                   "its file, where the file's name (without .yaml) is one", pattern=SWEEP_NAME,
                    fix="use 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit, without "
                        "'..' or path separators", doc="the sweep's name: its directory is <storage>/<name>/ (a spec file's name by default)")
    description: str | None = key(None, fix=f"must be text of at most {MAX_DESCRIPTION} characters",
                                  max_length=MAX_DESCRIPTION, science=False, doc="free text about the sweep")
    extends: str | None = key(None, layer=True, min_length=1,
                              doc="a shipped sweep's name (`default`) or a spec file (relative to this one) "
                                  "whose keys this spec starts from")
    storage: str = key("./mmc-runs", check=_storage, json=STORAGE_JSON, science=False,
                       doc="local path or URI (file://, s3://, gs://, hdfs://); runs go to <storage>/<name>/; "
                           "on a cluster every node must see it")
    data: DataPlace = key(DataPlace(), swept=DataSettings, per_model=("cue_proportion", "seed", "cue_seed"),
                          once=("dataset", "root"), doc="the dataset and its cue (one dataset per sweep)")
    pretrain: None = key(None, swept=OptimSettings, doc="training of the cue and no-cue models")
    finetune: FinetuneLists = key(FinetuneLists(), swept=FinetuneSettings,
                                  doc="fine-tuning of the cue models on a small clean subset")
    midpoint: None = key(None, swept=MidpointSettings, doc="training of the quadratic path's control point")
    align: None = key(None, swept=AlignSettings, doc="permutation alignment of aligned paths")
    paths: PathLists = key(PathLists(), swept=PathSettings, doc="which paths are evaluated, and how")
    models: tuple[ModelSettings, ...] = key((ModelSettings(),), non_empty=True, shorthand="name",
                                            check=_unique_labels,
                                            fix="must be a non-empty list, e.g. [small_cnn] or [{name: vgg13, "
                                                "width: 32}]", doc="every model trains its own graph of tasks")
    seeds: tuple[int, ...] = key((0, 1, 2), like=rule_for(DataSettings, "seed"), non_empty=True,
                                 fix="must be a whole number in [0, 2^63 - 1]",
                                 doc="replicates: each seed trains its own models (data seed = the seed; "
                                     "initialisations are drawn independently per model)")
    cue_proportions: tuple[float, ...] = key((0.0, 0.8), like=rule_for(DataSettings, "cue_proportion"),
                                             non_empty=True,
                                             doc="0.0 trains the no-cue models; each p > 0 trains cue models")
    population: Population = key(Population(), doc="a population of models paired with every other one (the "
                                                   "mechanism map): which models, which paths; off by default")
    axes: tuple = key((), axes=True, doc="zipped groups of swept settings, e.g. [{finetune.lr: [0.01, 0.1], "
                                         "finetune.epochs: [30, 10]}]; the groups (and `{grid: [...]}` values) "
                                         "combine as a grid")
    resources: dict[str, ResourceSettings] = key({kind: ResourceSettings() for kind in vocab.TASK_KINDS},
                                                 per=vocab.TASK_KINDS, science=False, json=_ONE_WORKER_JSON,
                                                 fix=f"must map task kinds ({', '.join(vocab.TASK_KINDS)}) to "
                                                     "{cpus, gpus, workers, custom}",
                                                 doc="per task kind, what one worker of a task takes")
    max_concurrent: int | None = key(None, ge=1, le=10_000, science=False,
                                     doc="tasks running at once; null: as many as the cluster's resources allow")
    mlflow: MlflowSettings = key(MlflowSettings(), check=_tracking, science=False,
                                 doc="MLflow tracking: a parent run per sweep, a child run per task")
    claims: ClaimRules = key(ClaimRules(), doc="decision rules of the paper's claims, declared before the results "
                                               "(docs/SCIENCE.md, 'Verdicts'); changing them is a new spec version")


# ----- the declaration, walked -----

SCALAR, LIST, SETTINGS_LIST, SETTINGS, PER_NAME, SECTION, AXES, LAYER = (
    "scalar", "list", "settings list", "settings", "per name", "section", "axes", "layer")


@dataclass(frozen=True)
class Declared:
    """One declared key: its field, type, rule, Key, and what kind of value it holds."""

    name: str
    tp: Any
    rule: Rule
    key: Key
    kind: str
    default: Any

    @property
    def item(self) -> Any:
        """The item type of a list."""
        return typing.get_args(self.tp)[0]


def _is_settings(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Settings)


def _kind(tp: Any, how: Key) -> str:
    if how.layer:
        return LAYER
    if how.axes:
        return AXES
    if how.swept is not None:
        return SECTION
    if how.per:
        return PER_NAME
    if typing.get_origin(tp) is tuple:
        return SETTINGS_LIST if _is_settings(typing.get_args(tp)[0]) else LIST
    return SETTINGS if _is_settings(tp) else SCALAR


@functools.lru_cache(maxsize=None)
def declared(cls: type = TopLevel) -> tuple[Declared, ...]:
    """Every key declared by `cls` (TopLevel, a section's lists, a settings class), in order."""
    out = []
    for f, tp, rule in declared_fields(cls):
        how = key_of(f)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if how.per:
            tp = typing.get_args(tp)[1]
        out.append(Declared(f.name, tp, rule, how, _kind(tp, how), default))
    return tuple(out)


def top_key(name: str) -> Declared:
    return next(d for d in declared() if d.name == name)


def lists_class(section: str) -> type | None:
    """The dataclass of a section's keys with one value per sweep (None when it has none)."""
    tp = top_key(section).tp
    return tp if dataclasses.is_dataclass(tp) else None


TOP_KEYS = tuple(d.name for d in declared())
# Sections that hold task settings, and the `tasks/` class that declares each one.
SETTINGS_CLASSES: dict[str, type] = {d.name: d.key.swept for d in declared() if d.kind == SECTION}
DATA_AXIS_FIELDS = top_key("data").key.per_model   # given per model by `cue_proportions` and `seeds`
# Keys of those sections that are not settings of one task (lists that shape the graph, where data lives).
STRUCTURAL = {s: tuple(d.name for d in declared(lists_class(s))) for s in SETTINGS_CLASSES if lists_class(s)}
NOT_SWEEPABLE = tuple(f"{s}.{name}" for s in SETTINGS_CLASSES for name in top_key(s).key.once)
NOT_SCIENCE = tuple(d.name for d in declared() if not d.key.science)   # where and how, not what
NOT_SCIENCE_IN_SECTIONS = tuple((s, d.name) for s in STRUCTURAL for d in declared(lists_class(s)) if not d.key.science)


def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid"}


def section_fields(section: str) -> list[str]:
    """Keys a settings section accepts (its settings, then its structural keys)."""
    cls = SETTINGS_CLASSES[section]
    skip = (*top_key(section).key.per_model, *STRUCTURAL.get(section, ()))
    return [f.name for f in dataclasses.fields(cls) if f.name not in skip] + list(STRUCTURAL.get(section, ()))


def settings_classes() -> dict[str, type]:
    """Section -> settings class, for every section whose values become `<section>.<field>` columns."""
    return {"data": DataSettings, "model": ModelSettings, **{k: v for k, v in SETTINGS_CLASSES.items() if k != "data"}}
