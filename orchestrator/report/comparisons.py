"""How one comparison of a claim is decided: a difference with its interval, the test the claim's
rule names (superiority, non-inferiority within a margin, equivalence within a margin), the power
the seeds run give it, and the guards that make it not testable instead of decided.

Differences are paired within seed where both sides have a value for the same seeds (the designs
share a model or a data seed there), else of two independent groups (Welch). Outcomes:

    YES        decided as the claim states (the interval clears 0, or the margin)
    NO         decided the other way
    OVERLAP    cannot be separated: the interval straddles 0 (or the margin), although the seeds run
               could have detected the effect the claim is about
    UNTESTABLE the comparison cannot discriminate here, with the reason: too few seeds, a power too low
               for the claimed effect, both paths at the chance floor, two barrier definitions disagreeing
    MISSING    not measured by this sweep

Each decision with an interval carries `p_other`, the one-sided p-value of "the other way" (NO at the
comparison's own level exactly when it is below α/2): a claim's comparisons use it to hold their rate of
false "does not hold" (`verdicts.family_wise`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd

YES, NO, OVERLAP, UNTESTABLE, MISSING = "yes", "no", "overlap", "untestable", "missing"
MARKS = {YES: "✓", NO: "✗", OVERLAP: "≈", UNTESTABLE: "∅", MISSING: "—"}
MAX_SEEDS = 1000                   # "seeds needed" is shown as "more than" this beyond it


@lru_cache(maxsize=4096)
def t_quantile(q: float, df: float) -> float:
    from scipy import stats as scipy_stats

    return float(scipy_stats.t.ppf(q, df))


@dataclass(frozen=True)
class Diff:
    """a − b: paired within seed (`n` pairs) or of two independent groups (Welch; `n` the smaller
    group), with its two-sided interval at `level`. `sd` is the spread of one unit (the per-seed
    difference, or √2 × the pooled SD of one model) from which seeds-needed is computed. `unpaired`:
    the seeds left out of a paired difference for want of a finite value on each side (shown in its text)."""

    paired: bool
    n: int
    mean: float
    se: float
    df: float
    level: float
    sd: float
    unpaired: int = 0

    @property
    def low(self) -> float:
        return self.mean - self.half if self.n >= 2 else math.nan

    @property
    def high(self) -> float:
        return self.mean + self.half if self.n >= 2 else math.nan

    @property
    def half(self) -> float:
        return t_quantile(0.5 + self.level / 2, self.df) * self.se if self.n >= 2 else math.nan

    def text(self, scale: float = 1.0, unit: str = "", digits: int = 3) -> str:
        if not self.n:
            return "—"
        interval = "" if self.n < 2 else f" [{bound_text(scale * self.low, digits)}, {bound_text(scale * self.high, digits)}]"
        kind = "paired" if self.paired else "two groups"
        left_out = "" if not self.unpaired else \
            f"; {self.unpaired} seed{'s' if self.unpaired > 1 else ''} without a finite value on each side left out"
        return f"{scale * self.mean:+.{digits}f}{unit}{interval} ({kind}, n = {self.n}{left_out})"


def bound_text(x: float, digits: int) -> str:
    """An interval's bound at `digits` decimals, more where those round a nonzero bound to 0 ([+0.02, 24.5], not [0.0, 24.5])."""
    text, more = f"{x:.{digits}f}", 0
    while x == x and x != 0 and float(text) == 0 and more < 4:
        more += 1
        text = f"{x:+.{digits + more}f}"
    return text


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def paired(a: pd.Series, b: pd.Series, level: float, floor: float = 0.0) -> Diff:
    """a − b over the keys (seeds) both have; `floor`: the least spread of one difference (`compare`)."""
    common = a.index.intersection(b.index)
    d = _finite((a[common].astype(float) - b[common].astype(float)).to_numpy())
    n = int(d.size)
    sd = max(float(d.std(ddof=1)), floor) if n > 1 else math.nan
    return Diff(True, n, float(d.mean()) if n else math.nan, sd / math.sqrt(n) if n > 1 else math.nan,
                float(max(n - 1, 1)), level, sd)


def independent(a, b, level: float, floor: float = 0.0) -> Diff:
    """Welch's difference of means of two groups; `floor` (`compare`): each group's variance at least floor² / 2."""
    a, b = _finite(a), _finite(b)
    na, nb = a.size, b.size
    if not na or not nb:
        return Diff(False, 0, math.nan, math.nan, 1.0, level, math.nan)
    mean = float(a.mean() - b.mean())
    if na < 2 or nb < 2:
        return Diff(False, min(na, nb), mean, math.nan, 1.0, level, math.nan)
    var_a, var_b = (max(float(x.var(ddof=1)), floor ** 2 / 2) for x in (a, b))
    va, vb = var_a / na, var_b / nb
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1)) if va + vb > 0 else float(na + nb - 2)
    pooled = math.sqrt((var_a + var_b) / 2)
    return Diff(False, min(na, nb), mean, se, float(df), level, math.sqrt(2) * pooled)


def compare(a: pd.Series, b: pd.Series, level: float, floor: float = 0.0) -> Diff:
    """Paired within seed where both sides have at least two common seeds, else independent; a paired
    difference counts the seeds it leaves out (without a finite value on each side: not measured, NaN, inf).
    `floor`: the measure's resolution (an accuracy's: one image), the least spread of one difference: seeds that
    agree within it agree as far as the measure can tell (docs/SCIENCE.md)."""
    seeds_a, seeds_b = (s[np.isfinite(s.to_numpy(dtype=np.float64))].index for s in (a, b))
    common = seeds_a.intersection(seeds_b)
    if len(common) >= 2 and a.index.is_unique and b.index.is_unique:
        return replace(paired(a, b, level, floor), unpaired=len(a.index.union(b.index).difference(common)))
    return independent(a.to_numpy(), b.to_numpy(), level, floor)


def one_sample(values: pd.Series, level: float, floor: float = 0.0) -> Diff:
    """The mean of `values` (per seed) as a difference from 0; seeds without a finite value are counted as
    left out; `floor` as for `compare`."""
    kept = int(np.isfinite(values.to_numpy(dtype=np.float64)).sum())
    return replace(paired(values, pd.Series(0.0, index=values.index), level, floor), unpaired=len(values) - kept)


# ----------------------------------------------------------------------------------------------
# Power
# ----------------------------------------------------------------------------------------------

def detectable(diff: Diff, power: float, within: bool = False) -> float:
    """The smallest true difference this comparison detects with probability `power` (two-sided test
    at `diff.level`): (t_{1-α/2} + t_{power}) · SE; NaN below n = 2 or without spread. `within`: the
    smallest margin an equivalence test ("within ±m") passes with probability `power` when the true
    difference is 0, where both bounds must clear: (t_{1-α/2} + t_{(1+power)/2}) · SE."""
    if diff.n < 2 or not diff.se == diff.se:
        return math.nan
    return _multiplier(diff.level, power, diff.df, within) * diff.se


def _multiplier(level: float, power: float, df: float, within: bool) -> float:
    return t_quantile(0.5 + level / 2, df) + t_quantile((1 + power) / 2 if within else power, df)


def seeds_needed(diff: Diff, effect: float, power: float, within: bool = False) -> int | None:
    """Seeds (pairs, or models per group) a comparison with this spread needs to detect `effect`
    at `power` (`within`: to pass an equivalence margin `effect`, as `detectable`); None without a spread
    to go by. Capped at MAX_SEEDS + 1."""
    if not diff.sd == diff.sd or effect <= 0:
        return None
    if diff.sd == 0:
        return 2
    for n in range(2, MAX_SEEDS + 1):
        df = n - 1 if diff.paired else 2 * n - 2
        se = diff.sd / math.sqrt(n) if diff.paired else diff.sd / math.sqrt(n)
        if _multiplier(diff.level, power, df, within) * se <= effect:
            return n
    return MAX_SEEDS + 1


def power_text(diff: Diff, effect: float, power: float, scale: float = 1.0, unit: str = "",
               within: bool = False) -> str:
    """`detectable ≥ 0.12 at 80% power with n = 3; 0.05 needs ≈ 14 seeds` (`within`: of an equivalence
    test, whose margin `effect` is what it must pass)."""
    if diff.n < 2:
        return f"n = {diff.n}: no spread to judge power"
    if no_spread(diff):     # decided by signs alone (`_by_signs`), or not at all
        return (f"n = {diff.n} with no spread (every seed the same difference): no power to judge; signs alone "
                f"decide from {seeds_for_signs(diff.level, diff.paired)} seeds")
    mde = detectable(diff, power, within)
    need = seeds_needed(diff, effect, power, within)
    need_text = "?" if need is None else (f"more than {MAX_SEEDS}" if need > MAX_SEEDS else f"≈ {need}")
    return (f"detectable ≥ {scale * mde:.3g}{unit} at {power:.0%} power with n = {diff.n}; "
            f"{scale * effect:.3g}{unit} needs {need_text} seeds")


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    outcome: str
    reason: str = ""           # why not testable (UNTESTABLE) or what is missing (MISSING)
    p_other: float = math.nan  # one-sided p-value of the other way (module docstring); NaN without an interval

    def blocked(self, reason: str) -> Decision:
        """This comparison made not testable by a guard (the chance floor, two definitions disagreeing):
        its p-value stays, so it keeps its place among a claim's comparisons (`verdicts.family_wise`)."""
        return replace(self, outcome=UNTESTABLE, reason=reason)


def _below(x: float, diff: Diff) -> float:
    """P(T ≤ x / SE) for Student's t with the difference's df: the one-sided p-value that the true
    difference lies below the observed one shifted by x (x = mean: below 0)."""
    if diff.se == 0:
        return 0.0 if x < 0 else 1.0
    from scipy.special import stdtr        # Student's t CDF as a ufunc: scipy.stats.t.cdf without its overhead

    return float(stdtr(diff.df, x / diff.se))


def _undecided(diff: Diff, effect: float, power: float, scale: float, unit: str,
               distance: float | None = None, within: bool = False) -> Decision:
    """OVERLAP when the seeds could have detected `effect`, else UNTESTABLE (underpowered). `distance`: how far
    the observed difference is from what the test compares it with (0, or the margin)."""
    mde = detectable(diff, power, within)
    if mde == mde and mde > effect:
        observed = abs(diff.mean) if distance is None else abs(distance)
        where = "" if distance is None else " from the margin"
        return Decision(UNTESTABLE, f"underpowered: with n = {diff.n} the smallest difference detectable at "
                                    f"{power:.0%} power is {scale * mde:.3g}{unit}, above the "
                                    f"{scale * effect:.3g}{unit} the claim is about; {_seeds(diff, effect, power, within)} "
                                    f"seeds would detect that, {_seeds(diff, observed, power)} the observed "
                                    f"{scale * observed:.3g}{unit}{where}")
    return Decision(OVERLAP)


def _seeds(diff: Diff, effect: float, power: float, within: bool = False) -> str:
    need = seeds_needed(diff, effect, power, within)
    return "?" if need is None else (f"more than {MAX_SEEDS}" if need > MAX_SEEDS else f"about {need}")


NO_SPREAD = 1e-9    # a standard error at most this (times |difference| ≥ 1) is none: a point (`_by_signs` decides)


def no_spread(diff: Diff) -> bool:
    return diff.se <= NO_SPREAD * max(1.0, abs(diff.mean))


def signs_p(n: int, paired: bool) -> float:
    """The exact one-sided p-value of every one of n seeds on one side, by signs alone: 0.5^n for paired
    differences; 1 / C(2n, n) for two groups (n the smaller: exact for groups of n each, a bound otherwise)."""
    return 0.5 ** n if paired else 1.0 / math.comb(2 * n, n)


def seeds_for_signs(level: float, paired: bool) -> int:
    """The fewest seeds whose signs alone decide at `level` (at 0.95: 6 pairs, or two groups of 4)."""
    n = 1
    while signs_p(n, paired) > (1.0 - level) / 2:
        n += 1
    return n


def _by_signs(diff: Diff, distances: tuple[float, ...], scale: float, unit: str, tie: str) -> Decision:
    """A difference without spread: every seed gives the same d, so its t-interval would be a point, claiming a
    certainty the seeds cannot give (ties come from a coarse measure, e.g. accuracies on a few hundred images,
    or a ceiling). It is decided by signs alone, the exact sign test: `distances` are d's distances from the
    bounds the test compares with, > 0 on the claim's side. YES where all are > 0, NO where one is < 0, once
    the seeds' signs reach α/2 (`signs_p`); not testable below that, naming the seeds that would decide. On a
    bound exactly (`tie`: both sides equal on every seed, for "above"): OVERLAP, no side either way, once as
    many seeds would have decided a difference by signs (fewer could detect none: not testable, like any tie)."""
    p, yes = signs_p(diff.n, diff.paired), all(d > 0 for d in distances)
    if p <= (1.0 - diff.level) / 2:
        if not any(d < 0 for d in distances) and any(d == 0 for d in distances):
            return Decision(OVERLAP, tie)
        return Decision(YES, p_other=1.0) if yes else Decision(NO, p_other=p)
    return Decision(UNTESTABLE, f"no spread: all {diff.n} seeds give the same difference ({scale * diff.mean:+.3g}{unit}), "
                                f"so its interval is a point; by signs alone {diff.n} seeds cannot decide at the "
                                f"{diff.level:.0%} level (one-sided p = {p:.3g}), "
                                f"{seeds_for_signs(diff.level, diff.paired)} would")


def _precheck(diff: Diff) -> Decision | None:
    """MISSING or UNTESTABLE where the values cannot be judged at all; None where the test goes on."""
    if not diff.n:
        return Decision(MISSING, "no values")
    if diff.n < 2 or not diff.se == diff.se:
        return Decision(UNTESTABLE, f"too few seeds: n = {diff.n} (an interval needs 2)")
    return None


_EQUAL = "both sides are equal on every one of the {n} seeds (a difference of 0, no spread): no difference either way"
_ON_MARGIN = "every one of the {n} seeds sits exactly on the margin (no spread): no side of it either way"


def superiority(diff: Diff, effect: float, power: float, scale: float = 1.0, unit: str = "") -> Decision:
    """Is a above b? YES when the interval of a − b lies above 0, NO when below."""
    early = _precheck(diff)
    if early:
        return early
    if no_spread(diff):
        return _by_signs(diff, (diff.mean,), scale, unit, _EQUAL.format(n=diff.n))
    p = _below(diff.mean, diff)
    if diff.low > 0:
        return Decision(YES, p_other=p)
    if diff.high < 0:
        return Decision(NO, p_other=p)
    return replace(_undecided(diff, effect, power, scale, unit), p_other=p)


def non_inferiority(diff: Diff, margin: float, power: float, scale: float = 1.0, unit: str = "",
                    effect: float | None = None) -> Decision:
    """Is a not below b by more than `margin`? YES when the interval of a − b lies above −margin, NO
    when it lies below −margin; an interval that crosses −margin cannot separate the two. `effect`: the
    effect its power is judged for (default the margin; a caller with a margin of 0 names its own)."""
    early = _precheck(diff)
    if early:
        return early
    if no_spread(diff):
        return _by_signs(diff, (diff.mean + margin,), scale, unit, (_ON_MARGIN if margin else _EQUAL).format(n=diff.n))
    p = _below(diff.mean + margin, diff)
    if diff.low > -margin:
        return Decision(YES, p_other=p)
    if diff.high < -margin:
        return Decision(NO, p_other=p)
    effect = margin if effect is None else effect
    return replace(_undecided(diff, max(effect, 1e-12), power, scale, unit, diff.mean + margin), p_other=p)


def equivalence(diff: Diff, margin: float, power: float, scale: float = 1.0, unit: str = "") -> Decision:
    """Is |a − b| below `margin` (two one-sided tests)? YES when the interval lies inside ±margin, NO
    when it lies wholly outside; otherwise not separated."""
    early = _precheck(diff)
    if early:
        return early
    if no_spread(diff):
        return _by_signs(diff, (margin - diff.mean, diff.mean + margin), scale, unit, _ON_MARGIN.format(n=diff.n))
    p = min(_below(diff.mean + margin, diff), _below(margin - diff.mean, diff))   # wholly below -m, or above m
    if -margin < diff.low and diff.high < margin:
        return Decision(YES, p_other=p)
    if diff.low > margin or diff.high < -margin:
        return Decision(NO, p_other=p)
    # a decision either way is about the nearer bound: inside ±margin (YES) or outside it (NO)
    return replace(_undecided(diff, max(margin, 1e-12), power, scale, unit, margin - abs(diff.mean), within=True),
                   p_other=p)


# ----------------------------------------------------------------------------------------------
# Guards of barrier comparisons
# ----------------------------------------------------------------------------------------------

def at_floor(min_acc: float, max_loss: float, chance: float, floor_acc: float, floor_loss: float) -> bool:
    """A path (its mean lowest accuracy and mean highest loss over its pairs) collapses to chance."""
    chance_loss = math.log(1.0 / chance) if chance > 0 else math.inf
    return (min_acc == min_acc and min_acc <= chance + floor_acc) or \
        (max_loss == max_loss and max_loss >= chance_loss - floor_loss)


def opposite(a: Decision, b: Decision) -> bool:
    """Two decisions of one comparison (two barrier definitions) that go opposite ways."""
    return {a.outcome, b.outcome} == {YES, NO}


# ----------------------------------------------------------------------------------------------
# Permutation tests (claim (e): the models' groups relabeled)
# ----------------------------------------------------------------------------------------------

def permutation(observed: float, p_upper: float, p_lower: float, min_p: float, null_sd: float, level: float,
                effect: float | None, power: float, scale: float = 1.0, unit: str = "") -> Decision:
    """Is the statistic above its null distribution? YES when its upper-tail p-value is at most α/2,
    NO when the lower-tail one is (the two tails of the rules' two-sided level); not testable when no
    relabeling of these models could reach α/2, or when the null's spread hides the claimed effect.
    `effect` None: the rules declare no effect size for this statistic, so an undecided test can be
    neither "underpowered" nor "cannot be separated" (that needs an effect the models could have shown):
    not testable, saying so."""
    half = (1.0 - level) / 2.0
    if not observed == observed:
        return Decision(MISSING, "no values")
    if min_p > half:
        return Decision(UNTESTABLE, f"too few models: the smallest p-value relabeling them can give is {min_p:.3g}, "
                                    f"above α/2 = {half:.3g}")
    if p_upper <= half:
        return Decision(YES, p_other=p_lower)
    if p_lower <= half:
        return Decision(NO, p_other=p_lower)
    if null_sd <= NO_SPREAD * max(1.0, abs(observed)):
        return Decision(UNTESTABLE, "no spread: every relabeling of the models gives the same statistic (their "
                                    "barriers do not differ), so the test cannot discriminate")
    if effect is None:
        return Decision(UNTESTABLE, "undecided, and the rules declare no effect size for this statistic, so "
                                    "whether these models could have shown one cannot be judged", p_lower)
    mde = permutation_detectable(null_sd, level, power)
    if mde == mde and mde > effect:
        return Decision(UNTESTABLE, f"underpowered: with these models the smallest difference detectable at "
                                    f"{power:.0%} power is {scale * mde:.3g}{unit} (from the spread of the "
                                    f"permutation null), above the {scale * effect:.3g}{unit} the claim is about",
                        p_lower)
    return Decision(OVERLAP, p_other=p_lower)


def permutation_detectable(null_sd: float, level: float, power: float) -> float:
    """The smallest shift of the statistic a permutation test detects at `power` (normal approximation
    of its null): (z_{1-α/2} + z_power) · the null's SD."""
    from scipy import stats as scipy_stats

    half = (1.0 - level) / 2.0
    return (float(scipy_stats.norm.ppf(1.0 - half)) + float(scipy_stats.norm.ppf(power))) * null_sd
