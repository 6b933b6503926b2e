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
