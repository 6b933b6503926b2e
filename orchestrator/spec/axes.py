"""Swept settings in a spec: inline `{grid: [...]}` values and zipped groups under `axes:`."""
from __future__ import annotations

import difflib
import json
from typing import Any

from orchestrator.messages import show
from orchestrator.spec.schema import (DATA_AXIS_FIELDS, MAX_LIST, NOT_SWEEPABLE, SETTINGS_CLASSES, STRUCTURAL, is_grid,
                                      section_fields)
from tasks.settings import as_float


def sweepable_keys() -> list[str]:
    out = []
    for section in SETTINGS_CLASSES:
        for name in section_fields(section):
            key = f"{section}.{name}"
            if name not in STRUCTURAL.get(section, ()) and key not in NOT_SWEEPABLE:
                out.append(key)
    return out


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
        combos = [json.dumps([_value_key(v) for v in c]) for c in zip(*(v for _, v in entries))]
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
    keys = [_value_key(v) for v in values]
    if unique and len(set(keys)) < len(keys):
        problems.append(f"`{where}`: {show(values)} repeats a value; list each value once")
        return ()
    return tuple(values)


def _value_key(value: Any) -> str:
    """Equal values give equal keys: 1 and 1.0, 0.0 and -0.0 are one number (as in a JSON schema's `uniqueItems`),
    true is not 1."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = as_float(value)
    return json.dumps(value, sort_keys=True, default=str)
