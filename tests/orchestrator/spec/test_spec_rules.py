"""The task estimate that `spec_rules` checks against MAX_TASKS before anything is planned counts what
`graph.build_graph` plans: exactly, for specs without axes (it is the planner's logic written again
without building anything, so this test keeps the two from drifting apart). And what a spec asks for that
its plan would drop is refused only where the user set the key (the spec file, an override): a default
that cannot run is no request (the refusals themselves: tests/orchestrator/bad_specs/)."""
from __future__ import annotations

import pytest

from orchestrator.spec import planned_pairs
from orchestrator.spec import rules as spec_rules
from orchestrator.graph.dag import build_graph
from orchestrator.results.plan import plan_of
from orchestrator.spec.schema import SpecError
from orchestrator.storage.layout import Storage, SweepLayout
from orchestrator.spec.sweep_spec import dump_spec, load_spec, parse_spec

CASES = [
    ("sweeps/smoke.yaml", []),
    (None, []),                                          # the built-in default sweep
    (None, ["seeds=[0,1]", "cue_proportions=[0.0, 0.6, 0.9]",
            "paths.pairs=[cue~cue:spawn@2, nocue~nocue:spawn@2, cue~nocue:same-init, cue~cue:self, pretrained~ft]"]),
    (None, ["cue_proportions=[0.9]", "paths.pairs=[cue~cue, pretrained~ft]",
            "paths.finetuned_kinds=[linear, quadratic, aligned]", "paths.alignments=[activation, weight]"]),
    (None, ["cue_proportions=[0.0, 0.5]", "paths.pairs=[nocue~nocue, cue~nocue]", "paths.kinds=[quadratic]"]),
    (None, ["paths.pairs=[cue~nocue:same-init]"]),       # the control alone needs no independent no-cue model
    (None, ["paths.pairs=[cue~cue:self, nocue~nocue:self]", "finetune.methods=[]"]),
    # a population: every model with every other one, deduplicated with the pair types' pairs
    (None, ["population.kinds=[pretrain, finetune]"]),
    (None, ["population.kinds=[pretrain, finetune]", "population.path_kinds=[linear, aligned, quadratic]",
            "seeds=[0, 1]"]),
    (None, ["population.kinds=[finetune]", "population.methods=[naive, cbft]", "paths.pairs=[]"]),
    (None, ["population.kinds=[pretrain]", "population.controls=false", "population.cue_proportions=[0.8]",
            "population.path_kinds=[aligned]", "paths.kinds=[linear]"]),
    (None, ["population.kinds=[pretrain]", "cue_proportions=[0.0, 0.25, 0.5]", "paths.pairs=[cue~cue, nocue~nocue, "
            "cue~nocue:same-init, pretrained~ft]", "paths.kinds=[aligned]", "population.path_kinds=[linear, aligned]"]),
    # a resubset control is planned below 1.0 only; the default pairs the proportions cannot train are left out
    (None, ["cue_proportions=[0.0, 0.5, 1.0]"]),
    (None, ["cue_proportions=[1.0]", "population.kinds=[pretrain]"]),
    # every combination of swept values and every model plans its own tasks (a pretraining axis shares none)
    (None, ["pretrain.lr={grid: [0.05, 0.1]}"]),
    (None, ["models=[small_cnn, {name: small_cnn, width: 8}]"]),
    (None, ["models=[small_cnn, {name: small_cnn, width: 8}]", "pretrain.epochs={grid: [2, 3]}", "seeds=[0]",
            "population.kinds=[pretrain, finetune]"]),
    # a population filtered to one proportion takes only that proportion's control models
    (None, ["population.kinds=[pretrain]", "population.cue_proportions=[0.8]", "cue_proportions=[0.0, 0.5, 0.8]",
            "paths.pairs=[cue~cue, cue~cue:spawn@2, nocue~nocue, cue~nocue:same-init, cue~cue:resubset]"]),
    # a resubset control is not planned where every sample is cued (0.997 of digits' classes, rounded half up)
    (None, ["cue_proportions=[0.0, 0.5, 0.997]", "seeds=[0]"]),
]


@pytest.mark.parametrize("path, overrides", CASES)
def test_the_estimate_is_the_number_of_planned_tasks(path, overrides, monkeypatch):
    seen = []
    real = spec_rules.estimate_tasks
    monkeypatch.setattr(spec_rules, "estimate_tasks", lambda *a: seen.append(real(*a)) or seen[-1])
    graph = build_graph(load_spec(path, [*overrides, "name=estimate"]))
    assert seen == [len(graph.tasks)]


def test_a_spec_naming_only_its_pairs_plans_without_the_default_fine_tunings(tmp_path):
    """`paths.pairs: [cue~nocue]`, every other key its default: the default `finetune.methods` and
    `paths.finetuned_kinds` serve no pair, and the user asked for neither; so it plans (it runs:
    tests/orchestrator/storage/test_read_only.py)."""
    spec = parse_spec("name: x\npaths: {pairs: [cue~nocue]}\n")
    assert spec.explicit("paths.pairs") and not spec.explicit("finetune.methods") and spec.methods
    assert not spec.explicit("paths.finetuned_kinds") and not spec.explicit("cue_proportions")
    assert build_graph(spec).counts() == {"pretrain": 6, "midpoint": 3, "align": 3, "path_eval": 9}
    # the built-in default sweep and a sweep it `extends` are no request of the user's either
    assert not load_spec(None, ["paths.pairs=[cue~nocue]"]).explicit("finetune.methods")
    (tmp_path / "child.yaml").write_text("name: child\nextends: default\npaths: {pairs: [cue~nocue]}\n")
    assert "finetune" not in build_graph(load_spec(tmp_path / "child.yaml")).counts()


def test_what_the_user_set_is_refused_when_no_task_would_do_it():
    with pytest.raises(SpecError, match="`finetune.methods`: \\['naive'\\] would never be trained"):
        load_spec(None, ["paths.pairs=[cue~nocue]", "finetune.methods=[naive]"])
    with pytest.raises(SpecError, match="`paths.alignments`: \\['weight'\\] would never be used"):
        load_spec(None, ["paths.kinds=[linear]", "paths.alignments=[weight]"])


def test_a_stored_spec_is_a_record_not_a_request(tmp_path):
    """A sweep's own spec.yaml writes every key; read back to rebuild its plan (`status` and `report`
    when plan.parquet is gone), its defaults that serve no pair are not refused. The same text given as
    a spec file (what `plan --resolved` prints) is a record too, as its first line says; what an override
    adds to it is a request, and without that first line every key is the user's."""
    text = dump_spec(parse_spec("name: x\npaths: {pairs: [cue~nocue]}\n"))
    assert len(build_graph(parse_spec(text, "spec.yaml", label="stored:spec.yaml"))) == 21
    layout = SweepLayout(Storage(tmp_path), "x")
    layout.storage.write_bytes(layout.spec_file(), text.encode())
    table, rebuilt = plan_of(layout)
    assert rebuilt and len(table) == 21
    assert len(build_graph(parse_spec(text, "resolved.yaml"))) == 21
    (tmp_path / "resolved.yaml").write_text(text)
    assert len(build_graph(load_spec(tmp_path / "resolved.yaml"))) == 21
    with pytest.raises(SpecError, match="`finetune.methods`: \\['naive'\\] would never be trained"):
        load_spec(tmp_path / "resolved.yaml", ["finetune.methods=[naive]"])
    with pytest.raises(SpecError, match="`finetune.methods`"):
        parse_spec(text.split("\n", 1)[1], "edited.yaml")


def test_aligned_paths_trace_a_model_of_your_own_and_refuse_one_the_tracer_cannot_permute():
    """'aligned' needs a model's permutation groups: a built-in model has them at every width
    (tests/tasks/test_permutation_trace.py), a model of your own is built and traced when the spec is
    checked, and one the tracer cannot permute is refused naming the key, the model and why."""
    own = ["models=[{name: examples.custom_model:build, width: 3}]", "paths.kinds=[linear, aligned]", "name=own"]
    assert build_graph(load_spec(None, own)).counts()["align"] > 0
    grouped = ["models=[{name: tests.tasks.test_permutation_trace:grouped, width: 4}]", "paths.kinds=[linear, aligned]",
               "name=grouped"]
    with pytest.raises(SpecError, match="`paths.kinds`: 'aligned' needs the permutation groups of model "
                                        "'tests.tasks.test_permutation_trace:grouped'.*groups=2"):
        load_spec(None, grouped)
    load_spec(None, [*grouped[:1], "paths.kinds=[linear]", "paths.alignments=[]", "name=grouped"])   # no 'aligned'


@pytest.mark.parametrize("name, needle", [
    ("builtins:dict", "dict expected at most 1 argument, got 3"),               # a callable, but no builder
    ("os:getcwd", "takes no arguments"),
    ("tests.orchestrator.spec.test_spec_rules:_not_a_classifier", "must return an nn.Module with a `features(x)`"),
])
def test_a_model_of_your_own_that_builds_no_classifier_is_refused_when_planned_not_in_every_task(name, needle):
    """Importable is not enough: it is built once while the spec is checked (on the meta device), whatever
    the path kinds, so `run` does not start tasks that all fail with it. One message, not one per rule."""
    with pytest.raises(SpecError) as e:
        load_spec(None, [f"models=[{{name: '{name}', width: 8}}]", "paths.kinds=[linear, aligned]"])
    (problem,) = e.value.problems
    assert problem.startswith(f"`models`: '{name}-w8' builds no model: ") and needle in problem
    load_spec(None, ["models=[{name: examples.custom_model:build, width: 3}]", "paths.kinds=[linear]"])


def _not_a_classifier(num_classes, in_channels, width):
    import torch

    return torch.nn.Linear(in_channels, num_classes)


def test_keys_that_serve_no_planned_task_but_ask_for_nothing_are_not_refused():
    """A request is refused only where it asks for work no task would do: an empty
    `paths.finetuned_kinds` without the pair 'pretrained~ft' asks for nothing; `population.path_kinds`
    (here 'aligned') of a sweep without a population choose nothing, so they neither need
    `paths.alignments` nor use the alignments listed."""
    assert load_spec(None, ["paths.pairs=[cue~nocue]", "paths.finetuned_kinds=[]"]).finetuned_kinds == ()
    spec = load_spec(None, ["population.path_kinds=[aligned]", "paths.kinds=[linear]", "paths.alignments=[]"])
    assert not spec.population.enabled and spec.alignments == ()
    with pytest.raises(SpecError, match="`paths.alignments`: \\['weight'\\] would never be used"):
        load_spec(None, ["population.path_kinds=[aligned]", "paths.kinds=[linear]", "paths.alignments=[weight]"])


def test_a_self_pair_alone_with_no_path_kind_is_refused():
    """A ':self' control evaluates the linear path of a model with itself; with `paths.kinds: []` it would
    train its model and evaluate nothing."""
    with pytest.raises(SpecError, match="`paths.kinds`: \\[\\] is empty, so the pairs of `paths.pairs` "
                                        "\\['cue~cue:self'\\] it serves"):
        load_spec(None, ["paths.pairs=[cue~cue:self]", "paths.kinds=[]", "finetune.methods=[]"])


def test_aligned_fine_tuned_paths_need_alignments_only_where_a_fine_tuned_pair_is_planned(tmp_path):
    """`paths.finetuned_kinds` serve the pair 'pretrained~ft' only: inherited with 'aligned' (here from
    `extends:`) by a sweep without that pair, they plan no aligned path, so `paths.alignments: []` is fine;
    with the pair they need an alignment."""
    (tmp_path / "base.yaml").write_text("name: base\npaths: {finetuned_kinds: [linear, aligned]}\n")
    (tmp_path / "child.yaml").write_text("name: child\nextends: base.yaml\nfinetune: {methods: []}\n"
                                         "paths: {pairs: [cue~nocue], kinds: [linear], alignments: []}\n")
    spec = load_spec(tmp_path / "child.yaml")
    assert spec.finetuned_kinds == ("linear", "aligned") and spec.alignments == ()
    (tmp_path / "ft.yaml").write_text("name: ft\nextends: base.yaml\n"
                                      "paths: {pairs: [pretrained~ft], kinds: [linear], alignments: []}\n")
    with pytest.raises(SpecError, match="`paths.alignments`: \\[\\] is empty but `paths.finetuned_kinds` has 'aligned'"):
        load_spec(tmp_path / "ft.yaml")


def test_a_cue_nocue_pair_trains_the_no_cue_model_at_0():
    """cue~nocue pairs a cue model with a no-cue one (proportion 0.0): listing 0.0 for it is no idle
    proportion."""
    spec = load_spec(None, ["cue_proportions=[0.0, 0.8]", "paths.pairs=[cue~nocue]", "finetune.methods=[]"])
    assert spec.cue_proportions == (0.0, 0.8)


def test_inherited_keys_are_checked_as_the_users_only_where_the_user_asked_for_their_work(tmp_path):
    """`population.cue_proportions` inherited (here from `extends:`) by a sweep without a population is
    no request: not refused. An empty `paths.kinds` inherited by a spec that lists its own pairs is: those
    pairs would train models and evaluate no path (README: what you set is a request)."""
    (tmp_path / "base.yaml").write_text("name: base\npopulation: {cue_proportions: [0.8]}\n")
    (tmp_path / "child.yaml").write_text("name: child\nextends: base.yaml\n")
    assert load_spec(tmp_path / "child.yaml").population.cue_proportions == (0.8,)
    (tmp_path / "nokinds.yaml").write_text("name: nokinds\npaths: {kinds: []}\n")
    (tmp_path / "pairs.yaml").write_text("name: pairs\nextends: nokinds.yaml\nfinetune: {methods: []}\n"
                                         "paths: {pairs: [cue~nocue]}\n")
    with pytest.raises(SpecError, match="`paths.kinds`: \\[\\] is empty, so the pairs of `paths.pairs` "
                                        "\\['cue~nocue'\\] it serves"):
        load_spec(tmp_path / "pairs.yaml")


def test_a_resubset_control_says_what_proportion_it_needs():
    """Without a cue proportion it needs one > 0, like cue~cue; with only 1.0 it needs one below 1 (at 1.0
    every sample is cued, there is no other cued subset)."""
    assert planned_pairs.unservable_pairs(("cue~cue:resubset",), (0.0,)) == {"cue~cue:resubset": "a proportion > 0"}
    (need,) = planned_pairs.unservable_pairs(("cue~cue:resubset",), (0.0, 1.0)).values()
    assert need.startswith("a proportion above 0 and below 1")
    assert planned_pairs.unservable_pairs(("cue~cue:resubset", "pretrained~ft"), (0.0, 0.5)) == {}


@pytest.mark.parametrize("overrides, why", [
    (["paths.pairs=[]", "population.kinds=[pretrain]"], "`paths.pairs` is [] (a population's paths are "
                                                        "`population.path_kinds`)"),
    (["paths.pairs=[pretrained~ft]"], "every pair of `paths.pairs` ['pretrained~ft'] is 'pretrained~ft'"),
])
def test_path_kinds_no_pair_evaluates_are_refused_saying_why(overrides, why):
    """A population's paths are its own `population.path_kinds`, not `paths.kinds`; a fine-tuned pair's
    are `paths.finetuned_kinds`: each refusal names the reason that applies."""
    with pytest.raises(SpecError) as e:
        load_spec(None, [*overrides, "paths.kinds=[quadratic]"])
    assert f"`paths.kinds`: ['quadratic'] would never be evaluated: {why}" in str(e.value)


@pytest.mark.parametrize("props, pairs, idle, fix", [
    ("[0.0, 0.8]", "[cue~cue]", "[0.0]", "add 'cue~nocue' or 'nocue~nocue' to `paths.pairs`"),
    ("[0.0, 0.8]", "[nocue~nocue]", "[0.8]", "add 'cue~nocue', 'cue~cue' or 'pretrained~ft' to `paths.pairs`"),
])
def test_an_idle_proportion_is_refused_naming_the_pairs_that_would_train_it(props, pairs, idle, fix):
    """0.0 trains no-cue models (cue~nocue, nocue~nocue); a proportion above 0 trains cue models
    (cue~nocue, cue~cue, pretrained~ft)."""
    with pytest.raises(SpecError) as e:
        load_spec(None, [f"cue_proportions={props}", f"paths.pairs={pairs}", "finetune.methods=[]"])
    assert f"`cue_proportions`: {idle} would train no model" in str(e.value) and fix in str(e.value)


@pytest.mark.parametrize("overrides, refused", [
    (["cue_proportions=[0.0, 0.003]"], "0.003 cues no training sample of 'digits'; use at least 0.0041"),
    (["cue_proportions=[0.0, 0.0041]"], None),
    (["cue_proportions=[0.5, 0.9959]", "paths.pairs=[cue~cue, cue~cue:resubset]"], None),
    (["cue_proportions=[0.5, 0.997]", "paths.pairs=[cue~cue]"], None),              # no partner: the model may be
    (["cue_proportions=[0.5, 1.0]", "paths.pairs=[cue~cue, cue~cue:resubset]"], None),   # fully cued; 1.0: not planned
    # a downloaded dataset's largest class is known only as a bound (its published count): certain refusals only
    (["data.dataset=cifar100", "data.root=ROOT", "cue_proportions=[0.0, 0.0009]"],
     "0.0009 cues no training sample of 'cifar100'; use at least 0.001 (a class of n gets p * n rounded half up "
     "cued; its largest class has at most 500 training images)"),
    (["data.dataset=cifar100", "data.root=ROOT", "cue_proportions=[0.0, 0.001]"], None),
    # two proportions that cue as many samples in every class (so the same ones): one model under two names
    (["cue_proportions=[0.0, 0.5, 0.5001]"], "0.5 and 0.5001 cue the same training samples of 'digits' (p * n "
     "rounded half up is the same for every class of up to 124 images)"),
    (["cue_proportions=[0.0, 0.5001, 0.8, 0.5]"], "0.5 and 0.5001 cue the same training samples"),    # any order
    (["cue_proportions=[0.0, 0.5, 0.5081]"], None),                     # 1/124 apart: the largest class differs
    (["cue_proportions=[0.0, 0.3, 0.301]"], None),      # 37 of 124 both, but a class of 108 or 118 would differ
    (["data.dataset=cifar100", "data.root=ROOT", "cue_proportions=[0.0, 0.5, 0.5009]"],
     "0.5 and 0.5009 cue the same training samples of 'cifar100' (p * n rounded half up is the same for every "
     "class of up to 500 images)"),
])
def test_a_cue_proportion_that_makes_a_model_another_is_refused_at_plan_time(overrides, refused, tmp_path):
    """Above 0 but no sample of the largest class cued (the cued model would be the clean one), or for a
    resubset partner every sample cued (it would be its model): refused before anything runs, by the
    dataset's largest class (`DatasetInfo.largest_class`); the data load refuses the rest."""
    overrides = [o.replace("ROOT", str(tmp_path)) for o in overrides]
    if refused is None:
        load_spec(None, overrides)
        return
    with pytest.raises(SpecError) as e:
        load_spec(None, overrides)
    assert f"`cue_proportions`: {refused}" in str(e.value)


def test_a_cue_proportion_problem_is_named_once_however_many_combinations_are_swept():
    """The dataset cannot be swept, so the refusal does not repeat per combination of swept values."""
    with pytest.raises(SpecError) as e:
        load_spec(None, ["cue_proportions=[0.0, 0.003]", "pretrain.lr={grid: [0.01, 0.05, 0.1]}"])
    assert str(e.value).count("0.003 cues no training sample") == 1 and "(in the combination" not in str(e.value)


def _problems(*overrides: str) -> list[str]:
    with pytest.raises(SpecError) as e:
        load_spec(None, [*overrides, "name=x"])
    return e.value.problems


def test_remote_storage_without_a_tracking_uri_is_refused_without_printing_its_credentials():
    """The default MLflow store is a SQLite file in the sweep directory: a remote `storage` needs a tracking
    URI, and the refusal names the storage with its credentials hidden."""
    problems = _problems("storage=s3://AKIAEXAMPLE:realsecret@bucket/runs")
    assert any(p.startswith("`mlflow.tracking_uri`: is required when `storage` is the remote URI") for p in problems)
    assert not any("realsecret" in p for p in problems), problems


def test_pairs_the_proportions_cannot_train_are_refused_once_not_again_as_a_spec_that_plans_nothing():
    """Where the listed pairs are refused for their proportions, that refusal says why nothing is planned."""
    problems = _problems("cue_proportions=[0.8]", "paths.pairs=[nocue~nocue]", "finetune.methods=[]")
    assert "`paths.pairs`: 'nocue~nocue' needs `cue_proportions` to contain 0.0; got [0.8]" in problems
    assert not any(p.startswith("the spec plans no task") for p in problems), problems


def test_a_spec_without_pairs_or_a_population_is_refused_for_planning_nothing_not_for_each_proportion():
    problems = _problems("cue_proportions=[0.0, 0.8]", "paths.pairs=[]", "finetune.methods=[]")
    assert len(problems) == 1 and problems[0].startswith("the spec plans no task"), problems


def test_untrained_methods_blame_the_population_methods_only_where_the_population_fine_tunes():
    (pretrain_only,) = [p for p in _problems("paths.pairs=[cue~nocue]", "finetune.methods=[naive]",
                                             "population.kinds=[pretrain]") if p.startswith("`finetune.methods`")]
    assert "lacks; add 'pretrained~ft'" in pretrain_only and "population.methods" not in pretrain_only
    (filtered,) = [p for p in _problems("paths.pairs=[cue~nocue]", "finetune.methods=[naive, cbft]",
                                        "population.kinds=[finetune]", "population.methods=[cbft]")
                   if p.startswith("`finetune.methods`")]
    assert "and `population.methods` ['cbft'] leaves them out" in filtered


def test_aligned_fine_tuned_kinds_inherited_without_a_fine_tuned_pair_leave_the_alignments_unused(tmp_path):
    """`paths.finetuned_kinds` serve the pair 'pretrained~ft' only: inherited with 'aligned' by a sweep without
    that pair, they plan no aligned path, so alignments the user lists would never be used."""
    (tmp_path / "base.yaml").write_text("name: base\npaths: {finetuned_kinds: [linear, aligned]}\n")
    (tmp_path / "child.yaml").write_text("name: child\nextends: base.yaml\n"
                                         "paths: {pairs: [cue~nocue], kinds: [linear], alignments: [weight]}\n")
    with pytest.raises(SpecError, match="`paths.alignments`: \\['weight'\\] would never be used"):
        load_spec(tmp_path / "child.yaml")


def test_idle_proportions_beside_0_are_refused_naming_the_pairs_that_train_cued_models():
    """A population filtered to 0.5 leaves 0.0 and 0.8 idle: 0.0 alone would need a no-cue pair, but 0.8 needs a
    pair that trains cue models (cue~nocue trains both)."""
    (idle,) = [p for p in _problems("cue_proportions=[0.0, 0.5, 0.8]", "paths.pairs=[]", "finetune.methods=[]",
                                    "population.kinds=[pretrain]", "population.cue_proportions=[0.5]")
               if p.startswith("`cue_proportions`")]
    assert idle.startswith("`cue_proportions`: [0.0, 0.8] would train no model")
    assert "add 'cue~nocue', 'cue~cue' or 'pretrained~ft' to `paths.pairs`" in idle


def _built_for_the_sweeps_data(num_classes, in_channels, width):
    from examples.custom_model import build
    from tasks.settings.data import dataset_info

    info = dataset_info("digits", None)
    if (num_classes, in_channels) != (info.num_classes, info.in_channels):
        raise ValueError(f"built for {num_classes} classes of {in_channels} channels, not digits'")
    return build(num_classes, in_channels, width)


def test_a_model_of_your_own_is_checked_with_the_classes_and_channels_of_the_sweeps_dataset():
    """The builder is called as the tasks call it, with the dataset's class count and image channels."""
    load_spec(None, ["models=[{name: 'tests.orchestrator.spec.test_spec_rules:_built_for_the_sweeps_data', "
                     "width: 4}]", "paths.kinds=[linear]", "name=x"])


@pytest.mark.parametrize("methods", ["[cbft]", "[naive, cbft]"])
def test_cbft_with_a_clean_subset_of_every_training_image_is_refused_whatever_else_fine_tunes(methods):
    """digits has 1200 training images: a clean subset of all of them leaves cbft no cued image, also beside a
    method that needs none."""
    problems = _problems(f"finetune.methods={methods}", "finetune.clean_subset=1200")
    assert any(p.startswith("`finetune.clean_subset`: 1200 leaves 0 cued training images for cbft")
               for p in problems), problems


def test_aligned_paths_trace_a_model_of_your_own_with_the_classes_and_channels_of_the_sweeps_dataset():
    """The aligned path's task builds the model for the sweep's data (digits: 10 classes, 1 channel); the check
    that its permutation groups can be traced must build it the same way, or it refuses a model that runs."""
    load_spec(None, ["models=[{name: 'tests.orchestrator.spec.test_spec_rules:_built_for_the_sweeps_data', "
                     "width: 4}]", "paths.kinds=[linear, aligned]", "name=x"])
