"""The report's own pieces (`orchestrator.report.build`) from hand-made frames and one small synthetic
sweep: the swept keys of a spec, the progress table without a plan, the provenance names, the terminal
barrier table (n, intervals, row and column order), the terminal text, and what `write_report` puts in
finetune_table.parquet and the page (failed tasks by their latest row, title, planned count)."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import build as report, figures, progress, stats
from orchestrator.results import tables
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.full_disk import FullDisk
from tests.support.report_data import synthetic_sweep, write_plan, write_sweep


def test_the_swept_keys_are_every_axis_groups_keys_in_the_specs_order():
    """`axes` is a list of groups (keys in one group vary together): every key of every group, in order,
    each once; no axes, or a spec that is not YAML: none."""
    spec = "name: s\naxes:\n- {finetune.lam: [1, 3], finetune.lr: [0.1, 0.2]}\n- data.cue_proportion: [0.5, 0.8]\n"
    assert report.swept_keys(None, spec) == ("finetune.lam", "finetune.lr", "data.cue_proportion")
    assert report.swept_keys(None, "name: s\naxes: []\n") == report.swept_keys(None, "name: s\n") == ()
    assert report.swept_keys(None, "name: [unclosed\n") == ()


def _rows(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"cached": False, "duration_s": None, "host": None, "device": None, "versions": None,
                          "spec_hash": None, "git_rev": None, "torch_version": None,
                          "started_at": None, "finished_at": None, **r} for r in rows])


def test_without_a_plan_progress_counts_each_task_once_by_its_latest_row_in_pipeline_order():
    """No stored plan: the kinds and tasks are those of the rows, each task once (a retried one by its
    latest row), the planned column unknown; kinds in the pipeline's order (vocab.TASK_KINDS), others last."""
    tasks = _rows([
        {"task_id": "e0", "kind": vocab.PATH_EVAL, "status": vocab.FINISHED},
        {"task_id": "p0", "kind": vocab.PRETRAIN, "status": vocab.FAILED},
        {"task_id": "p0", "kind": vocab.PRETRAIN, "status": vocab.FINISHED},
        {"task_id": "x0", "kind": "zz_custom", "status": vocab.SKIPPED},
        {"task_id": "f0", "kind": vocab.FINETUNE, "status": vocab.FINISHED},
        {"task_id": "a0", "kind": "aa_custom", "status": vocab.FINISHED},
    ])
    table = progress.progress_table(tasks, None)
    pipeline = [k for k in vocab.TASK_KINDS if k in {vocab.PATH_EVAL, vocab.PRETRAIN, vocab.FINETUNE}]
    assert list(table["kind"]) == [*pipeline, "aa_custom", "zz_custom", "total"]
    assert table["planned"].isna().all()
    rows = table.set_index("kind")
    assert rows.loc[vocab.PRETRAIN, vocab.FINISHED] == 1 and rows.loc[vocab.PRETRAIN, vocab.FAILED] == 0
    assert rows.loc["total", [vocab.FINISHED, vocab.FAILED, vocab.SKIPPED, "not run yet"]].tolist() == [4, 0, 1, 0]


def test_provenance_names_each_recorded_value_under_its_own_label():
    """Spec hash, git revision and torch version are each their own column's distinct values; the run's
    software lists hold commas, so they are joined by "; "; no device recorded: "—"; the caller's keys
    `spec_hash`, `git_rev`, `torch` are shown under the report's names."""
    tasks = _rows([
        {"task_id": "a", "status": vocab.FINISHED, "spec_hash": "h1", "git_rev": "r1", "torch_version": "2.1",
         "versions": "python 3.11, torch 2.1"},
        {"task_id": "b", "status": vocab.FINISHED, "spec_hash": "h1", "git_rev": "r2", "torch_version": "2.2",
         "versions": "python 3.12, torch 2.2"},
    ])
    prov = progress.task_provenance(tasks)
    assert (prov["spec hash"], prov["git revision"], prov["torch version"]) == ("h1", "r1, r2", "2.1, 2.2")
    assert prov["software (run)"] == "python 3.11, torch 2.1; python 3.12, torch 2.2"
    assert prov["devices"] == stats.MISSING and "cached tasks" not in prov and "wall time" not in prov
    assert progress.caller_provenance({"spec_hash": "h", "git_rev": "g", "torch": "2.3", "other": 4}) == {
        "spec hash": "h", "git revision of this invocation": "g", "torch version": "2.3", "other": "4"}


def _summary(cells: list[tuple]) -> pd.DataFrame:
    """summary rows: (pair_type, path_kind, alignment, eval_set, n, mean, ci_low, ci_high), chord loss."""
    return pd.DataFrame([{"pair_type": p, "path_kind": k, "alignment": a, "eval_set": e, "metric": "loss",
                          "definition": "chord", "n": n, "mean": m, "ci_low": lo, "ci_high": hi}
                         for p, k, a, e, n, m, lo, hi in cells])


def test_the_terminal_barrier_table_gives_n_pairs_and_the_mean_alone_for_one_pair():
    """n is the number of pairs (the `n` of the summary rows, several values joined by "/" where eval sets
    differ), not a count of rows; at n = 1 there is no interval (NaN bounds): the mean alone."""
    nan = float("nan")
    summary = _summary([("cue~nocue", "linear", None, "nocue", 3, 1.0, 0.5, 1.5),
                        ("cue~nocue", "linear", None, "cue", 2, 2.0, 1.0, 3.0),
                        ("cue~cue", "linear", None, "nocue", 1, 0.25, nan, nan),
                        ("cue~cue", "linear", None, "cue", 1, 0.5, nan, nan)])
    pivot = report.barrier_pivot(summary).set_index("pair type")
    assert pivot.loc["cue~nocue", "n"] == "2/3" and pivot.loc["cue~cue", "n"] == "1"
    assert pivot.loc["cue~nocue", "nocue"] == "1.000 [0.500, 1.500]"
    assert pivot.loc["cue~cue", "nocue"] == "0.250" and pivot.loc["cue~cue", "cue"] == "0.500"
    ten = report.barrier_pivot(_summary([("cue~nocue", "linear", None, "nocue", 10, 1.0, 0.5, 1.5),
                                         ("cue~nocue", "linear", None, "cue", 9, 1.0, 0.5, 1.5)]))
    assert ten["n"].tolist() == ["9/10"]                                   # in numeric order, as the page has it


def test_the_terminal_barrier_table_orders_pairs_then_paths_and_eval_sets_as_the_vocabulary_does():
    """Rows: pairs in `vocab.PAIRS` order (a pair's controls after it), within a pair the path kinds in
    `vocab.PATH_KINDS` order; columns: eval sets in `EVAL_SETS` order, whatever the rows' order."""
    from tasks.settings.data import EVAL_SETS

    cells = []
    for pair in ("nocue~nocue", "cue~nocue:same-init", "cue~nocue"):
        for kind, alignment in (("quadratic", None), ("linear", "activation"), ("linear", None)):
            for eval_set in ("randimg", "cue", "nocue"):
                cells.append((pair, kind, alignment, eval_set, 3, 1.0, 0.5, 1.5))
    pivot = report.barrier_pivot(_summary(cells))
    pairs = sorted({c[0] for c in cells}, key=lambda p: stats.pair_sort_key(p))
    assert pairs.index("cue~nocue") < pairs.index("cue~nocue:same-init")
    kinds = [k for k in vocab.PATH_KINDS if k in ("linear", "quadratic")]
    got = list(zip(pivot["pair type"], [p.split(" ")[0] for p in pivot["path"]], strict=True))
    assert [p for p, _ in got] == [p for p in pairs for _ in range(3)]
    for pair in pairs:
        shown = [k for p, k in got if p == pair]
        assert shown == sorted(shown, key=kinds.index)
    assert [c for c in pivot.columns if c in EVAL_SETS] == [e for e in EVAL_SETS if e in ("randimg", "cue", "nocue")]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A sweep of `finetune.lam` over 1, 3 and 5 (one seed, the CBFT pair only; at 5 every fine-tuning failed,
    so no evaluation and no path has that value), whose first naive fine-tuning
    failed and was retried (finished), and whose first CBFT fine-tuning finished and failed when run again
    (the plan names one more task, not run); the report written with blank figures."""
    lams = (1.0, 3.0, 5.0)
    layout = SweepLayout(Storage(str(tmp_path_factory.mktemp("build") / "runs")), "small")
    data = synthetic_sweep(seeds=(0,), lams=lams, pair_types=("pretrained~ft:cbft",))
    for task_id in [t for t in data[vocab.TASKS] if t.endswith("-lam5")]:     # lam 5: every fine-tuning failed
        rows = data[vocab.TASKS][task_id]
        if rows[0]["kind"] == vocab.FINETUNE:
            data[vocab.TASKS][task_id] = [dict(rows[0], status=vocab.FAILED, error="RuntimeError: lam5 diverged")]
        else:
            del data[vocab.TASKS][task_id]
        for table in (vocab.EVALUATIONS, vocab.PATHS, vocab.BARRIERS):
            data[table].pop(task_id, None)
    retried = next(t for t in data[vocab.TASKS] if t.startswith("finetune-naive"))
    first = data[vocab.TASKS][retried][0]
    data[vocab.TASKS][retried] = [dict(first, status=vocab.FAILED, error="RuntimeError: retried-and-fine"), first]
    broken = next(t for t in data[vocab.TASKS] if t.startswith("finetune-cbft"))
    row = data[vocab.TASKS][broken][0]
    data[vocab.TASKS][broken] = [row, dict(row, status=vocab.FAILED, error="RuntimeError: failed-on-rerun")]
    write_sweep(layout, data, lams=lams, plan=False)
    planned = dict(data[vocab.TASKS])
    planned["pretrain-not-run"] = [dict(data[vocab.TASKS]["pretrain-cue-s0"][0], task_id="pretrain-not-run")]
    write_plan(layout, planned)
    blank = io.BytesIO()
    import matplotlib.image as mpimg
    mpimg.imsave(blank, np.zeros((2, 2, 3)), format="png")
    real = figures.draw_all
    figures.draw_all = lambda jobs, processes=None: [blank.getvalue() for _ in jobs]
    try:
        out = report.write_report(layout, title="My own title")
    finally:
        figures.draw_all = real
    return layout, out, data, len(planned)


def test_the_finetune_table_parquet_carries_each_facets_swept_value(small):
    """finetune_table.parquet: Table 1's long rows of every facet, each labelled with its `finetune.lam`."""
    layout = small[0]
    long = pd.read_parquet(io.BytesIO(layout.storage.read_bytes(layout.report_file("finetune_table.parquet"))))
    assert set(long["finetune.lam"].dropna()) == {1.0, 3.0, 5.0}
    assert long["finetune.lam"].notna().all()


def test_table_1_keeps_a_swept_value_whose_fine_tunings_all_failed(small):
    """A partial sweep's Table 1 shows every swept value that has fine-tuning tasks: lam 5's fine-tunings all
    failed, so its facet is there with "—" cells (the claims and figures have nothing for it)."""
    layout = small[0]
    md = layout.storage.read_bytes(layout.report_file("finetune_table.md")).decode()
    assert [line for line in md.splitlines() if line.startswith("**finetune.lam = ")] == [
        "**finetune.lam = 1**", "**finetune.lam = 3**", "**finetune.lam = 5**"]
    lam5 = md[md.index("**finetune.lam = 5**"):]
    cbft = next(line for line in lam5.splitlines() if line.startswith("| cbft"))
    assert stats.MISSING in cbft


def test_the_pages_failed_tasks_are_those_whose_latest_row_failed(small):
    """A task that failed and then finished is not listed; one that finished and then failed is."""
    layout, out = small[0], small[1]
    page = layout.storage.read_bytes(out.html).decode()
    assert "failed-on-rerun" in page and "retried-and-fine" not in page


def test_the_page_has_the_callers_title_and_counts_the_plans_tasks(small):
    """`title` replaces the default title; the banner and the progress table count against every planned
    task (one pretraining not run)."""
    layout, out, data, planned = small
    page = layout.storage.read_bytes(out.html).decode()
    assert "<title>My own title</title>" in page
    finished = sum(rows[-1]["status"] == vocab.FINISHED for rows in data[vocab.TASKS].values())
    assert f"{finished} of {planned} tasks finished" in page
    pretrain = [rows[-1]["status"] for rows in data[vocab.TASKS].values() if rows[0]["kind"] == vocab.PRETRAIN]
    row = (f"<tr><td>pretrain</td><td>{len(pretrain) + 1}</td><td>{pretrain.count(vocab.FINISHED)}</td><td>0</td>"
           "<td>0</td><td>1</td></tr>")            # the progress table: planned from the plan, one not run yet
    assert row in page
    assert "(on nocue)" in page                        # agreement along the paths: the first eval set


def test_the_terminal_text_shows_table_1_when_no_path_was_evaluated(small):
    """A sweep whose fine-tuning is evaluated but whose paths have not run yet still prints Table 1."""
    layout = small[0]
    results = report.read_results(layout)
    results[vocab.BARRIERS] = results[vocab.BARRIERS].iloc[:0]
    results[vocab.PATHS] = results[vocab.PATHS].iloc[:0]
    text = report._text(results, ("finetune.lam",), stats.summarize(results[vocab.BARRIERS]), [])
    assert "accuracy (%) on the counterfactual test sets" in text and "loss barrier" not in text
    assert tables.read_table(layout, vocab.EVALUATIONS).shape[0] > 0


def test_local_paths_skips_a_file_that_is_not_there(tmp_path):
    """On storage that is not local, a path is copied into `into` when it is a file, and skipped when missing."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "t")
    there = layout.report_file("a.md")
    layout.storage.write_bytes(there, b"hello")
    layout.storage.is_local = False
    layout.storage.local_path = lambda path: None
    (tmp_path / "into").mkdir()
    copied = report.local_paths(layout, [there, layout.report_file("missing.md")], str(tmp_path / "into"))
    assert [p.rsplit("/", 1)[-1] for p in copied] == ["a.md"] and open(copied[0], "rb").read() == b"hello"


def test_the_terminal_barrier_table_gives_each_cue_proportion_its_own_row():
    """Pairs trained at several cue proportions above 0 are not pooled: one row per proportion, labelled."""
    cells = [("cue~cue", "linear", None, e, 3, m, m - 0.1, m + 0.1) for e in ("nocue", "cue") for m in (1.0, 2.0)]
    summary = _summary(cells).assign(cue_proportion=[0.5, 0.8, 0.5, 0.8])
    pivot = report.barrier_pivot(summary)
    assert sorted(zip(pivot["cue_proportion"], pivot["nocue"], strict=True)) == [(0.5, "1.000 [0.900, 1.100]"),
                                                                                (0.8, "2.000 [1.900, 2.100]")]


def test_the_terminal_summary_and_the_printed_claims_judge_by_the_stored_specs_rules(small, monkeypatch):
    """`summary_text` (what `mmc-sweep run` prints) and `print_claims` judge the claims by the `claims:` rules
    of the sweep's spec.yaml (SPEC: a 20 pp margin on the nocue and cue sets), not by the defaults."""
    from orchestrator.spec.claim_rules import ClaimRules

    layout = small[0]
    seen = []
    monkeypatch.setattr(report.claims_lib, "judge", lambda results, swept, rules=None, **kw: seen.append(rules) or [])
    report.summary_text(layout)
    report.print_claims(layout, log=lambda text: None)
    assert seen == [ClaimRules(acc_margin=0.2, barrier_sets=("nocue", "cue"))] * 2


def test_two_architectures_get_a_table_1_and_a_barrier_figure_each_never_a_pooled_mean(tmp_path):
    """A sweep of two models (`models: [small_cnn, vgg13]`): Table 1 (console, markdown, parquet) and the
    fine-tuning and barrier-distribution figures are one per model, each over its own seeds, like the barrier
    summary and the claims; a mean of two architectures' accuracies describes neither."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "two")
    small = synthetic_sweep(seeds=(0, 1), pair_types=("pretrained~ft:naive",))
    wide = synthetic_sweep(seeds=(0, 1), pair_types=("pretrained~ft:naive",), rng_seed=1)
    data = {table: dict(rows) for table, rows in small.items()}
    for table, by_task in wide.items():
        for task_id, rows in by_task.items():
            data[table][f"{task_id}-vgg"] = [{**r, "task_id": f"{task_id}-vgg", "model": "vgg13",
                                              **({"acc": r["acc"] / 2} if "acc" in r else {})} for r in rows]
    write_sweep(layout, data)
    real = figures.draw_all
    figures.draw_all = lambda jobs, processes=None: [b"" for _ in jobs]
    try:
        out = report.write_report(layout)
    finally:
        figures.draw_all = real
    md = layout.storage.read_bytes(layout.report_file("finetune_table.md")).decode()
    assert [line for line in md.splitlines() if line.startswith("**")] == ["**model = small_cnn**", "**model = vgg13**"]
    assert "accuracy (%) on the counterfactual test sets" in out.text and "(model = vgg13):" in out.text
    long = pd.read_parquet(io.BytesIO(layout.storage.read_bytes(layout.report_file("finetune_table.parquet"))))
    naive = long[long["row"] == "naive"]
    assert set(naive["model"]) == {"small_cnn", "vgg13"} and set(naive["n"]) == {2}        # two seeds each
    ev = tables.read_table(layout, vocab.EVALUATIONS)
    for model, group in naive.groupby("model"):
        seeds = ev[(ev["model"] == model) & (ev["method"] == "naive") & (ev["eval_set"] == group["eval_set"].iloc[0])]
        assert group["mean"].iloc[0] == pytest.approx(seeds["acc"].mean())
    names = {f.rsplit("/", 1)[-1] for f in out.figures}
    assert {"finetuning_model-small-cnn.png", "finetuning_model-vgg13.png", "barriers_model-small-cnn.png",
            "barriers_model-vgg13.png"} <= names and "finetuning.png" not in names


def test_a_task_that_no_longer_verifies_gives_the_report_and_the_claims_none_of_its_rows(tmp_path):
    """A finished fine-tuning whose done marker is gone since: the report says it counts as not run, so none
    of its rows reaches Table 1, the barrier summary or the claims (two seeds left, not three), while its
    `tasks` row stays for the progress table; `print_claims` and the console text judge the same rows."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "damaged")
    data = synthetic_sweep(seeds=(0, 1, 2), pair_types=("pretrained~ft:naive",))
    write_sweep(layout, data)
    naive = sorted(t for t in data[vocab.TASKS] if t.startswith("finetune-naive"))[0]
    layout.storage.delete(layout.marker_file(vocab.FINETUNE, naive))
    results, damaged = report.verified_results(layout, report.plan_of(layout)[0])
    assert list(damaged) == [naive] and naive in set(results[vocab.TASKS]["task_id"])
    assert not [t for table in (vocab.EVALUATIONS, vocab.PATHS, vocab.BARRIERS) for t in results[table]["task_id"]
                if t == naive]
    seen = []
    real = report.claims_lib.judge
    report.claims_lib.judge = lambda results, *a, **k: seen.append(results) or real(results, *a, **k)
    figures.draw_all, draw = (lambda jobs, processes=None: [b"" for _ in jobs]), figures.draw_all
    try:
        report.write_report(layout)
        report.print_claims(layout, log=lambda text: None)
        report.summary_text(layout)
    finally:
        report.claims_lib.judge, figures.draw_all = real, draw
    assert len(seen) == 3 and all(naive not in set(r[vocab.EVALUATIONS]["task_id"]) for r in seen)
    long = pd.read_parquet(io.BytesIO(layout.storage.read_bytes(layout.report_file("finetune_table.parquet"))))
    assert set(long[long["row"] == "naive"]["n"]) == {2}


def test_provenance_lists_every_host_that_ran_a_task_finished_or_not():
    """"hosts": the tasks table's hosts, those of failed tasks too (a node that fails every task is one to find)."""
    tasks = _rows([{"task_id": "a", "status": vocab.FINISHED, "host": "node-a"},
                   {"task_id": "b", "status": vocab.FAILED, "host": "node-b"}])
    assert progress.task_provenance(tasks)["hosts"] == "node-a, node-b"


def test_a_task_that_failed_without_ever_finishing_is_not_damaged(monkeypatch):
    """`damaged_tasks`: a missing done.json is damage only for a task the tasks table records as finished; one
    whose only row failed never had outputs to lose."""
    plan = pd.DataFrame({"task_id": ["p0", "p1"], "kind": [vocab.PRETRAIN] * 2})
    monkeypatch.setattr(progress.outputs, "verify_many",
                        lambda layout, tasks, processes=1: {t: (False, progress.outputs.NOT_FINISHED) for _, t in tasks})
    tasks = _rows([{"task_id": "p0", "kind": vocab.PRETRAIN, "status": vocab.FAILED},
                   {"task_id": "p1", "kind": vocab.PRETRAIN, "status": vocab.FINISHED}])
    assert list(progress.damaged_tasks(None, plan, tasks)) == ["p1"]


def test_rows_without_a_cached_flag_are_not_counted_as_cached():
    """`cached` null (rows of an older schema, read with nulls) is not "reused": no "cached tasks" line."""
    tasks = _rows([{"task_id": "a", "status": vocab.FINISHED, "cached": None},
                   {"task_id": "b", "status": vocab.FINISHED, "cached": None}])
    assert "cached tasks" not in progress.task_provenance(tasks)


def test_the_report_names_the_revision_of_the_code_that_judged_it(monkeypatch):
    """"code revision (report)": the revision of the code that wrote the report (its verdicts are that code's)."""
    monkeypatch.setattr(progress.provenance, "revision_label", lambda revision=None: "0123456789ab+dirty.0badc0de")
    assert progress.software_versions()["code revision (report)"] == "0123456789ab+dirty.0badc0de"


def test_a_stored_spec_that_is_not_a_mapping_gives_no_spec_and_the_default_rules():
    """A spec.yaml that is YAML but a list: "not a mapping", judged by the default rules, no swept keys (no crash)."""
    from orchestrator.spec.claim_rules import ClaimRules

    text = "- name: s\n- axes: []\n"
    assert report._parsed_spec(text) == (None, "the sweep's spec.yaml is not a mapping")
    assert report.stored_rules(None, text)[0] == ClaimRules() and report.swept_keys(None, text) == ()


def test_the_terminal_barrier_table_shows_a_nan_mean_as_missing():
    nan = float("nan")
    summary = _summary([("cue~nocue", "linear", None, "nocue", 0, nan, nan, nan),
                        ("cue~nocue", "linear", None, "cue", 2, 2.0, 1.0, 3.0)])
    pivot = report.barrier_pivot(summary).set_index("pair type")
    assert pivot.loc["cue~nocue", "nocue"] == stats.MISSING and pivot.loc["cue~nocue", "cue"] == "2.000 [1.000, 3.000]"


def test_the_terminal_barrier_table_keeps_a_pair_without_a_cue_proportion_beside_pairs_with_one():
    """Where cue proportions vary, a pair type without one (null) keeps its row (labelled missing), not dropped."""
    cells = [("cue~cue", "linear", None, "nocue", 3, m, m - 0.1, m + 0.1) for m in (1.0, 2.0)] + \
            [("nocue~nocue", "linear", None, "nocue", 3, 0.5, 0.4, 0.6)]
    summary = _summary(cells).assign(cue_proportion=[0.5, 0.8, None])
    pivot = report.barrier_pivot(summary)
    assert sorted(pivot["pair type"]) == ["cue~cue", "cue~cue", "nocue~nocue"]


def test_the_terminal_table_1_of_a_swept_value_names_only_that_values_methods(small):
    """Table 1 per swept value (the terminal text): a fine-tuning method recorded only at `finetune.lam` = 3 is a
    row of that value's table, not of lam 1's."""
    layout = small[0]
    results = report.read_results(layout, swept=("finetune.lam",))
    tasks = results[vocab.TASKS]
    extra = tasks[tasks["kind"] == vocab.FINETUNE].iloc[[0]].assign(
        task_id="finetune-lpft-lam3", method="lpft", status=vocab.FAILED, **{"finetune.lam": 3.0})
    results[vocab.TASKS] = pd.concat([tasks, extra], ignore_index=True)
    text = report._text(results, ("finetune.lam",), stats.summarize(results[vocab.BARRIERS], swept=("finetune.lam",)), [])
    blocks = {block.strip().splitlines()[0]: block for block in text.split("\n\n") if block.strip()}
    lam1 = next(b for head, b in blocks.items() if head.startswith("accuracy") and "(finetune.lam = 1)" in head)
    lam3 = next(b for head, b in blocks.items() if head.startswith("accuracy") and "(finetune.lam = 3)" in head)
    assert "lpft" in lam3 and "lpft" not in lam1


def test_endpoint_drift_is_given_per_swept_value(small):
    """endpoint_drift.parquet: one row per swept value (`finetune.lam` 1 and 3 have paths), not pooled over them."""
    layout = small[0]
    drift = pd.read_parquet(io.BytesIO(layout.storage.read_bytes(layout.report_file("endpoint_drift.parquet"))))
    assert set(drift["finetune.lam"].dropna()) == {1.0, 3.0}


@pytest.fixture(scope="module")
def one_lam(tmp_path_factory):
    """A sweep of `finetune.lam` whose rows so far hold one value of the axis (1; the CBFT pair only)."""
    layout = SweepLayout(Storage(str(tmp_path_factory.mktemp("one-lam") / "runs")), "one")
    write_sweep(layout, synthetic_sweep(seeds=(0, 1), lams=(1.0,), pair_types=("pretrained~ft:cbft",)), lams=(1.0,))
    return layout


def test_the_terminal_summary_keeps_a_swept_setting_with_one_value_so_far(one_lam):
    """`summary_text`'s summary is grouped by the spec's swept settings, also by one that has one value yet."""
    summary, _ = report.summary_text(one_lam)
    assert set(summary["finetune.lam"].dropna()) == {1.0}


def test_the_pages_mechanism_table_keeps_a_swept_setting_with_one_value_so_far(one_lam, monkeypatch):
    """The page's agreement/reliance table is given per swept value, also where one value has rows so far."""
    seen = {}
    monkeypatch.setattr(report.figures, "draw_figures", lambda layout, jobs: report.figures.Drawn([], {}, []))
    monkeypatch.setattr(report.report_html, "render_page", lambda **kw: seen.update(kw) or "")
    report.write_report(one_lam)
    assert set(seen["mechanism"]["finetune.lam"].dropna()) == {1.0}


def test_a_report_without_barriers_has_no_summary_table(tmp_path):
    """`Report.summary_table`: None where there is no barrier yet (what `mmc.run`'s outcome.summary holds)."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "s")
    data = synthetic_sweep(seeds=(0,), pair_types=("cue~nocue",))
    for table in (vocab.PATHS, vocab.BARRIERS):
        data[table] = {}
    write_sweep(layout, data)
    out = report.write_report(layout)
    assert out.summary_table is None and out.summary is not None


def test_a_missing_spec_is_said_not_read_as_an_empty_one():
    """No spec.yaml to read: the claims are judged by the default rules, and the page must say why."""
    assert report._parsed_spec(None) == (None, "the sweep's spec.yaml is missing or unreadable")


def test_a_report_that_fills_the_disk_leaves_the_earlier_report_whole(tmp_path):
    """A disk that fills while the page is written (the last file): the tables, claims and figures written
    before it are not left new beside the earlier page; every earlier file keeps its bytes, none is added, no
    temporary file stays, and the next report with room writes them all (the page again, with its own render
    time)."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "full")
    write_sweep(layout, synthetic_sweep(seeds=(0, 1), pair_types=("pretrained~ft:naive",)))
    figures.draw_all, draw = (lambda jobs, processes=None: [b"png %d" % i for i, _ in enumerate(jobs)]), figures.draw_all
    try:
        first = report.write_report(layout)
        before = {p: layout.storage.read_bytes(p) for p in first.files}
        for path in before:                   # an earlier report of other results: every file differs from the next
            layout.storage.write_bytes(path, b"earlier " + before[path])
        earlier = {p: layout.storage.read_bytes(p) for p in first.files}
        real = layout.storage.fs
        layout.storage.fs = FullDisk(real, "report.html")
        with pytest.raises(OSError, match="No space"):
            report.write_report(layout)
        layout.storage.fs = real
        left = {str(p) for p in (tmp_path / "runs" / "full" / "report").iterdir()}
        assert left == set(earlier) and {p: layout.storage.read_bytes(p) for p in earlier} == earlier
        again = report.write_report(layout)
    finally:
        figures.draw_all = draw
    now = {p: layout.storage.read_bytes(p) for p in again.files}
    assert set(now) == set(before) and now[again.html].startswith(b"<!DOCTYPE html>")
    assert {p: b for p, b in now.items() if p != again.html} == {p: b for p, b in before.items() if p != again.html}



def test_a_reports_files_name_each_file_once_its_reused_figures_too_and_figures_it_no_longer_has_are_removed(
        tmp_path, monkeypatch):
    """`Report.files` (what is logged as the run's artifacts): every file of the report once, a figure
    reused from the earlier report included though nothing was written for it; a figure the earlier report
    had and this one has not is removed from `report/`."""
    layout = SweepLayout(Storage(str(tmp_path / "runs")), "files")
    write_sweep(layout, synthetic_sweep(seeds=(0, 1), pair_types=("pretrained~ft:naive",)))
    monkeypatch.setattr(figures, "draw_all", lambda jobs, processes=None: [b"png %d" % i for i, _ in enumerate(jobs)])
    first = report.write_report(layout)
    assert first.figures and len(first.files) == len(set(first.files)) and set(first.figures) <= set(first.files)
    manifest = layout.report_file(figures.MANIFEST)
    earlier = json.loads(layout.storage.read_bytes(manifest))
    earlier["figures"]["gone.png"] = {"file": "gone.png", "key": "k", "sha256": "s"}
    layout.storage.write_bytes(manifest, json.dumps(earlier).encode())
    layout.storage.write_bytes(layout.report_file("gone.png"), b"an earlier report's figure")
    second = report.write_report(layout)
    assert sorted(second.files) == sorted(first.files)
    assert not layout.storage.exists(layout.report_file("gone.png"))


def _drift(*accs: float) -> pd.DataFrame:
    return pd.DataFrame({"pair_type": "cue~nocue", "path": "linear", "endpoint": ["A", "B"][:len(accs)],
                         "eval_set": "cue", "n": 3, "acc_drift": list(accs)})


def test_a_path_endpoint_far_from_its_trained_models_accuracy_is_noted_once_at_its_worst():
    """The summary says where a path's endpoint (BN re-estimated) scores at least 10 pp from Table 1's
    accuracy of the same model, either way, at the largest such gap; nothing below it or without rows."""
    assert report.drift_note(_drift()) == "" and report.drift_note(_drift(0.099, -0.05)) == ""
    note = report.drift_note(_drift(0.11, -0.12))
    assert note.startswith("note: the paths' endpoints (BatchNorm re-estimated on `paths.bn_data`) score up to 12 pp")
    assert "(cue~nocue linear, endpoint B, cue: -12.0 pp, mean over 3 pairs)" in note
    assert "(cue~nocue linear, endpoint A, cue: +11.0 pp, one pair)" in report.drift_note(_drift(0.11).assign(n=1))


def _endpoints_as_trained(data: dict, drop: float = 0.0) -> dict:
    """The synthetic sweep with each path's endpoints scoring what its trained models score (Table 1's
    accuracy), the cue model at alpha 0 on the cue set `drop` lower."""
    trained = {(t, r["eval_set"]): r["acc"] for t, rows in data[vocab.EVALUATIONS].items() for r in rows}
    for rows in data[vocab.PATHS].values():
        for row in rows:
            if row["alpha"] in (0.0, 1.0):
                row["acc"] = trained[(row["endpoint_a" if row["alpha"] == 0.0 else "endpoint_b"], row["eval_set"])]
                row["acc"] -= drop if row["alpha"] == 0.0 and row["eval_set"] == "cue" else 0.0
    return data


def test_the_run_summary_notes_endpoints_that_drift_before_the_claims(tmp_path):
    layout = SweepLayout(Storage(str(tmp_path / "drift")), "test-sweep")
    write_sweep(layout, _endpoints_as_trained(synthetic_sweep(pair_types=("cue~nocue",)), drop=0.30))
    text = report.summary_text(layout)[1]
    (line,) = [x for x in text.splitlines() if x.startswith("note: the paths' endpoints")]
    assert "score up to 30 pp" in line and "endpoint A, cue: -30.0 pp" in line
    assert text.index(line) < text.index("claims (details")
    layout = SweepLayout(Storage(str(tmp_path / "calm")), "test-sweep")
    write_sweep(layout, _endpoints_as_trained(synthetic_sweep(pair_types=("cue~nocue",))))
    assert "note: the paths' endpoints" not in report.summary_text(layout)[1]


def test_an_endpoint_exactly_ten_pp_from_its_trained_models_accuracy_is_noted():
    """The note's threshold is "at least DRIFT_NOTED" (10 pp) either way: a drift of exactly 0.10 is said."""
    assert report.DRIFT_NOTED == 0.10
    assert "score up to 10 pp" in report.drift_note(_drift(0.10))
    assert "score up to 10 pp" in report.drift_note(_drift(-0.10))
