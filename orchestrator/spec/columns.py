"""The settings every result row carries: `<section>.<field>` columns of the resolved settings of a
task's lineage, typed from their declarations."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

from orchestrator.spec.schema import DATA_AXIS_FIELDS, settings_classes
from tasks.settings import base_type, declared_fields


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
