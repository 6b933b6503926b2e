"""The claims' guards and the family-wise step-down, each on the one input that tells the rule from a slip of
it: which side a guard reads, whether a floor is inclusive, the baseline a reliance is measured from, which
outcome a guard may change (only a YES, only a NO), and the order the guards of claim (e) run in."""
from __future__ import annotations

import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import claims, comparisons as cmp, verdicts
from orchestrator.report.verdicts import Check, Claim
from orchestrator.spec.claim_rules import ClaimRules
from tests.orchestrator.report.test_claims import LOOSE, _checks, _fake_slice, _judge
from tests.orchestrator.report.test_mechanism_map_rules import _map, _permutation
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
    against = _permutation(-0.5, 0.999, 0.001)
    m = dataclasses.replace(_map(_permutation(0.9, 0.001, 0.999)), worst=against, check=against)
    (k, _) = claims.claim_e([m], ClaimRules()).checks
    assert k.outcome == claims.UNTESTABLE and "opposite ways" in k.reason, (k.outcome, k.reason)


def test_c_reliance_comparison_is_not_testable_where_the_compared_method_learnt_nothing():
    """(c) compares CBFT's reliance with naive's: where the naive models learnt nothing on a seed (every set at
    chance), naive's randimg sits at chance whatever it relies on, so the comparison is not testable for that
    reason (the models on *both* sides must have learnt something, not only CBFT's)."""
    data = synthetic_sweep()
    for row in data[vocab.EVALUATIONS]["finetune-naive-s0"]:
        row["acc"] = 0.1
    (k,) = _checks(_judge(LOOSE, data=data)["c"], "CBFT has a lower randimg reliance than naive")[:1]
    assert k.outcome == claims.UNTESTABLE
    assert "naive models learnt nothing on a seed" in k.reason, k.reason


def test_d_after_alignment_comparison_is_not_testable_where_the_cue_models_learnt_no_cue():
    """(d)'s cue~nocue comparison after alignment, as every cue~nocue comparison with same-data pairs, needs cue
    models that learnt the cue: with their randimg at chance (no reliance), a cue and a no-cue model do not differ
    in mechanism and the aligned comparison is not testable for that reason."""
    d = _judge(LOOSE, accuracy={"cue": {"randimg": 0.10}}, scale={"cue~cue": 0.1})["d"]   # alignment connects cue~cue
    aligned = _checks(d, "alignment the cue~nocue barrier is above")
    assert all(k.outcome == claims.UNTESTABLE and "have not learnt the cue" in k.reason for k in aligned), \
        [(k.outcome, k.reason) for k in aligned]





class _Slice:
    """A slice of fixed path extremes, endpoint extremes and barriers per pair (three seeds)."""
    chance = 0.1

    def __init__(self, extremes=None, ends=None, barriers=None, acc_step=0.0):
        self._ext, self._ends, self._bars, self.acc_step = extremes or {}, ends or {}, barriers or {}, acc_step

    def extremes(self, pair, path, eval_set):
        return self._ext.get(pair, (0.8, 0.5))

    def endpoint_extremes(self, pair, path, eval_set):
        return self._ends.get(pair, (0.8, 0.5))

    def barrier(self, pair, path, eval_set, metric, definition):
        noise = [0.0, 0.01, -0.01] if pair == "a" else [0.005, -0.01, 0.0]     # each side its own: spread
        return pd.Series([self._bars[pair] + n for n in noise], index=[0, 1, 2])


def test_the_floor_fix_names_the_collapsed_lower_sides_unfitted_endpoint():
    """Only the lower side (a control) at the chance floor, because an endpoint of it has not learnt the set:
    the reason's fix names that side's endpoint, not the higher side (whose endpoints fit the set)."""
    s = _Slice({"b": (0.1, 2.3)}, {"b": (0.1, 2.3)}, {"a": 1.0, "b": 0.2})
    judge = claims._Judge(s, ClaimRules(check_definition=None), claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "nocue", "g")
    (k,) = judge.c.checks
    assert k.outcome == claims.UNTESTABLE and "an endpoint of b is itself there" in k.reason, k.reason


def test_the_floor_fix_reports_the_lowest_endpoint_accuracy_of_both_sides():
    """Both sides at the floor, one endpoint at chance (12%) and one confident but wrong (40%, loss near ln K):
    the fix reports the lowest accuracy of the two and says those models have not learnt the set."""
    s = _Slice({"a": (0.11, 2.3), "b": (0.1, 2.3)}, {"a": (0.12, 2.3), "b": (0.4, 2.3)}, {"a": 1.0, "b": 0.2})
    judge = claims._Judge(s, ClaimRules(check_definition=None), claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "nocue", "g")
    (k,) = judge.c.checks
    assert "lowest accuracy 12%" in k.reason and "have not learnt nocue" in k.reason, k.reason


def test_no_mechanism_is_inclusive_at_the_no_reliance_margin():
    """(d): cue models whose mean randimg reliance is exactly the no-reliance margin are within it (inclusive,
    as every floor of the claims): not testable."""
    rules = ClaimRules(no_reliance_margin=0.0625)             # exact in binary: the mean is the margin exactly
    judge = claims._Judge(_Slice(), rules, claims.Claim("d", ""))
    learnt = claims.Mechanisms(pd.Series([0.0625] * 3, index=[0, 1, 2]), pd.Series([0.8] * 3, index=[0, 1, 2]))
    out = judge._no_mechanism(cmp.Decision(cmp.YES), learnt)
    assert out.outcome == cmp.UNTESTABLE and "have not learnt the cue" in out.reason, out.reason


def test_no_mechanism_builds_the_reliance_interval_with_one_images_spread():
    """(d): the cue models' reliance is established above none by an interval built with one image's spread at
    least (`acc_step`, as every accuracy check): three equal reliances of 6 pp on a 20-image set are not."""
    judge = claims._Judge(_Slice(acc_step=0.05), ClaimRules(), claims.Claim("d", ""))
    learnt = claims.Mechanisms(pd.Series([0.06] * 3, index=[0, 1, 2]), pd.Series([0.8] * 3, index=[0, 1, 2]))
    out = judge._no_mechanism(cmp.Decision(cmp.YES), learnt)
    assert out.outcome == cmp.UNTESTABLE and "not established above none" in out.reason, out.reason



def _s(values):
    return pd.Series(values, index=[0, 1, 2])


def test_a_reliance_is_established_over_the_occlusion_cost_not_over_zero():
    """(c), a random cue's cost: the compared method's cost (20 pp) is established above the no-cue models'
    occlusion cost (10 pp) only where its interval lies above that cost, not merely above 0."""
    judge = claims._Judge(None, ClaimRules(), claims.Claim("c", ""))
    out = judge._no_reliance(cmp.Decision(cmp.OVERLAP), ("naive", _s([0.14, 0.2, 0.26])), _s([0.1, 0.1, 0.1]))
    assert out.outcome == cmp.UNTESTABLE and "is not established above none" in out.reason, out.reason




def test_claim_e_an_undefined_index_is_supporting_and_leaves_the_verdict():
    """(e)'s adjusted Rand index is supporting: where it is undefined (one cluster, or each model its own), its
    check says so without making the claim's verdict wait on it."""
    c = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999))], ClaimRules(check_definition=None))
    (index,) = [x for x in c.checks if "adjusted Rand" in x.text]
    assert index.outcome == claims.MISSING and not index.required
    assert c.verdict == claims.HOLDS and c.badge() == claims.HOLDS


def test_claim_e_the_worse_groups_no_is_guarded_by_its_own_check_definition_test():
    """(e): the worse group decided against the claim (✗) is not testable where the check definition's test *of
    that group* decides the other way (`check_worst`), whatever the pooled check definition's test says."""
    m = _map(_permutation(0.9, 0.001, 0.999))
    m.worst = _permutation(-0.5, 0.999, 0.001)          # the worse group alone: ✗
    m.check = _permutation(0.0, 0.5, 0.5)                # pooled, by the check definition: undecided
    m.check_worst = _permutation(0.5, 0.001, 0.999)      # the worse group, by the check definition: ✓
    (k,) = [x for x in claims.claim_e([m], ClaimRules()).checks if x.group == "within < across"]
    assert k.outcome == claims.UNTESTABLE and "decide opposite ways" in k.reason, (k.outcome, k.reason)


def test_the_across_group_extremes_are_the_highest_loss_of_any_across_group_path():
    """(e)'s higher side (paths across the groups) is at the chance floor where *any* of its paths peaks near
    ln K: its extremes are the lowest accuracy and the highest loss of any across-group path, not the mildest."""
    from orchestrator.report import mechanism_map as mm
    from tests.orchestrator.report.test_mechanism_map import results_of
    from tests.orchestrator.report.test_mechanism_map_rules import CHAIN, RELIANCE, _with_paths
    results = _with_paths(results_of(CHAIN, RELIANCE), 0.9, 0.8, 0.5, 1.0)
    paths = results[vocab.PATHS]
    ids = sorted(set(paths["endpoint_a"]) | set(paths["endpoint_b"]))
    side = {t: RELIANCE[ids.index(t)] > 0.25 for t in ids}
    across = paths[[side[a] != side[b] for a, b in zip(paths["endpoint_a"], paths["endpoint_b"])]]
    one = (paths["task_id"] == across["task_id"].iloc[0]) & (paths["alpha"] == 0.5)
    results[vocab.PATHS] = paths.assign(loss=paths["loss"].where(~one, 2.3))
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert m.across_extremes == pytest.approx((0.8, 2.3))
