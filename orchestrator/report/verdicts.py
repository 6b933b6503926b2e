"""What a claim is made of — the comparisons it needs (`Check`), grouped, the statistics shown with it
(`Row`), its verdict — and the data of one context it is judged on (`Slice`).

A verdict follows from the claim's checks by a rule fixed before any result:

- Checks are grouped (one group per statement: e.g. "the barrier is above that of the same-data
  controls", with one check per eval set and control). A group is decided the other way (NO) if any
  of its checks is, not separated (OVERLAP) if any is, decided as claimed (YES) if any is and the
  rest are not testable, and not testable only when none of its checks is testable.
- The claim **does not hold** if a required group is NO; it **cannot be separated** if one is
  OVERLAP; it is **not testable here** if a required group is not testable (the reasons say what
  would make it testable); otherwise it **holds**. An `optional` group (e.g. "after alignment, where
  alignment works for the controls") decides like a required one when testable and is only listed
  when not.
- Supporting checks never decide; one that is not decided as claimed changes the wording to
  "holds, except …". Their "decided the other way" is family-wise too, over the claim's supporting
  checks as a family of their own (`family_wise`).
- **Family-wise**, for "does not hold" (`family_wise`): a claim has k required comparisons with an
  interval, and one decided the other way fails it; each at its own level alone, a true claim would
  fail up to k·α/2 of the time (20% for 8 at 95%). So a check decided the other way by its own
  interval stays NO only where Holm's step-down over the claim's k one-sided p-values of the other
  way (`Decision.p_other`) rejects it at α/2 in all; the others are OVERLAP ("cannot be separated",
  with the p-value and the bar it missed). "Holds" needs every required group decided as claimed,
  each at its own level: an intersection-union test, whose false "holds" is at most α/2 already.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from orchestrator import vocab
from orchestrator.report import stats
from tasks.settings.finetune import FINETUNE_METHOD_NAMES
from orchestrator.report.comparisons import MARKS, MISSING, NO, OVERLAP, UNTESTABLE, YES, Decision, Diff

HOLDS, FAILS, UNSEPARATED, NOT_TESTABLE = "holds", "does not hold", "cannot be separated", "not testable here"
VERDICTS = (HOLDS, FAILS, UNSEPARATED, NOT_TESTABLE)
CLAIM, CONTROL, REFERENCE = "claim", "control", "reference"      # the role of a statistic shown with a claim
PP = 100.0
RANDIMG, RANDCUE = "acc(randimg) − chance", "acc(nocue) − acc(randcue)"   # the cue-reliance indices


@dataclass(frozen=True)
class Row:
    """One statistic shown with a claim: what it is about, the measure, the estimate, its role; `also`:
    the same statistic under other barrier definitions (shown beside it)."""
    label: str
    measure: str
    est: stats.Estimate
    role: str = CLAIM
    scale: float = 1.0
    unit: str = ""
    also: tuple = ()           # ((definition, Estimate), ...)

    def value(self) -> str:
        return _fmt(self.est, self.scale, self.unit)


ACCURACY_RANGE = (0.0, 1.0)   # where an accuracy (unit "%") and so its interval lies


def _fmt(est: stats.Estimate, scale: float = 1.0, unit: str = "") -> str:
    within = ACCURACY_RANGE if unit == "%" else None
    return est.text(digits=1 if scale != 1.0 else 3, scale=scale, unit=unit, within=within).rsplit(" (n =", 1)[0]


@dataclass(frozen=True)
class Check:
    """One comparison a claim needs: its text, the outcome, the evidence (the difference and its
    interval), why it is not testable (if so), its power; `group` ties the checks of one statement
    (None: a supporting check, which never decides). `p_other`: the one-sided p-value of the other
    way (NaN without an interval); `alone`: decided the other way by its own interval, but not across
    the claim's comparisons (`family_wise`), so OVERLAP."""
    text: str
    outcome: str
    evidence: str
    group: str | None = None
    reason: str = ""
    power: str = ""
    p_other: float = math.nan
    alone: bool = False
    permutation: bool = False      # decided by a permutation test of relabeled models (claim (e)): no interval

    @property
    def required(self) -> bool:
        return self.group is not None


def check(text: str, decision: Decision, diff: Diff | None, group: str | None, *, scale: float = 1.0,
          unit: str = "", power: str = "", evidence: str = "") -> Check:
    shown = evidence or ("" if diff is None else diff.text(scale, unit, digits=1 if scale != 1.0 else 3))
    return Check(text, decision.outcome, shown or "—", group, decision.reason, power, decision.p_other)


def family_wise(claim: Claim, level: float) -> Claim:
    """Holm's step-down on the side of "does not hold" (module docstring), over the claim's required
    checks and, as a family of their own, over its supporting checks: sort a family's checks with a
    p-value of the other way; the j-th smallest (from 0) is rejected while every one up to it is at most
    (α/2) / (k − j). A rejected NO stays NO; every other NO becomes OVERLAP, saying why. A rejected check
    that is not NO (a guard made it not testable) stays as it was. Changes `claim` in place and returns
    it; the rule is appended to `claim.rule`."""
    half = (1.0 - level) / 2.0
    demoted: dict[int, str] = {}        # id(check) -> why it is not decided the other way
    sizes = {}
    for required, what in ((True, "comparisons"), (False, "supporting checks")):
        family = sorted((c for c in claim.checks if c.required == required and c.p_other == c.p_other),
                        key=lambda c: c.p_other)
        k = sizes[required] = len(family)
        rejected = 0
        while rejected < k and family[rejected].p_other <= half / (k - rejected):
            rejected += 1
        stop = half / (k - rejected) if rejected < k else 0.0      # the bar the step-down stopped at
        for c in family[rejected:]:
            demoted[id(c)] = (f"decided the other way by its own {level:.0%} interval (one-sided p = {c.p_other:.3g}), "
                              f"but not across the claim's {k} {what}: Holm's step-down stopped at the bar "
                              f"p ≤ {stop:.3g}")

    claim.checks = [replace(c, outcome=OVERLAP, alone=True, reason=demoted[id(c)])
                    if c.outcome == NO and id(c) in demoted else c for c in claim.checks]
    if sizes[True] > 1:
        claim.rule += (f" A comparison decided the other way counts against the claim only across its {sizes[True]} "
                       f"comparisons: Holm's step-down at one-sided α/2 = {half:g} in all.")
    if sizes[False] > 1:
        claim.rule += (f" A supporting check is reported decided the other way only across the claim's {sizes[False]} "
                       "supporting checks, by the same step-down.")
    return claim


@dataclass
class Claim:
    key: str
    statement: str
    rule: str = ""                                        # the decision rule, from the spec's `claims:`
    context: str = ""
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)        # what the verdict does not cover
    optional: set[str] = field(default_factory=set)       # groups that decide only where testable

    def groups(self) -> dict[str, str]:
        """group -> its outcome (see the module docstring)."""
        out: dict[str, list[str]] = {}
        for c in self.checks:
            if c.group is not None:
                out.setdefault(c.group, []).append(c.outcome)
        return {g: next((o for o in (NO, OVERLAP, YES) if o in outcomes), UNTESTABLE) for g, outcomes in out.items()}

    @property
    def verdict(self) -> str:
        groups = self.groups()
        outcomes = set(groups.values())
        if NO in outcomes:
            return FAILS
        if OVERLAP in outcomes:
            return UNSEPARATED
        if any(o == UNTESTABLE and g not in self.optional for g, o in groups.items()):
            return NOT_TESTABLE
        return HOLDS if YES in outcomes else NOT_TESTABLE

    def sentence(self) -> str:
        """The verdict in plain words, naming what decided it, then what it does not cover."""
        return " ".join([self._verdict_sentence(), *self.notes])

    def untested(self) -> list[Check]:
        """The comparisons a required group could not test (not testable, or not measured) where the group
        was decided on others: the part of the claim a "holds" does not cover."""
        return [c for c in self.checks if c.required and c.outcome in (UNTESTABLE, MISSING)
                and c.group not in self.optional]

    def excepted(self) -> list[Check]:
        """The supporting checks not decided as claimed (decided the other way, or not separated) that turn
        "holds" into "holds, except that …"."""
        return [c for c in self.checks if not c.required and c.outcome in (NO, OVERLAP)]

    def badge(self) -> str:
        """The verdict in a few words, for one-line verdicts and the report's badge: what a "holds" does not
        cover said with it (where it can be tested; except a supporting check), as the sentence says first."""
        if self.verdict != HOLDS:
            return self.verdict
        return HOLDS + (" where it can be tested" if self.untested() else "") + \
            (", except a supporting check" if self.excepted() else "")

    def decided(self) -> list[Check]:
        """The comparisons it needs (required, not of an optional group) decided as claimed: named beside any
        verdict that rests on others, so a "not testable here" does not read as "nothing was decided"."""
        return [c for c in self._those(YES) if c.group not in self.optional]

    def tally(self) -> str:
        """For one-line verdicts of a claim not testable here: how many of the comparisons it needs were decided
        as claimed ("" when none was)."""
        decided = len(self.decided()) if self.verdict == NOT_TESTABLE else 0
        return f"{decided} of the {decided + len(self.untested())} comparisons it needs decided as claimed" \
            if decided else ""

    def _those(self, outcome: str, required: bool = True) -> list[Check]:
        return [c for c in self.checks if c.required == required and c.outcome == outcome]

    def _verdict_sentence(self) -> str:
        def quoted(checks: list[Check], reasons: bool = False) -> str:
            return "; ".join(f"“{c.text}”" + (f" ({c.reason})" if reasons and c.reason else "") for c in checks)

        verdict = self.verdict
        untestable = [c for c in self.checks if c.required and c.outcome in (UNTESTABLE, MISSING)]
        # the comparisons it needs that could not be tested: said beside any verdict
        needed = self.untested()
        also = f" Not testable here: {quoted(needed, reasons=True)}." if needed else ""
        if verdict == FAILS:
            return f"Does not hold: the data show the opposite of {quoted(self._those(NO))}.{also}"
        if verdict == UNSEPARATED:
            straddle = [c for c in self._those(OVERLAP) if not c.alone and not c.reason and not c.permutation]
            neither = [c for c in self._those(OVERLAP) if not c.alone and not c.reason and c.permutation]
            tied = [c for c in self._those(OVERLAP) if not c.alone and c.reason]     # equal on every seed
            alone = [c for c in self._those(OVERLAP) if c.alone]
            parts = ([f"the interval straddles 0 (or the margin) for {quoted(straddle)}, although the seeds run "
                      "could detect the effect the claim is about"] if straddle else []) + \
                ([f"neither tail of the relabelings' p-values reaches α/2 for {quoted(neither)}, although these models "
                  "could detect the effect the claim is about"] if neither else []) + \
                ([f"both sides are equal on every seed for {quoted(tied)} (no difference either way, and no spread "
                  "to judge power by)"] if tied else []) + \
                ([f"{quoted(alone)} {'is' if len(alone) == 1 else 'are'} decided the other way by {'its' if len(alone) == 1 else 'their'} own "
                  "interval but not across the claim's comparisons (family-wise, Holm)"] if alone else [])
            return f"Cannot be separated: {'; '.join(parts)}.{also}"
        if verdict == NOT_TESTABLE:
            blocking = needed or untestable
            text = f"Not testable here: {quoted(blocking, reasons=True) or 'no comparison it needs was measured'}."
            # what was decided is said too: a reader should not take the rest of the claim for untested
            decided = self.decided()
            if decided:
                one = len(decided) == 1
                text += f" The other {len(decided)} comparison{'' if one else 's'} it needs " \
                        f"{'is' if one else 'are'} decided as claimed: {quoted(decided)}."
            return text
        failing = self.excepted()
        head = ("Holds where it can be tested" if needed else "Holds") + ("" if not failing else ", except that " + "; ".join(
            f"“{c.text}” " + ("is decided the other way" if c.outcome == NO else "is decided the other way by its "
                              "own interval only (family-wise, Holm)" if c.alone else "is not separated")
            for c in failing))
        mine = self.decided()
        if needed:
            total = len(mine) + len(needed)
            text = f"{head}: {len(mine)} of the {total} comparisons it needs {'is' if len(mine) == 1 else 'are'} " \
                   f"decided as claimed, and the other {len(needed)} {'is' if len(needed) == 1 else 'are'} not " \
                   f"testable here: {quoted(needed, reasons=True)}."
        else:
            one = len(mine) == 1
            text = f"{head}: the {len(mine)} comparison{'' if one else 's'} it needs {'is' if one else 'are'} " \
                   "decided as claimed."
        extra = [c for c in untestable if c not in needed]
        if extra:
            text += f" Not testable here, where it decides only if testable: {quoted(extra, reasons=True)}."
        return text


# ----------------------------------------------------------------------------------------------
# The data of one context (model, cue proportion, combination of swept values)
# ----------------------------------------------------------------------------------------------

class Slice:
    def __init__(self, evaluations: pd.DataFrame, barriers: pd.DataFrame, paths: pd.DataFrame, tasks: pd.DataFrame,
                 chance: float):
        self.chance = chance
        ev = stats.with_labels(evaluations, tasks) if not evaluations.empty else evaluations
        self.acc = ev.pivot_table(index="task_id", columns="eval_set", values="acc") if not ev.empty else None
        # the resolution of an accuracy: one image of the largest evaluation set (0: not recorded)
        sizes = ev["n"].to_numpy(dtype=float) if not ev.empty and "n" in ev else np.array([])
        self.acc_step = 1.0 / float(sizes.max()) if sizes.size and np.isfinite(sizes).all() and sizes.max() > 0 else 0.0
        self.labels = ev.drop_duplicates("task_id").set_index("task_id") if not ev.empty else None
        latest = tasks.drop_duplicates("task_id", keep="last") if not tasks.empty else tasks
        self.parent = {t: (p[0] if p is not None and len(p) else None)
                       for t, p in zip(latest.get("task_id", []), latest.get("parents", []))}
        # fine-tuning methods the sweep ran or tried (a row of any status): a control planned but without
        # results is missing, not absent by design
        ft = latest[latest["kind"] == vocab.FINETUNE] if "kind" in latest and "method" in latest else latest.iloc[:0]
        self.planned_methods = set(ft["method"].dropna()) if "method" in ft else set()
        self.barriers = barriers.assign(path=stats.path_variants(barriers)) \
            if len(barriers) else barriers.assign(path=pd.Series(dtype=object))
        keys = ["pair_type", "path", "eval_set", "metric", "definition"]
        self._groups = dict(tuple(self.barriers[[*keys, "value", "seed"]].groupby(keys))) \
            if len(self.barriers) else {}       # `barrier` reads value and seed: only those are split
        self._paths = self.barriers[["pair_type", "path"]].drop_duplicates() if len(self.barriers) else None
        self._extremes = self._curve_extremes(paths)
        self.methods = FINETUNE_METHOD_NAMES

    @staticmethod
    def _curve_extremes(paths: pd.DataFrame) -> dict:
        """(pair type, path, eval set) -> (the lowest accuracy of any of its pairs, the highest loss of any):
        its worst pair: a collapsed pair's barrier is capped, and so is any mean over pairs that holds it."""
        if paths.empty or "pair_type" not in paths:
            return {}
        p = paths[["pair_type", "eval_set", "acc", "loss"]].assign(path=stats.path_variants(paths))
        end = paths["alpha"].isin((0.0, 1.0)) if "alpha" in paths else pd.Series(False, index=paths.index)
        p = p.assign(end_acc=p["acc"].where(end), end_loss=p["loss"].where(end))
        worst = p.groupby(["pair_type", "path", "eval_set"]).agg(
            lo=("acc", "min"), hi=("loss", "max"), end_lo=("end_acc", "min"), end_hi=("end_loss", "max"))
        return {key: tuple(float(v) for v in (r.lo, r.hi, r.end_lo, r.end_hi)) for key, r in worst.iterrows()}

    def extremes(self, pair_type: str, path: str, eval_set: str) -> tuple[float, float]:
        return self._extremes.get((pair_type, path, eval_set), (np.nan,) * 4)[:2]

    def endpoint_extremes(self, pair_type: str, path: str, eval_set: str) -> tuple[float, float]:
        """(lowest accuracy, highest loss) of any pair's endpoints (α 0 or 1) on a set: a model that never
        learnt the set puts its path at the chance floor by itself."""
        return self._extremes.get((pair_type, path, eval_set), (np.nan,) * 4)[2:]

    # -- models --
    def models(self, kind: str, method: str | None = None, cue: bool | None = None) -> pd.DataFrame:
        """Accuracies (rows: seeds, columns: eval sets; the mean over a seed's models) of pretrained
        cue / no-cue models or of a fine-tuning method."""
        if self.labels is None or (method is not None and method not in self.methods):
            return pd.DataFrame()
        lab = self.labels[self.labels["kind"] == kind]
        if method is not None:
            lab = lab[lab["method"] == method]
        if cue is not None:
            lab = lab[stats.per_values(lab["cue_proportion"], None, lambda p: stats.is_no_cue(p) != cue).astype(bool)]
        out = self.acc.loc[self.acc.index.intersection(lab.index)]
        return out.groupby(lab.loc[out.index, "seed"].to_numpy()).mean() if len(out) else pd.DataFrame()

    def parents(self, method: str) -> pd.DataFrame:
        """Accuracies of the pretrained parents of `method`'s fine-tunings, by seed."""
        if self.labels is None or method not in self.methods:
            return pd.DataFrame()
        lab = self.labels[(self.labels["kind"] == vocab.FINETUNE) & (self.labels["method"] == method)]
        pairs = [(self.parent.get(t), s) for t, s in zip(lab.index, lab["seed"])]
        pairs = [(p, s) for p, s in pairs if p in self.acc.index]
        if not pairs:
            return pd.DataFrame()
        out = self.acc.loc[[p for p, _ in pairs]]
        return out.groupby(np.array([s for _, s in pairs])).mean()

    def reliance(self, acc: pd.DataFrame) -> dict[str, pd.Series]:
        """Per seed, the two cue-reliance indices of the paths table (tasks.paths.cue_reliance)."""
        out = {}
        if "randimg" in acc:
            out[RANDIMG] = acc["randimg"] - self.chance
        if {"nocue", "randcue"} <= set(acc.columns):
            out[RANDCUE] = acc["nocue"] - acc["randcue"]
        return out

    # -- pairs --
    def barrier(self, pair_type: str, path: str, eval_set: str, metric: str, definition: str) -> pd.Series:
        """Barriers per pair of a pair type and path on a set, indexed by seed (the mean of a seed's pairs)."""
        rows = self._groups.get((pair_type, path, eval_set, metric, definition))
        if rows is None or rows.empty:
            return pd.Series(dtype=float)
        return pd.Series(rows["value"].to_numpy(dtype=float), index=rows["seed"].to_numpy()).groupby(level=0).mean()

    def pair_types(self) -> list[str]:
        return list(self.barriers["pair_type"].dropna().unique()) if len(self.barriers) else []

    def paths(self, pair_type: str) -> list[str]:
        if self._paths is None:
            return []
        return sorted(self._paths[self._paths["pair_type"] == pair_type]["path"].unique(), key=stats.variant_sort_key)

    def designs(self, pair: str, *designs: str) -> list[str]:
        """The pair types present whose pair is `pair` and design one of `designs`."""
        out = []
        for pair_type in stats.order_pairs(self.pair_types()):
            try:
                p, design, _ = vocab.parse_pair_type(pair_type)
            except ValueError:
                continue
            if p == pair and design in designs:
                out.append(pair_type)
        return out

    def noise_floor(self) -> str | None:
        """The first `X~X:self` pair type present: a model with itself, the noise floor."""
        found = self.designs(vocab.CUE_CUE, vocab.SELF) + self.designs(vocab.NOCUE_NOCUE, vocab.SELF)
        return found[0] if found else None


