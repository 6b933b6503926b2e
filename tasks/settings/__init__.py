"""Settings: frozen dataclasses whose fields declare their own default, bounds, choices and meaning.

Every setting of a task is declared once, with `setting(...)`, in the settings dataclass of its task kind
(`tasks/settings/<kind>.py`: no torch there, so that reading a sweep's tables or its status imports none). That
declaration is the whole schema: the dataclass checks itself when built (`Settings`), and the sweep spec
(`orchestrator/spec/sweep_spec.py`) generates its validation, JSON schema and docs from the same declarations.

    @dataclass(frozen=True)
    class PathSettings(Settings):
        num_alphas: int = setting(11, ge=2, le=1001, doc="evenly spaced points in [0, 1]")

    PathSettings(num_alphas=1)   # SettingsError: `num_alphas`: 1 is not allowed; must be >= 2

A typed tuple (`shares: tuple[float, ...] = setting((), ge=0, le=1)`) checks each item as a value of its
own under the field's bounds, and holds whole numbers as the floats they stand for ([1] and [1.0] are
one value, one identity; so are -0.0 and 0.0: `as_float`). Rules that tie fields of one dataclass together go in `cross_problems()`, fields that
others make unread in `idle_fields()`. Every float must be finite, every number bounded by what a task can run.

A setting's `id_default` (normally its default) is the value that task identities leave out: a field added
later with `id_default` equal to its default keeps every old task id; changing a default while keeping
`id_default` at the old value changes the ids of exactly the tasks that now run differently (`identity_dict`).

What a task's code may read is part of its identity too. `restrict(obj, fields, owner)` hands code a view of a
settings object whose reads of any other field raise `UndeclaredSettingRead` (a fine-tuning method gets a view
of exactly the fields its id holds, `tasks.finetune.settings_used`), and within `recording_reads()` every object
rebuilt from a task id (`from_identity`) records the fields read from it, so a test can compare what each task
reads with what its id holds (tests/orchestrator/graph/test_identity.py).

Why one module: a declaration, the check it makes, the value it holds and the identity it gives are one
contract; split, a task id could hash a value the check never normalised.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator

RULE_KEY = "mmc_rule"
_SAME = object()           # id_default: "the same as the default"
INT64_MAX = 2 ** 63 - 1
MAX_NAMED = 5              # the items not allowed that a message names (the rest are counted)


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


@lru_cache(maxsize=None)
def _unwrapped(tp: Any) -> tuple[Any, bool]:
    """(the annotation without `| None`, whether None is allowed)."""
    args = typing.get_args(tp)
    return ([a for a in args if a is not type(None)][0], True) if args and type(None) in args else (tp, False)


@lru_cache(maxsize=None)
def base_type(tp: Any) -> tuple[type, bool]:
    """(int | float | str | bool | tuple, whether None is allowed) of a field annotation; a typed
    tuple (`tuple[float, ...]`) is a tuple."""
    inner, nullable = _unwrapped(tp)
    return typing.get_origin(inner) or inner, nullable


@lru_cache(maxsize=None)
def item_type(tp: Any) -> type | None:
    """The item type of a `tuple[X, ...]` field (None for a bare `tuple` or a scalar). Its items are
    checked as X under the field's bounds, and whole numbers become floats where X is float."""
    inner, _ = _unwrapped(tp)
    args = typing.get_args(inner)
    return args[0] if typing.get_origin(inner) is tuple and len(args) == 2 and args[1] is Ellipsis else None


def as_float(value: float | int) -> float:
    """The float a float setting holds: whole numbers as floats, -0.0 as 0.0 (`+ 0.0`): 1 and 1.0, 0.0 and -0.0
    are one value and one task identity."""
    return float(value) + 0.0


@lru_cache(maxsize=None)
def _float_tuples(cls: type) -> tuple[str, ...]:
    """The `tuple[float, ...]` fields of a settings class (their items are held as floats)."""
    return tuple(f.name for f, tp, _rule in declared_fields(cls) if item_type(tp) is float)


@lru_cache(maxsize=None)
def _floats(cls: type) -> tuple[str, ...]:
    """The float fields of a settings class (held as floats, -0.0 as 0.0)."""
    return tuple(f.name for f, tp, _rule in declared_fields(cls) if base_type(tp)[0] is float)


def value_problem(value: Any, tp: Any, rule: Rule) -> str | None:
    """Why `value` is not allowed for a field of type `tp` with `rule`, or None when it is."""
    kind, nullable = base_type(tp)
    if value is None:
        return None if nullable else f"null is not allowed; must be {_kind_text(kind, rule)}"
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        return f"{_spelled(value)} is not allowed; must be {_kind_text(kind, rule)} (got {type(value).__name__})"
    items = item_type(tp) if kind is tuple else None
    if items is not None:                          # each item as a value of its own, under the field's bounds
        bounds = Rule(rule.ge, rule.gt, rule.le, rule.lt)
        for i, item in enumerate(value):
            problem = value_problem(item, items, bounds)
            if problem:
                return f"{list(value)!r} is not allowed: item {i} must be {problem.split('; must be ', 1)[-1]}"
    if kind is float and not math.isfinite(value):
        return f"{value!r} is not allowed; must be a finite number"
    if kind is int and not -INT64_MAX - 1 <= value <= INT64_MAX:
        return f"{value!r} is not allowed; must {'be ' + rule.bounds_text() if rule.bounds_text() else 'fit in 64 bits'}"
    if kind in (int, float):
        for op, bound, holds in (
                (">=", rule.ge, lambda b: value >= b), (">", rule.gt, lambda b: value > b),
                ("<=", rule.le, lambda b: value <= b), ("<", rule.lt, lambda b: value < b)):
            if bound is not None and not holds(bound):
                return f"{value!r} is not allowed; must be {rule.bounds_text()}"
    if rule.choices is None or (kind is tuple and not value):
        return _repeated(value) if items is not None else None   # (a registry's choices: looked up only when needed)
    allowed = rule.allowed()
    if kind is tuple:                              # the choices of a tuple setting are those of its items
        bad = [v for v in value if v not in allowed]
        if bad:
            named = ", ".join(map(repr, bad[:MAX_NAMED])) + (f" and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else "")
            return f"{list(value)!r} is not allowed: {named}; allowed items: {', '.join(map(str, allowed))}"
        return _repeated(value)
    elif value not in allowed:
        return f"{value!r} is not allowed; allowed: {', '.join(map(str, allowed))}"
    return None


def repeated(values) -> list:
    """The values listed more than once, each once as first written, in the order they first come (1 and 1.0
    are one value); linear, for lists of up to 10,000 items."""
    counts: dict = {}                   # values are numbers or strings; equal ones hash alike
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return [v for v, n in counts.items() if n > 1]


def _repeated(value: tuple) -> str | None:
    """A tuple setting of choices or of typed items lists each value once, as the JSON schema's
    `uniqueItems` says: a repeat would double a comparison or a model."""
    dups = repeated(value)
    return f"{list(value)!r} repeats {', '.join(map(repr, dups))}; list each once" if dups else None


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
            for name in _float_tuples(type(self)):                 # [1] and [1.0] are one value (and one hash)
                if getattr(self, name) is not None:
                    object.__setattr__(self, name, tuple(as_float(v) for v in getattr(self, name)))
            for name in _floats(type(self)):
                if getattr(self, name) is not None:
                    object.__setattr__(self, name, as_float(getattr(self, name)))
            problems = list(self.cross_problems())
        if problems:
            raise SettingsError(type(self).__name__, problems)

    def cross_problems(self) -> list[tuple[str, str]]:
        """Rules between fields: (field, message) pairs. Only called when every field is valid."""
        return []

    @classmethod
    def idle_fields(cls, value_of: Callable[[str], Any]) -> dict[str, str]:
        """Fields no task reads under the other fields' values (`value_of(name)`) -> why: none unless a class says."""
        return {}


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
    obj = cls(**filled)
    recorder = _RECORDER.get()
    return obj if recorder is None else _view(obj, None, "", recorder.setdefault(cls, set()))


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


def _kind_text(kind: type, rule: Rule | None = None) -> str:
    if kind is tuple:      # a YAML list; of the items it may hold, where the rule names them
        allowed = rule.allowed() if rule is not None and rule.choices is not None else None
        return f"a list of: {', '.join(map(str, allowed))}" if allowed else "a list"
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(kind, kind.__name__)


def _spelled(value: Any) -> str:
    """`value` as YAML spells the scalars a spec may hold (true, null), else its repr."""
    return "null" if value is None else ("true" if value else "false") if isinstance(value, bool) else repr(value)


def override(cls: type, name: str, default: Any) -> Any:
    """The field `name` of settings class `cls` with another default (same rule): for subclasses,
    e.g. `epochs: int = override(OptimSettings, "epochs", 15)`."""
    rule = rule_of(next(f for f in dataclasses.fields(cls) if f.name == name))
    return field(default=default, metadata={RULE_KEY: dataclasses.replace(rule, id_default=_SAME)})


# --------------------------------------------------------------------------- what code reads

class UndeclaredSettingRead(RuntimeError):
    """Code read a field of a restricted settings view (`restrict`) that the view does not hold: a
    setting the task's id leaves out, which a sweep over it would silently share."""


_VIEW = "_mmc_view"            # instance attribute of a view: its _Watch
_RECORDER: contextvars.ContextVar[dict[type, set[str]] | None] = contextvars.ContextVar("mmc_reads", default=None)


@dataclass(frozen=True)
class _Watch:
    allowed: frozenset[str] | None     # None: every field
    owner: str                         # who reads, for the error message
    reads: set[str] | None             # fields read so far (recording_reads), else None


def restrict(obj: Any, fields: Iterable[str], owner: str) -> Any:
    """A view of settings object `obj` (the same values, `isinstance` of its class) whose reads of a
    field outside `fields` raise `UndeclaredSettingRead` naming `owner`. A view of a view keeps the
    reads recorded so far (`recording_reads`)."""
    fields = frozenset(fields)
    unknown = sorted(fields - _field_names(_declared_class(type(obj))))
    if unknown:
        raise ValueError(f"{_declared_class(type(obj)).__name__} has no field {', '.join(unknown)}")
    watch = _watch_of(obj)
    return _view(obj, fields, owner, watch.reads if watch is not None else None)


@contextlib.contextmanager
def recording_reads() -> Iterator[dict[type, set[str]]]:
    """Within the block, every settings object rebuilt from a task id (`from_identity`), and every view
    made of one, records the fields read from it: yields {settings class: names of the fields read}.
    Reads made while an object is built (validation) are not reads of the code that uses it."""
    reads: dict[type, set[str]] = {}
    token = _RECORDER.set(reads)
    try:
        yield reads
    finally:
        _RECORDER.reset(token)


def _watch_of(obj: Any) -> _Watch | None:
    return object.__getattribute__(obj, "__dict__").get(_VIEW)


def _declared_class(cls: type) -> type:
    """The settings class a view class shows (the class itself for any other)."""
    return cls.__dict__.get("_mmc_shows", cls)


@lru_cache(maxsize=None)
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def _view(obj: Any, allowed: frozenset[str] | None, owner: str, reads: set[str] | None) -> Any:
    cls = _declared_class(type(obj))
    values = {f.name: object.__getattribute__(obj, f.name) for f in dataclasses.fields(cls) if f.init}
    view = object.__new__(_view_class(cls))
    object.__getattribute__(view, "__dict__").update(values)
    object.__setattr__(view, _VIEW, _Watch(allowed, owner, reads))
    return view


def _rebuild_view(cls: type, values: dict, allowed: frozenset[str] | None, owner: str) -> Any:
    return _view(cls(**values), allowed, owner, None)   # recorded reads stay in the process that read


@lru_cache(maxsize=None)
def _view_class(cls: type) -> type:
    """A subclass of settings class `cls` whose field reads go through the instance's _Watch. Plain
    objects of `cls` never pay for it; views are marked (`_mmc_shows`) so that listings of the settings
    classes can leave them out."""
    names = _field_names(cls)

    def __getattribute__(self, name):
        if name in names:
            watch = object.__getattribute__(self, "__dict__").get(_VIEW)
            if watch is not None:
                if watch.reads is not None:
                    watch.reads.add(name)
                if watch.allowed is not None and name not in watch.allowed:
                    raise UndeclaredSettingRead(
                        f"{watch.owner} read `{name}` of {cls.__name__}, a setting its task id does not hold "
                        f"(a sweep over `{name}` would reuse one result for every value); declare it with "
                        f"the ones it holds ({', '.join(sorted(watch.allowed))}), or stop reading it")
        return object.__getattribute__(self, name)

    def values(self) -> dict[str, Any]:
        return {f.name: object.__getattribute__(self, f.name) for f in dataclasses.fields(cls) if f.init}

    def __reduce__(self):
        watch = object.__getattribute__(self, "__dict__").get(_VIEW)
        return _rebuild_view, (cls, values(self), watch.allowed if watch else None, watch.owner if watch else "")

    def __repr__(self):   # messages may show a view whole; showing is not computing with it
        return repr(cls(**values(self)))

    return type(cls.__name__, (cls,), {"__getattribute__": __getattribute__, "__reduce__": __reduce__,
                                       "__repr__": __repr__,
                                       "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                       "_mmc_shows": cls, "__doc__": cls.__doc__})
