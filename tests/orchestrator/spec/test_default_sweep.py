"""The shipped default sweep (`mmc-sweep run` without a spec; `mmc-sweep claims` runs it too): it
resolves, its main pairs are independent and disjoint, it has controls, and every key it leaves out
takes its documented default (the digits profile, else the `tasks/` dataclass default)."""
from __future__ import annotations

from dataclasses import fields
from importlib import resources

from orchestrator import vocab
from orchestrator.spec import schema as spec_schema
from orchestrator.graph.dag import build_graph
from orchestrator.spec.sweep_spec import DEFAULT_SPEC_RESOURCE, PROFILE_RESOURCE, load_spec
from orchestrator.spec.yaml_io import parse_yaml


def _shipped(resource: str) -> dict:
    return parse_yaml(resources.files("orchestrator.spec").joinpath(resource).read_text(encoding="utf-8")) or {}


def test_the_default_sweep_resolves_and_plans():
    spec = load_spec(None)
    assert spec.name == "default" and spec.dataset == "digits"
    graph = build_graph(spec)
    kinds = {task.kind for task in graph.tasks.values()}
    assert kinds == set(vocab.TASK_KINDS)
    assert set(spec.resolved) == set(spec_schema.TOP_KEYS) - {"extends"}   # extends: resolved away


def test_main_pairs_are_independent_and_disjoint_and_controls_are_present():
    spec = load_spec(None)
    parsed = [vocab.parse_pair_type(p) for p in spec.pairs]
    mains = {pair for pair, design, _ in parsed if pair != vocab.PRETRAINED_FT and design == vocab.PAIR_DESIGNS[pair][0]}
    controls = [(pair, design) for pair, design, _ in parsed if design != vocab.PAIR_DESIGNS[pair][0]]
    assert {vocab.CUE_NOCUE, vocab.CUE_CUE, vocab.NOCUE_NOCUE} <= mains
    assert controls, "the default sweep has no control pair type"
    paths = [t for t in build_graph(spec).tasks.values() if t.kind == vocab.PATH_EVAL]
    for pair_type in mains:
        rows = [t.labels for t in paths if t.labels["pair_type"] == pair_type and t.labels["path_kind"] == vocab.LINEAR]
        assert len(rows) == len(spec.seeds), pair_type                 # one pair per seed
        assert all(r["pair_design"] == vocab.INDEPENDENT for r in rows)
        assert all(r["init_seed_a"] != r["init_seed_b"] for r in rows), pair_type
        endpoints = [e for r in rows for e in (r["endpoint_a"], r["endpoint_b"])]
        assert len(endpoints) == len(set(endpoints)), f"{pair_type}: pairs share a model"


def test_every_key_the_default_sweep_leaves_out_takes_its_default():
    spec = load_spec(None)
    written = _shipped(DEFAULT_SPEC_RESOURCE)
    profile = _shipped(PROFILE_RESOURCE.format(dataset=spec.dataset))
    classes = spec_schema.settings_classes()
    checked = 0
    for section, cls in classes.items():
        if section == "model":
            continue                                # models: a list, checked below
        settings = getattr(spec.variants[0], section)
        for f in fields(cls):
            if f.name in spec_schema.DATA_AXIS_FIELDS or f.name in (written.get(section) or {}):
                continue
            expected = (profile.get(section) or {}).get(f.name, f.default)
            value = getattr(settings, f.name)
            if f.name == "root":
                continue                            # where the data live: the machine's, not a setting
            assert value == expected, f"{section}.{f.name}: {value!r}, expected the default {expected!r}"
            checked += 1
    assert checked > 30
    model = classes["model"]()
    assert [m.name for m in spec.models] == list(profile["models"])
    assert all(m.width == model.width for m in spec.models)
    assert list(spec.cue_proportions) == list(written.get("cue_proportions", profile.get("cue_proportions")))
    assert spec.axes == () and spec.resolved["axes"] == []
