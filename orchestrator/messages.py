"""How values appear in error messages: roughly as YAML spells them, shortened, with their type."""
from __future__ import annotations

import json
from typing import Any

MAX_SHOWN = 80                 # characters of a value shown in a message


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
