"""The layers a spec is resolved from, and which layer set each key. Later layers win:

    default < profile:<dataset> < extends:<sweep or file> < file:<spec> < override:<key=value>

`default` is the declaration (`tasks/` dataclasses, `orchestrator/spec/schema.py`); a profile is
`orchestrator/spec/profiles/<dataset>.yaml`; `extends:` names a shipped sweep or a spec file, which
may extend another (below it); overrides are the command line's `key=value` items, applied to the
file before it is merged. Mappings merge key by key; lists, scalars and `{grid: ...}` replace.

The keys the user set are those of the spec file and the overrides (`USER_LAYERS`): what they ask for
is refused when the plan would drop it; a default, a profile's or an `extends:`d sweep's value is not
a request (orchestrator/spec/rules.py). Nor are the keys of a resolved spec (`resolved:<spec>`: a file
`plan --resolved` or a sweep's spec.yaml wrote, every key as run), a record like a stored spec.yaml.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from orchestrator.errors import SweepError
from orchestrator.messages import show
from orchestrator.spec.schema import SWEEP_NAME, SpecError, is_grid
from orchestrator.spec.validation import not_a_spec
from orchestrator.spec.yaml_io import YamlError, decode, parse_yaml, read_text
from tasks.settings.data import DATASETS

DEFAULT = "default"
USER_LAYERS = ("file:", "override:")   # the labels of the layers the user wrote: the spec file, the overrides
PROFILE_RESOURCE = "profiles/{dataset}.yaml"
MAX_EXTENDS_DEPTH = 5
EXTENDS = "extends:"                   # the label of a spec's layer that another spec extends: `extends:<name>`
_PROBLEM_KEY = re.compile(r"^`([A-Za-z_][A-Za-z0-9_.]*)`")    # the key a problem message starts with

Path_ = tuple[str, ...]   # a key's path: ("finetune", "lam")


@dataclass(frozen=True)
class Layered:
    """A raw spec and the layer that set each of its values: `origins` maps a key's path to the
    layer that last replaced it; a value takes the label of its nearest listed path (itself or a
    mapping above it, `()` for the whole layer)."""

    raw: dict
    origins: dict = field(default_factory=dict)
    layers: tuple[str, ...] = ()              # the labels, lowest first

    def origin(self, path: Path_) -> str:
        """The layer that set the value at `path`; `default` when no layer holds it."""
        node = self.raw
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return DEFAULT
            node = node[part]
        for n in range(len(path), -1, -1):
            if path[:n] in self.origins:
                return self.origins[path[:n]]
        return DEFAULT

    def where_set(self, problem: str) -> str:
        """`problem` (a message that starts with its key, `` `pretrain.epohcs`: ...``) naming the file that set
        the key where that is a spec extended (a typo in a base is otherwise reported against the file given)."""
        match = _PROBLEM_KEY.match(problem)
        origin = self.origin(tuple(match.group(1).split("."))) if match else ""
        return f"{problem} (set in {origin[len(EXTENDS):]}, which it extends)" if origin.startswith(EXTENDS) else problem

    def set_by_user(self, dotted: str) -> bool:
        """Whether the spec file or an override set the key `dotted` (`finetune.methods`)."""
        return is_user_layer(self.origin(tuple(dotted.split("."))))


def is_user_layer(label: str) -> bool:
    return label.startswith(USER_LAYERS)


def named_after_file(raw: Any, path: str | Path | None) -> Any:
    """A spec file's YAML with the name it gives its sweep when it sets none (or `name:` left empty): the file's
    own name without .yaml/.yml, where that is a sweep name (`schema.SWEEP_NAME`); else as it is (`name` missing).
    Never the name of a sweep it `extends:`, whose directory it would share. A file that is no spec at all
    (`not_a_spec`: /etc/shadow given by mistake) gets none, so that its keys stay out of the error."""
    if path is None or not isinstance(raw, dict) or raw.get("name") is not None or not_a_spec(raw, "") is not None:
        return raw
    name = Path(str(path)).name
    stem = name.rsplit(".", 1)[0] if name.lower().endswith((".yaml", ".yml")) else name
    return {"name": stem, **{k: v for k, v in raw.items() if k != "name"}} if SWEEP_NAME.match(stem) else raw


def layer(raw: dict, label: str) -> Layered:
    return Layered(raw, {(): label}, (label,))


def stack(base: Layered, top: Layered) -> Layered:
    """`top` merged over `base`, each value keeping the layer that set it: mappings merge key by key;
    lists, scalars and `{grid: ...}` replace."""
    out, origins = copy.deepcopy(base.raw), dict(base.origins)
    _merge_into(out, origins, (), top.raw, top)
    return Layered(out, origins, base.layers + top.layers)


def _merge_into(out: dict, origins: dict, prefix: Path_, top: dict, source: Layered) -> None:
    for key, value in top.items():
        path = (*prefix, key)
        if value is None and isinstance(out.get(key), dict) and not is_grid(out[key]):
            continue    # an empty section (`pretrain:` with its keys commented out) is one left out: the layers below stand
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not is_grid(value) \
                and not is_grid(out[key]):
            _merge_into(out[key], origins, path, value, source)
        else:
            out[key] = copy.deepcopy(value)
            _set_origin(origins, path, source.origin(path), source.origins)


def _set_origin(origins: dict, path: Path_, label: str, below: dict | None = None) -> None:
    """`path` was replaced: its old origins go, its new ones (`label`, and any of `below` under it) come."""
    for old in [p for p in origins if p[:len(path)] == path]:
        del origins[old]
    origins[path] = label
    origins.update({p: v for p, v in (below or {}).items() if len(p) > len(path) and p[:len(path)] == path})


# ----- the layers -----

def with_overrides(file: Layered, overrides: list[str], source: str) -> Layered:
    """`finetune.lam=3`, `seeds=[0,1,2]`, `paths.pairs=[cue~nocue]`: dotted keys, YAML values, each
    replacing its key in the file."""
    out, origins, problems = copy.deepcopy(file.raw), dict(file.origins), []
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.isidentifier() for p in parts):
            problems.append(f"override {show(item)} is not `key=value` with a dotted key (e.g. finetune.lam=3)")
            continue
        if not text.strip():    # `seeds=$SEEDS` with the variable unset: never a silent switch to the default
            problems.append(f"override {show(item)} gives `{key.strip()}` no value; write one after the `=` (e.g. "
                            f"seeds=[0,1], finetune.lam=3), `{key.strip()}=null` for its default, or leave it out")
            continue
        try:
            value = parse_yaml(text)
        except YamlError as e:
            problems.append(f"override {show(item)}: {e}")
            continue
        target = out
        for part in parts[:-1]:
            if target.get(part) is None:     # absent, or an empty section (null): one left out
                target[part] = {}
            node = target[part]
            if not isinstance(node, dict):
                problems.append(f"override {show(item)}: `{part}` is not a mapping in the spec")
                break
            target = node
        else:
            target[parts[-1]] = value
            _set_origin(origins, tuple(parts), f"override:{item}")
    if problems:
        raise SpecError(problems, source)
    return Layered(out, origins, file.layers + tuple(f"override:{item}" for item in overrides))


def resource_text(name: str) -> str | None:
    """The text of the package data file `name`; None when there is none (a name too long for a file is none)."""
    file = importlib_resources.files("orchestrator.spec").joinpath(name)
    return decode(file.read_bytes(), f"<built-in {name}>") if _is_file(file) else None


def _is_file(path) -> bool:
    """`path.is_file()`, False where the name cannot be a file's (too long: ENAMETOOLONG, which pathlib raises)."""
    try:
        return path.is_file()
    except OSError:
        return False


def shipped_sweeps() -> list[str]:
    folder = importlib_resources.files("orchestrator.spec").joinpath("sweeps")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def with_extends(spec: Layered, source: str, base_dir: Path | None, depth: int = 0,
                 chain: tuple[tuple[str, str], ...] = ()) -> Layered:
    """The sweep named by `extends:` (a shipped sweep's name, or a path relative to the spec) merged
    under `spec`. `chain`: the (file, name as written) extended so far, to name a loop."""
    parent = spec.raw.get("extends")
    if parent is None:
        return spec
    if not isinstance(parent, str) or not parent:
        raise SpecError([f"`extends`: {show(parent)} is not allowed; give a shipped sweep name "
                         f"({', '.join(shipped_sweeps())}) or a spec file path"], source)
    if depth >= MAX_EXTENDS_DEPTH:
        raise SpecError([f"`extends`: more than {MAX_EXTENDS_DEPTH} levels (a loop?)"], source)
    text = resource_text(f"sweeps/{parent}.yaml") if "/" not in parent and not parent.endswith(".yaml") else None
    if text is None:
        path = Path(parent) if Path(parent).is_absolute() or base_dir is None else base_dir / parent
        if not _is_file(path):
            raise SpecError([f"`extends`: {show(parent)} is neither a shipped sweep ({', '.join(shipped_sweeps())}) "
                             f"nor a spec file"], source)
    key = f"sweeps/{parent}" if text is not None else str(path.resolve())
    if key in (k for k, _ in chain):
        loop = " → ".join(repr(name) for _, name in (*chain[[k for k, _ in chain].index(key):], (key, parent)))
        raise SpecError([f"`extends`: {show(parent)} extends itself, directly or through others ({loop}); extend a "
                         "spec outside that loop"], source)
    chain = (*chain, (key, parent))
    try:
        if text is None:
            text, base_dir = read_text(path, "spec file"), path.parent
        base = parse_yaml(text)
    except YamlError as e:
        raise SpecError([f"`extends`: {parent}: {e}"], source) from None
    if not isinstance(base, dict):
        raise SpecError([f"`extends`: {parent!r} is not a mapping"], source)
    foreign = not_a_spec(base, repr(parent))
    if foreign:
        raise SpecError([f"`extends`: {foreign}"], source)
    base_layers = with_extends(layer(base, f"{EXTENDS}{parent}"), source, base_dir, depth + 1, chain)
    own = Layered({k: v for k, v in spec.raw.items() if k != "extends"},
                  {p: v for p, v in spec.origins.items() if p[:1] != ("extends",)}, spec.layers)
    return stack(base_layers, own)


def profile_for(dataset: Any) -> dict:
    """The partial spec tuned for `dataset`: {} for a dataset of your own. Every built-in dataset has
    a profile in the package data; one that is missing (an install without its package data) is a
    SweepError, not {}: the spec would otherwise run with another dataset's settings, silently."""
    if not isinstance(dataset, str) or not dataset.isidentifier():
        return {}
    name = PROFILE_RESOURCE.format(dataset=dataset)
    text = resource_text(name)
    if text is None and dataset in DATASETS:
        where = importlib_resources.files("orchestrator.spec")
        raise SweepError(f"the built-in profile of dataset `{dataset}` ({name}) is missing from the installed "
                         f"package at {where}: the install lacks its package data; reinstall mmc-sweep "
                         "(`pip install --force-reinstall mmc-sweep`, or `pip install -e .` in a checkout)")
    return parse_yaml(text) if text else {}


def with_profile(spec: Layered, dataset: Any) -> Layered:
    return stack(layer(profile_for(dataset), f"profile:{dataset}"), spec) if profile_for(dataset) else spec
