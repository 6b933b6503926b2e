"""The paper's claims (a)–(d), each judged against its controls from a sweep's result tables.

Every statistic is a mean over independent models or pairs with its 95% t-interval
(`stats.t_interval`, n = models or pairs). A comparison is decided only when the data separate it:
two groups of independent pairs when their intervals do not overlap, paired quantities (the linear
and quadratic path of the same pair; two fine-tuning methods of the same pretrained model) when the
interval of their per-pair difference excludes 0. Otherwise it cannot be separated from
seed-to-seed variation, and a claim holds only when every comparison it needs is decided its way.

The report shows the claims as its first section; `mmc-sweep claims [SPEC] [key=value ...]` runs a
spec (the shipped default sweep without one) with `run_sweep`, so its tasks are cached and shared
with `mmc-sweep run`, then prints them (`report.print_claims`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from orchestrator import vocab
from orchestrator.report import stats
from orchestrator.report.stats import Estimate

HOLDS, FAILS, UNSEPARATED, TOO_FEW, UNMEASURED = (
    "holds", "does not hold", "cannot be separated from seed-to-seed variation", "too few seeds to judge",
    "not measured")
YES, NO, OVERLAP, FEW, MISSING = "yes", "no", "overlap", "few", "missing"
MARKS = {YES: "✓", NO: "✗", OVERLAP: "≈", FEW: "n<2", MISSING: "—"}
CLAIM, CONTROL, REFERENCE = "claim", "control", "reference"      # the role of a statistic shown with a claim
# The fine-tuning methods the claims are about (names in tasks.finetune.FINETUNE_METHODS): CBFT, naive
# fine-tuning, naive fine-tuning with CBFT's extra cued data (the control), CBFT's two steps alone.
CBFT, NAIVE, NAIVE_CUED, ABLATIONS = "cbft", "naive", "naive_cued", ("cbft_barrier", "cbft_invariance")
FOCUS_SETS = ("nocue", "cue")        # the two training distributions: where barrier verdicts are taken
RANDIMG, RANDCUE = "acc(randimg) − chance", "acc(nocue) − acc(randcue)"
PP = 100.0                           # fractions shown in percent / percentage points


@dataclass(frozen=True)
class Row:
    """One statistic shown with a claim: what it is about, the measure, the estimate, its role."""
    label: str
    measure: str
    est: Estimate
    role: str = CLAIM
    scale: float = 1.0
    unit: str = ""

    def value(self) -> str:
        return _fmt(self.est, self.scale, self.unit).rsplit(" (n =", 1)[0]


@dataclass(frozen=True)
class Check:
    """One comparison a claim needs: its text, the outcome (YES/NO/OVERLAP/FEW/MISSING), the
    evidence; a check that is not `required` supports the reading but does not decide the verdict."""
    text: str
    outcome: str
    evidence: str
    required: bool = True


@dataclass
class Claim:
    key: str
    statement: str
    context: str = ""
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)       # what the verdict does not cover

    @property
    def verdict(self) -> str:
        outcomes = {c.outcome for c in self.checks if c.required}
        for outcome, verdict in ((NO, FAILS), (OVERLAP, UNSEPARATED), (FEW, TOO_FEW), (MISSING, UNMEASURED)):
            if outcome in outcomes:
                return verdict
        return HOLDS if outcomes else UNMEASURED

    def sentence(self) -> str:
        """The verdict in one plain sentence, naming what decided it, then what it does not cover."""
        return " ".join([self._verdict_sentence(), *self.notes])

    def _verdict_sentence(self) -> str:
        needed = [c for c in self.checks if c.required]

        def those(outcome: str) -> str:         # the evidence of each is listed with the checks
            return "; ".join(f"“{c.text}”" for c in needed if c.outcome == outcome) + "."
        verdict = self.verdict
        if verdict == HOLDS:
            return f"Holds: each of the {len(needed)} comparisons it needs is decided as claimed."
        if verdict == FAILS:
            return "Does not hold: the data show the opposite of " + those(NO)
        if verdict == UNSEPARATED:
            return "Cannot be separated from seed-to-seed variation: the 95% intervals overlap for " + those(OVERLAP)
        if verdict == TOO_FEW:
            return "Too few independent models or pairs to judge (an interval needs n ≥ 2): " + those(FEW)
        missing = [c.text for c in needed if c.outcome == MISSING]
        return "Not measured by this sweep" + (f": {'; '.join(missing)}" if missing else "") + "."


# ----------------------------------------------------------------------------------------------
# Comparisons
# ----------------------------------------------------------------------------------------------

def _fmt(est: Estimate, scale: float = 1.0, unit: str = "") -> str:
    return est.text(digits=1 if scale != 1.0 else 3, scale=scale, unit=unit)


def separated(a: Estimate, b: Estimate) -> str:
    """Is a above b? YES/NO when their 95% intervals do not overlap, else OVERLAP; FEW at n = 1."""
    if not a.n or not b.n:
        return MISSING
    if math.isnan(a.ci_low) or math.isnan(b.ci_low):
        return FEW
    return YES if a.ci_low > b.ci_high else NO if a.ci_high < b.ci_low else OVERLAP


def positive(est: Estimate) -> str:
    """Is the mean above 0? YES/NO when the interval excludes 0."""
    if not est.n:
        return MISSING
    if math.isnan(est.ci_low):
        return FEW
    return YES if est.ci_low > 0 else NO if est.ci_high < 0 else OVERLAP


def check_above(text: str, a: Estimate, b: Estimate, names: tuple[str, str], scale=1.0, unit="",
                required=True) -> Check:
    evidence = f"{names[0]} {_fmt(a, scale, unit)} vs {names[1]} {_fmt(b, scale, unit)}"
    return Check(text, separated(a, b), evidence, required)


def check_paired(text: str, diff: Estimate, scale=1.0, unit="", required=True) -> Check:
    return Check(text, positive(diff), f"paired difference {_fmt(diff, scale, unit)}", required)


def paired_diff(a: pd.Series, b: pd.Series) -> Estimate:
    """Estimate of a − b over the keys both have (one value per independent pair or model)."""
    common = a.index.intersection(b.index)
    return Estimate.of((a[common] - b[common]).to_numpy(dtype=float))


# ----------------------------------------------------------------------------------------------
# The data of one context (model, cue proportion, combination of swept values)
# ----------------------------------------------------------------------------------------------

class _Slice:
    def __init__(self, evaluations: pd.DataFrame, barriers: pd.DataFrame, tasks: pd.DataFrame, chance: float):
        self.chance = chance
        ev = stats.with_labels(evaluations, tasks) if not evaluations.empty else evaluations
        self.acc = ev.pivot_table(index="task_id", columns="eval_set", values="acc") if not ev.empty else None
        self.labels = ev.drop_duplicates("task_id").set_index("task_id") if not ev.empty else None
        latest = tasks.drop_duplicates("task_id", keep="last") if not tasks.empty else tasks
        self.parent = {t: (p[0] if p is not None and len(p) else None)
                       for t, p in zip(latest.get("task_id", []), latest.get("parents", []))}
        sel = barriers[(barriers["metric"] == "loss") & (barriers["definition"] == "chord")]
        self.barriers = sel.assign(path=[stats.path_variant(k, a) for k, a in zip(sel["path_kind"], sel["alignment"])])
        self._groups = dict(tuple(self.barriers.groupby(["pair_type", "path", "eval_set"]))) if len(sel) else {}
        self.methods = stats.methods()

    def models(self, kind: str, method: str | None = None, cue: bool | None = None) -> pd.DataFrame:
        """Accuracies (rows: models, columns: eval sets) of pretrained cue / no-cue models or of a
        fine-tuning method, indexed by the pretrained model (the key that pairs methods)."""
        if self.labels is None or (method is not None and method not in self.methods):
            return pd.DataFrame()
        lab = self.labels[self.labels["kind"] == kind]
        if method is not None:
            lab = lab[lab["method"] == method]
        if cue is not None:
            lab = lab[lab["cue_proportion"].map(lambda p: stats.is_no_cue(p) != cue).astype(bool)]
        out = self.acc.loc[self.acc.index.intersection(lab.index)]
        key = [self.parent.get(t) or t for t in out.index] if kind == vocab.FINETUNE else list(out.index)
        return out.set_axis(key, axis=0)

    def reliance(self, acc: pd.DataFrame) -> dict[str, pd.Series]:
        """Per model, the two cue-reliance indices of the paths table (tasks.paths.cue_reliance)."""
        out = {}
        if "randimg" in acc:
            out[RANDIMG] = acc["randimg"] - self.chance
        if {"nocue", "randcue"} <= set(acc.columns):
            out[RANDCUE] = acc["nocue"] - acc["randcue"]
        return out

    def barrier(self, pair_type: str, path: str, eval_set: str, by_a: bool = False) -> pd.Series:
        """Loss barriers (chord) per pair, keyed by its endpoints (by endpoint A with `by_a`)."""
        rows = self._groups.get((pair_type, path, eval_set), self.barriers.iloc[:0])
        key = rows["endpoint_a"].astype(str) + ("" if by_a else "|" + rows["endpoint_b"].astype(str))
        return pd.Series(rows["value"].to_numpy(dtype=float), index=key.to_numpy()).groupby(level=0).mean()

    def pair_types(self) -> list[str]:
        return list(self.barriers["pair_type"].dropna().unique())

    def paths(self, pair_type: str) -> list[str]:
        return sorted(self.barriers[self.barriers["pair_type"] == pair_type]["path"].unique(),
                      key=stats.variant_sort_key)

    def noise_floor(self) -> str | None:
        """The first `X~X:self` pair type present: a model with itself, the noise floor."""
        for pair_type in stats.order_pairs(self.pair_types()):
            try:
                if vocab.parse_pair_type(pair_type)[1] == vocab.SELF:
                    return pair_type
            except ValueError:
                continue
        return None


def _reliance_rows(c: Claim, label: str, rel: dict[str, pd.Series], role: str) -> None:
    for measure in (RANDIMG, RANDCUE):
        if measure in rel:
            c.rows.append(Row(label, measure, Estimate.of(rel[measure]), role, PP, " pp"))


def claim_a(s: _Slice) -> Claim:
    c = Claim("a", "A model trained with the cue relies on it (randimg above chance, a random cue costs "
                   "accuracy); a model trained without it does not.")
    cue, nocue = s.models(vocab.PRETRAIN, cue=True), s.models(vocab.PRETRAIN, cue=False)
    rc, rn = s.reliance(cue), s.reliance(nocue)
    for label, acc, rel, role in (("cue model", cue, rc, CLAIM), ("no-cue model", nocue, rn, CONTROL)):
        for eval_set in FOCUS_SETS:
            if eval_set in acc:
                c.rows.append(Row(label, f"acc({eval_set})", Estimate.of(acc[eval_set]), role, PP, "%"))
        _reliance_rows(c, label, rel, role)
    cue_ri, nocue_ri = Estimate.of(rc.get(RANDIMG, [])), Estimate.of(rn.get(RANDIMG, []))
    c.checks += [
        Check("the cue model scores above chance on randimg", positive(cue_ri), f"{RANDIMG} {_fmt(cue_ri, PP, ' pp')}"),
        check_above("it does so more than the no-cue model", cue_ri, nocue_ri, ("cue", "no-cue"), PP, " pp"),
        check_above("a random cue costs the cue model more accuracy than the no-cue model",
                    Estimate.of(rc.get(RANDCUE, [])), Estimate.of(rn.get(RANDCUE, [])), ("cue", "no-cue"), PP, " pp")]
    return c


def claim_b(s: _Slice) -> Claim:
    c = Claim("b", "Naive fine-tuning on clean data keeps the cue reliance and stays linearly connected to the "
                   "pretrained model (its barrier is below that between independently trained models).")
    rel = s.reliance(s.models(vocab.FINETUNE, method=NAIVE))
    _reliance_rows(c, NAIVE, rel, CLAIM)
    est = Estimate.of(rel.get(RANDIMG, []))
    c.checks.append(Check("naive fine-tuning keeps randimg above chance", positive(est),
                          f"{RANDIMG} {_fmt(est, PP, ' pp')}"))
    ft = vocab.pair_type_name(vocab.PRETRAINED_FT, vocab.FINE_TUNED, method=NAIVE)
    refs = [p for p in (vocab.CUE_CUE, vocab.NOCUE_NOCUE, vocab.CUE_NOCUE) if p in s.pair_types()][:1]
    floor = s.noise_floor()
    for eval_set in FOCUS_SETS:
        b = Estimate.of(s.barrier(ft, vocab.LINEAR, eval_set))
        c.rows.append(Row(f"{ft} {vocab.LINEAR}", f"loss barrier on {eval_set}", b))
        for ref, role in [(r, CONTROL) for r in refs] + ([(floor, REFERENCE)] if floor else []):
            r = Estimate.of(s.barrier(ref, vocab.LINEAR, eval_set))
            c.rows.append(Row(f"{ref} {vocab.LINEAR}", f"loss barrier on {eval_set}", r, role))
            if role == CONTROL:
                c.checks.append(check_above(f"on {eval_set}, its linear barrier is below that of {ref}", r, b,
                                            (ref, ft)))
        if not refs:
            c.checks.append(Check(f"on {eval_set}, its linear barrier is below that of independently trained "
                                  "models", MISSING, "no cue~cue, nocue~nocue or cue~nocue pairs"))
    return c


def claim_c(s: _Slice) -> Claim:
    acc = {m: s.models(vocab.FINETUNE, method=m) for m in (CBFT, NAIVE, NAIVE_CUED, *ABLATIONS)}
    also = "" if acc[NAIVE_CUED].empty else ", also with the same extra cued data"
    c = Claim("c", "CBFT lowers the cue reliance (randimg towards chance, randcue towards clean accuracy) more "
                   f"than naive fine-tuning{also}, and leaves the pretrained model's linear basin.")
    shown = [m for m in s.methods if m in (CBFT, NAIVE, NAIVE_CUED, *ABLATIONS)]
    rel = {m: s.reliance(a) for m, a in acc.items()}
    for m in shown:
        if not acc[m].empty:
            role = CLAIM if m == CBFT else CONTROL if m in (NAIVE, NAIVE_CUED) else REFERENCE
            c.rows.append(Row(m, "acc(nocue)", Estimate.of(acc[m].get("nocue", [])), role, PP, "%"))
            _reliance_rows(c, m, rel[m], role)
    if acc[NAIVE_CUED].empty:
        c.notes.append(f"The control with CBFT's extra cued data ({NAIVE_CUED}) was not run: this sweep cannot tell "
                       "CBFT's objective apart from the extra data it sees.")
    empty = pd.Series(dtype=float)
    for other in (NAIVE, NAIVE_CUED):
        required = other == NAIVE or not acc[other].empty        # the control counts where it ran
        for measure, what in ((RANDIMG, "randimg reliance"), (RANDCUE, "cost of a random cue")):
            diff = paired_diff(rel[other].get(measure, empty), rel[CBFT].get(measure, empty))
            c.checks.append(check_paired(f"CBFT has a lower {what} than {other}", diff, PP, " pp", required))
    for measure, what in ((RANDIMG, "randimg to chance"), (RANDCUE, "randcue to its clean accuracy")):
        left = Estimate.of(rel[CBFT].get(measure, []))                  # reliance left: > 0 when separated
        c.checks.append(Check(f"CBFT brings {what} (no reliance left)", {YES: NO, NO: YES, OVERLAP: YES}.get(
            positive(left), positive(left)), f"{measure} {_fmt(left, PP, ' pp')}", required=False))
    diff = paired_diff(acc[CBFT].get("nocue", empty), acc[NAIVE].get("nocue", empty))
    c.checks.append(Check("CBFT's clean accuracy is not below naive fine-tuning's (no loss detected)",
                          MISSING if not diff.n else NO if positive(diff) == NO else YES,
                          f"paired difference {_fmt(diff, PP, ' pp')}"))
    for eval_set in FOCUS_SETS:
        bars = {m: s.barrier(vocab.pair_type_name(vocab.PRETRAINED_FT, vocab.FINE_TUNED, method=m), vocab.LINEAR,
                             eval_set, by_a=True) for m in shown}
        for m in (m for m in shown if len(bars[m])):
            c.rows.append(Row(f"{vocab.PRETRAINED_FT}:{m} {vocab.LINEAR}", f"loss barrier on {eval_set}",
                              Estimate.of(bars[m]), CLAIM if m == CBFT else CONTROL))
        c.checks.append(check_paired(f"on {eval_set}, CBFT's linear barrier to the pretrained model exceeds naive's",
                                     paired_diff(bars.get(CBFT, empty), bars.get(NAIVE, empty)),
                                     required=eval_set == "cue"))
    return c


def claim_d(s: _Slice) -> Claim:
    main, floor = vocab.CUE_NOCUE, s.noise_floor()
    aligned = any(p.startswith(vocab.ALIGNED) for p in s.paths(main))
    c = Claim("d", "Cue and no-cue models are not linearly connected — beyond the barrier between two models "
                   f"trained on the same data{', and also after alignment' if aligned else ''} — but a quadratic "
                   "path connects them better.")
    if not aligned:
        c.notes.append("No aligned paths were run: the claim is not tested after alignment.")
    same = [p for p in (vocab.CUE_CUE, vocab.NOCUE_NOCUE) if p in s.pair_types()]
    shown = stats.order_pairs([p for p in s.pair_types() if not p.startswith(vocab.PRETRAINED_FT)])
    for eval_set in FOCUS_SETS:
        def est(pair: str, path: str = vocab.LINEAR) -> Estimate:
            return Estimate.of(s.barrier(pair, path, eval_set))
        for pair in shown:
            for path in s.paths(pair):
                c.rows.append(Row(f"{pair} {path}", f"loss barrier on {eval_set}", est(pair, path),
                                  CLAIM if pair == main else CONTROL))
        linear = est(main)
        if floor:
            c.checks.append(check_above(f"on {eval_set}, the cue~nocue linear barrier is above the noise floor "
                                        f"({floor})", linear, est(floor), (main, floor)))
        else:
            c.checks.append(Check(f"on {eval_set}, the cue~nocue linear barrier is above 0", positive(linear),
                                  _fmt(linear)))
        for pair in same:
            c.checks.append(check_above(f"on {eval_set}, the cue~nocue linear barrier is above that of {pair}",
                                        linear, est(pair), (main, pair)))
        if not same:
            c.checks.append(Check(f"on {eval_set}, the cue~nocue linear barrier is above that of pairs trained on "
                                  "the same data", MISSING, "no cue~cue or nocue~nocue pairs in this sweep"))
        for path in [p for p in s.paths(main) if p.startswith(vocab.ALIGNED)]:
            for pair in [p for p in same if path in s.paths(p)]:
                c.checks.append(check_above(f"on {eval_set}, the cue~nocue barrier after {path} alignment is above "
                                            f"that of {pair}", est(main, path), est(pair, path), (main, pair)))
        quadratic = s.barrier(main, vocab.QUADRATIC, eval_set)
        c.checks.append(check_paired(f"on {eval_set}, the quadratic path lowers the cue~nocue barrier",
                                     paired_diff(s.barrier(main, vocab.LINEAR, eval_set), quadratic)))
        if floor and len(quadratic):
            above = separated(Estimate.of(quadratic), est(floor))
            c.checks.append(Check(f"on {eval_set}, no quadratic barrier is left above the noise floor",
                                  {YES: NO, NO: YES, OVERLAP: YES}.get(above, above),
                                  f"quadratic {_fmt(Estimate.of(quadratic))} vs {floor} {_fmt(est(floor))}",
                                  required=False))
    return c


CLAIMS = (claim_a, claim_b, claim_c, claim_d)


def _values(frames: list[pd.DataFrame], column: str) -> set:
    return {v for f in frames if column in f.columns for v in f[column].dropna()}


def judge(results: dict[str, pd.DataFrame], swept: tuple[str, ...] = ()) -> list[Claim]:
    """Every claim per context: model, cue proportion of the cue models, combination of swept
    values (one context for the usual sweep). Rows of no-cue models and pairs (cue proportion 0)
    and of tasks no axis affects belong to every context. [] without results or when the dataset's
    class count (for chance) is unknown."""
    ev, bars, tasks = results[vocab.EVALUATIONS], results[vocab.BARRIERS], results[vocab.TASKS]
    chance = stats.chance(_values([ev, bars], "dataset"))
    if chance is None:
        return []
    proportions = sorted(float(p) for p in _values([ev, bars], "cue_proportion") if p > 0) or [None]
    models = sorted(_values([ev, bars], "model")) or [None]
    out = []
    for model in models:
        for p in proportions:
            for combo in stats.swept_combos([ev, bars], swept):
                def keep(df: pd.DataFrame) -> pd.DataFrame:
                    df = stats.facet(df, combo)
                    if model is not None and "model" in df:
                        df = df[df["model"].isna() | (df["model"] == model)]
                    if p is not None and "cue_proportion" in df:
                        df = df[df["cue_proportion"].map(lambda v: stats.is_no_cue(v) or v == p).astype(bool)]
                    return df
                s = _Slice(keep(ev), keep(bars), tasks, chance)
                context = " · ".join(x for x in (str(model) if len(models) > 1 else "",
                                                 f"cue proportion {p:.0%}" if len(proportions) > 1 else "",
                                                 stats.facet_label(combo)) if x)
                for make in CLAIMS:
                    claim = make(s)
                    claim.context = context
                    out.append(claim)
    return out


def claims_text(claims: list[Claim], detail: bool = True) -> str:
    """The claims for a terminal: with `detail`, each claim's verdict sentence, its comparisons and the
    statistics behind them; without, one line per claim."""
    lines = []
    for claim in claims:
        where = f" [{claim.context}]" if claim.context else ""
        if not detail:
            note = " (see its notes)" if claim.notes else ""
            lines.append(f"({claim.key}){where} {claim.verdict.upper()}{note}: {claim.statement}")
            continue
        lines.append(f"({claim.key}){where} {claim.statement}\n    → {claim.sentence()}")
        lines += [f"      {MARKS[c.outcome]:<3} {c.text}: {c.evidence}" + ("" if c.required else " (supporting)")
                  for c in claim.checks]
        if claim.rows:
            table = pd.DataFrame([{"": r.role, "model / pair": r.label, "measure": r.measure, "n": r.est.n,
                                   "mean [95% t-interval]": r.value()} for r in claim.rows])
            lines.append("\n".join("    " + line for line in stats.format_table(table).splitlines()))
        lines.append("")
    return "\n".join(lines)
