"""The claims (a)–(d) judged against their controls by rules declared in the spec: they hold when the
data separate them; the verdict says plainly when they do not hold, cannot be separated, or are not
testable here (a comparison that cannot discriminate is never decided)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import claims, comparisons as cmp
from orchestrator.spec.claim_rules import ClaimRules
from tasks.settings import SettingsError
from tests.support.report_data import SEEDS, synthetic_sweep


def _results(data) -> dict[str, pd.DataFrame]:
    return {t: pd.DataFrame([dict(r, task_id=i) for i, rows in data[t].items() for r in rows]) for t in vocab.TABLES}


def _judge(rules: ClaimRules | None = None, data=None, **kwargs) -> dict[str, claims.Claim]:
    lams = kwargs.get("lams")
    found = claims.judge(_results(data or synthetic_sweep(**kwargs)), ("finetune.lam",) if lams else (), rules)
    return {c.key: c for c in found} if not lams else found


LOOSE = ClaimRules(acc_margin=0.2)      # a clean-accuracy margin the synthetic 3 seeds can decide


def _noise(pair: str) -> np.ndarray:
    """Three seeds' noise, another for each side (the same on both sides would leave the paired
    differences without spread: not testable)."""
    return np.array([0.0, 0.01, -0.01]) if pair in ("a", vocab.CUE_NOCUE) else np.array([0.005, -0.01, 0.0])


def _checks(claim: claims.Claim, text: str) -> list:
    found = [c for c in claim.checks if text in c.text]
    assert found, f"no check mentions {text!r}: {[c.text for c in claim.checks]}"
    return found


def test_every_claim_holds_when_the_data_separate_it():
    judged = _judge(LOOSE)
    assert {k: c.verdict for k, c in judged.items()} == {k: claims.HOLDS for k in "abcd"}
    d = judged["d"]
    assert {c.group for c in d.checks if c.required} >= {"same-init design", "quadratic connects"}
    assert all(c.outcome == claims.YES for c in _checks(d, "cue~cue:resubset"))       # paired with its control
    assert all("paired" in c.evidence for c in _checks(d, "same-init"))
    assert {r.role for r in d.rows} == {"claim", "control"}
    assert all(r.est.n == 3 for r in d.rows)
    assert "Holds" in d.sentence() and "naive_cued" in " ".join(c.text for c in judged["c"].checks)
    # the statistics shown beside the claims (tests/support/report_data.py: ACCURACY, ± 2 pp of noise)
    shown = {(k, r.label, r.measure): r.est.mean for k, c in judged.items() for r in c.rows}
    assert shown[("a", "cue model", "acc(cue)")] == pytest.approx(0.99, abs=0.04)
    assert shown[("a", "no-cue model", "acc(nocue)")] == pytest.approx(0.80, abs=0.04)
    assert shown[("c", "naive", "acc(nocue)")] == pytest.approx(0.75, abs=0.04)
    assert {r.role for r in judged["b"].rows if r.label == "its pretrained parent"} == {"reference"}
    # (c)'s supporting "no reliance left" on both indices (docs/SCIENCE.md: within ±5 pp)
    assert [c.required for c in _checks(judged["c"], "CBFT leaves no reliance")] == [False, False]
    assert len(_checks(judged["c"], "costs it what it costs the no-cue model")) == 1


def test_a_saturated_comparison_is_not_testable_never_does_not_hold():
    """Both same-data controls collapse to chance on every set (peak loss near ln 10, accuracy near 10%):
    their barrier is chance loss minus the endpoints' loss, so the comparison cannot discriminate."""
    d = _judge(LOOSE, scale={"cue~cue:spawn@0": 100.0, "cue~cue:resubset": 100.0})["d"]
    same_init = [c for c in d.checks if c.group == "same-init design"]
    assert same_init and all(c.outcome == claims.UNTESTABLE for c in same_init)
    assert all(("collapses to chance" in c.reason or "reaches a constant guess's loss" in c.reason)
               and "chance" in c.reason for c in same_init)
    assert all(0 <= c.p_other <= 1 for c in same_init)     # still in the claim's family (Holm's k)
    assert d.verdict == claims.NOT_TESTABLE and "Not testable here" in d.sentence()
    assert "Does not hold" not in d.sentence()
    assert "\n           not testable: " in claims.claims_text([d])


def test_a_saturated_lower_side_makes_the_independent_comparison_untestable():
    d = _judge(LOOSE, scale={"cue~cue": 100.0, "nocue~nocue": 100.0, "cue~nocue": 100.0})["d"]
    independent = [c for c in d.checks if "independent-init" in c.text]
    assert independent and all(c.outcome == claims.UNTESTABLE and c.reason.count(" path collapses to chance on ") == 2
                               for c in independent)


def test_non_inferiority_crossing_the_margin_cannot_be_separated():
    """CBFT's clean accuracy 3 pp below naive's with a 2 pp margin: the interval crosses −2 pp, so the
    check is not ✓ (absence of evidence does not pass)."""
    diff = cmp.Diff(True, 10, -0.03, 0.005, 9.0, 0.95, 0.016)       # interval ≈ [−4.1, −1.9] pp: crosses −2 pp
    assert cmp.non_inferiority(diff, 0.02, 0.8).outcome == cmp.OVERLAP
    assert cmp.non_inferiority(dataclasses.replace(diff, mean=-0.035), 0.02, 0.8).outcome == cmp.NO
    assert cmp.non_inferiority(dataclasses.replace(diff, mean=0.0), 0.02, 0.8).outcome == cmp.YES
    c = _judge(ClaimRules(acc_margin=0.02), accuracy={"cbft": {"nocue": 0.60}})["c"]
    clean = _checks(c, "clean accuracy is not below")          # against naive and naive_cued
    assert all(k.p_other < 0.025 for k in clean)               # each decided the other way by its own interval
    assert claims.NO in {k.outcome for k in clean} and c.verdict == claims.FAILS


def test_an_undecided_comparison_is_underpowered_or_not_separated_by_the_power_rule():
    wide = cmp.Diff(True, 3, 0.01, 0.05, 2.0, 0.95, 0.087)
    decision = cmp.superiority(wide, 0.05, 0.8)
    assert decision.outcome == cmp.UNTESTABLE and "underpowered" in decision.reason and "seeds would detect" in decision.reason
    narrow = cmp.Diff(True, 30, 0.001, 0.005, 29.0, 0.95, 0.027)
    assert cmp.superiority(narrow, 0.05, 0.8).outcome == cmp.OVERLAP       # could have seen 0.05: a real null
    assert cmp.detectable(narrow, 0.8) < 0.05
    needed = cmp.seeds_needed(wide, 0.05, 0.8)
    assert needed is not None and needed > 3
    assert cmp.detectable(dataclasses.replace(wide, n=needed, df=needed - 1, se=wide.sd / np.sqrt(needed)), 0.8) <= 0.05


def test_one_seed_is_not_testable_and_a_missing_control_is_named():
    judged = _judge(seeds=(0,))
    assert {c.verdict for c in judged.values()} == {claims.NOT_TESTABLE}
    assert "too few seeds" in judged["a"].sentence()
    data = synthetic_sweep()
    for table in (vocab.PATHS, vocab.BARRIERS):
        data[table] = {t: r for t, r in data[table].items() if "spawn" not in t and "resubset" not in t}
    d = _judge(LOOSE, data=data)["d"]
    assert d.verdict == claims.NOT_TESTABLE and "cue~cue:spawn@0 or cue~cue:resubset" in d.sentence()


def test_a_failing_supporting_check_changes_the_wording():
    """CBFT leaves some reliance (randimg 15 pp above chance): 'no reliance left' is decided the other
    way, and the verdict says "holds, except …" instead of sitting under a plain "holds"."""
    c = _judge(LOOSE, accuracy={"cbft": {"randimg": 0.25}})["c"]
    assert c.verdict == claims.HOLDS
    assert c.sentence().startswith("Holds, except that “CBFT leaves no reliance: randimg at chance")


def test_two_definitions_deciding_opposite_ways_make_a_comparison_untestable():
    judge = claims._Judge(None, ClaimRules(), claims.Claim("x", ""))

    class FakeSlice:
        chance = 0.1

        def extremes(self, *_):
            return 0.8, 0.5

        def endpoint_extremes(self, *_):
            return 0.8, 0.5

        def barrier(self, pair, path, eval_set, metric, definition):
            up = {"a": 1.0, "b": 0.0} if definition == "chord" else {"a": 0.0, "b": 1.0}
            return pd.Series(up[pair] + _noise(pair), index=[0, 1, 2])
    judge.s = FakeSlice()
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "nocue", "g")
    assert judge.c.checks[0].outcome == claims.UNTESTABLE and "opposite ways" in judge.c.checks[0].reason


def test_a_claim_the_data_contradict_does_not_hold():
    judged = _judge(LOOSE, accuracy={"cbft": {"randimg": 0.97, "randcue": 0.05}})
    assert judged["c"].verdict == claims.FAILS and "Does not hold" in judged["c"].sentence()
    assert judged["a"].verdict == claims.HOLDS


def test_naive_fine_tuning_that_loses_its_reliance_does_not_keep_it():
    """(b) 'keeps the reliance' is a paired comparison with the parent, not 'randimg above chance'."""
    b = _judge(LOOSE, accuracy={"naive": {"randimg": 0.30}})["b"]
    keep = _checks(b, "keeps more than 0.5")[0]
    assert keep.outcome == claims.NO and b.verdict == claims.FAILS
    assert _checks(b, "above chance")[0].outcome == claims.YES and not _checks(b, "above chance")[0].required


def test_the_rules_change_the_verdicts_they_name():
    strict = _judge(ClaimRules(acc_margin=0.0))["c"]
    assert strict.verdict in (claims.NOT_TESTABLE, claims.UNSEPARATED, claims.FAILS)
    assert "0 pp" in strict.rule or "margin 0 pp" in " ".join(c.text for c in strict.checks)
    acc_rules = _judge(ClaimRules(barrier_metric="acc", check_definition=None))["d"]
    assert "acc barriers" in acc_rules.rule and all("acc barrier" in r.measure for r in acc_rules.rows)


def test_claims_per_combination_of_swept_values():
    """Fine-tuning sweeps `finetune.lam`: (b) and (c), which read the fine-tuned models, are judged per value;
    (a) and (d) read only pretrained models and their pairs, which no value changes, so each is judged once
    (the same verdict per value would read as two replications of one), before the per-value claims."""
    judged = _judge(LOOSE, lams=(1.0, 3.0))
    assert [(c.key, c.context) for c in judged] == [("a", ""), ("d", ""), ("b", "finetune.lam = 1"),
                                                     ("c", "finetune.lam = 1"), ("b", "finetune.lam = 3"),
                                                     ("c", "finetune.lam = 3")]
    assert {c.verdict for c in judged} == {claims.HOLDS}
    b1, b3 = judged[2], judged[4]
    assert claims._judged_as(b1) != claims._judged_as(b3)                  # the values' own models: kept apart


def test_a_claim_alike_for_only_some_values_of_an_axis_keeps_each_value():
    """A claim is one over a swept key only where every value of the key judges it alike: alike for two values
    of three is a coincidence of the data, not a key that does not act, and each value keeps its claim."""
    def claim(key, verdict_text):
        return claims.Claim(key, "s", rule=verdict_text)

    judged = [((None, None), {"k": v}, claim("a", "x" if v < 3 else "y")) for v in (1, 2, 3)]
    assert [combo for _, combo, _ in claims._once_per_unused_axis(judged)] == [{"k": 1}, {"k": 2}, {"k": 3}]
    judged = [((None, None), {"k": v, "j": w}, claim("a", f"w{w}")) for v in (1, 2) for w in (5, 6)]
    assert [combo for _, combo, _ in claims._once_per_unused_axis(judged)] == [{"j": 5}, {"j": 6}]
    zipped = [((None, None), {"k": 1, "j": 5}, claim("a", "x")), ((None, None), {"k": 3, "j": 6}, claim("a", "y"))]
    assert [combo for _, combo, _ in claims._once_per_unused_axis(zipped)] == [{"k": 1, "j": 5}, {"k": 3, "j": 6}]


@pytest.mark.parametrize("a, b, outcome", [
    ((1.0, 1.1, 0.9, 1.05), (0.1, 0.2, 0.15), cmp.YES),
    ((0.1, 0.2, 0.15), (1.0, 1.1, 0.9), cmp.NO),
    ((1.0,), (0.1, 0.2), cmp.UNTESTABLE),
    ((), (0.1, 0.2), cmp.MISSING),
])
def test_independent_superiority(a, b, outcome):
    diff = cmp.independent(a, b, 0.95)
    assert cmp.superiority(diff, 0.05, 0.8).outcome == outcome


def test_pairing_within_seed_uses_the_per_seed_differences():
    a = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    b = a - 0.1 + pd.Series([0.001, -0.001, 0.0], index=[0, 1, 2])
    diff = cmp.compare(a, b, 0.95)
    assert diff.paired and diff.n == 3 and diff.low > 0                       # the seed effect cancels
    assert cmp.independent(a.to_numpy(), b.to_numpy(), 0.95).low < 0        # unpaired, it would not


def test_claims_text_shows_rules_verdicts_checks_power_and_n():
    text = claims.claims_text(list(_judge(LOOSE).values()))
    assert text.count("→ Holds") == 4 and text.count("rule: ") == 4 and "✓" in text and "n = 3" in text
    assert "power: detectable" in text
    # a supporting check is marked so on its line, a required one is not
    lines = text.splitlines()
    assert all(line.endswith("(supporting)") for line in lines if "CBFT leaves no reliance" in line)
    assert not any(line.endswith("(supporting)") for line in lines if "keeps more than 0.5" in line)
    short = claims.claims_text(list(_judge(LOOSE).values()), detail=False)
    assert short.count("HOLDS") == 4 and "✓" not in short


def _relabeled(data, p: float, suffix: str):
    """The cue rows of `data` (cue proportion > 0) as models and pairs of another cue proportion `p`,
    under new task ids; the no-cue rows are left out (those of the first sweep serve every proportion)."""
    def new(task_id):
        return f"{task_id}{suffix}"
    out = {t: {} for t in data}
    for table, by_task in data.items():
        for task_id, rows in by_task.items():
            if any(r.get("cue_proportion") == 0.0 for r in rows):
                continue
            out[table][new(task_id)] = [
                {**r, "task_id": new(task_id), "cue_proportion": p,
                 **({"parents": [new(x) for x in r["parents"]]} if "parents" in r else {}),
                 **{k: new(r[k]) for k in ("endpoint_a", "endpoint_b") if r.get(k)}} for r in rows]
    return out


def test_each_cue_proportion_is_judged_on_its_own_seeds():
    """At 80% CBFT leaves no reliance (claim (c) holds); at 60% it keeps all of it (randimg 0.97): the
    two contexts are judged apart, each on its own models (3 seeds each, never 6 pooled)."""
    first = synthetic_sweep()
    second = _relabeled(synthetic_sweep(accuracy={"cbft": {"randimg": 0.97, "randcue": 0.05}}, rng_seed=1), 0.6,
                        "-p60")
    data = {t: {**first[t], **second[t]} for t in first}
    found = claims.judge(_results(data), (), LOOSE)
    by = {(c.context, c.key): c for c in found}
    assert {c.context for c in found} == {"cue proportion 60%", "cue proportion 80%"}
    assert by[("cue proportion 80%", "c")].verdict == claims.HOLDS
    assert by[("cue proportion 60%", "c")].verdict == claims.FAILS
    for context, randimg in (("cue proportion 80%", 0.11), ("cue proportion 60%", 0.97)):
        row = next(r for r in by[(context, "c")].rows if r.label == "cbft" and r.measure == claims.RANDIMG)
        assert row.est.n == 3 and row.est.mean == pytest.approx(randimg - 0.1, abs=0.05)


def test_naive_fine_tuning_keeps_the_reliance_above_the_fraction_of_its_parents():
    """Naive keeps 0.55 of reliance against the parent's 0.85: above 0.5 × 0.85, so ✓, although it is
    below the parent's whole reliance."""
    b = _judge(LOOSE, accuracy={"naive": {"randimg": 0.65}})["b"]
    keep = _checks(b, "keeps more than 0.5")[0]
    assert keep.outcome == claims.YES


def test_leaving_the_basin_is_judged_on_the_basin_sets_only():
    c = _judge(dataclasses.replace(LOOSE, basin_sets=("nocue",)))["c"]
    basin = [x for x in c.checks if x.group == "leaves the basin"]
    assert basin and all(x.text.startswith("on nocue,") for x in basin)


def _aligned_check(control: list[float], rules: ClaimRules | None = None):
    """Claim (d)'s "after alignment" check of the cue~cue control whose aligned barriers per seed are
    `control`, against a cue~nocue pair at 1.0, 1.1, 0.9 (linear and activation-aligned paths)."""
    judge = claims._Judge(None, rules or ClaimRules(), claims.Claim("d", ""))
    aligned = "aligned (activation)"

    class FakeSlice:
        chance = 0.1

        def paths(self, pair):
            return [vocab.LINEAR, aligned]

        def extremes(self, *_):
            return 0.8, 0.5

        def endpoint_extremes(self, *_):
            return 0.8, 0.5

        def barrier(self, pair, path, eval_set, metric, definition):
            values = [1.0, 1.1, 0.9] if pair == vocab.CUE_NOCUE else control
            return pd.Series(values, index=range(len(values)))
    judge.s = FakeSlice()
    claims._aligned_checks(judge, [vocab.CUE_CUE], "cue")
    (check,) = judge.c.checks
    return check


def test_after_alignment_is_not_testable_where_the_controls_upper_bound_reaches_the_rule():
    """The control's aligned barriers 0.0, 0.08, 0.16: mean 0.08 below `aligned_works` 0.1, but its
    upper bound (0.08 + t_.975(2) · 0.08 / √3 ≈ 0.28) is not: alignment is not shown to connect it."""
    check = _aligned_check([0.0, 0.08, 0.16])
    assert check.outcome == claims.UNTESTABLE and "does not connect" in check.reason


def test_a_random_cue_that_costs_the_cue_model_nothing_makes_claim_a_fail():
    """The cue model keeps 0.95 under a random cue against 0.70 clean (cost −25 pp), the no-cue model
    0.80 against 0.80: 'a random cue costs the cue model more' is decided the other way, across the
    claim's three comparisons too (Holm), whatever randimg says."""
    a = _judge(LOOSE, accuracy={"cue": {"randcue": 0.95}})["a"]
    cost = _checks(a, "a random cue costs")[0]
    assert cost.outcome == claims.NO and a.verdict == claims.FAILS
    assert _checks(a, "above chance on randimg")[0].outcome == claims.YES


def test_a_comparison_decided_the_other_way_only_by_its_own_interval_cannot_fail_the_claim():
    """A cost of −12 pp [−19, −4] over 3 seeds: decided the other way at 95% alone (one-sided p ≈ 0.01), but
    claim (a) has three comparisons and Holm's first bar is 0.025 / 3. The claim cannot be separated, and
    says which comparison and which bar."""
    a = _judge(LOOSE, accuracy={"cue": {"randcue": 0.85}})["a"]
    cost = _checks(a, "a random cue costs")[0]
    assert 0.025 / 3 < cost.p_other < 0.025 and cost.evidence.startswith("-11.6 pp [-19.0, -4.2]")
    assert cost.outcome == claims.OVERLAP and cost.alone and "3 comparisons" in cost.reason and "p ≤ 0.00833" in cost.reason
    assert a.verdict == claims.UNSEPARATED
    assert "decided the other way by its own interval but not across the claim's comparisons" in a.sentence()
    # the terminal shows why under the check, and never calls a decided comparison "not testable"
    text = claims.claims_text([a])
    assert "\n           decided the other way by its own 95% interval" in text and "not testable: decided" not in text
    assert "Holm" in a.rule and "3 comparisons" in a.rule


def test_a_separable_difference_whose_lower_side_sits_at_the_floor_is_not_testable_not_unseparated():
    """Ten seeds, the two paths' barriers equal within 0.001: this would be 'cannot be separated', but the
    lower path collapses to chance, so the comparison is not testable."""
    judge = claims._Judge(None, ClaimRules(check_definition=None), claims.Claim("x", ""))
    noise = np.array([0.001, -0.001] * 5)

    class FakeSlice:
        chance = 0.1

        def extremes(self, pair, path, eval_set):
            return (0.12, 2.2) if pair == "b" else (0.8, 0.5)

        def endpoint_extremes(self, *_):       # endpoints that fit the set
            return 0.8, 0.5

        def barrier(self, pair, path, eval_set, metric, definition):
            return pd.Series(1.0 + (noise if pair == "a" else 0.0), index=range(10))
    judge.s = FakeSlice()
    diff = cmp.compare(FakeSlice().barrier("a", 0, 0, 0, 0), FakeSlice().barrier("b", 0, 0, 0, 0), 0.95)
    assert cmp.superiority(diff, 0.05, 0.8).outcome == cmp.OVERLAP       # without the floor
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
    assert judge.c.checks[0].outcome == claims.UNTESTABLE and "collapses" in judge.c.checks[0].reason


def test_the_independent_init_and_noise_floor_comparisons_of_d_only_support():
    d = _judge(LOOSE)["d"]
    for text in ("independent-init", "noise floor"):
        assert all(not c.required for c in _checks(d, text))
    # the independent-init linear barriers of both same-data pairs, each on both barrier sets
    independent = _checks(d, "independent-init")
    assert sorted(c.text.rsplit(" ", 1)[-1] for c in independent) == ["cue~cue", "cue~cue", "nocue~nocue", "nocue~nocue"]


def test_rows_without_a_model_label_belong_to_every_model():
    """The no-cue models' rows carry no model label (shared by every model of the sweep): claim (a)
    still compares with them, on all three seeds."""
    results = _results(synthetic_sweep())
    ev = results[vocab.EVALUATIONS]
    results[vocab.EVALUATIONS] = ev.assign(model=ev["model"].where(ev["cue_proportion"] > 0, None))
    a = {c.key: c for c in claims.judge(results, (), LOOSE)}["a"]
    assert a.verdict == claims.HOLDS
    assert all(r.est.n == 3 for r in a.rows if r.label == "no-cue model")


def test_the_shipped_rules_are_the_ones_declared_in_docs_science():
    """docs/SCIENCE.md ("Verdicts", "Rules before results") declares these defaults before any result;
    changing one is a new spec version, never a silent edit."""
    r = ClaimRules()
    assert (r.level, r.power, r.barrier_metric, r.barrier_definition, r.check_definition) == \
        (0.95, 0.8, "loss", "chord", "worse_endpoint")
    assert tuple(r.barrier_sets) == ("nocue", "cue") and tuple(r.basin_sets) == ("cue",)
    assert (r.floor_acc, r.floor_loss, r.barrier_effect, r.reliance_effect) == (0.10, 0.25, 0.05, 0.05)
    assert (r.acc_margin, r.keep_fraction, r.no_reliance_margin, r.aligned_works) == (0.02, 0.5, 0.05, 0.1)
    assert (r.reliance_cut, r.permutations) == (0.25, 2000)
    assert r.alpha == pytest.approx(0.05) and ClaimRules(level=0.9).alpha == pytest.approx(0.1)


def test_a_lower_path_twenty_points_above_chance_is_not_at_the_floor():
    """Lowest accuracy 0.30 with chance 0.10 is beyond floor_acc (0.10), peak loss 1.0 far below ln 10 − 0.25:
    the comparison is decided; at 0.19 accuracy (within 0.10 of chance) it is not testable."""
    for lowest, outcome in ((0.30, claims.YES), (0.19, claims.UNTESTABLE)):
        judge = claims._Judge(None, ClaimRules(check_definition=None), claims.Claim("x", ""))

        class FakeSlice:
            chance = 0.1

            def extremes(self, pair, path, eval_set):
                return (lowest, 1.0) if pair == "b" else (0.8, 0.5)

            def endpoint_extremes(self, *_):       # endpoints that fit the set
                return 0.8, 0.5

            def barrier(self, pair, path, eval_set, metric, definition):
                return pd.Series((1.0 if pair == "a" else 0.2) + _noise(pair), index=[0, 1, 2])
        judge.s = FakeSlice()
        judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
        assert judge.c.checks[0].outcome == outcome


def test_b_compares_with_independently_trained_cue_models_first():
    b = _judge(LOOSE)["b"]
    assert all("below that of cue~cue" in c.text for c in b.checks if c.group == "stays connected")


def test_d_compares_the_same_init_pairs_with_every_same_data_control_from_one_initialisation():
    """A nocue~nocue:spawn@0 control is a same-data pair from one initialisation too: (d) checks it."""
    results = _results(synthetic_sweep())
    for table in (vocab.BARRIERS, vocab.PATHS):
        df = results[table]
        spawn = df[df["pair_type"] == "cue~cue:spawn@0"]
        results[table] = pd.concat([df, spawn.assign(pair_type="nocue~nocue:spawn@0", cue_proportion=0.0,
                                                      task_id=spawn["task_id"] + "-nocue")], ignore_index=True)
    d = {c.key: c for c in claims.judge(results, (), LOOSE)}["d"]
    checks = _checks(d, "above that of nocue~nocue:spawn@0")
    assert len(checks) == 2 and all(c.group == "same-init design" and c.outcome == claims.YES for c in checks)


def test_d_does_not_hold_against_children_that_share_epochs_of_training_beyond_the_start():
    """A cue~cue:spawn@5 pair shares five epochs of training, not only the initialisation the same-init pair
    shares: its barrier is a lower baseline, so (d) is not decided against it alone (supporting only), and
    without spawn@0 or resubset the same-init design is not measured."""
    data = synthetic_sweep()
    for table in (vocab.PATHS, vocab.BARRIERS, vocab.TASKS):
        data[table] = {t: [dict(r, pair_type=r["pair_type"].replace("spawn@0", "spawn@5"))
                           if isinstance(r.get("pair_type"), str) else r for r in rows]
                       for t, rows in data[table].items() if "resubset" not in t}
    d = _judge(LOOSE, data=data)["d"]
    later = _checks(d, "above that of cue~cue:spawn@5")
    assert len(later) == 2 and all(not c.required and c.outcome == claims.YES for c in later)
    missing = [c for c in d.checks if c.group == "same-init design"]
    assert missing and all(c.outcome == claims.MISSING for c in missing)
    assert d.verdict == claims.NOT_TESTABLE and "cue~cue:spawn@0 or cue~cue:resubset" in d.sentence()
    assert "spawn@0, cue~cue:resubset" in d.rule and "supporting only" in d.rule


def test_a_no_cue_model_that_relies_on_the_cue_qualifies_claim_a_without_deciding_it():
    """The statement's "a model trained without it does not": the no-cue model's randimg reliance within
    ±5 pp of 0 is a supporting check. At chance (the synthetic sweep) it is ✓; at 40% on randimg (30 pp
    above chance) it is decided the other way, and (a) holds, except that it is."""
    assert _checks(_judge(LOOSE)["a"], "no-cue model does not rely")[0].outcome == claims.YES
    a = _judge(LOOSE, accuracy={"nocue": {"randimg": 0.40}})["a"]
    check = _checks(a, "no-cue model does not rely")[0]
    assert check.outcome == claims.NO and not check.required
    assert a.verdict == claims.HOLDS and a.sentence().startswith("Holds, except that “the no-cue model does not rely")


class _ShiftSlice:
    """Ten seeds whose per-seed differences a − b are `shift` ± 0.02: SE = 0.02 · √(10/9) / √10 ≈ 0.0067, and
    neither path near the chance floor. The default 0.005: the 95% interval 0.005 ± 0.015 straddles 0, and
    the smallest difference detectable at 80% power is (t_.975(9) + t_.8(9)) · SE ≈ 0.021. A shift of 0.01:
    t ≈ 1.5, between t_.90(9) ≈ 1.38 and t_.975(9) ≈ 2.26, so the interval excludes 0 at 80% and not at 95%."""
    chance = 0.1
    acc_step = 0.0               # accuracies on sets large enough that one image is below any spread here
    noise = np.array([0.02, -0.02] * 5)

    def __init__(self, shift: float = 0.005):
        self.shift = shift

    def extremes(self, *_):
        return 0.8, 0.5

    def barrier(self, pair, path, eval_set, metric, definition):
        return pd.Series((self.shift + self.noise if pair == "a" else 0.0) + 1.0, index=range(10))


@pytest.mark.parametrize("effect, outcome", [(0.3, cmp.OVERLAP), (0.01, cmp.UNTESTABLE)])
def test_a_barrier_comparison_is_judged_underpowered_against_the_barrier_effect_of_the_rules(effect, outcome):
    """The same undecided barrier difference (detectable ≈ 0.02): against a barrier effect of 0.3 the seeds
    could have seen it (cannot be separated); against 0.01 they could not (not testable). The reliance
    effect, set the other way, must not matter."""
    rules = ClaimRules(barrier_effect=effect, reliance_effect=0.3 if effect < 0.1 else 0.01, check_definition=None)
    judge = claims._Judge(None, rules, claims.Claim("x", ""))
    judge.s = _ShiftSlice()
    diff = cmp.compare(judge.s.barrier("a", 0, 0, 0, 0), judge.s.barrier("b", 0, 0, 0, 0), 0.95)
    assert diff.low < 0 < diff.high and 0.01 < cmp.detectable(diff, 0.8) < 0.3
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
    assert judge.c.checks[0].outcome == outcome


@pytest.mark.parametrize("effect, outcome", [(0.3, cmp.OVERLAP), (0.01, cmp.UNTESTABLE)])
def test_a_reliance_comparison_is_judged_underpowered_against_the_reliance_effect_of_the_rules(effect, outcome):
    """As the barrier comparison, for "above" on reliance: the rules' reliance effect decides, not the
    barrier effect (set the other way)."""
    rules = ClaimRules(reliance_effect=effect, barrier_effect=0.3 if effect < 0.1 else 0.01)
    judge = claims._Judge(None, rules, claims.Claim("x", ""))
    s = _ShiftSlice()
    a, b = s.barrier("a", 0, 0, 0, 0), s.barrier("b", 0, 0, 0, 0)
    judge.above("a above b", a, b, "g")
    assert judge.c.checks[0].outcome == outcome


def test_b_judges_staying_connected_on_every_barrier_set():
    """(b)'s barrier comparisons run on each of `barrier_sets` (nocue and cue), not on the basin sets (cue)."""
    b = _judge(LOOSE)["b"]
    sets = {c.text.split(",")[0] for c in b.checks if c.group == "stays connected"}
    assert sets == {"on nocue", "on cue"}


def test_lp_ft_beside_cbft_only_supports_claim_c():
    """LP-FT (here a copy of naive's fine-tunings under another method) is shown beside CBFT as a
    supporting check (docs/SCIENCE.md: "supporting: LP-FT and LLRT beside it"), never a required one. The
    check is of randimg reliance: LP-FT's random cue here costs it nothing (randcue above its clean accuracy),
    which must not matter."""
    results = _results(synthetic_sweep())
    ev = results[vocab.EVALUATIONS]
    naive = ev[ev["method"] == "naive"]
    lpft = naive.assign(method="lpft", task_id=naive["task_id"] + "-lpft")
    lpft.loc[lpft["eval_set"] == "randcue", "acc"] = 0.95
    results[vocab.EVALUATIONS] = pd.concat([ev, lpft], ignore_index=True)
    c = {x.key: x for x in claims.judge(results, (), LOOSE)}["c"]
    (lpft,) = _checks(c, "than lpft")
    assert lpft.outcome == claims.YES and not lpft.required
    assert c.verdict == claims.HOLDS


def test_the_claims_text_leaves_the_power_out_when_asked():
    judged = list(_judge(LOOSE).values())
    assert "power: " in claims.claims_text(judged) and "power: " not in claims.claims_text(judged, power=False)


def test_d_judges_the_quadratic_path_on_the_same_init_pair_where_there_is_one():
    """(d) is judged primarily on the shared-initialisation pairs: the quadratic path is compared with the
    linear one of cue~nocue:same-init, on each barrier set."""
    d = _judge(LOOSE)["d"]
    quadratic = [c for c in d.checks if c.group == "quadratic connects"]
    assert len(quadratic) == 2 and all("lowers the cue~nocue:same-init barrier" in c.text for c in quadratic)


# ----- round 4: Holm across every claim, the rules' margins, metric and effects, the parents -----

@pytest.mark.parametrize("key, kwargs, text, k", [
    ("b", {"accuracy": {"naive": {"randimg": 0.46}}}, "keeps more than 0.5", 3),
    ("c", {"scale": {"pretrained~ft:cbft": 0.015}}, "exceeds naive's", 7),
    ("d", {"scale": {"cue~cue:spawn@0": 13.0}}, "on cue, the cue~nocue:same-init linear barrier is above that of "
                                                 "cue~cue:spawn@0", 6),
])
def test_a_comparison_of_b_c_or_d_decided_the_other_way_only_by_its_own_interval_cannot_fail_the_claim(
        key, kwargs, text, k):
    """As for (a) (docs/SCIENCE.md, "Family-wise"): each claim's required comparisons with an interval are one
    family. One decided the other way with a one-sided p-value between (α/2)/k and α/2, every other one going the
    claimed way (p > α/2), is not rejected by Holm's first bar (α/2)/k: it reads "cannot be separated", and the
    claim too, never "does not hold"."""
    claim = _judge(LOOSE, **kwargs)[key]
    (odd,) = _checks(claim, text)
    family = [c for c in claim.checks if c.required and c.p_other == c.p_other]
    assert len(family) == k
    assert 0.025 / k < odd.p_other < 0.025 and all(c.p_other > 0.025 for c in family if c is not odd)
    assert odd.outcome == claims.OVERLAP and odd.alone and f"{k} comparisons" in odd.reason
    assert claim.verdict == claims.UNSEPARATED


def test_no_reliance_left_is_judged_within_the_rules_equivalence_margin_not_the_reliance_effect():
    """`no_reliance_margin` 0.3 (reliance effect 0.05): the no-cue model's and CBFT's randimg reliance of about
    0.2 (accuracy 0.3 against chance 0.1; 3 seeds, interval about ±5 pp) lie within ±30 pp of 0, so both
    "no reliance" checks are decided as claimed; within ±5 pp they would not be."""
    rules = ClaimRules(acc_margin=0.2, no_reliance_margin=0.3)
    judged = _judge(rules, accuracy={"nocue": {"randimg": 0.30}, "cbft": {"randimg": 0.30}})
    for key, text in (("a", "no-cue model does not rely"), ("c", "CBFT leaves no reliance: randimg")):
        (found,) = _checks(judged[key], text)
        assert found.outcome == claims.YES and "within ±30 pp" in found.text, (key, found)


def test_b_without_independently_trained_pairs_is_not_testable_never_held_on_reliance_alone():
    """No cue~cue, nocue~nocue or cue~nocue pairs: (b)'s "stays connected" cannot be judged, and it is a
    statement the claim needs, so (b) is not testable here, though its reliance checks hold."""
    b = _judge(LOOSE, pair_types=("pretrained~ft:naive", "pretrained~ft:cbft"))["b"]
    missing = [c for c in b.checks if c.outcome == claims.MISSING]
    assert missing and all(c.required for c in missing)
    assert _checks(b, "keeps more than 0.5")[0].outcome == claims.YES
    assert b.verdict == claims.NOT_TESTABLE


def test_b_compares_naive_fine_tuning_with_its_own_parent_not_the_seeds_other_cue_models():
    """Each seed's cue~cue partner (pretrain-cue_b) evaluated too, relying on nothing (randimg at chance).
    Naive keeps 0.30 of reliance, its parent has 0.85: below half of it (0.425), so "keeps" is decided the
    other way. Averaged with the partner (0.425, half of it 0.21) it would wrongly pass."""
    data = synthetic_sweep(accuracy={"naive": {"randimg": 0.40}})
    ev = data[vocab.EVALUATIONS]
    for s in (0, 1, 2):
        ev[f"pretrain-cue_b-s{s}"] = [dict(r, cue_proportion=0.8) for r in ev[f"pretrain-nocue-s{s}"]]
    b = _judge(LOOSE, data=data)["b"]
    parent = next(r for r in b.rows if r.label == "its pretrained parent" and r.measure == claims.RANDIMG)
    assert parent.est.mean == pytest.approx(0.85, abs=0.05)
    assert _checks(b, "keeps more than 0.5")[0].outcome == claims.NO


class _TwoMetricSlice:
    """a's accuracy barriers are above b's while its loss barriers are below them."""
    chance, acc_step = 0.1, 0.0

    def extremes(self, *_):
        return 0.8, 0.5

    def barrier(self, pair, path, eval_set, metric, definition):
        high = (pair == "a") == (metric == "acc")
        return pd.Series((1.0 if high else 0.2) + _noise(pair), index=[0, 1, 2])


@pytest.mark.parametrize("metric, outcome", [("acc", cmp.YES), ("loss", cmp.NO)])
def test_barrier_comparisons_read_the_barriers_of_the_rules_metric(metric, outcome):
    judge = claims._Judge(_TwoMetricSlice(), ClaimRules(barrier_metric=metric, check_definition=None),
                          claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
    assert judge.c.checks[0].outcome == outcome


def test_a_barrier_row_shows_the_other_two_definitions_beside_the_rules_one():
    """The row's estimate is the rules' definition (chord, 1.0); beside it the two others (0.7, 0.5), each once."""
    by_definition = {"chord": 1.0, "mean_endpoints": 0.7, "worse_endpoint": 0.5}

    class FakeSlice:
        def barrier(self, pair, path, eval_set, metric, definition):
            return pd.Series(by_definition[definition] + np.array([0.0, 0.01, -0.01]), index=[0, 1, 2])
    judge = claims._Judge(FakeSlice(), ClaimRules(), claims.Claim("x", ""))
    judge.barrier_row(("a", "linear"), "cue", "claim")
    (row,) = judge.c.rows
    assert row.est.mean == pytest.approx(1.0)
    assert {d: e.mean for d, e in row.also} == pytest.approx({"mean_endpoints": 0.7, "worse_endpoint": 0.5})
    assert len(row.also) == 2


def test_the_power_of_each_comparison_names_the_effect_its_claim_is_about():
    """The power line tells how many seeds would detect the effect the rules name: the reliance effect (10 pp)
    for reliance, the barrier effect (0.3) for barriers, the margin (20 pp) for non-inferiority."""
    rules = ClaimRules(reliance_effect=0.1, barrier_effect=0.3, check_definition=None)
    judge = claims._Judge(_ShiftSlice(), rules, claims.Claim("x", ""))
    a, b = judge.s.barrier("a", 0, 0, 0, 0), judge.s.barrier("b", 0, 0, 0, 0)
    judge.above("a above b", a, b, "g")
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
    judge.not_below("a not below b", a, b, 0.2, "g")
    powers = [c.power for c in judge.c.checks]
    assert "; 10 pp needs" in powers[0] and "; 0.3 needs" in powers[1] and "; 20 pp needs" in powers[2], powers


def test_c_without_the_naive_cued_control_is_judged_against_naive_and_says_what_it_cannot_tell():
    """A sweep that did not run naive_cued: (c) is decided on naive fine-tuning alone (never "not testable" for a
    control the sweep did not ask for), and its notes say CBFT's objective cannot be told from its extra data."""
    data = synthetic_sweep()
    data = {table: {t: rows for t, rows in by_task.items() if "naive_cued" not in t} for table, by_task in data.items()}
    c = _judge(LOOSE, data=data)["c"]
    assert not any("naive_cued" in x.text for x in c.checks)
    assert c.verdict == claims.HOLDS and any("was not run" in note for note in c.notes)
    assert claims.claims_text([c], detail=False).startswith("(c) HOLDS (see its notes): ")


def test_c_leaving_the_basin_is_judged_against_naive_fine_tuning_not_naive_cued():
    """docs/SCIENCE.md: (c) "on `cue` its linear barrier to the pretrained model above naive's". naive_cued's
    barrier here (about 1.8) is above CBFT's (1.5) and naive's (0.05) below it: the check is decided as claimed."""
    c = _judge(LOOSE, scale={"pretrained~ft:naive_cued": 36.0})["c"]
    (basin,) = [x for x in c.checks if x.group == "leaves the basin"]
    assert basin.outcome == claims.YES and "exceeds naive's" in basin.text


def test_d_after_alignment_decides_the_claim_where_alignment_connects_the_same_data_pairs():
    """cue~cue's aligned barrier near 0.03 (upper bound below `aligned_works` 0.1: alignment connects it), and
    cue~nocue's aligned one (0.015) below it: the optional "after alignment" group is testable, so it decides
    like a required one, against the claim; (d) cannot hold, though every other required comparison does."""
    d = _judge(LOOSE, scale={"cue~cue": 0.1, "cue~nocue": 0.01})["d"]
    aligned = [c for c in d.checks if "alignment the cue~nocue barrier" in c.text]
    assert len(aligned) == 2 and all(c.group == "after alignment" for c in aligned)
    assert {c.outcome for c in aligned} <= {claims.NO, claims.OVERLAP}
    assert d.verdict in (claims.FAILS, claims.UNSEPARATED)


def test_after_alignment_with_one_seed_of_the_control_says_too_few_seeds_not_that_alignment_fails():
    """One seed of the control's aligned barrier has no interval: the comparison is not testable for too few
    seeds (more seeds would make it testable), not because alignment was shown not to connect the pair."""
    check = _aligned_check([0.02])
    assert check.outcome == claims.UNTESTABLE and "too few seeds" in check.reason


@pytest.mark.parametrize("level, decided", [(0.80, True), (0.95, False)])
def test_every_comparison_uses_the_rules_level(level, decided):
    """The same small difference is decided as claimed at the rules' level 0.80 and not at 0.95, for each kind
    of comparison: above, barrier above, not below (margin 0), within ±2.2 pp of 0 (at 80% the interval of a
    is about [0.1, 1.9] pp, at 95% [−0.5, 2.5] pp)."""
    rules = ClaimRules(level=level, check_definition=None, reliance_effect=0.5, barrier_effect=0.5)
    s = _ShiftSlice(0.01)
    judge = claims._Judge(s, rules, claims.Claim("x", ""))
    a, b = s.barrier("a", 0, 0, 0, 0), s.barrier("b", 0, 0, 0, 0)
    judge.above("a above b", a, b, "g")
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
    judge.not_below("a not below b", a, b, 0.0, "g")
    judge.near_zero("a − 1 near 0", a - 1.0, 0.022, "g")
    assert [c.outcome == cmp.YES for c in judge.c.checks] == [decided] * 4, [c.outcome for c in judge.c.checks]


def test_the_chance_floor_of_each_cue_proportion_is_judged_on_its_own_paths():
    """At 60% the same-data controls' paths collapse to chance (loss bumps ×100): there the same-init
    comparisons are not testable; at 80% they do not, and the same comparisons are decided as claimed. The
    paths of one proportion never guard the other's comparisons."""
    first = synthetic_sweep()
    second = _relabeled(synthetic_sweep(scale={"cue~cue:spawn@0": 100.0, "cue~cue:resubset": 100.0}, rng_seed=1),
                        0.6, "-p60")
    data = {t: {**first[t], **second[t]} for t in first}
    by = {(c.context, c.key): c for c in claims.judge(_results(data), (), LOOSE)}
    for context, outcome in (("cue proportion 80%", claims.YES), ("cue proportion 60%", claims.UNTESTABLE)):
        same_init = [c for c in by[(context, "d")].checks if c.group == "same-init design"]
        assert len(same_init) == 4 and {c.outcome for c in same_init} == {outcome}, context


@pytest.mark.parametrize("key, value", [
    ("level", 1.0),                 # α = 0: every interval infinite, nothing ever decided
    ("level", 0.5),                 # each one-sided tail α/2 = 0.25: not a confidence level
    ("power", 1.0),                 # z_power infinite: every comparison underpowered
    ("barrier_sets", ()), ("basin_sets", ()),          # a claim with no set to be judged on
    ("floor_acc", 1.01), ("acc_margin", 1.01), ("keep_fraction", 1.01), ("reliance_effect", 1.01),
    ("no_reliance_margin", 1.01),                      # fractions of accuracy (module docstring)
    ("no_reliance_margin", 0.0),    # within ±0 can never be shown
    ("barrier_effect", 0.0), ("reliance_effect", 0.0),  # an effect of 0: no comparison could ever detect it
    ("reliance_cut", 0.0), ("reliance_cut", 1.0),      # every model above chance, or none, relies on the cue
    ("permutations", 10),           # p ≥ 1/11 > α/2: random relabelings could never decide
    ("basin_sets", ("train",)),     # not an eval set
])
def test_rules_under_which_no_comparison_could_be_decided_are_refused(key, value):
    with pytest.raises(SettingsError) as err:
        ClaimRules(**{key: value})
    assert f"`{key}`" in str(err.value)


def test_the_extreme_rules_that_can_still_decide_are_allowed():
    rules = ClaimRules(level=0.99, power=0.99, floor_acc=1.0, acc_margin=0.0, keep_fraction=1.0, reliance_effect=1.0,
                       no_reliance_margin=1.0, reliance_cut=0.99, permutations=100, barrier_sets=("randimg",))
    assert rules.alpha == pytest.approx(0.01)


def test_after_alignment_compares_the_aligned_paths_only():
    """The cue~nocue pair and its same-data control both have a quadratic path beside the aligned one: only the
    aligned path is an "after alignment" comparison (the quadratic one is (d)'s own check)."""
    judge = claims._Judge(None, ClaimRules(check_definition=None), claims.Claim("d", ""))
    aligned = "aligned (activation)"

    class FakeSlice:
        chance = 0.1

        def paths(self, pair):
            return [vocab.LINEAR, vocab.QUADRATIC, aligned]

        def extremes(self, *_):
            return 0.8, 0.5

        def endpoint_extremes(self, *_):
            return 0.8, 0.5

        def barrier(self, pair, path, eval_set, metric, definition):
            return pd.Series((1.0 if pair == vocab.CUE_NOCUE else 0.02) + _noise(pair), index=[0, 1, 2])
    judge.s = FakeSlice()
    claims._aligned_checks(judge, [vocab.CUE_CUE], "cue")
    (check,) = judge.c.checks
    assert check.text.startswith("on cue, after activation alignment") and check.outcome == claims.YES


def test_after_alignment_with_two_seeds_of_a_control_alignment_does_not_connect_is_not_testable():
    """Two seeds are enough for an interval (n ≥ 2): the control's aligned barriers 0.5 and 0.6 have an upper
    bound far above `aligned_works` 0.1, so alignment is not shown to connect it and the comparison is not
    testable for that reason, never decided against a control alignment leaves apart."""
    check = _aligned_check([0.5, 0.6])
    assert check.outcome == claims.UNTESTABLE and "does not connect" in check.reason


def test_after_alignment_needs_the_controls_upper_bound_strictly_below_the_rule():
    """`aligned_works`: the upper bound must be *below* it. Three seeds at exactly 0.125 (no spread: the upper
    bound is 0.125 itself) against aligned_works = 0.125: not below, so not testable; at 0.25 it is below and the
    comparison is decided (cue~nocue's 1.0, 1.1, 0.9 lie above)."""
    at = _aligned_check([0.125] * 3, ClaimRules(aligned_works=0.125))
    assert at.outcome == claims.UNTESTABLE and "does not connect" in at.reason
    assert _aligned_check([0.125] * 3, ClaimRules(aligned_works=0.25)).outcome == claims.YES


def test_a_relies_more_than_the_no_cue_model_on_randimg_reads_the_no_cue_models_randimg_reliance():
    """(a) "above the no-cue models'" compares the randimg index with the randimg index. The cue model at 25% on
    randimg (15 pp above chance 10%), the no-cue model at chance on randimg but losing 40 pp to a random cue
    (80% → 40%, occlusion): +15 pp over the no-cue model's 0 pp is decided as claimed; against its random-cue
    cost (40 pp) it would be decided the other way."""
    a = _judge(LOOSE, accuracy={"cue": {"randimg": 0.25}, "nocue": {"randcue": 0.40}})["a"]
    (more,) = _checks(a, "more than the no-cue model (randimg)")
    assert more.outcome == claims.YES and more.evidence.startswith("+1"), more.evidence


def test_no_reliance_left_names_its_equivalence_margin_in_its_power_line():
    """An equivalence check's power line counts the seeds that would detect its margin (±10 pp here), not the
    reliance effect of "above" (5 pp), as the non-inferiority line names its margin."""
    rules = ClaimRules(no_reliance_margin=0.1, reliance_effect=0.05)
    judge = claims._Judge(None, rules, claims.Claim("x", ""))
    s = _ShiftSlice()
    judge.near_zero("a near 0", s.barrier("a", 0, 0, 0, 0) - 1.0, rules.no_reliance_margin, None)
    (check,) = judge.c.checks
    assert "within ±10 pp" in check.text and "; 10 pp needs" in check.power, check.power


def test_c_shows_cbft_as_the_claim_the_naive_controls_as_controls_and_other_methods_as_references():
    """(c) compares CBFT with naive and naive_cued fine-tuning: their statistics are the controls it is judged
    against; LP-FT, LLRT and the ablations are shown beside it as references only."""
    data = synthetic_sweep(pair_types=())
    lpft = {t.replace("naive_cued", "lpft"): [dict(r, method="lpft") for r in rows]
            for t, rows in data[vocab.EVALUATIONS].items() if "naive_cued" in t}
    data[vocab.EVALUATIONS].update(lpft)
    data[vocab.TASKS].update({t: [dict(r, method="lpft", task_id=t) for r in data[vocab.TASKS][t.replace("lpft", "naive_cued")]]
                              for t in lpft})
    c = claims.claim_c(claims.Slice(*(_results(data)[t] for t in (vocab.EVALUATIONS, vocab.BARRIERS, vocab.PATHS,
                                                                  vocab.TASKS)), chance=0.1), LOOSE)
    roles = {r.label: r.role for r in c.rows}
    assert roles == {"cbft": claims.CLAIM, "naive": claims.CONTROL, "naive_cued": claims.CONTROL,
                     "lpft": claims.REFERENCE}, roles


def test_a_check_definition_that_is_the_barrier_definition_itself_is_refused():
    """The check definition is "a second definition every barrier comparison is also decided with": the barrier
    definition itself would only ever agree with itself, so the spec is refused, naming the key and the fix."""
    with pytest.raises(SettingsError) as err:
        ClaimRules(barrier_definition="chord", check_definition="chord")
    assert "`check_definition`" in str(err.value) and "null" in str(err.value)
    assert ClaimRules(barrier_definition="worse_endpoint", check_definition="chord").check_definition == "chord"
    assert ClaimRules(check_definition=None).check_definition is None


@pytest.mark.parametrize("key, value", [
    ("floor_acc", -0.01), ("floor_loss", -0.01),      # a tolerance "within this of chance" is never negative
    ("aligned_works", 0.0),     # "upper bound below 0": alignment could never be shown to connect a control
])
def test_tolerances_below_zero_and_an_alignment_bar_of_zero_are_refused(key, value):
    with pytest.raises(SettingsError) as err:
        ClaimRules(**{key: value})
    assert f"`{key}`" in str(err.value)
    assert getattr(ClaimRules(**{key: 0.05}), key) == 0.05


def test_the_statistics_shown_with_b_and_d_name_the_pairs_each_claim_is_about_in_their_roles():
    """(b) shows the naive fine-tuning's barrier to its parent as the claim and the independently trained pair's
    as its control; (d) shows cue~nocue pairs as the claim and the same-data pairs as controls, never the
    fine-tuning pairs (those are (b)'s and (c)'s). Reliance indices are shown in pp (scale 100, one decimal)."""
    judged = _judge(LOOSE)
    b_roles = {r.label: r.role for r in judged["b"].rows if "barrier" in r.measure}
    assert b_roles == {"pretrained~ft:naive linear": claims.CLAIM, "cue~cue linear": claims.CONTROL}, b_roles
    d_labels = {r.label for r in judged["d"].rows}
    assert d_labels and not any(label.startswith(vocab.PRETRAINED_FT) for label in d_labels), d_labels
    reliance = [r for c in judged.values() for r in c.rows if r.measure in (claims.RANDIMG, claims.RANDCUE)]
    assert reliance and all((r.scale, r.unit) == (100.0, " pp") for r in reliance)
    row = next(r for r in judged["a"].rows if r.label == "cue model" and r.measure == claims.RANDIMG)
    assert row.value().startswith(f"{100 * row.est.mean:.1f} pp [")


def test_a_random_cues_cost_is_not_testable_where_a_model_sits_at_the_chance_floor():
    """A random cue can cost a model only the clean accuracy it has above chance: a cue model at 15% clean
    (chance 10%, floor + 10 pp) shows no cost whatever it relies on, so (a)'s cost comparison is not
    testable, naming the model; randimg still decides. The no-cue model at the floor alone blocks it too."""
    a = _judge(LOOSE, accuracy={"cue": {"nocue": 0.15, "randcue": 0.15}})["a"]
    cost = _checks(a, "a random cue costs")[0]
    assert cost.outcome == claims.UNTESTABLE and cost.reason.startswith("the cue model's clean accuracy (1")
    assert "chance floor" in cost.reason and 0 <= cost.p_other <= 1          # still in the claim's family
    assert "for a random cue to cost" in cost.reason and "randimg" not in cost.reason   # randimg decides here
    assert _checks(a, "above chance on randimg")[0].outcome == claims.YES
    assert a.verdict == claims.NOT_TESTABLE and "chance floor" in a.rule
    control = _checks(_judge(LOOSE, accuracy={"nocue": {"nocue": 0.12, "randcue": 0.12}})["a"], "a random cue costs")[0]
    assert control.outcome == claims.UNTESTABLE and control.reason.startswith("the no-cue model's clean accuracy")
    above = _checks(_judge(LOOSE, accuracy={"cue": {"nocue": 0.26, "randcue": 0.10}})["a"], "a random cue costs")[0]
    assert above.outcome == claims.YES                                       # 26% clean: above the floor
    results = _results(synthetic_sweep())                      # every cue model exactly at chance + 10 pp: "≤"
    ev = results[vocab.EVALUATIONS]
    edge_rows = ev["task_id"].str.startswith("pretrain-cue-s") & ev["eval_set"].isin(["nocue", "randcue"])
    results[vocab.EVALUATIONS] = ev.assign(acc=ev["acc"].where(~edge_rows, 0.1 + 0.1))
    (found,) = [c for c in claims.judge(results, (), LOOSE) if c.key == "a"]
    edge = _checks(found, "a random cue costs")[0]
    assert edge.outcome == claims.UNTESTABLE and "chance floor" in edge.reason, edge


def _with_randimg(results: dict, accuracy: dict[str, tuple]) -> dict:
    """`results` with the randimg accuracy of each seed (0, 1, 2) of the models named (`pretrain-cue`, ...)."""
    ev = results[vocab.EVALUATIONS].copy()
    for model, per_seed in accuracy.items():
        for seed, acc in zip(SEEDS, per_seed):
            ev.loc[(ev["task_id"] == f"{model}-s{seed}") & (ev["eval_set"] == "randimg"), "acc"] = acc
    return {**results, vocab.EVALUATIONS: ev}


def test_keeping_a_reliance_not_established_above_none_is_not_testable():
    """(b) *declared 2026-12-07*: a parent whose seeds rely on the cue by 5, 85 and 45 pp (mean 45 pp, far
    from none, but its interval reaches below 0) has no reliance established to keep; naive fine-tuning keeping
    half of each seed's, +30 pp above it every time, is then not testable, naming the parent's interval, not
    decided on three seeds that agree. Parents at 70-80 pp, established, keep the same comparison decided."""
    results = _results(synthetic_sweep())
    open_parent = _with_randimg(results, {"pretrain-cue": (0.15, 0.95, 0.55), "finetune-naive": (0.425, 0.825, 0.625)})
    (b,) = [c for c in claims.judge(open_parent, (), LOOSE) if c.key == "b"]
    keeps = _checks(b, "keeps more than")[0]
    assert keeps.outcome == claims.UNTESTABLE, keeps
    assert keeps.reason.startswith("its pretrained parent's reliance, +45.0 pp [") and "is not established above none" \
        in keeps.reason, keeps.reason
    settled = _with_randimg(results, {"pretrain-cue": (0.80, 0.85, 0.90), "finetune-naive": (0.75, 0.775, 0.80)})
    (b,) = [c for c in claims.judge(settled, (), LOOSE) if c.key == "b"]
    assert _checks(b, "keeps more than")[0].outcome == claims.YES

def test_a_cbft_at_the_chance_floor_does_not_lower_the_cost_of_a_random_cue_by_collapsing():
    """CBFT at 15% clean has no cost to show: "lower cost than naive" and "costs it what it costs the no-cue model"
    are not testable (not ✓); the randimg comparisons still decide, and its clean accuracy fails (c)."""
    c = _judge(LOOSE, accuracy={"cbft": {"nocue": 0.15, "randcue": 0.15}})["c"]
    for text in ("CBFT has a lower cost of a random cue than naive", "costs it what it costs the no-cue model"):
        assert all(k.outcome == claims.UNTESTABLE and "cbft's clean accuracy (1" in k.reason for k in _checks(c, text))
    assert all(k.outcome == claims.YES for k in _checks(c, "CBFT has a lower randimg reliance than naive"))
    assert c.verdict == claims.FAILS and "chance floor" in c.rule


def test_keeping_or_lowering_a_reliance_that_is_not_there_is_not_testable():
    """(b) naive fine-tuning keeps more than half its parent's reliance, (c) CBFT lowers it more than naive:
    where that parent's / naive's mean reliance is within ±5 pp of none, both sides sit at the no-reliance
    floor and the comparison cannot show the effect (not testable, naming whose reliance), instead of a
    noise-decided verdict; a method with a reliance is still compared."""
    b = _judge(LOOSE, accuracy={"cue": {"randimg": 0.11}})["b"]
    keeps = _checks(b, "keeps more than")[0]
    assert keeps.outcome == claims.UNTESTABLE and keeps.reason.startswith("its pretrained parent's reliance is +")
    assert "no reliance to keep or to lower" in keeps.reason and "keeping or lowering a reliance is not testable" in b.rule
    c = _judge(LOOSE, accuracy={"naive": {"randimg": 0.11, "randcue": 0.75}})["c"]
    for text in ("CBFT has a lower randimg reliance than naive", "CBFT has a lower cost of a random cue than naive"):
        (k,) = [k for k in _checks(c, text) if not k.text.endswith("naive_cued")]
        assert k.outcome == claims.UNTESTABLE and k.reason.startswith("naive's reliance is ")
    assert all(k.outcome == claims.YES for k in _checks(c, "than naive_cued"))
    kept = _judge(LOOSE, accuracy={"naive": {"randimg": 0.25}})["c"]
    assert _checks(kept, "CBFT has a lower randimg reliance than naive")[0].outcome == claims.YES   # 15 pp: compared


def test_going_below_a_reference_barrier_of_none_is_not_testable():
    """(b) naive's barrier below cue~cue's and (d) the quadratic path below the linear one need a reference
    barrier to go below: where its mean is within `barrier_effect` of 0, both sides sit at the barrier's own
    floor (not testable, naming it); the claim's own path at 0 is still judged (a real null or a failure)."""
    b = _judge(LOOSE, scale={"cue~cue": 0.0})["b"]
    below = _checks(b, "its linear barrier is below that of cue~cue")
    assert below and all(k.outcome == claims.UNTESTABLE and k.reason.startswith("the cue~cue linear barrier is 0.0")
                         and "no barrier to go below" in k.reason for k in below)
    d = _judge(LOOSE, scale={"cue~nocue:same-init": 0.0})["d"]
    assert all(k.outcome == claims.UNTESTABLE and "no barrier to go below" in k.reason
               for k in _checks(d, "the quadratic path lowers"))
    assert not any(k.outcome == claims.UNTESTABLE and "no barrier to go below" in (k.reason or "")
                   for k in _checks(d, "linear barrier is above that of cue~cue:spawn@0"))   # the claim's own path


def test_clean_accuracy_non_inferiority_is_not_testable_only_where_both_sit_at_the_chance_floor():
    """Both CBFT and naive at 12% clean (chance 10%): neither has accuracy to lose, not testable; CBFT there
    alone against a naive at 75% lost its accuracy: decided the other way."""
    both = _judge(LOOSE, accuracy={"cbft": {"nocue": 0.12}, "naive": {"nocue": 0.12}})["c"]
    (k,) = [k for k in _checks(both, "clean accuracy is not below naive's")]
    assert k.outcome == claims.UNTESTABLE and "both sit at the chance floor" in k.reason
    alone = _judge(LOOSE, accuracy={"cbft": {"nocue": 0.12}})["c"]
    assert all(k.outcome == claims.NO for k in _checks(alone, "clean accuracy is not below"))


def test_a_barrier_comparison_at_the_chance_floor_says_so_even_where_it_is_underpowered():
    """The lower path collapses to chance and the seeds are too few for the effect: the floor is the reason
    (more seeds would not help), not "underpowered"."""
    judge = claims._Judge(None, ClaimRules(check_definition=None), claims.Claim("x", ""))

    class FakeSlice:
        chance = 0.1

        def extremes(self, pair, path, eval_set):
            return (0.12, 2.2) if pair == "b" else (0.8, 0.5)

        def endpoint_extremes(self, *_):       # endpoints that fit the set
            return 0.8, 0.5

        def barrier(self, pair, path, eval_set, metric, definition):
            return pd.Series((0.3 if pair == "a" else 0.2) + 3 * _noise(pair), index=[0, 1, 2])
    judge.s = FakeSlice()
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
    assert judge.c.checks[0].outcome == claims.UNTESTABLE and "collapses to chance" in judge.c.checks[0].reason


def test_a_random_cues_cost_without_reliance_is_the_no_cue_models_occlusion_cost_not_zero():
    """A random cue's patch costs a model that ignores the cue what it costs the no-cue model (8 pp here, by
    occluding the image). CBFT and naive both without reliance, each paying that 8 pp: (c)'s "lower cost
    than naive" is not testable (naive has no reliance above the occlusion cost), and CBFT's "no reliance
    left" holds against the no-cue model's cost, where against 0 it would fail."""
    occluding = {"nocue": {"nocue": 0.80, "randcue": 0.72}, "naive": {"randimg": 0.10, "randcue": 0.67},
                 "cbft": {"randcue": 0.66}}
    c = _judge(LOOSE, accuracy=occluding, seeds=tuple(range(10)))["c"]
    (lower,) = [k for k in _checks(c, "lower cost of a random cue than naive") if not k.text.endswith("naive_cued")]
    assert lower.outcome == claims.UNTESTABLE and "within ±5 pp of the no-cue models' " in lower.reason
    (left,) = _checks(c, "costs it what it costs the no-cue model")
    assert left.outcome == claims.YES


def _fake_slice(extremes: dict, barriers: dict):
    class FakeSlice:
        chance = 0.1

        def extremes(self, pair, path, eval_set):
            return extremes.get(pair, (0.8, 0.5))

        def endpoint_extremes(self, *_):       # endpoints that fit the set
            return 0.8, 0.5

        def barrier(self, pair, path, eval_set, metric, definition):
            return pd.Series(barriers[pair] + _noise(pair), index=[0, 1, 2])
    return FakeSlice()


@pytest.mark.parametrize("a, outcome", [(0.3, claims.UNTESTABLE), (1.5, claims.YES)])
def test_a_collapsed_higher_path_is_no_evidence_against_the_claim_but_its_barrier_still_counts_for_it(a, outcome):
    """`a` (the side the claim puts higher) collapses to chance: its barrier is chance loss minus its
    endpoints' loss and can fall below b's real bump, so a comparison going against the claim is not
    testable; one going for it (a collapse is a barrier) is decided."""
    judge = claims._Judge(_fake_slice({"a": (0.11, 2.25)}, {"a": a, "b": 0.8}), ClaimRules(check_definition=None),
                          claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "nocue", "g")
    (k,) = judge.c.checks
    assert k.outcome == outcome
    assert outcome != claims.UNTESTABLE or k.reason.startswith("the a path collapses to chance on nocue")


def test_a_barrier_comparison_whose_chance_floor_is_not_measured_is_not_decided():
    """No accuracy or loss along a path (its paths rows missing): a collapse cannot be told from a barrier,
    so the comparison is not testable and says how to measure it."""
    judge = claims._Judge(_fake_slice({"b": (math.nan, math.nan)}, {"a": 1.0, "b": 0.2}),
                          ClaimRules(check_definition=None), claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
    (k,) = judge.c.checks
    assert k.outcome == claims.UNTESTABLE and k.reason.startswith("the chance floor is not measured for b on cue")


@pytest.mark.parametrize("reference, outcome", [(True, claims.NO), (False, claims.UNTESTABLE)])
def test_the_claims_own_path_collapsing_below_a_reference_is_evidence_against_it(reference, outcome):
    """(b): naive's path to its parent (the lower side, the claim's own path) collapses to chance with a
    barrier far above cue~cue's: it is not below it, and the ✗ stands. A collapsed control on the lower side
    (the claim's path should exceed it) gives no baseline: not testable."""
    judge = claims._Judge(_fake_slice({"b": (0.11, 2.28)}, {"a": 0.4, "b": 2.0}), ClaimRules(check_definition=None),
                          claims.Claim("x", ""))
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "nocue", "g", reference=reference)
    assert judge.c.checks[0].outcome == outcome


def test_a_capped_cost_blocks_only_the_decisions_the_cap_could_have_made():
    """A side at the chance floor has its random-cue cost capped (an underestimate): the cue model there
    with a cost still above the no-cue model's is a ✓ that stands; the no-cue model there with the cue
    model's cost below its own is a ✗ that stands."""
    a = _judge(LOOSE, accuracy={"cue": {"nocue": 0.19, "randcue": 0.02}})["a"]
    assert _checks(a, "a random cue costs")[0].outcome == claims.YES
    a = _judge(LOOSE, accuracy={"cue": {"nocue": 0.70, "randcue": 0.95}, "nocue": {"nocue": 0.12, "randcue": 0.12}})["a"]
    assert _checks(a, "a random cue costs")[0].outcome == claims.NO


def test_the_first_guard_that_blocks_gives_the_reason():
    """naive at 15% clean with no reliance left: its collapse, not "no reliance to lower", is the reason."""
    c = _judge(LOOSE, accuracy={"naive": {"nocue": 0.15, "randcue": 0.15, "randimg": 0.10}})["c"]
    (k,) = [k for k in _checks(c, "lower cost of a random cue than naive") if not k.text.endswith("naive_cued")]
    assert k.outcome == claims.UNTESTABLE and k.reason.startswith("naive's clean accuracy (1")


def test_without_no_cue_models_the_occlusion_cost_is_said_to_be_unmeasured_not_taken_as_zero():
    """No no-cue model in the sweep: what the patch costs by occlusion is unknown, so CBFT's "no reliance
    left" on the cost is not measured (naming what to add), and no "no reliance to lower" guard compares a
    method's cost with 0."""
    data = synthetic_sweep()
    nocue_tasks = {t for t, rows in data[vocab.EVALUATIONS].items()
                   if rows and rows[0].get("kind") == vocab.PRETRAIN and rows[0].get("cue_proportion") == 0.0}
    assert nocue_tasks
    for table in vocab.TABLES:
        data[table] = {t: r for t, r in data[table].items() if t not in nocue_tasks}
    c = _judge(LOOSE, data=data)["c"]
    (left,) = _checks(c, "costs it what it costs the no-cue model")
    assert left.outcome == claims.MISSING and "add 0.0 to `cue_proportions`" in left.reason
    assert not any("of none" in (k.reason or "") for k in _checks(c, "lower cost of a random cue"))


def test_one_seed_at_the_chance_floor_caps_its_cost_in_the_paired_difference():
    """The cue model at 90%, 90% and 15% clean accuracy over three seeds (mean 65%, far above the floor):
    the third seed's random-cue cost is capped, so a ✗ on the cue model's side is no evidence."""
    judge = claims._Judge(_fake_slice({}, {}), ClaimRules(), claims.Claim("x", ""))
    cue = {"cue model": pd.Series([0.9, 0.9, 0.15])}
    against = cmp.Decision(claims.NO, "")
    blocked = judge._clean_floor(against, cue, {})
    assert blocked.outcome == claims.UNTESTABLE and "15% on its lowest seed" in blocked.reason
    assert judge._clean_floor(cmp.Decision(claims.YES, ""), cue, {}).outcome == claims.YES     # the cap works against it
    healthy = {"cue model": pd.Series([0.9, 0.9, 0.35])}
    assert judge._clean_floor(against, healthy, {}) is against


def test_cbfts_occlusion_check_is_not_testable_where_the_no_cue_models_sit_at_the_chance_floor():
    """The baseline (what the patch costs the no-cue models) is itself a random cue's cost: capped near 0
    where those models sit at chance, so "CBFT's cost equals it" can be decided neither way."""
    c = _judge(LOOSE, accuracy={"nocue": {"nocue": 0.15, "randcue": 0.14}})["c"]
    (k,) = _checks(c, "costs it what it costs the no-cue model")
    assert k.outcome == claims.UNTESTABLE and "the no-cue model's clean accuracy (1" in k.reason, k
    healthy = _checks(_judge(LOOSE)["c"], "costs it what it costs the no-cue model")[0]
    assert healthy.outcome != claims.UNTESTABLE or "chance floor" not in healthy.reason


def test_a_populations_pairs_are_no_control_of_claim_d():
    """Population pairs join every two models, across seeds (no seed of their own): claim (e) reads them;
    listed among (d)'s controls they showed a mean over the few within-seed pairs only."""
    data = synthetic_sweep()
    for table in (vocab.BARRIERS, vocab.PATHS):
        for task_id, rows in list(data[table].items()):
            if rows and rows[0].get("pair_type") == vocab.CUE_CUE:
                data[table][task_id + "-pop"] = [dict(r, pair_type=vocab.POPULATION, seed=None) for r in rows]
    d = _judge(LOOSE, data=data)["d"]
    assert d.rows and not any(vocab.POPULATION in row.label for row in d.rows), [row.label for row in d.rows]


def test_a_barrier_comparison_the_sweep_did_not_measure_names_the_barriers_it_lacks():
    """A sweep of quadratic paths only: (d)'s same-init comparisons are not measured, and the reason says
    which barriers are missing (not a bare "no values"), with no power line for an empty comparison."""
    data = synthetic_sweep()
    for table in (vocab.PATHS, vocab.BARRIERS):
        data[table] = {t: rows for t, rows in data[table].items()
                       if not (rows and rows[0].get("pair_type") == "cue~nocue:same-init"
                               and rows[0].get("path_kind") == vocab.LINEAR)}
    d = _judge(LOOSE, data=data)["d"]
    missing = _checks(d, "same-init linear barrier is above that of cue~cue:spawn@0")
    assert all(c.outcome == claims.MISSING and c.power == "" for c in missing)
    assert all("no cue~nocue:same-init linear barriers on" in c.reason for c in missing), [c.reason for c in missing]
    assert d.verdict == claims.NOT_TESTABLE and "(no values)" not in d.sentence()


def test_d_is_not_testable_where_the_cue_models_have_not_learnt_the_cue():
    """A cue too rare to be learnt (the cue models' randimg reliance 1 pp above chance): the cue~nocue pair is
    one more pair of models without the cue's mechanism, so its comparisons with same-data pairs cannot show
    (d)'s effect — not testable, never 'cannot be separated' or 'does not hold' — while (d) with a learnt cue
    is decided."""
    d = _judge(LOOSE, accuracy={"cue": {"randimg": 0.11, "randcue": 0.68}},
               scale={"cue~nocue:same-init": 0.1})["d"]
    same_init = [c for c in d.checks if c.group == "same-init design"]
    assert same_init and all(c.outcome == claims.UNTESTABLE and "have not learnt the cue" in c.reason
                             for c in same_init), [(c.outcome, c.reason) for c in same_init]
    assert all(0 <= c.p_other <= 1 for c in same_init)          # still in the claim's family (Holm's k)
    assert d.verdict == claims.NOT_TESTABLE and "have not learnt the cue" in d.sentence()
    assert "no cue learnt" in d.rule
    assert _judge(LOOSE)["d"].verdict == claims.HOLDS


def test_d_is_not_testable_where_the_cue_models_reliance_is_not_measured():
    """The cue models' evaluation rows missing (their randimg accuracy unmeasured) with the barriers there:
    whether they learnt the cue cannot be told, so (d)'s comparisons of cue and no-cue models are not
    testable — less evidence never gives a stronger verdict than a measured reliance of none."""
    data = synthetic_sweep()
    data[vocab.EVALUATIONS] = {t: rows for t, rows in data[vocab.EVALUATIONS].items()
                               if not t.startswith("pretrain-cue-")}
    d = _judge(LOOSE, data=data)["d"]
    same_init = [c for c in d.checks if c.group == "same-init design"]
    assert same_init and all(c.outcome == claims.UNTESTABLE and "reliance is not measured" in c.reason
                             for c in same_init), [(c.outcome, c.reason) for c in same_init]
    assert d.verdict == claims.NOT_TESTABLE


def test_the_rules_level_sets_the_alignment_gate_and_every_interval_shown_beside_a_verdict():
    """`level: 0.99`: (d)'s gate on whether alignment connects the same-data pairs reads the 99% upper bound
    (a control below `aligned_works` at 95% but not at 99% closes it), and the rows shown beside the verdicts
    carry 99% intervals, as the rule text says."""
    from orchestrator.report.stats import Estimate

    rules = dataclasses.replace(LOOSE, level=0.99)
    data = synthetic_sweep(scale={"cue~cue": 0.25})
    res = _results(data)
    b = res[vocab.BARRIERS]
    control = b[(b.pair_type == "cue~cue") & (b.path_kind == "aligned") & (b.eval_set == "nocue")
                & (b.metric == "loss") & (b.definition == "chord")].groupby("seed")["value"].mean()
    assert Estimate.of(control, 0.95).ci_high < rules.aligned_works <= Estimate.of(control, 0.99).ci_high
    d = claims.judge(res, (), rules)
    (gated,) = [c for c in {x.key: x for x in d}["d"].checks
                if c.text.startswith("on nocue, after activation alignment") and "cue~cue" in c.text]
    assert gated.outcome == claims.UNTESTABLE and "alignment does not connect" in gated.reason, gated.reason
    from scipy import stats as st

    shown = [(claim.key, row, est) for claim in d for row in claim.rows for est in (row.est, *dict(row.also).values())
             if est.n >= 2 and est.std > 0]
    assert {key for key, _, _ in shown} == {"a", "b", "c", "d"}
    for key, row, est in shown:
        half = (est.ci_high - est.ci_low) / 2
        spread = max(est.std, 1 / 397) if est is row.est and row.scale != 1 else est.std  # accuracies: one image at least
        assert math.isclose(half, st.t.ppf(0.995, est.n - 1) * spread / math.sqrt(est.n), rel_tol=1e-9), \
            (key, row.label, row.measure)


def test_models_without_the_cue_that_learnt_nothing_make_d_and_their_own_no_reliance_not_testable():
    """No-cue models at chance (12% on every set, e.g. trained 2 epochs): a cue~nocue pair pits the cue's mechanism
    against none, so (d)'s comparisons cannot show its effect, and "the no-cue model does not rely on the cue"
    holds trivially for a model that relies on nothing: both not testable, never ✓."""
    chance_level = {s: 0.12 for s in ("nocue", "cue", "randcue", "randimg")}
    judged = _judge(LOOSE, accuracy={"nocue": chance_level, "nocue_b": chance_level})
    same_init = [c for c in judged["d"].checks if c.group == "same-init design"]
    assert same_init and all(c.outcome == claims.UNTESTABLE and "learnt no mechanism of their own" in c.reason
                             for c in same_init), [(c.outcome, c.reason) for c in same_init]
    (vacuous,) = _checks(judged["a"], "the no-cue model does not rely on the cue")
    assert vacuous.outcome == claims.UNTESTABLE and "chance floor" in vacuous.reason, vacuous
    assert "randimg at chance cannot show that it does not rely" in vacuous.reason and "cost" not in vacuous.reason
    assert _judge(LOOSE)["d"].verdict == claims.HOLDS            # learnt: decided as before


def test_a_reliance_comparison_the_sweep_did_not_measure_says_so_not_no_values():
    """No naive fine-tuning in the sweep: (b)'s reliance check is not measured, and says what to plan."""
    data = synthetic_sweep()
    for table in vocab.TABLES:
        data[table] = {t: rows for t, rows in data[table].items() if "finetune-naive-" not in t}
    b = _judge(LOOSE, data=data)["b"]
    (keeps,) = _checks(b, "keeps more than")
    assert keeps.outcome == claims.MISSING and keeps.reason.startswith("not measured") and keeps.power == ""
    assert "finetune.methods" in keeps.reason and "(no values)" not in b.sentence()


def test_clean_accuracy_with_a_margin_of_zero_is_judged_for_the_accuracy_effect_its_power_line_names():
    """acc_margin 0 ("not below at all"): an undecided check is underpowered or not separated by the 5 pp
    accuracy effect of the rules (reliance_effect, as its power line says), never against an effect of
    1e-10 pp that no seeds could detect."""
    c = _judge(ClaimRules(acc_margin=0.0), accuracy={"cbft": {"nocue": 0.745}})["c"]
    clean = _checks(c, "clean accuracy is not below")
    assert clean and all("1e-10" not in k.reason and "more than 1000" not in k.reason for k in clean), \
        [k.reason for k in clean]
    assert all("5 pp needs" in k.power for k in clean)
    assert any(k.outcome == claims.OVERLAP for k in clean)      # one could have detected 5 pp: a real null


def test_accuracies_in_percent_are_refused_not_judged():
    """Percentages would sit far above every chance floor and give reliances of thousands of pp: refused, with
    the table named."""
    results = _results(synthetic_sweep())
    results[vocab.EVALUATIONS] = results[vocab.EVALUATIONS].assign(acc=lambda f: f["acc"] * 100)
    with pytest.raises(ValueError, match=r"evaluations table's `acc` has .* outside \[0, 1\]"):
        claims.judge(results, (), LOOSE)
    results[vocab.EVALUATIONS] = results[vocab.EVALUATIONS].assign(acc=lambda f: f["acc"] / 100 - 0.5)   # below 0
    with pytest.raises(ValueError, match=r"evaluations table's `acc` has .* outside \[0, 1\]"):
        claims.judge(results, (), LOOSE)


def test_each_model_of_a_sweep_is_judged_on_its_own_rows():
    """Two models in one sweep: each claim is judged once per model, on that model's rows alone. The second
    model (its rows a copy of the first's, under another name and task ids) never learnt the cue (its cue
    models' randimg at chance): its (a) does not hold while the first model's does, so pooling the models,
    or judging only the first, shows."""
    first = _results(synthetic_sweep())
    second = {}
    for table, df in first.items():
        copy = df.copy()
        if "model" in copy:
            copy["model"] = "vgg13"
        copy["task_id"] = "v-" + copy["task_id"].astype(str)
        if table == vocab.EVALUATIONS:
            cue = (copy["kind"] == vocab.PRETRAIN) & (copy["cue_proportion"] > 0) & (copy["eval_set"] == "randimg")
            copy.loc[cue, "acc"] = 0.1                           # chance: the cue never learnt
        second[table] = copy
    both = {t: pd.concat([first[t], second[t]], ignore_index=True) for t in vocab.TABLES}
    found = claims.judge(both, (), LOOSE)
    by = {(c.context, c.key): c for c in found}
    assert sorted({c.context for c in found}) == ["small_cnn", "vgg13"] and len(found) == 2 * len(claims.CLAIMS)
    assert by[("small_cnn", "a")].verdict == claims.HOLDS
    assert by[("vgg13", "a")].verdict != claims.HOLDS


def test_a_reliance_far_below_none_is_not_within_the_no_reliance_margin():
    """The guards "within ±5 pp of none" are two-sided: cue models at 0% on randimg (−10 pp against chance) are
    far from none, so neither (d)'s "they have not learnt the cue" nor (b)'s "no reliance to keep" blocks a
    comparison (a one-sided `mean <= margin` would call −10 pp "none"); (b)'s keeping is then left to the
    guard declared 2026-12-07: a reliance below none is not established above it."""
    found = _judge(LOOSE, accuracy={"cue": {"randimg": 0.0}})
    reasons = [k.reason or "" for key in ("b", "d") for k in found[key].checks]
    assert not any("have not learnt the cue" in r or "no reliance to keep or to lower" in r for r in reasons), reasons
    assert any("is not established above none" in r for r in reasons), reasons
    near = _judge(LOOSE, accuracy={"cue": {"randimg": 0.12}})               # +2 pp: within the margin, blocked
    assert any("have not learnt the cue" in (k.reason or "") for k in near["d"].checks)
    assert any("no reliance to keep or to lower" in (k.reason or "") for k in near["b"].checks)


def test_the_power_line_of_a_within_check_is_that_of_its_equivalence_test():
    """"The no-cue model does not rely on the cue (within ±5 pp)": its power line gives the margin the
    equivalence test passes at the rules' power, (t_.975 + t_.9) · SE, not the one-sided (t_.975 + t_.8) · SE."""
    results = _results(synthetic_sweep())
    ev = results[vocab.EVALUATIONS]
    nocue = ev[ev["task_id"].str.match(r"pretrain-nocue-s\d+$") & (ev["eval_set"] == "randimg")]
    diff = cmp.one_sample(nocue.sort_values("seed")["acc"].reset_index(drop=True) - 0.1, LOOSE.level)
    (a,) = [c for c in claims.judge(results, (), LOOSE) if c.key == "a"]
    (check,) = _checks(a, "the no-cue model does not rely on the cue")
    assert check.power == cmp.power_text(diff, LOOSE.no_reliance_margin, LOOSE.power, 100, " pp", within=True)
    assert check.power != cmp.power_text(diff, LOOSE.no_reliance_margin, LOOSE.power, 100, " pp")


@pytest.mark.parametrize("dropped, b_note, c_note", [
    (("finetune-", "pretrained_ft"), "naive", "cbft or naive"),   # a sweep that fine-tunes nothing
    (("finetune-cbft", "pretrained_ft_cbft"), None, "cbft"),     # fine-tuning without CBFT
])
def test_a_claim_about_fine_tuning_methods_the_sweep_did_not_run_says_what_to_add(dropped, b_note, c_note):
    """(b) needs naive fine-tuning and (c) CBFT and naive: a sweep without them says, in the claim's notes,
    which method is missing and where to add it, beside its comparisons' `not measured`."""
    data = {table: {t: rows for t, rows in by_task.items() if not any(d in t for d in dropped)}
            for table, by_task in synthetic_sweep().items()}
    found = _judge(LOOSE, data=data)
    for key, note in (("b", b_note), ("c", c_note)):
        said = [n for n in found[key].notes if n.startswith("This sweep has no model fine-tuned by")]
        if note is None:
            assert not said, said
        else:
            assert said == [f"This sweep has no model fine-tuned by {note}: add {'it' if ' ' not in note else 'them'} "
                            "to `finetune.methods`, with 'pretrained~ft' in `paths.pairs`, to test this claim."]
            assert found[key].verdict == claims.NOT_TESTABLE
    assert not [n for c in _judge(LOOSE).values() for n in c.notes if "no model fine-tuned" in n]


def test_a_mechanism_barrier_whose_endpoint_never_learnt_the_set_is_not_testable_even_as_claimed():
    """(d) on `nocue` with the cue models at 14% there (chance 10%: a cue model at a high proportion that
    never learnt clean images): cue~nocue's chord barrier (1.0) is far above the same-data control's (0.0),
    and the floor guard would let that ✓ stand (a collapse between fitted endpoints is a barrier), but this
    barrier pits a model that fits the set against one that does not: not testable, saying which endpoint.
    A path collapsing between endpoints that fit the set keeps the ✓; so does a comparison about no
    mechanism ((c)'s basin)."""
    def judged(endpoint_acc: float, mechanism: bool = True) -> claims.Check:
        judge = claims._Judge(None, ClaimRules(check_definition=None), claims.Claim("d", ""))

        class FakeSlice:
            chance, acc_step = 0.1, 0.0

            def extremes(self, pair, path, eval_set):      # the cue~nocue path collapses midway
                return (0.12, 2.2) if pair == vocab.CUE_NOCUE else (0.8, 0.5)

            def endpoint_extremes(self, pair, path, eval_set):
                fitted = endpoint_acc > 0.2
                return ((endpoint_acc, 0.9 if fitted else 2.2) if pair == vocab.CUE_NOCUE else (0.8, 0.5))

            def barrier(self, pair, path, eval_set, metric, definition):
                return pd.Series((1.0 if pair == vocab.CUE_NOCUE else 0.0) + _noise(pair), index=[0, 1, 2])
        judge.s = FakeSlice()
        learnt = claims.Mechanisms(pd.Series([0.8, 0.85, 0.9]), pd.Series([0.9, 0.9, 0.9])) if mechanism else None
        judge.barrier_above("above", (vocab.CUE_NOCUE, "linear"), (vocab.CUE_CUE, "linear"), "nocue", "g",
                            mechanism=learnt)
        return judge.c.checks[0]
    blocked = judged(0.14)
    assert blocked.outcome == claims.UNTESTABLE
    assert blocked.reason.startswith("an endpoint of cue~nocue scores 14% on nocue (its lowest; chance 10%")
    assert judged(0.6).outcome == claims.YES            # the cue model fits nocue: the collapse midway stands
    assert judged(0.14, mechanism=False).outcome == claims.YES


def test_a_claims_rows_and_its_checks_give_one_interval_where_seeds_agree_to_within_one_image():
    """Three cue models at 100% on randimg (reliance +90 pp on every seed) on sets of 100 images: the check
    judges the reliance with one image's spread at least, so the row beside it shows that interval too, not
    a point [90.0, 90.0] beside a check's [87.5, 92.5]; barrier rows (losses: no resolution) are not floored."""
    class FakeSlice:
        chance, acc_step = 0.1, 0.01
    judge = claims._Judge(FakeSlice(), ClaimRules(), claims.Claim("a", ""))
    reliance = pd.Series([0.9, 0.9, 0.9], index=[0, 1, 2])
    judge.reliance_rows("cue model", {claims.RANDIMG: reliance}, claims.CLAIM)
    (row,) = judge.c.rows
    diff = cmp.one_sample(reliance, 0.95, 0.01)
    assert (row.est.ci_low, row.est.ci_high) == pytest.approx((diff.low, diff.high)) and diff.high - diff.low > 0.04
    assert row.est.std == 0.0 and row.value() == "90.0 pp [87.5, 92.5]"
    assert judge.estimate(reliance).ci_low == pytest.approx(0.9)      # not an accuracy: the t-interval as it is


def test_d_is_not_testable_where_the_cue_models_reliance_is_not_established_above_none():
    """Two of three cue models at chance on randimg (they never learnt the cue), the third at 97%: the mean
    reliance (+29 pp) is far from none, but its interval over seeds reaches none, so whether cue and no-cue
    models differ in mechanism is open: (d)'s comparisons with same-data pairs are not testable, as keeping or
    lowering a reliance is in (b) and (c). One no-cue seed at chance blocks them too (its lowest seed)."""
    results = _results(synthetic_sweep())
    ev = results[vocab.EVALUATIONS]
    for seed in (0, 1):
        mine = ev["task_id"] == f"pretrain-cue-s{seed}"
        ev.loc[mine & (ev["eval_set"] == "randimg"), "acc"] = 0.10
    d = {c.key: c for c in claims.judge(results, (), LOOSE)}["d"]
    same_init = [c for c in d.checks if c.group == "same-init design"]
    assert same_init and all(c.outcome == claims.UNTESTABLE and "is not established above none" in c.reason
                             for c in same_init)
    assert d.verdict == claims.NOT_TESTABLE
    results = _results(synthetic_sweep())
    ev = results[vocab.EVALUATIONS]
    ev.loc[(ev["task_id"] == "pretrain-nocue-s0") & (ev["eval_set"] == "nocue"), "acc"] = 0.12
    d = {c.key: c for c in claims.judge(results, (), LOOSE)}["d"]
    assert all(c.outcome == claims.UNTESTABLE and "12% on their lowest seed" in c.reason
               for c in d.checks if c.group == "same-init design")


@pytest.mark.parametrize("who", ["cue", "nocue"])
def test_a_reliance_of_models_that_learnt_nothing_is_not_testable_in_a(who):
    """Models at chance on every test set (they learnt nothing) sit at chance on randimg whatever they would
    rely on: (a)'s randimg comparisons of them are not testable (before, with the cue models at chance, "it
    relies on the cue more than the no-cue model" was decided ✓ at +3 pp, and a claim whose models all sat at
    chance "could not be separated", "although the seeds run could detect the effect")."""
    a = _judge(LOOSE, accuracy={who: {s: 0.1 for s in ("nocue", "cue", "randcue", "randimg")}})["a"]
    more = _checks(a, "more than the no-cue model (randimg)")[0]
    assert more.outcome == claims.UNTESTABLE and "learnt nothing on a seed" in more.reason
    label = "cue models" if who == "cue" else "no-cue models"
    assert more.reason.startswith(f"the {label} learnt nothing")
    relies = _checks(a, "scores above chance on randimg")[0]
    assert (relies.outcome == claims.UNTESTABLE) == (who == "cue")
    assert a.verdict == claims.NOT_TESTABLE and "could detect the effect" not in a.sentence()


def test_a_claims_own_path_with_a_barrier_where_the_reference_has_none_is_decided_the_other_way():
    """Independently trained cue models connected (cue~cue barrier ~0.02) while naive fine-tuning has a ~1 nat
    barrier to its own parent: there is nothing to go below, but the claim's own path has a barrier of its
    own (its interval above `barrier_effect`), so (b)'s "stays below" is decided the other way, not hidden as
    not testable; a path of the claim at the reference's level stays not testable (the previous test)."""
    b = _judge(LOOSE, scale={"cue~cue": 0.05, "pretrained~ft:naive": 20.0})["b"]
    below = [c for c in b.checks if c.group == "stays connected"]
    assert below and all(c.outcome == claims.NO for c in below) and b.verdict == claims.FAILS


def test_accuracy_barriers_that_agree_more_are_never_judged_more_weakly():
    """`barrier_metric: acc`: a barrier is an accuracy drop, in steps of one image. The same-init barrier 40
    images on each of three seeds against controls at 0 was not testable (no spread, too few seeds for signs)
    while 40, 40, 41 held: with one image's spread at least, both decide alike."""
    rules = ClaimRules(acc_margin=0.2, barrier_metric="acc")
    outcomes = []
    for images in ([40, 40, 40], [40, 40, 41]):
        results = _results(synthetic_sweep())
        b = results[vocab.BARRIERS]
        for pair_type, values in (("cue~nocue:same-init", images), ("cue~cue:spawn@0", [0, 0, 0]),
                                  ("cue~cue:resubset", [0, 0, 0])):
            for seed, v in zip((0, 1, 2), values):
                mine = (b.pair_type == pair_type) & (b.path_kind == "linear") & (b.metric == "acc") & (b.seed == seed)
                b.loc[mine, "value"] = v / 397
        d = {c.key: c for c in claims.judge(results, (), rules)}["d"]
        outcomes.append({c.outcome for c in d.checks if c.group == "same-init design"})
    assert outcomes == [{claims.YES}, {claims.YES}]


def test_cbft_relying_on_the_cue_beside_methods_without_reliance_is_decided_the_other_way():
    """Naive and naive_cued fine-tuning left no reliance (randimg at chance) while CBFT relies fully (+85 pp):
    "no reliance to lower" made every reliance comparison not testable, hiding data that show the opposite of
    the claim. Where CBFT's own reliance is established above none by more than the margin, ✗ stands."""
    acc = {"naive": {"nocue": 0.80, "cue": 0.80, "randcue": 0.79, "randimg": 0.10},
           "naive_cued": {"nocue": 0.80, "cue": 0.81, "randcue": 0.80, "randimg": 0.11},
           "cbft": {"nocue": 0.78, "cue": 0.99, "randcue": 0.10, "randimg": 0.95}}
    c = _judge(LOOSE, accuracy=acc)["c"]
    lower = [k for k in c.checks if k.text.startswith("CBFT has a lower") and k.required]
    assert len(lower) == 4 and all(k.outcome == claims.NO for k in lower), [(k.text, k.outcome) for k in lower]
    assert c.verdict == claims.FAILS
    both_none = _judge(LOOSE, accuracy={**acc, "cbft": {"nocue": 0.78, "cue": 0.80, "randcue": 0.77, "randimg": 0.11}})["c"]
    assert all(k.outcome != claims.NO for k in both_none.checks if k.text.startswith("CBFT has a lower randimg"))


def test_a_failed_control_makes_c_not_testable_instead_of_dropping_it():
    """naive_cued planned (rows in the tasks table) but failed: its comparisons stay among those (c) needs, not
    measured, so (c) is not testable here and its note says the control has no results, not that it was not run."""
    data = synthetic_sweep()
    for rows in data[vocab.TASKS].values():
        if rows[0].get("method") == "naive_cued":
            rows[0]["status"] = vocab.FAILED
    for table in (vocab.EVALUATIONS, vocab.BARRIERS, vocab.PATHS):
        data[table] = {k: v for k, v in data[table].items() if "naive_cued" not in k}
    c = _judge(LOOSE, data=data)["c"]
    assert "also with the same extra cued data" in c.statement and c.verdict == claims.NOT_TESTABLE
    assert any("was planned but has no results here" in n for n in c.notes) and not any("was not run" in n for n in c.notes)
    cued = [k for k in c.checks if "naive_cued" in k.text and k.required]
    assert cued and all(k.outcome == claims.MISSING and "naive_cued was planned but has no results here" in k.reason
                        for k in cued)
    unplanned = synthetic_sweep()
    for table in vocab.TABLES:
        unplanned[table] = {k: v for k, v in unplanned[table].items() if "naive_cued" not in k}
    assert "was not run" in " ".join(_judge(LOOSE, data=unplanned)["c"].notes)


def test_a_failed_cued_control_names_itself_only_in_its_own_checks():
    """naive and naive_cued both planned, both without results: each not-measured check's reason is about its
    own control; naive's checks do not blame naive_cued."""
    data = synthetic_sweep()
    for rows in data[vocab.TASKS].values():
        if rows[0].get("method") in ("naive", "naive_cued"):
            rows[0]["status"] = vocab.FAILED
    for table in (vocab.EVALUATIONS, vocab.BARRIERS, vocab.PATHS):
        data[table] = {k: v for k, v in data[table].items() if "naive" not in k}
    c = _judge(LOOSE, data=data)["c"]
    cued = [k for k in c.checks if "naive_cued" in k.text]
    naive = [k for k in c.checks if "naive" in k.text.replace("naive_cued", "") and k not in cued]
    assert naive and cued and all(k.outcome == claims.MISSING for k in naive + cued)
    assert all("naive_cued was planned" in k.reason for k in cued)
    assert not any("naive_cued" in k.reason for k in naive), [k.reason for k in naive]


def test_keeping_the_reliance_of_a_naive_fine_tuning_that_learnt_nothing_is_not_testable():
    """A naive fine-tuning at chance on every set (it diverged) sits at chance on randimg whatever it would rely
    on: (b)'s keep check is not testable, as (a)'s randimg checks are, not ✗."""
    b = _judge(LOOSE, accuracy={"naive": {"nocue": 0.10, "cue": 0.11, "randcue": 0.10, "randimg": 0.10}})["b"]
    keep = _checks(b, "keeps more than 0.5")[0]
    assert keep.outcome == claims.UNTESTABLE and keep.reason.startswith("the naive fine-tunings learnt nothing")


def test_a_floor_reason_gives_each_path_its_own_numbers():
    """Both paths at the floor, one by its loss only (36%, 2.10), the other collapsed (0%, 4.05): the reason
    names each with its own verb and numbers, not the lower path's numbers for both."""
    judge = claims._Judge(None, ClaimRules(check_definition=None), claims.Claim("c", ""))

    class FakeSlice:
        chance, acc_step = 0.1, 0.0

        def extremes(self, pair, path, eval_set):
            return (0.0, 4.05) if pair == "a" else (0.36, 2.10)

        def endpoint_extremes(self, *_):
            return 0.8, 0.5

        def barrier(self, pair, path, eval_set, metric, definition):
            return pd.Series((1.0 if pair == "a" else 0.0) + _noise(pair), index=[0, 1, 2])
    judge.s = FakeSlice()
    judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
    reason = judge.c.checks[0].reason
    assert reason.startswith("the b path reaches a constant guess's loss on cue (lowest accuracy 36%, highest loss "
                             "2.10) and the a path collapses to chance on cue (lowest accuracy 0%, highest loss 4.05)")


def test_cbft_that_learnt_nothing_does_not_lower_the_randimg_reliance_by_collapsing():
    """CBFT at chance on every set sits at chance on randimg whatever it would rely on: "CBFT has a lower randimg
    reliance than naive" (and than LP-FT, LLRT) is not testable, not ✓ (a random cue's cost was already guarded
    by the clean-accuracy floor)."""
    c = _judge(LOOSE, accuracy={"cbft": {"nocue": 0.10, "cue": 0.11, "randcue": 0.10, "randimg": 0.10}})["c"]
    lower = _checks(c, "CBFT has a lower randimg reliance than")
    assert len(lower) >= 2 and all(k.outcome == claims.UNTESTABLE and k.reason.startswith("the cbft models learnt nothing")
                                   for k in lower), [(k.text, k.outcome, k.reason[:60]) for k in lower]


def test_a_claims_own_barrier_the_claims_count_as_none_cannot_decide_it_as_claimed():
    """(d) on a real sweep (cue proportion 1.0, `cue`): the same-init cue~nocue barrier 0.035 [0.004, 0.065] over
    a control at 0 was ✓ while two lines below the quadratic check called the same barrier "within 0.05 of
    none: no barrier to go below". A ✓ needs the claim's own path to have a barrier the claims count: not
    testable, naming it; a barrier of 0.1 keeps its ✓."""
    def judged(height: float) -> claims.Check:
        judge = claims._Judge(None, ClaimRules(check_definition=None), claims.Claim("d", ""))

        class FakeSlice:
            chance, acc_step = 0.1, 0.0

            def extremes(self, *_):
                return 0.8, 0.5

            def endpoint_extremes(self, *_):
                return 0.8, 0.5

            def barrier(self, pair, path, eval_set, metric, definition):
                return pd.Series((height if pair == "a" else 0.0) + 0.3 * _noise(pair), index=[0, 1, 2])
        judge.s = FakeSlice()
        judge.barrier_above("a above b", ("a", "linear"), ("b", "linear"), "cue", "g")
        return judge.c.checks[0]
    low = judged(0.035)
    assert low.outcome == claims.UNTESTABLE and low.reason.startswith("the a linear barrier is 0.035, within 0.05 of none")
    assert judged(0.1).outcome == claims.YES
