"""Sweep spec: shipped sweeps load, malformed specs fail with messages that name the problem."""
import dataclasses
import importlib
import pickle
from pathlib import Path

import pytest
import yaml

from orchestrator import spec as S
from orchestrator.spec import SpecError, check_resources, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]
BAD_SPECS = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))
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
    assert spec.name == "default"
    assert spec.data.dataset == "digits" and spec.models[0].name == "small_cnn"
    assert spec.seeds == [0, 1, 2] and spec.cue_proportions == [0.0, 0.8]
    assert spec.finetune.methods == ["naive", "llrt", "lpft", "cbft"]
    assert spec.paths.pairs == ["cue~nocue", "cue~cue", "nocue~nocue", "pretrained~ft"]
    assert spec.paths.kinds == ["linear", "quadratic", "aligned"]
    assert spec.paths.alignments == ["activation"]


def test_default_spec_file_lists_every_key():
    text = (REPO / "orchestrator" / "sweeps" / "default.yaml").read_text()
    raw = yaml.safe_load(text)

    def missing(model, data, prefix):
        out = []
        for name, field in model.model_fields.items():
            if name not in data:
                out.append(prefix + name)
            elif isinstance(field.annotation, type) and issubclass(field.annotation, S.BaseModel):
                out += missing(field.annotation, data[name], f"{prefix}{name}.")
        return out

    assert missing(S.SweepSpec, raw, "") == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweep_validates(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # real datasets name ./data as their root
    (tmp_path / "data").mkdir()
    spec = load_spec(path)
    assert spec.name == path.stem
    first = path.read_text().splitlines()[:6]
    assert any(f"mmc-sweep run sweeps/{path.name}" in line for line in first), first


def test_shipped_sweeps_cover_the_brief():
    assert {p.name for p in SHIPPED} >= {"cifar10_vgg13.yaml", "cifar10_resnet18.yaml",
                                         "cifar100_vgg13.yaml", "dominoes_vgg13.yaml", "smoke.yaml"}


def test_relative_root_is_resolved_and_uri_root_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    spec = parse_spec("name: x\ndata: {dataset: cifar10, root: data}\n")
    assert spec.data.root == str((tmp_path / "data").resolve())
    spec = parse_spec("name: x\ndata: {dataset: cifar10, root: 's3://bucket/data'}\n")
    assert spec.data.root == "s3://bucket/data"


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


def test_dump_spec_round_trips():
    spec = load_spec(None)
    assert parse_spec(S.dump_spec(spec)) == spec


def test_spec_hash_ignores_where_things_live():
    a = parse_spec("name: x\n")
    b = parse_spec("name: x\nstorage: /elsewhere\nmax_concurrent: 7\nresources: {pretrain: {cpus: 3}}\n")
    c = parse_spec("name: x\npretrain: {epochs: 3}\n")
    assert S.spec_hash(a) == S.spec_hash(b) != S.spec_hash(c)


def test_json_schema_names_every_section():
    schema = S.spec_json_schema()
    assert set(schema["properties"]) == set(S.SweepSpec.model_fields)
    assert schema["required"] == ["name"]


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
    for field in ("`name`", "`pretrian`", "`seeds`", "`cue_proportions[0]`", "`models[0].name`",
                  "`pretrain.epochs`", "`pretrain.lr`", "`finetune.methods[0]`", "`data.cue`",
                  "`data.root`", "`storage`", "`paths.num_alphas`"):
        assert any(p.startswith(field) for p in problems), (field, problems)
    assert len(problems) == 12


def test_spec_error_lists_problems_one_per_line_and_pickles():
    error = SpecError(["`a`: bad", "`b`: worse"], "s.yaml")
    assert str(error) == "s.yaml: 2 problems in the sweep spec:\n  - `a`: bad\n  - `b`: worse"
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems and copy.source == "s.yaml"


def test_unreadable_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="cannot read the spec file"):
        load_spec(tmp_path / "missing.yaml")


def test_direct_construction_checks_combinations_too():
    with pytest.raises(ValueError, match="nocue~nocue"):
        S.SweepSpec(name="x", seeds=[0])


# ----- cluster resources -----

def test_check_resources_accepts_a_fitting_cluster():
    spec = parse_spec("name: x\nresources: {pretrain: {cpus: 2, gpus: 0.5, workers: 2}}\n")
    assert check_resources(spec, {"CPU": 8, "GPU": 1}) == []


def test_check_resources_names_what_does_not_fit():
    spec = parse_spec("name: x\nresources: {pretrain: {cpus: 4, gpus: 1, workers: 3}, "
                      "path_eval: {cpus: 16}}\n")
    problems = check_resources(spec, {"CPU": 12, "GPU": 2, "nodes": [{"CPU": 6, "GPU": 1}] * 2})
    assert any(p.startswith("`resources.pretrain`: 3 workers x 1 gpus = 3 but the cluster has 2")
               for p in problems), problems
    assert any(p.startswith("`resources.path_eval.cpus`: 16 per worker but the largest node has 6")
               for p in problems), problems
    no_gpu = check_resources(spec, {"CPU": 64})
    assert any("`resources.pretrain.gpus`" in p and "no GPU" in p for p in no_gpu), no_gpu


def test_check_resources_skips_kinds_without_tasks():
    spec = parse_spec("name: x\nseeds: [0]\npaths: {pairs: []}\nfinetune: {methods: []}\n"
                      "resources: {align: {cpus: 99}, finetune: {gpus: 4}}\n")
    assert S.used_kinds(spec) == ["pretrain"]
    assert check_resources(spec, {"CPU": 2}) == []


# ----- mirrors of the tasks/ settings dataclasses -----

MIRRORS = [  # (module, dataclass, spec section, spec-only fields, dataclass-only fields)
    ("tasks.data", "DataSettings", S.DataSection, set(), {"cue_proportion", "seed"}),
    ("tasks.train", "OptimSettings", S.OptimSection, set(), set()),
    ("tasks.paths", "MidpointSettings", S.MidpointSection, set(), set()),
    ("tasks.paths", "PathSettings", S.PathsSection, {"pairs", "kinds", "alignments"}, set()),
    ("tasks.finetune", "FinetuneSettings", S.FinetuneSection, {"methods"}, set()),
]


@pytest.mark.parametrize("module,name,section,spec_only,tasks_only", MIRRORS, ids=[m[1] for m in MIRRORS])
def test_spec_section_mirrors_tasks_settings(module, name, section, spec_only, tasks_only):
    settings = getattr(importlib.import_module(module), name)
    fields = {f.name: f.default for f in dataclasses.fields(settings)}
    assert set(section.model_fields) - spec_only == set(fields) - tasks_only
    for field_name, default in fields.items():
        if field_name in tasks_only or field_name == "cue":   # cue: resolved per dataset
            continue
        assert section.model_fields[field_name].default == default, field_name


@pytest.mark.parametrize("module,attr,names", [
    ("tasks.data", "DATASETS", "DATASETS"), ("tasks.data", "CUES", "CUES"),
    ("tasks.models", "MODELS", "MODELS"), ("tasks.finetune", "FINETUNE_METHODS", "FINETUNE_METHODS"),
    ("tasks.align", "ALIGNMENTS", "ALIGNMENTS"), ("tasks.train", "SCHEDULES", "SCHEDULES"),
    ("tasks.paths", "MIDPOINT_INITS", "MIDPOINT_INITS"),
])
def test_spec_names_match_tasks_registries(module, attr, names):
    assert set(getattr(S, names)) == set(getattr(importlib.import_module(module), attr))
