"""The claims (a)–(d) judged against their controls: they hold when the data separate them, and the
verdict says so plainly when they do not hold, cannot be told apart from seed-to-seed variation,
have too few seeds, or were not measured."""
from __future__ import annotations

import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import claims
from orchestrator.report.stats import Estimate
from tests.orchestrator.report_data import synthetic_sweep


def _results(data) -> dict[str, pd.DataFrame]:
    return {t: pd.DataFrame([dict(r, task_id=i) for i, rows in data[t].items() for r in rows]) for t in vocab.TABLES}


def _judge(**kwargs) -> dict[str, claims.Claim]:
    lams = kwargs.get("lams")
    found = claims.judge(_results(synthetic_sweep(**kwargs)), ("finetune.lam",) if lams else ())
    return {c.key: c for c in found} if not lams else found


def test_every_claim_holds_when_the_data_separate_it():
    judged = _judge()
    assert {k: c.verdict for k, c in judged.items()} == {k: claims.HOLDS for k in "abcd"}
    d = judged["d"]
    assert any("cue~cue" in c.text and c.required for c in d.checks)          # the same-data control
    assert any("noise floor" in c.text for c in d.checks)
    assert {r.role for r in d.rows} == {"claim", "control"}
    assert all(r.est.n == 3 for r in d.rows)                                    # n on every statistic
    c = judged["c"]
    assert any("naive_cued" in check.text and check.required for check in c.checks)
    assert "Holds" in d.sentence() and not d.notes and not c.notes


def test_a_missing_control_is_named_in_the_verdict():
    """Without naive_cued, CBFT's advantage over naive may come from its extra data: the verdict says so."""
    data = synthetic_sweep()
    for table in data:
        data[table] = {t: r for t, r in data[table].items() if "naive_cued" not in t}
    c = {k.key: k for k in claims.judge(_results(data))}["c"]
    assert c.verdict == claims.HOLDS and "naive_cued" in c.sentence() and "was not run" in c.sentence()


def test_a_barrier_like_that_of_same_data_pairs_is_not_called_a_mechanism():
    """cue~nocue barely above the cue~cue/nocue~nocue barriers: not separable, said plainly."""
    d = _judge(scale={"cue~nocue": 0.22})["d"]
    assert d.verdict == claims.UNSEPARATED
    assert "cannot be separated from seed-to-seed variation" in d.sentence().lower()
    assert "cue~cue" in d.sentence() or "nocue~nocue" in d.sentence()


def test_a_claim_the_data_contradict_does_not_hold():
    """CBFT keeps the cue (like naive): the paired differences go the wrong way."""
    judged = _judge(accuracy={"cbft": {"randimg": 0.97, "randcue": 0.05}})
    assert judged["c"].verdict == claims.FAILS and "Does not hold" in judged["c"].sentence()
    assert judged["a"].verdict == claims.HOLDS


def test_one_seed_is_too_few_and_missing_controls_are_named():
    judged = _judge(seeds=(0,))
    assert {c.verdict for c in judged.values()} == {claims.TOO_FEW}
    data = synthetic_sweep()
    for table in (vocab.PATHS, vocab.BARRIERS):
        data[table] = {t: r for t, r in data[table].items() if "cue_cue" not in t and "nocue_nocue" not in t}
    d = {c.key: c for c in claims.judge(_results(data))}["d"]
    assert d.verdict == claims.UNMEASURED
    assert "same data" in d.sentence()


def test_claims_per_combination_of_swept_values():
    judged = _judge(lams=(1.0, 3.0))
    assert [c.context for c in judged] == ["finetune.lam = 1"] * 4 + ["finetune.lam = 3"] * 4
    assert {c.verdict for c in judged} == {claims.HOLDS}


@pytest.mark.parametrize("a, b, outcome", [
    ((1.0, 1.1, 0.9, 1.05), (0.1, 0.2, 0.15), claims.YES),
    ((0.1, 0.2, 0.15), (1.0, 1.1, 0.9), claims.NO),
    ((0.5, 1.5, 1.0), (0.6, 1.2, 0.9), claims.OVERLAP),
    ((1.0,), (0.1, 0.2), claims.FEW),
    ((), (0.1, 0.2), claims.MISSING),
])
def test_separated(a, b, outcome):
    assert claims.separated(Estimate.of(a), Estimate.of(b)) == outcome


def test_claims_text_shows_verdicts_checks_and_n():
    text = claims.claims_text(list(_judge().values()))
    assert text.count("→ Holds") == 4 and "✓" in text and "n = 3" in text and "95% t-interval" in text
    short = claims.claims_text(list(_judge().values()), detail=False)
    assert short.count("HOLDS") == 4 and "✓" not in short
