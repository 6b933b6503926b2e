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
