"""report.html's pieces as a reader reads them: the progress banner, the failed tasks, the claims,
the barrier grid (order, n, intervals, shading), Table 1's cells, the mechanism table, the map
table and where each figure goes on the page (with one heading per pair type)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd

from orchestrator import vocab
from orchestrator.report import figures as figures_lib
from orchestrator.report import html as report_html
from orchestrator.report import stats, verdicts
from orchestrator.report.comparisons import NO, UNTESTABLE, YES
from orchestrator.report.mechanism_map import MechanismMap, Threshold


def test_the_shade_grows_with_the_fraction_from_005_to_040_and_is_clipped_to_that_range():
    alpha = [float(re.search(r"([\d.]+)\)$", report_html.shade(f)).group(1)) for f in (0.0, 0.4, 1.0, 3.0, -1.0, np.nan)]
    assert alpha == [0.05, 0.19, 0.40, 0.40, 0.05, 0.05]


def test_a_table_cell_shows_floats_to_the_digits_asked_and_missing_values_as_missing():
    page = report_html.html_table(pd.DataFrame({"x": [0.123456, None], "k": ["a", "b"]}), digits=3)
    assert "<td>0.123</td>" in page and f'<td class="missing">{stats.MISSING}</td>' in page


def _progress(failed: int) -> pd.DataFrame:
    """The progress table: pretrain 3 of 3 finished; finetune 0 of 2 (`failed` of them failed); the total."""
    cols = ["kind", "planned", vocab.FINISHED, vocab.FAILED, vocab.SKIPPED, "not run yet"]
    return pd.DataFrame([[vocab.PRETRAIN, 3, 3, 0, 0, 0], [vocab.FINETUNE, 2, 0, failed, 0, 2 - failed],
                         ["total", 5, 3, failed, 0, 2 - failed]], columns=cols)


def test_the_banner_counts_the_total_row_and_says_how_many_tasks_have_no_results():
    page = report_html.banner(_progress(failed=1), 5)
    assert "3 of 5 tasks finished" in page and "2 have no results yet (1 failed or skipped)" in page
    assert 'class="banner bad"' in page


def test_without_a_plan_the_banner_is_red_when_tasks_failed_and_green_otherwise():
    assert 'class="banner bad"' in report_html.banner(_progress(failed=1), None)
    assert 'class="banner ok"' in report_html.banner(_progress(failed=0), None)


def test_the_failed_tasks_table_shows_the_last_line_of_each_error():
    failed = pd.DataFrame({"task_id": ["t1"], "kind": [vocab.FINETUNE],
                           "error": ["Traceback (most recent call last):\n  File x\nRuntimeError: diverged\n"]})
    page = report_html.failed_table(failed)
    assert "<td>RuntimeError: diverged</td>" in page and "Traceback" not in page


def test_claims_are_grouped_under_their_context_once_and_mark_supporting_and_untestable_checks():
    def claim(key, context):
        return verdicts.Claim(key, f"statement {key}", context=context, checks=[
            verdicts.Check("required one", YES, "+0.5", group="g"),
            verdicts.Check("supporting one", NO, "-0.1", group=None, reason="underpowered"),
            verdicts.Check("untestable one", UNTESTABLE, "—", group="h", reason="chance floor")])
    page = report_html.claims_html([claim("a", "model = wide"), claim("b", "model = wide"), claim("c", "model = slim")])
    assert page.count("<h3>model = wide</h3>") == 1 and page.count("<h3>model = slim</h3>") == 1
    assert page.count("+0.5</span>") == 3 and page.count("-0.1 (supporting)</span>") == 3
    assert page.count("(supporting)") == 3
    assert page.count('<span class="reason">not testable: chance floor</span>') == 3
    assert page.count('<span class="reason">underpowered</span>') == 3          # a reason, but testable


def _summary() -> pd.DataFrame:
    """Barrier statistics: cbft, naive and cue~nocue (linear, quadratic) on nocue, cue and randcue."""
    rows = []
    for pair, kind, mean in (("pretrained~ft:cbft", "linear", 0.2), ("pretrained~ft:naive", "linear", 0.1),
                             ("cue~nocue", "quadratic", -0.4), ("cue~nocue", "linear", 0.3)):
        for eval_set, n in (("randcue", 1), ("cue", 2), ("nocue", 3)):
            for metric, scale in (("loss", 1.0), ("acc", 0.5)):
                rows.append({"pair_type": pair, "path_kind": kind, "alignment": None, "eval_set": eval_set,
                             "metric": metric, "definition": "chord", "n": n, "mean": scale * mean, "std": 0.05,
                             "ci_low": scale * mean - 0.1 if n > 1 else np.nan,
                             "ci_high": scale * mean + 0.1 if n > 1 else np.nan})
    return pd.DataFrame(rows)


def _grid_rows(page: str) -> list[list[str]]:
    body = page.split("<tbody>", 1)[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("<tr>")[1:]]


def test_the_barrier_grid_lists_pairs_in_order_names_each_pair_once_and_gives_eval_sets_in_order():
    """Rows: cue~nocue (linear, then quadratic), then fine-tuning pairs in the method registry's order
    (naive before cbft); columns: nocue, cue, randcue (EVAL_SETS order); n over the row's cells as a range."""
    page = report_html.barrier_grid(_summary())
    heads = re.findall(r"<th>(.*?)</th>", page.split("</thead>")[0])
    assert heads == ["n", "nocue (clean) ↑", "cue", "randcue (random cue)"]
    rows = _grid_rows(page)
    assert [(r[0], r[1]) for r in rows] == [("<strong>cue~nocue</strong>", "linear"), ("<strong></strong>", "quadratic"),
                                            ("<strong>pretrained~ft:naive</strong>", "linear"),
                                            ("<strong>pretrained~ft:cbft</strong>", "linear")]
    assert [r[2] for r in rows] == ["1–3"] * 4


def test_a_barrier_cell_shows_its_interval_only_from_two_pairs_and_is_shaded_by_the_size_of_its_mean():
    page = report_html.barrier_grid(_summary())
    quadratic = _grid_rows(page)[1]
    assert quadratic[3:] == ['-0.400 <span class="muted">[-0.500, -0.300]</span>',
                             '-0.400 <span class="muted">[-0.500, -0.300]</span>', "-0.400"]
    cells = re.findall(r'<td style="background: rgba\(229, 57, 53, ([\d.]+)\)"[^>]*>(-?[\d.]+)', page)
    shade_of = {float(v): float(a) for a, v in cells}
    assert shade_of[-0.4] == 0.40 and shade_of[0.3] == round(0.05 + 0.35 * 0.3 / 0.4, 2)


def test_the_barrier_section_shows_the_accuracy_grid_with_the_accuracy_drops():
    page = report_html.barriers_html(_summary(), ())
    loss, rest = page.split("<details>", 1)
    acc = rest.split("</details>", 1)[0]
    assert "-0.400" in loss and "-0.200" in acc and "-0.400" not in acc


def test_table1_cells_are_shaded_by_their_mean_accuracy():
    text = pd.DataFrame({"method": ["cbft"], "80% nocue": ["40.0 ± 1.0"], "n": ["3"]})
    long = pd.DataFrame({"row": ["cbft"], "cue_proportion": [0.8], "eval_set": ["nocue"], "n": [3], "mean": [0.4],
                         "std": [0.01]})
    page = report_html.finetune_grid(text, long)
    assert '<td style="background: rgba(66, 133, 244, 0.19)">40.0 ± 1.0</td>' in page


def test_a_mechanism_cells_tooltip_gives_its_interval_in_percent_and_none_for_one_pair():
    mech = pd.DataFrame({"pair_type": ["cue~nocue", "cue~cue"], "path_kind": ["linear", "linear"],
                         "alignment": [None, None], "n": [3, 1], "agree_a@0.5": [0.5, 0.7],
                         "agree_a@0.5_low": [0.4, np.nan], "agree_a@0.5_high": [0.65, np.nan]})
    page = report_html.mechanism_html(mech)
    assert '<td title="95% t-interval [40.0, 65.0]">50.0</td>' in page
    assert '<td title="n = 1: no interval">70.0</td>' in page


def _fake_map(eval_set: str) -> MechanismMap:
    models = pd.DataFrame({"cue_proportion": [0.8, 0.8, 0.0], "cluster": [1, 2, 3], "component": [1, 1, 2]})
    return MechanismMap(eval_set, "linear", "loss", "chord", models, np.zeros((3, 3)), Threshold(0.3, "x", 3),
                        within_across=SimpleNamespace(observed=0.5, p_upper=0.01),
                        ari=0.75, ari_test=SimpleNamespace(p_upper=0.2))


def test_the_map_table_counts_clusters_and_components_and_gives_each_test_its_own_p():
    page = report_html.map_html([_fake_map("cue")], [])
    header = re.findall(r"<th>(.*?)</th>", page)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page)
    row = dict(zip(header, cells, strict=True))
    assert (row["clusters"], row["components"]) == ("3", "2")
    assert (row["across − within"], row["p (one-sided)"], row["ARI"]) == ("+0.500", "0.01", "0.75 (p = 0.2)")


def _fig(name, section, heading) -> figures_lib.Figure:
    return figures_lib.Figure(name, section, heading, f"title {name}", "caption", b"\x89PNG")


FIGS = [_fig("paths_cue-nocue.png", figures_lib.PATHS_SECTION, "cue~nocue"),
        _fig("paths_cue-nocue_model-b.png", figures_lib.PATHS_SECTION, "cue~nocue"),
        _fig("paths_cue-cue.png", figures_lib.PATHS_SECTION, "cue~cue"),
        _fig("barriers.png", figures_lib.BARRIERS_SECTION, ""),
        _fig("finetuning.png", figures_lib.TABLE1_SECTION, "")]


def test_path_figures_get_one_heading_per_pair_type_naming_its_endpoints_a_then_b():
    page = report_html.figures_html(FIGS, figures_lib.PATHS_SECTION, headings=True)
    headings = re.findall(r"<h3>(.*?)</h3>", page)
    assert headings == ['cue~nocue <span class="muted">(cue model → no-cue model)</span>',
                        'cue~cue <span class="muted">(cue model A → cue model B)</span>']
    assert page.count("<figure") == 3


def test_each_figure_goes_to_its_own_section_of_the_page():
    page = report_html.render_page(title="t", progress=pd.DataFrame(), planned=None, claims=[], summary=pd.DataFrame(),
                                   swept=(), table1=[], figures=FIGS, provenance={}, spec_text=None,
                                   failed=pd.DataFrame())
    barriers = page[page.index('id="barriers"'):page.index('id="finetune"')]
    finetune = page[page.index('id="finetune"'):page.index('id="paths"')]
    paths = page[page.index('id="paths"'):]
    assert 'data-name="barriers.png"' in barriers and 'data-name="finetuning.png"' not in barriers
    assert 'data-name="finetuning.png"' in finetune
    assert paths.count("<h3>cue~nocue ") == 1 and paths.count('data-name="paths_') == 3


# ---------------------------------------------------------------------------------------------
# Small pieces: escaping, default digits, the banner's other cases, rules, the failed tasks
# ---------------------------------------------------------------------------------------------

def test_text_is_escaped_in_attributes_cells_and_headers():
    """A quote in a figure title must not end its alt="..." attribute; markup in a table's header,
    a provenance value or the spec is shown as text."""
    assert report_html.esc('a "b" <c> & d') == "a &quot;b&quot; &lt;c&gt; &amp; d"
    assert "<th>&lt;b&gt;</th>" in report_html.html_table(pd.DataFrame({"<b>": [1]}))
    assert "<td class=\"row\">&lt;i&gt;x&lt;/i&gt;</td>" in report_html.kv_table({"k": "<i>x</i>"})


def test_a_table_shows_four_digits_unless_told_otherwise():
    assert "<td>0.1235</td>" in report_html.html_table(pd.DataFrame({"x": [0.123456]}))


def test_skipped_tasks_make_the_banner_red_like_failed_ones():
    """Red "when some tasks failed or were skipped (their results are missing)"."""
    progress = _progress(failed=0)
    progress.loc[progress.index[-2:], vocab.SKIPPED] = [2, 2]
    page = report_html.banner(progress, 5)
    assert 'class="banner bad"' in page and "(2 failed or skipped)" in page
    assert 'class="banner bad"' in report_html.banner(progress, None)


def test_a_partial_sweep_without_failures_is_amber_and_a_complete_one_green():
    partial = report_html.banner(_progress(failed=0), 5)
    assert 'class="banner partial"' in partial and "partial sweep" in partial and "2 have no results yet." in partial
    done = _progress(failed=0)
    done.loc[done.index[-1], vocab.FINISHED] = 5
    complete = report_html.banner(done, 5)
    assert 'class="banner ok"' in complete and "5 of 5 tasks finished</strong>: the sweep is complete." in complete


def test_a_failed_tasks_error_line_is_cut_at_300_characters():
    failed = pd.DataFrame({"task_id": ["t1"], "kind": [vocab.FINETUNE], "error": ["x\n" + "E" * 400]})
    assert f"<td>{'E' * 300}</td>" in report_html.failed_table(failed)


def test_the_rules_are_printed_as_the_spec_states_them_lists_joined_and_null_for_none():
    claim = verdicts.Claim("a", "statement", checks=[verdicts.Check("one", YES, "+0.5", group="g", power="0.80")])
    page = report_html.claims_html([claim], {"sets": ["nocue", "cue"], "margin": None, "alpha": 0.05})
    assert '<th class="row">sets</th><td class="row">nocue, cue</td>' in page
    assert '<th class="row">margin</th><td class="row">null</td>' in page
    assert '<th class="row">alpha</th><td class="row">0.05</td>' in page
    assert '<span class="muted power">power: 0.80</span>' in page


def test_a_claims_statistics_table_pads_rows_without_the_other_definitions():
    """Every row has as many cells as the header: a row without the other definitions' estimates gets
    empty cells under them."""
    est = stats.Estimate.of([0.1, 0.2, 0.3])
    claim = verdicts.Claim("a", "statement", rows=[
        verdicts.Row("pair 1", "loss barrier", est, also=(("mean_endpoints", est), ("worse_endpoint", est))),
        verdicts.Row("pair 2", "loss barrier", est)])
    page = report_html.claims_html([claim])
    table = page.split("<table>", 1)[1]
    n_head = len(re.findall(r"<th>", table.split("</thead>")[0]))
    rows = table.split("<tbody>")[1].split("</tr>")[:2]
    assert n_head == 7 and [len(re.findall(r"<td", r)) for r in rows] == [n_head, n_head]


# ---------------------------------------------------------------------------------------------
# The barrier grid: tooltip, missing means, single n, rows per cue proportion, facets
# ---------------------------------------------------------------------------------------------

def test_a_barrier_cells_tooltip_gives_n_and_the_std_and_a_nan_mean_is_missing():
    summary = _summary()
    summary.loc[(summary["pair_type"] == "pretrained~ft:naive") & (summary["eval_set"] == "cue"), "mean"] = np.nan
    page = report_html.barrier_grid(summary)
    assert 'title="n = 3, std = 0.050">0.300' in page
    naive = _grid_rows(page)[2]
    assert naive[4] == stats.MISSING and "nan" not in page


def test_a_rows_n_is_one_number_when_every_cell_has_the_same_n():
    summary = _summary().assign(n=4)
    assert [r[2] for r in _grid_rows(report_html.barrier_grid(summary))] == ["4"] * 4


def test_rows_of_one_pair_and_path_go_by_increasing_cue_proportion():
    """Two cue proportions get a column (`cue proportion`, no underscore) and one row each, 0.5 before 0.8,
    whatever order the summary has."""
    base = _summary()
    base = base[base["pair_type"] == "cue~nocue"]
    summary = pd.concat([base.assign(cue_proportion=0.8), base.assign(cue_proportion=0.5)], ignore_index=True)
    page = report_html.barrier_grid(summary)
    assert '<th class="row">cue proportion</th>' in page
    assert [(r[1], r[2]) for r in _grid_rows(page)] == [("linear", "0.5"), ("linear", "0.8"), ("quadratic", "0.5"),
                                                        ("quadratic", "0.8")]


def test_each_swept_combination_gets_its_heading_over_its_barrier_grid_and_table_1():
    summary = pd.concat([_summary().assign(**{"finetune.lam": lam}) for lam in (1.0, 3.0)], ignore_index=True)
    page = report_html.barriers_html(summary, ("finetune.lam",))
    assert re.findall(r"<h3>(.*?)</h3>", page) == ["finetune.lam = 1", "finetune.lam = 3"]
    text = pd.DataFrame({"method": ["cbft"], "80% nocue": ["40.0 ± 1.0"], "n": ["3"]})
    long = pd.DataFrame({"row": ["cbft"], "cue_proportion": [0.8], "eval_set": ["nocue"], "n": [3], "mean": [0.4],
                         "std": [0.01]})
    table = stats.FinetuneTable(text, long)
    page = report_html.table1_html([({"finetune.lam": 1.0}, table), ({"finetune.lam": 3.0}, table)])
    assert re.findall(r"<h3>(.*?)</h3>", page) == ["finetune.lam = 1", "finetune.lam = 3"]


# ---------------------------------------------------------------------------------------------
# Table 1, the mechanism table and the map table: headers and missing cells
# ---------------------------------------------------------------------------------------------

def test_table1_groups_columns_by_cue_proportion_and_shows_missing_cells_as_missing():
    """One header group per cue proportion spanning its eval sets; a cell whose text is missing is
    missing even where a mean exists."""
    text = pd.DataFrame({"method": ["cbft"], "80% nocue": [stats.MISSING], "80% cue": ["30.0 ± 1.0"],
                         "50% nocue": ["20.0 ± 1.0"], "n": ["3"]})
    long = pd.DataFrame({"row": ["cbft"] * 3, "cue_proportion": [0.8, 0.8, 0.5], "eval_set": ["nocue", "cue", "nocue"],
                         "n": [3] * 3, "mean": [0.4, 0.3, 0.2], "std": [0.01] * 3})
    page = report_html.finetune_grid(text, long)
    assert '<th class="group" colspan="2">cue proportion 80%</th>' in page
    assert '<th class="group" colspan="1">cue proportion 50%</th>' in page
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page)
    assert cells == ["cbft", "3", stats.MISSING, "30.0 ± 1.0", "20.0 ± 1.0"]
    assert page.count('class="missing"') == 1


def test_the_mechanism_table_names_each_pair_type_once_and_spans_each_measure_over_its_alphas():
    mech = pd.DataFrame({"pair_type": ["cue~nocue", "cue~nocue"], "path_kind": ["linear", "quadratic"],
                         "alignment": [None, None], "n": [3, 3], **{f"agree_a@{a}{s}": [v, v] for a in ("0.0", "1.0") for s, v in
                                                       (("", 0.5), ("_low", 0.4), ("_high", 0.6))}})
    page = report_html.mechanism_html(mech)
    assert '<th class="group" colspan="2">agreement with A (pp)</th>' in page
    names = re.findall(r'<td class="row"><strong>(.*?)</strong></td>', page)
    assert names == ["cue~nocue", ""]


def test_a_map_without_tests_or_context_shows_missing_cells_and_counts_the_models_left_out():
    m = _fake_map("nocue")
    m.within_across, m.ari_test, m.left_out = None, None, 2
    page = report_html.map_html([m], [])
    row = dict(zip(re.findall(r"<th>(.*?)</th>", page), re.findall(r"<td[^>]*>(.*?)</td>", page), strict=True))
    assert row["context"] == stats.MISSING and row["left out"] == "2"
    assert (row["across − within"], row["p (one-sided)"], row["ARI"]) == (stats.MISSING,) * 3
    m = _fake_map("nocue")
    m.ari_test = None                                   # the permutation test without the ARI's: each on its own
    page = report_html.map_html([m], [])
    row = dict(zip(re.findall(r"<th>(.*?)</th>", page), re.findall(r"<td[^>]*>(.*?)</td>", page), strict=True))
    assert (row["across − within"], row["p (one-sided)"], row["ARI"]) == ("+0.500", "0.01", stats.MISSING)


def test_endpoint_drift_is_signed_in_its_units_with_its_interval_and_none_without_one():
    drift = pd.DataFrame({"pair_type": ["cue~nocue"] * 2, "path": ["linear"] * 2, "endpoint": ["A", "B"],
                          "eval_set": ["nocue"] * 2, "n": [3, 1], "loss_drift": [0.0123, -0.5],
                          "loss_low": [0.01, np.nan], "loss_high": [0.02, np.nan], "acc_drift": [-0.0123, 0.02],
                          "acc_low": [-0.02, np.nan], "acc_high": [-0.01, np.nan]})
    cells = re.findall(r"<td[^>]*>(.*?)</td>", report_html.drift_html(drift))
    assert cells[5:7] == ["+0.012 [0.010, 0.020]", "-1.2 [-2.0, -1.0]"]
    assert cells[12:14] == ["-0.500", "+2.0"]


# ---------------------------------------------------------------------------------------------
# Figures and the page
# ---------------------------------------------------------------------------------------------

def test_a_figure_is_inline_with_its_id_alt_text_and_a_link_to_its_file():
    fig = figures_lib.Figure("paths_cue-nocue.png", figures_lib.PATHS_SECTION, "cue~nocue", 'a "t"', "cap", b"\x89PNG")
    page = report_html.figure_html(fig)
    assert page.startswith('<figure id="fig-paths_cue-nocue"><img data-name="paths_cue-nocue.png" alt="a &quot;t&quot;" ')
    assert 'src="data:image/png;base64,iVBORw==">' in page
    assert '<a href="paths_cue-nocue.png">paths_cue-nocue.png</a>' in page


def _page(**kw) -> str:
    args = dict(title="t", progress=pd.DataFrame(), planned=None, claims=[], summary=pd.DataFrame(), swept=(),
                table1=[], figures=[], provenance={}, spec_text=None, failed=pd.DataFrame())
    return report_html.render_page(**{**args, **kw})


def test_the_page_links_failed_tasks_and_maps_only_when_it_has_them_and_escapes_the_spec():
    bare = _page()
    assert 'href="#failed"' not in bare and 'href="#map"' not in bare
    assert "No path evaluations yet." in bare and "the first evaluation set" in bare and "With swept settings" not in bare
    failed = pd.DataFrame({"task_id": ["t1"], "kind": [vocab.FINETUNE], "error": ["boom"]})
    page = _page(failed=failed, spec_text="a: <b>", swept=("finetune.lam",), agreement_set="nocue")
    assert '<a href="#failed">Failed tasks</a>' in page and "<pre>a: &lt;b&gt;</pre>" in page
    assert "With swept settings (<code>finetune.lam</code>)" in page and "(on nocue)" in page
    assert '<a href="#map">Mechanism map</a>' in _page(maps=[_fake_map("cue")])


def test_each_verdict_gets_its_own_styled_class_and_each_check_its_mark():
    """holds / does not hold / cannot be separated / not testable: four classes the page's CSS styles
    (`.claim.holds`, `.fails`, `.unseparated`, `.unmeasured`); each check's mark is the outcome's."""
    from orchestrator.report.comparisons import OVERLAP

    css = report_html.template("report.css")
    expected = {YES: "holds", NO: "fails", OVERLAP: "unseparated", UNTESTABLE: "unmeasured"}
    for outcome, cls in expected.items():
        claim = verdicts.Claim("a", "s", checks=[verdicts.Check("c", outcome, "e", group="g")])
        page = report_html.claims_html([claim])
        assert f'<div class="claim {cls}">' in page and f".claim.{cls}" in css, outcome
        assert f'<span class="mark {outcome}">{report_html.MARKS[outcome]}</span>' in page


def test_the_pages_account_of_a_verdict_is_the_rule_the_verdicts_follow():
    """A required statement with no testable comparison makes a claim not testable, not "holds": the page's
    introduction says so, and names "holds where it can be tested" and "holds, except …"."""
    page = " ".join(report_html.template("report.html").split())
    assert "every comparison it needs that can discriminate is decided as claimed" not in page
    assert "<em>holds where it can be tested</em>" in page
    assert "a statement none of whose comparisons is testable makes the claim <em>not testable here</em>" in page
    assert "holds, except" in page


def test_five_damaged_tasks_are_all_named_and_a_sixth_is_left_to_the_ellipsis():
    """The banner names up to five damaged tasks; "…" only where there are more."""
    five = {f"t{i}": "size mismatch" for i in range(5)}
    page = report_html.banner(_progress(failed=0), 5, damaged=five)
    assert all(f"<code>t{i}</code>" in page for i in range(5))


def test_more_than_five_damaged_tasks_end_with_an_ellipsis_and_five_do_not():
    five = {f"t{i}": "gone" for i in range(5)}
    assert "gone …" not in report_html.banner(_progress(failed=0), 5, damaged=five)
    assert "gone …" in report_html.banner(_progress(failed=0), 5, damaged={**five, "t5": "gone"})


def test_two_damaged_tasks_are_counted_in_the_plural():
    page = report_html.banner(_progress(failed=0), 5, damaged={"t0": "gone", "t1": "gone"})
    assert "2 finished tasks no longer verify</strong> (their files changed after they finished)" in page


def test_a_claim_without_a_context_gets_no_empty_heading():
    claim = verdicts.Claim("a", "statement a", context="", checks=[verdicts.Check("required one", YES, "+0.5", group="g")])
    assert "<h3>" not in report_html.claims_html([claim])


def test_each_swept_combinations_barrier_grid_shows_that_combinations_barriers_only():
    """lam 1's grid shows lam 1's means, not lam 3's (the rows of the other value are not pooled into it)."""
    lam1, lam3 = _summary().assign(**{"finetune.lam": 1.0}), _summary().assign(**{"finetune.lam": 3.0})
    lam3 = lam3.assign(mean=lam3["mean"] + 5.0)
    page = report_html.barriers_html(pd.concat([lam1, lam3], ignore_index=True), ("finetune.lam",))
    first = page.split("<h3>finetune.lam = 1</h3>", 1)[1].split("<h3>", 1)[0].split("<details>", 1)[0]
    assert "-0.400" in first and "4.600" not in first


def test_the_mechanism_table_labels_each_row_with_its_swept_value():
    """A swept setting's column (`finetune.lam`) is shown beside the pair type, its value to three digits."""
    mech = pd.DataFrame({"pair_type": ["pretrained~ft:cbft"] * 2, "path_kind": ["linear"] * 2, "alignment": [None, None],
                         "finetune.lam": [1.0, 3.0], "n": [3, 3], "agree_a@0.5": [0.5, 0.7],
                         "agree_a@0.5_low": [0.4, 0.6], "agree_a@0.5_high": [0.6, 0.8]})
    page = report_html.mechanism_html(mech)
    assert '<th class="row" rowspan="2">finetune.lam</th>' in page
    assert re.findall(r'<td class="row">([\d.]+)</td>', page) == ["1.000", "3.000"]


def test_the_map_table_counts_the_models_of_the_map_not_those_left_out():
    m = _fake_map("nocue")
    m.left_out = 2
    page = report_html.map_html([m], [])
    row = dict(zip(re.findall(r"<th>(.*?)</th>", page), re.findall(r"<td[^>]*>(.*?)</td>", page), strict=True))
    assert (row["models"], row["left out"]) == ("3", "2")


def test_a_whole_float_is_shown_to_the_digits_asked_like_any_other():
    page = report_html.html_table(pd.DataFrame({"x": [2.0, 0.5]}), digits=3)
    assert "<td>2.000</td>" in page and "<td>0.500</td>" in page


def test_an_endpoint_drift_without_a_mean_is_missing_not_nan():
    nan = float("nan")
    assert report_html._interval(nan, nan, nan, 100.0, 1) == stats.MISSING


def test_a_mechanism_rows_missing_label_is_shown_as_missing():
    mech = pd.DataFrame({"pair_type": ["cue~nocue", "pretrained~ft:cbft"], "path_kind": ["linear"] * 2,
                         "alignment": [None, None], "finetune.lam": [np.nan, 3.0], "n": [3, 3], "agree_a@0.5": [0.5, 0.7],
                         "agree_a@0.5_low": [0.4, 0.6], "agree_a@0.5_high": [0.6, 0.8]})
    page = report_html.mechanism_html(mech)
    assert f'<td class="row">{stats.MISSING}</td>' in page and "nan" not in page


def test_the_map_section_states_the_threshold_rule_as_declared():
    """The threshold comes from same-data pairs that share only their start (X~X:spawn@0, cue~cue:resubset):
    a spawn@K child with K > 0 shares K epochs too, and `threshold_for` leaves it out, as the page must say."""
    page = report_html.map_html([_fake_map("cue")], [])
    assert "(X~X:spawn@0, cue~cue:resubset)" in page and "spawn@K" not in page


def test_a_claims_rule_is_one_click_away_after_its_verdict_and_comparisons():
    """A claim's rule (every guard it declares, often 200 words) does not stand between the claim and its
    verdict: the page shows statement, verdict and comparisons, then the rule folded, then the statistics."""
    claim = verdicts.Claim("a", "the statement", rule="the rule text",
                           checks=[verdicts.Check("the comparison", YES, "e", group="g")])
    page = report_html.claims_html([claim])
    folded = page.index('<details class="rule">')
    assert page.index("the statement") < page.index("the comparison") < folded < page.index("the rule text")
    assert page.index("the rule text") < page.index("</details>", folded)


def test_a_whole_sweep_claim_after_per_context_ones_gets_its_own_heading():
    """Claim (e) of the whole sweep (no context) after per-model claims is headed "the whole sweep", not left
    under the last model's heading as if it were that model's."""
    def claim(key, context):
        return verdicts.Claim(key, f"statement {key}", context=context,
                              checks=[verdicts.Check("required one", YES, "+0.5", group="g")])
    page = report_html.claims_html([claim("a", "model = wide"), claim("e", "")])
    assert page.count("<h3>") == 2 and "<h3>the whole sweep</h3>" in page
    assert page.index("<h3>model = wide</h3>") < page.index("statement a") < page.index("<h3>the whole sweep</h3>") \
        < page.index("statement e")


def test_the_banner_escapes_why_the_spec_could_not_be_read():
    """The reason quotes the YAML parser, which quotes the spec's own text: it is shown as text, not markup."""
    why = "the sweep's spec.yaml is not valid YAML (<b>x</b> & y)"
    page = report_html.banner(_progress(failed=0), 5, spec_unread=why)
    assert "(&lt;b&gt;x&lt;/b&gt; &amp; y)" in page and "<b>x</b>" not in page
    assert 'class="banner bad"' in page
