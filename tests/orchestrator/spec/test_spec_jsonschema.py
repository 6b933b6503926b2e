"""The JSON schema (`mmc-sweep schema`, for editors) and the validator agree: every spec of the bad-spec
corpus and every bad value of every declared field that the validator refuses, the JSON schema refuses
too, unless its rule is one a JSON schema cannot say (listed below with the reason; the schema must
then accept the file, so the list stays true); valid specs pass both."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jsonschema
import pytest

from orchestrator.spec.jsonschema import json_schema
from orchestrator.spec.schema import SECTION, SETTINGS, SpecError, declared
from orchestrator.spec.sweep_spec import load_spec, parse_spec
from orchestrator.spec.yaml_io import YamlError, parse_yaml, read_text
from tests.orchestrator.spec.test_spec_schema import CASES

REPO = Path(__file__).resolve().parents[3]
BAD_SPECS = sorted((Path(__file__).parents[1] / "bad_specs").glob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(json_schema())

SIZE = "the dataset's size (its images, its largest class)"
ACROSS = "a rule across keys, checked once the layers are merged (spec/rules.py, a class's cross_problems)"
FINITE = "JSON has no NaN or infinity (YAML has)"
WHOLE = "a JSON schema counts 1000.0 as an integer"
EXTENDS = "the file `extends` names"
FILES = "the file system"
PLUGINS = "a name outside the registry may be an import path or an entry point"
COMBINATIONS = "the combinations of swept values"
NOT_EXPRESSIBLE = {
    "align_samples_above_train": SIZE, "bn_reset_above_train": SIZE, "bn_reset_above_train_in_grid": SIZE,
    "clean_subset_above_train": SIZE, "cue_batch_too_big": SIZE, "midpoint_batch_above_train": SIZE,
    "pretrain_batch_above_train": SIZE, "cue_proportion_cues_none": SIZE, "resubset_all_cued": SIZE,
    "aligned_without_alignments": ACROSS, "kinds_empty_with_aligned": ACROSS, "batch_not_divisible": ACROSS,
    "cue_batch_not_divisible": ACROSS, "midpoint_batch_not_divisible": ACROSS, "pretrain_batch_not_divisible": ACROSS,
    "clean_subset_below_batch": ACROSS, "two_problems_in_two_combinations": ACROSS, "cue_cue_without_cue": ACROSS,
    "cue_nocue_without_nocue": ACROSS, "ft_pair_without_methods": ACROSS, "pair_spawn_beyond_epochs": ACROSS,
    "spawn_in_one_combination": ACROSS, "dominoes_cue_wrong_dataset": ACROSS, "mlflow_remote_storage": ACROSS,
    "storage_s3_credentials": ACROSS, "axes_value_bad_in_one_combination": ACROSS,
    "population_proportion_not_in_sweep": ACROSS, "population_method_not_run": ACROSS,
    "population_finetune_without_cue": ACROSS, "population_path_kinds_empty": ACROSS,
    "plans_no_task": ACROSS, "methods_without_the_pair_that_trains_them": ACROSS,
    "methods_listed_without_the_ft_pair": ACROSS, "methods_without_a_cue_proportion": ACROSS, "finetuned_kinds_without_the_ft_pair": ACROSS,
    "alignments_without_an_aligned_path": ACROSS, "kinds_of_ft_pairs_only": ACROSS, "kinds_of_a_self_pair": ACROSS,
    "kinds_empty_for_pairs": ACROSS, "finetuned_kinds_empty": ACROSS, "proportion_no_pair_trains": ACROSS,
    "population_methods_without_finetune": ACROSS, "population_proportions_without_a_population": ACROSS,
    "methods_the_population_leaves_out": ACROSS, "warmup_not_below_epochs": ACROSS,
    "duplicate_model": "one model written two ways ([small_cnn, {name: small_cnn}])",
    "cpus_nan": FINITE, "lr_nan": FINITE, "midpoint_lr_nan": FINITE, "proportion_nan": FINITE,
    "exponent_int": WHOLE, "float_for_int": WHOLE,
    "extends_absolute_missing": EXTENDS, "extends_directory": EXTENDS, "extends_invalid_yaml": EXTENDS,
    "extends_list_file": EXTENDS, "extends_loop_a": EXTENDS, "extends_loop_b": EXTENDS, "extends_self": EXTENDS,
    "extends_unknown": EXTENDS,
    "root_file_uri": FILES, "root_not_a_directory": FILES,
    "unknown_dataset": PLUGINS, "unknown_model": PLUGINS,
    "axes_swept_twice": COMBINATIONS, "axes_too_many": COMBINATIONS, "axes_unequal": COMBINATIONS,
    "tracking_uri_bad_port": "a port in range (urllib's rule)",
    "missing name": "the name a spec file without one takes from its file name (a schema sees no file name)",
}


def schema_errors(raw) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in VALIDATOR.iter_errors(raw)]


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_the_schema_refuses_what_the_validator_refuses(path):
    with pytest.raises(SpecError):
        load_spec(path)
    try:
        raw = parse_yaml(read_text(path, "spec file"))
    except YamlError:
        assert path.stem not in NOT_EXPRESSIBLE
        return                              # refused as YAML, before any schema
    errors = schema_errors(raw)
    if path.stem in NOT_EXPRESSIBLE:
        assert not errors, f"the schema now refuses {path.name}: take it off NOT_EXPRESSIBLE ({errors})"
    else:
        assert errors, f"the validator refuses {path.name} but the JSON schema accepts it"


def test_every_unsayable_rule_names_a_spec_of_the_corpus():
    assert set(NOT_EXPRESSIBLE) <= {p.stem for p in BAD_SPECS}


@pytest.mark.parametrize("section, name, value", [c for c in CASES if c[2] is not math.inf],
                         ids=lambda v: json.dumps(v) if not isinstance(v, str) else v)
def test_the_schema_refuses_every_bad_value_of_every_setting(section, name, value):
    raw = parse_yaml(f"name: x\n{section}: {{{name}: {json.dumps(value)}}}\n")
    assert schema_errors(raw), f"{section}.{name}: {value!r}"


VALID = [
    "name: x\n",
    "name: my.sweep-1_a\ndescription: a sweep\nstorage: file:///tmp/runs\nmax_concurrent: 3\n",
    "name: x\nstorage: s3://bucket/runs\nmlflow: {tracking_uri: 'http://127.0.0.1:5000'}\n",
    "name: x\nstorage: file://localhost/tmp/x\n"
    "mlflow: {enabled: false, tracking_uri: 'postgresql+psycopg2://u@h/db'}\n",
    "name: x\nfinetune: {lam: {grid: [1, 3]}, methods: [naive, cbft]}\n"
    "axes: [{finetune.lr: [0.01, 0.1], finetune.epochs: [30, 30]}, {paths.num_alphas: [3, 5]}]\n",
    "name: x\nresources: {pretrain: {cpus: 0.5, gpus: 2, workers: 2, custom: {accel: 0.01}}, "
    "path_eval: {gpus: 0.25}}\n",
    "name: x\nseeds: [3]\ncue_proportions: [0, 0.5]\nmodels: [small_cnn, {name: small_cnn, width: 32}]\n"
    "paths: {pairs: ['cue~cue:spawn@2', 'cue~nocue:same-init', 'nocue~nocue:self', 'cue~nocue:independent'], "
    "kinds: [linear], num_alphas: 5}\n",
    "extends: default\nseeds: [4]\n",                         # the name comes from the sweep it extends
]


@pytest.mark.parametrize("text", VALID)
def test_valid_specs_pass_both(text):
    parse_spec(text)
    assert schema_errors(parse_yaml(text)) == []


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")) + [
    REPO / "orchestrator" / "spec" / "sweeps" / "default.yaml"], ids=lambda p: p.name)
def test_shipped_sweeps_pass_the_schema(path):
    assert schema_errors(parse_yaml(path.read_text())) == []


def test_a_root_may_come_from_the_sweep_a_spec_extends(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "base.yaml").write_text(f"name: base\ndata: {{dataset: cifar10, root: '{tmp_path / 'data'}'}}\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\ndata: {dataset: cifar10}\nseeds: [1]\n")
    assert load_spec(child).data_root == str(tmp_path / "data")
    assert schema_errors(parse_yaml(child.read_text())) == []
    assert schema_errors(parse_yaml("name: child\ndata: {dataset: cifar10}\n"))   # without: refused, as missing_root


def test_every_top_level_key_and_setting_is_described():
    props = json_schema()["properties"]
    for d in declared():
        assert props[d.name]["description"], d.name
        if d.kind in (SECTION, SETTINGS):
            for name, inner in props[d.name]["properties"].items():
                assert inner.get("description"), f"{d.name}.{name}"


# ----- boundaries the two must agree on -----

AGREE = [   # (spec, whether both accept it)
    ("name: x\ndescription: {}\n".format("d" * 10_000), True),                 # MAX_DESCRIPTION characters
    ("name: x\ndescription: {}\n".format("d" * 10_001), False),
    ("name: x\nextends: ''\n", False),
    ("name: x\ndescription: null\nmax_concurrent: null\nmlflow: {tracking_uri: null}\ndata: {root: null}\n"
     "finetune: {cue_batch_size: null}\n", True),                               # a nullable key may be null
    ("name: x\naxes: [{finetune.lam: [1, 1]}]\n", False),                       # one key alone repeats a value
    ("name: x\naxes: [{finetune.lam: [1, 1], finetune.lr: [0.01, 0.1]}]\n", True),   # zipped: the pairs differ
    ("name: x\naxes: [{finetune.lam: []}]\n", False),
    ("name: x\npopulation: {kinds: [pretrain], cue_proportions: [0.8, 0.8]}\n", False),
    ("name: x\npopulation: {kinds: [pretrain], cue_proportions: [0.8]}\n", True),
    ("name: x\npopulation: {kinds: [pretrain, pretrain]}\n", False),              # a list of choices repeats one
    ("name: x\nresources: {pretrain: {custom: {accel: 0}}}\n", True),
    ("name: x\nresources: {pretrain: null, align: {cpus: 2}}\n", True),         # a kind left empty: its defaults
    ("name: x\nseeds: [9223372036854775807]\n", True),                         # 2^63 - 1
    ("name: x\nmodels: [small_cnn, small_cnn]\n", False),
    ("name: x\nclaims: {barrier_sets: [cue, cue]}\n", False),                # a comparison would be judged twice
    ("name: x\nclaims: {basin_sets: [cue, nocue]}\n", True),
]


@pytest.mark.parametrize("text, valid", AGREE, ids=[t[8:50] for t, _ in AGREE])
def test_the_schema_and_the_validator_agree_at_the_edges(text, valid):
    if valid:
        parse_spec(text)
    else:
        with pytest.raises(SpecError):
            parse_spec(text)
    assert (schema_errors(parse_yaml(text)) == []) == valid, schema_errors(parse_yaml(text))


def test_the_schema_allows_max_list_items_in_every_list_and_no_more(monkeypatch):
    """MAX_LIST bounds each list (seeds, a section's lists, `{grid: ...}`, an axis), as in the validator
    (tests/orchestrator/spec/test_spec.py::test_a_list_may_hold_max_list_items_and_no_more)."""
    from orchestrator.spec import jsonschema as J

    monkeypatch.setattr(J, "MAX_LIST", 3)
    validator = jsonschema.Draft202012Validator(J.json_schema())
    lists = {"seeds: {}": "[0, 1, 2, 3]", "cue_proportions: {}": "[0.0, 0.1, 0.2, 0.3]",
             "finetune: {{methods: {}}}": "[naive, llrt, lpft, cbft]",
             "finetune: {{lam: {{grid: {}}}}}": "[1, 2, 3, 4]", "axes: [{{finetune.lam: {}}}]": "[1, 2, 3, 4]",
             "models: {}": "[small_cnn, vgg13, resnet18, {name: vgg13, width: 8}]"}
    for body, four in lists.items():
        three = ", ".join(four.split(", ")[:3]) + "]"
        assert not list(validator.iter_errors(parse_yaml(f"name: x\n{body.format(three)}\n"))), body
        assert list(validator.iter_errors(parse_yaml(f"name: x\n{body.format(four)}\n"))), body


def test_every_pattern_means_the_same_to_an_editor():
    """Editors read JSON schema patterns as ECMA-262 regular expressions, where `\\Z` is the letter Z:
    the end of the text must be written `(?![\\s\\S])`, and the Python-only syntax not at all."""
    patterns = re.findall(r'"pattern": ("(?:[^"\\]|\\.)*")', json.dumps(json_schema()))
    assert len(patterns) >= 4
    for pattern in map(json.loads, patterns):
        assert not re.search(r"\\[AZz]|\(\?P", pattern), pattern


PAIR_TYPES = ["cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft", "cue~nocue:same-init", "cue~cue:spawn@0",
              "cue~cue:spawn@123456", "cue~cue:spawn@1234567", "nocue~nocue:spawn@3", "cue~cue:resubset",
              "cue~cue:self", "nocue~nocue:self", "cue~cue:spawn", "cue~nocue:self", "pretrained~ft:fine-tuned",
              "pretrained~ft:naive", "cue~cue:same-init@2", "cue~nocue:spawn@1", "nocue~cue", "cue~cue:",
              "cue~cue:spawn@01", "cue~cue:spawn@00", "cue~cue:spawn@10"]


@pytest.mark.parametrize("text", PAIR_TYPES)
def test_the_pair_type_pattern_accepts_exactly_the_pair_types_the_validator_reads(text):
    """`paths.pairs` items: the editor's pattern and `vocab.parse_pair_type` (spawn epochs of up to six
    digits; designs only where their pair has them) agree on every spelling."""
    from orchestrator import vocab

    pattern = VALIDATOR.schema["properties"]["paths"]["properties"]["pairs"]["items"]["pattern"]
    try:
        vocab.parse_pair_type(text)
        valid = True
    except ValueError:
        valid = False
    assert bool(re.search(pattern, text)) == valid, (text, valid)


def test_each_default_the_schema_offers_is_one_the_validator_accepts_and_a_required_key_offers_none():
    """Editors insert a property's `default`: `name` is required ("it is required"), so it has none (null
    would be refused); every default given is the resolved value of a spec that leaves the key out, where
    no layer but the declared default sets it (lists written as JSON arrays)."""
    props = VALIDATOR.schema["properties"]
    assert "default" not in props["name"]
    spec = parse_spec("name: x\n")
    checked = [name for name, prop in props.items()
               if "default" in prop and spec.provenance.keys.get(name) == "default"]
    assert {"seeds", "storage", "description", "max_concurrent"} <= set(checked)
    for name in checked:
        assert props[name]["default"] == spec.resolved[name], name
    assert props["seeds"]["default"] == [0, 1, 2] and props["max_concurrent"]["default"] is None


def test_a_null_section_and_every_default_the_schema_offers_are_accepted_by_the_validator():
    """An editor fills in the schema's defaults, and YAML leaves a section whose keys are commented out null:
    the validator accepts both (a null section is one left out)."""
    sections = {d.name: None for d in declared() if d.kind in (SECTION, SETTINGS)}
    assert not schema_errors({"name": "x", **sections})
    parse_spec("name: x\n" + "".join(f"{name}:\n" for name in sections))
    resources = json_schema()["properties"]["resources"]["properties"]
    defaults = {kind: {key: spec["default"] for key, spec in body["properties"].items() if "default" in spec}
                for kind, body in resources.items()}
    assert defaults["pretrain"]["custom"] == {}
    assert not schema_errors({"name": "x", "resources": defaults})
    parse_spec(json.dumps({"name": "x", "resources": defaults}))


def test_a_population_may_choose_the_no_cue_models_in_the_schema_as_in_the_validator():
    """`population.cue_proportions` are fractions from 0 inclusive: [0.0] chooses the no-cue models."""
    text = "name: x\npopulation: {kinds: [pretrain], cue_proportions: [0.0]}\n"
    parse_spec(text)
    assert schema_errors(parse_yaml(text)) == []
    assert schema_errors(parse_yaml(text.replace("[0.0]", "[-0.1]")))
