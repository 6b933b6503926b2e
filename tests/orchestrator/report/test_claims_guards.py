"""The claims' guards and the family-wise step-down, each on the one input that tells the rule from a slip of
it: which side a guard reads, whether a floor is inclusive, the baseline a reliance is measured from, which
outcome a guard may change (only a YES, only a NO), and the order the guards of claim (e) run in."""
from __future__ import annotations

import pandas as pd

from orchestrator import vocab
from orchestrator.report import claims, comparisons as cmp, verdicts
from orchestrator.report.verdicts import Check, Claim
from orchestrator.spec.claim_rules import ClaimRules
from tests.orchestrator.report.test_claims import LOOSE, _checks, _fake_slice, _judge
from tests.support.report_data import synthetic_sweep


def test_family_wise_leaves_a_comparison_that_was_not_separated_as_it_was():
    """Holm's step-down only demotes checks decided the other way (NO): an interval that straddles 0
    (OVERLAP) keeps its own reading, not "decided the other way by its own interval"."""
    straddles = Check("straddles", cmp.OVERLAP, "", "g", p_other=0.3)
    claim = verdicts.family_wise(Claim("x", "", checks=[straddles, Check("other", cmp.YES, "", "h", p_other=0.9)]),
                                 0.95)
    (k,) = [c for c in claim.checks if c.text == "straddles"]
    assert k.outcome == cmp.OVERLAP and not k.alone and k.reason == ""
    assert "straddles 0" in claim.sentence()


def test_a_model_that_learnt_nothing_on_one_seed_blocks_its_reliance_comparison():
    """'learnt nothing on a seed': one seed of the cue models at chance on every set, the others fine."""
    data = synthetic_sweep()
    for row in data[vocab.EVALUATIONS]["pretrain-cue-s0"]:
        row["acc"] = 0.1
    check = _checks(_judge(LOOSE, data=data)["a"], "scores above chance on randimg")[0]
    assert check.outcome == claims.UNTESTABLE and "learnt nothing on a seed" in check.reason


def _no_reliance(decision: str, other: list[float]):
    judge = claims._Judge(None, ClaimRules(), claims.Claim("c", ""))
    reliant = ("naive", pd.Series([0.0, 0.01, -0.01], index=[0, 1, 2]))
    return judge._no_reliance(cmp.Decision(decision), reliant, None, pd.Series(other, index=[0, 1, 2]))


def test_a_no_stands_only_where_the_other_reliance_is_established_beyond_the_margin():
    """CBFT's reliance above 0 but not by more than the no-reliance margin (5 pp): no evidence against."""
    assert _no_reliance(cmp.NO, [0.03, 0.031, 0.029]).outcome == cmp.UNTESTABLE
    assert _no_reliance(cmp.NO, [0.30, 0.31, 0.29]).outcome == cmp.NO


def test_only_a_no_is_spared_by_the_other_sides_established_reliance():
    """An undecided comparison with no reliance to lower stays not testable whatever the other side relies on."""
    blocked = _no_reliance(cmp.OVERLAP, [0.30, 0.31, 0.29])
    assert blocked.outcome == cmp.UNTESTABLE and "no reliance to keep or to lower" in blocked.reason


def test_b_is_not_testable_where_the_naive_fine_tuning_has_not_learnt_the_set():
    """(b)'s own path (the lower side) has an endpoint at chance on nocue: the fine-tuning has not learnt it."""
    data = synthetic_sweep()
    for tid, rows in data[vocab.PATHS].items():
        if "pretrained_ft_naive-" in tid:
            for row in rows:
                if row["eval_set"] == "nocue" and row["alpha"] == 1.0:
                    row["acc"] = 0.1
    (k,) = _checks(_judge(LOOSE, data=data)["b"], "on nocue, its linear barrier is below")
    assert k.outcome == claims.UNTESTABLE and k.reason.startswith("an endpoint of pretrained~ft:naive")


def test_a_claims_own_path_without_a_barrier_blocks_only_a_yes():
    """Both paths without a barrier, the difference powered and straddling 0: cannot be separated,
    not 'no barrier of its own' (that guard blocks a ✓ only)."""
    judge = claims._Judge(_fake_slice({}, {"a": 0.0, "b": 0.0}), ClaimRules(check_definition=None),
                          claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "nocue", "g")
    (k,) = judge.c.checks
    assert k.outcome == claims.OVERLAP, k.reason


def test_a_path_with_its_accuracy_measured_but_not_its_loss_has_a_measured_floor():
    """The floor is 'not measured' only where neither the accuracy nor the loss along the path is: an accuracy
    far above chance is enough to tell a barrier from a collapse."""
    judge = claims._Judge(_fake_slice({"b": (0.8, float("nan"))}, {"a": 1.0, "b": 0.2}),
                          ClaimRules(check_definition=None), claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "nocue", "g")
    (k,) = judge.c.checks
    assert k.outcome == claims.YES, k.reason


def test_the_occlusion_baseline_is_for_a_random_cues_cost_only():
    """(c)'s randimg comparison measures 'no reliance' against 0, not against the no-cue models' random-cue
    cost (here 20 pp, the same as naive's randimg reliance)."""
    c = _judge(LOOSE, accuracy={"nocue": {"randcue": 0.60}, "naive": {"randimg": 0.30}})["c"]
    (k,) = [k for k in _checks(c, "lower randimg reliance") if k.text.endswith("than naive")]
    assert k.outcome == claims.YES, k.reason


def test_claim_e_within_group_floor_is_measured_by_accuracy_alone():
    """The within-group paths' accuracy measured (far above chance) but not their loss: the floor is measured."""
    from tests.orchestrator.report.test_mechanism_map_rules import _map, _permutation
    (k, _) = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999), within_extremes=(0.9, float("nan")))],
                            ClaimRules(check_definition=None)).checks
    assert k.outcome == claims.YES, k.reason


def test_the_higher_sides_floor_reads_the_accuracy_floor_for_accuracy_and_the_loss_floor_for_loss():
    """A higher path at 30% lowest accuracy (chance 10%, floor_acc 10 pp) and a loss far from ln K is not at the
    floor: a comparison going against the claim stands."""
    judge = claims._Judge(_fake_slice({"a": (0.3, 0.5)}, {"a": 0.3, "b": 0.8}), ClaimRules(check_definition=None),
                          claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "nocue", "g")
    (k,) = judge.c.checks
    assert k.outcome == claims.NO, k.reason


def test_the_loss_floor_is_inclusive():
    """'highest loss ≥ ln K − floor_loss': a path exactly at it sits at the floor, as the accuracy one does."""
    import math
    assert cmp.at_floor(0.8, math.log(1 / 0.1) - 0.25, 0.1, 0.10, 0.25)
    assert cmp.at_floor(0.1 + 0.10, 0.5, 0.1, 0.10, 0.25)


def test_b_names_a_pretrained_parent_that_learnt_nothing_on_a_seed():
    """(b) 'keeps the reliance' compares the naive fine-tunings with their parents: a parent at chance on every
    set on one seed makes it not testable, and the reason says so."""
    data = synthetic_sweep()
    for row in data[vocab.EVALUATIONS]["pretrain-cue-s0"]:
        row["acc"] = 0.1
    (k,) = _checks(_judge(LOOSE, data=data)["b"], "keeps more than")
    assert k.outcome == claims.UNTESTABLE and "pretrained parents learnt nothing" in k.reason


def test_an_accuracys_step_is_one_image_of_the_largest_set():
    from tests.orchestrator.report.test_claims import _results
    results = _results(synthetic_sweep())
    ev = results[vocab.EVALUATIONS]
    ev.loc[ev["eval_set"] == "randimg", "n"] = 50
    s = verdicts.Slice(ev, results[vocab.BARRIERS], results[vocab.PATHS], results[vocab.TASKS], 0.1)
    assert s.acc_step == 1 / 397


def test_claim_e_only_a_pooled_yes_asks_each_group_alone():
    """Pooled undecided (cannot be separated) with the worse group decided below: the pooled reading stands;
    the per-group check only guards a pooled ✓, it never turns an undecided pooled test into ✗."""
    import dataclasses
    from tests.orchestrator.report.test_mechanism_map_rules import _map, _permutation
    m = dataclasses.replace(_map(_permutation(0.0, 0.5, 0.5)), worst=_permutation(-0.5, 0.999, 0.001))
    (k, _) = claims.claim_e([m], ClaimRules(check_definition=None)).checks
    assert k.outcome == claims.OVERLAP, k.reason


def test_a_no_spared_by_cbfts_cost_is_measured_over_the_occlusion_cost():
    """(c)'s random-cue cost: CBFT's cost spares a ✗ only where it is established above the no-cue models'
    occlusion cost by more than the margin, not above 0."""
    judge = claims._Judge(None, ClaimRules(), claims.Claim("c", ""))
    idx = [0, 1, 2]
    occlusion = pd.Series([0.20, 0.20, 0.20], index=idx)
    decided = judge._no_reliance(cmp.Decision(cmp.NO), ("naive", pd.Series([0.20, 0.21, 0.19], index=idx)),
                                 occlusion, pd.Series([0.22, 0.23, 0.21], index=idx))
    assert decided.outcome == cmp.UNTESTABLE


def test_claim_e_pooled_guards_come_before_the_per_group_check():
    """Pooled ✓ by the chord barriers but ✗ by the check definition: not testable (the definitions disagree),
    even where the worse group alone is decided below; the per-group ✗ must not override the pooled guard."""
    import dataclasses
    from tests.orchestrator.report.test_mechanism_map_rules import _map, _permutation
    against = _permutation(-0.5, 0.999, 0.001)
    m = dataclasses.replace(_map(_permutation(0.9, 0.001, 0.999)), worst=against, check=against)
    (k, _) = claims.claim_e([m], ClaimRules()).checks
    assert k.outcome == claims.UNTESTABLE and "opposite ways" in k.reason, (k.outcome, k.reason)
