"""The sweep spec: what to run (settings, swept axes, models, seeds, pairs) and where (storage,
resources, MLflow). `load_spec` reads YAML, `SweepSpec` is the validated, resolved result.

Every key is declared once: the top level in `orchestrator.spec.schema.TopLevel`, each setting in
the `tasks/` dataclass that uses it (`tasks.settings.setting`); this module validates the spec
*through* those declarations (`orchestrator.spec.validation`), so a value the task layer would
reject is rejected here, before any work. A spec is resolved in layers (`orchestrator.spec.layers`),
later ones winning, and `SweepSpec.provenance` names the layer that set each key:

    default < the dataset's profile (orchestrator/spec/profiles/<dataset>.yaml)
            < `extends:` a shipped sweep or a file < the spec file < `key=value` overrides

Any setting can be swept: `finetune.lam: {grid: [1, 3, 10]}` inline, or zipped groups under
`axes:` (`- {finetune.lr: [0.01, 0.1], finetune.epochs: [30, 10]}`); the axes combine as a grid,
and each combination is a `Variant` with its own fully resolved settings.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field, fields, replace
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from orchestrator.messages import MAX_SHOWN, as_typed, show, type_name
from orchestrator.spec.axes import extract_axes
from orchestrator.spec.jsonschema import json_schema
from orchestrator.spec.locations import redacted_problems
from orchestrator.uris import redact
from orchestrator.spec.layers import (Layered, is_user_layer, layer, named_after_file, with_extends, with_overrides,
                                      with_profile, PROFILE_RESOURCE, profile_for, shipped_sweeps)  # last 3: read here too
from orchestrator.spec.planned_pairs import (all_cued, left_out_note, partly_planned, uncontrolled,
                                            without_unservable_default_pairs)
from orchestrator.spec.rules import spec_problems
from orchestrator.spec.schema import (AXES, DEFAULT_DATASET, LAYER, LIST, PER_NAME, SECTION, SETTINGS, SETTINGS_LIST,
                                      NOT_SCIENCE, NOT_SCIENCE_IN_SECTIONS, SpecError, TopLevel, declared, is_grid,
                                      key_of)
from orchestrator.spec.validation import read_sections, read_top, unknown_keys
from orchestrator.spec.yaml_io import YamlError, decode, dump_yaml, parse_yaml, read_text
from tasks.settings.align import AlignSettings
from tasks.settings.data import DataSettings
from tasks.settings.finetune import FinetuneSettings
from tasks.settings.paths import MidpointSettings, PathSettings
from tasks.settings import as_dict
from tasks.settings.train import OptimSettings

DEFAULT_SPEC_RESOURCE = "sweeps/default.yaml"   # package data of `orchestrator.spec`
MAX_VARIANTS = 10_000


@dataclass(frozen=True)
class Variant:
    """One combination of swept values and the settings every task of that combination uses: one
    field per section of `schema.TopLevel` whose settings may be swept. `data` has the defaults for
    `cue_proportion` and `seed`; each model fills in its own."""

    swept: tuple[tuple[str, Any], ...]     # (dotted key, value) per axis, in axis order
    data: DataSettings
    pretrain: OptimSettings
    finetune: FinetuneSettings
    midpoint: MidpointSettings
    align: AlignSettings
    paths: PathSettings

    def label(self) -> str:
        return ", ".join(f"{key}={show(value)}" for key, value in self.swept) or "(no swept settings)"


@dataclass(frozen=True)
class Provenance:
    """Which layer set each key of a resolved spec (`plan --resolved --explain`)."""

    layers: tuple[str, ...]                # lowest first: default, profile:, extends:, file:, override:
    keys: dict                             # dotted key of the resolved spec -> its layer


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: its top-level keys (`top`, declared by `schema.TopLevel`), one Variant per
    combination of swept values, and `resolved`, the spec with every key written out."""

    top: TopLevel
    variants: tuple[Variant, ...]
    resolved: dict
    source: str = "<spec>"
    provenance: Provenance = field(default=Provenance((), {}), compare=False, repr=False)
    notes: tuple[str, ...] = field(default=(), compare=False, repr=False)   # what the plan leaves out, and why

    # the top-level keys other modules read, by their names
    name = property(lambda self: self.top.name)
    description = property(lambda self: self.top.description)
    storage = property(lambda self: self.top.storage)
    models = property(lambda self: self.top.models)                     # tasks.models.ModelSettings
    seeds = property(lambda self: self.top.seeds)
    cue_proportions = property(lambda self: self.top.cue_proportions)
    axes = property(lambda self: self.top.axes)                         # zipped groups of (dotted key, values)
    resources = property(lambda self: self.top.resources)               # task kind -> schema.ResourceSettings
    max_concurrent = property(lambda self: self.top.max_concurrent)
    mlflow = property(lambda self: self.top.mlflow)                     # schema.MlflowSettings
    claims = property(lambda self: self.top.claims)                     # claim_rules.ClaimRules
    population = property(lambda self: self.top.population)             # population.Population
    data_root = property(lambda self: self.top.data.root)
    methods = property(lambda self: self.top.finetune.methods)          # finetune.methods
    pairs = property(lambda self: self.top.paths.pairs)                 # as written (`cue~cue:spawn@2`)
    path_kinds = property(lambda self: self.top.paths.kinds)            # paths.kinds
    finetuned_kinds = property(lambda self: self.top.paths.finetuned_kinds)   # of the pretrained~ft pairs
    alignments = property(lambda self: self.top.paths.alignments)       # paths.alignments

    def explicit(self, dotted: str) -> bool:
        """Whether the user set the key `dotted` (in the spec file or an override), not a default,
        profile or `extends:`."""
        return is_user_layer(self.provenance.keys.get(dotted, ""))

    def with_top(self, **changes: Any) -> SweepSpec:
        """This spec with top-level keys changed (`storage=...`), its resolved spec written again.
        The values are not validated: give what `load_spec` would accept."""
        top = replace(self.top, **changes)
        return replace(self, top=top, resolved=_resolved(top, self.variants[0]))

    @functools.cached_property
    def all_cued(self) -> tuple[float, ...]:
        """The cue proportions that cue every training sample of the dataset (`planned_pairs.all_cued`)."""
        return all_cued(self.cue_proportions, self.dataset, self.data_root)

    dataset = property(lambda self: self.variants[0].data.dataset)

    @property
    def data(self):
        """The data settings of the first combination, with `root` (dataset, cue and root are the
        same in every combination)."""
        return replace(self.variants[0].data, root=self.data_root)

    @property
    def cue_models(self) -> tuple[float, ...]:
        """Cue proportions > 0 (each trains cue models)."""
        return tuple(p for p in self.cue_proportions if p > 0)

    @property
    def swept_keys(self) -> tuple[str, ...]:
        return tuple(key for group in self.axes for key, _ in group)


# ----- loading -----

RESOLVED_HEAD = "# The resolved spec of "   # how a resolved spec file starts (`dump_spec`, `explain_spec`)

def load_spec(path: str | Path | None = None, overrides: list[str] = ()) -> SweepSpec:
    """Read, resolve and validate a spec file (None: the built-in default sweep) with `key=value`
    overrides; SpecError lists every problem."""
    source = f"<built-in {DEFAULT_SPEC_RESOURCE}>" if path is None else as_typed(str(path))
    raw, resolved = _read(path, source)
    raw = named_after_file(raw, path)     # every key left out defaults: the name to the file's (not an extended base's)
    # the built-in sweep's keys are not the user's; nor are those of a resolved spec (`plan --resolved`, a
    # sweep's spec.yaml), which lists every key, asked for or not: a record, read like a stored spec.yaml
    label = ("extends:default" if path is None else f"resolved:{source}" if resolved else f"file:{source}")
    if overrides:   # no raw control bytes, no value longer than a message shows: shortened once its secrets are hidden
        source += " with " + " ".join(o if o.isprintable() and len(o) <= MAX_SHOWN else show(o) for o in map(redact, overrides))
    spec = validate_spec(raw, source, base_dir=Path(path).parent if path is not None else None, overrides=overrides,
                         label=label)
    if problems := redacted_problems(spec.storage, spec.mlflow.tracking_uri):   # a resolved spec given back
        raise SpecError(problems, source)
    return spec


def parse_spec(text: str, source: str = "<spec>", label: str | None = None) -> SweepSpec:
    """Validate the YAML `text` of a spec; `source` names it in error messages; `label` is its layer
    (`file:<source>`, the user's; `stored:<path>` for a sweep's own spec.yaml, a record, not a request;
    by default `file:`, or `resolved:` for a text that starts with `RESOLVED_HEAD`, a record too)."""
    try:
        raw = parse_yaml(text)
    except YamlError as e:
        raise SpecError([str(e)], source) from None
    if label is None and text.startswith(RESOLVED_HEAD):
        label = f"resolved:{source}"
    return validate_spec(raw, source, label=label)


def _read(path: str | Path | None, source: str) -> tuple[Any, bool]:
    """The file's YAML, and whether it is a resolved spec (it starts with `RESOLVED_HEAD`)."""
    try:
        if path is None:
            data = importlib_resources.files("orchestrator.spec").joinpath(DEFAULT_SPEC_RESOURCE).read_bytes()
            return parse_yaml(decode(data, source, "spec")), False
        text = read_text(path, "spec file")
        return parse_yaml(text), text.startswith(RESOLVED_HEAD)
    except YamlError as e:
        raise SpecError([str(e)], source) from None


# ----- validation -----

def validate_spec(raw: Any, source: str = "<spec>", base_dir: Path | None = None, overrides: list[str] = (),
                  label: str | None = None) -> SweepSpec:
    """Resolve the layers (`key=value` overrides, `extends`, the dataset's profile) and validate,
    collecting every problem."""
    if raw is None and not overrides:
        raise SpecError(["the spec is empty; give it at least one key, e.g. `name:` (`mmc-sweep plan` shows the "
                         "built-in default sweep)"], source)
    if raw is not None and not isinstance(raw, dict):
        raise SpecError([f"the spec must be a mapping of `key: value` lines, not a {type_name(raw)}"],
                        source)
    spec = with_overrides(layer(raw or {}, label or f"file:{source}"), list(overrides), source)
    spec = with_extends(spec, source, base_dir)
    problems = unknown_keys(spec.raw)
    data = spec.raw.get("data")
    full = with_profile(spec, data.get("dataset", DEFAULT_DATASET) if isinstance(data, dict) else DEFAULT_DATASET)
    axes, base = extract_axes(full.raw, problems)
    top = read_top(base, axes, problems)
    variants = _variants(base, axes, problems)
    dropped: dict[str, str] = {}
    if not problems and top is not None and variants:
        cued = all_cued(top.cue_proportions, variants[0].data.dataset, top.data.root)
        top, dropped = without_unservable_default_pairs(top, full.set_by_user("paths.pairs"), cued)
        problems += spec_problems(top, variants, full.set_by_user)
    if problems:
        raise SpecError([full.where_set(problem) for problem in dict.fromkeys(problems)], source)
    resolved = _resolved(top, variants[0])
    notes = (*partly_planned(top.paths.pairs, top.cue_proportions, cued),
             *uncontrolled(top.paths.pairs, top.paths.kinds, top.finetune.methods))
    provenance = _provenance(resolved, full, top.axes)
    if dropped:   # say what the default lost, where the plan is printed and where `--explain` names the layer
        provenance.keys["paths.pairs"] += f", less {', '.join(dropped)}"
        notes = (left_out_note(dropped, full.origin(("paths", "pairs")), top.cue_proportions), *notes)
    return SweepSpec(top, tuple(variants), resolved, source, provenance, notes)


def _variants(base: dict, axes: tuple, problems: list[str]) -> list[Variant]:
    """Every combination of the axes (a grid over zipped groups), validated."""
    groups = [list(zip(*(values for _, values in group))) for group in axes]
    total = 1
    for g in groups:
        total *= len(g)
    if total > MAX_VARIANTS:
        problems.append(f"`axes`: {total} combinations of swept values; at most {MAX_VARIANTS}")
        return []
    out = []
    for combo in itertools.product(*groups) if groups else [()]:
        swept = tuple((key, value) for group, values in zip(axes, combo)
                      for (key, _), value in zip(group, values))
        raw = copy.deepcopy(base)
        for key, value in swept:
            section, field_name = key.split(".", 1)
            raw.setdefault(section, {})[field_name] = value
        where = f" (in the combination {', '.join(f'{k}={show(v)}' for k, v in swept)})" if swept else ""
        sections = read_sections(raw, problems, where)
        if sections is not None:
            out.append(Variant(swept, **sections))
    return out


def _plain(obj: Any) -> dict:
    """A settings object (or a section's lists) as the resolved spec writes it."""
    return {f.name: key_of(f).write(getattr(obj, f.name)) if key_of(f).write else getattr(obj, f.name)
            for f in fields(obj)}


def _written(kind: str, value: Any, first: Any = None, skip: tuple = ()) -> Any:
    if kind == SECTION:
        values = {k: v for k, v in as_dict(first).items() if k not in skip}
        return {**values, **(_plain(value) if value is not None else {})}
    if kind == AXES:
        return [{key: list(values) for key, values in group} for group in value]
    if kind == SETTINGS_LIST:
        return [_plain(s) for s in value]
    if kind == SETTINGS:
        return _plain(value)
    if kind == PER_NAME:
        return {name: _plain(s) for name, s in value.items()}
    return list(value) if kind == LIST else value


def _resolved(top: TopLevel, first: Variant) -> dict:
    """Every declared key written out (the first combination's settings, then the axes)."""
    out = {d.name: _written(d.kind, getattr(top, d.name), getattr(first, d.name, None), d.key.per_model)
           for d in declared() if d.kind != LAYER}
    return json.loads(json.dumps(out))   # plain JSON types (tuples -> lists)


def _leaves(tree: dict, prefix: tuple = ()):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _provenance(resolved: dict, full: Layered, axes: tuple) -> Provenance:
    """The layer of every key of `resolved`; a swept key names the layer that swept it."""
    swept, keys, grids = {key for group in axes for key, _ in group}, {}, False
    for path in _leaves(resolved):
        dotted, label = ".".join(path), full.origin(path)
        if dotted in swept:
            value = full.raw.get(path[0], {}).get(path[1]) if isinstance(full.raw.get(path[0]), dict) else None
            grids |= is_grid(value)
            label = f"{label}, swept" if is_grid(value) else f"{full.origin(('axes',))}, swept by axes"
        keys[dotted] = label
    if grids:   # the resolved `axes` also lists the `{grid: ...}` values
        written = f"{keys['axes']} and " if "axes" in full.raw else ""
        keys["axes"] = f"{written}the {{grid: ...}} values"
    return Provenance(("default", *full.layers), keys)


# ----- writing, hashing, comparing -----

def dump_spec(spec: SweepSpec) -> str:
    """The resolved spec as YAML (every key), loadable again to the same spec, as a record: with `parse_spec`
    (`label="stored:<path>"`, a sweep's spec.yaml) or as a spec file, which starts with `RESOLVED_HEAD`, so
    its keys are not taken as the user's requests (a default that serves no listed pair, `finetune.methods`
    without 'pretrained~ft', is not refused; overrides given with it are requests as always)."""

    head = RESOLVED_HEAD + ("this sweep: every key, as run (mmc-sweep writes it; `mmc-sweep run` compares a rerun's spec "
                            "with it). Credentials in URIs are redacted.\n")
    resolved = copy.deepcopy(spec.resolved)
    resolved["storage"] = redact(resolved["storage"])   # where, not what: never compared
    if resolved["mlflow"].get("tracking_uri"):
        resolved["mlflow"]["tracking_uri"] = redact(resolved["mlflow"]["tracking_uri"])
    return head + dump_yaml(resolved, sort_keys=False)


def science(resolved: dict) -> dict:
    """The part of a resolved spec that determines results (not where or how it runs)."""
    out = {k: v for k, v in resolved.items() if k not in NOT_SCIENCE}
    for section, name in NOT_SCIENCE_IN_SECTIONS:
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k != name}
    return out


def spec_hash(spec: SweepSpec) -> str:
    """sha256 of the spec's science part (canonical JSON)."""
    text = json.dumps(science(spec.resolved), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def differences(old: dict, new: dict, prefix: str = "", baseline: dict | None = None) -> list[str]:
    """`key: old -> new` for every science setting that differs between two resolved specs. A key the
    stored spec lacks (added to mmc-sweep since it was written) at the value it takes by default is no
    change."""
    out = []
    if not prefix:
        baseline = _baseline(new)
        old, new = science(old), science(new)
    for key in sorted(set(old) | set(new), key=str):
        a, b, where = old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}{key}"
        if key not in old and _dig(baseline or {}, where) == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{where}.", baseline)
        elif a != b:
            out.append(f"{where}: {show(a)} -> {show(b)}")
    return out


_MISSING = object()


def _baseline(resolved: dict) -> dict:
    """The resolved spec a spec naming only its dataset gets: the values every key takes by default."""
    data = resolved.get("data") if isinstance(resolved.get("data"), dict) else {}
    dataset = data.get("dataset", DEFAULT_DATASET)
    try:
        return _baseline_of(dataset)
    except SpecError:       # a dataset that needs a root: the declared defaults, without its profile
        return _baseline_of(DEFAULT_DATASET)


@functools.lru_cache(maxsize=8)
def _baseline_of(dataset: str) -> dict:
    return science(validate_spec({"name": "baseline", "data": {"dataset": dataset}}, "<defaults>").resolved)


def _dig(resolved: dict, where: str) -> Any:
    value: Any = resolved
    for part in where.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def spec_json_schema() -> dict:
    """JSON schema of a sweep spec, generated from the settings declarations (for editors)."""
    return json_schema()
