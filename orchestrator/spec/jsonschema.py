"""The JSON schema of a sweep spec file (for editors), generated from the declarations the validator
reads (`schema.TopLevel` and the settings classes it names). It refuses what the validator refuses
wherever a JSON schema can say the rule (types, bounds, choices, patterns, lists, unknown keys);
what it cannot (a directory exists, rules across sections, a dataset's size) only the validator
checks. `{grid: [...]}` is allowed exactly where a setting may be swept.
"""
from __future__ import annotations

from typing import Any

from orchestrator.spec.axes import sweepable_keys
from orchestrator.spec.schema import (AXES, INT64_MAX, LAYER, LIST, MAX_LIST, PER_NAME, SCALAR, SECTION, SETTINGS,
                                      SETTINGS_CLASSES, SETTINGS_LIST, STRUCTURAL, Declared, declared, lists_class,
                                      section_fields)
from tasks.settings.data import DATASETS
from tasks.settings import Rule, base_type, declared_fields, item_type

END = r"(?![\s\S])"   # the end of the text (`$` would allow a newline before it)


def _value(d: Declared | None, tp: Any, rule) -> dict:
    """One value of type `tp` under `rule` (and the Key of `d`: patterns, lengths, extra keywords)."""
    kind, nullable = base_type(tp)
    js = {int: {"type": "integer", "minimum": -INT64_MAX - 1, "maximum": INT64_MAX}, float: {"type": "number"},
          str: {"type": "string"}, bool: {"type": "boolean"}, tuple: {"type": "array"}}.get(kind, {})
    js = dict(js)
    if kind is tuple and rule.allowed() is not None:      # choices of a tuple setting: of its items
        return {**js, "items": {"enum": list(rule.allowed())}, "uniqueItems": True}
    if kind is tuple and item_type(tp) is not None:       # a typed tuple: its items under the field's bounds
        return {**js, "items": _value(None, item_type(tp), Rule(rule.ge, rule.gt, rule.le, rule.lt)),
                "uniqueItems": True}
    for name, bound in (("minimum", rule.ge), ("exclusiveMinimum", rule.gt), ("maximum", rule.le),
                        ("exclusiveMaximum", rule.lt)):
        if bound is not None:
            js[name] = bound
    if rule.allowed() is not None:
        js["enum"] = list(rule.allowed())
    if d is not None:
        how = d.key
        if how.pattern is not None:
            js["pattern"] = how.pattern.pattern.replace("\\Z", END)
        if how.min_length is not None:
            js["minLength"] = how.min_length
        if how.max_length is not None:
            js["maxLength"] = how.max_length
        js.update(how.json or {})
    return {"anyOf": [js, {"type": "null"}]} if nullable else js


def _grid(js: dict) -> dict:
    return {"type": "object", "required": ["grid"], "additionalProperties": False,
            "properties": {"grid": {"type": "array", "items": js, "minItems": 1, "maxItems": MAX_LIST,
                                    "uniqueItems": True}}}


def _described(js: dict, d: Declared) -> dict:
    out = {**js, "description": d.rule.doc}
    if d.key.required:
        return out
    if isinstance(d.default, (int, float, str, bool)) or d.default is None:
        out["default"] = d.default
    elif js.get("type") == "object" and d.key.write is not None:       # e.g. custom resources: () is {}
        out["default"] = d.key.write(d.default)
    elif isinstance(d.default, tuple) and all(isinstance(v, (int, float, str)) for v in d.default):
        out["default"] = list(d.default)
    return out


def _object(props: dict, **more: Any) -> dict:
    return {"type": "object", "properties": props, "additionalProperties": False, **more}


def _settings(cls: type, sweepable: tuple = (), names: list[str] | None = None) -> dict:
    """The object of a settings class; fields named in `sweepable` may also be `{grid: [...]}`."""
    props = {}
    for d in declared(cls):
        if names is not None and d.name not in names:
            continue
        js = _value(d, d.tp, d.rule)
        props[d.name] = _described({"anyOf": [js, _grid(js)]} if d.name in sweepable else js, d)
    return _object(props)


def _list(d: Declared) -> dict:
    js = {"type": "array", "items": _value(d, d.item, d.rule), "uniqueItems": True, "maxItems": MAX_LIST}
    return {**js, "minItems": 1} if d.key.non_empty else js


def _key(d: Declared) -> dict:
    """The schema of one declared key, by its kind."""
    if d.kind in (SCALAR, LAYER):
        return _value(d, d.tp, d.rule)
    if d.kind == LIST:
        return _list(d)
    if d.kind == SETTINGS:
        return _settings(d.tp)
    if d.kind == SETTINGS_LIST:
        item = _settings(d.item)
        shorthand = next(x for x in declared(d.item) if x.name == d.key.shorthand) if d.key.shorthand else None
        items = {"anyOf": [_value(shorthand, shorthand.tp, shorthand.rule), item]} if shorthand else item
        return {"type": "array", "items": items, "minItems": 1 if d.key.non_empty else 0, "maxItems": MAX_LIST,
                "uniqueItems": True}
    if d.kind == PER_NAME:
        js = _object({name: _nullable(_settings(d.tp)) for name in d.key.per})   # `pretrain:` left empty: defaults
        return {**js, "allOf": [d.key.json]} if d.key.json else js
    if d.kind == SECTION:
        return _section(d)
    if d.kind == AXES:
        return _axes()
    raise ValueError(f"no JSON schema for a key of kind {d.kind!r}")


def _section(d: Declared) -> dict:
    names = section_fields(d.name)
    structural = STRUCTURAL.get(d.name, ())
    once = set(d.key.once)
    out = _settings(d.key.swept, sweepable=tuple(n for n in names if n not in once and n not in structural),
                    names=[n for n in names if n not in structural])
    cls = lists_class(d.name)
    for item in declared(cls) if cls is not None else ():
        out["properties"][item.name] = _described(_list(item) if item.kind == LIST else
                                                  _value(item, item.tp, item.rule), item)
    return out


def _axes() -> dict:
    """Zipped groups: each maps sweepable keys to non-empty lists of their values."""
    values = {}
    for key in sweepable_keys():
        section, _, name = key.partition(".")
        _f, tp, rule = next(x for x in declared_fields(SETTINGS_CLASSES[section]) if x[0].name == name)
        values[key] = {"type": "array", "minItems": 1, "maxItems": MAX_LIST, "items": _value(None, tp, rule)}
    # one key alone may not repeat a value (zipped keys may: their combinations differ)
    one_key_unique = {"anyOf": [{"minProperties": 2}, {"additionalProperties": {"uniqueItems": True}}]}
    return {"type": "array", "items": {**_object(values, minProperties=1), **one_key_unique}}


NULL_AS_LEFT_OUT = (SETTINGS, SECTION, PER_NAME, LIST, SETTINGS_LIST)   # kinds whose null means "left out"


def json_schema() -> dict:
    props = {d.name: _described(_nullable(_key(d)) if d.kind in NULL_AS_LEFT_OUT and not d.key.required else _key(d), d)
             for d in declared()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "mmc-sweep spec", "type": "object",
        "properties": props, "additionalProperties": False,
        # `name` defaults to the spec file's; the `data.root` of a dataset that needs one may come from the sweep it extends
        "allOf": [{"if": {"required": ["data"], "properties": {"data": {
                      "required": ["dataset"], "properties": {"dataset": {"enum": _needs_root()}}}}},
                   "then": {"anyOf": [{"required": ["extends"]}, {"properties": {"data": {
                       "required": ["root"], "properties": {"root": {"type": "string"}}}}}]}}],
    }


def _nullable(js: dict) -> dict:
    """`js` or null: a key the validator reads as left out when it is null (`pretrain:` with its keys commented out).
    The type widened in place, so the key's properties stay where an editor looks for them."""
    return {**js, "type": [js["type"], "null"]} if isinstance(js.get("type"), str) else js


def _needs_root() -> list[str]:
    return [name for name, info in DATASETS.items() if info.needs_root]
