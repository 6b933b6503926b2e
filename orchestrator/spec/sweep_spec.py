"""The sweep spec: what to run (settings, swept axes, models, seeds, pairs) and where (storage,
resources, MLflow). `load_spec` reads YAML, `SweepSpec` is the validated, resolved result.

Every setting is declared once, in the `tasks/` dataclass that uses it (`tasks.settings.setting`);
this module validates the spec *through* those declarations (`orchestrator.spec.schema`), so a
value the task layer would reject is rejected here, before any work. A spec is resolved in layers,
later ones winning:

    dataclass defaults < the dataset's profile (orchestrator/spec/profiles/<dataset>.yaml)
                       < `extends:` a shipped sweep < the spec file < `key=value` overrides

Any setting can be swept: `finetune.lam: {grid: [1, 3, 10]}` inline, or zipped groups under
`axes:` (`- {finetune.lr: [0.01, 0.1], finetune.epochs: [30, 10]}`); the axes combine as a grid,
and each combination is a `Variant` with its own fully resolved settings.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from orchestrator.spec import schema
from orchestrator.messages import show, type_name
from orchestrator.spec.axes import extract_axes
from orchestrator.spec.jsonschema import json_schema
from orchestrator.spec.rules import spec_problems
from orchestrator.spec.schema import SpecError
from orchestrator.spec.yaml_io import YamlError, decode, parse_yaml, read_text
from tasks.settings import as_dict

DEFAULT_SPEC_RESOURCE = "sweeps/default.yaml"   # package data of `orchestrator.spec`
PROFILE_RESOURCE = "profiles/{dataset}.yaml"
MAX_VARIANTS = 10_000
MAX_EXTENDS_DEPTH = 5


@dataclass(frozen=True)
class Variant:
    """One combination of swept values and the settings every task of that combination uses.
    `data` has the defaults for `cue_proportion` and `seed`; each model fills in its own."""

    swept: tuple[tuple[str, Any], ...]     # (dotted key, value) per axis, in axis order
    sections: tuple[tuple[str, Any], ...]  # (section, settings object) for schema.SETTINGS_SECTIONS

    def __getattr__(self, name: str) -> Any:
        for section, settings in object.__getattribute__(self, "sections"):
            if section == name:
                return settings
        raise AttributeError(name)

    def label(self) -> str:
        return ", ".join(f"{key}={show(value)}" for key, value in self.swept) or "(no swept settings)"


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep. Lists are tuples; `resolved` is the spec with every key written out."""

    name: str
    storage: str
    data_root: str | None
    models: tuple                       # tasks.models.ModelSettings
    seeds: tuple[int, ...]
    cue_proportions: tuple[float, ...]
    methods: tuple[str, ...]            # finetune.methods
    pairs: tuple[str, ...]              # paths.pairs, as written (`cue~cue:spawn@2`)
    path_kinds: tuple[str, ...]         # paths.kinds
    finetuned_kinds: tuple[str, ...]    # paths.finetuned_kinds (the pretrained~ft pairs)
    alignments: tuple[str, ...]         # paths.alignments
    axes: tuple[tuple[tuple[str, tuple], ...], ...]   # zipped groups of (dotted key, values)
    variants: tuple[Variant, ...]
    resources: dict                     # task kind -> spec_schema.ResourceSettings
    max_concurrent: int | None
    mlflow: Any                         # spec_schema.MlflowSettings
    resolved: dict
    source: str = "<spec>"

    @property
    def dataset(self) -> str:
        return self.variants[0].data.dataset

    @property
    def data(self):
        """The data settings of the first combination, with `root` (dataset, cue and root are the
        same in every combination)."""
        from dataclasses import replace

        return replace(self.variants[0].data, root=self.data_root)

    @property
    def cue_models(self) -> tuple[float, ...]:
        """Cue proportions > 0 (each trains cue models)."""
        return tuple(p for p in self.cue_proportions if p > 0)

    @property
    def swept_keys(self) -> tuple[str, ...]:
        return tuple(key for group in self.axes for key, _ in group)


# ----- loading -----

def load_spec(path: str | Path | None = None, overrides: list[str] = ()) -> SweepSpec:
    """Read, resolve and validate a spec file (None: the built-in default sweep) with `key=value`
    overrides; SpecError lists every problem."""
    source = f"<built-in {DEFAULT_SPEC_RESOURCE}>" if path is None else str(path)
    raw = _read(path, source)
    if overrides:
        raw = apply_overrides(raw, overrides, source)
        source = f"{source} with {' '.join(overrides)}"
    return validate_spec(raw, source, base_dir=Path(path).parent if path is not None else None)


def parse_spec(text: str, source: str = "<spec>") -> SweepSpec:
    """Validate the YAML `text` of a spec; `source` names it in error messages."""
    try:
        raw = parse_yaml(text)
    except YamlError as e:
        raise SpecError([str(e)], source) from None
    return validate_spec(raw, source)


def _read(path: str | Path | None, source: str) -> Any:
    try:
        if path is None:
            data = importlib_resources.files("orchestrator.spec").joinpath(DEFAULT_SPEC_RESOURCE).read_bytes()
            return parse_yaml(decode(data, source, "spec"))
        return parse_yaml(read_text(path, "spec file"))
    except YamlError as e:
        raise SpecError([str(e)], source) from None


def apply_overrides(raw: Any, overrides: list[str], source: str) -> dict:
    """`finetune.lam=3`, `seeds=[0,1,2]`, `paths.pairs=[cue~nocue]`: dotted keys, YAML values."""
    if raw is not None and not isinstance(raw, dict):
        raise SpecError([f"the spec must be a mapping of `key: value` lines, not a {type_name(raw)}"], source)
    out = copy.deepcopy(raw) if isinstance(raw, dict) else {}
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.isidentifier() for p in parts):
            problems.append(f"override {item!r} is not `key=value` with a dotted key (e.g. finetune.lam=3)")
            continue
        try:
            value = parse_yaml(text)
        except YamlError as e:
            problems.append(f"override {item!r}: {e}")
            continue
        target = out
        for part in parts[:-1]:
            node = target.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"override {item!r}: `{part}` is not a mapping in the spec")
                break
            target = node
        else:
            target[parts[-1]] = value
    if problems:
        raise SpecError(problems, source)
    return out


def _resource_text(name: str) -> str | None:
    file = importlib_resources.files("orchestrator.spec").joinpath(name)
    return decode(file.read_bytes(), f"<built-in {name}>") if file.is_file() else None


def _extends(raw: dict, source: str, base_dir: Path | None, depth: int = 0) -> dict:
    """Merge the sweep named by `extends:` (a shipped sweep's name, or a path relative to the spec)
    under `raw`."""
    parent = raw.get("extends")
    if parent is None:
        return raw
    if not isinstance(parent, str) or not parent:
        raise SpecError([f"`extends`: {show(parent)} is not allowed; give a shipped sweep name "
                         f"({', '.join(shipped_sweeps())}) or a spec file path"], source)
    if depth >= MAX_EXTENDS_DEPTH:
        raise SpecError([f"`extends`: more than {MAX_EXTENDS_DEPTH} levels (a loop?)"], source)
    text = _resource_text(f"sweeps/{parent}.yaml") if "/" not in parent and not parent.endswith(".yaml") else None
    if text is None:
        path = Path(parent) if Path(parent).is_absolute() or base_dir is None else base_dir / parent
        if not path.is_file():
            raise SpecError([f"`extends`: {parent!r} is neither a shipped sweep ({', '.join(shipped_sweeps())}) "
                             f"nor a spec file"], source)
    try:
        if text is None:
            text, base_dir = read_text(path, "spec file"), path.parent
        base = parse_yaml(text)
    except YamlError as e:
        raise SpecError([f"`extends`: {parent}: {e}"], source) from None
    if not isinstance(base, dict):
        raise SpecError([f"`extends`: {parent!r} is not a mapping"], source)
    base = _extends(base, source, base_dir, depth + 1)
    merged = merge(base, {k: v for k, v in raw.items() if k != "extends"})
    return merged


def shipped_sweeps() -> list[str]:
    folder = importlib_resources.files("orchestrator.spec").joinpath("sweeps")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def merge(base: dict, top: dict) -> dict:
    """`top` over `base`: mappings merge key by key; lists, scalars and `{grid: ...}` replace."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not schema.is_grid(value) \
                and not schema.is_grid(out[key]):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def profile_for(dataset: Any) -> dict:
    """The partial spec tuned for `dataset` ({} when it has none)."""
    if not isinstance(dataset, str) or not dataset.isidentifier():
        return {}
    text = _resource_text(PROFILE_RESOURCE.format(dataset=dataset))
    return parse_yaml(text) if text else {}


# ----- validation -----

def validate_spec(raw: Any, source: str = "<spec>", base_dir: Path | None = None) -> SweepSpec:
    """Resolve (`extends`, the dataset's profile) and validate spec data, collecting every problem."""
    if raw is None:
        raise SpecError(["the spec is empty; it needs at least `name:` (`mmc-sweep plan` shows the "
                         "built-in default sweep)"], source)
    if not isinstance(raw, dict):
        raise SpecError([f"the spec must be a mapping of `key: value` lines, not a {type_name(raw)}"],
                        source)
    raw = _extends(raw, source, base_dir)
    problems = schema.unknown_keys(raw)
    dataset = (raw.get("data") or {}).get("dataset", schema.DEFAULT_DATASET) if isinstance(raw.get("data"), dict) \
        else schema.DEFAULT_DATASET
    full = merge(profile_for(dataset), raw)
    axes, base = extract_axes(full, problems)
    top = schema.validate_top(base, problems)
    variants = _variants(base, axes, problems)
    if not problems and top is not None and variants:
        problems += spec_problems(top, variants)
    if problems:
        raise SpecError(list(dict.fromkeys(problems)), source)
    resolved = _resolved(top, variants[0], axes, base)
    return SweepSpec(**top, axes=axes, variants=tuple(variants), resolved=resolved, source=source)


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
            section, field = key.split(".", 1)
            raw.setdefault(section, {})[field] = value
        where = f" (in the combination {', '.join(f'{k}={show(v)}' for k, v in swept)})" if swept else ""
        sections = schema.validate_sections(raw, problems, where)
        if sections is not None:
            out.append(Variant(swept, tuple(sections.items())))
    return out


def _resolved(top: dict, first: Variant, axes: tuple, base: dict) -> dict:
    """Every key of the spec written out (the first combination's values, then the axes)."""
    out: dict[str, Any] = {"name": top["name"], "storage": top["storage"]}
    for section, settings in first.sections:
        values = as_dict(settings)
        if section == "data":
            values = {k: v for k, v in values.items() if k not in schema.DATA_AXIS_FIELDS}
            values["root"] = top["data_root"]
        out[section] = values
    out["models"] = [as_dict(m) for m in top["models"]]
    out["seeds"] = list(top["seeds"])
    out["cue_proportions"] = list(top["cue_proportions"])
    out["finetune"]["methods"] = list(top["methods"])
    out["paths"].update(pairs=list(top["pairs"]), kinds=list(top["path_kinds"]),
                        finetuned_kinds=list(top["finetuned_kinds"]),
                        alignments=list(top["alignments"]))
    out["axes"] = [{key: list(values) for key, values in group} for group in axes]
    out["resources"] = {kind: {**as_dict(r), "custom": dict(r.custom)} for kind, r in top["resources"].items()}
    out["max_concurrent"] = top["max_concurrent"]
    out["mlflow"] = as_dict(top["mlflow"])
    return json.loads(json.dumps(out))   # plain JSON types (tuples -> lists)


# ----- writing, hashing, comparing -----

def dump_spec(spec: SweepSpec) -> str:
    """The resolved spec as YAML (every key), loadable again with `parse_spec` to the same spec."""
    import yaml

    from orchestrator.uris import redact

    head = ("# The resolved spec of this sweep: every key, as run (mmc-sweep writes it; "
            "`mmc-sweep run` compares a rerun's spec with it). Credentials in URIs are redacted.\n")
    resolved = copy.deepcopy(spec.resolved)
    resolved["storage"] = redact(resolved["storage"])   # where, not what: never compared
    if resolved["mlflow"].get("tracking_uri"):
        resolved["mlflow"]["tracking_uri"] = redact(resolved["mlflow"]["tracking_uri"])
    return head + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True)


NOT_SCIENCE = ("storage", "resources", "max_concurrent", "mlflow")   # where and how, not what


def science(resolved: dict) -> dict:
    """The part of a resolved spec that determines results (not where or how it runs)."""
    out = {k: v for k, v in resolved.items() if k not in NOT_SCIENCE}
    if isinstance(out.get("data"), dict):
        out["data"] = {k: v for k, v in out["data"].items() if k != "root"}
    return out


def spec_hash(spec: SweepSpec) -> str:
    """sha256 of the spec's science part (canonical JSON)."""
    text = json.dumps(science(spec.resolved), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """`key: old -> new` for every science setting that differs between two resolved specs."""
    out = []
    old, new = (science(old), science(new)) if not prefix else (old, new)
    for key in sorted(set(old) | set(new), key=str):
        a, b, where = old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{where}.")
        elif a != b:
            out.append(f"{where}: {show(a)} -> {show(b)}")
    return out


def spec_json_schema() -> dict:
    """JSON schema of a sweep spec, generated from the settings declarations (for editors)."""
    return json_schema()
