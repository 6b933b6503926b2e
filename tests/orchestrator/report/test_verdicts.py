"""How checks make a verdict (orchestrator.report.verdicts), on hand-made checks and frames: a group's
outcome (✗ over ≈ over ✓ over not testable), the verdict rule (a required group not testable makes the
claim not testable; an optional one does not), the chance floor read from each pair's lowest accuracy
and highest loss along its path, and the cue-reliance indices of the claims."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import verdicts
from orchestrator.report.claims import claims_text
from orchestrator.report.html import claims_html
from orchestrator.report.comparisons import NO, OVERLAP, UNTESTABLE, YES, Diff, at_floor, superiority
from orchestrator.report.verdicts import Check, Claim

EMPTY = pd.DataFrame()


def _claim(*outcomes_by_group, optional=()) -> Claim:
    claim = Claim("x", "a statement")
    for group, outcome in outcomes_by_group:
        claim.checks.append(Check(f"{group}: {outcome}", outcome, "—", group))
    claim.optional |= set(optional)
    return claim


@pytest.mark.parametrize("outcomes, expected", [
    ((YES, NO), NO),                    # one ✗ decides the group the other way, whatever else it holds
    ((NO, YES, YES), NO),
    ((YES, OVERLAP), OVERLAP),
    ((YES, UNTESTABLE), YES),           # decided where it can be; the rest could not discriminate
    ((UNTESTABLE, UNTESTABLE), UNTESTABLE),
    ((OVERLAP, NO), NO),                # ✗ over ≈, in whichever order the checks come
])
def test_a_groups_outcome_is_its_worst_decided_check(outcomes, expected):
    claim = _claim(*(("g", o) for o in outcomes))
    assert claim.groups() == {"g": expected}


def test_a_group_with_a_check_decided_the_other_way_makes_the_claim_fail():
    claim = _claim(("g", YES), ("g", NO), ("h", YES))
    assert claim.verdict == verdicts.FAILS


def _family(*checks) -> Claim:
    """(outcome, p_other, group) per check."""
    claim = Claim("x", "a statement")
    claim.checks = [Check(f"check {i}", o, "—", g, p_other=p) for i, (o, p, g) in enumerate(checks)]
    return verdicts.family_wise(claim, 0.95)


def test_one_comparison_decided_the_other_way_keeps_its_own_level():
    claim = _family((NO, 0.02, "g"))
    assert [c.outcome for c in claim.checks] == [NO] and claim.verdict == verdicts.FAILS
    assert "Holm" not in claim.rule                                  # nothing to correct with one comparison


def test_a_no_stays_no_only_where_holms_step_down_rejects_it():
    """k = 3 comparisons with a p-value (α/2 = 0.025 in all): the smallest, 0.001, clears 0.025/3; the
    next, 0.02, must clear 0.025/2 = 0.0125 and does not, so it is only "cannot be separated"."""
    claim = _family((NO, 0.02, "g"), (NO, 0.001, "h"), (YES, 0.9, "i"))
    assert [c.outcome for c in claim.checks] == [OVERLAP, NO, YES]
    assert claim.checks[0].alone and "3 comparisons" in claim.checks[0].reason and "p ≤ 0.0125" in claim.checks[0].reason
    assert claim.verdict == verdicts.FAILS and "Holm" in claim.rule


def test_once_the_step_down_stops_no_larger_p_value_is_rejected():
    """0.009 misses the first bar (0.025/3 ≈ 0.00833): the step-down stops there, so 0.010 is not
    rejected though it is below the second bar (0.0125); both name the bar it stopped at."""
    claim = _family((NO, 0.009, "g"), (NO, 0.010, "h"), (YES, 0.9, "i"))
    assert [c.outcome for c in claim.checks] == [OVERLAP, OVERLAP, YES]
    assert all("stopped at the bar p ≤ 0.00833" in c.reason for c in claim.checks[:2])
    assert claim.verdict == verdicts.UNSEPARATED


def test_holm_steps_down_past_bonferronis_bar():
    """0.01 is above Bonferroni's 0.025/3 but, second in line after 0.001, clears Holm's 0.025/2."""
    claim = _family((NO, 0.01, "g"), (NO, 0.001, "h"), (YES, 0.9, "i"))
    assert [c.outcome for c in claim.checks] == [NO, NO, YES]


def test_a_claim_with_only_comparisons_decided_the_other_way_alone_cannot_be_separated():
    claim = _family((NO, 0.02, "g"), (YES, 0.99, "h"), (YES, 0.98, "i"))
    assert claim.checks[0].outcome == OVERLAP and claim.verdict == verdicts.UNSEPARATED
    assert "“check 0” is decided the other way by its own interval but not across the claim's comparisons" \
        in claim.sentence()
    assert "straddles" not in claim.sentence()


def test_the_family_is_the_required_comparisons_with_an_interval():
    """A supporting check and one without an interval are outside the family (k = 2 here, not 4), and a
    supporting ✗ alone in its own family keeps its mark; a guard-blocked comparison (not testable,
    p-value kept) is in it."""
    nan = float("nan")
    claim = _family((NO, 0.012, "g"), (YES, 0.99, "h"), (NO, 0.001, None), (UNTESTABLE, nan, "i"))
    assert [c.outcome for c in claim.checks] == [NO, YES, NO, UNTESTABLE]       # 0.012 ≤ 0.025 / 2
    blocked = _family((NO, 0.012, "g"), (UNTESTABLE, 0.3, "h"), (YES, 0.99, "i"))
    assert blocked.checks[0].outcome == OVERLAP                                   # 0.012 > 0.025 / 3


def test_supporting_checks_are_a_family_of_their_own():
    """Three supporting checks (group None) beside two required ones: the supporting ✗ at p = 0.001
    clears 0.025/3 and stays ✗; the one at 0.02 must then clear 0.025/2 and does not, so the claim
    "holds, except that" it is decided the other way by its own interval only. Each family counts its
    own k: in `mixed`, the required ✗ at 0.011 is judged among the 2 required comparisons (bar 0.025/2),
    not among 4 with the supporting checks' small p-values."""
    claim = _family((YES, 0.99, "g"), (YES, 0.98, "h"), (NO, 0.001, None), (NO, 0.02, None), (YES, 0.9, None))
    assert [c.outcome for c in claim.checks] == [YES, YES, NO, OVERLAP, YES]
    assert claim.verdict == verdicts.HOLDS
    assert "3 supporting checks" in claim.checks[3].reason and "p ≤ 0.0125" in claim.checks[3].reason
    sentence = claim.sentence()
    assert "“check 2” is decided the other way;" in sentence
    assert "“check 3” is decided the other way by its own interval only (family-wise, Holm)" in sentence
    assert "3 supporting checks" in claim.rule and "2 comparisons" in claim.rule
    mixed = _family((NO, 0.011, "g"), (YES, 0.99, "h"), (NO, 0.0001, None), (NO, 0.0002, None))
    assert [c.outcome for c in mixed.checks] == [NO, YES, NO, NO]   # 0.011 ≤ 0.025/2: supporting p-values do not count


def test_a_single_supporting_check_keeps_its_own_level():
    claim = _family((YES, 0.99, "g"), (NO, 0.02, None))
    assert [c.outcome for c in claim.checks] == [YES, NO] and "supporting checks" not in claim.rule


def test_holm_holds_false_does_not_hold_at_half_alpha_where_each_check_alone_does_not():
    """Eight true differences of exactly 0 (the claim's boundary: "above" is not false), three seeds
    each, 4,000 claims: "does not hold" at each check's own level comes out in about 1 − 0.975^8 ≈ 18%;
    with Holm at most α/2 = 2.5%."""
    rng = np.random.default_rng(7)
    n, k, trials = 3, 8, 4000
    d = rng.normal(0.0, 1.0, size=(trials, k, n))
    mean, se = d.mean(axis=2), d.std(axis=2, ddof=1) / np.sqrt(n)
    alone = family = 0
    for t in range(trials):
        claim = Claim("x", "k checks")
        for i in range(k):
            diff = Diff(True, n, float(mean[t, i]), float(se[t, i]), float(n - 1), 0.95, float(se[t, i] * np.sqrt(n)))
            claim.checks.append(verdicts.check(f"c{i}", superiority(diff, 100.0, 0.8), diff, f"g{i}"))  # 100: fast
        alone += claim.verdict == verdicts.FAILS
        family += verdicts.family_wise(claim, 0.95).verdict == verdicts.FAILS
    assert 0.14 < alone / trials < 0.22
    assert family / trials <= 0.025 + 3 * np.sqrt(0.025 * 0.975 / trials)


def test_a_required_group_not_testable_makes_the_claim_not_testable_an_optional_one_does_not():
    assert _claim(("g", YES), ("h", UNTESTABLE)).verdict == verdicts.NOT_TESTABLE
    assert _claim(("g", YES), ("h", UNTESTABLE), optional=("h",)).verdict == verdicts.HOLDS
    assert _claim(("g", YES), ("h", NO), optional=("h",)).verdict == verdicts.FAILS       # decides where testable
    assert _claim(("g", UNTESTABLE), optional=("g",)).verdict == verdicts.NOT_TESTABLE    # nothing decided
    assert _claim().verdict == verdicts.NOT_TESTABLE


def _path_rows(task_id: str, accs, losses, pair_type="cue~cue", eval_set="cue") -> list[dict]:
    alphas = [i / (len(accs) - 1) for i in range(len(accs))]
    return [{"task_id": task_id, "pair_type": pair_type, "path_kind": vocab.LINEAR, "alignment": None,
             "eval_set": eval_set, "alpha": a, "acc": acc, "loss": loss}
            for a, acc, loss in zip(alphas, accs, losses)]


def test_the_chance_floor_reads_the_lowest_accuracy_and_highest_loss_of_any_pair():
    """Pair 1 dips to 0.12 accuracy / 2.2 nats, pair 2 to 0.18 / 2.0: the floor is judged on (0.12, 2.2), the
    worst pair's; the means along the paths (about 0.6, 0.8) or over pairs (0.15, 2.1) would hide it."""
    paths = pd.DataFrame(_path_rows("p1", [0.9, 0.5, 0.12, 0.5, 0.9], [0.3, 1.0, 2.2, 1.0, 0.3])
                         + _path_rows("p2", [0.8, 0.4, 0.18, 0.4, 0.8], [0.4, 1.1, 2.0, 1.1, 0.4]))
    s = verdicts.Slice(EMPTY, EMPTY, paths, EMPTY, chance=0.1)
    assert s.extremes("cue~cue", vocab.LINEAR, "cue") == pytest.approx((0.12, 2.2))
    assert all(v != v for v in s.extremes("cue~cue", vocab.LINEAR, "nocue"))          # not measured: NaN


def test_the_reliance_indices_are_randimg_minus_chance_and_nocue_minus_randcue():
    s = verdicts.Slice(EMPTY, EMPTY, EMPTY, EMPTY, chance=0.1)
    acc = pd.DataFrame({"nocue": [0.9, 0.8], "randcue": [0.3, 0.5], "randimg": [0.6, 0.15]}, index=[0, 1])
    rel = s.reliance(acc)
    assert rel[verdicts.RANDIMG].tolist() == pytest.approx([0.5, 0.05])
    assert rel[verdicts.RANDCUE].tolist() == pytest.approx([0.6, 0.3])


def test_a_claim_with_one_group_decided_the_other_way_fails_even_when_another_is_not_separated():
    claim = _claim(("g", OVERLAP), ("h", NO), ("k", YES))
    assert claim.verdict == verdicts.FAILS and claim.sentence().startswith("Does not hold")
    assert _claim(("g", OVERLAP), ("k", YES)).verdict == verdicts.UNSEPARATED


def test_one_collapsed_pair_among_healthy_ones_puts_the_path_at_the_chance_floor():
    """Three pairs dipping to 0.10, 0.60 and 0.70: the mean lowest accuracy, 0.47, is far from chance, but the
    first pair's barrier is capped (chance loss minus its endpoints' loss), and so is the mean that holds it."""
    paths = pd.DataFrame(_path_rows("p1", [0.9, 0.10, 0.9], [0.3, 2.3, 0.3])
                         + _path_rows("p2", [0.9, 0.60, 0.9], [0.3, 1.0, 0.3])
                         + _path_rows("p3", [0.9, 0.70, 0.9], [0.3, 0.6, 0.3]))
    s = verdicts.Slice(EMPTY, EMPTY, paths, EMPTY, chance=0.1)
    lo, hi = s.extremes("cue~cue", vocab.LINEAR, "cue")
    assert (lo, hi) == pytest.approx((0.10, 2.3))
    assert at_floor(lo, hi, 0.1, 0.1, 0.25)


def _evaluations(rows) -> pd.DataFrame:
    return pd.DataFrame([{"task_id": t, "kind": vocab.PRETRAIN, "cue_proportion": p, "seed": s, "method": None,
                          "eval_set": e, "acc": a} for t, p, s, e, a in rows])


def test_a_seeds_accuracy_is_the_mean_of_its_models_and_cue_and_no_cue_models_are_kept_apart():
    ev = _evaluations([("m1", 0.8, 0, "randimg", 0.9), ("m2", 0.8, 0, "randimg", 0.5),
                       ("m3", 0.8, 1, "randimg", 0.7), ("n1", 0.0, 0, "randimg", 0.1),
                       ("n2", float("nan"), 1, "randimg", 0.12)])
    s = verdicts.Slice(ev, EMPTY, EMPTY, EMPTY, chance=0.1)
    cue = s.models(vocab.PRETRAIN, cue=True)["randimg"]
    assert cue.to_dict() == pytest.approx({0: 0.7, 1: 0.7})                   # (0.9 + 0.5) / 2 for seed 0
    assert s.models(vocab.PRETRAIN, cue=False)["randimg"].to_dict() == pytest.approx({0: 0.1, 1: 0.12})


def _barrier_rows(pair_type: str, values_by_seed) -> list[dict]:
    return [{"task_id": f"{pair_type}-{seed}-{i}", "pair_type": pair_type, "path_kind": vocab.LINEAR,
             "alignment": None, "eval_set": "cue", "metric": "loss", "definition": "chord", "value": v, "seed": seed}
            for seed, values in values_by_seed.items() for i, v in enumerate(values)]


def test_a_seeds_barrier_is_the_mean_of_its_pairs_and_the_noise_floor_is_the_first_self_pair():
    bars = pd.DataFrame(_barrier_rows("cue~cue", {0: [0.2, 0.6], 1: [0.5]})
                        + _barrier_rows("nocue~nocue:self", {0: [0.01]}) + _barrier_rows("cue~cue:self", {0: [0.02]}))
    s = verdicts.Slice(EMPTY, bars, EMPTY, EMPTY, chance=0.1)
    got = s.barrier("cue~cue", vocab.LINEAR, "cue", "loss", "chord")
    assert got.to_dict() == pytest.approx({0: 0.4, 1: 0.5})
    assert s.noise_floor() == "cue~cue:self"                # cue~cue before nocue~nocue, as the pairs are ordered


def test_a_not_testable_verdict_names_the_required_checks_that_block_it_not_the_optional_ones():
    """Required group g not testable, optional group h not testable too: g alone blocks the claim, so the
    sentence names g (with its reason) and leaves h out."""
    claim = Claim("x", "a statement", optional={"h"})
    claim.checks = [Check("the required one", UNTESTABLE, "—", "g", "too few seeds"),
                    Check("the optional one", UNTESTABLE, "—", "h", "alignment does not connect"),
                    Check("a decided one", YES, "—", "k")]
    assert claim.verdict == verdicts.NOT_TESTABLE
    sentence = claim.sentence()
    assert "“the required one” (too few seeds)" in sentence and "the optional one" not in sentence


@pytest.mark.parametrize("outcome, wording", [(NO, "is decided the other way"), (OVERLAP, "is not separated")])
def test_a_supporting_check_not_decided_as_claimed_qualifies_the_holds(outcome, wording):
    """Supporting checks never decide; one decided the other way or not separated turns "holds" into
    "holds, except that …", saying which of the two it is."""
    claim = _claim(("g", YES))
    claim.checks.append(Check("the supporting one", outcome, "—", None))
    assert claim.verdict == verdicts.HOLDS
    assert claim.sentence().startswith(f"Holds, except that “the supporting one” {wording}:")
    # the one-line verdict (console, summary) and the report's badge say it too, not a plain "holds"
    assert claims_text([claim], detail=False).startswith("(x) HOLDS, EXCEPT A SUPPORTING CHECK: ")
    assert claims_html([claim]).count("holds, except a supporting check</span>") == 1


def test_a_claim_that_holds_still_says_which_of_its_comparisons_could_not_be_tested():
    """Group g decided ✓ on one set and not testable on the other: the claim holds where it can be tested,
    and the sentence says so first, with how much of it that is and what it does not cover (with why); an
    optional group's untested check is told apart."""
    claim = Claim("x", "a statement", optional={"h"})
    claim.checks = [Check("on cue", YES, "—", "g"), Check("on nocue", UNTESTABLE, "—", "g", "the floor"),
                    Check("aligned", UNTESTABLE, "—", "h", "no alignment")]
    assert claim.verdict == verdicts.HOLDS
    assert claim.sentence() == ("Holds where it can be tested: 1 of the 2 comparisons it needs is decided as claimed, "
                                "and the other 1 is not testable here: “on nocue” (the floor). Not testable here, "
                                "where it decides only if testable: “aligned” (no alignment).")
    assert claims_text([claim], detail=False).startswith("(x) HOLDS WHERE IT CAN BE TESTED: a statement")
    assert claims_html([claim]).count("holds where it can be tested</span>") == 1


def test_a_claims_paths_come_in_the_path_kinds_order():
    """linear, quadratic, then aligned (vocab.PATH_KINDS), whatever the rows' or the alphabet's order."""
    rows = [dict(r, path_kind=kind, alignment=align) for kind, align in
            (("aligned", "activation"), ("quadratic", None), (vocab.LINEAR, None))
            for r in _barrier_rows("cue~cue", {0: [0.1]})]
    s = verdicts.Slice(EMPTY, pd.DataFrame(rows), EMPTY, EMPTY, chance=0.1)
    assert s.paths("cue~cue") == [vocab.LINEAR, vocab.QUADRATIC, "aligned (activation)"]


def test_a_claim_row_in_percentage_points_shows_one_decimal():
    """Reliance in pp: 12.3 pp [10.0, 14.6] (one decimal); a barrier in nats keeps three."""
    pp = verdicts.Row("m", "reliance", verdicts.stats.Estimate(3, 0.1234, 0.01, 0.1, 0.1456), scale=100.0, unit=" pp")
    nats = verdicts.Row("p", "barrier", verdicts.stats.Estimate(3, 0.1234, 0.01, 0.1, 0.1456))
    assert pp.value() == "12.3 pp [10.0, 14.6]" and nats.value() == "0.123 [0.100, 0.146]"


def test_a_checks_evidence_is_the_text_given_else_its_difference_on_the_claims_scale():
    """`check`: evidence written by the caller is shown as given; without it, the difference's text (one
    decimal in pp, three in nats); with neither, "—". The decision's outcome, reason and p-value travel."""
    from orchestrator.report.comparisons import Decision
    diff = Diff(True, 3, 0.1234, 0.01, 2.0, 0.95, 0.02)
    decision = Decision(YES, "a reason", 0.004)
    given = verdicts.check("t", decision, diff, "g", evidence="seen by hand")
    assert (given.evidence, given.outcome, given.reason, given.p_other, given.group) == ("seen by hand", YES, "a reason", 0.004, "g")
    assert verdicts.check("t", decision, diff, "g", scale=100.0, unit=" pp").evidence.startswith("+12.3 pp [")
    assert verdicts.check("t", decision, diff, "g").evidence.startswith("+0.123 [")
    assert verdicts.check("t", decision, None, None).evidence == "—"


def test_a_p_value_exactly_at_holms_bar_is_rejected():
    """Holm rejects while p ≤ (α/2)/(k − j): "at most" the bar, so a p-value equal to it stays ✗ (k = 2: the
    smallest, 0.001, clears (α/2)/2; the next, exactly (α/2)/1, is rejected too)."""
    half = (1 - 0.95) / 2
    claim = _family((NO, 0.001, "g"), (NO, half / 1, "h"))
    assert [c.outcome for c in claim.checks] == [NO, NO]
    first = _family((NO, half / 2, "g"), (NO, 0.9, "h"))
    assert [c.outcome for c in first.checks] == [NO, OVERLAP]


def test_a_claim_whose_only_untestable_groups_are_optional_names_them():
    """Nothing decided and only an optional group, not testable: the claim is not testable, and the sentence
    names that group's check with its reason (what would make it testable), not "nothing was measured"."""
    claim = Claim("x", "a statement", optional={"h"})
    claim.checks = [Check("the optional one", UNTESTABLE, "—", "h", "alignment does not connect")]
    assert claim.verdict == verdicts.NOT_TESTABLE
    assert claim.sentence() == "Not testable here: “the optional one” (alignment does not connect)."


def test_holds_counts_only_the_required_comparisons_decided_as_claimed():
    """Two required comparisons ✓ and a supporting check ✓: "the 2 comparisons it needs … are decided" (the
    supporting one is not among what the claim needs)."""
    claim = Claim("x", "a statement")
    claim.checks = [Check("one", YES, "—", "g"), Check("two", YES, "—", "h"), Check("support", YES, "—", None)]
    assert claim.sentence() == "Holds: the 2 comparisons it needs are decided as claimed."
    # an optional group decided as claimed (after alignment) is not among what the claim needs either
    claim = Claim("x", "a statement", optional={"h"})
    claim.checks = [Check("one", YES, "—", "g"), Check("aligned", YES, "—", "h")]
    assert claim.sentence() == "Holds: the 1 comparison it needs is decided as claimed."


def test_does_not_hold_names_the_required_comparison_decided_the_other_way_not_a_supporting_one():
    """A required ✗ and a supporting ✗: the claim does not hold because of the required one, which the
    sentence names; the supporting check never decides, so it is not named as the reason."""
    claim = Claim("x", "a statement")
    claim.checks = [Check("required", NO, "—", "g"), Check("support", NO, "—", None)]
    assert claim.sentence() == "Does not hold: the data show the opposite of “required”."


def test_a_methods_parents_are_averaged_per_seed_like_its_models():
    """Two fine-tunings of one method at seed 0 from parents of randimg accuracy 0.9 and 0.5: the parents'
    accuracy at seed 0 is their mean, 0.7, as a seed's models are averaged (`models`)."""
    ev = pd.DataFrame([{"task_id": t, "kind": kind, "cue_proportion": 0.8, "seed": s, "method": m, "eval_set": "randimg",
                        "acc": a} for t, kind, s, m, a in (("pa", vocab.PRETRAIN, 0, None, 0.9), ("pb", vocab.PRETRAIN, 0, None, 0.5),
                                                           ("pc", vocab.PRETRAIN, 1, None, 0.6),
                                                           ("fa", vocab.FINETUNE, 0, "naive", 0.2), ("fb", vocab.FINETUNE, 0, "naive", 0.4),
                                                           ("fc", vocab.FINETUNE, 1, "naive", 0.3))])
    tasks = pd.DataFrame({"task_id": ["fa", "fb", "fc"], "parents": [["pa"], ["pb"], ["pc"]]})
    s = verdicts.Slice(ev, EMPTY, EMPTY, tasks, chance=0.1)
    assert s.parents("naive")["randimg"].to_dict() == pytest.approx({0: 0.7, 1: 0.6})
    assert s.models(vocab.FINETUNE, "naive")["randimg"].to_dict() == pytest.approx({0: 0.3, 1: 0.3})


def test_a_group_not_separated_makes_the_claim_unseparated_even_beside_one_not_testable():
    """The rule's order: does not hold (a ✗ group), else cannot be separated (a ≈ group), else not testable
    (a required group without a testable check): one ≈ group beside one not testable is "cannot be separated"."""
    assert _claim(("g", OVERLAP), ("h", UNTESTABLE)).verdict == verdicts.UNSEPARATED
    assert _claim(("g", NO), ("h", UNTESTABLE)).verdict == verdicts.FAILS


@pytest.mark.parametrize("outcome, start", [(NO, "Does not hold: the data show the opposite of “g: no”."),
                                            (OVERLAP, "Cannot be separated: the interval straddles 0")])
def test_a_claim_that_does_not_hold_or_cannot_be_separated_still_names_what_it_could_not_test(outcome, start):
    """A ✗ (or ≈) group beside a required group with no testable comparison: the verdict is decided by the ✗
    (or ≈), and the sentence also names the comparisons it could not test, with why, so a reader does not take
    the rest of the claim for tested; an optional group's untested check is not named."""
    claim = _claim(("g", outcome), ("h", UNTESTABLE))
    claim.checks[1] = Check("h: untestable", UNTESTABLE, "—", "h", "underpowered")
    claim.checks.append(Check("aligned", UNTESTABLE, "—", "o", "no alignment"))
    claim.optional.add("o")
    assert claim.sentence().startswith(start)
    assert claim.sentence().endswith(" Not testable here: “h: untestable” (underpowered).")
    assert "aligned" not in claim.sentence()


def test_a_comparison_equal_on_every_seed_is_not_said_to_have_had_the_power_to_separate():
    """Both sides equal on every seed (two barriers of 0): not separated, but the sentence says that, not that
    "the seeds run could detect the effect" (a zero spread gives no power to judge by); a check that straddles
    0 with a spread beside it keeps the usual words."""
    tied = superiority(Diff(True, 6, 0.0, 0.0, 5.0, 0.95, 0.0), 0.05, 0.8)      # seeds enough for signs
    claim = _claim(("g", YES))
    claim.checks.append(Check("g: tied", tied.outcome, "—", "g", tied.reason))
    assert claim.verdict == verdicts.UNSEPARATED
    assert claim.sentence() == ("Cannot be separated: both sides are equal on every seed for “g: tied” (no difference "
                                "either way, and no spread to judge power by).")
    claim.checks.append(Check("h: straddles", OVERLAP, "—", "h"))
    assert claim.sentence().startswith("Cannot be separated: the interval straddles 0 (or the margin) for "
                                       "“h: straddles”, although the seeds run could detect the effect the claim "
                                       "is about; both sides are equal on every seed for “g: tied”")


def test_a_claims_sentence_ends_with_what_its_verdict_does_not_cover():
    """The verdict sentence, then the claim's notes (what the verdict does not cover), in order."""
    claim = _claim(("g", YES))
    claim.notes += ["First note.", "Second note."]
    assert claim.sentence().endswith("decided as claimed. First note. Second note.")


def test_a_claim_not_testable_for_a_comparison_not_measured_names_it_and_what_to_add():
    """A required comparison the sweep did not measure (MISSING) leaves its group without a testable check, so
    the claim is not testable; the sentence names that comparison with its reason (what to add to the spec),
    as it names one that could not discriminate, never "no comparison it needs was measured" alone."""
    claim = Claim("x", "a statement")
    claim.checks = [Check("the same-init pair", verdicts.MISSING, "—", "g", "not measured: add cue~nocue:same-init")]
    assert claim.verdict == verdicts.NOT_TESTABLE
    assert claim.sentence() == "Not testable here: “the same-init pair” (not measured: add cue~nocue:same-init)."
    holds = Claim("x", "a statement")
    holds.checks = [Check("on cue", YES, "—", "g"), Check("on nocue", verdicts.MISSING, "—", "g", "no values")]
    assert holds.sentence().startswith("Holds where it can be tested: 1 of the 2 comparisons") and \
        holds.sentence().endswith(" not testable here: “on nocue” (no values).")
    optional = Claim("x", "a statement", optional={"h"})      # an optional group that was not measured, or
    optional.checks = [Check("on cue", YES, "—", "g"),         # that is the only group: named as well
                       Check("after alignment", verdicts.MISSING, "—", "h", "not measured: add an alignment")]
    assert optional.sentence() == ("Holds: the 1 comparison it needs is decided as claimed. Not testable here, where "
                                   "it decides only if testable: “after alignment” (not measured: add an alignment).")
    optional.checks = optional.checks[1:]
    assert optional.sentence() == "Not testable here: “after alignment” (not measured: add an alignment)."


def test_an_accuracys_interval_is_shown_within_0_and_100_percent_and_a_difference_is_not_cut():
    """A t interval of 3 accuracies can reach past 100% (80.6% [53.0, 108.2] was printed); the true mean
    lies in [0, 1], so the interval shown is cut there (its coverage unchanged). A difference in pp is not."""
    from orchestrator.report.stats import Estimate

    high = Estimate.of([0.62, 0.90, 0.98])
    low = Estimate.of([0.01, 0.02, 0.30])
    assert high.ci_high > 1 and low.ci_low < 0
    assert verdicts.Row("cue model", "acc(nocue)", high, unit="%", scale=100).value().endswith(", 100.0]")
    assert verdicts.Row("cue model", "acc(nocue)", low, unit="%", scale=100).value().split("[")[1].startswith("0.0,")
    shown = verdicts.Row("cue model", "acc(nocue) − acc(randcue)", high, unit=" pp", scale=100).value()
    assert shown == f"83.3 pp [{100 * high.ci_low:.1f}, {100 * high.ci_high:.1f}]"


def test_an_accuracys_resolution_is_one_image_of_the_largest_evaluation_set():
    ev = _evaluations([("m1", 0.8, 0, "randimg", 1.0), ("m1", 0.8, 0, "nocue", 0.9)]).assign(n=[397, 1000])
    assert verdicts.Slice(ev, EMPTY, EMPTY, EMPTY, chance=0.1).acc_step == pytest.approx(1 / 1000)
    without = _evaluations([("m1", 0.8, 0, "randimg", 1.0)])          # no `n` recorded: no floor
    assert verdicts.Slice(without, EMPTY, EMPTY, EMPTY, chance=0.1).acc_step == 0.0
    assert verdicts.Slice(EMPTY, EMPTY, EMPTY, EMPTY, chance=0.1).acc_step == 0.0


def test_cue_models_at_a_ceiling_on_every_seed_hold_as_firmly_as_ones_a_single_image_apart():
    """The review's case, through the claim: (a)'s "the cue model relies on it" with three cue models at
    99.75%, 100%, 100% on randimg held; at 100% on all three it must hold too (it was not testable)."""
    from orchestrator.report import claims
    from orchestrator.spec.claim_rules import ClaimRules
    outcomes = []
    for randimg in ((0.9975, 1.0, 1.0), (1.0, 1.0, 1.0)):
        rows = [(f"c{s}", 0.97, s, "randimg", a) for s, a in enumerate(randimg)]
        s = verdicts.Slice(_evaluations(rows).assign(n=397), EMPTY, EMPTY, EMPTY, chance=0.1)
        claim = Claim("a", "test")
        judge = claims._Judge(s, ClaimRules(), claim)
        judge.above("the cue model relies on it", s.reliance(s.models(vocab.PRETRAIN, cue=True))[verdicts.RANDIMG], None, "g")
        outcomes.append(claim.checks[-1].outcome)
    assert outcomes == [YES, YES]


def test_a_path_whose_endpoint_never_learnt_the_set_is_told_apart_from_one_that_collapses_between_them():
    """A cue model at a high proportion scores near chance on clean images: its path sits at the floor from α = 0
    on, and neither alignment nor a wider model helps; the reason says the models have not learnt the set. An
    endpoint at 23% (above chance + 10 pp) whose loss nears ln 10 is at the floor by its loss only: the reason
    says so, not "not learnt" beside an accuracy that contradicts it. A path between models that fit the set and
    dips to chance keeps the advice to judge it otherwise."""
    from orchestrator.report import claims
    from orchestrator.spec.claim_rules import ClaimRules
    unlearnt = _path_rows("p1", [0.15, 0.16, 0.17], [2.12, 2.15, 2.18], eval_set="nocue")
    confident = _path_rows("p1", [0.23, 0.24, 0.25], [2.12, 2.15, 2.18], eval_set="nocue")
    collapsing = _path_rows("p2", [0.9, 0.12, 0.9], [0.3, 2.2, 0.3], eval_set="nocue")
    for rows, told in ((unlearnt, "those models have not learnt nocue"),
                       (confident, "those models score above chance on nocue but with a loss near a constant guess's"),
                       (collapsing, "after alignment or with a wider model")):
        s = verdicts.Slice(EMPTY, EMPTY, pd.DataFrame(rows), EMPTY, chance=0.1)
        assert s.endpoint_extremes("cue~cue", vocab.LINEAR, "nocue") == pytest.approx(
            (rows[0]["acc"], rows[-1]["loss"]) if rows is not collapsing else (0.9, 0.3))
        judge = claims._Judge(s, ClaimRules(), Claim("b", "x"))
        assert told in judge._floor_fix("nocue", ("cue~cue", vocab.LINEAR))


def test_a_claim_not_testable_here_names_and_counts_what_was_decided_as_claimed():
    """Two required groups decided as claimed and one without a testable comparison: the claim is not
    testable, and its sentence names the blocking comparison first, then the decided ones (not an optional
    group's), so "not testable here" does not read as "nothing was decided"; the one-line tally counts them.
    With nothing decided, neither is said."""
    claim = Claim("x", "a statement", optional={"o"})
    claim.checks = [Check("one", YES, "—", "g"), Check("two", YES, "—", "h"), Check("aligned", YES, "—", "o"),
                    Check("three", UNTESTABLE, "—", "k", "underpowered"), Check("support", YES, "—", None)]
    assert claim.verdict == verdicts.NOT_TESTABLE
    assert claim.sentence() == ("Not testable here: “three” (underpowered). The other 2 comparisons it needs are "
                                "decided as claimed: “one”; “two”.")
    assert claim.tally() == "2 of the 3 comparisons it needs decided as claimed"
    assert claims_text([claim], detail=False).startswith("(x) NOT TESTABLE HERE (2 of the 3 comparisons it needs "
                                                         "decided as claimed): a statement")
    alone = Claim("x", "a statement")
    alone.checks = [Check("three", UNTESTABLE, "—", "k", "underpowered")]
    assert alone.sentence() == "Not testable here: “three” (underpowered)." and alone.tally() == ""
    holds = Claim("x", "a statement")
    holds.checks = [Check("one", YES, "—", "g")]
    assert holds.tally() == ""          # only a claim not testable here is counted so
    claim.notes.append("a note")        # one parenthesis for the count and the pointer to the notes
    assert claims_text([claim], detail=False).startswith("(x) NOT TESTABLE HERE (2 of the 3 comparisons it needs "
                                                         "decided as claimed; see its notes): a statement")


def test_a_claim_of_the_whole_sweep_after_per_context_claims_gets_its_own_heading():
    """Claims per cue proportion, then claim (e) of the whole population (context ""): the report gives (e) a
    heading of its own, not the last proportion's, as if it were about that proportion only."""
    import re

    claims = [Claim("a", "per context", context="cue proportion 50%"), Claim("a", "per context", context="cue proportion 80%"),
              Claim("e", "population", context="")]
    for claim in claims:
        claim.checks = [Check("one", YES, "—", "g")]
    page = claims_html(claims)
    headings = re.findall(r"<h3>(.*?)</h3>", page)
    assert headings == ["cue proportion 50%", "cue proportion 80%", "the whole sweep"]
    assert re.findall(r"<h3>", claims_html(claims[2:])) == []        # one context only: no heading at all


def test_a_permutation_check_not_separated_is_not_said_to_have_an_interval_or_seeds():
    """Claim (e)'s comparisons are permutation tests of relabeled models: "cannot be separated" says neither tail
    reaches α/2, not that an interval straddles 0 with the seeds run."""
    claim = Claim("e", "a statement")
    claim.checks = [Check("within < across", OVERLAP, "—", "g", permutation=True)]
    assert claim.sentence() == ("Cannot be separated: neither tail of the relabelings' p-values reaches α/2 for "
                                "“within < across”, although these models could detect the effect the claim is about.")
