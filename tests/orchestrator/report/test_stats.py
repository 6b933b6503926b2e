"""Barrier summaries and their intervals (coverage simulated), facets by swept settings, the
mechanism table, text tables and the fine-tuning table (Table 1 layout)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from orchestrator import vocab
from orchestrator.report import stats
from tasks.settings.finetune import FINETUNE_METHOD_NAMES
from tests.support.report_data import EVAL_SETS, METHODS, PAIRS, SEEDS, synthetic_sweep

LEVEL = 0.95
DRAWS = 4000


def _frame(data, table: str) -> pd.DataFrame:
    return pd.DataFrame([dict(r, task_id=t) for t, rows in data[table].items() for r in rows])


# ----------------------------------------------------------------------------------------------
# Intervals that cover
# ----------------------------------------------------------------------------------------------

def _samples(kind: str, n: int, rng) -> tuple[np.ndarray, float]:
    """DRAWS samples of n values from a known distribution, and its true mean."""
    if kind == "normal":                       # barrier-like: mean 0.7, sd 0.3
        return rng.normal(0.7, 0.3, (DRAWS, n)), 0.7
    return rng.gamma(5.0, 0.1, (DRAWS, n)), 0.5     # skewed, positive


@pytest.mark.parametrize("kind", ["normal", "gamma"])
@pytest.mark.parametrize("n", [3, 5, 10])
def test_t_interval_covers_the_true_mean(kind, n):
    rng = np.random.default_rng(1000 * n + len(kind))
    samples, mean = _samples(kind, n, rng)
    covered = 0
    for values in samples:
        low, high = stats.t_interval(values, LEVEL)
        covered += low <= mean <= high
    assert 0.90 <= covered / DRAWS <= 0.98, f"{kind}, n = {n}: {covered / DRAWS:.3f} of draws covered"


def _percentile_bootstrap(samples: np.ndarray, rng, n_boot: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The interval the report used before: percentiles of the means of resampled values."""
    draws, n = samples.shape
    idx = rng.integers(0, n, (draws, n_boot, n))
    means = np.take_along_axis(np.broadcast_to(samples[:, None, :], idx.shape), idx, axis=2).mean(axis=2)
    return np.percentile(means, 100 * (1 - LEVEL) / 2, axis=1), np.percentile(means, 100 * (1 + LEVEL) / 2, axis=1)


def test_the_old_percentile_bootstrap_does_not_cover_at_n3():
    """The bug the t-interval replaced: with 3 values the bootstrap interval is about [min, max]."""
    rng = np.random.default_rng(7)
    samples, mean = _samples("normal", 3, rng)
    low, high = _percentile_bootstrap(samples, rng)
    coverage = float(np.mean((low <= mean) & (mean <= high)))
    assert coverage < 0.85, f"the bootstrap covered {coverage:.3f}: the simulation no longer shows the bug"
    t_low, t_high = np.array([stats.t_interval(v, LEVEL) for v in samples[:200]]).T
    assert np.median((high[:200] - low[:200]) / (t_high - t_low)) < 0.5      # far narrower than t


def test_t_interval_is_the_textbook_formula_and_nan_below_two():
    values = np.array([0.2, 0.5, 0.9, 0.4])
    half = scipy_stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2
    assert stats.t_interval(values) == pytest.approx((values.mean() - half, values.mean() + half))
    assert all(np.isnan(stats.t_interval([1.0])))
    est = stats.Estimate.of([0.1, np.nan, 0.3])
    assert est.n == 2 and est.mean == pytest.approx(0.2) and "(n = 2)" in est.text()


# ----------------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------------

def test_summarize_matches_numpy_and_scipy():
    barriers = _frame(synthetic_sweep(), "barriers")
    summary = stats.summarize(barriers)
    keys = [*stats.GROUP_KEYS, "dataset", "model", "cue_proportion"]
    assert list(summary.columns) == [*keys, *stats.SUMMARY_COLUMNS]
    assert len(summary) == len(PAIRS) * len(EVAL_SETS) * 2 * len(vocab.DEFINITIONS)
    for row in summary.itertuples(index=False):
        mask = np.ones(len(barriers), dtype=bool)
        for k in keys:
            v = getattr(row, k)
            mask &= barriers[k].isna().to_numpy() if pd.isna(v) else (barriers[k] == v).to_numpy()
        vals = barriers.loc[mask, "value"].to_numpy()
        assert row.n == len(vals) == len(SEEDS)
        assert row.mean == pytest.approx(np.mean(vals)) and row.std == pytest.approx(np.std(vals, ddof=1))
        low, high = scipy_stats.t.interval(0.95, len(vals) - 1, loc=np.mean(vals), scale=scipy_stats.sem(vals))
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high))


def test_summarize_single_value_and_nan():
    df = pd.DataFrame({"pair_type": ["a", "b", "b", "b"], "path_kind": vocab.LINEAR, "alignment": None,
                       "eval_set": "cue", "metric": "loss", "definition": "chord", "value": [0.7, 1.0, np.nan, 3.0]})
    out = stats.summarize(df).set_index("pair_type")
    assert out.loc["a", "n"] == 1 and np.isnan(out.loc["a", "std"]) and np.isnan(out.loc["a", "ci_low"])
    assert out.loc["b", "n"] == 2 and out.loc["b", "mean"] == pytest.approx(2.0)
    assert out["alignment"].isna().all()  # None group keys are kept, not dropped


def test_summarize_keeps_datasets_apart_and_groups_by_swept_settings():
    base = {"pair_type": "p", "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue", "metric": "loss",
            "definition": "chord"}
    df = pd.DataFrame([dict(base, dataset=d, value=v) for d, v in (("digits", 1.0), ("digits", 2.0), ("cifar10", 5.0))])
    out = stats.summarize(df).set_index("dataset")
    assert out.loc["digits", "mean"] == 1.5 and out.loc["cifar10", "mean"] == 5.0
    swept = pd.DataFrame([dict(base, value=v, **{"finetune.lam": lam}) for v, lam in
                          ((1.0, 1.0), (3.0, 1.0), (10.0, 3.0), (7.0, None))])
    out = stats.summarize(swept, swept=("finetune.lam",))
    assert sorted(out["n"]) == [1, 1, 2] and "finetune.lam" in out.columns


def test_summarize_empty():
    out = stats.summarize(pd.DataFrame(columns=[*stats.GROUP_KEYS, "value"]))
    assert out.empty and {"n", "mean", "ci_low"} <= set(out.columns)


def test_facets_share_rows_no_axis_affects():
    df = pd.DataFrame({"finetune.lam": [1.0, 3.0, None, 1.0], "finetune.lr": [0.1, 0.1, None, 0.2],
                       "x": ["a", "b", "shared", "c"]})
    combos = stats.swept_combos([df], ("finetune.lam", "finetune.lr"))
    assert combos == [{"finetune.lam": 1.0, "finetune.lr": 0.1}, {"finetune.lam": 1.0, "finetune.lr": 0.2},
                      {"finetune.lam": 3.0, "finetune.lr": 0.1}]
    assert list(stats.facet(df, combos[0])["x"]) == ["a", "shared"]
    assert stats.facet_label(combos[2]) == "finetune.lam = 3, finetune.lr = 0.1"
    assert stats.swept_combos([df], ()) == [{}] and stats.swept_combos([df], ("absent.key",)) == [{}]


def test_controls_follow_their_pair():
    order = stats.order_pairs(["pretrained~ft:cbft", "nocue~nocue:self", "cue~cue", "cue~nocue:same-init",
                               "pretrained~ft:naive", "cue~nocue", "cue~cue:spawn@2"], ("naive", "cbft"))
    assert order == ["cue~nocue", "cue~nocue:same-init", "cue~cue", "cue~cue:spawn@2", "nocue~nocue:self",
                     "pretrained~ft:naive", "pretrained~ft:cbft"]


def test_mechanism_table_at_the_endpoints():
    paths = _frame(synthetic_sweep(), "paths")
    mech = stats.mechanism_table(paths)
    assert set(mech["pair_type"]) == {p[0] for p in PAIRS} and (mech["n"] == len(SEEDS)).all()
    assert mech["agree_a@0"].to_numpy() == pytest.approx(1.0) and mech["agree_b@1"].to_numpy() == pytest.approx(1.0)
    row = mech[(mech["pair_type"] == "cue~nocue") & (mech["path_kind"] == vocab.LINEAR)].iloc[0]
    assert row["reliance_randimg@0"] > 0.5 > abs(row["reliance_randimg@1"])
    assert row["reliance_randimg@0_low"] <= row["reliance_randimg@0"] <= row["reliance_randimg@0_high"]


def test_stats_and_figures_import_no_torch():
    """The figure workers import these modules; the tasks/ registries (torch) load only on use."""
    code = "import sys, orchestrator.report.stats, orchestrator.report.figures; print('torch' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ----------------------------------------------------------------------------------------------
# Text tables and Table 1
# ----------------------------------------------------------------------------------------------

def test_format_table_aligns_and_marks_missing():
    df = pd.DataFrame({"name": ["alpha", "b"], "value": [1.23456, np.nan], "n": [3, 10]})
    lines = stats.format_table(df, digits=2).splitlines()
    assert lines[0].split() == ["name", "value", "n"]
    assert "1.23" in lines[2] and "—" in lines[3]
    assert lines[2].index("1.23") + 4 == lines[3].index("—") + 1  # numbers right-aligned
    md = stats.format_markdown(df, digits=2).splitlines()
    assert md[0] == "| name | value | n |" and md[1] == "| --- | ---: | ---: |" and len(md) == 4


def test_finetune_table_cells_match_seed_statistics():
    data = synthetic_sweep()
    evaluations, tasks = _frame(data, "evaluations"), _frame(data, "tasks")
    text, long = stats.finetune_table(evaluations, tasks)
    assert text["method"].tolist() == [stats.PRETRAINED_NOCUE, stats.PRETRAINED_CUE,
                                       *[m for m in FINETUNE_METHOD_NAMES if m in METHODS]]
    assert text.columns.tolist() == ["method"] + [f"80% {e}" for e in EVAL_SETS] + ["n"]
    accs = evaluations[(evaluations["method"] == "cbft") & (evaluations["eval_set"] == "randimg")]["acc"].to_numpy()
    assert text.set_index("method").loc["cbft", "80% randimg"] == f"{100 * accs.mean():.1f} ± {100 * accs.std(ddof=1):.1f}"
    assert (text["n"] == str(len(SEEDS))).all() and (long["n"] == len(SEEDS)).all()
    ref = evaluations[(evaluations["kind"] == vocab.PRETRAIN) & (evaluations["cue_proportion"] == 0)
                      & (evaluations["eval_set"] == "nocue")]["acc"]
    cell = long[(long["row"] == stats.PRETRAINED_NOCUE) & (long["eval_set"] == "nocue")]
    assert len(cell) == 1 and cell["mean"].iloc[0] == pytest.approx(ref.mean())


def test_finetune_table_marks_missing_cells_and_one_seed():
    data = synthetic_sweep(seeds=(0,))
    evaluations, tasks = _frame(data, "evaluations"), _frame(data, "tasks")
    evaluations = evaluations[evaluations["method"] != "cbft"]
    tasks.loc[tasks["method"] == "cbft", "status"] = vocab.FAILED
    extra = tasks[tasks["method"] == "naive"].head(1).assign(task_id="ft-llrt", method="llrt", cue_proportion=0.9,
                                                              status=vocab.FAILED)
    text, _ = stats.finetune_table(evaluations, pd.concat([tasks, extra], ignore_index=True))
    table = text.set_index("method")
    cells = [c for c in table.columns if c != "n"]
    assert (table.loc["cbft", cells] == stats.MISSING).all() and (table.loc["llrt", cells] == stats.MISSING).all()
    assert table.loc["naive", "90% nocue"] == stats.MISSING and "±" not in table.loc["naive", "80% nocue"]
    assert table.loc["naive", "n"] == "1"
    assert table.loc[stats.PRETRAINED_NOCUE, "90% cue"] == table.loc[stats.PRETRAINED_NOCUE, "80% cue"]


def test_finetune_table_ignores_evaluations_of_failed_tasks():
    data = synthetic_sweep()
    evaluations, tasks = _frame(data, "evaluations"), _frame(data, "tasks")
    tasks.loc[tasks["method"] == "naive", "status"] = vocab.FAILED
    table = stats.finetune_table(evaluations, tasks).text.set_index("method")
    assert (table.loc["naive"].drop("n") == stats.MISSING).all()


def test_summarize_keeps_cue_proportions_apart():
    """Pairs of two cue proportions are two populations: one mean and interval each, never pooled."""
    base = {"pair_type": "cue~nocue", "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue",
            "metric": "loss", "definition": "chord"}
    df = pd.DataFrame([dict(base, cue_proportion=p, value=v)
                       for p, v in ((0.5, 0.2), (0.5, 0.4), (0.9, 1.0), (0.9, 1.4))])
    out = stats.summarize(df).set_index("cue_proportion")
    assert sorted(out.index) == [0.5, 0.9] and out["n"].tolist() == [2, 2]
    assert out.loc[0.5, "mean"] == pytest.approx(0.3) and out.loc[0.9, "mean"] == pytest.approx(1.2)
    half = scipy_stats.t.ppf(0.975, 1) * np.std([1.0, 1.4], ddof=1) / np.sqrt(2)
    assert (out.loc[0.9, "ci_low"], out.loc[0.9, "ci_high"]) == pytest.approx((1.2 - half, 1.2 + half))


def test_a_dataset_label_missing_on_some_rows_still_keeps_datasets_apart():
    base = {"pair_type": "p", "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue", "metric": "loss",
            "definition": "chord"}
    df = pd.DataFrame([dict(base, dataset=d, value=v)
                       for d, v in (("digits", 1.0), ("digits", 2.0), ("cifar10", 5.0), (None, 7.0))])
    out = stats.summarize(df)
    assert sorted(out["mean"]) == [1.5, 5.0, 7.0] and sorted(out["n"]) == [1, 1, 2]


def test_a_setting_column_with_two_values_is_a_swept_axis():
    base = {"pair_type": "p", "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue", "metric": "loss",
            "definition": "chord"}
    df = pd.DataFrame([dict(base, value=v, **{"finetune.lam": lam}) for v, lam in ((1.0, 1.0), (3.0, 1.0), (10.0, 3.0))])
    out = stats.summarize(df).set_index("finetune.lam")         # swept columns found, not given
    assert out.loc[1.0, "mean"] == 2.0 and out.loc[3.0, "mean"] == 10.0


def test_a_retried_task_counts_by_its_latest_status():
    """A fine-tuning that failed, was retried and finished: its evaluations count (its latest status);
    one that finished and then failed on a rerun does not."""
    data = synthetic_sweep()
    evaluations, tasks = _frame(data, "evaluations"), _frame(data, "tasks")
    naive = tasks["task_id"].str.startswith("finetune-naive")
    retried = tasks[naive].assign(status=vocab.FAILED)
    tasks = pd.concat([retried, tasks], ignore_index=True)                   # failed first, finished last
    table = stats.finetune_table(evaluations, tasks).text.set_index("method")
    assert table.loc["naive", "n"] == str(len(SEEDS))
    tasks = pd.concat([tasks, retried], ignore_index=True)                   # failed last
    table = stats.finetune_table(evaluations, tasks).text.set_index("method")
    assert (table.loc["naive"].drop("n") == stats.MISSING).all()


def test_endpoint_drift_is_path_minus_trained_at_each_end():
    """Two pairs; the path's endpoint A (alpha 0) and B (alpha 1) against the trained models' own rows."""
    paths, evals = [], []
    for k, (la, lb) in enumerate(((0.5, 0.7), (0.6, 0.9))):
        a, b = f"m{k}a", f"m{k}b"
        for alpha, loss in ((0.0, la), (0.5, 2.0), (1.0, lb)):
            paths.append({"task_id": f"p{k}", "pair_type": "cue~cue", "path_kind": vocab.LINEAR, "alignment": None,
                          "eval_set": "cue", "alpha": alpha, "loss": loss, "acc": 0.9, "endpoint_a": a, "endpoint_b": b})
        evals += [{"task_id": a, "eval_set": "cue", "loss": 0.4, "acc": 0.95},
                  {"task_id": b, "eval_set": "cue", "loss": 0.5, "acc": 0.8}]
    drift = stats.endpoint_drift(pd.DataFrame(paths), pd.DataFrame(evals)).set_index("endpoint")
    assert drift.loc["A", "n"] == 2 and drift.loc["A", "loss_drift"] == pytest.approx(((0.5 - 0.4) + (0.6 - 0.4)) / 2)
    assert drift.loc["B", "loss_drift"] == pytest.approx(((0.7 - 0.5) + (0.9 - 0.5)) / 2)
    assert drift.loc["A", "acc_drift"] == pytest.approx(0.9 - 0.95) and drift.loc["B", "acc_drift"] == pytest.approx(0.1)


def test_cue_proportion_is_a_label_worth_a_column_only_with_two_cue_settings_above_zero():
    assert stats.varying_labels(pd.DataFrame({"cue_proportion": [0.0, 0.8, 0.8]})) == []
    assert stats.varying_labels(pd.DataFrame({"cue_proportion": [0.0, 0.5, 0.8]})) == ["cue_proportion"]


def test_chance_needs_one_class_count():
    assert stats.chance(["digits", "cifar10"]) == pytest.approx(0.1)          # 10 classes each
    assert stats.chance(["digits", "cifar100"]) is None                      # 10 and 100: no one chance
    assert stats.chance(["cifar100"]) == pytest.approx(0.01)


# ----------------------------------------------------------------------------------------------
# Levels, texts and orders a reader sees
# ----------------------------------------------------------------------------------------------

def test_an_estimates_text_scales_its_interval_as_its_mean():
    """A reliance of 0.50 [0.40, 0.60] shown in pp is 50.0 pp [40.0, 60.0]: the interval on the mean's scale."""
    est = stats.Estimate(3, 0.5, 0.1, 0.4, 0.6)
    assert est.text(digits=1, scale=100.0, unit=" pp") == "50.0 pp [40.0, 60.0] (n = 3)"


def test_summaries_and_estimates_use_the_level_asked_for():
    """A 90% interval is mean ± t_.95(n − 1) · s / √n (scipy's t.interval at 0.90), narrower than the 95% one."""
    values = [0.2, 0.5, 0.9, 0.4]
    low, high = scipy_stats.t.interval(0.90, 3, loc=np.mean(values), scale=scipy_stats.sem(values))
    est = stats.Estimate.of(values, 0.90)
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high))
    df = pd.DataFrame({"pair_type": "p", "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue",
                       "metric": "loss", "definition": "chord", "value": values})
    row = stats.summarize(df, level=0.90).iloc[0]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))


def test_a_setting_column_with_one_value_is_not_a_swept_axis():
    """Only a `<section>.<field>` column taking several values is a swept axis: one value adds no column."""
    df = pd.DataFrame({"pair_type": "p", "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue",
                       "metric": "loss", "definition": "chord", "value": [1.0, 3.0], "finetune.lam": [2.0, 2.0]})
    out = stats.summarize(df)
    assert "finetune.lam" not in out.columns and out["n"].tolist() == [2]


def test_spawn_controls_are_ordered_by_their_epoch_as_a_number():
    """spawn@0, @2, @10: the epoch K ascending (as numbers, not as text where "10" < "2")."""
    assert stats.order_pairs(["cue~cue:spawn@10", "cue~cue:spawn@2", "cue~cue:spawn@0"]) == \
        ["cue~cue:spawn@0", "cue~cue:spawn@2", "cue~cue:spawn@10"]


def test_an_evaluation_of_a_task_missing_from_the_tasks_table_still_counts():
    """Only rows of tasks whose latest status is not finished are dropped: a task the tasks table does not
    name has no status, so its evaluations (with their own labels) stay in Table 1."""
    data = synthetic_sweep()
    evaluations, tasks = _frame(data, "evaluations"), _frame(data, "tasks")
    tasks = tasks[tasks["method"] != "naive"]
    table = stats.finetune_table(evaluations, tasks).text.set_index("method")
    assert table.loc["naive", "n"] == str(len(SEEDS)) and stats.MISSING not in table.loc["naive"].tolist()


def test_labels_from_the_tasks_table_only_fill_what_the_evaluations_lack():
    """An evaluation that names its own seed keeps it; the tasks table fills only a missing label."""
    ev = pd.DataFrame({"task_id": ["t1", "t2"], "seed": [5.0, None], "acc": [0.5, 0.6]})
    tasks = pd.DataFrame({"task_id": ["t1", "t2"], "seed": [1, 2], "status": vocab.FINISHED})
    assert stats.with_labels(ev, tasks)["seed"].tolist() == [5.0, 2.0]


def test_table_one_shows_the_range_of_seeds_where_cells_differ():
    """naive with 3 seeds on every set but one seed's `nocue` evaluation missing: cells of 2 and 3 seeds,
    shown as the range "2–3" (smallest–largest)."""
    data = synthetic_sweep()
    evaluations, tasks = _frame(data, "evaluations"), _frame(data, "tasks")
    first_naive = sorted(evaluations.loc[evaluations["method"] == "naive", "task_id"].unique())[0]
    evaluations = evaluations[~((evaluations["task_id"] == first_naive) & (evaluations["eval_set"] == "nocue"))]
    table = stats.finetune_table(evaluations, tasks).text.set_index("method")
    assert table.loc["naive", "n"] == "2–3"


def test_the_mechanism_table_defaults_to_the_first_evaluation_set():
    """`eval_set` defaults to the first evaluation set (EVAL_SETS order: nocue before randimg), whatever
    order the rows come in: agreement 0.9 on nocue, 0.2 on randimg."""
    rows = [{"task_id": f"p{s}", "pair_type": "cue~cue", "path_kind": vocab.LINEAR, "alignment": None,
             "eval_set": e, "alpha": a, "agree_a": agree, "agree_b": agree, "reliance_randimg": 0.0,
             "reliance_randcue": 0.0}
            for s in range(2) for e, agree in (("randimg", 0.2), ("nocue", 0.9)) for a in (0.0, 0.5, 1.0)]
    mech = stats.mechanism_table(pd.DataFrame(rows))
    assert mech["agree_a@0.5"].tolist() == pytest.approx([0.9])
