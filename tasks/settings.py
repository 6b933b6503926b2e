"""Settings: frozen dataclasses whose fields declare their own default, bounds, choices and meaning.

Every setting of a task is declared once, with `setting(...)`, in the `tasks/` dataclass that uses
it. That declaration is the whole schema: the dataclass checks itself when built (`Settings`), and
the sweep spec (`orchestrator/spec/sweep_spec.py`) generates its validation, its JSON schema and its docs from
the same declarations, so a default or a limit cannot drift between the layers.

    @dataclass(frozen=True)
    class PathSettings(Settings):
        num_alphas: int = setting(11, ge=2, le=1001, doc="evenly spaced points in [0, 1]")

    PathSettings(num_alphas=1)   # SettingsError: `num_alphas`: 1 is not allowed; must be >= 2

Rules that tie fields of one dataclass together go in `cross_problems()`. Every float must be
finite; every number should have an upper bound that a task can actually run (documented in `doc`).

A setting's `id_default` (normally its default) is the value that task identities leave out: a
field added later with `id_default` equal to its default keeps every old task id; changing a
default while keeping `id_default` at the old value changes the ids of exactly the tasks that now
run differently (see `identity_dict`).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

RULE_KEY = "mmc_rule"
_SAME = object()           # id_default: "the same as the default"
INT64_MAX = 2 ** 63 - 1


@dataclass(frozen=True)
class Rule:
    """Constraints and documentation of one setting (kept in the dataclass field's metadata)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | Callable[[], tuple] | None = None   # a callable for registries defined later
    doc: str = ""
    id_default: Any = _SAME

    def allowed(self) -> tuple | None:
        return tuple(self.choices()) if callable(self.choices) else self.choices

    def bounds_text(self) -> str:
        parts = [f"{op} {_num(v)}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                 if v is not None]
        return " and ".join(parts)


def setting(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, choices: tuple | Callable[[], tuple] | None = None, doc: str = "",
            id_default: Any = _SAME) -> Any:
    """A dataclass field with its constraints: `x: int = setting(3, ge=1, le=100, doc="...")`."""
    return field(default=default, metadata={RULE_KEY: Rule(ge, gt, le, lt, choices, doc, id_default)})


class SettingsError(ValueError):
    """Every problem of one settings object; `problems` are (field name, message) pairs."""

    def __init__(self, owner: str, problems: list[tuple[str, str]]):
        self.owner, self.problems = owner, list(problems)
        super().__init__(f"invalid {owner}: " + "; ".join(f"`{name}`: {text}" for name, text in self.problems))

    def __reduce__(self):
        return type(self), (self.owner, self.problems)


def rule_of(f: dataclasses.Field) -> Rule:
    return f.metadata.get(RULE_KEY) or Rule()


def rule_for(cls: type, name: str) -> Rule:
    """The rule of field `name` of settings class `cls`."""
    return next(rule for f, _tp, rule in declared_fields(cls) if f.name == name)


@lru_cache(maxsize=None)
def declared_fields(cls: type) -> list[tuple[dataclasses.Field, Any, Rule]]:
    """(field, resolved type, rule) for every field of a settings dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name], rule_of(f)) for f in dataclasses.fields(cls)]


def base_type(tp: Any) -> tuple[type, bool]:
    """(int | float | str | bool, whether None is allowed) of a field annotation."""
    args = typing.get_args(tp)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return tp, False


def value_problem(value: Any, tp: Any, rule: Rule) -> str | None:
    """Why `value` is not allowed for a field of type `tp` with `rule`, or None when it is."""
    kind, nullable = base_type(tp)
    if value is None:
        return None if nullable else f"None is not allowed; must be {_kind_text(kind)}"
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        return f"{value!r} is not allowed; must be {_kind_text(kind)} (got {type(value).__name__})"
    if kind is float and not math.isfinite(value):
        return f"{value!r} is not allowed; must be a finite number"
    if kind is int and not -INT64_MAX - 1 <= value <= INT64_MAX:
        return f"{value!r} is not allowed; must fit in 64 bits"
    if kind in (int, float):
        for op, bound, holds in (
                (">=", rule.ge, lambda b: value >= b), (">", rule.gt, lambda b: value > b),
                ("<=", rule.le, lambda b: value <= b), ("<", rule.lt, lambda b: value < b)):
            if bound is not None and not holds(bound):
                return f"{value!r} is not allowed; must be {rule.bounds_text()}"
    allowed = rule.allowed()
    if allowed is not None and kind is tuple:      # the choices of a tuple setting are those of its items
        bad = [v for v in value if v not in allowed]
        if bad:
            return f"{list(value)!r} is not allowed: {', '.join(map(repr, bad))}; allowed items: {', '.join(map(str, allowed))}"
    elif allowed is not None and value not in allowed:
        return f"{value!r} is not allowed; allowed: {', '.join(map(str, allowed))}"
    return None


def field_problems(obj: Any) -> list[tuple[str, str]]:
    """(field, message) for every field of `obj` whose value breaks its declaration."""
    out = []
    for f, tp, rule in declared_fields(type(obj)):
        problem = value_problem(getattr(obj, f.name), tp, rule)
        if problem:
            out.append((f.name, problem))
    return out


class Settings:
    """Mixin for frozen settings dataclasses: `__post_init__` checks every field's declaration and
    the class's `cross_problems()`, raising one SettingsError that lists them all."""

    def __post_init__(self) -> None:
        problems = field_problems(self)
        if not problems:
            problems = list(self.cross_problems())
        if problems:
            raise SettingsError(type(self).__name__, problems)

    def cross_problems(self) -> list[tuple[str, str]]:
        """Rules between fields: (field, message) pairs. Only called when every field is valid."""
        return []


def defaults(cls: type) -> dict[str, Any]:
    """Field name -> default of a settings dataclass."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def as_dict(obj: Any) -> dict[str, Any]:
    """Every field of a settings object (defaults included), in declaration order."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def from_identity(cls: type, values: dict[str, Any]) -> Any:
    """Inverse of `identity_dict`: fields left out take their `id_default` (not their current default,
    which may have changed since the identity was written)."""
    filled = {}
    for f, _tp, rule in declared_fields(cls):
        if f.name in values:
            value = values[f.name]
            filled[f.name] = tuple(value) if isinstance(value, list) else value
        else:
            filled[f.name] = f.default if rule.id_default is _SAME else rule.id_default
    unknown = sorted(set(values) - set(filled))
    if unknown:
        raise SettingsError(cls.__name__, [(name, "is not a setting of this kind") for name in unknown])
    return cls(**filled)


def identity_dict(obj: Any) -> dict[str, Any]:
    """The fields that define a task's identity: every field except those equal to its `id_default`."""
    out = {}
    for f, _tp, rule in declared_fields(type(obj)):
        value = getattr(obj, f.name)
        reference = f.default if rule.id_default is _SAME else rule.id_default
        if not _same_value(value, reference):
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _num(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _kind_text(kind: type) -> str:
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(
        kind, kind.__name__)


def override(cls: type, name: str, default: Any) -> Any:
    """The field `name` of settings class `cls` with another default (same rule): for subclasses,
    e.g. `epochs: int = override(OptimSettings, "epochs", 15)`."""
    base = next(f for f in dataclasses.fields(cls) if f.name == name)
    rule = rule_of(base)
    return field(default=default, metadata={RULE_KEY: dataclasses.replace(rule, id_default=_SAME)})
