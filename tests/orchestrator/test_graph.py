"""Task graph: counts, content-hash ids, deduplication, configs per kind, plan text."""
from dataclasses import dataclass

import pytest

from orchestrator.graph import (LABEL_KEYS, TASK_KINDS, Resources, Task, build_graph, canonical_json,
                                describe_plan, seed_pairs, settings_dict)
from orchestrator.spec import load_spec, parse_spec


def expected_counts(models: int, seeds: int, cue_props: int, has_nocue: bool, methods: int,
                    alignments: int, kinds=("linear", "quadratic", "aligned"),
                    pairs=("cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft")) -> dict:
    """The count formula of the graph (see orchestrator/graph.py's docstring)."""
    same = seeds if seeds > 2 else seeds - 1        # seed pairs: wrap around for 3+ seeds
    n_pairs = (("cue~nocue" in pairs) * seeds * cue_props * has_nocue
               + ("cue~cue" in pairs) * cue_props * same
               + ("nocue~nocue" in pairs) * has_nocue * same
               + ("pretrained~ft" in pairs) * seeds * cue_props * methods) * models
    counts = {"pretrain": models * seeds * (cue_props + has_nocue),
              "finetune": models * seeds * cue_props * methods,
              "midpoint": n_pairs * ("quadratic" in kinds),
              "align": n_pairs * alignments * ("aligned" in kinds),
              "path_eval": n_pairs * (("linear" in kinds) + ("quadratic" in kinds)
                                      + alignments * ("aligned" in kinds))}
    return {kind: n for kind, n in counts.items() if n}


def test_default_sweep_counts():
    graph = build_graph(load_spec(None))
    assert graph.counts() == expected_counts(1, 3, 1, True, 4, 1)
    assert graph.counts() == {"pretrain": 6, "finetune": 12, "midpoint": 21, "align": 21, "path_eval": 63}
    assert len(graph) == 123


def test_big_sweep_matches_the_count_formula():
    seeds = list(range(30))
    spec = parse_spec(f"name: big\nseeds: {seeds}\ncue_proportions: [0.0, 0.6, 0.8, 0.9]\n"
                      "models: [small_cnn, vgg13]\n")
    graph = build_graph(spec)
    assert graph.counts() == expected_counts(2, 30, 3, True, 4, 2)
    assert len(graph) == 8940


@pytest.mark.parametrize("text,args", [
    ("seeds: [0, 1]\npaths: {kinds: [linear]}\n", dict(seeds=2, kinds=("linear",))),
    ("seeds: [3]\npaths: {pairs: [cue~nocue, pretrained~ft]}\nfinetune: {methods: [cbft]}\n",
     dict(seeds=1, methods=1, pairs=("cue~nocue", "pretrained~ft"))),
    ("cue_proportions: [0.5, 0.9]\npaths: {pairs: [cue~cue], alignments: [weight]}\n",
     dict(cue_props=2, has_nocue=False, alignments=1, pairs=("cue~cue",))),
    ("cue_proportions: [0.0]\nfinetune: {methods: []}\npaths: {pairs: [nocue~nocue]}\n",
     dict(cue_props=0, methods=0, pairs=("nocue~nocue",))),
    ("paths: {pairs: []}\n", dict(pairs=())),
])
def test_smaller_sweeps_match_the_count_formula(text, args):
    full = dict(models=1, seeds=3, cue_props=1, has_nocue=True, methods=4, alignments=2) | args
    assert build_graph(parse_spec("name: x\n" + text)).counts() == expected_counts(**full)


def test_seed_pairs_wrap_around_only_for_three_or_more():
    assert seed_pairs([4]) == []
    assert seed_pairs([4, 7]) == [(4, 7)]
    assert seed_pairs([4, 7, 9]) == [(4, 7), (7, 9), (9, 4)]


def test_ids_do_not_depend_on_key_order_or_explicit_defaults():
    a = parse_spec("name: x\nseeds: [0, 1]\npretrain: {epochs: 3, lr: 0.1}\n")
    b = parse_spec("pretrain: {lr: 0.1, epochs: 3, momentum: 0.9, gamma: 0.1}\nseeds: [0, 1]\n"
                   "finetune: {margin: 1.0, cue_batch_size: null}\npaths: {num_alphas: 11}\n"
                   "data: {dataset: digits, cue: box}\nname: x\n")
    assert list(build_graph(a).tasks) == list(build_graph(b).tasks)


def test_ids_ignore_data_root_resources_storage_and_name(tmp_path):
    a = parse_spec("name: x\ndata: {root: null}\n")
    b = parse_spec(f"name: y\nstorage: /elsewhere\ndata: {{root: '{tmp_path}'}}\n"
                   "resources: {pretrain: {cpus: 4, gpus: 1}}\nmax_concurrent: 9\n")
    graph_b = build_graph(b)
    assert list(build_graph(a).tasks) == list(graph_b.tasks)
    assert all(str(tmp_path) not in canonical_json(t.config) for t in graph_b.tasks.values())


def test_a_setting_changes_only_the_ids_that_depend_on_it():
    base = build_graph(parse_spec("name: x\n"))
    changed = build_graph(parse_spec("name: x\npaths: {num_alphas: 5}\n"))
    for kind in ("pretrain", "finetune", "midpoint", "align"):
        assert _ids(base, kind) == _ids(changed, kind)
    assert not set(_ids(base, "path_eval")) & set(_ids(changed, "path_eval"))
    retrained = build_graph(parse_spec("name: x\npretrain: {epochs: 2}\n"))
    assert not set(base.tasks) & set(retrained.tasks)     # every task descends from a pretrain


def test_adding_a_setting_with_a_default_keeps_the_canonical_form():
    @dataclass(frozen=True)
    class Old:
        lr: float = 0.1
        epochs: int = 3

    @dataclass(frozen=True)
    class New:
        lr: float = 0.1
        epochs: int = 3
        warmup: int = 0

    assert settings_dict(Old(lr=0.2)) == settings_dict(New(lr=0.2)) == {"lr": 0.2}
    assert settings_dict(New(warmup=2)) == {"warmup": 2}
    assert canonical_json({"b": 1, "a": [1.0, None]}) == '{"a":[1.0,null],"b":1}'


def test_shared_tasks_appear_once():
    graph = build_graph(parse_spec("name: x\n"))
    pretrain_ids = _ids(graph, "pretrain")
    assert len(pretrain_ids) == len(set(pretrain_ids)) == 6
    # a pretrain is reached from cue~nocue, cue~cue, nocue~nocue and pretrained~ft pairs
    reached = [p for t in graph.tasks.values() if t.kind == "path_eval" for p in t.parents]
    assert max(reached.count(p) for p in pretrain_ids) > 4
    configs = [canonical_json({"kind": t.kind, "config": t.config}) for t in graph.tasks.values()]
    assert len(configs) == len(set(configs))


def test_tasks_are_in_topological_order_with_known_parents():
    graph = build_graph(load_spec(None))
    seen = set()
    for task_id, task in graph.tasks.items():
        assert task.id == task_id and task_id.startswith(task.kind + "-")
        assert task.kind in TASK_KINDS
        assert all(parent in seen for parent in task.parents)
        seen.add(task_id)


def test_task_configs_have_the_keys_the_runner_reads():
    graph = build_graph(parse_spec("name: x\nmodels: [{name: small_cnn, width: 8}]\n"))
    keys = {"pretrain": {"data", "model", "train", "seed"},
            "finetune": {"pretrain", "method", "finetune", "data", "model", "seed"},
            "midpoint": {"endpoints", "data", "model", "train", "seed"},
            "align": {"endpoints", "method", "data", "model", "samples", "seed"},
            "path_eval": {"endpoints", "path_kind", "via", "alignment", "data", "model", "path"}}
    for task in graph.tasks.values():
        assert set(task.config) == keys[task.kind], task.kind
        assert task.config["model"] == {"name": "small_cnn", "width": 8}
        assert set(task.labels) == set(LABEL_KEYS)
        if task.kind == "finetune":
            assert task.parents == (task.config["pretrain"],)
        if task.kind in ("midpoint", "align", "path_eval"):
            assert list(task.parents[:2]) == task.config["endpoints"]
        if task.kind == "path_eval":
            assert task.config["data"].get("cue_proportion", 0.0) == 0.0
            assert task.config["via"] == (task.parents[2] if len(task.parents) == 3 else None)
            assert (task.config["via"] is None) == (task.config["path_kind"] == "linear")
            assert (task.config["alignment"] is None) == (task.config["path_kind"] != "aligned")
        if task.kind == "midpoint":
            assert isinstance(task.config["data"], list) and len(task.config["data"]) == 2


def test_labels_name_the_pair():
    graph = build_graph(load_spec(None))
    evals = [t for t in graph.tasks.values() if t.kind == "path_eval"]
    types = {t.labels["pair_type"] for t in evals}
    assert types == {"cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft:naive",
                     "pretrained~ft:llrt", "pretrained~ft:lpft", "pretrained~ft:cbft"}
    for t in evals:
        a, b = graph.tasks[t.labels["endpoint_a"]], graph.tasks[t.labels["endpoint_b"]]
        assert [a.id, b.id] == t.config["endpoints"]
        assert t.labels["dataset"] == "digits" and t.labels["model"] == "small_cnn"
        if t.labels["pair_type"] == "cue~nocue":
            assert (a.labels["cue_proportion"], b.labels["cue_proportion"]) == (0.8, 0.0)
            assert a.labels["seed"] == b.labels["seed"] == t.labels["seed"]
        if t.labels["pair_type"] == "cue~cue":
            assert a.labels["seed"] != b.labels["seed"] and t.labels["cue_proportion"] == 0.8
        if t.labels["pair_type"].startswith("pretrained~ft:"):
            assert b.kind == "finetune" and b.labels["method"] == t.labels["method"]
        assert (t.labels["alignment"] is not None) == (t.labels["path_kind"] == "aligned")


def test_midpoint_seed_comes_from_the_pair():
    graph = build_graph(load_spec(None))
    for task in graph.tasks.values():
        if task.kind == "midpoint":
            assert task.config["seed"] == graph.tasks[task.config["endpoints"][0]].config["seed"]


def test_children_and_descendants():
    graph = build_graph(load_spec(None))
    pretrain = next(t for t in graph.tasks.values() if t.kind == "pretrain" and t.labels["cue_proportion"] > 0)
    children = graph.children(pretrain.id)
    assert {graph.tasks[c].kind for c in children} == {"finetune", "midpoint", "align", "path_eval"}
    descendants = graph.descendants(pretrain.id)
    assert set(children) <= set(descendants)
    order = list(graph.tasks)
    assert descendants == sorted(descendants, key=order.index)
    leaf = next(t for t in graph.tasks.values() if t.kind == "path_eval")
    assert graph.children(leaf.id) == [] and graph.descendants(leaf.id) == []


def test_resources_come_from_the_spec_and_are_not_in_the_id():
    spec = parse_spec("name: x\nresources: {pretrain: {cpus: 2, gpus: 0.5, workers: 2}}\n")
    graph = build_graph(spec)
    task = next(t for t in graph.tasks.values() if t.kind == "pretrain")
    assert task.resources == Resources(cpus=2, gpus=0.5, workers=2)
    other = Task(task.kind, task.config, task.parents, task.labels, Resources())
    assert other.id == task.id and hash(other) == hash(task)


def test_describe_plan_shows_counts_and_dependencies():
    text = describe_plan(build_graph(load_spec(None)))
    assert text.splitlines()[0] == "123 tasks"
    for line in ("pretrain       6", "finetune      12", "midpoint      21", "align         21",
                 "path_eval     63"):
        assert line in text, text
    assert "← pretrain×2 + midpoint (9)" in text or "| pretrain×2 + midpoint (9)" in text
    assert "pretrained~ft:cbft 3" in text


def _ids(graph, kind):
    return [task_id for task_id, task in graph.tasks.items() if task.kind == kind]
