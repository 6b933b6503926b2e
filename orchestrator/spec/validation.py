"""Reading a spec through its declaration (`schema.TopLevel` and the settings classes it names):
unknown keys, types, bounds, choices, lists, and the checks a rule cannot say. Each message names
the key in backticks, the bad value (shortened) and what is allowed; every problem is collected.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from orchestrator.messages import MAX_SHOWN, a_type, show
from orchestrator.spec.schema import (AXES, DATA_AXIS_FIELDS, LAYER, LIST, MAX_LIST, PER_NAME, SCALAR, SECTION,
                                      SETTINGS, SETTINGS_CLASSES, SETTINGS_LIST, STRUCTURAL, TOP_KEYS, Declared,
                                      TopLevel, declared, key_of, lists_class, section_fields, top_key)
from tasks.settings import SettingsError, as_float, base_type, declared_fields, repeated, value_problem
SET_BY = {"cue_proportion": "`cue_proportions`; list the values there, at the top level (e.g. `cue_proportions: "
                            "[0.0, 0.8]`)",
          "seed": "`seeds`; list the values there, at the top level (e.g. `seeds: [0, 1]`)",
          "cue_seed": "the pair design `cue~cue:resubset` (another cued subset); leave it out"}


def _unknown(key: Any, known: list[str], where: str) -> str:
    key = key if isinstance(key, str) else show(key)   # as YAML spells it: `paths.null`, not `paths.None`
    name = f"{where}.{key}" if where else key
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"did you mean `{where + '.' if where else ''}{close[0]}`?" if close else f"allowed: {', '.join(known)}"
    return f"`{show(name)[1:-1] if isinstance(name, str) else name}`: unknown key; {hint}"


def _unknown_in(cls: type, body: Any, where: str) -> list[str]:
    if not isinstance(body, dict):
        return []
    known = [f.name for f in dataclasses.fields(cls)]
    return [_unknown(k, known, where) for k in body if k not in known]


def not_a_spec(raw: dict, what: str) -> str | None:
    """Why `raw` (a file's top level) is no sweep spec at all: none of its keys is a spec key or a near
    miss of one. Its keys are then not listed: a file read by mistake, or named by an `extends:` someone
    else wrote (`/etc/passwd` parses as a mapping), keeps its contents out of the error."""
    if not raw or any(k in TOP_KEYS or difflib.get_close_matches(str(k), TOP_KEYS, n=1, cutoff=0.6) for k in raw):
        return None
    return (f"{what} is not a sweep spec: none of its {len(raw)} top-level keys is a spec key (its keys are not "
            f"shown); a spec's keys are {', '.join(TOP_KEYS)}")


def unknown_keys(raw: dict) -> list[str]:
    """Unknown keys at the top level and in the settings sections (as written, before the profile)."""
    foreign = not_a_spec(raw, "the file")
    if foreign:
        return [foreign]
    problems = [_unknown(key, list(TOP_KEYS), "") for key in raw if key not in TOP_KEYS]
    for section in SETTINGS_CLASSES:
        value = raw.get(section)
        if isinstance(value, dict):
            known = section_fields(section)
            for k in value:
                if k in known:
                    continue
                if section == "data" and k in DATA_AXIS_FIELDS:
                    problems.append(f"`data.{k}`: is set per model by {SET_BY[k]}")
                elif k in TOP_KEYS:            # e.g. `cue_proportions` or `seeds` written inside a section
                    problems.append(f"`{section}.{k}`: unknown key; `{k}` is a top-level key: move it out of "
                                    f"`{section}`")
                else:
                    problems.append(_unknown(k, known + (list(DATA_AXIS_FIELDS) if section == "data" else []),
                                             section))
    return problems


def _check_value(value: Any, tp: Any, rule, where: str) -> tuple[Any, str | None]:
    """(normalised value, problem or None): ints become floats for float settings, lists tuples for
    tuple settings."""
    if base_type(tp)[0] is tuple and isinstance(value, list):
        if len(value) > MAX_LIST:
            return value, f"`{where}`: {len(value)} items; at most {MAX_LIST}"
        value = tuple(value)
    problem = value_problem(value, tp, rule)
    if problem:
        return value, f"`{where}`: {_shorten(problem, value)}"
    kind, _ = base_type(tp)
    if kind is float and isinstance(value, (int, float)):
        value = as_float(value)
    return value, None


def _shorten(problem: str, value: Any) -> str:
    """`problem` with the value it quotes (`repr`, or a tuple's items as a list) shortened as `show` does."""
    for full in (repr(value), repr(list(value))) if isinstance(value, tuple) else (repr(value),):
        if len(full) > MAX_SHOWN and full in problem:
            return problem.replace(full, show(value), 1)
    return problem


def _settings(cls: type, raw: Any, where: str, problems: list[str], skip: tuple = ()):
    """Build settings `cls` from a raw mapping through its declarations; None on problems."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"`{where}`: {show(raw)} is not allowed; must be a mapping of `key: value` lines "
                        f"(got {a_type(raw)})")
        return None
    values, before = {}, len(problems)
    for f, tp, rule in declared_fields(cls):
        if f.name in skip or f.name not in raw:
            continue
        name, read = f"{where}.{f.name}" if where else f.name, key_of(f).read
        if read is not None:
            value = read(raw[f.name], name, problems, raw)
            if value is None:
                continue
        else:
            value, problem = _check_value(raw[f.name], tp, rule, name)
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


# ----- one reader per kind of key -----

def _scalar_problem(d: Declared, value: Any) -> str | None:
    problem = value_problem(value, d.tp, d.rule)
    if problem is None and isinstance(value, str):
        how = d.key
        if (how.pattern is not None and not how.pattern.match(value)) or len(value) < (how.min_length or 0) \
                or len(value) > (how.max_length or len(value)):
            problem = f"{value!r} is not allowed"
    return problem


def read_scalar(d: Declared, body: dict, where: str, problems: list[str]) -> Any:
    value = body[d.name] if d.name in body else d.default
    if d.key.required and value is None:
        problems.append(f"`{where}`: is missing; {d.key.required}")
        return None
    problem = _scalar_problem(d, value)
    if problem:
        problems.append(f"`{where}`: {show(value)} is not allowed; {d.key.fix}" if d.key.fix else
                        f"`{where}`: {_shorten(problem, value)}")
        return None
    if base_type(d.tp)[0] is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = as_float(value)
    return d.key.check(value, where, problems, body) if d.key.check else value


def _item_problem(d: Declared, item: Any) -> str | None:
    if d.key.item_check is not None:
        return d.key.item_check(item)
    allowed = d.rule.allowed()
    if allowed is not None:
        ok = isinstance(item, str) and item in allowed
        return None if ok else f"{show(item)} is not allowed; allowed: {', '.join(allowed)}"
    problem = value_problem(item, d.item, d.rule)
    return f"{show(item)} is not allowed; {d.key.fix}" if problem and d.key.fix else problem


def read_list(d: Declared, body: dict, where: str, problems: list[str]) -> tuple | None:
    value = body.get(d.name)
    if value is None:
        return d.default
    if not isinstance(value, list):
        problems.append(f"`{where}`: {show(value)} is not allowed; must be a list, e.g. {show(list(d.default))}")
        return None
    if d.key.non_empty and not value:
        problems.append(f"`{where}`: [] is empty; give at least one value")
        return None
    if len(value) > MAX_LIST:
        problems.append(f"`{where}`: {len(value)} items; at most {MAX_LIST}")
        return None
    out, before = [], len(problems)
    for i, item in enumerate(value):
        problem = _item_problem(d, item)
        if problem:
            problems.append(f"`{where}[{i}]`: {problem}")
        else:
            out.append(as_float(item) if d.item is float else item)
    dups = [show(v) for v in repeated(out)]     # 0.0 and -0.0, 1 and 1.0 count as one
    if dups:
        problems.append(f"`{where}`: {show(value)} repeats {', '.join(dups)}; list each once")
    return tuple(out) if len(problems) == before else None


def read_settings_list(d: Declared, body: dict, where: str, problems: list[str]) -> tuple | None:
    value = body.get(d.name)
    if value is None:
        return d.default
    if not isinstance(value, list) or not value:
        problems.append(f"`{where}`: {show(value)} is not allowed; {d.key.fix}")
        return None
    if len(value) > MAX_LIST:
        problems.append(f"`{where}`: {len(value)} items; at most {MAX_LIST}")
        return None
    out, before = [], len(problems)
    for i, entry in enumerate(value):
        item = {d.key.shorthand: entry} if isinstance(entry, str) and d.key.shorthand else entry
        if item is None:   # `models: [null]` or `- ` with nothing after it: no model, not the default one
            fields = ", ".join(f.name for f in dataclasses.fields(d.item))
            problems.append(f"`{where}[{i}]`: null is not allowed; each item is a mapping of {fields}" +
                            (f" or a {d.key.shorthand} alone" if d.key.shorthand else ""))
            continue
        problems += _unknown_in(d.item, item, f"{where}[{i}]")
        settings = _settings(d.item, item, f"{where}[{i}]", problems)
        if settings is not None:
            out.append(settings)
    out = d.key.check(tuple(out), where, problems, body) if d.key.check else tuple(out)
    return out if len(problems) == before else None


def read_settings(d: Declared, body: dict, where: str, problems: list[str]) -> Any:
    value, before = body.get(d.name, {}), len(problems)
    settings = _settings(d.tp, value, where, problems)
    if settings is not None and d.key.check:
        settings = d.key.check(settings, where, problems, body)
    problems += _unknown_in(d.tp, value, where)
    return settings if len(problems) == before else None


def read_per_name(d: Declared, body: dict, where: str, problems: list[str]) -> dict | None:
    value, before = body.get(d.name), len(problems)
    value = {} if value is None else value      # '', 0, [] are no mapping: refused below
    if not isinstance(value, dict):
        problems.append(f"`{where}`: {show(value)} is not allowed; {d.key.fix}")
        return None
    problems += [_unknown(k, list(d.key.per), where) for k in value if k not in d.key.per]
    out = {}
    for name in d.key.per:
        problems += _unknown_in(d.tp, value.get(name), f"{where}.{name}")
        out[name] = _settings(d.tp, value.get(name, {}), f"{where}.{name}", problems)
    return out if len(problems) == before else None


def read_section(d: Declared, body: dict, where: str, problems: list[str]) -> Any:
    """A section's keys with one value per sweep (its settings are read per combination: `read_sections`)."""
    cls = lists_class(d.name)
    if cls is None:
        return None
    inner, values, before = body.get(d.name), {}, len(problems)
    inner = inner if isinstance(inner, dict) else {}
    for item in declared(cls):
        values[item.name] = READERS[item.kind](item, inner, f"{where}.{item.name}", problems)
    return cls(**values) if len(problems) == before else None


READERS = {SCALAR: read_scalar, LIST: read_list, SETTINGS_LIST: read_settings_list, SETTINGS: read_settings,
           PER_NAME: read_per_name, SECTION: read_section}


def read_top(raw: dict, axes: tuple, problems: list[str]) -> TopLevel | None:
    """Every declared key but the swept settings: name, storage, models, lists, resources, MLflow..."""
    values, before = {}, len(problems)
    for d in declared():
        if d.kind == AXES:
            values[d.name] = axes                # read by spec/axes.py
        elif d.kind != LAYER:                    # extends: read while resolving the layers
            values[d.name] = READERS[d.kind](d, raw, d.name, problems)
    return TopLevel(**values) if len(problems) == before else None


def read_sections(raw: dict, problems: list[str], where_suffix: str = "") -> dict | None:
    """The settings objects of every settings section of `raw` (one combination of swept values);
    None when one is invalid."""
    out, local = {}, []
    for section, cls in SETTINGS_CLASSES.items():
        body = raw.get(section)
        if body is not None and not isinstance(body, dict):
            local.append(f"`{section}`: {show(body)} is not allowed; must be a mapping of `key: value` lines "
                         f"(got {a_type(body)})")
            continue
        body = {k: v for k, v in (body or {}).items() if k not in STRUCTURAL.get(section, ())}
        out[section] = _settings(cls, body, section, local, skip=top_key(section).key.per_model)
    problems.extend(p + where_suffix for p in local)
    return None if local else out
