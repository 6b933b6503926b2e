"""Barrier summaries, text tables and the fine-tuning table (Table 1 layout)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator import stats
from tests.orchestrator.test_sinks import EVAL_SETS, METHODS, SEEDS, synthetic_sweep


def _frame(tables, table: str) -> pd.DataFrame:
    return pd.DataFrame([dict(r, task_id=t) for t, rows in tables[table].items() for r in rows])


def test_summarize_matches_numpy():
    barriers = _frame(synthetic_sweep(), "barriers")
    summary = stats.summarize(barriers, seed=0, n_boot=500)
    keys = list(stats.GROUP_KEYS)
    assert list(summary.columns[: len(keys)]) == keys
    # every (pair, path, alignment, eval set, metric, definition) appears once
    assert len(summary) == 6 * 4 * 2 * 2
    for row in summary.itertuples(index=False):
        mask = np.ones(len(barriers), dtype=bool)
        for k in keys:
            v = getattr(row, k)
            mask &= barriers[k].isna().to_numpy() if pd.isna(v) else (barriers[k] == v).to_numpy()
        vals = barriers.loc[mask, "value"].to_numpy()
        assert row.n == len(vals) == len(SEEDS)
        assert row.mean == pytest.approx(np.mean(vals))
        assert row.std == pytest.approx(np.std(vals, ddof=1))
        assert vals.min() - 1e-12 <= row.ci_low <= row.mean <= row.ci_high <= vals.max() + 1e-12


def test_summarize_single_value_and_nan():
    df = pd.DataFrame({"pair_type": ["a", "b", "b", "b"], "path_kind": "linear", "alignment": None,
                       "eval_set": "cue", "metric": "loss", "definition": "chord",
                       "value": [0.7, 1.0, np.nan, 3.0]})
    out = stats.summarize(df).set_index("pair_type")
    assert out.loc["a", "n"] == 1 and out.loc["a", "std"] == 0.0
    assert out.loc["a", "ci_low"] == out.loc["a", "ci_high"] == 0.7
    assert out.loc["b", "n"] == 2 and out.loc["b", "mean"] == pytest.approx(2.0)
    assert out["alignment"].isna().all()  # None group keys are kept, not dropped


def test_bootstrap_interval_width_matches_normal_theory():
    rng = np.random.default_rng(1)
    vals = rng.normal(5.0, 2.0, size=60)
    df = pd.DataFrame({"pair_type": "x", "path_kind": "linear", "alignment": None, "eval_set": "cue",
                       "metric": "loss", "definition": "chord", "value": vals})
    row = stats.summarize(df, seed=3, n_boot=4000).iloc[0]
    half = 1.96 * vals.std(ddof=1) / np.sqrt(len(vals))
    assert row.ci_high - row.ci_low == pytest.approx(2 * half, rel=0.15)
    assert (row.ci_low + row.ci_high) / 2 == pytest.approx(vals.mean(), abs=0.2 * half)
    again = stats.summarize(df, seed=3, n_boot=4000).iloc[0]
    assert (again.ci_low, again.ci_high) == (row.ci_low, row.ci_high)  # seeded


def test_summarize_keeps_datasets_apart():
    base = {"pair_type": "p", "path_kind": "linear", "alignment": None, "eval_set": "cue",
            "metric": "loss", "definition": "chord"}
    df = pd.DataFrame([dict(base, dataset=d, value=v) for d, v in
                       (("digits", 1.0), ("digits", 2.0), ("cifar10", 5.0))])
    out = stats.summarize(df).set_index("dataset")
    assert out.loc["digits", "mean"] == 1.5 and out.loc["cifar10", "mean"] == 5.0


def test_summarize_empty():
    out = stats.summarize(pd.DataFrame(columns=[*stats.GROUP_KEYS, "value"]))
    assert out.empty and {"n", "mean", "ci_low"} <= set(out.columns)


def test_format_table_aligns_and_marks_missing():
    df = pd.DataFrame({"name": ["alpha", "b"], "value": [1.23456, np.nan], "n": [3, 10]})
    text = stats.format_table(df, digits=2)
    lines = text.splitlines()
    assert lines[0].split() == ["name", "value", "n"]
    assert "1.23" in lines[2] and "—" in lines[3]
    assert lines[2].index("1.23") + 4 == lines[3].index("—") + 1  # numbers right-aligned
    md = stats.format_markdown(df, digits=2).splitlines()
    assert md[0] == "| name | value | n |" and md[1] == "| --- | ---: | ---: |" and len(md) == 4


def test_finetune_table_cells_match_seed_statistics():
    tables = synthetic_sweep()
    evaluations, tasks = _frame(tables, "evaluations"), _frame(tables, "tasks")
    text, long = stats.finetune_table(evaluations, tasks)
    assert text["method"].tolist() == [stats.PRETRAINED_NOCUE, stats.PRETRAINED_CUE, *METHODS]
    assert text.columns.tolist() == ["method"] + [f"80% {e}" for e in EVAL_SETS]
    cbft = evaluations[(evaluations["method"] == "cbft") & (evaluations["eval_set"] == "randimg")]
    accs = cbft["acc"].to_numpy()
    want = f"{100 * accs.mean():.1f} ± {100 * accs.std(ddof=1):.1f}"
    assert text.set_index("method").loc["cbft", "80% randimg"] == want
    ref = evaluations[(evaluations["kind"] == "pretrain") & (evaluations["cue_proportion"] == 0)
                      & (evaluations["eval_set"] == "nocue")]["acc"]
    cell = long[(long["row"] == stats.PRETRAINED_NOCUE) & (long["eval_set"] == "nocue")]
    assert len(cell) == 1 and cell["mean"].iloc[0] == pytest.approx(ref.mean())
    assert (long["n"] == len(SEEDS)).all()


def test_finetune_table_marks_missing_cells():
    tables = synthetic_sweep()
    evaluations, tasks = _frame(tables, "evaluations"), _frame(tables, "tasks")
    evaluations = evaluations[evaluations["method"] != "cbft"]
    failed = tasks["method"] == "cbft"
    tasks.loc[failed, "status"] = "failed"
    extra = tasks[tasks["method"] == "naive"].head(1).assign(task_id="ft-llrt", method="llrt",
                                                             cue_proportion=0.9, status="failed")
    text, _ = stats.finetune_table(evaluations, pd.concat([tasks, extra], ignore_index=True))
    table = text.set_index("method")
    assert (table.loc["cbft"] == stats.MISSING).all() and (table.loc["llrt"] == stats.MISSING).all()
    assert table.loc["naive", "90% nocue"] == stats.MISSING
    assert table.loc["naive", "80% nocue"] != stats.MISSING
    # the no-cue reference is repeated under every cue proportion
    assert table.loc[stats.PRETRAINED_NOCUE, "90% cue"] == table.loc[stats.PRETRAINED_NOCUE, "80% cue"]


def test_finetune_table_ignores_evaluations_of_failed_tasks():
    tables = synthetic_sweep()
    evaluations, tasks = _frame(tables, "evaluations"), _frame(tables, "tasks")
    tasks.loc[tasks["method"] == "naive", "status"] = "failed"
    table = stats.finetune_table(evaluations, tasks).text.set_index("method")
    assert (table.loc["naive"] == stats.MISSING).all()
