"""Pairing details of the planner (orchestrator/graph/dag.py) that the count and golden tests do not reach:
the `variant` and `model` labels (swept midpoint, alignment and path settings, two widths of a model), the
self control's path settings, a population's paths under several alignments, across seeds and across
swept combinations, the plan text (`describe_plan`) written out by hand for a tiny sweep, a model's seed
stream, and the device a seeded generator is made on (tasks/seeding.py)."""
from __future__ import annotations

from itertools import combinations

import pytest

from orchestrator import vocab
from orchestrator.graph.dag import build_graph, describe_plan, init_seed, variant_label
from orchestrator.spec.sweep_spec import load_spec, parse_spec
from tasks import seeding


def _path_evals(graph, kind=None):
    return [t for t in graph.tasks.values() if t.kind == vocab.PATH_EVAL
            and (kind is None or t.config["path_kind"] == kind)]


# ----- the variant label -----

def test_a_variant_label_is_key_equals_value_per_swept_setting_joined_by_a_comma_and_a_space():
    """docs/ANALYSIS.md: `variant` is `key=value, …` of the swept settings that define the task (floats as
    `:g`, so 3.0 reads `3`); settings that are not swept, or that the task does not hold, are not named; a
    task no axis affects has no label (None, not an empty string)."""
    settings = {"finetune.lam": 3.0, "finetune.lr": 0.02, "finetune.method": "cbft", "finetune.epochs": 5}
    assert variant_label(("finetune.lam", "finetune.lr"), settings) == "finetune.lam=3, finetune.lr=0.02"
    assert variant_label(("finetune.epochs", "midpoint.lr"), settings) == "finetune.epochs=5"
    assert variant_label(("midpoint.lr",), settings) is None


def test_a_variant_label_names_the_swept_settings_in_the_order_of_the_axes_not_alphabetically():
    """The label follows `swept_keys` (the spec's axis order, as `Variant.label` does), so an axis listed
    first is named first whatever its name."""
    settings = {"finetune.lam": 3.0, "finetune.lr": 0.02, "finetune.epochs": 5}
    assert variant_label(("finetune.lr", "finetune.lam"), settings) == "finetune.lr=0.02, finetune.lam=3"
    assert variant_label(("finetune.lr", "finetune.epochs", "finetune.lam"), settings) == \
        "finetune.lr=0.02, finetune.epochs=5, finetune.lam=3"


def test_a_task_on_two_swept_axes_names_both_in_its_variant():
    """A cbft fine-tuning reads `lr` and `lam`: with both swept, each of its 4 tasks names both, written
    `key=value` and joined by ", " (their order is not pinned here)."""
    spec = parse_spec("name: x\nseeds: [0]\ncue_proportions: [0.8]\npaths: {pairs: [pretrained~ft], kinds: [linear]}\n"
                      "finetune: {methods: [cbft], lam: {grid: [1, 3]}, lr: {grid: [0.01, 0.1]}}\n")
    finetunes = [t for t in build_graph(spec).tasks.values() if t.kind == vocab.FINETUNE]
    assert len(finetunes) == 4
    labels = set()
    for t in finetunes:
        parts = t.labels["variant"].split(", ")
        assert sorted(parts) == sorted(f"{k}={t.settings[k]:g}" for k in ("finetune.lam", "finetune.lr"))
        labels.add(t.labels["variant"])
    assert len(labels) == 4


def test_a_swept_midpoint_or_alignment_setting_labels_exactly_the_tasks_that_read_it():
    """`midpoint.epochs` defines the midpoint task and the quadratic path through it; `align.samples` the
    align task and the aligned path through it. Each of those names its own value in `variant` (else the
    two values' rows carry one label and a report mixes them); the pretrained models, shared by every
    combination, name none, and neither path names the other's setting."""
    spec = parse_spec("name: x\nseeds: [0]\ncue_proportions: [0.0, 0.8]\n"
                      "paths: {pairs: [cue~nocue], kinds: [quadratic, aligned]}\nfinetune: {methods: []}\n"
                      "midpoint: {epochs: {grid: [1, 2]}}\nalign: {samples: {grid: [100, 200]}}\n")
    graph = build_graph(spec)
    assert graph.counts() == {"pretrain": 2, "midpoint": 2, "align": 2, "path_eval": 4}
    seen: dict[str, set] = {"midpoint": set(), "align": set()}
    for t in graph.tasks.values():
        if t.kind == vocab.PRETRAIN:
            assert t.labels["variant"] is None
            continue
        if t.kind == vocab.MIDPOINT or (t.kind == vocab.PATH_EVAL and t.config["path_kind"] == vocab.QUADRATIC):
            epochs = t.config["train"]["epochs"] if t.kind == vocab.MIDPOINT else graph.tasks[t.config["via"]].config[
                "train"]["epochs"]
            assert t.settings["midpoint.epochs"] == epochs and "align.samples" not in t.settings
            assert t.labels["variant"] == f"midpoint.epochs={epochs}", t.kind
            seen["midpoint"].add((t.kind, epochs))
        else:
            samples = t.config["align"]["samples"] if t.kind == vocab.ALIGN else graph.tasks[t.config["via"]].config[
                "align"]["samples"]
            assert t.settings["align.samples"] == samples and "midpoint.epochs" not in t.settings
            assert t.labels["variant"] == f"align.samples={samples}", t.kind
            seen["align"].add((t.kind, samples))
    assert seen == {"midpoint": {(k, e) for k in (vocab.MIDPOINT, vocab.PATH_EVAL) for e in (1, 2)},
                    "align": {(k, s) for k in (vocab.ALIGN, vocab.PATH_EVAL) for s in (100, 200)}}


def test_the_self_controls_path_records_the_fresh_bn_samples_it_runs_with_whatever_the_spec_sweeps():
    """`X~X:self` re-estimates BatchNorm on a fresh sample per alpha whatever `paths.bn_sample` says: with
    `bn_sample` swept (fixed, resample) its path is one task, and its settings and `variant` name the value
    it runs with (resample), not the spec's `fixed`; the main pair's paths name their own value."""
    spec = parse_spec("name: x\nseeds: [0]\ncue_proportions: [0.0]\nfinetune: {methods: []}\n"
                      "paths: {pairs: [nocue~nocue, 'nocue~nocue:self'], kinds: [linear], "
                      "bn_sample: {grid: [fixed, resample]}}\n")
    paths = _path_evals(build_graph(spec))
    self_paths = [t for t in paths if t.labels["pair_type"] == "nocue~nocue:self"]
    assert len(self_paths) == 1 and self_paths[0].config["path"]["bn_sample"] == "resample"
    assert self_paths[0].settings["paths.bn_sample"] == "resample"
    assert self_paths[0].labels["variant"] == "paths.bn_sample=resample"
    main = [t for t in paths if t.labels["pair_type"] == "nocue~nocue"]
    assert sorted(t.settings["paths.bn_sample"] for t in main) == ["fixed", "resample"]
    assert all(t.labels["variant"] == f"paths.bn_sample={t.settings['paths.bn_sample']}" for t in main)


def test_two_widths_of_one_architecture_are_told_apart_in_the_model_label_of_every_task():
    """docs/ANALYSIS.md: `model` is the architecture, with `-w<width>` when the spec sets a width, so two
    widths of small_cnn in one sweep are two labels on every kind of task (else their rows pool)."""
    spec = parse_spec("name: x\nseeds: [0]\ncue_proportions: [0.0, 0.8]\nfinetune: {methods: [naive]}\n"
                      "models: [{name: small_cnn, width: 8}, {name: small_cnn, width: 16}]\n"
                      "paths: {pairs: [cue~nocue, pretrained~ft], kinds: [linear, quadratic, aligned]}\n")
    graph = build_graph(spec)
    kinds = set()
    for t in graph.tasks.values():
        width = t.config["model"]["width"]
        assert t.labels["model"] == f"small_cnn-w{width}", (t.kind, t.labels["model"])
        kinds.add((t.kind, width))
    assert kinds == {(k, w) for k in vocab.TASK_KINDS for w in (8, 16)}


# ----- a population under several alignments -----

def test_every_population_pair_is_aligned_by_every_alignment_method():
    """`paths.alignments: [activation, weight]` with a population on aligned paths: each of the K(K-1)/2
    pairs gets one align task and one aligned path per method (the builder's record of planned paths must
    tell the methods apart, or the second method of a pair is taken for already planned)."""
    g = build_graph(load_spec(None, ["name=population", "paths.pairs=[]", "population.kinds=[pretrain]",
                                     "population.path_kinds=[aligned]", "paths.alignments=[activation, weight]",
                                     "cue_proportions=[0.0, 0.8]", "seeds=[0, 1]", "finetune.methods=[]"]))
    models = [t for t, task in g.tasks.items() if task.kind == vocab.PRETRAIN]
    assert len(models) == 4
    pairs = {frozenset(p) for p in combinations(models, 2)}
    for method in ("activation", "weight"):
        aligned = [frozenset(t.config["endpoints"]) for t in _path_evals(g, vocab.ALIGNED)
                   if t.config["alignment"] == method]
        aligns = [frozenset(t.config["endpoints"]) for t in g.tasks.values()
                  if t.kind == vocab.ALIGN and t.config["method"] == method]
        assert sorted(map(sorted, aligned)) == sorted(map(sorted, pairs)), method
        assert sorted(map(sorted, aligns)) == sorted(map(sorted, pairs)), method
    assert g.counts() == {"pretrain": 4, "align": 12, "path_eval": 12}


def test_a_population_pair_across_seeds_aligns_and_evaluates_on_the_smaller_seeds_clean_data():
    """docs/SCIENCE.md: a population pair is evaluated on the clean evaluation data of the smaller of its two
    seeds; its align task and its paths use that seed too, whichever endpoint comes first (ids order them).
    One model per seed, so every pair crosses seeds (no same-seed pair fixes a seed's evaluation data first)."""
    from tasks.settings import from_identity
    from tasks.settings.data import DataSettings

    g = build_graph(load_spec(None, ["name=population", "paths.pairs=[]", "population.kinds=[pretrain]",
                                     "population.path_kinds=[linear, aligned]", "cue_proportions=[0.8]",
                                     "seeds=[0, 1, 2, 3]", "finetune.methods=[]"]))
    firsts = []
    for t in g.tasks.values():
        if t.kind not in (vocab.ALIGN, vocab.PATH_EVAL):
            continue
        seeds = [g.tasks[e].labels["seed"] for e in t.config["endpoints"]]
        firsts.append(seeds[0] > seeds[1])
        assert t.config["seed"] == min(seeds), (t.kind, seeds)
        if t.kind == vocab.PATH_EVAL:
            data = from_identity(DataSettings, {k: v for k, v in t.config["data"].items() if k != "version"})
            assert (data.seed, data.cue_proportion, data.cue_seed) == (min(seeds), 0.0, None), seeds
    assert len(firsts) == 3 * 6 and any(firsts)      # 4 models, one per seed: every pair crosses seeds, and some
    #                                                  list the larger seed's model first


def test_every_combination_of_swept_values_gets_its_own_population_paths():
    """A swept path setting (`paths.num_alphas: 5 and 9`) evaluates every population pair once per value:
    K(K-1)/2 linear paths per combination, the same models in both."""
    spec = load_spec(None, ["name=population", "paths.pairs=[]", "population.kinds=[pretrain]",
                            "cue_proportions=[0.0, 0.8]", "seeds=[0, 1]", "finetune.methods=[]",
                            "paths.num_alphas={grid: [5, 9]}"])
    assert len(spec.variants) == 2
    g = build_graph(spec)
    models = [t for t, task in g.tasks.items() if task.kind == vocab.PRETRAIN]
    assert len(models) == 4
    pairs = sorted(sorted(p) for p in combinations(models, 2))
    for n in (5, 9):
        paths = [t for t in _path_evals(g, vocab.LINEAR) if t.config["path"].get("num_alphas", 11) == n]
        assert sorted(sorted(t.config["endpoints"]) for t in paths) == pairs, n
        assert {t.labels["variant"] for t in paths} == {f"paths.num_alphas={n}"}


# ----- the plan text -----

def test_the_plan_text_of_a_tiny_sweep_is_the_one_written_out_by_hand():
    """Seed 0, proportions 0.0 and 0.8, cue~nocue on a linear path and two fine-tunings on theirs: 2
    pretrained models, 2 fine-tuned ones, 3 linear paths. Each kind's line gives its count and per-task
    resources as the spec sets them (cpus, then gpus, then custom resources, workers only when more than
    one); under it, what its tasks depend on, the most common first (←), then the others (|)."""
    spec = parse_spec("name: x\nseeds: [0]\ncue_proportions: [0.0, 0.8]\n"
                      "paths: {pairs: [cue~nocue, pretrained~ft], kinds: [linear]}\n"
                      "finetune: {methods: [naive, cbft]}\n"
                      "resources: {pretrain: {cpus: 2, gpus: 0.5, workers: 2, custom: {fast: 1}},\n"
                      "            finetune: {cpus: 4, gpus: 1, workers: 1}, path_eval: {cpus: 0.5, gpus: 0}}\n")
    pad = " " * (2 + 9 + 1 + 6 + 3)          # under the kind (9 wide: `path_eval`) and its count (6 wide)
    expected = "\n".join([
        "7 tasks",
        "  pretrain       2   2 cpu, 0.5 gpu, 1 fast, 2 workers each",
        pad + "← nothing (2)",
        "  finetune       2   4 cpu, 1 gpu each",
        pad + "← pretrain (2)",
        "  path_eval      3   0.5 cpu, 0 gpu each",
        pad + "← pretrain + finetune (2)",
        pad + "| pretrain×2 (1)",
        "pairs: cue~nocue 1, pretrained~ft:naive 1, pretrained~ft:cbft 1",
    ])
    assert describe_plan(build_graph(spec)) == expected


def test_the_plan_text_lists_what_a_task_depends_on_in_the_order_of_the_task_kinds():
    """A population pair of a fine-tuned and a pretrained model lists the fine-tuned one first (ids sort by
    kind: `finetune-…` < `pretrain-…`); the plan text still names its dependencies in the order of the
    kinds (pretrain, then finetune), as for a pretrained~ft pair, so one shape is one line."""
    g = build_graph(load_spec(None, ["name=population", "paths.pairs=[cue~nocue]", "paths.kinds=[linear]",
                                     "population.kinds=[pretrain, finetune]", "cue_proportions=[0.0, 0.8]",
                                     "seeds=[0]", "finetune.methods=[naive]"]))
    mixed = [t for t in _path_evals(g) if {g.tasks[e].kind for e in t.config["endpoints"]} == {"pretrain", "finetune"}]
    assert len(mixed) == 2 and all(g.tasks[t.config["endpoints"][0]].kind == "finetune" for t in mixed)
    lines = describe_plan(g).splitlines()
    assert [line.strip() for line in lines[lines.index(next(x for x in lines if "path_eval" in x)) + 1:-1]] == [
        "← pretrain + finetune (2)", "| pretrain×2 (1)"]


# ----- seeded generators -----

def test_a_models_seed_stream_is_one_per_proportion_however_the_proportion_is_written():
    """`init_seed(seed, p, role)`: one stream per (seed, p, role), with p a number: 1 and 1.0 are one
    proportion (as in every setting), so they give one seed; another seed, proportion or role another."""
    assert init_seed(3, 1, "a") == init_seed(3, 1.0, "a")
    assert init_seed(3, 0, "b") == init_seed(3, 0.0, "b")
    assert len({init_seed(3, 1.0, "a"), init_seed(4, 1.0, "a"), init_seed(3, 0.5, "a"), init_seed(3, 1.0, "b")}) == 4



def test_a_generator_is_made_on_the_device_asked_for_and_seeded_from_the_derived_seed(monkeypatch):
    """`generator(*parts, device=d)`: a `torch.Generator` on d (a CUDA draw needs a CUDA generator),
    seeded with `derive_seed(*parts)`. Recorded through a stand-in class, so no accelerator is needed."""
    import torch

    made = []

    class Recorder:
        def __init__(self, device="cpu"):
            made.append(["init", device])

        def manual_seed(self, seed):
            made.append(["seed", seed])
            return self

    monkeypatch.setattr(torch, "Generator", Recorder)
    seeding.generator(4, "x", device="cuda:1")
    assert made == [["init", "cuda:1"], ["seed", seeding.derive_seed(4, "x")]]
    made.clear()
    seeding.generator(4, "x")
    assert made[0] == ["init", "cpu"]


@pytest.mark.parametrize("parts", [(1, 2), (7, "randcue", 3)])
def test_a_cpu_generator_draws_the_stream_of_its_derived_seed(parts):
    import torch

    expected = torch.Generator().manual_seed(seeding.derive_seed(*parts))
    assert torch.equal(torch.rand(4, generator=seeding.generator(*parts)), torch.rand(4, generator=expected))


def test_a_variant_label_writes_whole_numbers_and_booleans_as_they_are_and_only_floats_shortened():
    """Only a float is written `:g` (3.0 reads `3`); an integer setting is written whole (`1234567`, not
    `1.23457e+06`, which would make two sample counts one label) and a boolean as `True`/`False`, not `1`/`0`."""
    settings = {"align.samples": 1234567, "align.other": 1234568, "paths.flag": True, "finetune.lr": 1e-07}
    assert variant_label(("align.samples", "paths.flag", "finetune.lr"), settings) == \
        "align.samples=1234567, paths.flag=True, finetune.lr=1e-07"
    assert variant_label(("align.other",), settings) == "align.other=1234568"
