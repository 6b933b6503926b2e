"""The task estimate that `spec_rules` checks against MAX_TASKS before anything is planned counts what
`graph.build_graph` plans: exactly, for specs without axes (it is the planner's logic written again
without building anything, so this test keeps the two from drifting apart). And what a spec asks for that
its plan would drop is refused only where the user set the key (the spec file, an override): a default
that cannot run is no request (the refusals themselves: tests/orchestrator/bad_specs/)."""
from __future__ import annotations

import pytest

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
