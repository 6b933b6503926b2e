"""`spec.planned_pairs.uncontrolled`: a plan whose pair types lack the controls a claim compares them with says so
(a `note:` of `plan` and `run`) before anything runs, instead of the claim only saying `not measured` at the
end. The comparisons are claims.py's: (d) same-init cue~nocue against a same-data pair from one
initialisation (spawn@0 or resubset), (b) the fine-tuned pairs against independently trained models, (d)
cue~nocue's linear path against its quadratic one, (c) CBFT against naive fine-tuning and naive_cued."""
from __future__ import annotations

import pytest

from orchestrator.spec.sweep_spec import load_spec

SAME_INIT_NOTE = "'cue~nocue:same-init' is planned without a same-data pair from one initialisation"
FT_NOTE = "'pretrained~ft' is planned without a pair of independently trained models"


def notes(*overrides: str) -> str:
    return "\n".join(load_spec(None, list(overrides)).notes)


@pytest.mark.parametrize("pairs, missing", [
    ("[cue~nocue:same-init]", [SAME_INIT_NOTE]),
    ("[cue~nocue:same-init, cue~cue:spawn@2]", [SAME_INIT_NOTE]),     # K > 0 shares training: supporting only
    ("[cue~nocue:same-init, cue~nocue, nocue~nocue]", [SAME_INIT_NOTE]),
    ("[cue~nocue:same-init, cue~cue:spawn@0]", []),
    ("[cue~nocue:same-init, nocue~nocue:spawn@0]", []),
    ("[cue~nocue:same-init, cue~cue:resubset]", []),
    ("[pretrained~ft]", [FT_NOTE]),
    ("[pretrained~ft, cue~cue:self, cue~cue:spawn@0]", [FT_NOTE]),
    ("[pretrained~ft, cue~cue]", []),
    ("[pretrained~ft, cue~cue:independent]", []),                  # the design spelled out: the same pair
    ("[pretrained~ft, nocue~nocue]", []),
    ("[pretrained~ft, cue~nocue]", []),
    ("[cue~nocue, cue~cue]", []),
])
def test_a_plan_without_the_controls_of_its_comparisons_says_which_to_add(pairs, missing):
    no_cue = any(pair in pairs for pair in ("cue~nocue", "nocue~nocue"))
    text = notes(f"cue_proportions={[0.0, 0.6] if no_cue else [0.6]}", f"paths.pairs={pairs}")
    for note in (SAME_INIT_NOTE, FT_NOTE):
        assert (note in text) == (note in missing), (pairs, text)


def test_the_default_sweep_has_every_control_it_compares_with():
    assert not notes()


QUADRATIC_NOTE = "'cue~nocue' pairs are planned without the quadratic path"
NAIVE_NOTE = "`finetune.methods` has 'cbft' without 'naive':"
CUED_NOTE = "`finetune.methods` has 'cbft' without 'naive_cued':"


@pytest.mark.parametrize("overrides, expected", [
    (["paths.kinds=[linear]"], [QUADRATIC_NOTE]),
    (["paths.kinds=[linear, aligned]"], [QUADRATIC_NOTE]),
    (["paths.kinds=[linear]", "paths.pairs=[cue~nocue:same-init, cue~cue:spawn@0]"], [QUADRATIC_NOTE]),
    (["paths.kinds=[linear]", "paths.pairs=[cue~cue, nocue~nocue]"], []),     # no cue~nocue: no (d) path to lower
    (["paths.kinds=[linear, quadratic]"], []),
    (["finetune.methods=[cbft]"], [NAIVE_NOTE, CUED_NOTE]),
    (["finetune.methods=[naive, cbft]"], [CUED_NOTE]),
    (["finetune.methods=[cbft, naive_cued]"], [NAIVE_NOTE]),
    (["finetune.methods=[naive, lpft]"], []),                               # no CBFT: nothing to control
    (["finetune.methods=[naive, cbft]", "population.kinds=[finetune]", "paths.pairs=[cue~nocue, cue~cue]",
      "paths.kinds=[linear, quadratic]"], [CUED_NOTE]),            # fine-tuned for the population alone
])
def test_a_plan_without_the_path_or_method_a_claim_compares_with_says_which_to_add(overrides, expected):
    text = notes(*overrides)
    for note in (QUADRATIC_NOTE, NAIVE_NOTE, CUED_NOTE):
        assert (note in text) == (note in expected), (overrides, text)


def test_a_fine_tuned_pair_without_a_reference_names_each_reference_pair_to_add():
    text = notes("cue_proportions=[0.6]", "paths.pairs=[pretrained~ft]")
    assert f"{FT_NOTE}: claim (b)" in text and "add 'cue~cue', 'nocue~nocue' or 'cue~nocue' to `paths.pairs`" in text


def test_a_default_pair_the_proportions_cannot_train_is_left_out_for_them_also_without_methods():
    """At cue_proportions [0.0] the default 'pretrained~ft' has no cue model to fine-tune: that is the cause the
    note gives, though `finetune.methods` is empty as well."""
    (note,) = load_spec(None, ["cue_proportions=[0.0]", "finetune.methods=[]"]).notes
    assert "'pretrained~ft' (needs a proportion > 0)" in note and "which `cue_proportions` [0.0] cannot train" in note
    assert "`finetune.methods` is empty" not in note, note
