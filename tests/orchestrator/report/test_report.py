"""The report: every file written, claims first, figures not blank and not redrawn when nothing
changed, only the plan's tasks, facets by swept settings, partial sweeps, the figure workers' wire
format."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import build as report, figures, progress, stats
from orchestrator.results import tables
from orchestrator.storage.layout import Storage, SweepLayout
from tests.support.report_data import PAIRS, SEEDS, SPEC, render, synthetic_sweep, write_plan, write_sweep


def _pixels_vary(png: bytes) -> bool:
    image = mpimg.imread(io.BytesIO(png), format="png")
    return image.ndim == 3 and float(np.var(image[..., :3])) > 0


def _names(paths) -> set[str]:
    return {p.rstrip("/").rsplit("/", 1)[-1] for p in paths}


@pytest.fixture()
def layout(tmp_path):
    return SweepLayout(Storage(str(tmp_path / "store")), "test-sweep")


@pytest.fixture()
def drawn(monkeypatch):
    """Names of the figures drawn (not reused) by each `write_report`."""
    calls: list[list[str]] = []
    real = figures.draw_all

    def spy(jobs, processes=None):
        calls.append([j.name for j in jobs])
        return real(jobs, processes=1)
    monkeypatch.setattr(figures, "draw_all", spy)
    return calls


@pytest.fixture()
def undrawn(monkeypatch):
    """Figures stood in for by one blank PNG each: for tests of the report's text, which draw nothing
    they look at (drawing is most of a report's time)."""
    blank = io.BytesIO()
    mpimg.imsave(blank, np.zeros((2, 2, 3)), format="png")
    monkeypatch.setattr(figures, "draw_all", lambda jobs, processes=None: [blank.getvalue() for _ in jobs])


def test_full_report(layout, drawn):
    data = synthetic_sweep()
    write_sweep(layout, data)
    out = report.write_report(layout, provenance={"python": "3.11-test", "wall_s": 1.5})
    storage = layout.storage
    pair_types = sorted({p[0] for p in PAIRS})
    path_figures = {f"paths_{p.replace('~', '-').replace(':', '-').replace('_', '-').replace('@', '-')}.png" for p in pair_types}
    assert _names(out.figures) == path_figures | {"barriers.png", "finetuning.png", "training.png"}
    assert _names(out.files) == _names(out.figures) | {"summary.parquet", "summary.md", "finetune_table.md",
                                                        "finetune_table.parquet", "claims.md", "report.html",
                                                        "endpoint_drift.parquet", figures.MANIFEST}
    for path in out.files:
        assert storage.exists(path)
    for path in out.figures:
        assert _pixels_vary(storage.read_bytes(path)), path

    summary = pd.read_parquet(io.BytesIO(storage.read_bytes(layout.report_file("summary.parquet"))))
    direct = stats.summarize(tables.read_table(layout, vocab.BARRIERS))
    pd.testing.assert_frame_equal(summary.reset_index(drop=True), direct, check_dtype=False)
    md = storage.read_bytes(layout.report_file("finetune_table.md")).decode()
    assert "pretrained (no cue)" in md and "cbft" in md and "±" in md and stats.MISSING not in md
    assert storage.read_bytes(layout.report_file("claims.md")).decode().count("→ Holds") == 4

    page = storage.read_bytes(out.html).decode()
    assert os.fspath(out) == out.html
    assert page.count("data:image/png;base64,") == len(out.figures)
    sections = [page.index(f'id="{s}"') for s in ("claims", "barriers", "finetune", "paths", "provenance", "spec")]
    assert sections == sorted(sections)                             # the claims come first
    claims_part = page[sections[0]:sections[1]]
    assert claims_part.count('class="claim holds"') == 4 and "cue~nocue:same-init" in claims_part
    assert "agreement with A" in page and "acc(randimg) − chance" in page    # mechanism along the path
    assert "<th>n</th>" in page and f"(n = {len(SEEDS)})" in page       # n on the statistics
    assert "mmc-sweep run sweeps/test.yaml" in page                     # spec text
    assert "deadbeef" in page and "abc123" in page and "3.11-test" in page and "1.5 s" in page
    assert "code revision (report)" in page         # whose rules judged the stored verdicts
    n_tasks = len(data[vocab.TASKS])
    assert f"{n_tasks} of {n_tasks} tasks finished" in page
    assert "<img" in page and 'src="http' not in page                   # self-contained
    assert out.text == report.summary_text(layout)[1] and "HOLDS" in out.text
    assert len(drawn) == 1 and set(drawn[0]) == _names(out.figures)


def test_rerun_draws_only_figures_whose_inputs_changed(layout, drawn):
    data = synthetic_sweep(seeds=(0, 1), pair_types=("cue~nocue", "cue~cue"))
    write_sweep(layout, data)
    first = report.write_report(layout)
    before = {p: layout.storage.read_bytes(p) for p in first.figures}
    second = report.write_report(layout)
    assert drawn[1] == [] and {p: layout.storage.read_bytes(p) for p in second.figures} == before
    page = layout.storage.read_bytes(second.html).decode()
    assert page.count("data:image/png;base64,") == len(before) and "unchanged and reused" in page

    tid = next(t for t in data[vocab.PATHS] if "cue_cue-linear" in t and t.endswith("s0"))
    rows = [dict(r, loss=r["loss"] + 0.5 * (0 < r["alpha"] < 1)) for r in data[vocab.PATHS][tid]]
    tables.write_fragment(layout, vocab.PATHS, tid, rows)
    report.write_report(layout)
    assert drawn[2] == ["paths_cue-cue.png"]                            # barriers unchanged: not redrawn

    layout.storage.write_bytes(layout.report_file("paths_cue-nocue.png"), b"not a png")
    report.write_report(layout)
    assert drawn[3] == ["paths_cue-nocue.png"]                          # a damaged file is redrawn


def test_report_reads_only_the_planned_tasks(layout, undrawn):
    data = synthetic_sweep(pair_types=("cue~nocue",))
    write_sweep(layout, data)
    tid = next(iter(data[vocab.BARRIERS]))
    stale = [dict(r, value=99.0) for r in data[vocab.BARRIERS][tid]]
    tables.write_fragment(layout, vocab.BARRIERS, "path_eval-of-an-older-spec", stale)
    out = report.write_report(layout)
    summary = pd.read_parquet(io.BytesIO(layout.storage.read_bytes(out.summary)))
    assert summary["mean"].max() < 50 and (summary["n"] == len(SEEDS)).all()
    assert "99.000" not in layout.storage.read_bytes(out.html).decode()
    terminal, text = report.summary_text(layout)              # `mmc-sweep run`'s summary and `claims`: the same rows
    assert (terminal["n"] == len(SEEDS)).all() and terminal["mean"].max() < 50
    printed = []
    report.print_claims(layout, log=printed.append)
    assert printed == [layout.storage.read_bytes(layout.report_file("claims.md")).decode()]


def test_partial_report_marks_missing(layout, undrawn):
    data = synthetic_sweep(pair_types=("cue~nocue", "pretrained~ft:naive", "pretrained~ft:cbft"))
    planned = len(data[vocab.TASKS])
    for rows in data[vocab.TASKS].values():           # the cbft fine-tuning failed
        if rows[0].get("method") == "cbft":
            rows[0].update(status=vocab.FAILED, error="Traceback...\nRuntimeError: diverged at epoch 3")
    for table in (vocab.EVALUATIONS, vocab.TRAIN_CURVES, vocab.PATHS, vocab.BARRIERS):
        data[table] = {t: r for t, r in data[table].items() if "cbft" not in t}
    full = {t: list(r) for t, r in data[vocab.TASKS].items()}
    for table in (vocab.TASKS, vocab.PATHS, vocab.BARRIERS):  # the quadratic paths have not run yet
        data[table] = {t: r for t, r in data[table].items() if "quadratic" not in t}
    write_sweep(layout, data, plan=False)
    write_plan(layout, full)                                    # the plan names every task
    finished = sum(1 for rows in data[vocab.TASKS].values() if rows[0]["status"] == vocab.FINISHED)
    out = report.write_report(layout)
    page = layout.storage.read_bytes(out.html).decode()
    assert f"{finished} of {planned} tasks finished" in page and "partial sweep" in page
    assert "diverged at epoch 3" in page
    md = layout.storage.read_bytes(layout.report_file("finetune_table.md")).decode()
    cbft_line = next(line for line in md.splitlines() if line.startswith("| cbft"))
    assert cbft_line.count(stats.MISSING) == 5                      # 4 eval sets and n
    summary = pd.read_parquet(io.BytesIO(layout.storage.read_bytes(out.summary)))
    assert vocab.QUADRATIC not in set(summary["path_kind"])
    claims_md = layout.storage.read_bytes(layout.report_file("claims.md")).decode()
    assert "Not testable here" in claims_md and "not measured" in claims_md   # (c) without CBFT


def test_report_on_empty_sweep(layout):
    layout.storage.write_bytes(layout.spec_file(), b"name: test-sweep\n")
    out = report.write_report(layout)
    page = layout.storage.read_bytes(out.html).decode()
    assert out.figures == () and re.search(r"\b0 of \d+ tasks finished", page) and "name: test-sweep" in page
    assert "plan.parquet is missing or unreadable" in out.note     # the plan of the stored spec, rebuilt: one version only
    assert "No claim can be judged yet" in page
    assert layout.storage.exists(layout.report_file("summary.parquet"))
    assert report.summary_text(layout) == (None, "")


def test_swept_settings_facet_table1_barriers_figures_and_claims(layout):
    lams = (1.0, 3.0)
    write_sweep(layout, synthetic_sweep(lams=lams, pair_types=("cue~nocue", "pretrained~ft:cbft")), lams=lams)
    assert report.swept_keys(layout) == ("finetune.lam",)
    out = report.write_report(layout)
    names = _names(out.figures)
    for lam in ("1.0", "3.0"):
        assert {f"finetuning_finetune.lam-{lam}.png", f"barriers_finetune.lam-{lam}.png",
                f"paths_pretrained-ft-cbft_finetune.lam-{lam}.png"} <= names
    assert "paths_cue-nocue.png" in names                           # no axis affects it: one figure
    md = layout.storage.read_bytes(layout.report_file("finetune_table.md")).decode()
    assert md.count("**finetune.lam = ") == 2 and md.count("| pretrained (no cue)") == 2
    summary = pd.read_parquet(io.BytesIO(layout.storage.read_bytes(out.summary)))
    cbft = summary[summary["pair_type"] == "pretrained~ft:cbft"]
    assert set(cbft["finetune.lam"]) == set(lams)
    assert summary[summary["pair_type"] == "cue~nocue"]["finetune.lam"].isna().all()
    page = layout.storage.read_bytes(out.html).decode()
    barriers = page[page.index('id="barriers"'):page.index('id="finetune"')]
    assert barriers.count("<h3>finetune.lam = ") == 2
    assert barriers.count("<strong>cue~nocue</strong>") == 2 * 2          # per value: loss and accuracy grids
    _, text = report.summary_text(layout)
    assert text.count("(finetune.lam = 1)") == 2 and "[finetune.lam = 3]" in text


def test_figure_jobs_travel_as_json_and_parquet_and_workers_draw_the_same(layout):
    write_sweep(layout, synthetic_sweep(seeds=(0, 1)))
    jobs = figures.figure_jobs(report.read_results(layout))[:2]
    line = figures.encode(jobs[0])
    message = json.loads(line)
    assert set(message) == {"kind", "options", "frames"} and "\n" not in line
    kind, frames, options = figures.decode(line)
    pd.testing.assert_frame_equal(frames["paths"], jobs[0].frames["paths"])
    assert (kind, options) == (jobs[0].kind, jobs[0].options)
    here = figures.draw_all(jobs, processes=1)
    pooled = figures.draw_all(jobs, processes=2)                   # one worker process and this one
    assert pooled == here and all(png.startswith(b"\x89PNG") for png in here)


def test_a_figure_that_cannot_be_drawn_is_left_out_with_a_warning(layout, caplog):
    write_sweep(layout, synthetic_sweep(seeds=(0,)))
    bad = figures.FigureJob("bad.png", figures.PATHS_SECTION, "x", "x", "x", "path",
                            {"paths": pd.DataFrame({"pair_type": ["nothing"]})}, {"pair_type": "absent"})
    out = render(layout, [bad])
    assert any(r.levelname == "WARNING" and "bad.png could not be drawn" in r.getMessage() for r in caplog.records)
    assert out == [] and not layout.storage.exists(layout.report_file("bad.png"))


def test_the_rules_printed_in_the_report_equal_the_spec(tmp_path, undrawn):
    """The report prints the claims' decision rules as the stored spec states them (defaults filled in),
    and judges by them: a stricter margin in the spec changes the printed rule and the verdict."""
    from orchestrator.report.build import stored_rules
    from orchestrator.spec.claim_rules import ClaimRules
    from tasks.settings import as_dict

    layout = SweepLayout(Storage(str(tmp_path / "runs")), "rules")
    write_sweep(layout, synthetic_sweep())
    report.write_report(layout)
    page = layout.storage.read_bytes(layout.report_file("report.html")).decode()
    rules = dict(as_dict(ClaimRules()), acc_margin=0.2, barrier_sets=("nocue", "cue"))
    section = page[page.index('id="claim-rules"'):page.index("</details>", page.index('id="claim-rules"'))]
    shown = dict(re.findall(r'<th class="row">([a-z_]+)</th><td class="row">([^<]*)</td>', section))
    assert shown == {k: ", ".join(v) if isinstance(v, tuple) else "null" if v is None else str(v)
                     for k, v in rules.items()}
    assert stored_rules(layout)[0] == ClaimRules(**rules)
    assert page.count('<details class="rule">') == 4 and "margin 20 pp" in page

    strict = SweepLayout(Storage(str(tmp_path / "runs")), "strict")
    write_sweep(strict, synthetic_sweep(), spec=SPEC.replace("acc_margin: 0.2", "acc_margin: 0.0"))
    report.write_report(strict)
    claims_md = strict.storage.read_bytes(strict.report_file("claims.md")).decode()
    assert "margin 0 pp" in claims_md and claims_md.count("→ Holds") == 3


def test_labels_computed_per_distinct_value_match_the_row_by_row_labels():
    """`stats.path_variants` / `stats.per_values` (the report at 10^5 tasks labels 10^6 path rows) give
    what the loop over the rows gave, missing values (None, NaN, pd.NA) included."""
    import numpy as np
    import pyarrow as pa

    strings = pd.ArrowDtype(pa.string())
    frame = pd.DataFrame({"path_kind": pd.array(["linear", "linear", "quadratic", None, "linear"], dtype=strings),
                          "alignment": pd.array(["activation", None, None, "weight", "weight"], dtype=strings)})
    looped = [stats.path_variant(k, a) for k, a in zip(frame["path_kind"], frame["alignment"])]
    assert list(stats.path_variants(frame)) == looped == ["linear (activation)", "linear", "quadratic",
                                                          "<NA> (weight)", "linear (weight)"]
    proportions = pd.Series([0.0, 0.5, np.nan, 0.5, 0.25, None], dtype=object)
    keep = lambda v: stats.is_no_cue(v) or v == 0.5   # noqa: E731
    assert list(stats.per_values(proportions, None, keep)) == [keep(v) for v in proportions]
    assert len(stats.path_variants(frame.iloc[:0])) == 0


def test_the_report_reads_only_the_swept_settings_and_judges_the_same(layout):
    """`read_results(..., swept)` leaves out the settings columns no axis sweeps (25 of the `paths`
    table's 68 columns are read at 10^5 tasks): the summary, Table 1, the claims and the figures' data
    are the same as from every column."""
    from orchestrator.report import claims as claims_lib
    from orchestrator.results.schemas import SETTINGS_COLUMNS

    lams = (1.0, 3.0)
    write_sweep(layout, synthetic_sweep(lams=lams, pair_types=("cue~nocue", "pretrained~ft:cbft")), lams=lams)
    swept = report.swept_keys(layout)
    full, projected = report.read_results(layout), report.read_results(layout, swept=swept)
    for table in vocab.TABLES:
        dropped = set(full[table].columns) - set(projected[table].columns)
        assert dropped == set(SETTINGS_COLUMNS) - set(swept), table
        pd.testing.assert_frame_equal(projected[table], full[table][list(projected[table].columns)])
    pd.testing.assert_frame_equal(stats.summarize(projected[vocab.BARRIERS], swept=swept),
                                  stats.summarize(full[vocab.BARRIERS], swept=swept))
    assert claims_lib.claims_text(claims_lib.judge(projected, swept)) == claims_lib.claims_text(claims_lib.judge(full, swept))
    jobs = [figures.figure_jobs(r, swept) for r in (projected, full)]
    assert [j.key("v") for j in jobs[0]] == [j.key("v") for j in jobs[1]]


def test_distinct_values_are_found_without_a_loop_over_the_rows():
    """`order_values` of a column gives what the list of its values gave."""
    column = pd.Series(["b", None, "a", "c", "a", "b"] * 1000, dtype="str")
    assert stats.order_values(column, ("c",)) == stats.order_values(list(column), ("c",)) == ["c", "a", "b"]
    assert stats.order_values(pd.Index(column), ()) == ["a", "b", "c"]


def test_table_files_for_mlflow_are_copied_from_storage_that_is_not_local(tmp_path):
    """MLflow uploads local files: on local storage the tables' Parquet files are given as they are; on an object
    store (here: local storage that says it is not) they are copied into a scratch directory, one per table
    (parts of two tables may share a name), byte for byte; without a scratch directory, none."""
    from orchestrator.report.build import table_files

    layout = SweepLayout(Storage(str(tmp_path / "runs")), "t")
    written = {}
    for table in (vocab.TASKS, vocab.PATHS):
        path = layout.storage.join(layout.table_dir(table), "part-0.parquet")
        layout.storage.write_bytes(path, f"PAR1 {table}".encode())
        written[table] = path
    layout.storage.write_bytes(layout.storage.join(layout.table_dir(vocab.PATHS), "_manifest.json"), b"{}")
    local = table_files(layout)
    assert local[vocab.TASKS] == [written[vocab.TASKS]] and local[vocab.PATHS] == [written[vocab.PATHS]]
    assert local[vocab.BARRIERS] == []
    layout.storage.is_local = False
    assert all(files == [] for files in table_files(layout).values())
    copied = table_files(layout, str(tmp_path / "scratch"))
    for table, path in written.items():
        (copy,) = copied[table]
        assert Path(copy).parent.name == table and Path(copy).read_bytes() == f"PAR1 {table}".encode()



def _task_rows(rows: list[dict]) -> pd.DataFrame:
    """A `tasks` table as `tables.read_table` gives it, from a few rows (later rows are later records)."""
    return pd.DataFrame([{"cached": False, "duration_s": None, "host": None, "device": None, "versions": None,
                          "started_at": None, "finished_at": None, **r} for r in rows])


def test_progress_counts_each_planned_task_by_its_latest_row():
    """A task that failed and was retried counts as finished, one that finished and failed on a rerun as
    failed; a planned task without a row has not run yet; the last row totals the kinds."""
    plan = {vocab.PRETRAIN: ["p0", "p1", "p2", "p3"], vocab.FINETUNE: ["f0", "f1"]}
    tasks = _task_rows([
        {"task_id": "p0", "kind": vocab.PRETRAIN, "status": vocab.FAILED},
        {"task_id": "p0", "kind": vocab.PRETRAIN, "status": vocab.FINISHED},      # retried: finished
        {"task_id": "p1", "kind": vocab.PRETRAIN, "status": vocab.FINISHED},
        {"task_id": "f0", "kind": vocab.FINETUNE, "status": vocab.FINISHED},
        {"task_id": "f0", "kind": vocab.FINETUNE, "status": vocab.FAILED},        # rerun: failed
        {"task_id": "f1", "kind": vocab.FINETUNE, "status": vocab.SKIPPED},
        {"task_id": "not-planned", "kind": vocab.FINETUNE, "status": vocab.FINISHED},
    ])
    table = progress.progress_table(tasks, plan).set_index("kind")
    assert table.loc[vocab.PRETRAIN].to_dict() == {"planned": 4, vocab.FINISHED: 2, vocab.FAILED: 0,
                                                   vocab.SKIPPED: 0, "not run yet": 2}
    assert table.loc[vocab.FINETUNE].to_dict() == {"planned": 2, vocab.FINISHED: 0, vocab.FAILED: 1,
                                                   vocab.SKIPPED: 1, "not run yet": 0}
    assert table.loc["total"].to_dict() == {"planned": 6, vocab.FINISHED: 2, vocab.FAILED: 1, vocab.SKIPPED: 1,
                                            "not run yet": 2}


def test_task_provenance_sums_finished_durations_and_spans_first_start_to_last_finish():
    t0 = pd.Timestamp("2025-01-01 00:00:00", tz="UTC")
    tasks = _task_rows([
        {"task_id": "a", "status": vocab.FINISHED, "duration_s": 10.0, "host": "node-1", "device": "cuda:0",
         "versions": "python 3.11, torch 2.13.0", "started_at": t0, "finished_at": t0 + pd.Timedelta(seconds=10)},
        {"task_id": "b", "status": vocab.FINISHED, "duration_s": 5.0, "host": "node-2", "device": "cuda:0",
         "cached": True, "started_at": t0 + pd.Timedelta(seconds=30), "finished_at": t0 + pd.Timedelta(seconds=35)},
        {"task_id": "c", "status": vocab.FAILED, "duration_s": 100.0, "host": "node-2", "device": "cpu",
         "started_at": t0 + pd.Timedelta(seconds=40), "finished_at": t0 + pd.Timedelta(seconds=140)},
    ])
    prov = progress.task_provenance(tasks)
    assert prov["task compute time"].startswith("15.0 s ")                  # the failed task's 100 s not counted
    assert prov["hosts"] == "node-1, node-2" and prov["devices"] == "cpu (1 tasks), cuda:0 (2 tasks)"
    assert prov["software (run)"] == "python 3.11, torch 2.13.0"
    assert prov["cached tasks"].startswith("1 ")
    assert prov["wall time"] == "140.0 s (2025-01-01 00:00:00 to 2025-01-01 00:02:20 UTC)"
    caller = progress.caller_provenance({"wall_s": 2.25, "git_rev": None})
    assert caller == {"wall time of this invocation": "2.2 s", "git revision of this invocation": stats.MISSING}
    # a rerun that reused every result keeps the revision that computed them as the report's "git revision"
    merged = {**progress.task_provenance(tasks.assign(git_rev="abc")), **progress.caller_provenance({"git_rev": "new"})}
    assert (merged["git revision"], merged["git revision of this invocation"]) == ("abc", "new")


def _barrier_summary(layout) -> pd.DataFrame:
    write_sweep(layout, synthetic_sweep(pair_types=("cue~nocue",)))
    return stats.summarize(tables.read_table(layout, vocab.BARRIERS))


def test_barrier_tables_show_each_cells_chord_mean_and_interval(layout):
    """The terminal pivot and the page's grid: the chord loss barrier's mean with its 95% interval, per
    eval set; the grid's n column gives the range of n where the eval sets differ."""
    from orchestrator.report import html as report_html

    summary = _barrier_summary(layout)
    for column in ("mean", "ci_low", "ci_high"):      # other definitions (equal to the chord's on a peak at 0.5)
        summary.loc[summary.definition != "chord", column] += 1.0   # told apart from it
    pick = summary[(summary.pair_type == "cue~nocue") & (summary.path_kind == "linear") & (summary.metric == "loss")
                   & (summary.definition == "chord")].set_index("eval_set")
    assert set(pick.index) == {"nocue", "cue", "randcue", "randimg"}
    pivot = report.barrier_pivot(summary)
    row = pivot[(pivot["pair type"] == "cue~nocue") & (pivot["path"] == "linear")].iloc[0]
    grid = report_html.barrier_grid(summary)
    for eval_set, r in pick.iterrows():
        cell = f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        assert row[eval_set] == cell
        assert (f"{r['mean']:.3f} <span class=\"muted\">[{r['ci_low']:.3f}, {r['ci_high']:.3f}]</span>" in grid)
    assert f"<td>{len(SEEDS)}</td>" in grid
    fewer = summary.copy()
    fewer.loc[(fewer.pair_type == "cue~nocue") & (fewer.path_kind == "linear") & (fewer.eval_set == "cue"), "n"] = 2
    assert f"<td>2–{len(SEEDS)}</td>" in report_html.barrier_grid(fewer)


def test_the_page_says_partial_or_bad_from_the_counts():
    """The banner: complete only when every planned task finished; partial (amber) when some have not run;
    bad (red) when some failed or were skipped, skipped ones included."""
    from orchestrator.report import html as report_html

    plan = {vocab.PRETRAIN: ["p0", "p1", "p2"]}
    done = _task_rows([{"task_id": t, "kind": vocab.PRETRAIN, "status": vocab.FINISHED} for t in ("p0", "p1", "p2")])
    assert 'class="banner ok"' in report_html.banner(progress.progress_table(done, plan), 3)
    partial = report_html.banner(progress.progress_table(done.iloc[:2], plan), 3)
    assert 'class="banner partial"' in partial and "2 of 3 tasks finished" in partial
    skipped = done.assign(status=[vocab.FINISHED, vocab.FINISHED, vocab.SKIPPED])
    bad = report_html.banner(progress.progress_table(skipped, plan), 3)
    assert 'class="banner bad"' in bad and "(1 failed or skipped)" in bad


def test_finished_tasks_whose_outputs_no_longer_verify_count_as_not_run_and_turn_the_banner_red():
    """As `mmc-sweep status` and the next run see them: a task whose checkpoint was deleted after it
    finished is not "complete"; the banner names it and what happened."""
    from orchestrator.report import html as report_html

    plan = {vocab.PRETRAIN: ["p0", "p1", "p2"]}
    done = _task_rows([{"task_id": t, "kind": vocab.PRETRAIN, "status": vocab.FINISHED} for t in ("p0", "p1", "p2")])
    damaged = {"p1": "model.safetensors is missing"}
    table = progress.progress_table(done, plan, damaged).set_index("kind")
    assert table.loc[vocab.PRETRAIN, vocab.FINISHED] == 2 and table.loc[vocab.PRETRAIN, "not run yet"] == 1
    page = report_html.banner(table.reset_index(), 3, damaged)
    assert 'class="banner bad"' in page and "2 of 3 tasks finished" in page
    assert "1 finished task no longer verifies" in page and "<code>p1</code>: model.safetensors is missing" in page


def test_a_spec_that_cannot_be_read_is_said_in_the_report_not_silently_replaced_by_the_default_rules(
        tmp_path, undrawn, caplog):
    from orchestrator.report.build import stored_rules
    from orchestrator.spec.claim_rules import ClaimRules

    layout = SweepLayout(Storage(str(tmp_path / "runs")), "rules")
    write_sweep(layout, synthetic_sweep())
    assert stored_rules(layout)[0] != ClaimRules()               # the spec declares its own (acc_margin 0.2)
    layout.storage.write_bytes(layout.spec_file(), b"name: [\n")
    with caplog.at_level(logging.WARNING, logger="orchestrator"):
        report.write_report(layout)
    page = layout.storage.read_bytes(layout.report_file("report.html")).decode()
    assert 'class="banner bad"' in page and "spec.yaml is not valid YAML" in page
    assert "judged by the default rules, not those the sweep declared" in page
    assert any("judged by the default rules" in r.getMessage() for r in caplog.records)
    assert stored_rules(layout)[0] == ClaimRules()


def test_endpoint_drift_shows_loss_and_accuracy_in_their_units():
    from orchestrator.report import html as report_html

    drift = pd.DataFrame({"pair_type": ["cue~cue"], "path": ["linear"], "endpoint": ["A"], "eval_set": ["cue"], "n": [3],
                          "loss_drift": [0.125], "loss_low": [0.1], "loss_high": [0.15],
                          "acc_drift": [-0.05], "acc_low": [-0.07], "acc_high": [-0.03]})
    page = report_html.drift_html(drift)
    assert "<td>+0.125 [0.100, 0.150]</td>" in page and "<td>-5.0 [-7.0, -3.0]</td>" in page


def test_the_mechanism_table_shows_agreement_with_each_endpoint_in_percent(layout):
    """Along a path, agreement with A is 100% at α = 0 and agreement with B is 100% at α = 1 (the path's ends
    are the models); the synthetic pairs agree 30% with the other endpoint there."""
    from orchestrator.report import html as report_html

    write_sweep(layout, synthetic_sweep(pair_types=("cue~nocue",)))
    mech = stats.mechanism_table(tables.read_table(layout, vocab.PATHS))
    page = report_html.mechanism_html(mech)
    linear = next(r for r in page.split("<tr>") if "cue~nocue" in r)
    cells = re.findall(r'<td title="[^"]*">([-\d.]+)</td>', linear)
    alphas = len([a for a in re.findall(r"<th>α = ([\d.]+)</th>", page)]) // 4
    agree_a, agree_b = cells[:alphas], cells[alphas:2 * alphas]
    assert (agree_a[0], agree_a[-1], agree_b[0], agree_b[-1]) == ("100.0", "30.0", "30.0", "100.0")
    lower = mech.copy()                    # each cell is the mean; its interval only in the cell's title
    for column in [c for c in mech.columns if c.endswith("_low")]:
        lower[column] = lower[column] - 0.05
    shifted = next(r for r in report_html.mechanism_html(lower).split("<tr>") if "cue~nocue" in r)
    assert re.findall(r'<td title="[^"]*">([-\d.]+)</td>', shifted) == cells
    assert shifted != linear


def test_the_claims_table_gives_each_statistic_its_own_n():
    """The n column of a claim's statistics is each row's own number of values, not a count of rows."""
    from orchestrator.report import html as report_html
    from orchestrator.report import verdicts

    claim = verdicts.Claim("a", "a statement")
    for n in (2, 5, 7):
        claim.rows.append(verdicts.Row(f"pair {n}", "loss barrier", stats.Estimate.of(np.arange(n, dtype=float))))
    page = report_html.claims_html([claim])
    shown = re.findall(r'<td class="row">loss barrier</td><td>(\d+)</td>', page)
    assert shown == ["2", "5", "7"]
