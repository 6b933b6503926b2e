"""Pinned: the default sweep's plan (task ids, and which models every pair compares) and the
defaults of every setting declared in `tasks/`.

Why. A task's id is the hash of its settings with defaults left out, so (a) a change to planning or
hashing silently orphans every stored sweep (each rerun starts over), and (b) a changed default
with an unchanged `id_default` makes a rerun reuse outputs computed under the old default. Both
must be deliberate; these tests make them visible.

Bumping, when a change is intended:

    python -m tests.orchestrator.graph.test_golden --update      # rewrites tests/orchestrator/graph/golden/*.json

then read `git diff tests/orchestrator/graph/golden/` (it shows exactly which ids, pairs or defaults
changed) and say why in the commit message. Changing a default: keep the field's `id_default` at the
old value (`setting(new, id_default=old)`) unless every stored result should be recomputed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
GRAPH_FILE, SETTINGS_FILE = GOLDEN / "default_graph.json", GOLDEN / "settings_defaults.json"
BUMP = "if the change is intended: python -m tests.orchestrator.graph.test_golden --update, and explain the diff"


# ----- what is pinned -----

def _model(task) -> dict:
    c = task.config
    return {"id": task.id, "kind": task.kind, "cue_proportion": task.labels["cue_proportion"],
            "seed": task.labels["seed"], "init_seed": c.get("init_seed"), "order_seed": c.get("order_seed"),
            "spawn": c.get("spawn"), "method": c.get("method"), "parent": c.get("pretrain")}


def default_graph() -> dict:
    """The default sweep's plan: every task id with its kind and parents, and every pair with its
    design, seed, cue proportion, both endpoints (and their seeds) and its path tasks."""
    from orchestrator.graph.dag import build_graph
    from orchestrator.spec.sweep_spec import load_spec

    graph = build_graph(load_spec(None))
    pairs: dict[str, dict] = {}
    for task in graph.tasks.values():
        if task.kind != "path_eval":
            continue
        l = task.labels
        key = f"{l['pair_type']} seed={l['seed']} p={l['cue_proportion']}"
        entry = pairs.setdefault(key, {"pair_type": l["pair_type"], "pair_design": l["pair_design"], "seed": l["seed"],
                                       "cue_proportion": l["cue_proportion"],
                                       "endpoint_a": _model(graph.tasks[l["endpoint_a"]]),
                                       "endpoint_b": _model(graph.tasks[l["endpoint_b"]]), "paths": {}})
        entry["paths"][l["path_kind"] + (f":{l['alignment']}" if l["alignment"] else "")] = task.id
    return {"counts": graph.counts(),
            "tasks": {tid: {"kind": t.kind, "parents": list(t.parents)} for tid, t in graph.tasks.items()},
            "pairs": dict(sorted(pairs.items()))}


def settings_classes() -> list[type]:
    import tasks
    from tasks.settings import Settings

    for module in pkgutil.iter_modules(tasks.__path__):
        importlib.import_module(f"tasks.{module.name}")

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return sorted({c for c in subclasses(Settings) if c.__module__.startswith("tasks.")},
                  key=lambda c: f"{c.__module__}.{c.__qualname__}")


def settings_defaults() -> dict:
    """`module.Class` -> field -> {default, id_default} of every settings dataclass in tasks/."""
    from tasks.settings import rule_of

    out = {}
    for cls in settings_classes():
        fields = {}
        for f in dataclasses.fields(cls):
            rule = rule_of(f)
            same = rule.id_default is type(rule).__dataclass_fields__["id_default"].default
            fields[f.name] = {"default": _plain(f.default), "id_default": "=default" if same else _plain(rule.id_default)}
        out[f"{cls.__module__}.{cls.__qualname__}"] = fields
    return out


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def digest(table: dict) -> str:
    return hashlib.sha256(json.dumps(table, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_golden() -> None:
    GOLDEN.mkdir(exist_ok=True)
    graph = default_graph()
    GRAPH_FILE.write_text(json.dumps({"sha256": digest(graph), **graph}, indent=1) + "\n")
    table = settings_defaults()
    SETTINGS_FILE.write_text(json.dumps({"sha256": digest(table), "defaults": table}, indent=1, sort_keys=True) + "\n")


def _load(path: Path) -> dict:
    assert path.is_file(), f"{path} is missing; {BUMP}"
    return json.loads(path.read_text())


def _differences(old, new, where="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in new:
                out.append(f"{where}{key}: removed")
            elif key not in old:
                out.append(f"{where}{key}: added")
            else:
                out += _differences(old[key], new[key], f"{where}{key}.")
        return out
    return [] if old == new else [f"{where.rstrip('.')}: {json.dumps(old)} -> {json.dumps(new)}"]


def _report(diffs: list[str], what: str) -> str:
    shown = "\n  ".join(diffs[:40]) + (f"\n  ... and {len(diffs) - 40} more" if len(diffs) > 40 else "")
    return f"{what} changed:\n  {shown}\n{BUMP}"


# ----- the tests -----

@pytest.fixture(scope="module")
def graph_now():
    return default_graph()


def test_every_pair_of_the_default_sweep_compares_the_pinned_models(graph_now):
    """Which models are paired: seed, cue proportion, init/order seeds, design, of both endpoints."""
    golden = _load(GRAPH_FILE)

    def semantic(pairs):
        return {k: {**{f: v for f, v in p.items() if f not in ("paths", "endpoint_a", "endpoint_b")},
                    **{e: {f: v for f, v in p[e].items() if f not in ("id", "parent")} for e in ("endpoint_a", "endpoint_b")}}
                for k, p in pairs.items()}

    diffs = _differences(semantic(golden["pairs"]), semantic(graph_now["pairs"]))
    assert not diffs, _report(diffs, "the pairs of the default sweep")


def test_task_ids_of_the_default_sweep_are_pinned(graph_now):
    golden = _load(GRAPH_FILE)
    assert graph_now["counts"] == golden["counts"], _report(_differences(golden["counts"], graph_now["counts"]),
                                                            "the task counts")
    missing = sorted(set(golden["tasks"]) - set(graph_now["tasks"]))
    added = sorted(set(graph_now["tasks"]) - set(golden["tasks"]))
    assert not missing and not added, _report([f"{t}: no longer planned" for t in missing]
                                              + [f"{t}: new" for t in added],
                                              "task ids (every stored sweep would be recomputed)")
    diffs = _differences(golden["tasks"], graph_now["tasks"]) + _differences(golden["pairs"], graph_now["pairs"])
    assert not diffs, _report(diffs, "parents or pair endpoints")
    assert golden["sha256"] == digest({k: golden[k] for k in ("counts", "tasks", "pairs")}), \
        f"{GRAPH_FILE} was edited by hand; {BUMP}"


def test_settings_defaults_are_pinned():
    golden = _load(SETTINGS_FILE)
    now = settings_defaults()
    diffs = _differences(golden["defaults"], now)
    assert not diffs, _report(diffs, "defaults of tasks/ settings (task ids leave defaults out: a changed default "
                                     "with its old id_default reuses outputs computed under the old one)")
    assert golden["sha256"] == digest(now), f"{SETTINGS_FILE} was edited by hand; {BUMP}"


def test_the_pinned_settings_cover_every_spec_section():
    from orchestrator.spec.schema import settings_classes as spec_classes

    pinned = {f"{c.__module__}.{c.__qualname__}" for c in settings_classes()}
    assert {f"{c.__module__}.{c.__qualname__}" for c in spec_classes().values()} <= pinned


def test_a_changed_pair_or_default_is_reported_with_its_name():
    golden = {"a": {"default": 1.0, "id_default": "=default"}, "b": {"x": [1, 2]}}
    now = {"a": {"default": 3.0, "id_default": "=default"}, "b": {"x": [1, 2]}, "c": 1}
    assert _differences(golden, now) == ["a.default: 1.0 -> 3.0", "c: added"]


def test_identity_tells_bools_from_numbers_and_ints_from_floats_by_value():
    from tasks.settings import _same_value

    assert _same_value(1, 1.0) and _same_value(0.5, 0.5) and _same_value((1, 2), (1, 2))
    assert not _same_value(True, 1) and not _same_value(0, False) and not _same_value(None, 0)
    assert not _same_value("1", 1) and not _same_value((1, 2), [1, 2])


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.orchestrator.graph.test_golden --update   (rewrites tests/orchestrator/graph/golden/)")
    write_golden()
    print(f"wrote {GRAPH_FILE} and {SETTINGS_FILE}; review them with `git diff {GOLDEN}`")
