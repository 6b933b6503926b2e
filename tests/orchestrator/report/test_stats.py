"""Barrier summaries and their intervals (coverage simulated), facets by swept settings, the
mechanism table, text tables and the fine-tuning table (Table 1 layout)."""

from __future__ import annotations

import math
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


def test_two_cue_proportions_that_round_to_one_percent_keep_their_own_columns_and_numbers():
    """0.8 and 0.804 are two conditions: "80%" for both would merge their columns, and one's numbers would
    show under the other's label."""
    data = synthetic_sweep(seeds=(0,))
    evaluations, tasks = _frame(data, "evaluations"), _frame(data, "tasks")
    naive = tasks[tasks["method"] == "naive"].head(1)
    moved = naive.assign(task_id="ft-near", cue_proportion=0.804)
    rows = evaluations[evaluations["task_id"] == naive["task_id"].iloc[0]].assign(task_id="ft-near",
                                                                                   cue_proportion=0.804, acc=0.123)
    text, _ = stats.finetune_table(pd.concat([evaluations, rows], ignore_index=True),
                                   pd.concat([tasks, moved], ignore_index=True))
    table = text.set_index("method")
    assert table.columns.is_unique and {"80% nocue", "80.4% nocue"} <= set(table.columns)
    assert table.loc["naive", "80.4% nocue"] == "12.3" and table.loc["naive", "80% nocue"] != "12.3"
    assert [stats.proportion_text(p) for p in (0.0, 0.8, 0.371, 0.996, 1.0)] == ["0%", "80%", "37.1%", "99.6%",
                                                                               "100%"]


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


# ----------------------------------------------------------------------------------------------
# Edges: missing labels, absent columns, infinite values, orders that must not depend on row order
# ----------------------------------------------------------------------------------------------

def _barrier_frame(values, **columns) -> pd.DataFrame:
    return pd.DataFrame({"pair_type": "p", "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue",
                         "metric": "loss", "definition": "chord", "value": values, **columns})


def test_chance_ignores_rows_without_a_dataset_label():
    """Only the datasets named count: a row with no dataset label (None or NaN) is not an unknown dataset,
    so digits' 10 classes still give chance 0.1; an unknown name leaves chance unknown."""
    assert stats.chance(["digits", None, float("nan"), "digits"]) == pytest.approx(0.1)
    assert stats.chance(["digits", "no-such-dataset"]) is None


def test_an_infinite_value_is_left_out_of_an_estimate_as_a_comparison_leaves_it_out():
    """A diverged loss (inf) is no number to average: the row shown beside a claim counts the same values as
    the comparison it illustrates (comparisons leave non-finite values out), so n = 2 and the mean of 1 and 3."""
    from orchestrator.report import comparisons
    values = [1.0, np.inf, 3.0, -np.inf]
    est = stats.Estimate.of(values)
    assert est.n == 2 == comparisons.one_sample(pd.Series(values), 0.95).n
    assert est.mean == pytest.approx(2.0) and np.isfinite([est.ci_low, est.ci_high]).all()


def test_an_estimates_text_shows_three_decimals_by_default():
    """Barriers are shown in nats with three decimals (as a claim's barrier row is): 0.1234 -> 0.123."""
    assert stats.Estimate(3, 0.1234, 0.01, 0.1, 0.1456).text() == "0.123 [0.100, 0.146] (n = 3)"


def test_a_swept_setting_the_barriers_table_lacks_adds_no_group():
    """An axis that only some task kinds read need not be a column of the barriers table: summarize skips it
    (one group of the two values, mean 2) rather than failing on a column it does not have."""
    out = stats.summarize(_barrier_frame([1.0, 3.0]), swept=("train.lr",))
    assert "train.lr" not in out.columns and out["n"].tolist() == [2] and out["mean"].tolist() == [2.0]


def test_a_summary_does_not_depend_on_the_order_the_rows_came_in():
    """Tasks finish in any order: the same barriers, shuffled, give the same summary table row for row (its
    groups in the order of their keys), so summary.md is reproducible."""
    rows = pd.DataFrame([{"pair_type": p, "path_kind": vocab.LINEAR, "alignment": None, "eval_set": e,
                          "metric": "loss", "definition": "chord", "value": v}
                         for p in ("cue~nocue", "cue~cue", "nocue~nocue") for e in ("nocue", "cue") for v in (0.1, 0.4)])
    shuffled = rows.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled[["pair_type", "eval_set"]].equals(rows[["pair_type", "eval_set"]])
    pd.testing.assert_frame_equal(stats.summarize(shuffled), stats.summarize(rows))
    keys = stats.summarize(rows)[["pair_type", "eval_set"]].apply(tuple, axis=1).tolist()
    assert keys == sorted(keys)


def test_a_swept_axis_set_in_one_table_only_still_splits_the_facets():
    """claims pass the evaluations and barriers together: an axis that is a column of the evaluations only
    (the barriers table lacks it) still gives one facet per value."""
    ev = pd.DataFrame({"finetune.lam": [1.0, 3.0, 1.0], "acc": [0.5, 0.6, 0.7]})
    bars = pd.DataFrame({"value": [0.2, 0.3]})
    assert stats.swept_combos([ev, bars], ("finetune.lam",)) == [{"finetune.lam": 1.0}, {"finetune.lam": 3.0}]
    assert stats.swept_combos([bars, ev], ("finetune.lam",)) == [{"finetune.lam": 1.0}, {"finetune.lam": 3.0}]


def test_axes_no_row_sets_together_give_the_grid_of_their_values():
    """Two axes of different task kinds (no row sets both): every combination of their non-null values,
    2 × 2 = 4 facets in sorted order; a null value is not a value of the axis."""
    train = pd.DataFrame({"train.lr": [0.2, 0.1, None, 0.1]})
    ft = pd.DataFrame({"finetune.lam": [3.0, 1.0, None]})
    combos = stats.swept_combos([train, ft], ("train.lr", "finetune.lam"))
    assert combos == [{"train.lr": lr, "finetune.lam": lam} for lr in (0.1, 0.2) for lam in (1.0, 3.0)]


def test_a_frame_without_a_swept_column_belongs_to_every_facet():
    """A table with no column for an axis (its tasks read no such setting) is the null case: all its rows are
    in every facet."""
    df = pd.DataFrame({"x": ["a", "b"]})
    assert stats.facet(df, {"finetune.lam": 1.0})["x"].tolist() == ["a", "b"]


def test_values_outside_the_given_order_follow_it_sorted():
    """order_values: those named in the order first, in that order, then the rest sorted (not as they came);
    None and NaN are no values."""
    assert stats.order_values(["zeta", "b", None, "x", "alpha", float("nan"), "b"], ("x", "b")) == ["x", "b", "alpha", "zeta"]


def test_fine_tuning_pairs_of_an_unlisted_method_come_after_the_listed_ones_and_unknown_pair_types_last():
    """pair_sort_key: fine-tuning pairs by the method order, a method it does not list after those (whatever
    its name), and a pair type that is no known pair (e.g. `population`) after every known one."""
    order = stats.order_pairs(["pretrained~ft:aaa", "population", "pretrained~ft:cbft", "cue~cue",
                               "pretrained~ft:naive"], ("naive", "cbft"))
    assert order == ["cue~cue", "pretrained~ft:naive", "pretrained~ft:cbft", "pretrained~ft:aaa", "population"]


def test_one_model_is_not_a_label_worth_a_column():
    """Several models make a `model` column; one model (however many rows) does not."""
    assert stats.varying_labels(pd.DataFrame({"model": ["resnet", "resnet", None]})) == []
    assert stats.varying_labels(pd.DataFrame({"model": ["resnet", "mlp"]})) == ["model"]


def test_paths_of_one_kind_are_ordered_by_their_alignment_whatever_order_they_come_in():
    """Two aligned paths: ordered by kind (PATH_KINDS), then by alignment, the same for either input order."""
    variants = ["aligned (weight)", "linear", "aligned (activation)"]
    expected = ["linear", "aligned (activation)", "aligned (weight)"]
    assert sorted(variants, key=stats.variant_sort_key) == expected
    assert sorted(variants[::-1], key=stats.variant_sort_key) == expected


def test_a_float32_column_is_formatted_and_its_missing_values_marked():
    """A float32 column (as Parquet may hand back accuracies) is a number column like float64: `digits`
    decimals, and NaN shown as "—", not "nan"."""
    df = pd.DataFrame({"name": ["a", "b"], "acc": np.array([0.123456, np.nan], dtype=np.float32)})
    lines = stats.format_table(df, digits=2).splitlines()
    assert lines[2].split() == ["a", "0.12"] and lines[3].split() == ["b", "—"]
    assert stats.format_markdown(df, digits=2).splitlines()[2:] == ["| a | 0.12 |", "| b | — |"]


def test_a_fixed_width_table_is_as_wide_as_its_headers():
    """A header longer than every value sets its column's width: the header, the rule and the rows line up
    (the right-aligned last column ends at the same place on every line)."""
    df = pd.DataFrame({"a_long_label": ["x", "yy"], "n": [1, 22]})
    lines = stats.format_table(df).splitlines()
    assert lines[1].split() == ["-" * len("a_long_label"), "--"]
    assert len({len(line) for line in lines}) == 1 and lines[2].endswith(" 1") and lines[0].startswith("a_long_label")


def test_a_pipe_in_a_markdown_cell_is_escaped():
    """A `|` inside a cell (e.g. a facet label) would split the cell: it is written `\\|`, so every line of the
    table has the same number of cell separators."""
    md = stats.format_markdown(pd.DataFrame({"facet": ["a | b"], "n": [2]})).splitlines()
    assert md[2] == "| a \\| b | 2 |"
    assert len({line.replace("\\|", "").count("|") for line in md}) == 1


def test_labels_missing_from_the_evaluations_come_from_the_tasks_table():
    """Every label the tasks table has and the evaluations lack is filled by task id (kind, seed, method,
    dataset, model, cue proportion)."""
    ev = pd.DataFrame({"task_id": ["t1", "t2"], "eval_set": "cue", "acc": [0.5, 0.6]})
    tasks = pd.DataFrame({"task_id": ["t2", "t1"], "kind": vocab.PRETRAIN, "cue_proportion": [0.0, 0.8], "seed": [2, 1],
                          "method": None, "dataset": ["cifar10", "digits"], "model": ["mlp", "resnet"],
                          "status": vocab.FINISHED})
    out = stats.with_labels(ev, tasks)
    assert out["dataset"].tolist() == ["digits", "cifar10"] and out["model"].tolist() == ["resnet", "mlp"]
    assert out["seed"].tolist() == [1, 2] and out["cue_proportion"].tolist() == [0.8, 0.0]


def _pretrain_evals(rows) -> pd.DataFrame:
    """(task id, cue proportion, seed, eval set, acc) rows of pretrained models."""
    return pd.DataFrame([{"task_id": t, "kind": vocab.PRETRAIN, "cue_proportion": p, "seed": s, "method": None,
                          "eval_set": e, "acc": a} for t, p, s, e, a in rows])


def test_table_one_of_a_sweep_without_cue_models_still_shows_the_no_cue_models():
    """No cue proportion above 0 anywhere: the no-cue reference is shown under proportion 0 rather than
    dropped (mean of 0.8 and 0.9 over its two seeds)."""
    ev = _pretrain_evals([("n0", 0.0, 0, "nocue", 0.8), ("n1", 0.0, 1, "nocue", 0.9)])
    text, long = stats.finetune_table(ev)
    assert text["method"].tolist() == [stats.PRETRAINED_NOCUE]
    assert text.loc[0, "0% nocue"].startswith("85.0 ± ") and text.loc[0, "n"] == "2"
    assert long["n"].tolist() == [2] and long["mean"].tolist() == pytest.approx([0.85])


def test_a_seed_without_an_accuracy_is_not_counted_in_table_one():
    """Two cue models, one of whose `cue` accuracies was not measured (NaN): the cell is the one seed's
    accuracy alone, n = 1 (no "±" of a single value, no "nan")."""
    ev = _pretrain_evals([("c0", 0.8, 0, "cue", 0.9), ("c1", 0.8, 1, "cue", np.nan)])
    text, long = stats.finetune_table(ev)
    row = text.set_index("method").loc[stats.PRETRAINED_CUE]
    assert row["80% cue"] == "90.0" and row["n"] == "1"
    assert long.loc[long["row"] == stats.PRETRAINED_CUE, "n"].tolist() == [1]


def test_table_ones_long_form_lists_the_cells_in_the_text_tables_reading_order():
    """`long` has one row per cell of `text`, in the order the text table is read: row by row, and within a
    row its columns left to right (cue proportion, then evaluation set)."""
    data = synthetic_sweep()
    evaluations, tasks = _frame(data, "evaluations"), _frame(data, "tasks")
    extra = evaluations[evaluations["method"] == "naive"].assign(task_id=lambda d: d["task_id"] + "-p5", cue_proportion=0.5)
    text, long = stats.finetune_table(pd.concat([evaluations, extra], ignore_index=True), tasks)
    columns = [c for c in text.columns if c not in ("method", "n")]
    reading = [(r, c) for r in text["method"] for c in columns
               if text.set_index("method").loc[r, c] != stats.MISSING]
    assert [(r.row, f"{r.cue_proportion:.0%} {r.eval_set}") for r in long.itertuples()] == reading


def test_endpoint_drift_compares_with_a_models_latest_evaluation():
    """A model evaluated twice on a set (a rerun): its latest row is the trained model's loss, as a task's
    latest status is the one that counts (0.5 − 0.3, not 0.5 − 0.9)."""
    paths = pd.DataFrame([{"task_id": "p0", "pair_type": "cue~cue", "path_kind": vocab.LINEAR, "alignment": None,
                           "eval_set": "cue", "alpha": a, "loss": loss, "acc": 0.9, "endpoint_a": "ma", "endpoint_b": "mb"}
                          for a, loss in ((0.0, 0.5), (1.0, 0.6))])
    evals = pd.DataFrame([{"task_id": "ma", "eval_set": "cue", "loss": 0.9, "acc": 0.9},
                          {"task_id": "mb", "eval_set": "cue", "loss": 0.6, "acc": 0.9},
                          {"task_id": "ma", "eval_set": "cue", "loss": 0.3, "acc": 0.9}])
    drift = stats.endpoint_drift(paths, evals).set_index("endpoint")
    assert drift.loc["A", "loss_drift"] == pytest.approx(0.2) and drift.loc["B", "loss_drift"] == pytest.approx(0.0)


def _drift_rows(k: int, loss_a: float, acc_a: float, **labels) -> tuple[list[dict], list[dict]]:
    """Pair k: its path's endpoint A at alpha 0 (loss_a, acc_a) and B at alpha 1 (equal to the trained B);
    the trained A has loss 0.5 and accuracy 0.8."""
    a, b = f"m{k}a", f"m{k}b"
    paths = [{"task_id": f"p{k}", "pair_type": "cue~cue", "path_kind": vocab.LINEAR, "alignment": None,
              "eval_set": "cue", "alpha": alpha, "loss": loss, "acc": acc, "endpoint_a": a, "endpoint_b": b, **labels}
             for alpha, loss, acc in ((0.0, loss_a, acc_a), (1.0, 0.7, 0.9))]
    evals = [{"task_id": a, "eval_set": "cue", "loss": 0.5, "acc": 0.8}, {"task_id": b, "eval_set": "cue", "loss": 0.7, "acc": 0.9}]
    return paths, evals


def test_endpoint_drift_intervals_are_the_t_intervals_of_each_drift():
    """Three pairs whose endpoint A drifts by +0.1, +0.2, +0.6 in loss and −0.1, −0.3, −0.2 in accuracy: each
    interval is scipy's 95% t-interval of its own drifts (low below high)."""
    paths, evals = [], []
    for k, (loss, acc) in enumerate(((0.6, 0.7), (0.7, 0.5), (1.1, 0.6))):
        p, e = _drift_rows(k, loss, acc)
        paths, evals = paths + p, evals + e
    row = stats.endpoint_drift(pd.DataFrame(paths), pd.DataFrame(evals)).set_index("endpoint").loc["A"]
    for column, drifts in (("loss", [0.1, 0.2, 0.6]), ("acc", [-0.1, -0.3, -0.2])):
        low, high = scipy_stats.t.interval(0.95, 2, loc=np.mean(drifts), scale=scipy_stats.sem(drifts))
        assert (row[f"{column}_low"], row[f"{column}_high"]) == pytest.approx((low, high))


def test_endpoint_drift_is_given_per_swept_value():
    """Pairs of two values of a swept setting drift differently (+0.1 at lam 1, +0.5 at lam 3): one row each."""
    paths, evals = [], []
    for k, (loss, lam) in enumerate(((0.6, 1.0), (0.6, 1.0), (1.0, 3.0))):
        p, e = _drift_rows(k, loss, 0.8, **{"finetune.lam": lam})
        paths, evals = paths + p, evals + e
    drift = stats.endpoint_drift(pd.DataFrame(paths), pd.DataFrame(evals), swept=("finetune.lam",))
    a = drift[drift["endpoint"] == "A"].set_index("finetune.lam")
    assert a.loc[1.0, "n"] == 2 and a.loc[1.0, "loss_drift"] == pytest.approx(0.1)
    assert a.loc[3.0, "n"] == 1 and a.loc[3.0, "loss_drift"] == pytest.approx(0.5)


def test_endpoint_drift_is_given_per_model():
    """Two models in one sweep drift differently (+0.1 for small_cnn, +0.5 for vgg13): one row each, never
    their pooled mean; the page shows the model column."""
    paths, evals = [], []
    for k, (loss, model) in enumerate(((0.6, "small_cnn"), (0.6, "small_cnn"), (1.0, "vgg13"))):
        p, e = _drift_rows(k, loss, 0.8, model=model)
        paths, evals = paths + p, evals + e
    drift = stats.endpoint_drift(pd.DataFrame(paths), pd.DataFrame(evals))
    a = drift[drift["endpoint"] == "A"].set_index("model")
    assert a.loc["small_cnn", "n"] == 2 and a.loc["small_cnn", "loss_drift"] == pytest.approx(0.1)
    assert a.loc["vgg13", "n"] == 1 and a.loc["vgg13", "loss_drift"] == pytest.approx(0.5)
    from orchestrator.report import html
    assert "<th>model</th>" in html.drift_html(drift) and "vgg13" in html.drift_html(drift)


def test_the_mechanism_table_is_given_per_swept_value_named():
    """`swept` named by the caller splits the table: agreement 0.9 at lam 1 and 0.3 at lam 3, one row each."""
    rows = [{"task_id": f"p{lam}-{s}", "pair_type": "cue~cue", "path_kind": vocab.LINEAR, "alignment": None,
             "eval_set": "nocue", "alpha": a, "agree_a": agree, "agree_b": agree, "reliance_randimg": 0.0,
             "reliance_randcue": 0.0, "finetune.lam": lam}
            for lam, agree in ((1.0, 0.9), (3.0, 0.3)) for s in range(2) for a in (0.0, 0.5, 1.0)]
    mech = stats.mechanism_table(pd.DataFrame(rows), swept=("finetune.lam",)).set_index("finetune.lam")
    assert mech.loc[1.0, "agree_a@0.5"] == pytest.approx(0.9) and mech.loc[3.0, "agree_a@0.5"] == pytest.approx(0.3)
    assert mech["n"].tolist() == [2, 2]


def test_table_one_without_any_evaluation_still_has_a_column_per_evaluation_set():
    """Every fine-tuning failed (no evaluation at all): the methods of the tasks table are listed under
    every evaluation set of their cue proportion, all "—"."""
    tasks = pd.DataFrame({"task_id": ["f0"], "kind": vocab.FINETUNE, "method": "naive", "cue_proportion": 0.8,
                          "seed": 0, "status": vocab.FAILED})
    text, _ = stats.finetune_table(pd.DataFrame(columns=["task_id", "eval_set", "acc"]), tasks)
    assert text.columns.tolist() == ["method", *[f"80% {e}" for e in EVAL_SETS], "n"]
    assert text["method"].tolist() == ["naive"] and (text.drop(columns="method").iloc[0] == stats.MISSING).all()


def test_the_mechanism_table_reads_the_evaluation_set_asked_for():
    """eval_set="randimg" given: the agreement on randimg (0.2), not on the default first set (0.9)."""
    rows = [{"task_id": f"p{s}", "pair_type": "cue~cue", "path_kind": vocab.LINEAR, "alignment": None,
             "eval_set": e, "alpha": a, "agree_a": agree, "agree_b": agree, "reliance_randimg": 0.0,
             "reliance_randcue": 0.0}
            for s in range(2) for e, agree in (("randimg", 0.2), ("nocue", 0.9)) for a in (0.0, 0.5, 1.0)]
    assert stats.mechanism_table(pd.DataFrame(rows), eval_set="randimg")["agree_a@0.5"].tolist() == pytest.approx([0.2])


def test_a_missing_value_reaches_the_function_as_the_column_holds_it():
    """per_values: fn of every row, a missing value passed as the column holds it (NaN in a float column,
    None in an object one), never replaced by another row's value."""
    floats = stats.per_values(pd.Series([0.5, np.nan, 0.5, np.nan]), None, repr)
    assert floats.tolist() == ["0.5", "nan", "0.5", "nan"]
    objects = stats.per_values(pd.Series(["a", None, "b"], dtype=object), pd.Series([1, 1, 2]), lambda x, y: f"{x}/{y}")
    assert objects.tolist() == ["a/1", "None/1", "b/2"]


def test_two_tables_with_the_same_swept_values_give_each_facet_once():
    df = pd.DataFrame({"finetune.lam": [1.0, 3.0]})
    assert stats.swept_combos([df, df.copy()], ("finetune.lam",)) == [{"finetune.lam": 1.0}, {"finetune.lam": 3.0}]


def test_an_estimate_of_one_value_shows_the_value_without_an_interval():
    """n = 1: the value and n, no interval (none to estimate); n = 0: "—"."""
    assert stats.Estimate.of([0.7]).text() == "0.700 (n = 1)"
    assert stats.Estimate.of([np.nan]).text() == stats.MISSING


def test_the_mechanism_table_lists_pairs_in_the_pairs_order_and_each_pairs_paths_in_kind_order():
    """Rows by pair type (vocab.PAIRS: cue~nocue before cue~cue), within one its paths by kind (linear,
    quadratic, aligned), whatever order the rows come in."""
    rows = [{"task_id": f"{p}-{k}-{s}", "pair_type": p, "path_kind": k, "alignment": "activation" if k == "aligned" else None,
             "eval_set": "nocue", "alpha": a, "agree_a": 0.5, "agree_b": 0.5, "reliance_randimg": 0.0, "reliance_randcue": 0.0}
            for p, k in (("cue~cue", "aligned"), ("cue~nocue", "quadratic"), ("cue~cue", vocab.LINEAR), ("cue~nocue", vocab.LINEAR))
            for s in range(2) for a in (0.0, 1.0)]
    mech = stats.mechanism_table(pd.DataFrame(rows))
    assert list(zip(mech["pair_type"], mech["path_kind"], strict=True)) == [
        ("cue~nocue", vocab.LINEAR), ("cue~nocue", "quadratic"), ("cue~cue", vocab.LINEAR), ("cue~cue", "aligned")]


def test_endpoint_drift_leaves_out_an_endpoint_whose_trained_model_was_not_evaluated():
    """Pair 1's model A has no evaluation on the set (its evaluation failed): only pair 0 gives A's drift
    (n = 1, +0.1), both pairs give B's (n = 2)."""
    paths, evals = [], []
    for k in range(2):
        p, e = _drift_rows(k, 0.6, 0.8)
        paths, evals = paths + p, evals + [r for r in e if r["task_id"] != "m1a"]
    drift = stats.endpoint_drift(pd.DataFrame(paths), pd.DataFrame(evals)).set_index("endpoint")
    assert drift.loc["A", "n"] == 1 and drift.loc["A", "loss_drift"] == pytest.approx(0.1)
    assert drift.loc["B", "n"] == 2 and drift.loc["B", "loss_drift"] == pytest.approx(0.0)


def test_a_pretrained_model_without_a_cue_proportion_is_the_no_cue_reference_whether_none_or_nan():
    """A missing cue proportion is no cue (`is_no_cue(None)`); a float column holds that missing value as NaN,
    not None, so the same table with NaN puts the model in the same row: the no-cue reference, never "cue"."""
    assert stats.is_no_cue(None) and stats.is_no_cue(float("nan")) and stats.is_no_cue(0.0)
    assert not stats.is_no_cue(0.8)
    ev = _pretrain_evals([("n0", None, 0, "nocue", 0.8), ("c0", 0.8, 0, "nocue", 0.6)])
    assert ev["cue_proportion"].isna().sum() == 1          # the float column holds the missing value as NaN
    long = stats.finetune_long(ev)
    assert set(long["row"]) == {stats.PRETRAINED_NOCUE, stats.PRETRAINED_CUE}
    assert long.loc[long["row"] == stats.PRETRAINED_NOCUE, "mean"].tolist() == pytest.approx([0.8])


def test_table_one_has_no_column_for_fine_tunings_without_a_cue():
    """Table 1's columns are the cue proportions above 0 (`_task_proportions`: "(> 0)"; 0 is the no-cue
    models' own label): a fine-tuning task recorded at proportion 0 (here a failed one) adds no "0% …" column
    beside the 80% ones."""
    ev = _pretrain_evals([("n0", 0.0, 0, "nocue", 0.8), ("c0", 0.8, 0, "nocue", 0.6)])
    tasks = pd.DataFrame([{"task_id": "f0", "kind": vocab.FINETUNE, "cue_proportion": 0.0, "method": "naive",
                           "seed": 0, "status": vocab.FAILED},
                          {"task_id": "f1", "kind": vocab.FINETUNE, "cue_proportion": 0.8, "method": "naive",
                           "seed": 0, "status": vocab.FAILED}])
    assert stats._task_proportions(tasks) == [0.8]
    text, long = stats.finetune_table(ev, tasks)
    assert text.columns.tolist() == ["method", "80% nocue", "n"]
    assert set(long["cue_proportion"]) == {0.8}


def test_a_group_whose_values_were_all_missing_has_no_mean_not_a_mean_of_zero():
    """NaN values are left out of a summary (n counts the rest): a group with none left has n = 0 and no mean
    (NaN, shown as "—"), never 0, which would read as a measured barrier of 0."""
    df = pd.DataFrame({"pair_type": ["a", "b", "b"], "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue",
                       "metric": "loss", "definition": "chord", "value": [0.7, np.nan, np.nan]})
    out = stats.summarize(df).set_index("pair_type")
    assert out.loc["b", "n"] == 0 and np.isnan(out.loc["b", "mean"]) and np.isnan(out.loc["b", "std"])
    empty = stats.Estimate.of([np.nan])
    assert empty.n == 0 and np.isnan(empty.mean) and empty.text() == stats.MISSING


def test_a_pairs_controls_follow_it_in_the_vocabularys_order_of_designs_not_the_alphabets():
    """`pair_sort_key`: each main pair followed by its controls, designs in vocab order (cue~cue: independent,
    spawn, resubset, self; nocue~nocue: independent, spawn, self), whatever order they come in."""
    shuffled = ["nocue~nocue:self", "cue~cue:self", "cue~cue:resubset", "nocue~nocue:spawn@1", "cue~cue:spawn@0",
                "cue~cue", "nocue~nocue"]
    assert stats.order_pairs(shuffled) == ["cue~cue", "cue~cue:spawn@0", "cue~cue:resubset", "cue~cue:self",
                                           "nocue~nocue", "nocue~nocue:spawn@1", "nocue~nocue:self"]
    assert vocab.PAIR_DESIGNS[vocab.CUE_CUE] == ("independent", "spawn", "resubset", "self")


def test_the_mechanism_tables_interval_is_the_t_interval_of_the_pairs_at_each_alpha():
    """Three pairs whose agreement with A at alpha 0.5 is 0.6, 0.7, 0.9: the table's `agree_a@0.5` is their
    mean and `_low`/`_high` the 95% Student-t interval (scipy), the lower bound below the mean, the upper above."""
    rows = [{"task_id": f"t{i}", "pair_type": "cue~cue", "path_kind": vocab.LINEAR, "alignment": None,
             "eval_set": "cue", "alpha": alpha, "agree_a": value if alpha == 0.5 else 1.0 - alpha}
            for i, value in enumerate([0.6, 0.7, 0.9]) for alpha in (0.0, 0.5, 1.0)]
    row = stats.mechanism_table(pd.DataFrame(rows)).iloc[0]
    vals = np.array([0.6, 0.7, 0.9])
    low, high = scipy_stats.t.interval(0.95, 2, loc=vals.mean(), scale=scipy_stats.sem(vals))
    assert row["agree_a@0.5"] == pytest.approx(vals.mean())
    assert (row["agree_a@0.5_low"], row["agree_a@0.5_high"]) == pytest.approx((low, high))
    assert row["n"] == 3 and np.isnan(row["agree_b@0.5"])


def test_a_path_without_an_alignment_is_its_kind_alone_whether_none_or_nan():
    """`path_variant`: a path kind with its alignment, `linear` without one. `per_values` hands a missing value
    over as the column holds it (None, or NaN in a float column, e.g. after a concat with a table lacking the
    column), so a NaN alignment is no alignment too: never `linear (nan)`."""
    assert stats.path_variant(vocab.LINEAR, None) == stats.path_variant(vocab.LINEAR, float("nan")) == vocab.LINEAR
    assert stats.path_variant("aligned", "activation") == "aligned (activation)"
    frame = pd.DataFrame({"path_kind": [vocab.LINEAR, "aligned"], "alignment": [np.nan, "weight"]})
    assert stats.path_variants(frame).tolist() == [vocab.LINEAR, "aligned (weight)"]


def test_a_populations_pairs_share_models_so_their_summary_and_drift_have_no_interval():
    """Every pair of a population's models: each model in many pairs, the pairs not independent, so a t
    interval over them would claim a precision they do not have (claim (e)'s rows say the same)."""
    rows = [{"pair_type": pt, "path_kind": "linear", "alignment": None, "eval_set": "cue", "metric": "loss",
             "definition": "chord", "value": v} for pt in (vocab.POPULATION, vocab.CUE_CUE) for v in (0.5, 0.7, 0.9)]
    summary = stats.summarize(pd.DataFrame(rows)).set_index("pair_type")
    assert summary.loc[vocab.POPULATION, "n"] == 3 and summary.loc[vocab.POPULATION, "mean"] == pytest.approx(0.7)
    assert np.isnan(summary.loc[vocab.POPULATION, "ci_low"]) and np.isnan(summary.loc[vocab.POPULATION, "ci_high"])
    assert summary.loc[vocab.CUE_CUE, "ci_low"] < 0.7 < summary.loc[vocab.CUE_CUE, "ci_high"]


def test_a_dataset_of_your_own_has_the_chance_its_path_tasks_used():
    """Not built in: its class count is read back from its randimg path rows (acc − 1/K is their
    `reliance_randimg`), so the claims are judged against that chance; rows that disagree on K, or no path
    rows, leave it unknown (None), as for an unknown name."""
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.2, 0.9, 12)
    paths = pd.DataFrame({"dataset": "mypkg.data:load", "eval_set": ["randimg", "nocue"] * 6, "acc": acc,
                          "reliance_randimg": acc - 1 / 7})
    assert stats.chance(["mypkg.data:load"], paths) == pytest.approx(1 / 7)
    assert stats.chance(["mypkg.data:load"]) is None
    assert stats.chance(["mypkg.data:load", "digits"], paths) is None          # 7 and 10 classes
    mixed = paths.assign(reliance_randimg=np.where(np.arange(12) < 6, acc - 1 / 7, acc - 1 / 5))
    assert stats.chance(["mypkg.data:load"], mixed) is None


def test_the_claims_of_a_sweep_on_a_dataset_of_your_own_are_judged():
    from orchestrator.report import claims
    from tests.support.report_data import synthetic_sweep

    data = synthetic_sweep()
    results = {t: pd.DataFrame([dict(r, task_id=i) for i, rows in data[t].items() for r in rows]) for t in vocab.TABLES}
    for frame in results.values():
        if "dataset" in frame:
            frame["dataset"] = "mypkg.data:load"
    paths = results[vocab.PATHS]
    paths["reliance_randimg"] = np.where(paths["eval_set"] == "randimg", paths["acc"] - 0.1, paths["reliance_randimg"])
    judged = claims.judge(results, (), None)
    digits = claims.judge({t: f.assign(dataset="digits") if "dataset" in f else f for t, f in results.items()}, (), None)
    assert judged and [(c.key, c.verdict) for c in judged] == [(c.key, c.verdict) for c in digits]


def _drift_tables(pair_type: str):
    """Three pairs of one pair type; endpoint A's path loss drifts 0.1, 0.2, 0.3 above its trained model's."""
    paths, evals = [], []
    for k, drift in enumerate((0.1, 0.2, 0.3)):
        a, b = f"m{k}a", f"m{k}b"
        for alpha, loss in ((0.0, 0.4 + drift), (0.5, 2.0), (1.0, 0.5)):
            paths.append({"task_id": f"p{k}", "pair_type": pair_type, "path_kind": vocab.LINEAR, "alignment": None,
                          "eval_set": "cue", "alpha": alpha, "loss": loss, "acc": 0.9, "endpoint_a": a,
                          "endpoint_b": b})
        evals += [{"task_id": a, "eval_set": "cue", "loss": 0.4, "acc": 0.9},
                  {"task_id": b, "eval_set": "cue", "loss": 0.5, "acc": 0.9}]
    return pd.DataFrame(paths), pd.DataFrame(evals)


def test_endpoint_drift_of_a_population_has_no_interval_and_of_other_pairs_has_one():
    """A population's pairs share models (not independent): its drift is a mean without an interval, as in
    `summarize`; any other pair type's three pairs get their t interval."""
    pop = stats.endpoint_drift(*_drift_tables(vocab.POPULATION)).set_index("endpoint")
    assert pop.loc["A", "n"] == 3 and pop.loc["A", "loss_drift"] == pytest.approx(0.2)
    assert all(math.isnan(pop.loc["A", c]) for c in ("loss_low", "loss_high", "acc_low", "acc_high"))
    other = stats.endpoint_drift(*_drift_tables("cue~cue")).set_index("endpoint")
    assert other.loc["A", "loss_low"] < 0.2 < other.loc["A", "loss_high"]


def test_the_mechanism_table_reads_the_first_evaluation_set_by_default():
    """Without `eval_set` the table reads the first of `EVAL_SETS` present (nocue), as the report prints it,
    not the alphabetically first set (cue)."""
    rows = []
    for eval_set, agree in (("cue", 0.2), ("nocue", 0.7)):
        for alpha in (0.0, 0.5, 1.0):
            rows.append({"task_id": "p0", "pair_type": "cue~cue", "path_kind": vocab.LINEAR, "alignment": None,
                         "eval_set": eval_set, "alpha": alpha, "agree_a": agree, "agree_b": agree,
                         "reliance_randimg": 0.0, "reliance_randcue": 0.0})
    paths = pd.DataFrame(rows)
    default = stats.mechanism_table(paths)
    assert default["agree_a@0.5"].iloc[0] == pytest.approx(0.7)
    pd.testing.assert_frame_equal(default, stats.mechanism_table(paths, eval_set="nocue"))


def test_a_two_class_dataset_of_your_own_has_chance_one_half():
    """The class count read back from the randimg rows is any count of at least 2: a binary dataset of your own
    (acc - reliance_randimg = 1/2) has chance 0.5, not an unknown chance."""
    acc = np.array([0.9, 0.7, 0.55, 0.5])
    paths = pd.DataFrame({"dataset": "mypkg.data:load", "eval_set": "randimg", "acc": acc, "reliance_randimg": acc - 0.5})
    assert stats.recorded_classes(paths, "mypkg.data:load") == 2
    assert stats.chance(["mypkg.data:load"], paths) == pytest.approx(0.5)


def test_the_mechanism_table_keeps_the_pairs_whose_rows_hold_mechanism_values_beside_rows_without_them():
    """Rows without mechanism values (e.g. path rows written before they were recorded) leave the other pairs'
    table as it is: the table is empty only when no row holds any mechanism value."""
    paths = _frame(synthetic_sweep(), "paths")
    first = paths["pair_type"] == sorted(paths["pair_type"].unique())[0]
    mixed = paths.copy()
    mixed.loc[first, list(stats.MECHANISM_COLUMNS)] = np.nan
    full = stats.mechanism_table(paths[~first])
    got = stats.mechanism_table(mixed)
    assert set(got["pair_type"]) == set(paths["pair_type"])
    kept = got[got["pair_type"].isin(full["pair_type"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[full.columns], full)
