"""The paper's claims (a)–(d), each judged against its controls by the rules of the spec's `claims:`
section (`orchestrator.spec.claim_rules.ClaimRules`), declared before any result.

Every comparison is a difference with its interval at the rules' level — paired within seed where
both sides share a seed (they share a model or its data there), else of independent groups — decided
by the test the claim's words need: "above" (superiority), "not below … by more than a margin"
(non-inferiority), "within a margin of" (equivalence). A comparison that cannot discriminate is *not
testable here*, never decided: too few seeds, a power too low for the effect the claim is about,
a lower side sitting at the chance floor, or two barrier definitions deciding opposite ways. How
checks make a verdict (a comparison decided the other way fails a claim only across the claim's
comparisons: Holm, `verdicts.family_wise`): `orchestrator.report.verdicts`; the tests:
`orchestrator.report.comparisons`.

The report shows the claims as its first section with the rules beside them; `mmc-sweep claims
[SPEC] [key=value ...]` runs a spec with `run_sweep` (tasks cached and shared with `mmc-sweep run`)
and prints them with the power of each comparison (`report.print_claims`).

Why one module: the claims (a)-(e) side by side, each a short function naming its comparisons and
controls, so a reader sees every claim's rule in one place (`verdicts` and `comparisons` hold the
machinery).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd

from orchestrator import vocab
from orchestrator.report import comparisons as cmp
from orchestrator.report import mechanism_map as mmap
from orchestrator.report import stats
from orchestrator.report.stats import Estimate
from orchestrator.report.verdicts import (CLAIM, CONTROL, FAILS, HOLDS, NOT_TESTABLE, PP, RANDCUE, RANDIMG,
                                          REFERENCE, UNSEPARATED, Check, Claim, Row, Slice, check,
                                          family_wise)
from orchestrator.spec.claim_rules import ClaimRules, learnt_nothing
# the fine-tuning methods the claims are about (`tasks.finetune.FINETUNE_METHODS`)
from tasks.settings.finetune import CBFT, CBFT_BARRIER, CBFT_INVARIANCE, LLRT, LPFT, NAIVE, NAIVE_CUED

MARKS = cmp.MARKS
YES, NO, OVERLAP, UNTESTABLE, MISSING = cmp.YES, cmp.NO, cmp.OVERLAP, cmp.UNTESTABLE, cmp.MISSING
ABLATIONS = (CBFT_BARRIER, CBFT_INVARIANCE)          # CBFT's ablations, shown beside it
EMPTY = pd.Series(dtype=float)

__all__ = ["Check", "Claim", "ClaimRules", "FAILS", "HOLDS", "MARKS", "NOT_TESTABLE", "Row", "UNSEPARATED",
           "claims_text", "judge"]


class Mechanisms(NamedTuple):
    """What (d)'s cue~nocue comparisons need of their two kinds of model: that the cue models learnt the cue
    (their randimg reliance, per seed) and that the no-cue models learnt a mechanism of their own (their clean
    accuracy, per seed)."""
    cue_reliance: pd.Series
    nocue_clean: pd.Series


class _Judge:
    """Checks of one claim on one context, by the rules."""

    def __init__(self, s: Slice, rules: ClaimRules, claim: Claim):
        self.s, self.r, self.c = s, rules, claim

    @property
    def acc_step(self) -> float:
        """The least spread an accuracy difference is judged with: one image (`Slice.acc_step`; 0 without a slice)."""
        return self.s.acc_step if self.s is not None else 0.0

    @property
    def barrier_step(self) -> float:
        """The least spread a barrier difference is judged with: one image where barriers are accuracy drops
        (`barrier_metric: acc`), none for losses (nats have no step)."""
        return self.acc_step if self.r.barrier_metric == "acc" else 0.0

    def estimate(self, values, accuracy: bool = False) -> Estimate:
        """Mean and interval of `values` at the rules' level, as every row and gate of the claim shows them;
        `accuracy`: an accuracy or reliance, its interval built with one image's spread at least, as the
        checks beside it are (`acc_step`)."""
        return Estimate.of(values, self.r.level, self.acc_step if accuracy else 0.0)

    def reliance_rows(self, label: str, rel: dict[str, pd.Series], role: str) -> None:
        for measure in (RANDIMG, RANDCUE):
            if measure in rel:
                self.c.rows.append(Row(label, measure, self.estimate(rel[measure], accuracy=True), role, PP, " pp"))

    def power(self, diff: cmp.Diff, effect: float, scale: float = 1.0, unit: str = "", within: bool = False) -> str:
        return cmp.power_text(diff, effect, self.r.power, scale, unit, within) if diff.n else ""   # nothing measured

    # -- accuracies and reliance (fractions, shown in pp) --
    def above(self, text: str, a: pd.Series, b: pd.Series | None, group: str | None,
              clean: tuple[dict, dict] | None = None, reliant: tuple[str, pd.Series] | None = None,
              none: pd.Series | None = None, trained: dict[str, pd.DataFrame] | None = None) -> None:
        """a above b (or above 0 without b), paired by seed; `clean`: the clean accuracies (label -> per seed)
        of the models on a's side and on b's side, where a random cue's cost is compared (`_clean_floor`);
        `reliant`: (label, reliance) of the model whose reliance the claim says is kept or lowered
        (`_no_reliance`); `trained`: (label -> accuracies per seed and set) of the models whose reliance is
        compared, which must have learnt something (`_learnt_nothing`). The first guard that blocks gives the
        reason."""
        step = self.acc_step
        diff = cmp.one_sample(a, self.r.level, step) if b is None else cmp.compare(a, b, self.r.level, step)
        decision = _first_block(cmp.superiority(diff, self.r.reliance_effect, self.r.power, PP, " pp"),
                                lambda d: self._learnt_nothing(d, trained or {}),
                                lambda d: self._clean_floor(d, *(clean or ({}, {}))),
                                lambda d: self._no_reliance(d, reliant, none, b))
        decision = _unmeasured(decision)
        self.c.checks.append(check(text, decision, diff, group, scale=PP, unit=" pp",
                                   power=self.power(diff, self.r.reliance_effect, PP, " pp")))

    def _learnt_nothing(self, decision: cmp.Decision, trained: dict[str, pd.DataFrame]) -> cmp.Decision:
        """A model that learnt nothing (on some seed, every test set within `floor_acc` of chance:
        `claim_rules.learnt_nothing`) shows no reliance on the cue, nor its absence: its randimg sits at
        chance because it sits at chance everywhere. A comparison of its reliance is not testable."""
        if not trained or not self.s.chance:
            return decision
        low = {}
        for label, acc in trained.items():
            best = acc.max(axis=1) if len(acc) and acc.shape[1] else pd.Series(dtype=float)
            if len(best) and learnt_nothing(float(best.min()), self.s.chance, self.r.floor_acc):
                low[label] = float(best.min())
        if not low:
            return decision
        who = " and the ".join(low)
        return decision.blocked(f"the {who} learnt nothing on a seed (best accuracy on any "
                                f"test set {max(low.values()):.0%}, within {PP * self.r.floor_acc:g} pp of chance "
                                f"{self.s.chance:.0%}): a model at chance everywhere sits at chance on randimg whatever "
                                "it would rely on, so its reliance cannot be told")

    def _clean_floor(self, decision: cmp.Decision, higher: dict, lower: dict, every: bool = False,
                     measure: str = RANDCUE) -> cmp.Decision:
        """A random cue can cost a model only the clean accuracy it has above chance: where a model's clean
        accuracy sits at the chance floor (≤ chance + `floor_acc` on any seed: that seed's cost in the paired
        difference is capped), its cost is capped near 0 whatever it relies on. A capped side is
        underestimated, so it blocks the decisions it could have made (on the higher side ✗, ≈ and
        undecided; on the lower side ✓, ≈ and undecided) and a decision the cap works against stands;
        both sides there block all. `every`: only both sides there block (clean accuracy's
        non-inferiority: one side there alone is a loss). The reason replaces "underpowered": more seeds
        would not help. `measure`: what the check compares, which the reason names (randimg: a model at the
        floor may sit at chance on it because it learnt nothing, not because it ignores the cue)."""
        if not (higher or lower) or not self.s.chance:
            return decision
        floor = self.s.chance + self.r.floor_acc

        def at_floor(side: dict) -> dict:
            return {label: float(acc.min()) for label, acc in side.items() if len(acc) and acc.min() <= floor}
        hi, lo = at_floor(higher), at_floor(lower)
        if every:
            if not (hi and lo):
                return decision
            return decision.blocked(" and ".join(f"{_whose(label)} ({acc:.0%})" for label, acc in {**hi, **lo}.items())
                                    + f" clean accuracies (lowest seed) both sit at the chance floor ({self.s.chance:.0%} + "
                                    f"{PP * self.r.floor_acc:g} pp): neither has accuracy to lose")
        if not ((hi and lo) or (hi and decision.outcome != YES) or (lo and decision.outcome != NO)):
            return decision
        low = {**hi, **lo}
        who = " and ".join(f"{_whose(label)} ({acc:.0%})" for label, acc in low.items()) + \
            " clean accuracies (lowest seed) sit" if len(low) > 1 else \
            "".join(f"{_whose(label)} clean accuracy ({acc:.0%} on its lowest seed) sits" for label, acc in low.items())
        why = "a model there has no accuracy above chance for a random cue to cost, so the cost cannot show its reliance"
        if measure == RANDIMG:
            why = ("a model without clean accuracy above chance may sit at chance on randimg because it learnt nothing "
                   "usable, not because it ignores the cue, so randimg at chance cannot show that it does not rely on it")
        return decision.blocked(f"{who} at the chance floor ({self.s.chance:.0%} + "
                                f"{PP * self.r.floor_acc:g} pp): {why}")

    def not_below(self, text: str, a: pd.Series, b: pd.Series, margin: float, group: str | None,
                  clean: tuple[dict, dict] | None = None) -> None:
        """a not below b by more than `margin`; `clean`: the two sides' clean accuracies (a's, b's), not
        testable where both sit at the chance floor (one there alone is decided: a collapse is a loss)."""
        diff = cmp.compare(a, b, self.r.level, self.acc_step)
        effect = margin or self.r.reliance_effect        # a margin of 0: the accuracy effect the claims are about
        decision = _first_block(cmp.non_inferiority(diff, margin, self.r.power, PP, " pp", effect),
                                lambda d: self._clean_floor(d, *(clean or ({}, {})), every=True))
        decision = _unmeasured(decision)
        self.c.checks.append(check(f"{text} (margin {PP * margin:g} pp)", decision, diff, group, scale=PP, unit=" pp",
                                   power=self.power(diff, effect, PP, " pp")))

    def _no_reliance(self, decision: cmp.Decision, reliant: tuple[str, pd.Series] | None,
                     none: pd.Series | None = None, other: pd.Series | None = None) -> cmp.Decision:
        """Keeping a model's reliance (b) or lowering it more than another method does (c) needs a reliance
        there: where that model's mean reliance index is within `no_reliance_margin` of none (0, or the mean
        of `none`: for a random cue's cost, the no-cue models' cost, which a patch costs by occlusion), both
        sides sit at the no-reliance floor and the comparison cannot show the claim's effect (not testable).
        A ✗ stands where the `other` side (CBFT's reliance, in (c)) is established above that floor by more
        than the margin: a method that relies on the cue beside one that does not is evidence against."""
        if reliant is None:
            return decision
        if decision.outcome == NO and other is not None and len(other):
            base = float(none.mean()) if none is not None and len(none) else 0.0
            own = cmp.one_sample(other - base, self.r.level, self.acc_step)
            if own.n >= 2 and own.low > self.r.no_reliance_margin:
                return decision
        label, values = reliant
        if none is not None and not len(none):
            return decision         # no measure of "none" (no no-cue model): the guard cannot tell
        floor = float(none.mean()) if none is not None else 0.0
        mean = float(values.mean()) if len(values) else math.nan
        of = f" of the no-cue models' {PP * floor:.1f} pp" if floor else " of none"
        if abs(mean - floor) <= self.r.no_reliance_margin:
            return decision.blocked(f"{label}'s reliance is {PP * mean:+.1f} pp, within ±{PP * self.r.no_reliance_margin:g} "
                                    f"pp{of}: there is no reliance to keep or to lower, so the comparison cannot "
                                    "show the claim's effect")
        above = cmp.one_sample(values - floor, self.r.level, self.acc_step)   # the reliance itself, decided?
        if above.n < 2 or above.low > 0:
            return decision
        over = " over the no-cue models'" if floor else ""
        return decision.blocked(f"{label}'s reliance{over}, {PP * above.mean:+.1f} pp [{PP * above.low:.1f}, "
                                f"{PP * above.high:.1f}] (n = {above.n}), is not established above none: whether "
                                "there is a reliance to keep or to lower is open, so the comparison cannot show "
                                "the claim's effect")

    def near_zero(self, text: str, a: pd.Series, margin: float, group: str | None,
                  clean: dict[str, pd.Series] | None = None, measure: str = RANDCUE) -> None:
        diff = cmp.one_sample(a, self.r.level, self.acc_step)
        # a capped cost moves the difference either way: at the floor it blocks every outcome
        decision = _first_block(cmp.equivalence(diff, margin, self.r.power, PP, " pp"),
                                lambda d: self._clean_floor(d, clean or {}, clean or {}, measure=measure))
        decision = _unmeasured(decision)
        self.c.checks.append(check(f"{text} (within ±{PP * margin:g} pp)", decision, diff, group, scale=PP,
                                   unit=" pp", power=self.power(diff, margin, PP, " pp", within=True)))

    # -- barriers --
    def values(self, pair: tuple[str, str], eval_set: str, definition: str | None = None) -> pd.Series:
        return self.s.barrier(*pair, eval_set, self.r.barrier_metric, definition or self.r.barrier_definition)

    def barrier_above(self, text: str, higher: tuple[str, str], lower: tuple[str, str], eval_set: str,
                      group: str | None, reference: bool = False, mechanism: Mechanisms | None = None) -> None:
        """`higher`'s barrier (pair type, path) above `lower`'s on `eval_set`, with the guards; `reference`:
        `higher` is the reference the claim's path should go below (not the claim's own path); `mechanism`:
        what the cue and no-cue models learnt, where the comparison asks whether they differ beyond
        same-data pairs (`_no_mechanism`)."""
        r = self.r
        top, bottom = self.values(higher, eval_set), self.values(lower, eval_set)
        diff = cmp.compare(top, bottom, r.level, self.barrier_step)
        decision = _first_block(cmp.superiority(diff, r.barrier_effect, r.power),
                                lambda d: self._no_mechanism(d, mechanism),
                                lambda d: self._not_fitted(d, higher, eval_set) if mechanism else d,
                                lambda d: self._not_fitted(d, lower, eval_set) if reference else d,
                                lambda d: self._guard(d, higher, lower, eval_set, reference),
                                lambda d: self._nothing_below(d, higher, top, bottom) if reference else
                                self._no_barrier(d, higher, top))
        if decision.outcome == MISSING:         # say which barriers the sweep lacks, not only "no values"
            absent = [f"{p} {path}" for (p, path), v in ((higher, top), (lower, bottom)) if not np.isfinite(v).any()]
            decision = replace(decision, reason=f"not measured: no {' and no '.join(absent)} barriers on {eval_set} "
                               "in this sweep (paths.pairs and paths.kinds plan them)" if absent else
                               f"not measured: no seed has a finite barrier on both sides on {eval_set}")
        self.c.checks.append(check(text, decision, diff, group,
                                   power=self.power(diff, r.barrier_effect)))

    def _no_mechanism(self, decision: cmp.Decision, mechanisms: Mechanisms | None) -> cmp.Decision:
        """(d) asks whether a model that relies on the cue and one that does not are less connected than two
        models trained on the same data. Where the cue models' mean randimg reliance is within
        `no_reliance_margin` of none (a cue too rare to be learnt), both are models without the cue's
        mechanism, the cue~nocue pair is one more same-data pair, and the comparison cannot show the claim's
        effect (not testable; noise would decide it). Where that reliance is not measured (no finite randimg
        accuracy of a cue model), whether they learnt the cue cannot be told: not testable either; so where its
        interval over seeds reaches none (not established). Where the no-cue models' clean accuracy on their
        lowest seed sits at the chance floor (within `floor_acc` of chance), they learnt no mechanism there: a
        pair of a cue model and an untrained one cannot show it either."""
        if mechanisms is None:
            return decision
        reliance, clean = (s[np.isfinite(s.to_numpy(dtype=float))] for s in mechanisms)
        if not len(reliance):
            return decision.blocked("the cue models' randimg reliance is not measured (no cue model's accuracy on "
                                    "randimg in the evaluations table): whether they learnt the cue, and so differ "
                                    "in mechanism from the no-cue models, cannot be told; rerun their pretrain tasks "
                                    "(`mmc-sweep run`)")
        mean = float(reliance.mean())
        if abs(mean) <= self.r.no_reliance_margin:
            return decision.blocked(f"the cue models' randimg reliance is {PP * mean:+.1f} pp, within "
                                    f"±{PP * self.r.no_reliance_margin:g} pp of none: they have not learnt the cue, so "
                                    "a cue and a no-cue model do not differ in mechanism here and the comparison "
                                    "cannot show the claim's effect")
        above = cmp.one_sample(reliance, self.r.level, self.acc_step)
        if above.n >= 2 and not above.low > 0:
            return decision.blocked(f"the cue models' randimg reliance, {PP * above.mean:+.1f} pp [{PP * above.low:.1f}, "
                                    f"{PP * above.high:.1f}] (n = {above.n}), is not established above none: whether "
                                    "they learnt the cue, and so differ in mechanism from the no-cue models, is open, "
                                    "so the comparison cannot show the claim's effect")
        if self.s.chance and len(clean) and learnt_nothing(float(clean.min()), self.s.chance, self.r.floor_acc):
            return decision.blocked(f"the no-cue models' clean accuracy is {float(clean.min()):.0%} on their lowest "
                                    f"seed, within {PP * self.r.floor_acc:g} pp of chance ({self.s.chance:.0%}): they "
                                    "learnt no mechanism of their own there, so a cue~nocue pair pits the cue's "
                                    "mechanism against none and the comparison cannot show the claim's effect")
        return decision

    def _not_fitted(self, decision: cmp.Decision, higher: tuple[str, str], eval_set: str) -> cmp.Decision:
        """(d) asks whether two models, each fitting a set, are less connected on it than two models trained on
        the same data. Where an endpoint of the higher side's pairs itself sits at the chance floor on the set
        (a cue model at a high cue proportion on clean images), that model has not learnt the set: its path's
        barrier there measures a model that fits the set against one that does not, not two minimizers of it,
        and its chord rises or falls with how wrong the unfitted endpoint is. Not testable, whatever the
        outcome (a ✓ included: the floor guard lets a collapse *between* fitted endpoints stand, not this).
        The same holds for the claim's own path going below a reference ((b) naive's path to its parent, (d)
        the quadratic one): a fine-tuning that learnt nothing has not stayed in or left a basin of the set."""
        s, r = self.s, self.r
        if not s.chance:
            return decision
        acc, _ = s.endpoint_extremes(*higher, eval_set)
        if not learnt_nothing(acc, s.chance, r.floor_acc):     # by accuracy: a confident model errs at high loss
            return decision
        return decision.blocked(f"an endpoint of {higher[0]} scores {acc:.0%} on {eval_set} (its lowest; chance "
                                f"{s.chance:.0%}, within {PP * r.floor_acc:g} pp): that model has not learnt "
                                f"{eval_set}, so the barrier there is not between two models that fit it; judge it on "
                                "a set both fit (another barrier set, or another cue proportion)")

    def _no_barrier(self, decision: cmp.Decision, higher: tuple[str, str], top: pd.Series) -> cmp.Decision:
        """A claim's own path decided above a control (✓) needs a barrier of its own: where its mean barrier is
        within `barrier_effect` of none, the barrier the claims count as none (`_nothing_below` calls it so) cannot
        show the path is not linearly connected, or has left a basin, however far its interval is from the
        control's; not testable (a ✓ only: the other outcomes do not rest on it)."""
        none = self._counted_as_none(higher, top)
        if decision.outcome != YES or not none:
            return decision
        return decision.blocked(f"{none}: a barrier the claims count as none cannot show the claim's effect, however "
                                "far it is from the control's")

    def _counted_as_none(self, pair: tuple[str, str], values: pd.Series) -> str:
        """"the <pair> <path> barrier is <mean>, within <barrier_effect> of none" where the mean of `values` is a
        barrier the claims count as none; "" otherwise (or without values)."""
        mean = float(values.mean()) if len(values) else math.nan
        return f"the {pair[0]} {pair[1]} barrier is {mean:.3f}, within {self.r.barrier_effect:g} of none" \
            if abs(mean) <= self.r.barrier_effect else ""

    def _nothing_below(self, decision: cmp.Decision, higher: tuple[str, str], top: pd.Series,
                       bottom: pd.Series) -> cmp.Decision:
        """Going below a reference barrier (`higher`'s values `top`) within `barrier_effect` of none is not testable;
        a ✗ stands where the claim's own path (`bottom`) has a barrier of its own, its interval above
        `barrier_effect`: a path with a barrier where the reference has none is evidence against the claim."""
        none = self._counted_as_none(higher, top)
        if not none:
            return decision
        own = cmp.one_sample(bottom, self.r.level)
        if decision.outcome == NO and own.n >= 2 and own.low > self.r.barrier_effect:
            return decision
        return decision.blocked(f"{none}: there is no barrier to go below, so the comparison cannot show the claim's "
                                "effect")

    def _guard(self, decision: cmp.Decision, higher, lower, eval_set: str, reference: bool = False) -> cmp.Decision:
        r, s = self.r, self.s
        lo_acc, hi_loss = s.extremes(*lower, eval_set)
        hi_acc, top_loss = s.extremes(*higher, eval_set)
        unmeasured = [side[0] for side, ext in ((lower, (lo_acc, hi_loss)), (higher, (hi_acc, top_loss)))
                      if all(v != v for v in ext)]
        if unmeasured and s.chance:
            return decision.blocked(f"the chance floor is not measured for {' and '.join(unmeasured)} on {eval_set} "
                                    "(no accuracy or loss along the path in the paths table): a collapsed path "
                                    "cannot be told from a barrier; rerun its path tasks (`mmc-sweep run`)")
        # A collapsed path's barrier is capped (chance loss minus its endpoints' loss), an underestimate. The
        # lower side there: a control (the claim's path should exceed it) gives no baseline, all blocked; the
        # claim's own path (`reference`: it should stay below the higher side) is not below it, so a ✗ stands.
        # The higher side there: a ✓ stands (the cap works against it), the rest is no evidence. Both: all.
        lower_floor = cmp.at_floor(lo_acc, hi_loss, s.chance, r.floor_acc, r.floor_loss)
        higher_floor = cmp.at_floor(hi_acc, top_loss, s.chance, r.floor_acc, r.floor_loss)
        if lower_floor and (higher_floor or not reference or decision.outcome != NO):
            fix = self._floor_fix(eval_set, *((lower, higher) if higher_floor else (lower,)))
            def how(acc: float, loss: float, who: str) -> str:       # each path its own verb and numbers
                verb = "collapses to chance" if learnt_nothing(acc, s.chance, r.floor_acc) else \
                    "reaches a constant guess's loss"
                return f"the {who} path {verb} on {eval_set} (lowest accuracy {acc:.0%}, highest loss {loss:.2f})"
            said = how(lo_acc, hi_loss, lower[0]) + (f" and {how(hi_acc, top_loss, higher[0])}" if higher_floor else "")
            return decision.blocked(f"{said}, against chance {s.chance:.0%} and ln K = {math.log(1 / s.chance):.2f}: "
                                    f"the barrier is then chance loss minus the endpoints' own loss; {fix}")
        if higher_floor and decision.outcome != YES:
            verb = "collapses to chance" if learnt_nothing(hi_acc, s.chance, r.floor_acc) else \
                "reaches a constant guess's loss"
            return decision.blocked(f"the {higher[0]} path {verb} on {eval_set} (lowest accuracy "
                                    f"{hi_acc:.0%}, highest loss {top_loss:.2f} against ln K = "
                                    f"{math.log(1 / s.chance):.2f}): its barrier is then chance loss minus its "
                                    "endpoints' own loss, which can fall below a real bump, so a comparison going "
                                    f"against the claim is no evidence; {self._floor_fix(eval_set, higher)}")
        if r.check_definition:
            other = cmp.compare(self.values(higher, eval_set, r.check_definition),
                                self.values(lower, eval_set, r.check_definition), r.level, self.barrier_step)
            second = cmp.superiority(other, r.barrier_effect, r.power)
            if cmp.opposite(decision, second):
                return decision.blocked(f"the {r.barrier_definition} and {r.check_definition} barriers decide "
                                        f"opposite ways ({other.text()} by {r.check_definition}): the endpoints' own "
                                        "losses decide the comparison")
        return decision

    def _floor_fix(self, eval_set: str, *sides: tuple[str, str]) -> str:
        """What would make a path at the chance floor testable: where an endpoint itself sits there (a model that
        never learnt the set, e.g. a cue model at a high proportion on clean images), no path between such models
        can be, so the fix is the models; else the path collapses between them."""
        r, s = self.r, self.s
        ends = {side[0]: s.endpoint_extremes(*side, eval_set) for side in sides}
        low = {name: e for name, e in ends.items() if cmp.at_floor(*e, s.chance, r.floor_acc, r.floor_loss)}
        if low:
            acc, loss = min(e[0] for e in low.values()), max(e[1] for e in low.values())
            what = _floor_cause(acc, eval_set, s.chance, r)
            return (f"an endpoint of {' and '.join(low)} is itself there (lowest accuracy {acc:.0%}, highest loss "
                    f"{loss:.2f}): those models {what}, so no path between them can show a "
                    "barrier; judge it on another set, or with models that fit it (more pretraining, another cue "
                    "proportion)")
        return "judge it on another set, after alignment or with a wider model"

    def barrier_row(self, pair: tuple[str, str], eval_set: str, role: str) -> None:
        r = self.r
        others = tuple((d, self.estimate(self.values(pair, eval_set, d))) for d in vocab.DEFINITIONS
                       if d != r.barrier_definition)
        self.c.rows.append(Row(f"{pair[0]} {pair[1]}", f"{r.barrier_metric} barrier ({r.barrier_definition}) on "
                               f"{eval_set}", self.estimate(self.values(pair, eval_set)), role, also=others))


def _guards_text(r: ClaimRules) -> str:
    check_def = f"; not testable where the {r.check_definition} definition decides the other way" \
        if r.check_definition else ""
    return (f"{r.barrier_metric} barriers ({r.barrier_definition}); a comparison is not testable where its lower "
            f"side sits at the chance floor (on any of its pairs, lowest accuracy ≤ chance + {r.floor_acc:g} or highest "
            f"loss ≥ ln K − {r.floor_loss:g}; where that side is the claim's own path below a reference, a ✗ stands, "
            f"unless an endpoint of that path scores within {r.floor_acc:g} of chance on the set: a model that has not "
            f"learnt it), its higher side there unless decided as claimed (a ✓ stands), or the floor is not "
            f"measured{check_def}, or, decided as claimed, where the claim's own path has a barrier within "
            f"{r.barrier_effect:g} of none, or, undecided, where "
            f"it could not have detected {r.barrier_effect:g} at {r.power:.0%} power")


def _not_fine_tuned(s: Slice, methods: tuple[str, ...]) -> list[str]:
    """A claim's note when the sweep has no model fine-tuned by some of `methods`: what to add to the spec
    (its comparisons of those models then say `not measured`)."""
    missing = [m for m in methods if s.models(vocab.FINETUNE, method=m).empty]
    if not missing:
        return []
    them = "it" if len(missing) == 1 else "them"
    return [f"This sweep has no model fine-tuned by {' or '.join(missing)}: add {them} to `finetune.methods`, "
            f"with '{vocab.PRETRAINED_FT}' in `paths.pairs`, to test this claim."]


def _unmeasured(decision: cmp.Decision) -> cmp.Decision:
    """A comparison of accuracies or reliances without values on a side: say what is missing, not "no values"."""
    if decision.outcome != MISSING:
        return decision
    return replace(decision, reason="not measured: this sweep has no evaluations of a model kind this compares "
                                    "(a fine-tuning method not in finetune.methods, or no cue or no-cue models in "
                                    "cue_proportions)")


def _first_block(decision: cmp.Decision, *guards) -> cmp.Decision:
    """`decision` as the first of `guards` that blocks it leaves it (each takes a Decision and returns it,
    or it blocked: `Decision.blocked`), so that guard's reason is the one shown; a comparison without
    values (MISSING) is left as it is."""
    if decision.outcome not in (YES, NO, OVERLAP, UNTESTABLE):
        return decision
    for guard in guards:
        guarded = guard(decision)
        if guarded is not decision:
            return guarded
    return decision


def _whose(label: str) -> str:
    """`cue model` -> "the cue model's"; a method's name (`cbft`) -> "cbft's"."""
    return f"the {label}'s" if " " in label else f"{label}'s"


def _reference_text(r: ClaimRules) -> str:
    return (f"; going below a reference barrier within {r.barrier_effect:g} of none is not testable (nothing to go "
            f"below), except a ✗ where the claim's own path has a barrier whose interval is above {r.barrier_effect:g}")


def _no_reliance_text(r: ClaimRules, whom: str) -> str:
    return (f"; keeping or lowering a reliance is not testable where {whom} has a mean reliance index within "
            f"±{PP * r.no_reliance_margin:g} pp of none (0 for randimg; for a random cue's cost, the no-cue models' "
            "cost, which the patch costs by occlusion), or one whose interval reaches none (not established), except a "
            f"✗, which stands where the other side's reliance is established above that none by more than "
            f"{PP * r.no_reliance_margin:g} pp (its interval over seeds); a reliance comparison is not testable where "
            f"the models it compares learnt nothing on a seed (every test set within {PP * r.floor_acc:g} pp of chance)")


def _cost_floor_text(r: ClaimRules) -> str:
    return (f"; a random cue's cost is not testable where a model's clean accuracy sits at the chance floor "
            f"(≤ chance + {PP * r.floor_acc:g} pp on any seed: the cost cannot exceed what it has above chance), for the "
            "decisions that cap could make")


def claim_a(s: Slice, r: ClaimRules) -> Claim:
    c = Claim("a", "A model trained with the cue relies on it (randimg above chance, a random cue costs accuracy), "
                   "more than a model trained without it does.",
              f"Paired within seed, {r.level:.0%} intervals (a seed's value: the mean over its pretrained models of "
              "that kind, partners and same-init controls included): the cue models' randimg reliance above 0, above the no-cue "
              f"models', and the cost of a random cue above the no-cue models'; an undecided comparison is not testable where "
              f"it could not have detected {PP * r.reliance_effect:g} pp at {r.power:.0%} power{_cost_floor_text(r)}; a "
              f"randimg comparison is not testable where the models it compares learnt nothing on a seed (every test "
              f"set within {PP * r.floor_acc:g} pp of chance). Supporting: the "
              f"no-cue models' randimg reliance within ±{PP * r.no_reliance_margin:g} pp of 0 (equivalence).")
    j = _Judge(s, r, c)
    cue, nocue = s.models(vocab.PRETRAIN, cue=True), s.models(vocab.PRETRAIN, cue=False)
    rc, rn = s.reliance(cue), s.reliance(nocue)
    for label, acc, rel, role in (("cue model", cue, rc, CLAIM), ("no-cue model", nocue, rn, CONTROL)):
        for eval_set in ("nocue", "cue"):
            if eval_set in acc:
                c.rows.append(Row(label, f"acc({eval_set})", j.estimate(acc[eval_set], accuracy=True), role, PP, "%"))
        j.reliance_rows(label, rel, role)
    j.above("the cue model scores above chance on randimg", rc.get(RANDIMG, EMPTY), None, "relies",
            trained={"cue models": cue})
    j.above("it relies on the cue more than the no-cue model (randimg)", rc.get(RANDIMG, EMPTY),
            rn.get(RANDIMG, EMPTY), "more than no-cue", trained={"cue models": cue, "no-cue models": nocue})
    j.above("a random cue costs the cue model more accuracy than the no-cue model", rc.get(RANDCUE, EMPTY),
            rn.get(RANDCUE, EMPTY), "random cue costs",
            clean=({"cue model": cue.get("nocue", EMPTY)}, {"no-cue model": nocue.get("nocue", EMPTY)}))
    j.near_zero("the no-cue model does not rely on the cue: randimg at chance", rn.get(RANDIMG, EMPTY),
                r.no_reliance_margin, None, clean={"no-cue model": nocue.get("nocue", EMPTY)}, measure=RANDIMG)
    return family_wise(c, r.level)


def claim_b(s: Slice, r: ClaimRules) -> Claim:
    ref = next((p for p in vocab.FT_REFERENCES if p in s.pair_types()), None)
    c = Claim("b", "Naive fine-tuning on clean data keeps the cue reliance and stays linearly connected to the "
                   "pretrained model (its barrier is below that between independently trained models).",
              f"Paired within seed, {r.level:.0%} intervals: the naive fine-tuning's randimg reliance above "
              f"{r.keep_fraction:g} × its own parent's; on each of {', '.join(r.barrier_sets)}, its linear barrier to "
              f"the parent below that of {ref or vocab.CUE_CUE} (linear); {_guards_text(r)}{_reference_text(r)}"
              f"{_no_reliance_text(r, 'the parent')}.")
    c.notes += _not_fine_tuned(s, (NAIVE,))
    j = _Judge(s, r, c)
    rel, parent = s.reliance(s.models(vocab.FINETUNE, method=NAIVE)), s.reliance(s.parents(NAIVE))
    j.reliance_rows(NAIVE, rel, CLAIM)
    j.reliance_rows("its pretrained parent", parent, REFERENCE)
    j.above(f"naive fine-tuning keeps more than {r.keep_fraction:g} of its parent's randimg reliance",
            rel.get(RANDIMG, EMPTY), r.keep_fraction * parent.get(RANDIMG, EMPTY), "keeps reliance",
            reliant=("its pretrained parent", parent.get(RANDIMG, EMPTY)),
            trained={"naive fine-tunings": s.models(vocab.FINETUNE, method=NAIVE), "pretrained parents": s.parents(NAIVE)})
    j.above("naive fine-tuning keeps randimg above chance", rel.get(RANDIMG, EMPTY), None, None)
    ft = (vocab.pair_type_name(vocab.PRETRAINED_FT, vocab.FINE_TUNED, method=NAIVE), vocab.LINEAR)
    for eval_set in r.barrier_sets:
        j.barrier_row(ft, eval_set, CLAIM)
        if ref is None:
            c.checks.append(Check(f"on {eval_set}, its linear barrier is below that of independently trained models",
                                  MISSING, "—", "stays connected",
                                  f"no {', '.join(vocab.FT_REFERENCES[:-1])} or {vocab.FT_REFERENCES[-1]} pairs"))
            continue
        j.barrier_row((ref, vocab.LINEAR), eval_set, CONTROL)
        j.barrier_above(f"on {eval_set}, its linear barrier is below that of {ref}", (ref, vocab.LINEAR), ft, eval_set,
                        "stays connected", reference=True)
    return family_wise(c, r.level)


def claim_c(s: Slice, r: ClaimRules) -> Claim:
    acc = {m: s.models(vocab.FINETUNE, method=m) for m in (CBFT, NAIVE, NAIVE_CUED, LPFT, LLRT, *ABLATIONS)}
    # the control is required where the sweep planned it (a row in the tasks table, whatever its status), not
    # only where it has results: a failed control must not turn the claim into one without it
    cued = not acc[NAIVE_CUED].empty or NAIVE_CUED in s.planned_methods
    c = Claim("c", "CBFT lowers the cue reliance (randimg towards chance, randcue towards clean accuracy) more "
                   f"than naive fine-tuning{', also with the same extra cued data' if cued else ''}, keeps its clean "
                   "accuracy, and leaves the pretrained model's linear basin.",
              f"Paired within the pretrained model, {r.level:.0%} intervals: CBFT's two reliance indices below "
              f"naive's{' and naive_cued' + chr(39) + 's' if cued else ''}; its clean accuracy not below theirs by "
              f"more than {PP * r.acc_margin:g} pp (non-inferiority); on {', '.join(r.basin_sets)}, its linear barrier "
              f"to the pretrained model above naive's; {_guards_text(r)}{_cost_floor_text(r)}"
              f"{_no_reliance_text(r, 'the method CBFT is compared with')}; clean-accuracy non-inferiority is not "
              f"testable where both sides sit at that floor. Supporting: randimg reliance within "
              f"±{PP * r.no_reliance_margin:g} pp of 0 and a random cue's cost within it of the no-cue models' "
              "(equivalence, paired by seed), and LP-FT / LLRT beside it.")
    j = _Judge(s, r, c)
    rel = {m: s.reliance(a) for m, a in acc.items()}
    # a random cue's cost without any reliance: what the patch costs the no-cue models by occluding the image
    nocue = s.models(vocab.PRETRAIN, cue=False)
    occlusion = s.reliance(nocue).get(RANDCUE, EMPTY)
    for m in [m for m in s.methods if not acc.get(m, pd.DataFrame()).empty]:
        role = CLAIM if m == CBFT else CONTROL if m in (NAIVE, NAIVE_CUED) else REFERENCE
        c.rows.append(Row(m, "acc(nocue)", j.estimate(acc[m].get("nocue", EMPTY), accuracy=True), role, PP, "%"))
        j.reliance_rows(m, rel[m], role)
    c.notes += _not_fine_tuned(s, (CBFT, NAIVE))
    if not cued:
        c.notes.append(f"The control with CBFT's extra cued data ({NAIVE_CUED}) was not run: this sweep cannot tell "
                       "CBFT's objective apart from the extra data it sees.")
    elif acc[NAIVE_CUED].empty:
        c.notes.append(f"The control with CBFT's extra cued data ({NAIVE_CUED}) was planned but has no results here "
                       "(its tasks failed or have not finished: `mmc-sweep status`); its comparisons are not measured.")
    for other in [NAIVE] + ([NAIVE_CUED] if cued else []):
        first = len(c.checks)
        for measure, what in ((RANDIMG, "randimg reliance"), (RANDCUE, "cost of a random cue")):
            j.above(f"CBFT has a lower {what} than {other}", rel[other].get(measure, EMPTY),
                    rel[CBFT].get(measure, EMPTY), f"{what} below {other}",
                    clean=({other: acc[other].get("nocue", EMPTY)}, {CBFT: acc[CBFT].get("nocue", EMPTY)})
                    if measure == RANDCUE else None,
                    reliant=(other, rel[other].get(measure, EMPTY)), none=occlusion if measure == RANDCUE else None,
                    trained={f"{CBFT} models": acc[CBFT], f"{other} models": acc[other]})
        j.not_below(f"CBFT's clean accuracy is not below {other}'s", acc[CBFT].get("nocue", EMPTY),
                    acc[other].get("nocue", EMPTY), r.acc_margin, f"clean accuracy vs {other}",
                    clean=({CBFT: acc[CBFT].get("nocue", EMPTY)}, {other: acc[other].get("nocue", EMPTY)}))
        if acc[other].empty and other == NAIVE_CUED:    # planned, not run: say why its checks are not measured
            c.checks[first:] = [replace(k, reason=f"not measured: {NAIVE_CUED} was planned but has no results here "
                                                  "(its tasks failed or have not finished: `mmc-sweep status`)")
                                if k.outcome == MISSING else k for k in c.checks[first:]]
    for other in (LPFT, LLRT):
        if not acc[other].empty:
            j.above(f"CBFT has a lower randimg reliance than {other}", rel[other].get(RANDIMG, EMPTY),
                    rel[CBFT].get(RANDIMG, EMPTY), None, reliant=(other, rel[other].get(RANDIMG, EMPTY)),
                    trained={f"{CBFT} models": acc[CBFT], f"{other} models": acc[other]})
    j.near_zero("CBFT leaves no reliance: randimg at chance", rel[CBFT].get(RANDIMG, EMPTY), r.no_reliance_margin,
                None, clean={CBFT: acc[CBFT].get("nocue", EMPTY)}, measure=RANDIMG)
    cost = rel[CBFT].get(RANDCUE, EMPTY)
    what = "CBFT leaves no reliance: a random cue costs it what it costs the no-cue model (occlusion)"
    if len(cost) and not len(occlusion):
        c.checks.append(Check(what, MISSING, "—", None, "not measured: no no-cue model in the sweep measures what "
                              "the patch costs by occlusion (add 0.0 to `cue_proportions`)"))
    else:
        # both costs are capped where their model sits at the chance floor: the no-cue models' too
        j.near_zero(what, cost - occlusion, r.no_reliance_margin, None,
                    clean={CBFT: acc[CBFT].get("nocue", EMPTY), "no-cue model": nocue.get("nocue", EMPTY)})
    shown = [m for m in s.methods if m in (CBFT, NAIVE, NAIVE_CUED, *ABLATIONS)]
    for eval_set in r.basin_sets:
        for m in shown:
            pair = (vocab.pair_type_name(vocab.PRETRAINED_FT, vocab.FINE_TUNED, method=m), vocab.LINEAR)
            if len(j.values(pair, eval_set)):
                j.barrier_row(pair, eval_set, CLAIM if m == CBFT else CONTROL)
        cb, nv = ((vocab.pair_type_name(vocab.PRETRAINED_FT, vocab.FINE_TUNED, method=m), vocab.LINEAR)
                  for m in (CBFT, NAIVE))
        j.barrier_above(f"on {eval_set}, CBFT's linear barrier to the pretrained model exceeds naive's", cb, nv,
                        eval_set, "leaves the basin")
    return family_wise(c, r.level)


def claim_d(s: Slice, r: ClaimRules) -> Claim:
    same_init = s.designs(vocab.CUE_NOCUE, vocab.SAME_INIT)
    same_data = s.designs(vocab.CUE_CUE, vocab.SPAWN, vocab.RESUBSET) + s.designs(vocab.NOCUE_NOCUE, vocab.SPAWN)
    controls = [p for p in same_data if vocab.shares_only_the_start(p)]
    later = [p for p in same_data if p not in controls]     # spawn@K, K > 0: share K epochs too (supporting)
    independent = [p for p in (vocab.CUE_CUE, vocab.NOCUE_NOCUE) if p in s.pair_types()]
    c = Claim("d", "Cue and no-cue models are not linearly connected beyond the barrier between models trained on "
                   "the same data — from one initialisation (the same-init design), and after alignment where "
                   "alignment connects same-data pairs — but a quadratic path connects them better.",
              f"On each of {', '.join(r.barrier_sets)}, paired within seed, {r.level:.0%} intervals: the linear barrier "
              f"of cue~nocue:same-init above that of each same-data control from the same initialisation (X~X:spawn@0, "
              f"cue~cue:resubset; a X~X:spawn@K child with K > 0 shares K epochs of training as well, a lower baseline: "
              f"supporting only); the quadratic path below the linear one; where alignment works for the same-data "
              f"controls (aligned barrier's upper bound below {r.aligned_works:g}), cue~nocue above them after "
              f"alignment; {_guards_text(r)}{_reference_text(r)}; a comparison of cue~nocue with same-data pairs is "
              f"not testable where the cue models' mean randimg reliance is within ±{PP * r.no_reliance_margin:g} pp of "
              "none (no cue learnt: no mechanism to differ), or whose interval over seeds reaches none (not "
              "established), or where that reliance is not measured, or the no-cue models' clean accuracy is within "
              f"{PP * r.floor_acc:g} pp of chance on a seed (no mechanism of their own), or where an endpoint of "
              "cue~nocue (or of the quadratic path's pair) scores within it of chance on the set (a model that has "
              "not learnt it). Supporting: independent-init linear barriers, the "
              "noise floor.")
    c.optional.add("after alignment")
    j = _Judge(s, r, c)
    floor = s.noise_floor()
    main = same_init[0] if same_init else vocab.CUE_NOCUE
    learnt = Mechanisms(s.reliance(s.models(vocab.PRETRAIN, cue=True)).get(RANDIMG, EMPTY),
                        s.models(vocab.PRETRAIN, cue=False).get("nocue", EMPTY))
    # a population's pairs are every pair of its models, across seeds: no control (claim (e) reads them)
    for pair in stats.order_pairs([p for p in s.pair_types()
                                   if not p.startswith(vocab.PRETRAINED_FT) and p != vocab.POPULATION]):
        for path in s.paths(pair):
            for eval_set in r.barrier_sets:
                j.barrier_row((pair, path), eval_set, CLAIM if pair.startswith(vocab.CUE_NOCUE) else CONTROL)
    for eval_set in r.barrier_sets:
        if not same_init or not controls:
            missing = "cue~nocue:same-init" if not same_init else "cue~cue:spawn@0 or cue~cue:resubset"
            beyond = "" if not same_init or not later else \
                f" ({', '.join(later)} share{'s' if len(later) == 1 else ''} epochs of training beyond the " \
                "initialisation: a lower baseline, supporting only)"
            c.checks.append(Check(f"on {eval_set}, the same-init cue~nocue barrier is above that of same-data pairs "
                                  "from the same initialisation", MISSING, "—", "same-init design",
                                  f"not measured: add {missing} to paths.pairs{beyond}"))
        for control in controls if same_init else []:
            j.barrier_above(f"on {eval_set}, the {same_init[0]} linear barrier is above that of {control}",
                            (same_init[0], vocab.LINEAR), (control, vocab.LINEAR), eval_set, "same-init design",
                            mechanism=learnt)
        for control in later if same_init else []:
            j.barrier_above(f"on {eval_set}, the {same_init[0]} linear barrier is above that of {control} (children "
                            "sharing epochs of training beyond the initialisation)",
                            (same_init[0], vocab.LINEAR), (control, vocab.LINEAR), eval_set, None, mechanism=learnt)
        j.barrier_above(f"on {eval_set}, the quadratic path lowers the {main} barrier", (main, vocab.LINEAR),
                        (main, vocab.QUADRATIC), eval_set, "quadratic connects", reference=True)
        _aligned_checks(j, independent, eval_set, learnt)
        for ref in independent:
            j.barrier_above(f"on {eval_set}, the independent-init cue~nocue linear barrier is above that of {ref}",
                            (vocab.CUE_NOCUE, vocab.LINEAR), (ref, vocab.LINEAR), eval_set, None, mechanism=learnt)
        if floor:
            j.barrier_above(f"on {eval_set}, the {main} linear barrier is above the noise floor ({floor})",
                            (main, vocab.LINEAR), (floor, vocab.LINEAR), eval_set, None, mechanism=learnt)
    return family_wise(c, r.level)


def _aligned_checks(j: _Judge, independent: list[str], eval_set: str, learnt: Mechanisms | None = None) -> None:
    """cue~nocue above each same-data pair after alignment, only where alignment connects that pair."""
    s, r = j.s, j.r
    for path in [p for p in s.paths(vocab.CUE_NOCUE) if p.startswith(vocab.ALIGNED)]:
        for ref in [p for p in independent if path in s.paths(p)]:
            text = f"on {eval_set}, after {path.split(' ', 1)[-1].strip('()')} alignment the cue~nocue barrier is " \
                   f"above that of {ref}"
            control = j.estimate(j.values((ref, path), eval_set))
            if control.n >= 2 and not control.ci_high < r.aligned_works:
                j.c.checks.append(Check(text, UNTESTABLE, f"{ref} aligned {control.text()}", "after alignment",
                                        f"alignment does not connect the same-data pairs here ({ref}'s aligned "
                                        f"barrier {control.mean:.3f}, upper bound {control.ci_high:.3f} ≥ "
                                        f"{r.aligned_works:g}): a wider model would (sweeps/mechanism_width.yaml)"))
                continue
            j.barrier_above(text, (vocab.CUE_NOCUE, path), (ref, path), eval_set, "after alignment", mechanism=learnt)


def claim_e(found: list, r: ClaimRules) -> Claim:
    """Connectivity clusters follow mechanism, on the mechanism maps of one context
    (`report/mechanism_map.py`)."""
    half = r.alpha / 2
    c = Claim("e", "Connectivity clusters follow mechanism: models are better connected within their reliance group "
                   "than across the groups — those that rely on the cue with each other, and those that do not with "
                   "each other (each group's mean barrier within it is below the mean barrier across the groups) — and "
                   "the map's clusters match the reliance groups.",
              f"On each of {', '.join(r.barrier_sets)} and each path of the population ({r.barrier_metric} barriers, "
              f"{r.barrier_definition}), a model relies on the cue when acc(randimg) − chance > "
              f"{PP * r.reliance_cut:g} pp. The mean barrier across the two groups minus within them (their pairs pooled; "
              f"decided as claimed only where the worse group alone, across minus its own within mean, is too), against its "
              f"null from relabeling the models ({r.permutations} relabelings, group sizes kept; models, not pairs, "
              f"are exchangeable), decided when a one-sided p-value is at most α/2 = {half:g}; not testable with "
              f"fewer than 2 models in a group, where no relabeling could reach α/2, where the within-group paths sit "
              f"at the chance floor (any of them) or that floor is not measured, or, for an outcome other than as "
              f"claimed, the paths across the groups do, where the {r.check_definition or 'second'} "
              f"definition decides the other way, or "
              f"undecided, where it could not have detected {r.barrier_effect:g} at {r.power:.0%} power. Supporting: the "
              "adjusted Rand "
              "index of the clusters (the tree cut at the threshold of the sweep's same-data controls) and the "
              "groups, tested with the same relabelings.")
    for m in found:
        where = f"on {m.eval_set}, {m.path} path"
        groups = m.models["group"].to_numpy()
        relies, ignores = int((groups == mmap.RELIES).sum()), int((groups == mmap.IGNORES).sum())
        iu = np.triu_indices(m.k, 1)
        known = (groups[iu[0]] != None) & (groups[iu[1]] != None)   # noqa: E711 - an object array
        same = known & (groups[iu[0]] == groups[iu[1]])
        label = f"{m.k} models: {relies} rely on the cue, {ignores} do not" + \
            (f" ({m.left_out} left out: pairs missing)" if m.left_out else "")
        pooled = ((CLAIM, "within reliance groups", same), (CONTROL, "across them", known & ~same))
        # each group's own pairs beside the pooled mean the test reads: a large, tight group can carry it alone
        apart = tuple((REFERENCE, f"within the models that {who}", same & (groups[iu[0]] == g))
                      for g, who in ((mmap.RELIES, "rely on the cue"), (mmap.IGNORES, "do not")))
        for role, which, mask in pooled + apart:
            values = m.matrix[iu][mask]
            c.rows.append(Row(label, f"{where}: barrier {which} (pairs share models: no interval)",
                              Estimate(int(values.size), float(values.mean()) if values.size else math.nan,
                                       float(values.std(ddof=1)) if values.size > 1 else math.nan, math.nan,
                                       math.nan), role))
        test = m.within_across
        text = f"{where}, the barrier within reliance groups is below the barrier across them"
        if test is None:
            c.checks.append(Check(text, UNTESTABLE, "—", "within < across",
                                  f"too few models in a group: {relies} rely on the cue, {ignores} do not (a "
                                  "permutation test needs 2 in each)" if relies + ignores else
                                  "the models' cue reliance is not measured"))
            continue
        decision = cmp.permutation(test.observed, test.p_upper, test.p_lower, test.min_p, test.sd, r.level,
                                   r.barrier_effect, r.power)
        decision = _first_block(decision, lambda d, m=m: _map_guards(d, m, r), lambda d, m=m: _each_group(d, m, r))
        evidence = (f"across − within {test.observed:+.3f} (p = {test.p_upper:.3g} one-sided; "
                    f"{'all ' if test.exact else ''}{test.null.size} relabelings)")
        if m.worst is not None:
            evidence += f"; the worse group alone {m.worst.observed:+.3f} (p = {m.worst.p_upper:.3g})"
        power = (f"smallest p-value these models allow {test.min_p:.3g}; detectable ≥ "
                 f"{cmp.permutation_detectable(test.sd, r.level, r.power):.3g} at {r.power:.0%} power "
                 f"(null sd {test.sd:.3g})")
        c.checks.append(Check(text, decision.outcome, evidence, "within < across", decision.reason, power,
                              decision.p_other, permutation=True))
        ari_text = f"{where}, the clusters match the reliance groups (adjusted Rand index above chance)"
        if m.ari_test is None:
            n = m.models["cluster"].nunique()
            why = m.threshold.text() if m.threshold.value is None else \
                f"{'one cluster' if n == 1 else 'every model its own cluster'} at the threshold " \
                f"{m.threshold.value:.3f}: the index is undefined"
            c.checks.append(Check(ari_text, MISSING, "—", None, why))
        else:
            a = m.ari_test
            ari_decision = cmp.permutation(a.observed, a.p_upper, a.p_lower, a.min_p, a.sd, r.level, None, r.power)
            # the clusters are cut from the same barriers: the within-group floor caps them alike
            ari_decision = _first_block(ari_decision, lambda d, m=m: _map_guards(d, m, r, definitions=False))
            c.checks.append(Check(ari_text, ari_decision.outcome, f"ARI {m.ari:.2f} (p = {a.p_upper:.3g} one-sided; "
                                  f"{m.models['cluster'].nunique()} clusters)", None, ari_decision.reason, "",
                                  ari_decision.p_other))
    if not found:
        c.checks.append(Check("the population's barriers", MISSING, "—", "within < across",
                              "no population of 3 or more models with barriers (`population:` in the spec)"))
    return family_wise(c, r.level)


def _each_group(decision: cmp.Decision, m, r: ClaimRules) -> cmp.Decision:
    """(e) says *each* reliance group is better connected inside than across; the pooled statistic alone can be
    carried by one large, tight group. So "within < across" decided as claimed stands only where the worse of
    the two groups (across minus the larger within mean, `mechanism_map.worst_group`, the same relabelings) is
    decided above 0 too: decided below, the claim is false for that group (✗); else not testable. A pooled ✗
    needs no such check: pooled within above across puts at least one group's within above it."""
    if decision.outcome != YES or m.worst is None:
        return decision
    w = m.worst
    worst = cmp.permutation(w.observed, w.p_upper, w.p_lower, w.min_p, w.sd, r.level, r.barrier_effect, r.power)
    if worst.outcome == YES:
        return decision
    if worst.outcome == NO:        # a ✗ of its own: the guards of a ✗ apply to it (the across floor, the check definition)
        against = replace(worst, reason=f"pooled, the groups are apart, but one group's own pairs are further apart "
                                        f"than the pairs across (across minus its within mean {w.observed:+.3f}, p = "
                                        f"{w.p_lower:.3g} one-sided): that group is not better connected inside")
        guarded = _map_guards(against, m, r, m.check_worst)
        return guarded if guarded.outcome == UNTESTABLE else against
    return decision.blocked(f"pooled, the groups are apart, but not each group alone: across minus the larger of the two "
                            f"groups' within means is {w.observed:+.3f} (p = {w.p_upper:.3g} one-sided), so one group "
                            "may be carried by the other")


def _floor_cause(acc: float, eval_set: str, chance: float, r: ClaimRules) -> str:
    """Why models at the chance floor of `eval_set` sit there (their lowest accuracy `acc`): they have not
    learnt it, or they score above chance with a loss near a constant guess's."""
    return f"have not learnt {eval_set}" if learnt_nothing(acc, chance, r.floor_acc) else \
        f"score above chance on {eval_set} but with a loss near a constant guess's (confident where they err)"


def _map_floor_fix(m, r: ClaimRules) -> str:
    """What would make a map whose within-group paths sit at the chance floor testable, as `_Judge._floor_fix`
    says for a pair type: where some of its models sit there themselves (they never learnt the set), other
    models or another set; else the paths collapse between fitted models: alignment first, or a wider model."""
    acc, loss = m.within_endpoints
    if cmp.at_floor(acc, loss, m.chance, r.floor_acc, r.floor_loss):
        what = _floor_cause(acc, m.eval_set, m.chance, r)
        return (f"some of the models are themselves there (lowest accuracy {acc:.0%}, highest loss {loss:.2f}): "
                f"they {what}, so no path between them can show a barrier; judge the map on another set, or with "
                "models that fit it (more pretraining, another cue proportion: `population.cue_proportions`)")
    if m.path == vocab.LINEAR:
        return (f"the models fit {m.eval_set} but the straight path between them does not: judge the map after "
                f"permutation alignment (add {vocab.ALIGNED} to `population.path_kinds`), on another set, or with a "
                "wider model")
    return f"the models fit {m.eval_set} but the path between them does not: judge the map on another set or with a wider model"


def _map_guards(decision: cmp.Decision, m, r: ClaimRules, check=None, definitions: bool = True) -> cmp.Decision:
    """Claim (e)'s guards, as those of the barrier comparisons: the within-group paths at the chance
    floor (any of them) or that floor not measured; the check definition deciding the other way (`check`: its
    test, else the map's pooled one; not with `definitions` False: the index check has no second test)."""
    lo_acc, hi_loss = m.within_extremes
    if m.chance and lo_acc != lo_acc and hi_loss != hi_loss:
        return decision.blocked(f"the chance floor is not measured for the paths within reliance groups on "
                                f"{m.eval_set} (no accuracy or loss along them in the paths table): a collapsed path "
                                "cannot be told from a barrier; rerun its path tasks (`mmc-sweep run`)")
    if m.chance and cmp.at_floor(lo_acc, hi_loss, m.chance, r.floor_acc, r.floor_loss):
        return decision.blocked(f"paths within reliance groups collapse to chance on {m.eval_set} (lowest "
                                f"accuracy of any {lo_acc:.0%}, highest loss {hi_loss:.2f}): their barriers are "
                                "chance loss minus the endpoints' own loss, which the comparison would take for "
                                f"connectivity; {_map_floor_fix(m, r)}")
    # the higher side (across the groups) at the floor: its barriers are capped, so a ✓ stands (the cap works
    # against it) and anything else is no evidence, as for (b)-(d)
    lo_acc, hi_loss = m.across_extremes
    if m.chance and decision.outcome != YES and (lo_acc != lo_acc and hi_loss != hi_loss or
                                                 cmp.at_floor(lo_acc, hi_loss, m.chance, r.floor_acc, r.floor_loss)):
        seen = "is not measured for them" if lo_acc != lo_acc and hi_loss != hi_loss else \
            f"is reached (lowest accuracy of any {lo_acc:.0%}, highest loss {hi_loss:.2f})"
        return decision.blocked(f"on {m.eval_set}, the chance floor of the paths across reliance groups {seen}: their "
                                "barriers are then chance loss minus the endpoints' own loss, which can fall below a "
                                "real bump, so a comparison going against the claim is no evidence")
    check = check if check is not None else m.check
    if check is not None and definitions:
        second = cmp.permutation(check.observed, check.p_upper, check.p_lower, check.min_p, check.sd,
                                 r.level, r.barrier_effect, r.power)
        if cmp.opposite(decision, second):
            return decision.blocked(f"the {r.barrier_definition} and {r.check_definition} barriers decide "
                                    f"opposite ways (across − within {check.observed:+.3f} by "
                                    f"{r.check_definition})")
    return decision


CLAIMS = (claim_a, claim_b, claim_c, claim_d)


def _values(frames: list[pd.DataFrame], column: str) -> set:
    return {v for f in frames if column in f.columns for v in f[column].dropna().unique()}


def _check_fractions(frames: dict[str, pd.DataFrame]) -> None:
    """Accuracies are fractions in [0, 1] (as the tables hold them): percentages would pass every chance-floor
    guard unseen and give reliances in the thousands of pp, so they are refused."""
    for table, frame in frames.items():
        if "acc" not in frame:
            continue
        acc = frame["acc"].to_numpy(dtype=float)
        outside = acc[np.isfinite(acc) & ((acc < 0) | (acc > 1))]
        if outside.size:
            raise ValueError(f"the {table} table's `acc` has {outside.size} value(s) outside [0, 1] (e.g. "
                             f"{outside[0]:g}); accuracies are fractions of the set, not percentages")


def judge(results: dict[str, pd.DataFrame], swept: tuple[str, ...] = (), rules: ClaimRules | None = None,
          maps: list | None = None) -> list[Claim]:
    """Every claim per context: model, cue proportion of the cue models, combination of swept values
    (one context for the usual sweep), by `rules` (the spec's `claims:`; the defaults without one).
    Rows of no-cue models and pairs (cue proportion 0) and of tasks no axis affects belong to every
    context. Claim (e), where the sweep has a population, per model and combination of swept values,
    on its mechanism maps (`maps`: `mechanism_map.maps`, computed when not given). [] without results
    or when the dataset's class count (for chance) is unknown."""
    rules = rules or ClaimRules()
    ev, bars, tasks = results[vocab.EVALUATIONS], results[vocab.BARRIERS], results[vocab.TASKS]
    paths = results.get(vocab.PATHS, pd.DataFrame())
    _check_fractions({vocab.EVALUATIONS: ev, vocab.PATHS: paths})
    chance = stats.chance(_values([ev, bars], "dataset"), paths)
    if chance is None:
        return []
    proportions = sorted(float(p) for p in _values([ev, bars], "cue_proportion") if p > 0) or [None]
    models = sorted(_values([ev, bars], "model")) or [None]
    judged = []             # ((model, p), combo, claim)
    for model in models:
        for p in proportions:
            for combo in stats.swept_combos([ev, bars], swept):
                def keep(df: pd.DataFrame) -> pd.DataFrame:
                    df = stats.facet(df, combo)
                    if model is not None and "model" in df:
                        df = df[df["model"].isna() | (df["model"] == model)]
                    if p is not None and "cue_proportion" in df:
                        df = df[stats.per_values(df["cue_proportion"], None, lambda v: stats.is_no_cue(v) or v == p).astype(bool)]
                    return df
                s = Slice(keep(ev), keep(bars), keep(paths) if not paths.empty else paths, tasks, chance)
                judged += [((model, p), combo, make(s, rules)) for make in CLAIMS]
    out = []
    for (model, p), combo, claim in _once_per_unused_axis(judged):
        claim.context = " · ".join(x for x in (str(model) if len(models) > 1 else "",
                                               f"cue proportion {stats.proportion_text(p)}" if len(proportions) > 1 else "",
                                               stats.facet_label(combo)) if x)
        out.append(claim)
    if mmap.population_models(bars):      # (e): only where the sweep has a population
        found = mmap.maps(results, swept, rules) if maps is None else maps
        for key in dict.fromkeys(m.context_label() for m in found) or [""]:
            claim = claim_e([m for m in found if m.context_label() == key], rules)
            claim.context = key
            out.append(claim)
    return out


def _once_per_unused_axis(judged: list[tuple]) -> list[tuple]:
    """A claim judged alike for every value of a swept key ((a) and (d) over `finetune.*`: their models and
    pairs are trained before the key acts, so each value's slice gives them the same rows) is one claim, its
    context without that key: the same verdict repeated per value would read as replications that are one.
    `judged`: ((model, proportion), combo, claim) in context order; the claims that keep every key follow
    those that lost one, in that order."""
    keys = list(dict.fromkeys(k for _, combo, _ in judged for k in combo))
    for key in keys:
        values = {combo[key] for _, combo, _ in judged if key in combo}
        groups: dict[tuple, list] = {}
        for head, combo, claim in judged:
            rest = tuple((k, v) for k, v in combo.items() if k != key)
            groups.setdefault((head, claim.key, rest), []).append((head, combo, claim))
        merged = []
        for (head, _, rest), members in groups.items():
            alike = len({_judged_as(c) for _, _, c in members}) == 1
            if len(values) > 1 and alike and {combo.get(key) for _, combo, _ in members} == values:
                merged.append((head, dict(rest), members[0][2]))
            else:
                merged += members
        heads = {h: i for i, h in enumerate(dict.fromkeys(h for h, _, _ in judged))}
        order = {id(c): i for i, (_, _, c) in enumerate(judged)}
        judged = sorted(merged, key=lambda m: (heads[m[0]], len(m[1]), order[id(m[2])]))
    return judged


def _judged_as(claim: Claim) -> str:
    """Everything a reader sees of a claim but its context: its rule, rows, checks and notes."""
    return repr((claim.rule, claim.rows, claim.checks, claim.notes, sorted(claim.optional)))


def claims_text(claims: list[Claim], detail: bool = True, power: bool = True) -> str:
    """The claims for a terminal: with `detail`, each claim's rule, verdict sentence, comparisons (with
    their power) and the statistics behind them; without, one line per claim."""
    lines = []
    for claim in claims:
        where = f" [{claim.context}]" if claim.context else ""
        if not detail:
            said = "; ".join(part for part in (claim.tally(), "see its notes" if claim.notes else "") if part)
            lines.append(f"({claim.key}){where} {claim.badge().upper()}{f' ({said})' if said else ''}: {claim.statement}")
            continue
        lines += [f"({claim.key}){where} {claim.statement}", f"    rule: {claim.rule}", f"    → {claim.sentence()}"]
        for c in claim.checks:
            kind = "" if c.required else " (supporting)"
            lines.append(f"      {MARKS[c.outcome]:<2} {c.text}: {c.evidence}{kind}")
            if c.reason:
                lines.append(f"           not testable: {c.reason}" if c.outcome == UNTESTABLE else f"           {c.reason}")
            if power and c.power:
                lines.append(f"           power: {c.power}")
        if claim.rows:
            table = pd.DataFrame([{"": row.role, "model / pair": row.label, "measure": row.measure, "n": row.est.n,
                                   "mean [interval]": row.value(),
                                   **{d: e.text(3).rsplit(" (n =", 1)[0] for d, e in row.also}} for row in claim.rows])
            lines.append("\n".join("    " + line for line in stats.format_table(table.fillna("")).splitlines()))
        lines.append("")
    return "\n".join(lines)
