"""Task graph: counts, content-hash ids, deduplication, which models are paired, configs per kind,
swept settings, plan text. Counts are checked against a planner written here from the docstring of
`orchestrator/graph/dag.py` (which models each pair type trains), not against the code's own loops."""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import pytest
import torch

from orchestrator import vocab
from orchestrator.graph.dag import (LABEL_KEYS, Resources, Task, build_graph, canonical_json, describe_plan,
                                init_seed, pair_counts, task_id)
from orchestrator.spec.sweep_spec import SpecError, load_spec, parse_spec
from tasks.models import ModelSettings, build_model
from tests.conftest import SMOKE_SPEC
from tasks.settings import Settings, from_identity, identity_dict, setting

MAIN_PAIRS = ("cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft")
# what a spec that does not list `paths.pairs` gets (the schema's docs): the main pairs and the claims' controls
DEFAULT_PAIRS = (*MAIN_PAIRS, "cue~nocue:same-init", "cue~cue:spawn@0", "cue~cue:resubset", "nocue~nocue:self")


def expected_counts(models: int = 1, seeds: int = 3, cue_props: int = 1, has_nocue: bool = True,
                    methods: int = 5, alignments: int = 1, kinds=("linear", "quadratic", "aligned"),
                    pairs=DEFAULT_PAIRS, variants: int = 1, finetuned_kinds=("linear",)) -> dict:
    """Tasks of a sweep by kind, from the pair types' definitions in graph.py's docstring (pretrained~ft
    pairs get `finetuned_kinds`, the others `kinds`)."""
    cue = [f"cue{i}" for i in range(cue_props)]
    trained, n_pairs, n_self, n_ft = set(), 0, 0, 0
    for text in pairs:
        pair, design, epoch = vocab.parse_pair_type(text)
        if pair == "pretrained~ft":
            trained |= {("primary", p) for p in cue}
            n_ft += len(cue) * methods
            continue
        props = (["nocue"] if has_nocue else []) if pair == "nocue~nocue" else cue
        for p in props:
            trained.add(("primary", p))
            partner = {("cue~nocue", "independent"): ("primary", "nocue"), ("cue~nocue", "same-init"): ("same-init", p),
                       "independent": ("partner", p), "spawn": (f"spawn@{epoch}", p), "resubset": ("resubset", p),
                       "self": None}
            b = partner.get((pair, design), partner.get(design))
            if b is not None:
                trained.add(b)
                n_pairs += 1
            else:
                n_self += 1
    def paths(n, kinds):
        return {"midpoint": n * ("quadratic" in kinds), "align": n * alignments * ("aligned" in kinds),
                "path_eval": n * (("linear" in kinds) + ("quadratic" in kinds) + alignments * ("aligned" in kinds))}

    main, ft = paths(n_pairs, kinds), paths(n_ft, finetuned_kinds)
    per = {"pretrain": len(trained), "finetune": len(cue) * methods * ("pretrained~ft" in pairs),
           **{k: main[k] + ft[k] + (n_self if k == "path_eval" else 0) for k in main}}
    return {kind: n * models * seeds * variants for kind, n in per.items() if n}


def _ids(graph, kind):
    return [task_id for task_id, task in graph.tasks.items() if task.kind == kind]


def _path_evals(graph):
    return [t for t in graph.tasks.values() if t.kind == "path_eval"]


# ----- counts -----

def test_default_sweep_counts():
    graph = build_graph(load_spec(None))
    assert graph.counts() == expected_counts()
    assert graph.counts() == {"pretrain": 21, "finetune": 15, "midpoint": 18, "align": 18, "path_eval": 72}
    assert len(graph) == 144
    # a spec that gives only its name plans the built-in sweep's tasks: its keys are the defaults
    assert set(build_graph(parse_spec("name: x\n")).tasks) == set(graph.tasks)


@pytest.mark.parametrize("props,kept", [
    ("[0.5, 0.9]", ("cue~cue", "pretrained~ft", "cue~cue:spawn@0", "cue~cue:resubset")),
    ("[0.0]", ("nocue~nocue", "nocue~nocue:self")),
])
def test_default_pairs_that_the_proportions_cannot_train_are_left_out_and_said(props, kept):
    spec = parse_spec(f"name: x\ncue_proportions: {props}\n")
    assert spec.pairs == kept
    left_out = [p for p in DEFAULT_PAIRS if p not in kept]
    (note,) = spec.notes
    assert all(repr(p) in note for p in left_out) and not any(repr(p) in note for p in kept), note
    assert "cannot train" in note and "`paths.pairs`" in note
    assert spec.provenance.keys["paths.pairs"] == f"default, less {', '.join(left_out)}"
    cue_props = sum(float(p) > 0 for p in props.strip("[]").split(","))
    assert build_graph(spec).counts() == expected_counts(cue_props=cue_props, has_nocue="0.0" in props, pairs=kept)


def test_no_fine_tuning_methods_leave_the_default_fine_tuned_pair_out_and_say_so():
    """`finetune: {methods: []}` (no fine-tuning) with the default pairs: the pretrained~ft pair is left out
    with a note, as a pair the proportions cannot train is, and nothing fine-tunes; listed by the user, it is
    refused as before. Mixed with pairs the proportions cannot train, the note names each with its cause."""
    spec = parse_spec("name: x\nfinetune: {methods: []}\n")
    assert vocab.PRETRAINED_FT not in spec.pairs and set(spec.pairs) == set(DEFAULT_PAIRS) - {vocab.PRETRAINED_FT}
    (note,) = spec.notes
    assert "left out 'pretrained~ft', which pairs fine-tuned models while `finetune.methods` is empty" in note
    assert "cannot train" not in note and spec.provenance.keys["paths.pairs"] == "default, less pretrained~ft"
    assert not any(t.kind == vocab.FINETUNE for t in build_graph(spec).tasks.values())
    with pytest.raises(SpecError, match="'pretrained~ft' needs `finetune.methods`, which is empty"):
        parse_spec("name: x\nfinetune: {methods: []}\npaths: {pairs: [pretrained~ft, cue~nocue]}\n")
    (mixed,) = parse_spec("name: x\nfinetune: {methods: []}\ncue_proportions: [0.5]\n").notes
    assert "'nocue~nocue' (needs 0.0)" in mixed and "which `cue_proportions` [0.5] cannot train, and 'pretrained~ft', " \
        "which pairs fine-tuned models" in mixed, mixed


def test_a_resubset_control_is_planned_only_below_a_cue_proportion_of_one():
    """At p = 1.0 every training sample carries the cue: another cued subset is the same subset, and a
    partner from the same initialisation and order would be the model itself, not a same-data control."""
    spec = parse_spec("name: x\ncue_proportions: [0.0, 0.5, 1.0]\n")
    graph = build_graph(spec)
    resubset = {key[3] for key in _pairs(graph) if key[0] == "cue~cue:resubset"}
    assert resubset == {0.5} and {key[3] for key in _pairs(graph) if key[0] == "cue~cue:spawn@0"} == {0.5, 1.0}
    assert not [t for t in graph.tasks.values() if "cue_seed" in t.config.get("data", {})
                and t.labels["cue_proportion"] == 1.0]
    assert spec.notes == ("'cue~cue:resubset' is not planned at cue proportion 1.0: there every sample carries the "
                          "cue, so there is no other cued subset",)
    with pytest.raises(SpecError, match=r"'cue~cue:resubset' needs `cue_proportions` to contain a proportion above 0 "
                                         r"and below 1 that leaves some samples without the cue; at 1.0 every sample carries "
                                         r"the cue"):
        parse_spec("name: x\ncue_proportions: [0.0, 1.0]\npaths: {pairs: [cue~nocue, 'cue~cue:resubset']}\n")
    # alone, it is the one problem: no second "plans no task" that would tell the user to list pairs
    with pytest.raises(SpecError) as info:
        parse_spec("name: x\ncue_proportions: [0.0, 1.0]\npaths: {pairs: ['cue~cue:resubset']}\n")
    assert len(info.value.problems) == 1 and "'cue~cue:resubset' needs" in info.value.problems[0]


@pytest.mark.parametrize("pairs", [None, "[cue~nocue, cue~cue, cue~cue:resubset]"])
def test_a_proportion_that_cues_every_sample_plans_no_resubset_control_as_one_does(pairs):
    """0.997 of each digits class, rounded half up, is every sample (124 of 124): as at 1.0, another cued
    subset is the same subset, so the resubset partner is left out there with a note saying why, whether
    the pair comes from the default or the user listed it; it stays at 0.5, where some samples go without."""
    listed = "" if pairs is None else f"paths: {{pairs: {pairs}}}\n"
    spec = parse_spec(f"name: x\ncue_proportions: [0.0, 0.5, 0.997]\n{listed}")
    assert spec.all_cued == (0.997,)
    graph = build_graph(spec)
    assert {key[3] for key in _pairs(graph) if key[0] == "cue~cue:resubset"} == {0.5}
    assert {key[3] for key in _pairs(graph) if key[0] == "cue~cue"} == {0.5, 0.997}
    assert not [t for t in graph.tasks.values() if "cue_seed" in t.config.get("data", {})
                and t.labels["cue_proportion"] == 0.997]
    assert spec.notes == ("'cue~cue:resubset' is not planned at cue proportion 0.997: there every sample carries the "
                          "cue, so there is no other cued subset (p * n rounded half up is every sample of each "
                          "class)",)
    # 0.9959 leaves one sample of the largest class uncued: planned there
    near = build_graph(parse_spec(f"name: x\ncue_proportions: [0.0, 0.5, 0.9959]\n{listed}"))
    assert {key[3] for key in _pairs(near) if key[0] == "cue~cue:resubset"} == {0.5, 0.9959}


def test_a_default_resubset_control_with_only_proportions_that_cue_every_sample_is_left_out():
    spec = parse_spec("name: x\ncue_proportions: [0.0, 0.997]\n")
    assert "cue~cue:resubset" not in spec.top.paths.pairs and "cue~cue" in spec.top.paths.pairs
    assert "left out 'cue~cue:resubset' (needs a proportion above 0 and below 1 that leaves some samples without " \
           "the cue; at 0.997 every sample carries the cue" in spec.notes[0]
    assert not [k for k in _pairs(build_graph(spec)) if k[0] == "cue~cue:resubset"]


def test_listed_pairs_the_proportions_cannot_train_are_refused_not_left_out():
    with pytest.raises(SpecError, match=r"`paths.pairs`: 'cue~nocue' needs `cue_proportions` to contain both 0.0"):
        parse_spec("name: x\ncue_proportions: [0.8]\npaths: {pairs: [cue~nocue, cue~cue]}\n")
    # pairs of an `extends:` are not the user's: left out like the default's
    spec = parse_spec(f"name: x\nextends: {SMOKE_SPEC}\ncue_proportions: [0.8]\n")
    assert spec.pairs == ("pretrained~ft",) and "'cue~nocue' (needs both 0.0 and a proportion > 0)" in spec.notes[0]
    # none of the inherited pairs can run: the refusal names them, and nothing is left out silently
    with pytest.raises(SpecError) as info:
        parse_spec(f"name: x\nextends: {SMOKE_SPEC}\ncue_proportions: [0.0]\n")
    assert "'cue~nocue' needs `cue_proportions` to contain both" in str(info.value)
    assert "'pretrained~ft' needs `cue_proportions` to contain a proportion > 0" in str(info.value)


def test_big_sweep_matches_the_count_formula():
    spec = parse_spec(f"name: big\nseeds: {list(range(6))}\ncue_proportions: [0.0, 0.6, 0.8, 0.9]\n"
                      "models: [small_cnn, vgg13]\n")
    graph = build_graph(spec)
    assert graph.counts() == expected_counts(models=2, seeds=6, cue_props=3)
    assert len(graph) == sum(expected_counts(models=2, seeds=6, cue_props=3).values())


def test_a_long_plan_says_how_far_it_got_and_a_short_one_says_nothing(monkeypatch):
    """A spec near MAX_TASKS plans for a minute or more: every PROGRESS_S it says how many tasks so far."""
    from orchestrator.graph import dag

    spec = load_spec(SMOKE_SPEC)
    told = []
    build_graph(spec, progress=lambda tasks, seconds: told.append((tasks, seconds)))
    assert told == []                                  # well within PROGRESS_S
    monkeypatch.setattr(dag, "PROGRESS_S", 0.0)
    monkeypatch.setattr(dag, "PROGRESS_CHECK", 2)
    graph = build_graph(spec, progress=lambda tasks, seconds: told.append((tasks, seconds)))
    counts = [tasks for tasks, _ in told]
    assert counts == list(range(2, len(graph.tasks) + 1, 2)), counts
    assert all(b >= a >= 0 for (_, a), (_, b) in zip(told, told[1:]))


def test_planning_reads_the_settings_declarations_a_fixed_number_of_times(monkeypatch):
    """Planning cost must not grow with `typing.get_type_hints` calls per task (a 2-million-task
    spec is allowed): the declarations are read once, not once per task."""
    import typing

    from tasks import settings as settings_lib

    calls = []
    real = typing.get_type_hints
    monkeypatch.setattr(settings_lib.typing, "get_type_hints", lambda *a, **k: calls.append(1) or real(*a, **k))
    counts = []
    for seeds in ([0], [0, 1, 2, 3]):
        spec = parse_spec(f"name: x\nseeds: {seeds}\n")
        calls.clear()
        build_graph(spec)
        counts.append(len(calls))
    assert counts[1] == counts[0], f"get_type_hints called {counts[0]} times for 1 seed, {counts[1]} for 4"


@pytest.mark.parametrize("text,args", [
    ("seeds: [0, 1]\npaths: {kinds: [linear]}\n", dict(seeds=2, kinds=("linear",))),
    ("seeds: [3]\npaths: {pairs: [cue~nocue, pretrained~ft]}\nfinetune: {methods: [cbft]}\n",
     dict(seeds=1, methods=1, pairs=("cue~nocue", "pretrained~ft"))),
    ("cue_proportions: [0.5, 0.9]\npaths: {pairs: [cue~cue], alignments: [activation, weight]}\n",
     dict(cue_props=2, has_nocue=False, alignments=2, pairs=("cue~cue",))),
    ("cue_proportions: [0.0]\nfinetune: {methods: []}\npaths: {pairs: [nocue~nocue]}\n",
     dict(cue_props=0, methods=0, pairs=("nocue~nocue",))),
    ("paths: {pairs: ['cue~cue:spawn@2', 'nocue~nocue:spawn@1', 'cue~cue:self']}\n",
     dict(pairs=("cue~cue:spawn@2", "nocue~nocue:spawn@1", "cue~cue:self"))),
    ("paths: {pairs: ['cue~nocue', 'cue~nocue:same-init'], kinds: [quadratic]}\ncue_proportions: [0.0, 0.5, 0.8]\n",
     dict(cue_props=2, pairs=("cue~nocue", "cue~nocue:same-init"), kinds=("quadratic",))),
    # the default kinds (linear, quadratic, aligned) are left unused by a ':self' control: no refusal, no task
    ("paths: {pairs: ['nocue~nocue:self']}\n", dict(pairs=("nocue~nocue:self",))),
    ("paths: {finetuned_kinds: [linear, quadratic, aligned]}\n",
     dict(finetuned_kinds=("linear", "quadratic", "aligned"))),
    ("paths: {pairs: [pretrained~ft], finetuned_kinds: [quadratic]}\n",
     dict(pairs=("pretrained~ft",), finetuned_kinds=("quadratic",))),
])
def test_smaller_sweeps_match_the_count_formula(text, args):
    assert build_graph(parse_spec("name: x\n" + text)).counts() == expected_counts(**args)


# ----- which models are paired -----

def _pairs(graph):
    """One entry per pair: (pair_type, variant, seed, cue_proportion) -> (endpoint a, endpoint b)."""
    out = {}
    for t in _path_evals(graph):
        key = (t.labels["pair_type"], t.labels["variant"], t.labels["seed"], t.labels["cue_proportion"])
        out.setdefault(key, set()).add((t.labels["endpoint_a"], t.labels["endpoint_b"]))
    assert all(len(v) == 1 for v in out.values()), "a pair's paths disagree on its endpoints"
    return {k: next(iter(v)) for k, v in out.items()}


def test_each_pair_type_pairs_the_models_its_definition_names():
    graph = build_graph(load_spec(None))
    tasks = graph.tasks
    for (pair_type, _, seed, p), (a_id, b_id) in _pairs(graph).items():
        a, b = tasks[a_id], tasks[b_id]
        assert a.kind == "pretrain" and a.labels["seed"] == seed and a.config.get("spawn") is None
        la, lb = a.labels, b.labels
        if pair_type == "cue~nocue":
            assert (la["cue_proportion"], lb["cue_proportion"]) == (0.8, 0.0) and p == 0.8
            assert la["init_seed"] != lb["init_seed"] and lb["seed"] == seed
            assert la["init_seed"] == init_seed(seed, 0.8, "a") and lb["init_seed"] == init_seed(seed, 0.0, "a")
        elif pair_type == "cue~nocue:same-init":
            assert (la["cue_proportion"], lb["cue_proportion"]) == (0.8, 0.0)
            assert la["init_seed"] == lb["init_seed"] == init_seed(seed, 0.8, "a")
            assert a.config["order_seed"] == b.config["order_seed"] and a_id != b_id
        elif pair_type in ("cue~cue", "nocue~nocue"):
            q = 0.8 if pair_type == "cue~cue" else 0.0
            assert la["cue_proportion"] == lb["cue_proportion"] == p == q and lb["seed"] == seed
            assert a_id != b_id and la["data_seed"] == lb["data_seed"] == seed
            assert (la["init_seed"], lb["init_seed"]) == (init_seed(seed, q, "a"), init_seed(seed, q, "b"))
        elif pair_type == "nocue~nocue:self":
            assert a_id == b_id and la["cue_proportion"] == 0.0
        elif pair_type in ("cue~cue:spawn@0", "cue~cue:resubset"):   # a second model from A's initialisation
            assert la["init_seed"] == lb["init_seed"] == init_seed(seed, 0.8, "a") and a_id != b_id
            assert (b.config.get("spawn") is not None) == (pair_type == "cue~cue:spawn@0")
            assert ("cue_seed" in b.config["data"]) == (pair_type == "cue~cue:resubset")
        else:
            method = pair_type.split(":")[1]
            assert b.kind == "finetune" and b.parents == (a_id,) and b.labels["method"] == method
            assert la["cue_proportion"] == 0.8


def test_main_pairs_of_one_type_share_no_model():
    """Disjoint pairs: within a pair type (and cue proportion), no model is in two pairs, so their
    barriers are independent draws (what the t-intervals of orchestrator/report/stats.py assume)."""
    graph = build_graph(parse_spec("name: x\nseeds: [0, 1, 2, 3]\ncue_proportions: [0.0, 0.5, 0.9]\n"
                                   f"paths: {{pairs: {list(MAIN_PAIRS)}}}\nfinetune: {{methods: [naive, llrt, lpft, cbft]}}\n"))
    by_group = defaultdict(list)
    for (pair_type, variant, _seed, p), ends in _pairs(graph).items():
        by_group[(pair_type, variant, p)].append(ends)
    assert len(by_group) == 2 + 2 + 1 + 2 * 4       # cue~nocue, cue~cue at 0.5/0.9; nocue~nocue; 4 methods x 2
    for group, pairs in by_group.items():
        models = [m for pair in pairs for m in set(pair)]
        assert len(models) == len(set(models)), group
        assert len(pairs) == 4, group          # one pair per seed


def test_no_model_is_paired_with_itself_outside_the_self_control():
    graph = build_graph(parse_spec("name: x\npaths: {pairs: [cue~nocue, cue~cue, nocue~nocue, pretrained~ft, "
                                   "'cue~nocue:same-init', 'cue~cue:spawn@3', 'nocue~nocue:self']}\n"))
    for (pair_type, *_), (a, b) in _pairs(graph).items():
        assert (a == b) == pair_type.endswith(":self"), pair_type


def test_spawned_partner_shares_init_and_the_first_k_epochs_then_reorders():
    graph = build_graph(parse_spec("name: x\nseeds: [5]\npaths: {pairs: ['cue~cue:spawn@3']}\n"))
    ((pair_type, _, seed, _p), (a_id, b_id)), = _pairs(graph).items()
    a, b = graph.tasks[a_id], graph.tasks[b_id]
    assert pair_type == "cue~cue:spawn@3" and seed == 5
    assert a.config["init_seed"] == b.config["init_seed"] and a.config["order_seed"] == b.config["order_seed"]
    assert b.config["spawn"] == {"epoch": 3, "order_seed": init_seed(5, 0.8, "spawn@3")}
    assert "spawn" not in a.config and b.config["spawn"]["order_seed"] != a.config["order_seed"]


def _initial_weights(task: Task) -> dict[str, torch.Tensor]:
    m = from_identity(ModelSettings, task.config["model"])
    return build_model(m.name, 10, 1, m.width, seed=task.config["init_seed"]).state_dict()


def test_endpoints_of_independent_pairs_differ_at_initialisation_and_same_init_ones_do_not():
    graph = build_graph(parse_spec("name: x\nseeds: [0]\nmodels: [{name: small_cnn, width: 8}]\n"
                                   "paths: {pairs: [cue~nocue, cue~cue, nocue~nocue, 'cue~nocue:same-init'], "
                                   "kinds: [linear]}\n"))
    for (pair_type, *_), (a_id, b_id) in _pairs(graph).items():
        wa, wb = _initial_weights(graph.tasks[a_id]), _initial_weights(graph.tasks[b_id])
        same = all(torch.equal(wa[k], wb[k]) for k in wa if wa[k].is_floating_point() and "running" not in k)
        assert same == (pair_type == "cue~nocue:same-init"), pair_type


# ----- ids -----

def test_ids_do_not_depend_on_key_order_or_explicit_defaults():
    a = parse_spec("name: x\nseeds: [0, 1]\npretrain: {epochs: 3, lr: 0.1}\n")
    b = parse_spec("pretrain: {lr: 0.1, epochs: 3, momentum: 0.9, gamma: 0.1}\nseeds: [0, 1]\n"
                   "finetune: {margin: 1.0, cue_batch_size: null}\npaths: {num_alphas: 11}\n"
                   "data: {dataset: digits, cue: box}\nname: x\n")
    assert list(build_graph(a).tasks) == list(build_graph(b).tasks)


def test_ids_ignore_data_root_resources_storage_and_name(tmp_path):
    a = parse_spec("name: x\ndata: {root: null}\n")
    b = parse_spec(f"name: y\nstorage: /elsewhere\ndata: {{root: '{tmp_path}'}}\n"
                   "resources: {pretrain: {cpus: 4, gpus: 1}}\nmax_concurrent: 9\nmlflow: {enabled: false}\n")
    graph_b = build_graph(b)
    assert list(build_graph(a).tasks) == list(graph_b.tasks)
    assert all(str(tmp_path) not in canonical_json(t.config) for t in graph_b.tasks.values())


def test_a_setting_changes_only_the_ids_that_depend_on_it():
    base = build_graph(parse_spec("name: x\n"))
    changed = build_graph(parse_spec("name: x\npaths: {num_alphas: 5}\n"))
    for kind in ("pretrain", "finetune", "midpoint", "align"):
        assert _ids(base, kind) == _ids(changed, kind)
    assert not set(_ids(base, "path_eval")) & set(_ids(changed, "path_eval"))
    lam = build_graph(parse_spec("name: x\nfinetune: {lam: 7}\n"))
    assert _ids(base, "pretrain") == _ids(lam, "pretrain")
    changed_methods = {t.config["method"] for t in lam.tasks.values() if t.kind == "finetune" and t.id not in base.tasks}
    assert changed_methods == {"cbft"}                 # only CBFT reads lam: the other fine-tunings are shared
    retrained = build_graph(parse_spec("name: x\npretrain: {epochs: 2}\n"))
    assert not set(base.tasks) & set(retrained.tasks)     # every task descends from a pretrain


def test_task_id_is_the_kind_and_16_hex_digits_of_the_canonical_config():
    import hashlib

    config = {"b": [1.0, None], "a": {"y": 1, "x": "é"}}
    text = '{"config":{"a":{"x":"é","y":1},"b":[1.0,null]},"kind":"pretrain"}'
    assert canonical_json({"kind": "pretrain", "config": config}) == text
    assert task_id("pretrain", config) == "pretrain-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


@dataclasses.dataclass(frozen=True)
class _Old(Settings):
    lr: float = setting(0.1, gt=0)
    epochs: int = setting(3, ge=1)


@dataclasses.dataclass(frozen=True)
class _New(Settings):
    lr: float = setting(0.1, gt=0)
    epochs: int = setting(3, ge=1)
    warmup: int = setting(0, ge=0)                      # added later, default = the old behaviour


@dataclasses.dataclass(frozen=True)
class _Changed(Settings):
    lr: float = setting(0.05, gt=0, id_default=0.1)     # default changed; identity keeps the old one
    epochs: int = setting(3, ge=1)


def test_adding_a_setting_with_its_default_keeps_ids_and_changing_a_default_changes_them():
    assert identity_dict(_Old(lr=0.2)) == identity_dict(_New(lr=0.2)) == {"lr": 0.2}
    assert identity_dict(_New(warmup=2)) == {"warmup": 2}
    assert identity_dict(_Old()) == identity_dict(_New()) == {}
    # a task that now runs with lr 0.05 by default gets a new id; one written with lr 0.1 keeps its own
    assert identity_dict(_Changed()) == {"lr": 0.05}
    assert identity_dict(_Changed(lr=0.1)) == {} and from_identity(_Changed, {}).lr == 0.1


def test_bools_ints_and_floats_are_told_apart_in_identities():
    @dataclasses.dataclass(frozen=True)
    class S(Settings):
        flag: bool = setting(False)
        n: float = setting(1.0)

    assert identity_dict(S(n=1)) == {}                  # 1 == 1.0: the same setting
    assert identity_dict(S(flag=True)) == {"flag": True}
    assert identity_dict(S(n=0.0)) == {"n": 0.0}


def test_shared_tasks_appear_once():
    graph = build_graph(parse_spec(f"name: x\npaths: {{pairs: {list(MAIN_PAIRS)}}}\n"
                                   "finetune: {methods: [naive, llrt, lpft, cbft]}\n"))
    pretrain_ids = _ids(graph, "pretrain")
    assert len(pretrain_ids) == len(set(pretrain_ids)) == 12
    # the primary cue model is reached from cue~nocue and cue~cue (3 path kinds each) and from four
    # pretrained~ft pairs (their linear path: paths.finetuned_kinds)
    reached = Counter(p for t in _path_evals(graph) for p in t.parents if graph.tasks[p].kind == "pretrain")
    assert max(reached.values()) == 3 + 3 + 4
    configs = [canonical_json({"kind": t.kind, "config": t.config}) for t in graph.tasks.values()]
    assert len(configs) == len(set(configs))


def test_tasks_are_in_topological_order_with_known_parents():
    graph = build_graph(load_spec(None))
    seen = set()
    for tid, task in graph.tasks.items():
        assert task.id == tid and tid.startswith(task.kind + "-") and len(tid) == len(task.kind) + 17
        assert task.kind in vocab.TASK_KINDS
        assert all(parent in seen for parent in task.parents)
        seen.add(tid)


def test_task_configs_have_the_keys_the_runner_reads():
    graph = build_graph(parse_spec("name: x\nmodels: [{name: small_cnn, width: 8}]\n"
                                   "paths: {pairs: [cue~nocue, pretrained~ft, 'cue~cue:spawn@2']}\n"))
    keys = {"pretrain": {"data", "model", "train", "init_seed", "order_seed"},
            "finetune": {"pretrain", "method", "finetune", "data", "model", "seed"},
            "midpoint": {"endpoints", "data", "model", "train", "seed"},
            "align": {"endpoints", "method", "data", "model", "align", "seed"},
            "path_eval": {"endpoints", "path_kind", "via", "alignment", "data", "model", "path", "seed"}}
    for task in graph.tasks.values():
        extra = {"spawn"} if task.config.get("spawn") else {"linear"} if task.config.get("path_kind") == "aligned" \
            else set()
        assert set(task.config) == keys[task.kind] | extra, task.kind
        assert task.config["model"] == {"name": "small_cnn", "width": 8}
        assert set(task.labels) == set(LABEL_KEYS)
        if task.kind == "finetune":
            assert task.parents == (task.config["pretrain"],)
        if task.kind in ("midpoint", "align", "path_eval"):
            assert list(task.parents[:2]) == task.config["endpoints"]
        if task.kind == "path_eval":
            assert task.config["data"].get("cue_proportion", 0.0) == 0.0
            assert task.config["via"] == (task.parents[2] if len(task.parents) >= 3 else None)
            assert (task.config["via"] is None) == (task.config["path_kind"] == "linear")
            assert (task.config["alignment"] is None) == (task.config["path_kind"] != "aligned")
            if task.config["path_kind"] == "aligned":
                linear = graph.tasks[task.config["linear"]]
                assert linear.config["path_kind"] == "linear" and task.parents[-1] == linear.id
                assert linear.config["endpoints"] == task.config["endpoints"]
        if task.kind == "midpoint":
            assert isinstance(task.config["data"], list) and len(task.config["data"]) == 2


def test_labels_name_the_pair_and_its_seeds():
    graph = build_graph(load_spec(None))
    types = {t.labels["pair_type"] for t in _path_evals(graph)}
    assert types == {"cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft:naive", "pretrained~ft:llrt",
                     "pretrained~ft:lpft", "pretrained~ft:cbft", "pretrained~ft:naive_cued", "cue~nocue:same-init",
                     "cue~cue:spawn@0", "cue~cue:resubset", "nocue~nocue:self"}
    for t in _path_evals(graph):
        a, b = graph.tasks[t.labels["endpoint_a"]], graph.tasks[t.labels["endpoint_b"]]
        assert [a.id, b.id] == t.config["endpoints"]
        assert t.labels["dataset"] == "digits" and t.labels["model"] == "small_cnn"
        assert (t.labels["init_seed_a"], t.labels["init_seed_b"]) == (a.labels["init_seed"], b.labels["init_seed"])
        assert (t.labels["data_seed_a"], t.labels["data_seed_b"]) == (a.labels["data_seed"], b.labels["data_seed"])
        design = vocab.parse_pair_type(t.labels["pair_type"].split(":")[0] if t.labels["pair_type"].startswith(
            "pretrained~ft") else t.labels["pair_type"])[1]
        assert t.labels["pair_design"].split("@")[0] == design   # spawn@K names its epoch
        assert (t.labels["alignment"] is not None) == (t.labels["path_kind"] == "aligned")


def test_midpoint_and_path_seeds_come_from_the_pair():
    graph = build_graph(load_spec(None))
    for task in graph.tasks.values():
        if task.kind in ("midpoint", "align", "path_eval"):
            seed = graph.tasks[task.config["endpoints"][0]].labels["seed"]
            assert task.config["seed"] == task.labels["seed"] == seed


def test_the_self_control_gets_one_linear_path_with_fresh_bn_samples():
    graph = build_graph(load_spec(None))
    self_paths = [t for t in _path_evals(graph) if t.labels["pair_type"] == "nocue~nocue:self"]
    assert len(self_paths) == 3 and {t.config["path_kind"] for t in self_paths} == {"linear"}
    assert all(t.config["path"]["bn_sample"] == "resample" and len(t.parents) == 1 for t in self_paths)
    assert all("bn_sample" not in t.config["path"] for t in _path_evals(graph) if t not in self_paths)


def test_bn_data_from_the_endpoints_names_each_endpoints_own_training_data_in_order():
    """`paths.bn_data: endpoints`: BatchNorm is re-estimated on endpoint A's training distribution and B's,
    so the path's config holds both endpoints' data, A's first; `clean` holds none."""
    graph = build_graph(load_spec(None, ["paths.bn_data=endpoints", "seeds=[0]"]))
    cue_nocue = [t for t in _path_evals(graph) if t.labels["pair_type"] == "cue~nocue"]
    assert cue_nocue
    for t in _path_evals(graph):
        a, b = (graph.tasks[e] for e in t.config["endpoints"])
        assert t.config["bn_data"] == [a.config["data"], b.config["data"]]
    for t in cue_nocue:
        a, b = (graph.tasks[e] for e in t.config["endpoints"])
        assert a.labels["cue_proportion"] > 0 and b.labels["cue_proportion"] == 0.0
    assert all("bn_data" not in t.config for t in _path_evals(build_graph(load_spec(None, ["seeds=[0]"]))))


def test_children_and_descendants():
    graph = build_graph(load_spec(None))
    pretrain = next(t for t in graph.tasks.values() if t.kind == "pretrain" and t.labels["cue_proportion"] > 0)
    children = graph.children(pretrain.id)
    assert {graph.tasks[c].kind for c in children} == {"finetune", "midpoint", "align", "path_eval"}
    descendants = graph.descendants(pretrain.id)
    assert set(children) <= set(descendants)
    order = list(graph.tasks)
    assert descendants == sorted(descendants, key=order.index)
    leaf = next(t for t in _path_evals(graph) if t.config["path_kind"] == "quadratic")
    assert graph.children(leaf.id) == [] and graph.descendants(leaf.id) == []


def test_descendants_are_every_task_that_depends_on_it_through_any_chain_of_parents():
    """A population of fine-tuned models pairs two fine-tunings: that path depends on their pretrained
    parents only through them (a grandchild), and is still a descendant of each."""
    graph = build_graph(load_spec(None, ["population.kinds=[finetune]", "finetune.methods=[naive, cbft]",
                                         "paths.pairs=[cue~nocue]", "seeds=[0]", "paths.kinds=[linear]"]))
    ancestors: dict[str, set] = {}
    for task_id, task in graph.tasks.items():      # topological order: parents first
        ancestors[task_id] = set(task.parents).union(*(ancestors[p] for p in task.parents))
    grandchildren = 0
    for task_id in graph.tasks:
        expected = [t for t in graph.tasks if task_id in ancestors[t]]
        assert graph.descendants(task_id) == expected
        grandchildren += len(set(expected) - set(graph.children(task_id)))
    assert grandchildren > 0


def test_resources_come_from_the_spec_and_are_not_in_the_id():
    spec = parse_spec("name: x\nresources: {pretrain: {cpus: 2, gpus: 0.5, workers: 2, custom: {fast: 1}}}\n")
    graph = build_graph(spec)
    task = next(t for t in graph.tasks.values() if t.kind == "pretrain")
    assert task.resources == Resources(cpus=2, gpus=0.5, workers=2, custom=(("fast", 1.0),))
    other = Task(task.kind, task.config, task.parents, task.labels, Resources())
    assert other.id == task.id and hash(other) == hash(task) and other == task


# ----- swept settings -----

def test_a_fine_tuning_axis_shares_pretraining_and_labels_its_tasks():
    base = build_graph(parse_spec("name: x\npaths: {pairs: [pretrained~ft], kinds: [linear]}\n"
                                  "finetune: {methods: [cbft]}\n"))
    swept = build_graph(parse_spec("name: x\npaths: {pairs: [pretrained~ft], kinds: [linear]}\n"
                                   "finetune: {methods: [cbft], lam: {grid: [1, 3]}}\n"))
    assert _ids(swept, "pretrain") == _ids(base, "pretrain")
    assert swept.counts()["finetune"] == 2 * base.counts()["finetune"]
    assert swept.counts()["path_eval"] == 2 * base.counts()["path_eval"]
    for task in swept.tasks.values():
        if task.kind == "pretrain":
            assert task.labels["variant"] is None and "finetune.lam" not in task.settings   # shared by both
        else:
            assert task.labels["variant"] == f"finetune.lam={task.settings['finetune.lam']:g}"
            assert task.settings["finetune.lam"] in (1.0, 3.0)
    assert {t.settings["finetune.lam"] for t in swept.tasks.values() if t.kind == "finetune"} == {1.0, 3.0}


def test_a_method_that_does_not_read_the_swept_setting_is_one_task():
    swept = build_graph(parse_spec("name: x\npaths: {pairs: [pretrained~ft], kinds: [linear]}\n"
                                   "finetune: {methods: [naive, cbft], lam: {grid: [1, 3, 10]}}\nseeds: [0]\n"))
    methods = Counter(t.config["method"] for t in swept.tasks.values() if t.kind == "finetune")
    assert methods == {"naive": 1, "cbft": 3}
    naive = next(t for t in swept.tasks.values() if t.kind == "finetune" and t.config["method"] == "naive")
    assert "lam" not in naive.config["finetune"] and "finetune.lam" not in naive.settings
    assert naive.labels["variant"] is None


def test_pair_counts_count_a_pair_once_per_swept_combination_that_evaluates_it():
    """A swept path setting evaluates the same two models once per value: one pair per (endpoints,
    combination); the pretrained models, shared by both values, pair the same way."""
    graph = build_graph(parse_spec("name: x\npaths: {pairs: [cue~nocue], kinds: [linear], num_alphas: {grid: [5, 9]}}"
                                   "\nseeds: [0, 1]\n"))
    assert graph.counts() == {"pretrain": 4, "path_eval": 4}
    assert pair_counts(graph) == {"cue~nocue": 4}
    one = build_graph(parse_spec("name: x\npaths: {pairs: [cue~nocue], kinds: [linear]}\nseeds: [0, 1]\n"))
    assert pair_counts(one) == {"cue~nocue": 2}
    # a midpoint and an alignment, which the swept path setting does not reach, are no pairs of their own
    three = build_graph(parse_spec("name: x\npaths: {pairs: [cue~nocue], kinds: [linear, quadratic, aligned], "
                                   "num_alphas: {grid: [5, 9]}}\nseeds: [0]\n"))
    assert pair_counts(three) == {"cue~nocue": 2}
    # a setting only one kind reads (midpoint.epochs: the quadratic path) makes that kind's pairs the most
    mid = build_graph(parse_spec("name: x\npaths: {pairs: [cue~nocue], kinds: [linear, quadratic]}\n"
                                 "midpoint: {epochs: {grid: [1, 2]}}\nseeds: [0]\n"))
    assert pair_counts(mid) == {"cue~nocue": 2}


def test_zipped_axes_make_one_combination_per_position():
    graph = build_graph(parse_spec("name: x\npaths: {pairs: [pretrained~ft], kinds: [linear]}\n"
                                   "finetune: {methods: [naive]}\naxes: [{finetune.lr: [0.01, 0.1], "
                                   "finetune.epochs: [3, 1]}]\n"))
    combos = {(t.settings["finetune.lr"], t.settings["finetune.epochs"]) for t in graph.tasks.values()
              if t.kind == "finetune"}
    assert combos == {(0.01, 3), (0.1, 1)}


def test_settings_of_a_task_cover_its_lineage():
    graph = build_graph(load_spec(None))
    for task in graph.tasks.values():
        sections = {key.split(".")[0] for key in task.settings}
        expected = {"pretrain": {"data", "model", "pretrain"}, "finetune": {"data", "model", "pretrain", "finetune"}}
        if task.kind in expected:
            assert sections == expected[task.kind], task.kind
        else:
            assert {"data", "model", "pretrain"} <= sections, task.kind
        assert "data.root" not in task.settings and "data.seed" not in task.settings


# ----- describing -----

def test_describe_plan_shows_counts_dependencies_and_pairs():
    text = describe_plan(build_graph(load_spec(None)))
    assert text.splitlines()[0] == "144 tasks"
    for line in ("pretrain      21", "finetune      15", "midpoint      18", "align         18", "path_eval     72"):
        assert line in text, text
    assert "| pretrain×2 + midpoint (18)" in text
    assert "pretrained~ft:cbft 3" in text and "nocue~nocue:self 3" in text and "cue~nocue:same-init 3" in text


def test_resubset_partner_shares_init_and_order_and_differs_in_exactly_the_cued_subset():
    """`cue~cue:resubset`: B starts from A's initialisation and data order; its data differ from A's only
    in `cue_seed` (another cued subset at the same proportion), so the cued samples differ but their
    number per class, the clean images, the clean subset and the evaluation sets do not."""
    from tasks.data import DataSettings, load_cue_data

    graph = build_graph(parse_spec("name: x\nseeds: [4]\npaths: {pairs: ['cue~cue:resubset'], kinds: [linear]}\n"))
    ((pair_type, _, seed, _p), (a_id, b_id)), = _pairs(graph).items()
    a, b = graph.tasks[a_id], graph.tasks[b_id]
    assert pair_type == "cue~cue:resubset" and a_id != b_id
    assert a.config["init_seed"] == b.config["init_seed"] and a.config["order_seed"] == b.config["order_seed"]
    diff = {k for k in set(a.config["data"]) | set(b.config["data"])
            if a.config["data"].get(k) != b.config["data"].get(k)}
    assert diff == {"cue_seed"} and {k for k in set(a.config) | set(b.config) if a.config.get(k) != b.config.get(k)} \
        == {"data"}
    da = load_cue_data(from_identity(DataSettings, {k: v for k, v in a.config["data"].items() if k != "version"}))
    db = load_cue_data(from_identity(DataSettings, {k: v for k, v in b.config["data"].items() if k != "version"}))
    assert not torch.equal(da.cued, db.cued)
    assert torch.equal(torch.bincount(da.train.y[da.cued]), torch.bincount(db.train.y[db.cued]))
    assert torch.equal(da.train_clean.x, db.train_clean.x)
    assert all(torch.equal(da.eval_sets[k].x, db.eval_sets[k].x) for k in da.eval_sets)


def test_every_task_records_the_width_its_model_is_built_with():
    """`model.width` left out means the model's own width: the tasks (and so the tables' `model.width` column)
    record that width (16 for small_cnn), so that grouping by width puts small_cnn beside small_cnn-w8 at 16
    and 8, not at null; the model's label and the task ids stay as the spec names them."""
    spec = load_spec(SMOKE_SPEC, ['models=[small_cnn, {name: small_cnn, width: 8}]'])
    graph = build_graph(spec)
    widths = {(t.labels["model"], t.settings["model.width"]) for t in graph.tasks.values() if "model" in t.labels}
    assert widths == {("small_cnn", 16), ("small_cnn-w8", 8)}
    plain = build_graph(load_spec(SMOKE_SPEC))
    assert set(plain.tasks) <= set(graph.tasks)          # the ids of the model without a width did not move


def test_a_setting_the_user_set_that_no_planned_task_reads_is_said_in_a_warning(caplog, tmp_path):
    """`finetune.lam` with naive fine-tuning alone, `midpoint.*` without a quadratic path: the plan says, once
    per key, that the setting changes nothing and which tasks would read it; the same key from the profile or
    an extended base (smoke.yaml's own) is not the user's and is not mentioned. Nothing is refused."""
    from orchestrator.graph.dag import check_settings_read
    from tests.conftest import write_spec
    base = write_spec(tmp_path, "unread", paths={"kinds": ["linear", "aligned"]})    # smoke.yaml below: not the user's
    spec = load_spec(base, ["finetune.methods=[naive]", "finetune.lam=3", "midpoint.epochs=2", "finetune.epochs=2"])
    with caplog.at_level("WARNING", logger="orchestrator.graph.dag"):
        unread = check_settings_read(spec, build_graph(spec))
    assert unread == ["finetune.lam", "midpoint.epochs"]      # for the run's refusal of a changed spec
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("`finetune.lam` is set (override:finetune.lam=3), but no planned task reads it: of the "
                              "fine-tuning methods, cbft, cbft_invariance read it, and `finetune.methods` is ['naive']")
    assert said[1].startswith("`midpoint.epochs` is set (override:midpoint.epochs=2), but no planned task reads it: "
                              "only paths of kind 'quadratic' do")
    caplog.clear()
    plain = load_spec(SMOKE_SPEC)                           # smoke.yaml's own midpoint and align settings are read
    assert check_settings_read(plain, build_graph(plain)) == []
    assert caplog.records == []


def test_a_step_schedule_setting_under_another_schedule_is_unread(caplog):
    """`pretrain.gamma` under a cosine schedule: set, a warning saying why; swept, refused (every value would
    train the same model under another id); swept beside a swept schedule that includes `step`, allowed."""
    from orchestrator.graph.dag import check_settings_read
    spec = load_spec(SMOKE_SPEC, ["pretrain.schedule=cosine", "pretrain.gamma=0.5", "midpoint.step_epochs=3"])
    with caplog.at_level("WARNING", logger="orchestrator.graph.dag"):
        check_settings_read(spec, build_graph(spec))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("`pretrain.gamma` is set (override:pretrain.gamma=0.5), but no planned task reads it "
                              "(only a step schedule reads it, and `schedule` is 'cosine')")
    assert said[1].startswith("`midpoint.step_epochs` is set") and "`schedule` is 'constant'" in said[1]
    swept = load_spec(SMOKE_SPEC, ["pretrain.schedule=cosine", "pretrain.gamma={grid: [0.5, 0.2]}"])
    with pytest.raises(SpecError, match=r"`pretrain.gamma` is swept, but no planned task reads it \(only a step"):
        check_settings_read(swept, build_graph(swept))
    caplog.clear()
    both = load_spec(SMOKE_SPEC, ["pretrain.schedule={grid: [step, cosine]}", "pretrain.gamma={grid: [0.5, 0.2]}",
                                  "midpoint.schedule=step", "midpoint.step_epochs=3"])
    with caplog.at_level("WARNING", logger="orchestrator.graph.dag"):
        check_settings_read(both, build_graph(both))
    assert caplog.records == []


def test_a_population_pair_across_seeds_names_no_seed_and_one_within_a_seed_names_it():
    """Two seeds, a cue and a no-cue model each: a population pair of two models of one seed carries that seed
    as its label; a pair across seeds carries none (its evaluation seed, the smaller one, is no seed of both)."""
    g = build_graph(load_spec(None, ["name=population", "paths.pairs=[]", "population.kinds=[pretrain]",
                                     "cue_proportions=[0.0, 0.8]", "seeds=[0, 1]", "finetune.methods=[]"]))
    evals = [t for t in g.tasks.values() if t.kind == vocab.PATH_EVAL]
    assert len(evals) == 6
    for t in evals:
        seeds = {g.tasks[e].labels["seed"] for e in t.config["endpoints"]}
        assert t.labels["seed"] == (seeds.pop() if len(seeds) == 1 else None), (seeds, t.labels["seed"])
        assert t.config["seed"] == min(g.tasks[e].labels["seed"] for e in t.config["endpoints"])


def test_a_population_filtered_to_one_proportion_leaves_out_the_control_models_of_the_others():
    """`population.cue_proportions: [0.8]` with controls: the cue~cue partners (0.8) are in, the nocue~nocue
    partners (0.0) are not, like the no-cue primary models."""
    g = build_graph(load_spec(None, ["name=population", "paths.pairs=[cue~cue, nocue~nocue]", "paths.kinds=[linear]",
                                     "population.kinds=[pretrain]", "population.cue_proportions=[0.8]",
                                     "cue_proportions=[0.0, 0.8]", "seeds=[0]", "finetune.methods=[]"]))
    pop = [t for t in g.tasks.values() if t.kind == vocab.PATH_EVAL and t.labels["pair_type"] in
           (vocab.POPULATION, vocab.CUE_CUE)]
    models = {e for t in pop for e in t.config["endpoints"]}
    assert len(models) == 2
    assert {g.tasks[m].labels["cue_proportion"] for m in models} == {0.8}


def test_a_population_pair_across_seeds_labels_each_endpoints_own_data_seed():
    """A population pair of models of two seeds: `data_seed_a` / `data_seed_b` (and `init_seed_a` /
    `init_seed_b`) name each endpoint's own seeds, in the pair's order, so a table row tells which data each
    model was trained on (the two differ across seeds)."""
    g = build_graph(load_spec(None, ["name=population", "paths.pairs=[]", "population.kinds=[pretrain]",
                                     "cue_proportions=[0.0, 0.8]", "seeds=[0, 1]", "finetune.methods=[]"]))
    evals = [t for t in g.tasks.values() if t.kind == vocab.PATH_EVAL]
    across = 0
    for t in evals:
        a, b = (g.tasks[e] for e in t.config["endpoints"])
        assert (t.labels["data_seed_a"], t.labels["data_seed_b"]) == (a.labels["data_seed"], b.labels["data_seed"])
        assert (t.labels["init_seed_a"], t.labels["init_seed_b"]) == (a.labels["init_seed"], b.labels["init_seed"])
        across += a.labels["data_seed"] != b.labels["data_seed"]
    assert across == 4


@pytest.mark.parametrize("bn_data", ["endpoints", "mix"])
def test_every_bn_data_but_clean_puts_both_endpoints_training_data_in_the_paths_identity(bn_data):
    """`paths.bn_data` `endpoints` and `mix` both re-estimate BatchNorm on the endpoints' own training images
    (tasks/paths.py), so every path evaluation's config holds both endpoints' data, A's first: two sweeps that
    differ only in those data never share a path's id. `clean` reads the clean evaluation data alone."""
    graph = build_graph(load_spec(None, [f"paths.bn_data={bn_data}", "seeds=[0]"]))
    evals = [t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL]
    assert evals
    for t in evals:
        a, b = (graph.tasks[e] for e in t.config["endpoints"])
        assert t.config["bn_data"] == [a.config["data"], b.config["data"]]


def test_every_task_of_a_pretrained_ft_pair_names_the_fine_tuning_method_it_compares():
    """A pretrained~ft pair compares a model with its fine-tuning by one method: every task of that pair (the
    path evaluations, midpoints and alignments) carries that method as its `method` label, as the fine-tuning
    endpoint does, so the `tasks` rows of two methods' pairs are told apart; a pair of two pretrained models
    names none."""
    graph = build_graph(load_spec(None, ["seeds=[0]", "paths.pairs=[cue~nocue, pretrained~ft]",
                                         "finetune.methods=[naive, cbft]", "paths.finetuned_kinds=[linear, quadratic, aligned]"]))
    pair_tasks = [t for t in graph.tasks.values() if t.kind in (vocab.PATH_EVAL, vocab.MIDPOINT, vocab.ALIGN)]
    ft = [t for t in pair_tasks if t.labels["pair_type"].startswith("pretrained~ft")]
    assert {t.kind for t in ft} == {vocab.PATH_EVAL, vocab.MIDPOINT, vocab.ALIGN}
    for t in ft:
        fine_tuned = graph.tasks[t.config["endpoints"][1]]
        assert fine_tuned.kind == vocab.FINETUNE and t.labels["method"] == fine_tuned.labels["method"]
    assert {t.labels["method"] for t in ft} == {"naive", "cbft"}
    assert all(t.labels["method"] is None for t in pair_tasks if t not in ft)
