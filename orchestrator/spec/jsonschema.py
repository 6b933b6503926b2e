"""The JSON schema of a sweep spec (for editors), generated from the settings declarations."""
from __future__ import annotations

from typing import Any

from orchestrator import vocab
from orchestrator.spec.schema import (SWEEP_NAME, DATA_AXIS_FIELDS, LIST_KEYS, SETTINGS_CLASSES, MlflowSettings,
                                      ResourceSettings, RunSettings)
from tasks.models import ModelSettings
from tasks.settings import base_type, declared_fields


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
            "name": {"type": "string", "pattern": SWEEP_NAME.pattern.replace("\\Z", "$")},
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
