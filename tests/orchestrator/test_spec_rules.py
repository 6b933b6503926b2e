"""The task estimate that `spec_rules` checks against MAX_TASKS before anything is planned counts what
`graph.build_graph` plans: exactly, for specs without axes (it is the planner's logic written again
without building anything, so this test keeps the two from drifting apart)."""
from __future__ import annotations

import pytest

from orchestrator.spec import rules as spec_rules
from orchestrator.graph.dag import build_graph
from orchestrator.spec.sweep_spec import load_spec

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
]


@pytest.mark.parametrize("path, overrides", CASES)
def test_the_estimate_is_the_number_of_planned_tasks(path, overrides, monkeypatch):
    seen = []
    real = spec_rules.estimate_tasks
    monkeypatch.setattr(spec_rules, "estimate_tasks", lambda *a: seen.append(real(*a)) or seen[-1])
    graph = build_graph(load_spec(path, [*overrides, "name=estimate"]))
    assert seen == [len(graph.tasks)]
