"""A population (`population:`) pairs every model a sweep trains with every other one: K models give
K(K-1)/2 path evaluations per path kind, none twice (a pair a pair type plans keeps its task and its
type), ids that depend only on the two endpoints and the path settings, so adding models to a sweep
adds only their pairs."""
from __future__ import annotations

from itertools import combinations

import pytest

from orchestrator import vocab
from orchestrator.graph.dag import build_graph
from orchestrator.spec.schema import SpecError
from orchestrator.spec.sweep_spec import load_spec

MODEL_KINDS = (vocab.PRETRAIN, vocab.FINETUNE)


def graph(*overrides: str):
    return build_graph(load_spec(None, ["name=population", *overrides]))


def models(g) -> set[str]:
    return {t for t, task in g.tasks.items() if task.kind in MODEL_KINDS}


def paths_between(g, kind: str = vocab.LINEAR, alignment: str | None = None) -> list[frozenset]:
    """The unordered endpoints of every path_eval of `kind` between two different models."""
    return [frozenset(t.config["endpoints"]) for t in g.tasks.values()
            if t.kind == vocab.PATH_EVAL and t.config["path_kind"] == kind and t.config.get("alignment") == alignment
            and len(set(t.config["endpoints"])) == 2]


def test_population_alone_plans_every_unordered_pair_once():
    g = graph("paths.pairs=[]", "population.kinds=[pretrain]", "cue_proportions=[0.0, 0.5, 1.0]", "seeds=[0, 1]")
    k = len(models(g))
    assert k == 6 and g.counts() == {vocab.PRETRAIN: 6, vocab.PATH_EVAL: 15}
    pairs = paths_between(g)
    assert len(pairs) == len(set(pairs)) == k * (k - 1) // 2
    assert set(pairs) == {frozenset(p) for p in combinations(models(g), 2)}
    for task in g.tasks.values():
        if task.kind == vocab.PATH_EVAL:
            a, b = task.config["endpoints"]
            assert a < b and task.labels["pair_type"] == task.labels["pair_design"] == vocab.POPULATION
            assert task.labels["cue_proportion"] is None
            seeds = {g.tasks[a].labels["seed"], g.tasks[b].labels["seed"]}
            assert task.config["seed"] == min(seeds)
            assert task.labels["seed"] == (min(seeds) if len(seeds) == 1 else None)


def test_pairs_the_pair_types_plan_keep_their_task_and_type():
    base = ["seeds=[0, 1]", "finetune.methods=[naive, cbft]"]
    plain = graph(*base)
    g = graph(*base, "population.kinds=[pretrain, finetune]", "population.path_kinds=[linear, aligned]")
    assert set(plain.tasks) <= set(g.tasks)             # the population only adds
    for task_id, task in plain.tasks.items():
        assert g.tasks[task_id].labels == task.labels   # and relabels nothing
    k = len(models(g))
    assert models(g) == models(plain) and k == 2 * (7 + 2)   # per seed: 7 pretrained (2 primaries, 5 controls'), 2 fine-tuned
    for kind, alignment in ((vocab.LINEAR, None), (vocab.ALIGNED, "activation")):
        pairs = paths_between(g, kind, alignment)
        assert len(pairs) == len(set(pairs)) == k * (k - 1) // 2, kind
    aligns = [frozenset(t.config["endpoints"]) for t in g.tasks.values() if t.kind == vocab.ALIGN]
    assert len(aligns) == len(set(aligns))
    types = {t.labels["pair_type"] for t in g.tasks.values() if t.kind == vocab.PATH_EVAL}
    assert vocab.POPULATION in types and vocab.CUE_NOCUE in types
    cue_nocue = [t for t in g.tasks.values() if t.kind == vocab.PATH_EVAL and t.labels["pair_type"] == vocab.CUE_NOCUE
                 and t.config["path_kind"] == vocab.LINEAR]
    assert len(cue_nocue) == 2                          # one per seed, as without a population


def test_a_path_the_pair_types_plan_is_not_planned_again_with_another_linear_parent():
    """An aligned path whose pair type planned no linear path has no linear parent; the population's
    linear path of that pair must not make it a second aligned path."""
    g = graph("paths.kinds=[aligned]", "population.kinds=[pretrain]", "population.path_kinds=[linear, aligned]",
              "finetune.methods=[]", "paths.pairs=[cue~nocue, cue~cue]")
    k = len(models(g))
    for kind, alignment in ((vocab.LINEAR, None), (vocab.ALIGNED, "activation")):
        pairs = paths_between(g, kind, alignment)
        assert len(pairs) == len(set(pairs)) == k * (k - 1) // 2, kind


@pytest.mark.parametrize("more", [["seeds=[0, 1, 2]"], ["cue_proportions=[0.0, 0.5, 0.8]"],
                                  ["finetune.methods=[naive, cbft, lpft]"]])
def test_adding_models_adds_only_their_pairs(more):
    base = ["seeds=[0, 1]", "cue_proportions=[0.0, 0.8]", "finetune.methods=[naive, cbft]",
            "paths.pairs=[cue~nocue, pretrained~ft]", "population.kinds=[pretrain, finetune]"]
    before, after = graph(*base), graph(*base, *more)
    assert set(before.tasks) <= set(after.tasks)        # no id changed
    k0, k1 = len(models(before)), len(models(after))
    assert k1 > k0
    new = [t for t in after.tasks.values() if t.id not in before.tasks]
    new_paths = [t for t in new if t.kind == vocab.PATH_EVAL]
    old_models = models(before)
    assert all(not set(t.config["endpoints"]) <= old_models for t in new_paths)   # every new pair has a new model
    assert len(paths_between(after)) == k1 * (k1 - 1) // 2


def test_ids_are_stable_and_filters_choose_the_models():
    a = graph("population.kinds=[pretrain, finetune]")
    b = graph("population.kinds=[pretrain, finetune]")
    assert list(a.tasks) == list(b.tasks)
    g = graph("population.kinds=[finetune]", "population.methods=[cbft]", "population.path_kinds=[aligned]",
              "paths.kinds=[linear]")
    pairs = paths_between(g, vocab.ALIGNED, "activation")
    cbft = {t for t, task in g.tasks.items() if task.kind == vocab.FINETUNE and task.labels["method"] == "cbft"}
    assert len(cbft) == 3 and set(pairs) == {frozenset(p) for p in combinations(cbft, 2)}
    no_controls = graph("population.kinds=[pretrain]", "population.controls=false", "population.cue_proportions=[0.8]")
    primaries = {t for t, task in no_controls.tasks.items() if task.kind == vocab.PRETRAIN
                 and task.labels["cue_proportion"] == 0.8 and task.labels["pair_type"] is None}
    population = {e for t in no_controls.tasks.values() if t.labels["pair_type"] == vocab.POPULATION
                  for e in t.config["endpoints"]}
    assert population and population <= primaries


def test_bad_population_is_one_clear_error_per_problem():
    with pytest.raises(SpecError) as e:
        load_spec(None, ["population.kinds=[pretrain, everything]"])
    assert "`population.kinds`" in str(e.value) and "allowed items: pretrain, finetune" in str(e.value)
    with pytest.raises(SpecError) as e:
        load_spec(None, ["population.kinds=[finetune]", "population.methods=[lpft]", "finetune.methods=[naive]",
                         "population.cue_proportions=[0.3]"])
    text = str(e.value)
    assert "`population.methods`: 'lpft' is not one of `finetune.methods`" in text
    assert "`population.cue_proportions`: 0.3 is not one of `cue_proportions`" in text


def test_a_population_kind_that_is_no_model_is_refused():
    """A population pairs models: pretrained and fine-tuned ones (`population.kinds`). A midpoint or an alignment
    is a task, not a model; `kinds: [midpoint]` would plan a population of nothing, so it is refused."""
    for kinds in ("[midpoint]", "[pretrain, align]"):
        with pytest.raises(SpecError, match="`population.kinds`"):
            load_spec(None, [f"population.kinds={kinds}"])


def test_population_cue_proportions_filter_the_control_pairs_models_too():
    """`population.cue_proportions: [0.8]` chooses only models trained at 0.8: the cue~cue partner at 0.8
    is in the population (controls: true), the nocue~nocue partner at 0.0 is not."""
    g = graph("population.kinds=[pretrain]", "population.controls=true", "population.cue_proportions=[0.8]",
              "paths.pairs=[cue~cue, nocue~nocue]", "finetune.methods=[]", "seeds=[0, 1]")
    population = {e for t in g.tasks.values() if t.labels["pair_type"] == vocab.POPULATION
                  for e in t.config["endpoints"]}
    at = {p: {t for t, task in g.tasks.items() if task.kind == vocab.PRETRAIN and task.labels["cue_proportion"] == p}
          for p in (0.0, 0.8)}
    assert len(at[0.8]) == 4 and len(at[0.0]) == 4       # per seed, each pair type's two models
    assert population == at[0.8]                          # primaries and partners at 0.8, nothing at 0.0


def test_a_population_aligned_path_reuses_the_linear_path_a_pair_type_planned_for_its_endpoints():
    """An aligned path reuses its pair's linear path (the rows of an identity alignment): a population
    without linear paths of its own still links, for a pair a pair type evaluated linearly, that path."""
    g = graph("population.kinds=[pretrain]", "population.path_kinds=[aligned]", "paths.kinds=[linear]",
              "paths.pairs=[cue~nocue]", "finetune.methods=[]", "seeds=[0, 1]")
    linear = {frozenset(t.config["endpoints"]): t for t in g.tasks.values()
              if t.kind == vocab.PATH_EVAL and t.config["path_kind"] == vocab.LINEAR}
    assert len(linear) == 2                                    # the cue~nocue pair of each seed
    aligned = [t for t in g.tasks.values() if t.kind == vocab.PATH_EVAL and t.config["path_kind"] == vocab.ALIGNED]
    k = len(models(g))
    assert len(aligned) == k * (k - 1) // 2
    for t in aligned:
        mine = linear.get(frozenset(t.config["endpoints"]))
        assert t.config["linear"] == (mine.id if mine else None)
        assert (mine is not None and mine.id in t.parents) or mine is None
    assert sum(t.config["linear"] is not None for t in aligned) == 2


def test_a_population_pair_across_seeds_trains_and_evaluates_with_the_smaller_seed():
    g = graph("paths.pairs=[]", "population.kinds=[pretrain]", "population.path_kinds=[quadratic]",
              "cue_proportions=[0.0, 0.8]", "seeds=[0, 1, 2]", "finetune.methods=[]")
    paths = [t for t in g.tasks.values() if t.kind in (vocab.MIDPOINT, vocab.PATH_EVAL)]
    assert len(paths) == 2 * 15
    for t in paths:
        seeds = [g.tasks[e].labels["seed"] for e in t.config["endpoints"]]
        assert t.config["seed"] == min(seeds), (t.kind, seeds)
    assert any(g.tasks[t.config["endpoints"][0]].labels["seed"] > g.tasks[t.config["endpoints"][1]].labels["seed"]
               for t in paths)                       # endpoints in id order: the first is not always the smaller


@pytest.mark.parametrize("extra, idle", [
    (["population.kinds=[pretrain]", "population.cue_proportions=[0.0, 0.8]"], "[0.5]"),
    (["population.kinds=[finetune]"], "[0.0]"),     # fine-tunings train their cue parents only
])
def test_a_proportion_the_population_leaves_out_trains_no_model_and_is_refused(extra, idle):
    with pytest.raises(SpecError) as e:
        load_spec(None, ["paths.pairs=[]", "cue_proportions=[0.0, 0.5, 0.8]", "finetune.methods=[naive]", *extra])
    assert f"`cue_proportions`: {idle} would train no model" in str(e.value)
