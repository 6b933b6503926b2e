"""One definition per setting: the spec validates through the `tasks/` declarations, so every value
the task layer rejects is rejected by the spec (named by its dotted key) before any work, for every
field; swept axes (grid and zipped), `key=value` overrides, dataset profiles and `extends`."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from orchestrator.spec import sweep_spec as S
from orchestrator.spec.sweep_spec import load_spec, parse_spec
from orchestrator.spec.columns import settings_columns
from orchestrator.spec.axes import sweepable_keys
from orchestrator.spec.schema import (DATA_AXIS_FIELDS, NOT_SWEEPABLE, SETTINGS_CLASSES, STRUCTURAL, ResourceSettings,
                                      SpecError)
from tasks.settings import declared_fields
from tasks.models import ModelSettings
from tasks.settings import SettingsError, base_type


def problems_of(text: str, overrides=()) -> list[str]:
    with pytest.raises(SpecError) as info:
        if overrides:
            load_spec(None, list(overrides))
        else:
            parse_spec(text, "test.yaml")
    return info.value.problems


def bad_values(tp, rule) -> list:
    """Values that break a field's declaration: out of each bound, outside the choices, wrong type."""
    kind, nullable = base_type(tp)
    out = []
    for bound, below in ((rule.ge, True), (rule.gt, True), (rule.le, False), (rule.lt, False)):
        if bound is not None and abs(bound) < 1e15:
            step = 1 if kind is int else 0.5
            out.append(bound - step if below and rule.ge is not None and bound == rule.ge else
                       bound if below else bound + step if rule.le is not None and bound == rule.le else bound)
    allowed = rule.allowed()
    if allowed is not None:
        out.append("not-one-of-them")
    out.append({int: "three", float: "x", str: 7, bool: "yes"}[kind])
    if kind in (int, float):
        out.append(True)                  # a bool is not a number here
    if kind is float:
        out.append(math.inf)
    if kind is int:
        out.append(2.5)
    if not nullable:
        out.append(None)
    return out


FIELDS = [(section, f.name, tp, rule) for section, cls in SETTINGS_CLASSES.items()
          for f, tp, rule in declared_fields(cls)
          if not (section == "data" and f.name in (*DATA_AXIS_FIELDS, "root", "dataset"))]
CASES = [(section, name, value) for section, name, tp, rule in FIELDS for value in bad_values(tp, rule)]


@pytest.mark.parametrize("section, name, value", CASES,
                         ids=[f"{s}.{n}={json.dumps(v)}" for s, n, v in CASES])
def test_a_value_the_task_layer_rejects_is_rejected_by_the_spec(section, name, value):
    cls = SETTINGS_CLASSES[section]
    with pytest.raises((SettingsError, TypeError)):
        cls(**{name: value})
    if value is math.inf:
        return   # YAML .inf: the same path as any float (spec files cannot hold a Python inf literally)
    problems = problems_of(f"name: x\n{section}: {{{name}: {json.dumps(value)}}}\n")
    assert any(p.startswith(f"`{section}.{name}`") for p in problems), problems


def test_every_constrained_field_is_covered():
    covered = {(s, n) for s, n, _ in CASES}
    assert covered == {(s, n) for s, n, _, _ in FIELDS}
    assert len(CASES) > 100


@pytest.mark.parametrize("body, field", [
    ("models: [{name: small_cnn, width: 0}]", "`models[0].width`"),
    ("models: [{name: small_cnn, width: true}]", "`models[0].width`"),
    ("resources: {pretrain: {cpus: 0}}", "`resources.pretrain.cpus`"),
    ("resources: {align: {gpus: 1.5}}", "`resources.align.gpus`"),
    ("resources: {pretrain: {workers: 0}}", "`resources.pretrain.workers`"),
    ("resources: {pretrain: {custom: {CPU: 1}}}", "`resources.pretrain.custom`"),
    ("max_concurrent: 0", "`max_concurrent`"),
    ("mlflow: {enabled: 'yes'}", "`mlflow.enabled`"),
])
def test_orchestrator_settings_are_declared_and_checked_the_same_way(body, field):
    assert any(p.startswith(field) for p in problems_of(f"name: x\n{body}\n")), field
    with pytest.raises(SettingsError):
        ModelSettings(width=0)
    with pytest.raises(SettingsError):
        ResourceSettings(gpus=1.5)


def test_settings_columns_are_the_declared_fields_with_their_types():
    columns = dict(settings_columns())
    assert columns["finetune.lam"] is float and columns["pretrain.epochs"] is int
    assert columns["paths.precision"] is str and columns["model.name"] is str
    assert "data.seed" not in columns and "data.root" not in columns and "data.cue_proportion" not in columns
    for section, cls in SETTINGS_CLASSES.items():
        for f, tp, _ in declared_fields(cls):
            key = f"{section}.{f.name}"
            if key in columns:
                assert columns[key] is base_type(tp)[0], key


# ----- axes -----

def test_grid_axes_combine_and_each_variant_holds_its_values():
    spec = parse_spec("name: x\nfinetune: {lam: {grid: [1, 3, 10]}}\naxes: [{finetune.lr: [0.01, 0.1], "
                      "finetune.epochs: [30, 10]}]\n")
    assert spec.swept_keys == ("finetune.lam", "finetune.lr", "finetune.epochs")
    combos = {(v.finetune.lam, v.finetune.lr, v.finetune.epochs) for v in spec.variants}
    assert combos == {(lam, lr, ep) for lam in (1.0, 3.0, 10.0) for lr, ep in ((0.01, 30), (0.1, 10))}
    assert all(isinstance(v.finetune.lam, float) for v in spec.variants)
    assert spec.resolved["axes"] == [{"finetune.lam": [1, 3, 10]}, {"finetune.lr": [0.01, 0.1],
                                                                      "finetune.epochs": [30, 10]}]
    assert spec.variants[0].label() == "finetune.lam=1, finetune.lr=0.01, finetune.epochs=30"


@pytest.mark.parametrize("text, message", [
    ("finetune: {lam: {grid: [1, 3]}}\naxes: [{finetune.lam: [1, 2]}]", "`finetune.lam`: is swept twice"),
    ("axes: [{finetune.lr: [0.1, 0.2], finetune.epochs: [3]}]", "the lists have different lengths"),
    ("data: {dataset: {grid: [digits, cifar10]}}", "`data.dataset`: cannot be swept"),
    ("data: {root: {grid: [/tmp, /var]}}", "`data.root`: cannot be swept"),           # where the one dataset is
    ("finetune: {lam: {grid: [1, -1]}}", "`finetune.lam`: -1 is not allowed; must be >= 0 and <= 10000 (in the "
                                         "combination finetune.lam=-1)"),
    ("finetune: {lam: {grid: []}}", "give a non-empty list"),
    ("finetune: {lam: {grid: [1, 1]}}", "repeats a value"),
    ("axes: [{finetune.methods: [[naive], [cbft]]}]", "`finetune.methods`: cannot be swept"),
    ("axes: {finetune.lr: [1]}", "`axes`"),
])
def test_bad_axes_are_named(text, message):
    problems = problems_of(f"name: x\n{text}\n")
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize("key, values, listed", [("data.seed", "[0, 1]", "seeds"),
                                                ("data.cue_proportion", "[0.0, 0.8]", "cue_proportions")])
def test_an_axis_of_a_per_model_data_setting_names_the_top_level_list_that_sets_it(key, values, listed):
    """`data.seed` is set per model by `seeds`, `data.cue_proportion` by `cue_proportions`: an axis of either
    is refused, naming the list to give the values in."""
    problems = problems_of(f"name: x\naxes: [{{{key}: {values}}}]\n")
    assert f"`{key}`: cannot be swept; list the values in `{listed}`" in problems, problems


@pytest.mark.parametrize("models, message", [
    ("[small_cnn, {name: small_cnn, width: 16}]", "`models`: small_cnn and small_cnn-w16 are one model (small_cnn's "
                                                  "own width is 16); list it once"),
    ("[{name: vgg13, width: 64}, vgg13]", "`models`: vgg13-w64 and vgg13 are one model"),
    ("[small_cnn, {name: small_cnn, width: 8}, resnet18]", None),
])
def test_a_built_in_model_at_its_own_width_and_without_one_is_one_model(models, message):
    """Two labels, two sets of task ids, the same weights trained twice: refused, naming the width."""
    text = f"name: x\nmodels: {models}\n"
    if message is None:
        assert len(parse_spec(text, "test.yaml").top.models) == 3
        return
    problems = problems_of(text)
    assert any(message in p for p in problems), problems


def test_every_setting_of_every_section_is_sweepable():
    keys = set(sweepable_keys())
    for section, cls in SETTINGS_CLASSES.items():
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            assert (key in keys) == (key not in ("data.dataset", "data.root", *(f"data.{k}" for k in DATA_AXIS_FIELDS))), key


# ----- overrides, profiles, extends -----

def test_overrides_are_dotted_keys_with_yaml_values_validated_like_the_file():
    spec = load_spec(None, ["finetune.lam=5", "seeds=[3, 4]", "paths.pairs=[cue~nocue]", "finetune.lr={grid: [0.1, 1]}"])
    assert spec.seeds == (3, 4) and spec.pairs == ("cue~nocue",) and spec.swept_keys == ("finetune.lr",)
    assert {v.finetune.lam for v in spec.variants} == {5.0} and "with finetune.lam=5" in spec.source
    assert any(p.startswith("`finetune.lam`: -3") for p in problems_of("", ["finetune.lam=-3"]))
    assert any("not `key=value`" in p for p in problems_of("", ["finetune.lam"]))
    assert any("`seeds`" in p for p in problems_of("", ["seeds=[0, 0]"]))


def test_a_dataset_profile_sits_between_the_defaults_and_the_spec():
    profile = S.profile_for("digits")
    spec = parse_spec("name: x\nfinetune: {lam: 7}\n")
    assert spec.variants[0].finetune.lam == 7.0                                   # the spec wins
    assert spec.variants[0].finetune.lr == profile["finetune"]["lr"]              # then the profile
    assert spec.variants[0].finetune.margin == SETTINGS_CLASSES["finetune"]().margin   # then the default
    assert S.profile_for("no_such_dataset") == {} and S.profile_for("../x") == {}
    # a dataset name is no path: one that climbs out of profiles/ to a packaged file gets no profile
    assert S.profile_for("../sweeps/default") == {} and S.profile_for("../profiles/digits") == {}


def test_extends_merges_a_shipped_sweep_or_a_file_under_the_spec(tmp_path):
    spec = parse_spec("name: x\nextends: default\nseeds: [4]\n")
    default = load_spec(None)
    assert spec.seeds == (4,) and spec.pairs == default.pairs and spec.name == "x"
    base = tmp_path / "base.yaml"
    base.write_text("name: base\nfinetune: {lam: 9, methods: [cbft]}\n")
    child = tmp_path / "child.yaml"
    child.write_text("name: child\nextends: base.yaml\nfinetune: {lr: 0.5}\n")
    spec = load_spec(child)
    assert spec.methods == ("cbft",) and spec.variants[0].finetune.lam == 9.0
    assert spec.variants[0].finetune.lr == 0.5
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: loop\nextends: loop.yaml\n")
    with pytest.raises(SpecError, match="`extends`: 'loop.yaml' extends itself, directly or through others "
                                        "\\('loop.yaml' → 'loop.yaml'\\); extend a spec outside that loop"):
        load_spec(loop)
    assert any("neither a shipped sweep" in p for p in problems_of("name: x\nextends: nope\n"))


def test_json_schema_enums_come_from_the_declarations():
    schema = S.spec_json_schema()["properties"]
    for section, cls in SETTINGS_CLASSES.items():
        for f, tp, rule in declared_fields(cls):
            if f.name in STRUCTURAL.get(section, ()) or section == "data" and f.name in DATA_AXIS_FIELDS:
                continue
            prop = schema[section]["properties"][f.name]
            sweepable = f"{section}.{f.name}" not in NOT_SWEEPABLE
            assert ("grid" in json.dumps(prop)) == sweepable, f"{section}.{f.name}"   # `{grid: ...}` only there
            plain = prop["anyOf"][0] if sweepable else prop
            plain = plain.get("anyOf", [plain])[0]
            if rule.allowed() is not None:
                assert plain["enum"] == list(rule.allowed()), f"{section}.{f.name}"
            for key, bound in (("minimum", rule.ge), ("exclusiveMinimum", rule.gt), ("maximum", rule.le)):
                if bound is not None:
                    assert plain[key] == bound, f"{section}.{f.name}"


# ----- the error message, resources -----

def test_a_spec_error_shows_max_problems_shown_problems_and_counts_the_rest():
    """All problems are kept; the message lists the first MAX_PROBLEMS_SHOWN (25) and says how many more."""
    from orchestrator.spec.schema import MAX_PROBLEMS_SHOWN

    problems = [f"`k{i}`: bad" for i in range(MAX_PROBLEMS_SHOWN + 1)]
    lines = str(SpecError(problems, "s.yaml")).splitlines()
    assert lines[0] == f"s.yaml: {MAX_PROBLEMS_SHOWN + 1} problems in the sweep spec:"
    assert lines[1:-1] == [f"  - `k{i}`: bad" for i in range(MAX_PROBLEMS_SHOWN)]
    assert lines[-1] == "  ... and 1 more (fix these first)"
    exactly = str(SpecError(problems[:MAX_PROBLEMS_SHOWN], "s.yaml")).splitlines()
    assert exactly[1:] == [f"  - `k{i}`: bad" for i in range(MAX_PROBLEMS_SHOWN)]      # no "... and 0 more"


@pytest.mark.parametrize("name", ["CPU", "GPU", "cpu", "gpu", "memory", "object_store_memory"])
def test_ray_s_own_resources_are_not_custom_resources(name):
    """Ray schedules CPU, GPU, memory and object_store_memory itself: a custom resource of that name
    would ask Ray for them behind `cpus`/`gpus`."""
    problems = problems_of(f"name: x\nresources: {{pretrain: {{custom: {{{name}: 1}}}}}}\n")
    assert any(p.startswith("`resources.pretrain.custom`") and "not a custom resource name" in p for p in problems)


def test_a_custom_resource_amount_is_a_number_from_zero_and_written_as_a_float():
    """RESOURCE_AMOUNT: >= 0 (0 is allowed, as the JSON schema's minimum says); `1` is the amount 1.0,
    so a spec writing 1 or 1.0 is one spec."""
    spec = parse_spec("name: x\nresources: {pretrain: {custom: {accel: 1, zero: 0}}}\n")
    assert spec.resources["pretrain"].custom == (("accel", 1.0), ("zero", 0.0))
    assert all(type(amount) is float for _, amount in spec.resources["pretrain"].custom)
    assert spec.resolved["resources"]["pretrain"]["custom"] == {"accel": 1.0, "zero": 0.0}
    assert spec.resources == parse_spec("name: x\nresources: {pretrain: {custom: {zero: 0.0, accel: 1.0}}}\n").resources
    problems = problems_of("name: x\nresources: {pretrain: {custom: {accel: -0.5}}}\n")
    assert any(p.startswith("`resources.pretrain.custom.accel`: -0.5") for p in problems), problems


def test_a_dataset_of_your_own_needs_no_root():
    """examples/custom_dataset.py: a loader takes `root`, "None if not given": only the built-in datasets
    that read downloaded files (tasks/settings/data.py, `needs_root`) require `data.root`. (The data
    section's check, called directly: validating a whole spec would load the dataset to learn its size.)"""
    from orchestrator.spec.schema import _data_root

    problems: list[str] = []
    assert _data_root(None, "data.root", problems, {"dataset": "examples.custom_dataset:load"}) is None
    assert problems == []
    assert _data_root(None, "data.root", problems, {"dataset": "cifar10"}) is None
    assert len(problems) == 1 and problems[0].startswith("`data.root`: is required for dataset 'cifar10'")


def test_a_spec_error_of_one_problem_says_problem_in_the_singular():
    lines = str(SpecError(["`k`: bad"], "s.yaml")).splitlines()
    assert lines == ["s.yaml: 1 problem in the sweep spec:", "  - `k`: bad"]


def test_a_key_declared_like_another_takes_its_bounds_and_keeps_its_own_doc():
    """schema.key: `like=` brings the rule of another declaration (bounds, choices, and its doc only when
    the key has none of its own): `seeds` is documented as replicates, not as the data seed it is like."""
    from orchestrator.spec.schema import key
    from tasks.settings import RULE_KEY, Rule

    theirs = Rule(ge=1, le=5, choices=(1, 2), doc="theirs")
    own = key(3, doc="mine", like=theirs).metadata[RULE_KEY]
    assert (own.ge, own.le, own.allowed(), own.doc) == (1, 5, (1, 2), "mine")
    assert key(3, like=theirs).metadata[RULE_KEY].doc == "theirs"


def test_a_grid_is_a_mapping_of_the_one_key_grid():
    """`{grid: [...]}` sweeps a setting; a mapping with `grid` and another key is not a grid (the spec
    would otherwise drop the other key silently)."""
    from orchestrator.spec.schema import is_grid

    assert is_grid({"grid": [1, 3]}) and not is_grid({"grid": [1, 3], "lam": 2}) and not is_grid({"lam": 2})
    assert not is_grid([1, 3]) and not is_grid({})


def test_a_custom_resource_needs_a_name():
    problems = problems_of("name: x\nresources: {pretrain: {custom: {'': 1}}}\n")
    assert any(p.startswith("`resources.pretrain.custom`: '' is not a custom resource name") for p in problems), problems


def test_a_missing_root_names_the_datasets_that_need_none():
    """The fix of a missing `data.root` says which datasets are built in (need no download): digits."""
    from orchestrator.spec.schema import _data_root
    from tasks.settings.data import DATASETS

    built_in = [name for name, info in DATASETS.items() if not info.needs_root]
    assert built_in == ["digits"]
    problems: list[str] = []
    _data_root(None, "data.root", problems, {"dataset": "cifar100"})
    assert len(problems) == 1 and "(only digits is built in)" in problems[0]


def test_a_spec_of_only_a_name_plans_the_default_sweep_as_documented():
    """sweeps/README.md: "A spec of only `name:` plans the default sweep: its pairs and fine-tuning methods
    include the controls the claims need"; the default sweep's header (orchestrator/spec/sweeps/default.yaml)
    lists them: seeds 0-2, methods naive, llrt, lpft, cbft and naive_cued, the four main pairs and the
    controls cue~nocue:same-init, cue~cue:spawn@0, cue~cue:resubset, nocue~nocue:self, path kinds linear,
    quadratic and aligned (activation matching). README: `paths.finetuned_kinds` is `[linear]` by default;
    runs go to ./mmc-runs/<name>/, with MLflow (the quick start prints its `mlflow ui` line)."""
    resolved = parse_spec("name: x\n").resolved
    assert resolved["seeds"] == [0, 1, 2]
    assert resolved["finetune"]["methods"] == ["naive", "llrt", "lpft", "cbft", "naive_cued"]
    assert resolved["paths"]["pairs"] == ["cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft", "cue~nocue:same-init",
                                          "cue~cue:spawn@0", "cue~cue:resubset", "nocue~nocue:self"]
    assert resolved["paths"]["kinds"] == ["linear", "quadratic", "aligned"]
    assert resolved["paths"]["alignments"] == ["activation"] and resolved["paths"]["finetuned_kinds"] == ["linear"]
    assert resolved["storage"] in ("./mmc-runs", "mmc-runs") and resolved["mlflow"]["enabled"] is True


@pytest.mark.parametrize("body, start", [
    ("models: []", "`models`: [] is not allowed"),
    ("cue_proportions: []", "`cue_proportions`: [] is empty"),
    ("seeds: []", "`seeds`: [] is empty"),
    ("data: {cue_seed: 5}", "`data.cue_seed`: is set per model"),      # like seed and cue_proportion
    ("data: {seed: 5}", "`data.seed`: "),
])
def test_the_lists_a_sweep_needs_may_not_be_empty_and_per_model_data_keys_are_not_set_by_hand(body, start):
    """models, seeds and cue_proportions are non-empty lists (each is a dimension of the plan); the data
    settings given per model (`data.seed` by `seeds`, `data.cue_seed` by the resubset design) are refused
    in the `data` section, named by their key."""
    problems = problems_of(f"name: x\n{body}\n")
    assert any(p.startswith(start) for p in problems), problems


def test_a_sweep_name_has_one_to_a_hundred_characters():
    """The fix says "use 1-100 letters, digits, '-', '_' or '.'": 100 characters pass, 101 do not."""
    assert parse_spec("name: " + "a" * 100 + "\n").name == "a" * 100
    assert any(p.startswith("`name`") for p in problems_of("name: " + "a" * 101 + "\n"))


def test_a_spec_error_redacts_the_credentials_its_problems_quote():
    """A problem may quote a URI given in the spec or an override: `str()` never prints its credentials."""
    text = str(SpecError(["`storage`: s3://AKEY:TOPSECRET@bucket/x is not allowed"], "storage=s3://AKEY:TOPSECRET@b"))
    assert "TOPSECRET" not in text and "AKEY" not in text
    assert "s3://***@bucket/x" in text


def test_a_dataset_that_needs_a_root_and_has_one_is_no_problem(tmp_path):
    """`data.root` is required only when it is missing: given (an existing directory), the check passes it."""
    from orchestrator.spec.schema import _data_root

    problems: list[str] = []
    root = _data_root(str(tmp_path), "data.root", problems, {"dataset": "cifar10", "root": str(tmp_path)})
    assert problems == [] and root is not None


def test_a_model_listed_twice_is_named_as_repeated():
    """`models: [small_cnn, small_cnn]`: one label twice is refused, naming it."""
    problems = problems_of("name: x\nmodels: [small_cnn, small_cnn]\n")
    assert any(p.startswith("`models`: repeats small_cnn") for p in problems), problems


def test_the_json_schema_pins_one_worker_on_the_kinds_that_cannot_run_data_parallel():
    """Only training kinds run data-parallel: the JSON schema takes `workers > 1` for them, and allows only 1 for
    the others (align, path_eval), as the validator does."""
    from orchestrator import vocab
    from orchestrator.spec.jsonschema import json_schema

    resources = json.dumps(json_schema()["properties"]["resources"])
    pinned = {kind for kind in vocab.TASK_KINDS
              if f'"{kind}": {{"properties": {{"workers": {{"const": 1}}}}}}' in resources}
    assert pinned == set(vocab.TASK_KINDS) - set(vocab.TRAINING_KINDS) == {"align", "path_eval"}


def test_where_and_how_a_sweep_runs_does_not_change_its_spec_hash(tmp_path):
    """`description` and `data.root` are not science: a spec differing only in them has the same spec_hash; a
    science key inside a section (`finetune.methods`, `paths.pairs`) changes it."""
    base = parse_spec("name: x\n")
    assert S.spec_hash(parse_spec("name: x\ndescription: a note\n")) == S.spec_hash(base)
    assert S.spec_hash(parse_spec(f"name: x\ndata: {{root: {tmp_path}}}\n")) == S.spec_hash(base)
    assert S.spec_hash(parse_spec("name: x\nfinetune: {methods: [naive]}\n")) != S.spec_hash(base)
    assert S.spec_hash(parse_spec("name: x\npaths: {pairs: [cue~cue]}\n")) != S.spec_hash(base)
