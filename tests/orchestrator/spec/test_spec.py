"""Sweep spec: shipped sweeps load, a minimal spec resolves every key, malformed specs fail with
messages that name the problem, the resolved spec round-trips, the cluster check names what does
not fit. Axes, overrides, profiles, `extends` and the one-definition rule: test_spec_schema.py."""
import dataclasses
import math
import pickle
from pathlib import Path

import pytest

from orchestrator import vocab
from orchestrator.run import preflight
from orchestrator.spec import sweep_spec as S
from orchestrator.graph.dag import build_graph
from orchestrator.spec.sweep_spec import load_spec, parse_spec
from orchestrator.spec.schema import (DATA_AXIS_FIELDS, LIST, SETTINGS_CLASSES, MlflowSettings, ResourceSettings, SpecError, declared,
                                      lists_class)
from orchestrator.run.sweep import unfinished_kinds
from tasks.models import ModelSettings
from tasks.settings import as_dict

REPO = Path(__file__).resolve().parents[3]
BAD_SPECS = sorted((Path(__file__).parents[1] / "bad_specs").glob("*.yaml"))
SHIPPED = sorted((REPO / "sweeps").glob("*.yaml"))


def expected_messages(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [line.split("# expect:", 1)[1].strip() for line in lines if line.startswith("# expect:")]


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "test.yaml")
    return info.value.problems


# ----- shipped sweeps -----

def test_default_spec_loads_with_every_section():
    spec = load_spec(None)
    assert spec.name == "default" and spec.dataset == "digits" and spec.models == (ModelSettings("small_cnn"),)
    assert spec.seeds == (0, 1, 2) and spec.cue_proportions == (0.0, 0.8) and spec.cue_models == (0.8,)
    assert spec.methods == ("naive", "llrt", "lpft", "cbft", "naive_cued") and spec.finetuned_kinds == ("linear",)
    assert spec.pairs == ("cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft", "cue~nocue:same-init",
                          "cue~cue:spawn@0", "cue~cue:resubset", "nocue~nocue:self")
    assert spec.path_kinds == ("linear", "quadratic", "aligned") and spec.alignments == ("activation",)
    assert spec.axes == () and len(spec.variants) == 1 and spec.swept_keys == ()
    assert spec.max_concurrent == 2 and spec.mlflow.enabled


def test_the_default_sweep_takes_the_digits_profile_and_the_tasks_defaults():
    spec, profile = load_spec(None), S.profile_for("digits")
    v = spec.variants[0]
    for section in ("pretrain", "finetune", "midpoint", "align", "paths"):
        for key, value in profile[section].items():
            assert getattr(getattr(v, section), key) == value, (section, key)
    assert v.finetune.margin == SETTINGS_CLASSES["finetune"]().margin       # not in the profile: the default


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweep_validates(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # real datasets name ./data as their root
    (tmp_path / "data").mkdir()
    spec = load_spec(path)
    assert spec.name == path.stem
    first = path.read_text().splitlines()[:6]
    assert any(f"mmc-sweep run sweeps/{path.name}" in line for line in first), first
    assert len(build_graph(spec)) > 0


def test_shipped_sweeps_cover_the_brief():
    assert {p.name for p in SHIPPED} >= {"cifar10_vgg13.yaml", "cifar10_resnet18.yaml",
                                         "cifar100_vgg13.yaml", "dominoes_vgg13.yaml", "smoke.yaml"}
    assert "default" in S.shipped_sweeps()


# ----- a minimal spec: every omitted key has a working default -----

def test_a_minimal_spec_resolves_every_key_to_the_profile_or_the_declared_default():
    spec = parse_spec("name: x\n")
    resolved, profile = spec.resolved, S.profile_for("digits")
    for section, cls in SETTINGS_CLASSES.items():
        for name, default in as_dict(cls()).items():
            if section == "data" and name in DATA_AXIS_FIELDS:
                assert name not in resolved["data"]          # set per model by cue_proportions / seeds
                continue
            expected = profile.get(section, {}).get(name, default)
            expected = list(expected) if isinstance(expected, tuple) else expected
            assert resolved[section][name] == expected, f"{section}.{name}"
    lists = [("", d) for d in declared() if d.kind == LIST] + [
        (section, d) for section in SETTINGS_CLASSES if lists_class(section) for d in declared(lists_class(section))
        if d.kind == LIST]
    assert len(lists) == 7
    for section, d in lists:
        value = resolved[section][d.name] if section else resolved[d.name]
        assert value == list(profile.get(d.name, d.default) if not section else d.default), d.name
    assert resolved["models"] == [as_dict(ModelSettings("small_cnn"))]
    assert resolved["storage"] == "./mmc-runs" and resolved["max_concurrent"] is None and spec.max_concurrent is None
    assert resolved["mlflow"] == as_dict(MlflowSettings()) and resolved["axes"] == []
    assert resolved["resources"] == {k: {**as_dict(ResourceSettings()), "custom": {}} for k in vocab.TASK_KINDS}
    assert resolved["data"]["root"] is None


def test_resolved_spec_names_every_declared_key():
    resolved = load_spec(None).resolved
    for section, cls in SETTINGS_CLASSES.items():
        fields = {f.name for f in dataclasses.fields(cls)} - (set(DATA_AXIS_FIELDS) if section == "data" else set())
        assert fields <= set(resolved[section]), section
    assert set(resolved) >= {"name", "storage", "models", "seeds", "cue_proportions", "axes", "resources",
                             "max_concurrent", "mlflow"}


def test_with_top_changes_a_top_level_key_and_the_resolved_spec():
    spec = load_spec(None)
    moved = spec.with_top(storage="/elsewhere")
    assert moved.storage == "/elsewhere" == moved.resolved["storage"] and spec.storage == "./mmc-runs"
    assert moved.variants == spec.variants and S.spec_hash(moved) == S.spec_hash(spec)


def test_dump_spec_round_trips():
    spec = load_spec(None)
    again = parse_spec(S.dump_spec(spec))
    assert dataclasses.replace(again, source=spec.source) == spec
    assert again.resolved == spec.resolved


@pytest.mark.parametrize("spec_text", ["name: '1e3'\n", "name: x\ndescription: '0o17'\n",
                                       "name: x\nresources: {pretrain: {custom: {'1e3': 1}}}\n",
                                       'name: x\ndescription: "a\\x85b"\n'])
def test_a_stored_spec_reads_back_whatever_its_text_spells(spec_text):
    """A sweep's spec.yaml (`dump_spec`) reads back as the same spec: text that YAML 1.1 writes bare but 1.2
    reads as a number (a sweep named 1e3 wrote `name: 1e3`, which its own resume, status and report then
    refused as no name), or a line break YAML folds, is quoted."""
    spec = parse_spec(spec_text)
    again = parse_spec(S.dump_spec(spec), label="stored:spec.yaml")
    assert again.resolved == spec.resolved and S.spec_hash(again) == S.spec_hash(spec)


def test_relative_root_is_resolved_and_a_uri_root_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    spec = parse_spec("name: x\ndata: {dataset: cifar10, root: data}\n")
    assert spec.data_root == str((tmp_path / "data").resolve()) == spec.data.root
    problems = problems_of("name: x\ndata: {dataset: cifar10, root: 's3://bucket/data'}\n")
    assert problems == [p for p in problems if p.startswith("`data.root`: 's3://bucket/data' is not a local directory")]
    assert problems


def test_spec_hash_ignores_where_the_data_lies(tmp_path):
    """`data.root` is where the files are, not what is run: moving them is no change of the sweep."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    a = parse_spec(f"name: x\ndata: {{root: {tmp_path / 'a'}}}\n")
    b = parse_spec(f"name: x\ndata: {{root: {tmp_path / 'b'}}}\n")
    assert a.resolved["data"]["root"] != b.resolved["data"]["root"]
    assert "root" not in S.science(a.resolved)["data"]
    assert S.spec_hash(a) == S.spec_hash(b) and S.differences(a.resolved, b.resolved) == []


def test_a_population_proportion_written_as_a_whole_number_is_the_same_spec_as_its_float():
    """`population.cue_proportions: [1]` is [1.0], as the top-level list reads it: one resolved text, one
    spec hash, one graph."""
    text = "name: x\ncue_proportions: [0.0, 1.0]\npopulation: {{kinds: [pretrain], cue_proportions: [{}]}}\n"
    whole, real = parse_spec(text.format("1")), parse_spec(text.format("1.0"))
    assert whole.resolved["population"]["cue_proportions"] == [1.0]
    assert isinstance(whole.resolved["population"]["cue_proportions"][0], float)
    assert S.spec_hash(whole) == S.spec_hash(real)
    assert list(build_graph(whole).tasks) == list(build_graph(real).tasks)
    assert any("`population.cue_proportions`: [2] is not allowed" in p for p in problems_of(text.format("2")))
    from orchestrator.spec.population import Population
    from tasks.settings import SettingsError

    for bad in (None, 5, "x"):              # built in Python: one clear error, not a TypeError
        with pytest.raises(SettingsError, match="`cue_proportions`"):
            Population(kinds=("pretrain",), cue_proportions=bad)

def test_dominoes_dataset_defaults_to_dominoes_cue(tmp_path):
    spec = parse_spec(f"name: x\ndata: {{dataset: dominoes, root: '{tmp_path}'}}\n")
    assert spec.data.cue == "dominoes"
    assert parse_spec("name: x\n").data.cue == "box"


def test_model_shorthand_and_mapping_are_equivalent():
    a = parse_spec("name: x\nmodels: [vgg13]\n").models
    b = parse_spec("name: x\nmodels: [{name: vgg13}]\n").models
    assert a == b
    wide = parse_spec("name: x\nmodels: [{name: vgg13, width: 32}]\n").models[0]
    assert wide.width == 32 and wide.label == "vgg13-w32"


def test_spec_hash_ignores_where_and_how_things_run():
    a = parse_spec("name: x\n")
    b = parse_spec("name: x\nstorage: /elsewhere\nmax_concurrent: 7\nresources: {pretrain: {cpus: 3}}\n"
                   "mlflow: {enabled: false}\n")
    c = parse_spec("name: x\npretrain: {epochs: 3}\n")
    assert S.spec_hash(a) == S.spec_hash(b) != S.spec_hash(c)
    assert S.differences(a.resolved, b.resolved) == []
    assert S.differences(a.resolved, c.resolved) == ["pretrain.epochs: 20 -> 3"]


def test_json_schema_names_every_top_level_key_and_section_field():
    schema = S.spec_json_schema()
    assert "required" not in schema and "anyOf" not in schema    # a spec file's name defaults to the file's
    assert schema["additionalProperties"] is False
    from orchestrator.spec.schema import TOP_KEYS

    assert set(schema["properties"]) == set(TOP_KEYS)
    assert all(prop["description"] for prop in schema["properties"].values())
    for section, cls in SETTINGS_CLASSES.items():
        fields = {f.name for f in dataclasses.fields(cls)} - (set(DATA_AXIS_FIELDS) if section == "data" else set())
        assert fields <= set(schema["properties"][section]["properties"]), section


# ----- malformed specs -----

def test_bad_spec_corpus_is_large():
    assert len(BAD_SPECS) >= 30


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_bad_spec_raises_spec_error_naming_the_problem(path):
    expected = expected_messages(path)
    assert expected, f"{path.name} has no '# expect:' line"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"


def test_did_you_mean_for_unknown_keys_at_every_level():
    problems = problems_of("name: x\nseed: [0]\npaths: {num_alpha: 3}\nresources: {path_eval: {gpu: 1}}\n")
    assert "`seed`: unknown key; did you mean `seeds`?" in problems
    assert "`paths.num_alpha`: unknown key; did you mean `paths.num_alphas`?" in problems
    assert "`resources.path_eval.gpu`: unknown key; did you mean `resources.path_eval.gpus`?" in problems


def test_every_problem_is_reported_at_once():
    text = ("name: a/b\npretrian: {}\nseeds: [0, 0]\ncue_proportions: [2.0]\nmodels: [vgg12]\n"
            "pretrain: {epochs: 0, lr: -1}\nfinetune: {methods: [lora]}\n"
            "data: {dataset: cifar10, cue: dominoes}\nstorage: ftp://x\npaths: {num_alphas: 1}\n")
    problems = problems_of(text)
    fields = ("`name`", "`pretrian`", "`seeds`", "`cue_proportions[0]`", "`models[0].name`", "`pretrain.epochs`",
              "`pretrain.lr`", "`finetune.methods[0]`", "`data.cue`", "`data.root`", "`storage`", "`paths.num_alphas`")
    for field in fields:
        assert any(p.startswith(field) for p in problems), (field, problems)
    assert len(problems) == len(fields)


def test_a_missing_data_root_is_reported_next_to_other_problems():
    """README: "the spec, which lists every problem at once". cifar10 needs `data.root`; that problem
    must not wait until the other ones are fixed."""
    problems = problems_of("name: x\ndata: {dataset: cifar10, cue: dominoes}\n")
    assert any(p.startswith("`data.cue`") for p in problems), problems
    assert any(p.startswith("`data.root`") for p in problems), problems


def test_spec_error_lists_problems_one_per_line_and_pickles():
    error = SpecError(["`a`: bad", "`b`: worse"], "s.yaml")
    assert str(error) == "s.yaml: 2 problems in the sweep spec:\n  - `a`: bad\n  - `b`: worse"
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems and copy.source == "s.yaml" and str(copy) == str(error)


def test_unreadable_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read the spec file"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text, field, needs", [
    ("cue_proportions: [0.8]\npaths: {pairs: [cue~nocue]}\n", "`paths.pairs`", "both 0.0 and a proportion > 0"),
    ("cue_proportions: [0.0]\npaths: {pairs: [cue~cue]}\nfinetune: {methods: []}\n", "`paths.pairs`",
     "a proportion > 0"),
    ("cue_proportions: [0.8]\npaths: {pairs: [nocue~nocue]}\n", "`paths.pairs`", "0.0"),
    ("paths: {pairs: [pretrained~ft]}\nfinetune: {methods: []}\n", "`paths.pairs`", "finetune.methods"),
    ("paths: {kinds: [aligned], alignments: []}\n", "`paths.alignments`", "at least one"),
    ("resources: {path_eval: {workers: 2}}\n", "`resources.path_eval.workers`", "only pretrain"),
    ("pretrain: {batch_size: 65}\nresources: {pretrain: {workers: 2}}\n", "`pretrain.batch_size`", "not divisible"),
    ("paths: {pairs: ['cue~cue:spawn@30']}\n", "`paths.pairs`", "use K < 20"),
    ("finetune: {clean_subset: 100000}\n", "`finetune.clean_subset`", "training images"),
])
def test_rules_between_sections_are_checked_before_any_work(text, field, needs):
    problems = problems_of("name: x\n" + text)
    assert any(p.startswith(field) and needs in p for p in problems), problems


# ----- cluster resources (preflight) -----

def test_check_resources_accepts_a_fitting_cluster():
    spec = parse_spec("name: x\nresources: {pretrain: {cpus: 2, gpus: 0.5, workers: 2}}\n")
    assert preflight.check_resources(spec, {"CPU": 8, "GPU": 1}, list(vocab.TASK_KINDS)) == []


def test_check_resources_names_what_does_not_fit():
    spec = parse_spec("name: x\npretrain: {batch_size: 126}\n"
                      "resources: {pretrain: {cpus: 4, gpus: 1, workers: 3}, path_eval: {cpus: 16}}\n")
    kinds = list(vocab.TASK_KINDS)
    problems = preflight.check_resources(spec, {"CPU": 12, "GPU": 2, "nodes": [{"CPU": 6, "GPU": 1}] * 2}, kinds)
    assert any(p.startswith("`resources.pretrain`: 3 workers x 1 gpus = 3 but the cluster has 2")
               for p in problems), problems
    assert any(p.startswith("`resources.path_eval.cpus`: 16 per worker but the largest node has 6")
               for p in problems), problems
    no_gpu = preflight.check_resources(spec, {"CPU": 64}, kinds)
    assert any("`resources.pretrain.gpus`" in p and "no GPU" in p for p in no_gpu), no_gpu


def test_check_resources_names_a_missing_custom_resource():
    spec = parse_spec("name: x\nresources: {pretrain: {custom: {fake_gpu: 1}, workers: 2}}\n")
    problems = preflight.check_resources(spec, {"CPU": 4, "fake_gpu": 1}, ["pretrain"])
    assert any("`resources.pretrain.custom.fake_gpu`" in p and "has 1" in p for p in problems), problems
    assert preflight.check_resources(spec, {"CPU": 4, "fake_gpu": 2}, ["pretrain"]) == []


def test_only_kinds_with_unfinished_tasks_are_checked():
    spec = parse_spec("name: x\nseeds: [0]\npaths: {pairs: ['nocue~nocue:self']}\nfinetune: {methods: []}\n"
                      "cue_proportions: [0.0]\nresources: {align: {cpus: 99}, finetune: {gpus: 4}}\n")
    graph = build_graph(spec)
    verified = {t: (False, "no done.json") for t in graph.tasks}
    kinds = unfinished_kinds(graph, verified)
    assert kinds == ["pretrain", "path_eval"]
    assert preflight.check_resources(spec, {"CPU": 2}, kinds) == []
    pretrain = next(t for t in graph.tasks if graph.tasks[t].kind == "pretrain")
    assert unfinished_kinds(graph, {**verified, pretrain: (True, "")}) == ["path_eval"]
    assert unfinished_kinds(graph, {t: (True, "") for t in graph.tasks}) == []
    assert preflight.check_resources(spec, {"CPU": 2}, list(vocab.TASK_KINDS))   # the rest would not fit


def test_the_claims_rules_are_a_validated_section_of_the_resolved_spec():
    spec = load_spec(None, ["claims.acc_margin=0.05", "claims.barrier_sets=[cue]"])
    assert spec.claims.acc_margin == 0.05 and spec.claims.barrier_sets == ("cue",)
    assert spec.resolved["claims"]["barrier_sets"] == ["cue"] and spec.resolved["claims"]["level"] == 0.95
    assert S.parse_spec(S.dump_spec(spec)).claims == spec.claims
    for overrides, fragments in ((["claims.level=1.5", "claims.x=1"], ("`claims.level`", "`claims.x`: unknown key")),
                                 (["claims.basin_sets=[]", "claims.check_definition=chord"],
                                  ("`claims.basin_sets`", "`claims.check_definition`"))):
        with pytest.raises(SpecError) as err:
            load_spec(None, overrides)
        assert all(f in str(err.value) for f in fragments), str(err.value)
    schema = S.spec_json_schema()["properties"]["claims"]
    assert schema["additionalProperties"] is False and schema["properties"]["barrier_sets"]["items"]["enum"]


def test_a_stored_spec_from_before_a_key_existed_is_not_a_changed_spec():
    """Keys added later (a section, or a setting) at the value they implicitly had are no change; any
    other value is."""
    new = load_spec(None).resolved
    old = {k: v for k, v in new.items() if k != "claims"}
    old["paths"] = {k: v for k, v in new["paths"].items() if k != "bn_data"}
    assert S.differences(old, new) == []
    changed = load_spec(None, ["claims.acc_margin=0.05", "paths.bn_data=mix"]).resolved
    assert S.differences(old, changed) == ["claims: '<absent>' -> " + S.show(changed["claims"]),
                                           "paths.bn_data: '<absent>' -> 'mix'"]


# ----- bounds: the largest allowed value is allowed, the next one is not -----

def test_axes_may_make_exactly_max_variants_combinations_and_no_more(monkeypatch):
    monkeypatch.setattr(S, "MAX_VARIANTS", 4)
    spec = parse_spec("name: x\nfinetune: {lam: {grid: [1, 3]}, lr: {grid: [0.01, 0.1]}}\n")
    assert len(spec.variants) == 4
    problems = problems_of("name: x\nfinetune: {lam: {grid: [1, 3, 10]}, lr: {grid: [0.01, 0.1]}}\n")
    assert any("6 combinations of swept values; at most 4" in p for p in problems), problems


def test_an_axis_of_one_key_repeating_a_value_is_refused_naming_that_key_and_value():
    """Each message names the key and the bad value (spec/validation.py); in a zipped group one key may
    repeat a value as long as the combinations differ."""
    problems = problems_of("name: x\naxes: [{finetune.lam: [1, 3, 1]}]\n")
    assert problems == ["`axes[0].finetune.lam`: [1, 3, 1] repeats a value; list each value once"], problems
    spec = parse_spec("name: x\naxes: [{finetune.lam: [1, 1], finetune.lr: [0.01, 0.1]}]\n")
    assert [v.swept for v in spec.variants] == [(("finetune.lam", 1), ("finetune.lr", 0.01)),
                                                (("finetune.lam", 1), ("finetune.lr", 0.1))]


def test_spawn_shares_all_but_at_least_the_last_pretraining_epoch():
    """A child that shares every epoch of its parent trains none of its own: it is the parent, and its
    pair would be a noise floor, not a same-data control. K = E - 1 leaves it one epoch."""
    assert parse_spec("name: x\npaths: {pairs: ['cue~cue:spawn@19']}\npretrain: {epochs: 20}\n")
    for k in (20, 21):
        problems = problems_of(f"name: x\npaths: {{pairs: ['cue~cue:spawn@{k}']}}\npretrain: {{epochs: 20}}\n")
        assert any(p.startswith("`paths.pairs`") and "be its parent; use K < 20" in p for p in problems), problems


@pytest.mark.parametrize("key", ["paths.bn_reset_samples", "align.samples", "pretrain.batch_size",
                                 "midpoint.batch_size"])
def test_a_sample_count_may_be_the_whole_training_set_and_no_more(key):
    """digits has 1200 training images (tasks/settings/data.py): all of them may be used, not one more."""
    section, name = key.split(".")
    assert parse_spec(f"name: x\n{section}: {{{name}: 1200}}\n")
    problems = problems_of(f"name: x\n{section}: {{{name}: 1201}}\n")
    assert any(p.startswith(f"`{key}`: 1201 is more than the 1200 training images") for p in problems), problems


def test_cbft_needs_a_full_cue_batch_of_cued_images_left_beside_the_clean_subset():
    """digits: 1200 training images; the clean subset leaves the rest cued for cbft's cue batch (its own
    size, or `batch_size` when unset): exactly one batch left is enough, one image fewer is not."""
    head = "name: x\nfinetune: {methods: [cbft], batch_size: 64, "
    assert parse_spec(head + "clean_subset: 1136}\n")
    problems = problems_of(head + "clean_subset: 1137}\n")
    assert any(p.startswith("`finetune.clean_subset`: 1137 leaves 63 cued training images for cbft, fewer than "
                            "its cue batch 64") for p in problems), problems
    assert parse_spec(head + "clean_subset: 1137, cue_batch_size: 63}\n")
    problems = problems_of(head + "clean_subset: 1000, cue_batch_size: 201}\n")
    assert any("leaves 200 cued training images for cbft, fewer than its cue batch 201" in p for p in problems)
    assert parse_spec("name: x\nfinetune: {methods: [naive], batch_size: 64, clean_subset: 1200}\n")


def test_a_population_may_choose_the_no_cue_models_but_fine_tuned_ones_need_a_cued_proportion():
    spec = parse_spec("name: x\npopulation: {kinds: [pretrain], cue_proportions: [0.0]}\n")
    assert spec.population.cue_proportions == (0.0,)
    problems = problems_of("name: x\npopulation: {kinds: [finetune], cue_proportions: [0.0]}\n")
    assert any(p.startswith("`population.kinds`: 'finetune' needs `finetune.methods` and a cue proportion > 0")
               for p in problems), problems


def test_a_swept_list_repeating_a_number_as_int_and_float_repeats_it():
    """1 and 1.0 are one value of a float setting (spec/axes.py): sweeping both would run it twice."""
    problems = problems_of("name: x\nfinetune: {lam: {grid: [1, 3, 1.0]}}\n")
    assert problems == ["`finetune.lam`: [1, 3, 1.0] repeats a value; list each value once"], problems
    problems = problems_of("name: x\naxes: [{finetune.lam: [3, 3.0], finetune.lr: [0.1, 0.1]}]\n")
    assert any(p.startswith("`axes[0]`: repeats a combination") for p in problems), problems


def test_a_list_may_hold_max_list_items_and_no_more(monkeypatch):
    from orchestrator.spec import axes, validation

    monkeypatch.setattr(axes, "MAX_LIST", 5)
    monkeypatch.setattr(validation, "MAX_LIST", 5)
    spec = parse_spec("name: x\nfinetune: {lam: {grid: [1, 2, 3, 4, 5]}}\nseeds: [0, 1, 2, 3, 4]\n")
    assert len(spec.variants) == 5 and spec.seeds == (0, 1, 2, 3, 4)
    problems = problems_of("name: x\nfinetune: {lam: {grid: [1, 2, 3, 4, 5, 6]}}\nseeds: [0, 1, 2, 3, 4, 5]\n")
    assert "`finetune.lam`: 6 values; at most 5" in problems and "`seeds`: 6 items; at most 5" in problems, problems


def test_a_spec_may_plan_exactly_max_tasks_and_no_more(monkeypatch):
    from orchestrator.spec import rules

    planned = len(build_graph(load_spec(None)))
    monkeypatch.setattr(rules, "MAX_TASKS", planned)
    assert len(build_graph(load_spec(None))) == planned
    monkeypatch.setattr(rules, "MAX_TASKS", planned - 1)
    with pytest.raises(SpecError, match=f"plans about {planned:,} tasks; at most {planned - 1:,}"):
        load_spec(None)


def test_population_defaults_pair_every_model_including_the_controls_with_linear_paths():
    """population.py: kinds [] (no population), controls true, every proportion and method, linear paths."""
    pop = load_spec(None).population
    assert (pop.kinds, pop.controls, pop.cue_proportions, pop.methods, pop.path_kinds) == ((), True, (), (), ("linear",))
    assert not pop.enabled
    # without a population its path kinds choose nothing: [] is no problem there
    assert not load_spec(None, ["population.path_kinds=[]"]).population.enabled
    problems = problems_of("name: x\npopulation: {kinds: [pretrain], path_kinds: []}\n")
    assert any(p.startswith("`population.path_kinds`: [] is empty") for p in problems), problems


def test_whole_numbers_in_a_list_of_proportions_are_the_same_spec_as_their_floats():
    """`cue_proportions: [0, 1]` is `[0.0, 1.0]`: the same resolved spec, hash and tasks."""
    ints = parse_spec("name: x\ncue_proportions: [0, 1]\n")
    floats = parse_spec("name: x\ncue_proportions: [0.0, 1.0]\n")
    assert ints.resolved["cue_proportions"] == [0.0, 1.0]
    assert all(type(p) is float for p in ints.cue_proportions)
    assert S.spec_hash(ints) == S.spec_hash(floats) and S.differences(floats.resolved, ints.resolved) == []


def test_negative_zero_is_zero_in_a_list_a_setting_and_an_axis():
    """`-0.0` is 0.0: the same resolved spec (spec.yaml never writes -0.0), hash and task ids, whether it is a
    proportion, a scalar setting or a swept value; an axis listing both repeats a value."""
    plain = parse_spec("name: x\nseeds: [0]\ncue_proportions: [0.0, 0.9]\npretrain: {weight_decay: 0.0}\n")
    negative = parse_spec("name: x\nseeds: [0]\ncue_proportions: [-0.0, 0.9]\npretrain: {weight_decay: -0.0}\n")
    assert negative.resolved["cue_proportions"] == [0.0, 0.9] and "-0.0" not in S.dump_spec(negative)
    assert math.copysign(1, negative.cue_proportions[0]) == 1
    assert S.spec_hash(plain) == S.spec_hash(negative) and S.differences(plain.resolved, negative.resolved) == []
    assert sorted(build_graph(plain).tasks) == sorted(build_graph(negative).tasks)
    swept = parse_spec("name: x\nseeds: [0]\ncue_proportions: [0.0, 0.9]\naxes: [{pretrain.weight_decay: [-0.0, 0.1]}]\n")
    pretrained = {t for t, task in build_graph(plain).tasks.items() if task.kind == "pretrain"}
    assert pretrained <= set(build_graph(swept).tasks)
    problems = problems_of("name: x\naxes: [{pretrain.weight_decay: [0.0, -0.0]}]\n")
    assert any("repeats a value" in p for p in problems), problems


def test_a_description_may_have_max_description_characters_and_no_more():
    from orchestrator.spec.schema import MAX_DESCRIPTION

    text = "d" * MAX_DESCRIPTION
    assert parse_spec(f"name: x\ndescription: {text}\n").description == text
    problems = problems_of(f"name: x\ndescription: {text}d\n")
    assert len(problems) == 1 and problems[0].startswith("`description`"), problems


def test_the_resolved_spec_writes_the_first_combination_of_swept_values():
    spec = parse_spec("name: x\nfinetune: {lam: {grid: [3, 1, 10]}}\n")
    assert spec.resolved["finetune"]["lam"] == 3.0
    assert spec.resolved["axes"] == [{"finetune.lam": [3, 1, 10]}]


def test_a_spec_of_another_dataset_starts_from_that_datasets_profile(tmp_path):
    """The layers: default < the dataset's profile (profiles/<dataset>.yaml) < the spec. A cifar10 spec
    that names no model or proportion gets cifar10's (vgg13, [0.0, 0.9]), not the digits ones."""
    spec = parse_spec(f"name: x\ndata: {{dataset: cifar10, root: '{tmp_path}'}}\n")
    profile = S.profile_for("cifar10")
    assert [m.name for m in spec.models] == profile["models"] != S.profile_for("digits")["models"]
    assert list(spec.cue_proportions) == profile["cue_proportions"]
    assert spec.provenance.keys["models"] == "profile:cifar10"


def test_an_empty_spec_file_with_overrides_is_the_spec_the_overrides_write():
    """Only a spec with nothing at all is refused as empty: `key=value` overrides are a spec's keys too."""
    spec = S.validate_spec(None, "empty.yaml", overrides=["name=from_override"])
    assert spec.name == "from_override" and spec.explicit("name")
    with pytest.raises(SpecError, match="the spec is empty"):
        S.validate_spec(None, "empty.yaml")


def test_a_data_root_of_one_character_is_a_root(tmp_path, monkeypatch):
    """`data.root` needs at least one character (min_length 1): `d` is a directory name, '' is not."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    assert parse_spec("name: x\ndata: {root: d}\n").data_root == str((tmp_path / "d").resolve())
    assert any(p.startswith("`data.root`") for p in problems_of("name: x\ndata: {root: ''}\n"))


def test_the_claims_rules_keep_their_declared_bounds():
    """claim_rules.py declares each rule's range before any result: a level of 1 (alpha 0: intervals
    that decide nothing), no barrier eval set, fewer than 100 relabelings for (e)'s permutation test, or a
    reliance cut at 0 or 1 (every model in one group) is refused; the bounds themselves where allowed."""
    for bad in ("claims.level=1.0", "claims.level=0.5", "claims.barrier_sets=[]", "claims.permutations=99",
                "claims.reliance_cut=0.0", "claims.reliance_cut=1.0", "claims.power=0.05"):
        with pytest.raises(SpecError, match=f"`{bad.split('=')[0]}`"):
            load_spec(None, [bad])
    rules = load_spec(None, ["claims.permutations=100", "claims.level=0.99", "claims.barrier_sets=[randimg]"]).claims
    assert (rules.permutations, rules.barrier_sets) == (100, ("randimg",))
    assert rules.alpha == pytest.approx(0.01)


def test_a_key_the_spec_does_not_have_was_not_set_by_the_user():
    spec = load_spec(None, ["finetune.lam=3"])
    assert spec.explicit("finetune.lam") and not spec.explicit("finetune.lr")
    assert not spec.explicit("finetune.no_such_setting") and not spec.explicit("")


def test_the_resolved_axes_name_the_grid_values_wherever_the_grid_is():
    """`--explain`: the resolved `axes` list the `{grid: ...}` values too, whichever section holds the grid
    and whichever swept key comes after it (here pretrain's grid, then finetune's axis)."""
    spec = parse_spec("name: x\npretrain: {lr: {grid: [0.05, 0.1]}}\naxes: [{finetune.lam: [1, 3]}]\n", "s.yaml")
    keys = spec.provenance.keys
    assert (keys["pretrain.lr"], keys["finetune.lam"]) == ("file:s.yaml, swept", "file:s.yaml, swept by axes")
    assert keys["axes"] == "file:s.yaml and the {grid: ...} values"


def test_the_data_settings_of_a_swept_spec_are_its_first_combinations():
    spec = parse_spec("name: x\ndata: {eval_split: {grid: [val, test]}}\n")
    assert [v.data.eval_split for v in spec.variants] == ["val", "test"] and spec.data.eval_split == "val"


def test_a_base_whose_pairs_none_of_the_proportions_can_train_is_refused_saying_what_each_pair_needs(tmp_path):
    """A `paths.pairs` the user did not write (here an `extends:` base's) loses the pair types `cue_proportions`
    cannot train; but when it would lose all of them the spec is refused, each pair named with what it needs
    and the file that set it, never planned with no pair at all."""
    (tmp_path / "base.yaml").write_text("name: base\npaths: {pairs: [cue~nocue, nocue~nocue]}\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\ncue_proportions: [0.8]\nseeds: [0]\n")
    with pytest.raises(SpecError) as info:
        S.load_spec(child)
    problems = info.value.problems
    assert any(p.startswith("`paths.pairs`: 'cue~nocue' needs `cue_proportions` to contain both 0.0")
               and p.endswith("(set in base.yaml, which it extends)") for p in problems), problems
    assert any(p.startswith("`paths.pairs`: 'nocue~nocue' needs `cue_proportions` to contain 0.0") for p in problems)
