"""The tests one comparison of a claim is decided by (orchestrator.report.comparisons), each on small
hand-made numbers whose answer comes from the textbook formula (scipy's quantiles, Welch's degrees of
freedom written out here), never from the code under test: the paired and two-group differences and
their intervals, superiority and equivalence decided on the interval (not the mean), the power rule,
the chance floor (accuracy 1/K, loss ln K) and the two-sided level of the permutation tests."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from orchestrator.report import comparisons as cmp

LEVEL = 0.95


def test_a_paired_difference_is_the_one_sample_t_interval_of_the_per_seed_differences():
    a = pd.Series([1.0, 2.0, 3.5], index=[0, 1, 2])
    b = pd.Series([0.5, 1.2, 2.0], index=[0, 1, 2])
    d = np.array([0.5, 0.8, 1.5])                             # per seed, by hand
    mean, sd = d.mean(), math.sqrt(((d - d.mean()) ** 2).sum() / 2)
    half = scipy_stats.t.ppf(0.975, 2) * sd / math.sqrt(3)     # 2 = n - 1 degrees of freedom
    diff = cmp.compare(a, b, LEVEL)
    assert diff.paired and diff.n == 3 and diff.df == 2
    assert (diff.mean, diff.low, diff.high) == pytest.approx((mean, mean - half, mean + half))


def test_two_common_seeds_are_paired_with_one_degree_of_freedom():
    """Two seeds both sides have: a paired difference (the seed effect cancels), not two groups."""
    a = pd.Series([1.0, 5.0], index=[0, 1])
    b = pd.Series([0.5, 4.3], index=[0, 1])
    diff = cmp.compare(a, b, LEVEL)
    d = np.array([0.5, 0.7])
    half = scipy_stats.t.ppf(0.975, 1) * d.std(ddof=1) / math.sqrt(2)
    assert diff.paired and diff.n == 2 and diff.df == 1
    assert (diff.low, diff.high) == pytest.approx((0.6 - half, 0.6 + half))


def test_two_independent_groups_use_welchs_degrees_of_freedom():
    a, b = [1.0, 1.4, 0.9, 1.3], [0.2, 0.5, 0.1]
    va = np.var(a, ddof=1) / 4
    vb = np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)          # Welch-Satterthwaite, n - 1 in each denominator
    mean = np.mean(a) - np.mean(b)
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = cmp.independent(a, b, LEVEL)
    assert not diff.paired and diff.n == 3
    assert diff.df == pytest.approx(df)
    assert (diff.low, diff.high) == pytest.approx((mean - half, mean + half))


@pytest.mark.parametrize("mean, outcome", [
    (-0.01, None),        # interval ≈ [−0.033, +0.013]: straddles 0, never "below"
    (+0.01, None),        # straddles 0, never "above"
    (-0.05, cmp.NO),      # wholly below 0
    (+0.05, cmp.YES),     # wholly above 0
])
def test_superiority_is_decided_by_the_interval_not_the_mean(mean, outcome):
    diff = cmp.Diff(True, 10, mean, 0.01, 9.0, LEVEL, 0.0316)
    half = scipy_stats.t.ppf(0.975, 9) * 0.01
    assert (diff.low, diff.high) == pytest.approx((mean - half, mean + half))
    got = cmp.superiority(diff, 0.05, 0.8).outcome
    if outcome is None:
        assert got in (cmp.OVERLAP, cmp.UNTESTABLE)
    else:
        assert got == outcome


@pytest.mark.parametrize("mean, se, outcome", [
    (0.0, 0.03, None),        # interval ≈ ±0.068: the mean is inside ±0.05, the interval is not
    (0.0, 0.01, cmp.YES),     # ≈ ±0.023: inside ±0.05
    (0.2, 0.01, cmp.NO),      # wholly above +0.05
    (-0.2, 0.01, cmp.NO),     # wholly below −0.05
])
def test_equivalence_needs_the_whole_interval_inside_the_margin(mean, se, outcome):
    diff = cmp.Diff(True, 10, mean, se, 9.0, LEVEL, se * math.sqrt(10))
    got = cmp.equivalence(diff, 0.05, 0.8).outcome
    if outcome is None:
        assert got in (cmp.OVERLAP, cmp.UNTESTABLE)
    else:
        assert got == outcome


@pytest.mark.parametrize("n, se", [(3, 0.05), (10, 0.01), (30, 0.005)])
def test_the_detectable_effect_is_the_two_sided_power_formula(n, se):
    diff = cmp.Diff(True, n, 0.0, se, float(n - 1), LEVEL, se * math.sqrt(n))
    expected = (scipy_stats.t.ppf(0.975, n - 1) + scipy_stats.t.ppf(0.8, n - 1)) * se
    assert cmp.detectable(diff, 0.8) == pytest.approx(expected)


def test_the_power_rule_names_an_underpowered_comparison_by_the_two_sided_formula():
    """Undecided with se 0.02, n = 4: (t_.975 + t_.8)(3) · 0.02 ≈ 0.083 > 0.07 → underpowered; a
    one-sided quantile (≈ 0.066) would call it a real null (OVERLAP)."""
    diff = cmp.Diff(True, 4, 0.01, 0.02, 3.0, LEVEL, 0.04)
    assert (scipy_stats.t.ppf(0.975, 3) + scipy_stats.t.ppf(0.8, 3)) * 0.02 > 0.07
    assert (scipy_stats.t.ppf(0.95, 3) + scipy_stats.t.ppf(0.8, 3)) * 0.02 < 0.07
    assert cmp.superiority(diff, 0.07, 0.8).outcome == cmp.UNTESTABLE


@pytest.mark.parametrize("min_acc, max_loss, at", [
    (0.20, 0.5, True),                       # exactly chance (1/10) + floor_acc (0.10): at the floor
    (0.21, 0.5, False),
    (0.90, math.log(10) - 0.10, True),       # accuracy fine, peak loss within 0.25 of ln 10: at the floor
    (0.90, math.log(10) - 0.25, True),       # exactly ln K − floor_loss
    (0.90, math.log(10) - 0.30, False),
    (0.90, 1.0 / 0.1 - 0.5, True),           # far above ln K (a loss of 9.5 nats) is at the floor too
])
def test_the_chance_floor_is_accuracy_near_one_over_k_or_loss_near_ln_k(min_acc, max_loss, at):
    assert cmp.at_floor(min_acc, max_loss, chance=0.1, floor_acc=0.10, floor_loss=0.25) is at


@pytest.mark.parametrize("p_upper, p_lower, min_p, outcome", [
    (0.04, 0.97, 0.001, None),          # below α = 0.05 but above α/2 = 0.025: not decided
    (0.02, 0.99, 0.001, cmp.YES),
    (0.98, 0.02, 0.001, cmp.NO),
    (0.5, 0.5, 0.03, cmp.UNTESTABLE),   # no relabeling can reach α/2 = 0.025
])
def test_a_permutation_test_decides_each_tail_at_half_alpha(p_upper, p_lower, min_p, outcome):
    got = cmp.permutation(0.1, p_upper, p_lower, min_p, 0.01, LEVEL, 0.05, 0.8)
    if outcome is None:
        assert got.outcome in (cmp.OVERLAP, cmp.UNTESTABLE) and "too few models" not in got.reason
    else:
        assert got.outcome == outcome


def _welch_seeds_needed(sd_one_model: float, effect: float, power: float) -> int:
    """Models per group two independent groups need: SE of the difference √2·σ/√n on 2n − 2 df."""
    for n in range(2, 1001):
        se = math.sqrt(2) * sd_one_model / math.sqrt(n)
        if (scipy_stats.t.ppf(0.975, 2 * n - 2) + scipy_stats.t.ppf(0.8, 2 * n - 2)) * se <= effect:
            return n
    raise AssertionError("more than 1000")


def test_seeds_needed_for_two_groups_is_the_two_sample_power_formula():
    """Two groups of models with SD 0.1 each: the difference of two means has SE √2 · 0.1 / √n on 2n − 2
    degrees of freedom; the seeds per group that detect 0.1 come from that, written out here."""
    a = np.array([0.9, 1.1, 1.0, 0.8, 1.2])          # sample SD 0.158
    b = a - 0.3
    diff = cmp.independent(a, b, LEVEL)
    sd = np.std(a, ddof=1)
    assert diff.sd == pytest.approx(math.sqrt(2) * sd)
    assert cmp.seeds_needed(diff, 0.1, 0.8) == _welch_seeds_needed(sd, 0.1, 0.8)
    paired = cmp.Diff(True, 5, 0.0, 0.05, 4.0, LEVEL, 0.1)
    n = cmp.seeds_needed(paired, 0.1, 0.8)              # one-sample: SE σ/√n on n − 1 df
    for m, ok in ((n, True), (n - 1, False)):
        se = 0.1 / math.sqrt(m)
        assert bool((scipy_stats.t.ppf(0.975, m - 1) + scipy_stats.t.ppf(0.8, m - 1)) * se <= 0.1) is ok


def test_without_spread_two_seeds_suffice_and_an_interval_needs_two_not_three():
    assert cmp.seeds_needed(cmp.Diff(True, 3, 0.2, 0.0, 2.0, LEVEL, 0.0), 0.05, 0.8) == 2
    # two seeds, clearly apart: 1.0 ± t_.975(1) · 0.01 = [0.873, 1.127] lies above 0
    two = cmp.Diff(True, 2, 1.0, 0.01, 1.0, LEVEL, 0.01 * math.sqrt(2))
    assert two.low == pytest.approx(1.0 - scipy_stats.t.ppf(0.975, 1) * 0.01)
    assert cmp.superiority(two, 0.05, 0.8).outcome == cmp.YES


def test_equivalence_is_not_decided_the_other_way_while_the_interval_straddles_the_margin():
    """Mean 0.06 outside ±0.05, but its interval [0.037, 0.083] straddles +0.05: not NO. With n = 30
    and se 0.005 the seeds could detect 0.05, so it cannot be separated (OVERLAP), not underpowered."""
    straddles = cmp.Diff(True, 10, 0.06, 0.01, 9.0, LEVEL, 0.01 * math.sqrt(10))
    assert cmp.equivalence(straddles, 0.05, 0.8).outcome in (cmp.OVERLAP, cmp.UNTESTABLE)
    narrow = cmp.Diff(True, 30, 0.05, 0.005, 29.0, LEVEL, 0.005 * math.sqrt(30))
    assert (scipy_stats.t.ppf(0.975, 29) + scipy_stats.t.ppf(0.8, 29)) * 0.005 < 0.05
    assert cmp.equivalence(narrow, 0.05, 0.8).outcome == cmp.OVERLAP


def test_only_a_yes_against_a_no_is_opposite():
    D = cmp.Decision
    assert cmp.opposite(D(cmp.YES), D(cmp.NO)) and cmp.opposite(D(cmp.NO), D(cmp.YES))
    for a, b in ((cmp.YES, cmp.OVERLAP), (cmp.NO, cmp.OVERLAP), (cmp.YES, cmp.UNTESTABLE), (cmp.YES, cmp.YES)):
        assert not cmp.opposite(D(a), D(b))


def test_the_permutation_detectable_shift_is_the_two_sided_normal_formula():
    expected = (scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)) * 0.02
    assert cmp.permutation_detectable(0.02, LEVEL, 0.8) == pytest.approx(expected)


def test_an_underpowered_reason_counts_seeds_for_the_observed_distance():
    """Non-inferiority: mean −0.03 with margin 0.02 is 0.01 from the margin; superiority: a mean of
    −0.01 is 0.01 from 0 (its size, whatever its sign)."""
    wide = cmp.Diff(True, 3, -0.03, 0.05, 2.0, LEVEL, 0.05 * math.sqrt(3))
    decision = cmp.non_inferiority(wide, 0.02, 0.8, 100.0, " pp")
    assert decision.outcome == cmp.UNTESTABLE and "the observed 1 pp from the margin" in decision.reason
    below = cmp.Diff(True, 3, -0.01, 0.05, 2.0, LEVEL, 0.05 * math.sqrt(3))
    reason = cmp.superiority(below, 0.05, 0.8).reason
    need = cmp.seeds_needed(below, 0.01, 0.8)
    shown = f"more than {cmp.MAX_SEEDS}" if need > cmp.MAX_SEEDS else f"about {need}"
    assert f"{shown} the observed 0.01" in reason


def test_an_underpowered_equivalence_counts_seeds_for_the_distance_to_the_nearer_bound():
    """Equivalence decides whether the interval lies inside ±margin or outside it, so what a decision needs
    is the distance from the observed mean to the nearer bound: 0.01 for a mean of 0.04 (or -0.04) against
    a margin of 0.05, and the whole margin for a mean of 0, not the mean's own size."""
    for mean, distance in ((0.04, 0.01), (-0.04, 0.01), (0.0, 0.05), (0.07, 0.02)):
        wide = cmp.Diff(True, 3, mean, 0.05, 2.0, LEVEL, 0.05 * math.sqrt(3))
        decision = cmp.equivalence(wide, 0.05, 0.8, 100.0, " pp")
        need = cmp.seeds_needed(wide, distance, 0.8)
        shown = f"more than {cmp.MAX_SEEDS}" if need > cmp.MAX_SEEDS else f"about {need}"
        assert decision.outcome == cmp.UNTESTABLE, (mean, decision)
        assert decision.reason.endswith(f"{shown} the observed {100 * distance:.3g} pp from the margin"), \
            (mean, decision.reason)


def test_a_side_with_two_values_for_one_seed_is_not_paired():
    """Seed 0 twice on one side: the per-seed differences are not defined, so two groups (Welch)."""
    a = pd.Series([1.0, 1.2, 2.0, 3.0], index=[0, 0, 1, 2])
    b = pd.Series([0.5, 1.5, 2.5], index=[0, 1, 2])
    diff = cmp.compare(a, b, LEVEL)
    assert not diff.paired and diff.mean == pytest.approx(a.mean() - b.mean())


def test_a_paired_difference_says_how_many_seeds_it_leaves_out():
    """Seeds 0-2 on one side, 0-1 and 3 on the other: paired on 0 and 1, seeds 2 and 3 left out and said so;
    with the same seeds on both sides the text is as before."""
    a = pd.Series([1.0, 2.0, 4.0], index=[0, 1, 2])
    b = pd.Series([0.5, 1.0, 9.0], index=[0, 1, 3])
    diff = cmp.compare(a, b, LEVEL)
    assert diff.paired and diff.n == 2 and diff.unpaired == 2
    assert diff.mean == pytest.approx(((1.0 - 0.5) + (2.0 - 1.0)) / 2)
    assert diff.text().endswith("(paired, n = 2; 2 seeds without a finite value on each side left out)")
    same = cmp.compare(a, a - 1.0, LEVEL)
    assert same.unpaired == 0 and same.text().endswith("(paired, n = 3)")
    one = cmp.compare(pd.Series([1.0, 2.0, float("nan")], index=[0, 1, 2]), pd.Series([0.0, 0.0, 0.0]), LEVEL)
    assert one.n == 2 and one.text().endswith("1 seed without a finite value on each side left out)")
    inf = cmp.compare(pd.Series([1.0, 2.0, 3.0]), pd.Series([0.0, 0.5, float("inf")]), LEVEL)   # a diverged value
    assert inf.n == 2 and inf.unpaired == 1 and inf.mean == pytest.approx(1.25)
    lone = cmp.one_sample(pd.Series([0.1, 0.2, float("nan"), 0.3]), LEVEL)
    assert lone.n == 3 and lone.text(digits=2).endswith("(paired, n = 3; 1 seed without a finite value on each side left out)")


@pytest.mark.parametrize("test, margin", [("superiority", 0.0), ("non_inferiority", 0.02), ("equivalence", 0.05)])
def test_the_p_value_of_the_other_way_is_below_half_alpha_exactly_when_the_interval_decides_no(test, margin):
    """`p_other` is the one-sided t p-value of the side opposite the claim's: below α/2 where the
    interval lies wholly on that side (NO), and never for YES. Checked against scipy on a grid of
    differences, with one hand value: superiority, mean −0.05, SE 0.01, 9 df → t.cdf(−5, 9)."""
    rng = np.random.default_rng(0)
    decide = getattr(cmp, test)
    for _ in range(300):
        n = int(rng.integers(2, 12))
        diff = cmp.Diff(True, n, float(rng.normal(0, 0.06)), float(rng.uniform(0.002, 0.03)), float(n - 1), LEVEL, 0.1)
        got = decide(diff, margin, 0.8) if test != "superiority" else decide(diff, 0.05, 0.8)
        low_side = scipy_stats.t.cdf((diff.mean + margin) / diff.se, diff.df)
        high_side = scipy_stats.t.sf((diff.mean - margin) / diff.se, diff.df)
        expected = min(low_side, high_side) if test == "equivalence" else low_side
        assert got.p_other == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert (got.outcome == cmp.NO) == (got.p_other < (1 - LEVEL) / 2)
    hand = cmp.superiority(cmp.Diff(True, 10, -0.05, 0.01, 9.0, LEVEL, 0.0316), 0.05, 0.8)
    assert hand.outcome == cmp.NO and hand.p_other == pytest.approx(scipy_stats.t.cdf(-5.0, 9))


def test_a_comparison_without_an_interval_has_no_p_value_and_a_permutation_test_gives_its_lower_tail():
    assert math.isnan(cmp.superiority(cmp.Diff(True, 1, -1.0, math.nan, 1.0, LEVEL, math.nan), 0.05, 0.8).p_other)
    assert cmp.permutation(0.1, 0.99, 0.01, 0.001, 0.01, LEVEL, 0.05, 0.8).p_other == 0.01
    assert cmp.permutation(0.1, 0.01, 0.99, 0.001, 0.01, LEVEL, 0.05, 0.8).p_other == 0.99
    zero = cmp.Diff(True, 3, -0.1, 0.0, 2.0, LEVEL, 0.0)          # identical per-seed differences: no interval
    assert cmp.superiority(zero, 0.05, 0.8).outcome == cmp.UNTESTABLE
    assert math.isnan(cmp.superiority(zero, 0.05, 0.8).p_other)


def test_two_seeds_are_enough_when_the_spread_is_small():
    """Paired, per-seed SD 0.005, effect 0.1: with n = 2, (t_.975(1) + t_.8(1)) · 0.005 / √2 ≈ 0.05 ≤ 0.1,
    so 2 seeds (the fewest an interval takes), never 3."""
    assert (scipy_stats.t.ppf(0.975, 1) + scipy_stats.t.ppf(0.8, 1)) * 0.005 / math.sqrt(2) <= 0.1
    assert cmp.seeds_needed(cmp.Diff(True, 5, 0.0, 0.002, 4.0, LEVEL, 0.005), 0.1, 0.8) == 2


def test_seeds_needed_for_two_groups_counts_two_n_minus_two_degrees_of_freedom():
    """Two groups, SD of the difference unit 0.03, effect 0.1: with n = 2 per group the test has 2 df and
    (t_.975(2) + t_.8(2)) · 0.03 / √2 ≈ 0.114 > 0.1; 3 per group (4 df: ≈ 0.064) is the first that
    reaches it. (3 df for n = 2 would wrongly say 2 suffice.)"""
    def mde(n, df):
        return (scipy_stats.t.ppf(0.975, df) + scipy_stats.t.ppf(0.8, df)) * 0.03 / math.sqrt(n)
    assert mde(2, 2) > 0.1 and mde(3, 4) <= 0.1
    assert cmp.seeds_needed(cmp.Diff(False, 3, 0.0, 0.02, 4.0, LEVEL, 0.03), 0.1, 0.8) == 3


def test_a_difference_exactly_at_zero_without_spread_is_no_evidence_of_the_other_way():
    """Every per-seed difference exactly 0: not NO, and no p-value at all (NaN), so it is not one of the claim's
    comparisons Holm's step-down counts (docs/SCIENCE.md: no spread, no p-value); not testable with 3 seeds,
    not separated with 6."""
    for n, outcome in ((3, cmp.UNTESTABLE), (6, cmp.OVERLAP)):
        got = cmp.superiority(cmp.Diff(True, n, 0.0, 0.0, n - 1.0, LEVEL, 0.0), 0.05, 0.8)
        assert got.outcome == outcome and got.p_other != got.p_other


def test_an_undecided_non_inferiority_is_judged_underpowered_against_its_margin():
    """Margin 0.2 (20 pp), mean −0.2, SE 0.02 on 9 df: the interval straddles −0.2. The smallest difference
    detectable, (t_.975(9) + t_.8(9)) · 0.02 ≈ 0.063, is below the 0.2 the comparison is about: it could
    have separated, so OVERLAP (not underpowered)."""
    diff = cmp.Diff(True, 10, -0.2, 0.02, 9.0, LEVEL, 0.02 * math.sqrt(10))
    assert 0.05 < (scipy_stats.t.ppf(0.975, 9) + scipy_stats.t.ppf(0.8, 9)) * 0.02 < 0.2
    assert cmp.non_inferiority(diff, 0.2, 0.8).outcome == cmp.OVERLAP


def test_non_inferiority_needs_the_whole_interval_above_minus_the_margin():
    """Mean −1.5 pp is above −2 pp, but its interval [−2.6, −0.4] pp crosses −2 pp: not ✓."""
    diff = cmp.Diff(True, 10, -0.015, 0.005, 9.0, LEVEL, 0.005 * math.sqrt(10))
    assert diff.low < -0.02 < diff.mean
    assert cmp.non_inferiority(diff, 0.02, 0.8).outcome in (cmp.OVERLAP, cmp.UNTESTABLE)


@pytest.mark.parametrize("null_sd, outcome", [(0.1, cmp.UNTESTABLE), (0.001, cmp.OVERLAP)])
def test_an_undecided_permutation_test_is_underpowered_only_when_its_null_hides_the_effect(null_sd, outcome):
    """(z_.975 + z_.8) · null sd: 0.28 for sd 0.1 (above the 0.05 effect: underpowered), 0.0028 for 0.001
    (a real null: cannot be separated)."""
    got = cmp.permutation(0.0, 0.5, 0.5, 0.001, null_sd, LEVEL, 0.05, 0.8)
    assert got.outcome == outcome


def test_two_groups_of_unequal_spread_pool_both_variances():
    """`sd` of two groups is √2 × the pooled SD of one model, √((s_a² + s_b²) / 2): with s_a² = 0.01 and
    s_b² = 0.09 that is √2 · √0.05 = √0.10, not the spread of either group alone."""
    a = np.array([0.9, 1.0, 1.1])          # variance 0.01
    b = np.array([0.2, 0.5, 0.8])          # variance 0.09
    assert np.var(a, ddof=1) == pytest.approx(0.01) and np.var(b, ddof=1) == pytest.approx(0.09)
    assert cmp.independent(a, b, LEVEL).sd == pytest.approx(math.sqrt(0.10))
    assert cmp.independent(b, a, LEVEL).sd == pytest.approx(math.sqrt(0.10))


def test_two_groups_with_one_model_on_a_side_count_the_smaller_group():
    """`n` of two groups is the smaller group: one model against three is n = 1, an interval-less
    difference that is not testable for too few seeds (n = 1), with the difference of the means."""
    diff = cmp.independent([1.0], [0.2, 0.4, 0.6], LEVEL)
    assert diff.n == 1 and diff.mean == pytest.approx(0.6)
    decision = cmp.superiority(diff, 0.05, 0.8)
    assert decision.outcome == cmp.UNTESTABLE and "n = 1" in decision.reason


def _paired_mde(n: int, sd: float = 1.0) -> float:
    return (scipy_stats.t.ppf(0.975, n - 1) + scipy_stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n)


def test_beyond_the_cap_seeds_needed_says_more_than_the_cap_and_at_the_cap_its_number():
    """An effect between what 999 and 1000 paired seeds detect needs exactly 1000 (MAX_SEEDS): shown as
    "≈ 1000"; a 100 times smaller one needs more than the cap: MAX_SEEDS + 1, shown as "more than 1000"."""
    diff = cmp.Diff(True, 3, 0.0, 1.0 / math.sqrt(3), 2.0, LEVEL, 1.0)
    effect = (_paired_mde(999) + _paired_mde(1000)) / 2
    assert cmp.seeds_needed(diff, effect, 0.8) == cmp.MAX_SEEDS == 1000
    assert f"{effect:.3g} needs ≈ 1000 seeds" in cmp.power_text(diff, effect, 0.8)
    assert cmp.seeds_needed(diff, effect / 100, 0.8) == cmp.MAX_SEEDS + 1
    assert cmp.power_text(diff, effect / 100, 0.8).endswith("needs more than 1000 seeds")


def test_the_power_text_shows_both_numbers_on_the_claims_scale():
    """Reliance in pp (scale 100): the detectable difference (t_.975 + t_.8)(2) · SE and the effect are both
    shown in pp, with n."""
    diff = cmp.Diff(True, 3, 0.01, 0.02, 2.0, LEVEL, 0.02 * math.sqrt(3))
    mde = (scipy_stats.t.ppf(0.975, 2) + scipy_stats.t.ppf(0.8, 2)) * 0.02
    text = cmp.power_text(diff, 0.05, 0.8, 100.0, " pp")
    assert text.startswith(f"detectable ≥ {100 * mde:.3g} pp at 80% power with n = 3; 5 pp needs ")


def test_an_underpowered_reason_counts_the_seeds_that_would_detect_the_claimed_effect():
    """Superiority, SE 0.05 on n = 3, effect 0.05, observed 0.01: the reason gives the seeds the 0.05 the claim
    is about needs (seeds_needed at 0.05), then those the observed 0.01 needs; the two differ."""
    diff = cmp.Diff(True, 3, 0.01, 0.05, 2.0, LEVEL, 0.05 * math.sqrt(3))
    for_effect, for_observed = cmp.seeds_needed(diff, 0.05, 0.8), cmp.seeds_needed(diff, 0.01, 0.8)
    assert for_effect < for_observed
    reason = cmp.superiority(diff, 0.05, 0.8).reason
    assert f"the claim is about; about {for_effect} seeds would detect that" in reason


@pytest.mark.parametrize("test, mean, margin, outcome", [
    ("superiority", 0.0, 0.0, cmp.UNTESTABLE),          # every difference exactly 0: 3 seeds could detect none
    ("non_inferiority", -0.02, 0.02, cmp.UNTESTABLE),   # exactly on the margin on every seed
    ("equivalence", 0.05, 0.05, cmp.UNTESTABLE),
    ("equivalence", -0.05, 0.05, cmp.UNTESTABLE),
    ("superiority", 0.03, 0.0, cmp.UNTESTABLE),         # a point interval: 3 seeds' signs cannot decide
    ("superiority", -0.03, 0.0, cmp.UNTESTABLE),
    ("non_inferiority", 0.0, 0.02, cmp.UNTESTABLE),     # level on every seed (e.g. both at a ceiling)
    ("non_inferiority", 0.01, 0.02, cmp.UNTESTABLE),    # ahead on every seed: never more than level
    ("equivalence", 0.0, 0.05, cmp.UNTESTABLE),
])
def test_identical_per_seed_differences_are_decided_by_signs_alone(test, mean, margin, outcome):
    """Every per-seed difference equal (SE 0): the interval is the point itself and would claim a certainty
    three seeds cannot give (ties come from a coarse measure, accuracies on a few hundred images, or a
    ceiling); by signs alone three seeds cannot decide either (one-sided p = 1/8 > α/2), so not testable,
    naming the six that would; exactly on the bound the test compares with (both sides equal for "above", on
    the margin) too: three seeds whose signs could decide no difference cannot show there is none (six can:
    `test_a_tie_on_the_bound_is_a_null_once_signs_could_have_decided`)."""
    diff = cmp.Diff(True, 3, mean, 0.0, 2.0, LEVEL, 0.0)
    assert (diff.low, diff.high) == (mean, mean)
    got = cmp.superiority(diff, 0.05, 0.8) if test == "superiority" else getattr(cmp, test)(diff, margin, 0.8)
    assert got.outcome == outcome and got.p_other != got.p_other      # no p-value: not in Holm's family
    assert outcome != cmp.UNTESTABLE or (got.reason.startswith("no spread: all 3 seeds give the same difference")
                                         and got.reason.endswith("3 seeds cannot decide at the 95% level "
                                                                 "(one-sided p = 0.125), 6 would"))
    tiny = cmp.superiority(cmp.Diff(True, 3, mean, 1e-17, 2.0, LEVEL, 1.7e-17), 0.05, 0.8)   # float dust
    assert tiny.outcome == cmp.UNTESTABLE


@pytest.mark.parametrize("test, mean, margin", [("superiority", 0.0, 0.0), ("non_inferiority", -0.02, 0.02),
                                                ("equivalence", 0.05, 0.05), ("equivalence", -0.05, 0.05)])
@pytest.mark.parametrize("paired, n", [(True, 6), (False, 4), (True, 5), (False, 3)])
def test_a_tie_on_the_bound_is_a_null_once_signs_could_have_decided(test, mean, margin, paired, n):
    """Both sides equal on every seed (two barriers of 0), or on the margin: with seeds enough for signs to
    decide a difference (6 pairs, two groups of 4) they could have detected one and show none, so the two
    cannot be separated (OVERLAP, no side either way); with fewer they could detect nothing: not testable,
    as a side ahead on every seed is (a tie is never judged more firmly than a lead)."""
    diff = cmp.Diff(paired, n, mean, 0.0, float(n - 1), LEVEL, 0.0)
    got = cmp.superiority(diff, 0.05, 0.8) if test == "superiority" else getattr(cmp, test)(diff, margin, 0.8)
    decided = cmp.signs_p(n, paired) <= (1 - LEVEL) / 2
    assert got.outcome == (cmp.OVERLAP if decided else cmp.UNTESTABLE)
    assert decided or got.reason.endswith(f"{cmp.seeds_for_signs(LEVEL, paired)} would")


def test_a_permutation_p_value_exactly_at_half_alpha_decides_and_is_reachable():
    """α/2 = 0.025: a smallest reachable p-value of exactly α/2 is not "above α/2" (testable), and an
    upper-tail p-value of exactly α/2 is "at most α/2" (YES)."""
    half = (1 - LEVEL) / 2
    got = cmp.permutation(0.1, half, 1.0, half, 0.01, LEVEL, 0.05, 0.8)
    assert got.outcome == cmp.YES


def test_an_underpowered_permutation_test_keeps_its_p_value_of_the_other_way():
    """Undecided and underpowered (null SD 0.1 hides the 0.05 effect): not testable, with its lower-tail
    p-value kept (as an underpowered difference keeps its p-value) so it keeps its place in a claim's family."""
    got = cmp.permutation(0.0, 0.4, 0.6, 0.001, 0.1, LEVEL, 0.05, 0.8)
    assert got.outcome == cmp.UNTESTABLE and "underpowered" in got.reason and got.p_other == 0.6
    diff = cmp.superiority(cmp.Diff(True, 3, 0.01, 0.05, 2.0, LEVEL, 0.05 * math.sqrt(3)), 0.05, 0.8)
    assert diff.outcome == cmp.UNTESTABLE and diff.p_other == diff.p_other


def test_seeds_that_detect_exactly_the_claimed_effect_are_not_underpowered():
    """The rule is "underpowered when the smallest detectable difference *exceeds* the effect": with the
    effect set to exactly (t_.975 + t_.8)(2) · SE, the seeds detect it, so an undecided comparison cannot be
    separated (OVERLAP); the permutation test likewise at exactly (z_.975 + z_.8) · null SD."""
    diff = cmp.Diff(True, 3, 0.01, 0.05, 2.0, LEVEL, 0.05 * math.sqrt(3))
    effect = (scipy_stats.t.ppf(0.5 + LEVEL / 2, 2.0) + scipy_stats.t.ppf(0.8, 2.0)) * 0.05
    assert cmp.detectable(diff, 0.8) == effect
    assert cmp.superiority(diff, effect, 0.8).outcome == cmp.OVERLAP
    shift = cmp.permutation_detectable(0.02, LEVEL, 0.8)
    assert cmp.permutation(0.0, 0.5, 0.5, 0.001, 0.02, LEVEL, shift, 0.8).outcome == cmp.OVERLAP


def test_a_difference_without_an_interval_shows_no_interval_and_a_positive_one_its_sign():
    """n = 1: the difference alone, no "[nan, nan]"; a difference is signed (+ for a above b)."""
    one = cmp.independent([1.0], [0.4, 0.6], LEVEL)
    assert one.text() == "+0.500 (two groups, n = 1)"
    assert cmp.Diff(True, 2, -0.25, 0.0, 1.0, LEVEL, 0.0).text(100.0, " pp", 1) == "-25.0 pp [-25.0, -25.0] (paired, n = 2)"


def test_a_permutation_test_without_an_observed_statistic_is_missing():
    """No observed statistic (NaN): not measured (MISSING), never decided, whatever the p-values say."""
    got = cmp.permutation(float("nan"), 0.001, 0.999, 0.001, 0.01, LEVEL, 0.05, 0.8)
    assert got.outcome == cmp.MISSING


def test_a_permutation_lower_tail_p_value_exactly_at_half_alpha_decides_the_other_way():
    """The two tails are read alike ("YES when its upper-tail p-value is at most α/2, NO when the lower-tail one
    is"): a lower-tail p-value of exactly α/2 decides the other way, as an upper-tail one of exactly α/2 decides
    YES, and it is the p-value of the other way the claim's family reads."""
    half = (1 - LEVEL) / 2
    got = cmp.permutation(-0.1, 1.0, half, half, 0.01, LEVEL, 0.05, 0.8)
    assert got.outcome == cmp.NO and got.p_other == half


def test_a_permutation_null_without_spread_is_not_testable():
    """Every relabeling gives the same statistic (a constant or all-zero barrier matrix): both tails are 1,
    and "cannot be separated" would claim the models could have shown a difference; not testable."""
    flat = cmp.permutation(0.0, 1.0, 1.0, 0.001, 0.0, LEVEL, 0.05, 0.8)
    assert flat.outcome == cmp.UNTESTABLE and flat.reason.startswith("no spread: every relabeling")
    assert cmp.permutation(0.0, 0.6, 0.5, 0.001, 0.001, LEVEL, 0.05, 0.8).outcome == cmp.OVERLAP


def test_a_comparison_without_spread_claims_no_power_it_does_not_have():
    """Every seed the same nonzero difference: not testable (no spread), so its power line cannot say that
    the seeds run could detect the effect ("detectable ≥ 0 … needs ≈ 2 seeds"). All exactly 0 (both sides
    equal on every seed, e.g. two barriers of 0) is not testable with 2 seeds and a real null, not separated
    (OVERLAP), with 6, which says why instead of claiming that power: a zero spread gives none to judge by."""
    tie = cmp.Diff(True, 2, 0.9, 0.0, 1.0, 0.95, 0.0)
    assert cmp.superiority(tie, 0.05, 0.8).outcome == cmp.UNTESTABLE
    zero = cmp.Diff(True, 2, 0.0, 0.0, 1.0, 0.95, 0.0)
    for diff in (tie, zero):
        text = cmp.power_text(diff, 0.05, 0.8, 100.0, " pp")
        assert "no spread" in text and "needs" not in text and "detectable" not in text
    six = cmp.Diff(True, 6, 0.0, 0.0, 5.0, 0.95, 0.0)
    for decide in (lambda d: cmp.superiority(d, 0.05, 0.8), lambda d: cmp.non_inferiority(d, 0.0, 0.8, effect=0.05)):
        assert decide(zero).outcome == cmp.UNTESTABLE                     # 2 seeds' signs could decide nothing
        got = decide(six)
        assert got.outcome == cmp.OVERLAP and got.reason.startswith("both sides are equal on every one of the 6 seeds")
    spread = cmp.Diff(True, 3, 0.0, 0.01, 2.0, 0.95, 0.01 * math.sqrt(3))     # 0 on average only: no such reason
    got = cmp.superiority(spread, 0.5, 0.8)
    assert got.outcome == cmp.OVERLAP and got.reason == ""


@pytest.mark.parametrize("paired, n, decided", [(True, 5, False), (True, 6, True), (False, 3, False), (False, 4, True)])
def test_enough_seeds_without_spread_are_decided_by_the_exact_sign_test(paired, n, decided):
    """Every seed the same difference (a ceiling: every cue model at 100% on randimg): the exact sign test
    decides once n seeds' one-sided p (0.5^n paired, 1/C(2n, n) for two groups of n) reaches α/2 = 0.025:
    6 pairs or two groups of 4, never fewer. Its direction follows the distances from the test's bounds, the
    same for each test, so a side ahead on every seed is never judged more weakly than a tie; a NO carries
    its p-value (in Holm's family), a YES the other way's 1."""
    def same(mean):
        return cmp.Diff(paired, n, mean, 0.0, float(n - 1), LEVEL, 0.0)
    want_p = 0.5 ** n if paired else 1 / math.comb(2 * n, n)
    assert cmp.signs_p(n, paired) == want_p and (want_p <= 0.025) == decided
    assert cmp.seeds_for_signs(LEVEL, paired) == (6 if paired else 4)
    cases = [(cmp.superiority(same(0.9), 0.05, 0.8), cmp.YES), (cmp.superiority(same(-0.9), 0.05, 0.8), cmp.NO),
             (cmp.non_inferiority(same(0.0), 0.02, 0.8), cmp.YES), (cmp.non_inferiority(same(0.01), 0.02, 0.8), cmp.YES),
             (cmp.non_inferiority(same(-0.03), 0.02, 0.8), cmp.NO), (cmp.equivalence(same(0.0), 0.05, 0.8), cmp.YES),
             (cmp.equivalence(same(0.07), 0.05, 0.8), cmp.NO)]
    for got, want in cases:
        assert got.outcome == (want if decided else cmp.UNTESTABLE), (got, want)
        if decided:
            assert got.p_other == (want_p if want == cmp.NO else 1.0)


@pytest.mark.parametrize("n", [3, 6])
def test_an_equivalence_test_said_to_have_the_rules_power_has_it(n):
    """"Within ±m" at a true difference of 0 passes only where both bounds clear the margin: the spread at which
    `detectable(within=True)` equals the margin gives about the rules' power (simulated, seeded), where the
    one-sided formula's spread gives well below it; seeds_needed counts by the same formula."""
    margin, power, rng = 0.05, 0.8, np.random.default_rng(7)
    mult = {w: cmp.t_quantile(0.5 + LEVEL / 2, n - 1) + cmp.t_quantile((1 + power) / 2 if w else power, n - 1)
            for w in (True, False)}

    def simulated(within: bool) -> float:
        sd = margin / (mult[within] / math.sqrt(n))
        diff = cmp.Diff(True, n, 0.0, sd / math.sqrt(n), n - 1.0, LEVEL, sd)
        assert math.isclose(cmp.detectable(diff, power, within=within), margin)
        assert cmp.seeds_needed(diff, margin * 1.0001, power, within=within) == n
        draws = [cmp.equivalence(cmp.one_sample(pd.Series(rng.normal(0.0, sd, n)), LEVEL), margin, power).outcome
                 for _ in range(4000)]
        return draws.count(cmp.YES) / len(draws)
    assert simulated(True) >= 0.76
    assert simulated(False) <= 0.70
    se = margin / cmp.t_quantile(0.5 + LEVEL / 2, n - 1) * 1.01    # an interval of a mean of 0 just past ±margin
    wide = cmp.Diff(True, n, 0.0, se, n - 1.0, LEVEL, se * math.sqrt(n))
    decision = cmp.equivalence(wide, margin, power)
    assert decision.outcome == cmp.UNTESTABLE and decision.reason.startswith("underpowered"), decision


def test_an_interval_that_only_touches_zero_is_not_decided():
    """An interval whose lower end is exactly 0 (with spread) does not lie above 0: not ✓."""
    t = cmp.t_quantile(0.5 + LEVEL / 2, 2.0)
    touching = cmp.Diff(True, 3, t * 0.01, 0.01, 2.0, LEVEL, 0.01 * math.sqrt(3))
    assert touching.low == 0.0
    assert cmp.superiority(touching, 0.001, 0.8).outcome != cmp.YES


def test_a_bound_that_would_round_to_zero_is_shown_with_the_digits_that_tell_its_side():
    """A ✓ whose lower bound is +0.02 pp must not read [0.0, 24.5], as if an interval touching 0 had passed."""
    t = cmp.t_quantile(0.5 + LEVEL / 2, 2.0)
    diff = cmp.Diff(True, 3, 0.123, (0.123 - 0.0002) / t, 2.0, LEVEL, 0.1)
    assert cmp.superiority(diff, 0.05, 0.8).outcome == cmp.YES
    assert diff.text(100.0, " pp", 1).startswith("+12.3 pp [+0.02, 24.")
    assert (cmp.bound_text(0.0, 1), cmp.bound_text(-0.04, 1), cmp.bound_text(24.53, 1)) == ("0.0", "-0.04", "24.5")


def test_two_seeds_make_an_undecided_comparison_underpowered_with_a_finite_detectable_difference():
    """n = 2 (paired differences 0.10 and 0.02, effect 0.05): t with 1 df gives a wide interval, undecided; the
    smallest detectable difference is finite ((t_.975 + t_.8)(1) · SE ≈ 0.56), so the comparison is
    underpowered (not testable, with its figure), never "cannot be separated" with a detectable of nan."""
    diff = cmp.paired(pd.Series([0.10, 0.02]), pd.Series([0.0, 0.0]), LEVEL)
    expected = (scipy_stats.t.ppf(0.975, 1) + scipy_stats.t.ppf(0.8, 1)) * diff.se
    assert cmp.detectable(diff, 0.8) == pytest.approx(expected)
    found = cmp.superiority(diff, 0.05, 0.8)
    assert found.outcome == cmp.UNTESTABLE and f"is {expected:.3g}, above" in found.reason, found


def test_the_power_text_of_an_equivalence_uses_its_own_detectable_margin():
    """`power_text(..., within=True)`: the margin an equivalence test passes, (t_.975 + t_.9) · SE, the figure
    its seed count is for; the one-sided (t_.975 + t_.8) · SE would understate it."""
    diff = cmp.Diff(True, 4, 0.01, 0.02, 3.0, LEVEL, 0.04)
    within = (scipy_stats.t.ppf(0.975, 3) + scipy_stats.t.ppf(0.9, 3)) * 0.02
    text = cmp.power_text(diff, 0.05, 0.8, within=True)
    assert text.startswith(f"detectable ≥ {within:.3g} at 80% power with n = 4"), text
    assert cmp.power_text(diff, 0.05, 0.8).startswith(
        f"detectable ≥ {(scipy_stats.t.ppf(0.975, 3) + scipy_stats.t.ppf(0.8, 3)) * 0.02:.3g} ")


def test_a_difference_is_judged_with_a_spread_of_at_least_the_measures_resolution():
    """Accuracies come in steps of one image: seeds that agree to within a step agree as far as the measure can
    tell. `floor` is the least spread of one difference (paired: each difference's; two groups: one model from
    each), so seeds identical on every image are judged as if they differed by one, not as a point."""
    step = 1 / 400
    same = pd.Series([0.9, 0.9, 0.9])
    floored = cmp.one_sample(same, LEVEL, step)
    assert floored.sd == step and floored.se == pytest.approx(step / math.sqrt(3))
    assert floored.low == pytest.approx(0.9 - scipy_stats.t.ppf(0.975, 2) * step / math.sqrt(3))
    spread = pd.Series([0.9, 0.91, 0.89])
    assert cmp.one_sample(spread, LEVEL, step).sd == pytest.approx(spread.std())       # above the floor: as measured
    a, b = pd.Series([0.5, 0.5, 0.5], index=[0, 1, 2]), pd.Series([0.4, 0.4], index=[7, 8])
    groups = cmp.compare(a, b, LEVEL, step)
    assert not groups.paired and groups.se == pytest.approx(math.sqrt(step ** 2 / 2 / 3 + step ** 2 / 2 / 2))
    assert cmp.one_sample(same, LEVEL).sd == 0.0                                        # no floor: none


@pytest.mark.parametrize("test", ["superiority", "non_inferiority", "equivalence"])
def test_seeds_that_agree_more_never_weaken_a_decision(test):
    """Monotone in the seeds' agreement (a review found the opposite: three cue models at 99.75%, 100%, 100% on
    randimg held, at 100% on all three the same check was not testable, by signs alone). The same per-seed
    differences shrunk towards their mean, down to no spread at all, decide at least as strongly."""
    rank = {cmp.YES: 2, cmp.NO: 2, cmp.OVERLAP: 1, cmp.UNTESTABLE: 0}
    step = 1 / 397
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 8))
        mean = float(rng.choice([-0.3, -0.05, -0.01, 0.0, 0.004, 0.03, 0.2, 0.9]))
        noise = rng.normal(0, float(rng.choice([0.002, 0.01, 0.05])), n)
        seen = []
        for shrink in (1.0, 0.5, 0.1, 0.01, 0.0):
            diff = cmp.one_sample(pd.Series(mean + shrink * (noise - noise.mean())), LEVEL, step)
            decision = {"superiority": lambda d: cmp.superiority(d, 0.05, 0.8),
                        "non_inferiority": lambda d: cmp.non_inferiority(d, 0.02, 0.8),
                        "equivalence": lambda d: cmp.equivalence(d, 0.05, 0.8)}[test](diff)
            seen.append(decision.outcome)
        ranks = [rank[o] for o in seen]
        assert ranks == sorted(ranks), (n, mean, noise, seen)
        decided = {o for o in seen if o in (cmp.YES, cmp.NO)}
        assert len(decided) <= 1, (n, mean, noise, seen)          # never one way, then the other


def test_one_common_seed_is_not_paired_but_two_groups():
    """Seeds {0, 1} on one side and {1, 2} on the other share one seed: a paired difference of one pair has no
    interval, so the two groups are compared as such (Welch, n = 2), and decided."""
    a = pd.Series([10.0, 10.2], index=[0, 1])
    b = pd.Series([0.0, 0.1], index=[1, 2])
    diff = cmp.compare(a, b, LEVEL)
    assert not diff.paired and diff.n == 2
    assert diff.mean == pytest.approx(a.mean() - b.mean())
    assert cmp.superiority(diff, 0.05, 0.8).outcome == cmp.YES


@pytest.mark.parametrize("level, paired", [(0.75, True), (0.875, True), (0.95, True), (0.95, False), (0.99, True)])
def test_the_seeds_the_sign_test_names_are_enough_to_decide(level, paired):
    """`seeds_for_signs` is the fewest seeds whose signs decide at the level: a difference without spread on that
    many seeds is decided, also where their p-value is exactly α/2 (0.5^3 at 0.75, 0.5^4 at 0.875)."""
    n = cmp.seeds_for_signs(level, paired)
    same = cmp.Diff(paired, n, 0.5, 0.0, float(n - 1), level, 0.0)
    assert cmp.superiority(same, 0.05, 0.8).outcome == cmp.YES
    fewer = cmp.Diff(paired, n - 1, 0.5, 0.0, float(n - 2), level, 0.0)
    assert cmp.superiority(fewer, 0.05, 0.8).outcome == cmp.UNTESTABLE


def test_an_undecided_equivalence_is_underpowered_by_the_two_bound_formula():
    """An equivalence interval straddling +margin, with (t_.975 + t_.8)·SE below the margin but
    (t_.975 + t_.9)·SE above it: an equivalence test's power needs both bounds to clear, so it is
    underpowered (not testable), not "cannot be separated"."""
    n, margin, power = 6, 0.05, 0.8
    one = cmp.t_quantile(0.975, n - 1) + cmp.t_quantile(power, n - 1)
    two = cmp.t_quantile(0.975, n - 1) + cmp.t_quantile((1 + power) / 2, n - 1)
    se = margin / ((one + two) / 2)
    assert one * se < margin < two * se
    diff = cmp.Diff(True, n, 0.5 * margin, se, n - 1.0, LEVEL, se * math.sqrt(n))
    assert diff.low < margin < diff.high                   # undecided
    decision = cmp.equivalence(diff, margin, power)
    assert decision.outcome == cmp.UNTESTABLE and decision.reason.startswith("underpowered"), decision


def test_a_bound_is_shown_with_up_to_four_more_digits_until_its_side_shows():
    """A bound that rounds to 0 at one decimal gets the digits that tell its side, up to four more (+0.00004,
    −0.0003); one smaller still stops there, at 0 with its sign, rather than growing without end."""
    assert cmp.bound_text(0.00004, 1) == "+0.00004" and cmp.bound_text(-0.0003, 1) == "-0.0003"
    assert cmp.bound_text(1e-9, 1) == "+0.00000"


def test_non_inferiority_passes_a_difference_below_zero_whose_interval_stays_above_minus_the_margin():
    """Mean −0.5 pp, SE 0.2 pp on 9 df: the interval [−0.95, −0.05] pp lies below 0 but wholly above −2 pp, so
    a is not worse than b by more than the 2 pp margin: ✓ (the margin is what the test allows a to lose)."""
    diff = cmp.Diff(True, 10, -0.005, 0.002, 9.0, LEVEL, 0.002 * math.sqrt(10))
    assert -0.02 < diff.low < diff.high < 0
    assert cmp.non_inferiority(diff, 0.02, 0.8).outcome == cmp.YES


def test_an_undecided_non_inferiority_of_no_margin_judges_its_power_by_the_effect_the_caller_names():
    """Margin 0 ("not below"), the interval [−0.019, +0.023] straddles 0; the smallest difference detectable,
    (t_.975(19) + t_.8(19)) · 0.01 ≈ 0.030, is below an effect of 0.05, so the seeds could have separated
    (OVERLAP), and above an effect of 0.01 (underpowered: not testable, naming that effect)."""
    diff = cmp.Diff(True, 20, 0.002, 0.01, 19.0, LEVEL, 0.01 * math.sqrt(20))
    mde = (scipy_stats.t.ppf(0.975, 19) + scipy_stats.t.ppf(0.8, 19)) * 0.01
    assert diff.low < 0 < diff.high and 0.01 < mde < 0.05
    assert cmp.non_inferiority(diff, 0.0, 0.8, effect=0.05).outcome == cmp.OVERLAP
    small = cmp.non_inferiority(diff, 0.0, 0.8, effect=0.01)
    assert small.outcome == cmp.UNTESTABLE and "above the 0.01 the claim is about" in small.reason
