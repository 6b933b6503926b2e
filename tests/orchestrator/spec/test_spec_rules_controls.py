"""`spec.rules.uncontrolled`: a plan whose pair types lack the controls a claim compares them with says so
(a `note:` of `plan` and `run`) before anything runs, instead of the claim only saying `not measured` at the
end. The comparisons are claims.py's: (d) same-init cue~nocue against a same-data pair from one
initialisation (spawn@0 or resubset), (b) the fine-tuned pairs against independently trained models."""
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
