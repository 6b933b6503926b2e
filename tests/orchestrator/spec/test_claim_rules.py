"""The claims' decision rules on their own (`orchestrator.spec.claim_rules.ClaimRules`, the spec's `claims:`
section): a rule outside the range it declares is refused, by the class and by the spec, naming the key."""
from __future__ import annotations

import math

import pytest

from orchestrator import vocab
from orchestrator.spec import claim_rules
from orchestrator.spec.claim_rules import ClaimRules
from orchestrator.spec.schema import SpecError
from orchestrator.spec.sweep_spec import load_spec
from tasks.settings import SettingsError


def test_a_fraction_of_the_parents_reliance_below_zero_is_refused():
    """(b) `keep_fraction`: naive fine-tuning keeps the cue reliance when its own is above this fraction of its
    parent's. A fraction lies from 0 to 1: at -0.5, a fine-tuning that turned the reliance around (an index below
    zero) would still be said to keep it. 0 itself is a fraction."""
    with pytest.raises(SettingsError) as err:
        ClaimRules(keep_fraction=-0.5)
    assert "`keep_fraction`" in str(err.value)
    with pytest.raises(SpecError, match="`claims.keep_fraction`"):
        load_spec(None, ["claims.keep_fraction=-0.5"])
    assert ClaimRules(keep_fraction=0.0).keep_fraction == 0.0


@pytest.mark.parametrize("key, bound, beyond", [
    ("floor_loss", 100, 100.5),          # nats: far above the chance loss ln K of any dataset
    ("barrier_effect", 100, 100.5),
    ("aligned_works", 100, 100.5),
    ("permutations", 1_000_000, 1_000_001),   # relabelings each of (e)'s permutation tests draws
])
def test_a_rule_of_nats_or_relabelings_is_allowed_up_to_its_declared_bound_and_no_further(key, bound, beyond):
    """The ranges the rules declare (and `mmc-sweep schema` shows) are closed: the bound itself is a rule, the
    next value past it is refused, by the class and in a spec."""
    assert getattr(ClaimRules(**{key: bound}), key) == bound
    with pytest.raises(SettingsError) as err:
        ClaimRules(**{key: beyond})
    assert f"`{key}`" in str(err.value)
    with pytest.raises(SpecError, match=f"`claims.{key}`"):
        load_spec(None, [f"claims.{key}={beyond}"])


def test_a_check_definition_is_one_of_the_barrier_definitions_or_null():
    """`check_definition` decides every barrier comparison a second time: a name that is no barrier definition
    (a typo of worse_endpoint) has no barriers to decide with, so it is refused and the definitions are named;
    each other definition, and null, is a check."""
    for bad in ("worse_endpiont", "max"):
        with pytest.raises(SettingsError) as err:
            ClaimRules(check_definition=bad)
        assert "`check_definition`" in str(err.value) and "mean_endpoints" in str(err.value)
    with pytest.raises(SpecError, match="`claims.check_definition`"):
        load_spec(None, ["claims.check_definition=worse_endpiont"])
    for good in [d for d in vocab.DEFINITIONS if d != "chord"] + [None]:
        assert ClaimRules(check_definition=good).check_definition == good


@pytest.mark.parametrize("loss, classes, course", [
    (1e10, 10, claim_rules.DIVERGED), (float("nan"), 10, claim_rules.DIVERGED), (float("inf"), 2, claim_rules.DIVERGED),
    (1.51 * math.log(10), 10, claim_rules.DIVERGED), (1.49 * math.log(10), 10, claim_rules.FLAT),
    (math.log(10), 10, claim_rules.FLAT), (0.8 * math.log(10), 10, claim_rules.FLAT),
    (0.79 * math.log(10), 10, claim_rules.FITTED), (0.0, 10, claim_rules.FITTED),
    (0.69, 2, claim_rules.FLAT), (1.2, 2, claim_rules.DIVERGED), (0.5, 2, claim_rules.FITTED),
    (None, 10, None), (1.0, None, None), (1.0, 1, None),
])
def test_a_model_at_chance_is_told_apart_by_its_last_training_loss_against_a_constant_guess(loss, classes, course):
    """ln(classes) is the loss of a constant guess: above 1.5x it the steps overshoot, from 0.8x to 1.5x
    (inclusive) nothing was learnt, below 0.8x the model fit its training data; each has its own advice."""
    assert claim_rules.training_course(loss, classes) == course
    assert claim_rules.ADVICE[course]
    assert len(set(claim_rules.ADVICE.values())) == len(claim_rules.ADVICE)


def test_a_loss_of_exactly_one_and_a_half_constant_guesses_learnt_nothing_rather_than_diverged():
    """Both ends of 0.8x to 1.5x ln(classes) are inclusive (docs/SCIENCE.md): exactly 1.5x is flat."""
    assert claim_rules.training_course(1.5 * math.log(10), 10) == claim_rules.FLAT
    assert claim_rules.training_course(1.5 * math.log(2), 2) == claim_rules.FLAT


def test_the_default_rules_are_the_ones_the_science_notes_state():
    """docs/SCIENCE.md ("Verdicts") states the rules every verdict follows unless a spec changes them: the
    eval sets of the barrier comparisons (nocue, cue) and of 'leaves the basin' (cue: CBFT's barrier term
    acts on cue data), the chance floors, the effects and margins."""
    rules = load_spec(None, []).top.claims
    assert (rules.level, rules.power, rules.barrier_metric, rules.barrier_definition, rules.check_definition) == \
        (0.95, 0.8, "loss", "chord", "worse_endpoint")
    assert (rules.barrier_sets, rules.basin_sets) == (("nocue", "cue"), ("cue",))
    assert (rules.floor_acc, rules.floor_loss, rules.barrier_effect, rules.reliance_effect) == (0.10, 0.25, 0.05, 0.05)
    assert (rules.acc_margin, rules.keep_fraction, rules.no_reliance_margin) == (0.02, 0.5, 0.05)
