"""The report's figures as a reader sees them: which series each panel plots (in percent where the
docstring says so), on which axes, in which order, with which labels, barrier notes and chance lines.
Checked on the returned matplotlib Figure's artists (line data, texts, images), never on pixels; the
expected numbers are computed here from the rows by the recipe the docstrings state."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from orchestrator.report import plots
from tasks.settings.data import EVAL_SETS
from tasks.settings.finetune import FINETUNE_METHOD_NAMES

ALPHAS = (0.0, 0.5, 1.0)


@pytest.fixture(autouse=True)
def _close_figures():
    """Each test's figures are closed after it (pyplot keeps every open figure alive)."""
    yield
    plt.close("all")


def _path_rows(pair_type="cue~nocue", variants=(("linear", None, 2),), sets=("cue", "nocue"), loss=None, acc=None,
               model="small_cnn", cue_proportion=0.8) -> pd.DataFrame:
    """Rows of the `paths` table: per variant (path kind, alignment, number of pairs), task t and eval
    set e, one row per alpha; values from `loss(t, e, alpha)` / `acc(t, e, alpha)`."""
    loss = loss or (lambda t, e, a: 0.3 + t + 0.1 * a)
    acc = acc or (lambda t, e, a: 0.9 - 0.1 * t)
    rows = []
    for kind, alignment, n in variants:
        for t in range(n):
            tid = f"{pair_type}-{kind}-{alignment}-{t}"
            for e in sets:
                for a in ALPHAS:
                    rows.append({"task_id": tid, "pair_type": pair_type, "path_kind": kind, "alignment": alignment,
                                 "alpha": a, "eval_set": e, "loss": loss(t, e, a), "acc": acc(t, e, a),
                                 "agree_a": 1 - 0.6 * a - 0.1 * t, "agree_b": 0.4 + 0.6 * a,
                                 "reliance_randimg": 0.8 - 0.5 * a + 0.1 * t, "reliance_randcue": 0.2 * (1 - a),
                                 "dataset": "digits", "model": model, "cue_proportion": cue_proportion})
    return pd.DataFrame(rows)


def _data_lines(ax) -> list[Line2D]:
    """The plotted lines of an axes, without the horizontal zero line."""
    return [ln for ln in ax.get_lines() if ln.get_linestyle() != ":"]


def _chord(values: np.ndarray) -> float:
    """max over alpha of value − the straight line between its endpoints (ALPHAS spaced 0, 0.5, 1)."""
    a = np.asarray(ALPHAS)
    return float(np.max(values - ((1 - a) * values[0] + a * values[-1])))


# three pairs whose loss differs in shape: the mean of a bump is not its median, the endpoints differ
# (pair 1 rises with no bump: a chord drawn from the wrong ends would call its 0.8 rise a barrier)
BUMPS = {0: (0.2, 1.0, 0.6), 1: (0.4, 0.7, 1.2), 2: (0.3, 2.5, 0.9)}
ACCS = {0: (0.95, 0.50, 0.80), 1: (0.90, 0.70, 0.85), 2: (0.99, 0.20, 0.70)}


def _three_pairs(**kw) -> pd.DataFrame:
    return _path_rows(variants=(("linear", None, 3),), loss=lambda t, e, a: BUMPS[t][ALPHAS.index(a)]
                      + (0.5 if e == "cue" else 0.0), acc=lambda t, e, a: ACCS[t][ALPHAS.index(a)], **kw)


@pytest.fixture(scope="module")
def three_pairs():
    """One figure for the tests that read it (each figure costs ~0.15 s): eval sets cue, nocue."""
    return plots.plot_path(_three_pairs(), "cue~nocue", eval_sets=EVAL_SETS, chance=0.1)


def test_a_path_figure_plots_the_mean_loss_and_accuracy_in_percent_over_pairs_per_eval_set_column(three_pairs):
    """Columns follow the eval-set order given (nocue before cue, titled as EVAL_SET_TITLES); the line is
    the mean over pairs at each alpha (not the median), accuracy in percent; the thin dashed line joins
    the mean's endpoints, from α = 0 to α = 1; the legend names the path kind (nothing varies besides)."""
    fig = three_pairs
    loss_nocue, loss_cue, acc_nocue = fig.axes[0], fig.axes[1], fig.axes[2]
    assert [loss_nocue.get_title(), loss_cue.get_title()] == ["nocue (clean) ↑", "cue"]
    loss = np.array([BUMPS[t] for t in range(3)])
    acc = 100 * np.array([ACCS[t] for t in range(3)])
    mean_line, chord_line = _data_lines(loss_nocue)[:2]
    np.testing.assert_allclose(mean_line.get_xdata(), ALPHAS)
    np.testing.assert_allclose(mean_line.get_ydata(), loss.mean(axis=0))
    np.testing.assert_allclose(_data_lines(loss_cue)[0].get_ydata(), loss.mean(axis=0) + 0.5)
    np.testing.assert_allclose(_data_lines(acc_nocue)[0].get_ydata(), acc.mean(axis=0))
    np.testing.assert_allclose(chord_line.get_xdata(), [0.0, 1.0])
    np.testing.assert_allclose(chord_line.get_ydata(), loss.mean(axis=0)[[0, -1]])
    assert chord_line.get_linestyle() == "--"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["linear", "straight line between the endpoints"]


def test_the_barrier_notes_are_the_mean_and_std_over_pairs_of_each_pairs_chord_barrier(three_pairs):
    """Loss: per pair, the largest excess over the straight line between its own endpoints, mean ± std
    (ddof 1) over pairs with 2 digits; accuracy: the largest drop below that line, in pp with 1 digit."""
    fig = three_pairs
    loss_b = np.array([_chord(np.array(BUMPS[t])) for t in range(3)])
    acc_b = np.array([_chord(-100 * np.array(ACCS[t])) for t in range(3)])
    assert fig.axes[0].texts[0].get_text() == f"{loss_b.mean():.2f} ± {loss_b.std(ddof=1):.2f}"
    assert fig.axes[2].texts[0].get_text() == f"{acc_b.mean():.1f} ± {acc_b.std(ddof=1):.1f} pp"
    assert acc_b.mean() > 0                                          # a drop is positive


def test_the_minmax_band_spans_the_pairs_and_the_std_band_is_one_sample_std_either_side():
    """min–max: from the lowest to the highest pair at each alpha (already with 2 pairs); std: mean ± the
    sample std (ddof 1) over pairs."""
    two = _path_rows(variants=(("linear", None, 2),), sets=("nocue",), loss=lambda t, e, a: 1.0 + t * (1 + a))
    band = next(c for c in plots.plot_path(two, "cue~nocue").axes[0].collections if isinstance(c, PolyCollection))
    ys = band.get_paths()[0].vertices[:, 1]
    assert np.isclose(ys.min(), 1.0) and np.isclose(ys.max(), 3.0)

    fig = plots.plot_path(_three_pairs(sets=("nocue",)), "cue~nocue", band="std")
    band = next(c for c in fig.axes[0].collections if isinstance(c, PolyCollection))
    vertices = band.get_paths()[0].vertices
    loss = np.array([BUMPS[t] for t in range(3)])
    mean, sd = loss.mean(axis=0), loss.std(axis=0, ddof=1)
    for alpha, low, high in zip(ALPHAS, mean - sd, mean + sd, strict=True):
        at = vertices[np.isclose(vertices[:, 0], alpha), 1]
        assert np.isclose(at, low).any() and np.isclose(at, high).any(), alpha


def test_agreement_is_in_percent_solid_for_endpoint_a_and_dashed_for_b(three_pairs):
    agree = three_pairs.axes[4]
    assert agree.get_ylabel() == "agreement (%)"
    solid, dashed = _data_lines(agree)
    assert (solid.get_linestyle(), dashed.get_linestyle()) == ("-", "--")
    a = np.asarray(ALPHAS)
    np.testing.assert_allclose(solid.get_ydata(), 100 * (1 - 0.6 * a - 0.1))        # mean over t = 0, 1, 2
    np.testing.assert_allclose(dashed.get_ydata(), 100 * (0.4 + 0.6 * a))


def test_the_cue_reliance_panels_plot_randimg_left_and_randcue_right_at_every_alpha_in_pp(three_pairs):
    """Reliance is one number per model on the path (not per eval set): every alpha appears once,
    acc(randimg) − chance in the left panel, acc(nocue) − acc(randcue) in the right one."""
    fig = three_pairs
    left, right = fig.axes[-2], fig.axes[-1]
    assert left.get_title() == "cue reliance: acc(randimg) − chance"
    assert right.get_title() == "cue reliance: acc(nocue) − acc(randcue)"
    a = np.asarray(ALPHAS)
    (randimg,), (randcue,) = _data_lines(left), _data_lines(right)
    np.testing.assert_allclose(randimg.get_xdata(), ALPHAS)
    np.testing.assert_allclose(randimg.get_ydata(), 100 * (0.8 - 0.5 * a + 0.1))
    np.testing.assert_allclose(randcue.get_ydata(), 100 * 0.2 * (1 - a))


def test_axis_labels_sit_on_the_first_column_and_the_alpha_label_on_the_bottom_row(three_pairs):
    fig = three_pairs
    loss0, loss1, acc0, acc1, agree0, agree1, rel0, rel1 = fig.axes
    assert [ax.get_ylabel() for ax in (loss0, acc0, agree0, rel0)] == ["loss", "accuracy (%)", "agreement (%)", "pp"]
    assert [ax.get_ylabel() for ax in (loss1, acc1, agree1, rel1)] == ["", "", "", ""]
    assert [ax.get_xlabel() for ax in fig.axes] == [""] * 6 + ["α", "α"]


def test_the_title_names_the_endpoints_the_pairs_per_path_kind_chance_and_the_shared_labels():
    """Chance in percent; n pairs per path kind (a range where kinds differ, the unaligned ones
    included); the labels every row shares (only those: a model that varies is no context)."""
    rows = _path_rows(variants=(("linear", None, 2), ("aligned", "activation", 3)), sets=("nocue",))
    title = plots.plot_path(rows, "cue~nocue", chance=0.1)._suptitle.get_text()
    assert title.startswith("cue~nocue: α = 0 is A, the cue model; α = 1 is B, the no-cue model\n")
    assert "n = 2–3 pairs per path kind · chance 10% · digits · small_cnn · cue proportion 80%" in title
    two_models = pd.concat([_path_rows(sets=("nocue",)), _path_rows(sets=("nocue",), model="wide_cnn").assign(
        task_id=lambda d: d["task_id"] + "-wide")])
    title = plots.plot_path(two_models, "cue~nocue")._suptitle.get_text()
    assert "digits · cue proportion 80%" in title and "small_cnn" not in title.split("\n")[1].split(" · ")[1:]


def test_series_follow_the_path_kind_order_and_the_legend_names_only_what_varies():
    """linear, quadratic, aligned (vocab.PATH_KINDS order, not alphabetical), one legend entry each and
    the chord's; dataset/model/cue proportion join a label only when they vary."""
    rows = _path_rows(variants=(("aligned", "activation", 2), ("quadratic", None, 2), ("linear", None, 2)),
                      sets=("nocue",))
    fig = plots.plot_path(rows, "cue~nocue")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["linear", "quadratic", "aligned (activation)", "straight line between the endpoints"]


def test_a_path_figure_restricted_to_the_unaligned_path_leaves_out_the_aligned_one():
    rows = _path_rows(variants=(("linear", None, 2), ("linear", "weight", 2)), sets=("nocue",))
    fig = plots.plot_path(rows, "cue~nocue", path_kind="linear")
    assert [t.get_text() for t in fig.legends[0].get_texts()][:-1] == ["linear"]


def test_repeated_rows_of_a_pair_at_an_alpha_are_averaged_and_a_missing_point_stays_missing():
    """`_curves` is the mean over a task's rows at an alpha; an alpha without a finite value is a gap
    (NaN), not a 0 % point."""
    rows = _path_rows(variants=(("linear", None, 1),), sets=("nocue",), loss=lambda t, e, a: 1.0,
                      acc=lambda t, e, a: np.nan if a == 0.5 else 0.8)
    doubled = pd.concat([rows, rows.assign(loss=3.0)], ignore_index=True)
    fig = plots.plot_path(doubled, "cue~nocue")
    np.testing.assert_allclose(_data_lines(fig.axes[0])[0].get_ydata(), [2.0, 2.0, 2.0])
    acc = _data_lines(fig.axes[1])[0].get_ydata()
    assert np.isnan(acc[1]) and np.allclose(acc[[0, 2]], 80.0)


def test_loss_axes_use_each_eval_sets_own_limits_and_the_limits_fit_every_curve_from_zero():
    """`path_loss_limits`: (0, the set's highest loss × 1.05); `plot_path` keeps each column's own
    limits (with headroom above for the notes, the same factor in every column)."""
    rows = _path_rows(sets=("nocue", "cue"), loss=lambda t, e, a: (4.0 if e == "nocue" else 2.0) * (0.5 + 0.5 * a))
    limits = plots.path_loss_limits(rows)
    assert limits == {"nocue": (0.0, pytest.approx(4.2)), "cue": (0.0, pytest.approx(2.1))}
    fig = plots.plot_path(rows, "cue~nocue", eval_sets=EVAL_SETS, loss_limits=limits)
    (lo0, hi0), (lo1, hi1) = fig.axes[0].get_ylim(), fig.axes[1].get_ylim()
    assert lo0 == lo1 == 0.0 and hi0 == pytest.approx(2 * hi1) and hi1 > 2.1


# ---------------------------------------------------------------------------------------------
# Barrier distributions
# ---------------------------------------------------------------------------------------------

def _barrier_rows() -> pd.DataFrame:
    """cue~nocue and two fine-tuning pairs; linear (3 pairs, values 0.1, 0.2, 0.9) and aligned (3 other
    pairs, 0.5 each) on nocue and cue; loss and acc (acc = value / 10)."""
    rows = []
    for pair in ("pretrained~ft:cbft", "cue~nocue", "pretrained~ft:naive"):
        for kind, alignment, values in (("aligned", "activation", (0.5, 0.5, 0.5)), ("linear", None, (0.1, 0.2, 0.9))):
            for t, v in enumerate(values):
                for e in ("cue", "nocue"):
                    for metric, scale in (("loss", 1.0), ("acc", 0.1)):
                        rows.append({"task_id": f"{pair}-{kind}-{t}", "pair_type": pair, "path_kind": kind,
                                     "alignment": alignment, "eval_set": e, "metric": metric, "definition": "chord",
                                     "value": v * scale, "dataset": "digits", "model": "small_cnn", "cue_proportion": 0.8})
    return pd.DataFrame(rows)


def _mean_bars(ax) -> list[tuple[float, float]]:
    """(x centre, y) of each black mean bar."""
    bars = [c for c in ax.collections if type(c) is LineCollection]
    return [((s[0][0] + s[1][0]) / 2, s[0][1]) for c in bars for s in c.get_segments()]


def test_barrier_panels_put_eval_sets_in_rows_metrics_in_columns_and_pairs_in_method_order():
    fig = plots.plot_barriers(_barrier_rows(), ["loss", "acc"], eval_sets=EVAL_SETS, method_order=FINETUNE_METHOD_NAMES)
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["loss barrier (chord)", "accuracy drop (pp) (chord)"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["nocue (clean) ↑", "cue"]
    ticks = [t.get_text() for t in axes[-1, 0].get_xticklabels()]
    assert ticks == ["cue~nocue\n(n = 3)", "pretrained~ft:naive\n(n = 3)", "pretrained~ft:cbft\n(n = 3)"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["linear", "aligned (activation)", "mean over pairs"]


def test_barrier_points_and_mean_bars_are_the_values_loss_as_is_accuracy_in_pp_each_variant_beside_its_pair():
    """Mean bars at the mean of the pairs (0.4 for 0.1, 0.2, 0.9: not the median 0.2), the two path
    kinds 0.4 wide apart, centred on their pair; accuracy ×100."""
    fig = plots.plot_barriers(_barrier_rows(), ["loss", "acc"], eval_sets=EVAL_SETS, method_order=FINETUNE_METHOD_NAMES)
    loss_ax, acc_ax = fig.axes[0], fig.axes[1]
    bars = sorted(_mean_bars(loss_ax))
    np.testing.assert_allclose(bars, [(x + dx, y) for x in range(3) for dx, y in ((-0.2, 0.4), (0.2, 0.5))], atol=1e-9)
    np.testing.assert_allclose(sorted(y for _, y in _mean_bars(acc_ax)), sorted([4.0, 5.0] * 3), atol=1e-9)
    points = loss_ax.collections[0].get_offsets()          # the linear path's pairs, jittered around x − 0.2
    np.testing.assert_allclose(sorted(points[:, 1]), sorted([0.1, 0.2, 0.9] * 3))
    assert np.all(np.abs(points[:, 0] - np.round(points[:, 0] + 0.2) + 0.2) <= 0.3 * 0.4 + 1e-9)
    acc_points = np.concatenate([c.get_offsets()[:, 1] for c in acc_ax.collections if hasattr(c, "get_offsets")
                                 and not isinstance(c, LineCollection)])
    assert np.isclose(acc_points.max(), 9.0)


def test_boxes_appear_from_five_pairs_on():
    rows = _barrier_rows()
    rows = rows[(rows.pair_type == "cue~nocue") & (rows.path_kind == "linear") & (rows.metric == "loss")]
    four = pd.concat([rows, rows[rows.task_id.str.endswith("-0")].assign(task_id="x")], ignore_index=True)
    five = pd.concat([four, rows[rows.task_id.str.endswith("-1")].assign(task_id="y")], ignore_index=True)
    n_lines = [len(plots.plot_barriers(r, eval_sets=("nocue",)).axes[0].get_lines()) for r in (four, five)]
    assert n_lines[1] > n_lines[0]


# ---------------------------------------------------------------------------------------------
# Fine-tuning bars (Table 1)
# ---------------------------------------------------------------------------------------------

def _long(rows=("pretrained (no cue)", "pretrained (cue)", "naive", "cbft"), props=(0.8, 0.5),
          sets=("nocue", "cue")) -> pd.DataFrame:
    """`stats.finetune_long` rows: mean = 0.1 × (row index + 1) + 0.01 × set index, std = mean / 10."""
    out = []
    for r, row in enumerate(rows):
        for p in props:
            for s, e in enumerate(sets):
                mean = 0.1 * (r + 1) + 0.01 * s
                out.append({"row": row, "cue_proportion": p, "eval_set": e, "n": 3, "mean": mean, "std": mean / 10})
    return pd.DataFrame(out)


def test_finetune_bars_are_accuracy_in_percent_with_std_whiskers_per_eval_set_in_order():
    fig = plots.plot_finetune(_long(props=(0.8,)), eval_sets=EVAL_SETS, chance=0.1)
    ax = fig.axes[0]
    nocue, cue = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [nocue.get_label(), cue.get_label()] == ["nocue (clean) ↑", "cue"]
    heights = [p.get_height() for p in nocue.patches]
    np.testing.assert_allclose(heights, [10.0, 20.0, 30.0, 40.0])
    np.testing.assert_allclose([p.get_height() for p in cue.patches], [11.0, 21.0, 31.0, 41.0])
    centres = [p.get_x() + p.get_width() / 2 for p in nocue.patches]
    np.testing.assert_allclose(centres, np.arange(4) - 0.2)
    (whiskers,) = nocue.errorbar.lines[2]
    np.testing.assert_allclose([s[:, 1] for s in whiskers.get_segments()],
                               [[h - h / 10, h + h / 10] for h in heights])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["pretrained\n(no cue)", "pretrained\n(cue)", "naive", "cbft"]


def test_finetune_chance_line_is_in_percent_and_the_grey_line_separates_the_references():
    fig = plots.plot_finetune(_long(props=(0.8,)), chance=0.1)
    ax = fig.axes[0]
    chance = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    (line,) = chance
    assert np.allclose(line.get_ydata(), 10.0) and line.get_label() == "chance (10%)"
    (grey,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert np.allclose(grey.get_xdata(), 1.5)                    # between the 2 references and the methods
    only_refs = plots.plot_finetune(_long(rows=("pretrained (no cue)", "pretrained (cue)"), props=(0.8,)))
    assert [ln for ln in only_refs.axes[0].get_lines() if ln.get_linestyle() == "-"] == []


def test_finetune_panels_go_by_increasing_cue_proportion():
    fig = plots.plot_finetune(_long(props=(0.8, 0.5)))
    assert [ax.get_title().split(" (")[0] for ax in fig.axes] == ["cue proportion 50%", "cue proportion 80%"]


# ---------------------------------------------------------------------------------------------
# Mechanism map
# ---------------------------------------------------------------------------------------------

def _map_inputs():
    """5 models: 0 and 2 close, 1 and 3 close, 4 alone; the dendrogram reorders them."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    m = np.array([[0.0, 2.0, 0.1, 2.1, 3.0],
                  [2.0, 0.0, 2.2, 0.2, 3.1],
                  [0.1, 2.2, 0.0, 2.3, 3.2],
                  [2.1, 0.2, 2.3, 0.0, 3.3],
                  [3.0, 3.1, 3.2, 3.3, 0.0]])
    models = pd.DataFrame({"label": [f"m{i}" for i in range(5)], "cue_proportion": [0.8, 0.0, 0.8, 0.0, 0.5],
                           "method": ["naive", None, "cbft", None, "naive"],
                           "reliance_randimg": [0.55, 0.0, 0.25, 0.1, 0.9], "cluster": [1, 2, 1, 2, 3]})
    tree = pd.DataFrame(linkage(squareform(m), "average"), columns=["a", "b", "height", "size"])
    return models, pd.DataFrame(m), tree


@pytest.fixture(scope="module")
def mechanism_map():
    """The map of `_map_inputs` and the dendrogram's leaf order (scipy's, computed here)."""
    from scipy.cluster.hierarchy import dendrogram

    models, matrix, tree = _map_inputs()
    order = dendrogram(tree.to_numpy(), no_plot=True)["leaves"]
    fig = plots.plot_mechanism_map(models, matrix, tree, threshold=1.0, chance=0.1, cut=0.25)
    return fig, models, matrix, order


def test_the_mechanism_map_orders_rows_labels_and_heat_map_by_the_dendrogram(mechanism_map):
    fig, models, matrix, order = mechanism_map
    assert order != list(range(5))
    ax_d, ax_n, ax_h, ax_c = fig.axes
    np.testing.assert_allclose(ax_h.images[0].get_array(), matrix.to_numpy()[np.ix_(order, order)])
    assert ax_h.images[0].get_clim() == (0.0, 3.3)
    labels = [t.get_text() for t in ax_h.get_yticklabels()]
    assert labels == [f"m{i}  [{models['cluster'][i]}]" for i in order]
    top, bottom = ax_d.get_ylim()[1], ax_d.get_ylim()[0]
    assert (top, bottom) == (0, 50)                      # leaf i at y = 10 i + 5, row i of the heat map top down
    assert any(np.allclose(ln.get_xdata(), 1.0) for ln in ax_d.get_lines())      # the threshold
    outlines = [p for p in ax_h.patches if isinstance(p, Rectangle)]
    assert sorted(p.get_width() for p in outlines) == [2, 2]                    # clusters of 2; the lone model not


def test_the_mechanism_map_notes_show_cue_proportion_and_reliance_above_chance_and_mark_models_above_the_cut(
        mechanism_map):
    """The red column is acc(randimg) − chance over its range (1 − chance), clipped to [0, 1]; the dot
    marks reliance strictly above the cut (0.25 is not above 0.25)."""
    fig, models, _, order = mechanism_map
    ax_n = fig.axes[1]
    grey, red = ax_n.images
    assert grey.get_cmap().name == "Greys" and red.get_cmap().name == "Reds"
    np.testing.assert_allclose(np.ravel(grey.get_array()), models["cue_proportion"].to_numpy()[order])
    np.testing.assert_allclose(np.ravel(red.get_array()),
                               np.clip(models["reliance_randimg"].to_numpy()[order] / 0.9, 0, 1))
    dots = [t for t in ax_n.texts if t.get_text() == "•"]
    assert sorted(t.get_position()[1] for t in dots) == sorted(order.index(i) for i in (0, 4))


# ---------------------------------------------------------------------------------------------
# Names, margins and the less common path-figure branches
# ---------------------------------------------------------------------------------------------

def test_slugs_are_file_name_safe_and_endpoint_names_follow_the_docstrings_examples():
    """`pretrained~ft:naive` -> `pretrained-ft-naive` (no dash left at either end); endpoints: a main pair's
    two models, a fine-tuning pair's pretrained model and its method, a pair of one kind as A and B."""
    assert plots.slug("pretrained~ft:naive") == "pretrained-ft-naive"
    assert plots.slug("(cue_proportion = 0.5)") == "cue-proportion-0.5"
    assert plots.endpoint_names("cue~nocue") == ("cue model", "no-cue model")
    assert plots.endpoint_names("pretrained~ft:cbft") == ("pretrained cue model", "fine-tuned (cbft)")
    assert plots.endpoint_names("pretrained~ft") == ("pretrained cue model", "fine-tuned model")
    assert plots.endpoint_names("nocue~nocue:spawn@3") == ("no-cue model A", "no-cue model B")


def test_fixed_margins_are_inches_turned_into_figure_fractions_along_their_own_side():
    """left/right are fractions of the width, top/bottom of the height (8 × 4 inches here)."""
    fig = plt.figure(figsize=(8.0, 4.0))
    plots._margins(fig, left=1.0, right=0.5, top=1.0, bottom=0.4)
    p = fig.subplotpars
    assert (p.left, p.right, p.top, p.bottom) == pytest.approx((1 / 8, 1 - 0.5 / 8, 1 - 1 / 4, 0.4 / 4))
    plt.close(fig)


def test_a_series_per_cue_proportion_is_labelled_in_percent():
    """Accuracy-like fractions are shown in percent everywhere: a cue proportion that varies joins the
    label as `p = 50%`."""
    rows = pd.concat([_path_rows(sets=("nocue",), cue_proportion=0.5),
                      _path_rows(sets=("nocue",)).assign(task_id=lambda d: d["task_id"] + "-80")], ignore_index=True)
    labels = [t.get_text() for t in plots.plot_path(rows, "cue~nocue").legends[0].get_texts()]
    assert labels[:2] == ["linear (p = 50%)", "linear (p = 80%)"]


def test_one_pairs_note_is_its_barrier_alone_and_a_missing_point_does_not_make_it_nan():
    """With one pair there is no spread to give (no "± nan"); the chord barrier is the largest gap over the
    points measured, so a missing α = 0.5 accuracy leaves the drop 0.0 pp (80 % at both ends)."""
    rows = _path_rows(variants=(("linear", None, 1),), sets=("nocue",), loss=lambda t, e, a: 2.0 if a == 0.5 else 1.0,
                      acc=lambda t, e, a: np.nan if a == 0.5 else 0.8)
    fig = plots.plot_path(rows, "cue~nocue")
    assert fig.axes[0].texts[0].get_text() == "1.00"
    assert fig.axes[1].texts[0].get_text() == "0.0 pp"


def test_each_path_kinds_note_sits_on_its_own_line_in_its_colour():
    """Notes of two path kinds stack top down in series order (not on top of each other)."""
    rows = _path_rows(variants=(("linear", None, 2), ("quadratic", None, 2)), sets=("nocue",))
    fig = plots.plot_path(rows, "cue~nocue")
    notes = fig.axes[0].texts
    assert [t.get_color() for t in notes] == ["C0", "C1"]
    assert notes[0].get_position()[1] > notes[1].get_position()[1]


def test_agreement_and_reliance_panels_appear_when_only_one_of_their_columns_was_measured():
    """A panel row is drawn when either of its columns has values: agreement with A alone, or
    acc(randimg) − chance alone (loss, acc, agreement, two reliance panels: 5 axes for one set)."""
    rows = _path_rows(sets=("nocue",)).assign(agree_b=np.nan, reliance_randcue=np.nan)
    fig = plots.plot_path(rows, "cue~nocue")
    assert len(fig.axes) == 5
    assert fig.axes[2].get_ylabel() == "agreement (%)" and len(_data_lines(fig.axes[2])) == 1


def test_percent_axes_span_0_to_100_with_the_notes_headroom_on_accuracy_only(three_pairs):
    """Accuracy and agreement: ticks 0, 50, 100 (%); the agreement axis is 0–100 % with 3 points either side;
    the accuracy axis (which carries the barrier notes) gets the same headroom factor as the loss axis."""
    fig = plots.plot_path(_three_pairs(sets=("nocue",)), "cue~nocue", loss_limits={"nocue": (0.0, 2.0)})
    loss, acc, agree = fig.axes[0], fig.axes[1], fig.axes[2]
    assert agree.get_ylim() == pytest.approx((-3.0, 103.0))
    assert list(acc.get_yticks()) == [0, 50, 100] and list(agree.get_yticks()) == [0, 50, 100]
    low, high = acc.get_ylim()
    assert low == pytest.approx(-3.0) and (high - low) / 106 == pytest.approx(loss.get_ylim()[1] / 2.0)
    assert (high - low) / 106 > 1.0


def test_the_reliance_panels_have_a_zero_line_for_no_reliance(three_pairs):
    """0 pp is "ignores the cue": a dotted line at 0 in both reliance panels."""
    for ax in three_pairs.axes[-2:]:
        zero = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert len(zero) == 1 and np.allclose(zero[0].get_ydata(), 0.0)


def test_loss_limits_of_a_set_without_a_positive_finite_loss_are_still_a_real_axis():
    """All-zero, all-missing or diverged (infinite) losses still give an axis that starts at 0 and has a
    positive, finite top."""
    rows = _path_rows(sets=("nocue", "cue", "randcue"),
                      loss=lambda t, e, a: {"nocue": 0.0, "cue": np.nan}.get(e, np.inf if a == 0.5 else 1.0))
    limits = plots.path_loss_limits(rows)
    for eval_set in ("nocue", "cue", "randcue"):
        low, high = limits[eval_set]
        assert low == 0.0 and np.isfinite(high) and high > 0, (eval_set, high)


# ---------------------------------------------------------------------------------------------
# Barrier distributions: the less common branches
# ---------------------------------------------------------------------------------------------

def test_the_barrier_figure_is_the_same_every_time_it_is_drawn():
    """Figures are cached by their inputs (figures.FigureJob.key): the jitter of the points must not
    change between two drawings of the same rows."""
    rows = _barrier_rows()
    first, second = (plots.plot_barriers(rows, eval_sets=("nocue",)).axes[0].collections[0].get_offsets()
                     for _ in range(2))
    np.testing.assert_array_equal(first, second)


def test_near_zero_barriers_are_not_magnified_and_zero_is_marked():
    """Barriers of 0.001 (loss) and 0.01 pp (acc) stay flat: the loss axis spans at least 0.02, the
    accuracy axis at least 1 pp, both down to below 0, with a dashed line at 0. The black mean bars are
    0.9 of a path kind's slot wide (two kinds: slots of 0.4)."""
    rows = _barrier_rows().assign(value=lambda d: np.where(d["metric"] == "loss", 0.001, 0.0001))
    fig = plots.plot_barriers(rows[rows["eval_set"] == "nocue"], ["loss", "acc"])
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylim()[1] >= 0.02 and loss_ax.get_ylim()[0] < 0
    assert acc_ax.get_ylim()[1] >= 1.0 and acc_ax.get_ylim()[0] < 0
    for ax in (loss_ax, acc_ax):
        (zero,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert np.allclose(zero.get_ydata(), 0.0)
    bars = [c for c in loss_ax.collections if type(c) is LineCollection]
    widths = [s[1][0] - s[0][0] for c in bars for s in c.get_segments()]
    np.testing.assert_allclose(widths, 0.9 * 0.4)


def test_a_metric_without_rows_gets_no_column():
    rows = _barrier_rows()
    fig = plots.plot_barriers(rows[rows["metric"] == "loss"], ["loss", "acc"], eval_sets=EVAL_SETS)
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes][0] == "loss barrier (chord)"


# ---------------------------------------------------------------------------------------------
# Fine-tuning bars: the less common branches
# ---------------------------------------------------------------------------------------------

def test_finetune_titles_give_the_model_count_or_its_range_in_the_right_number():
    """n = 3 models; n = 1 model (singular); counts that differ between cells as a range, n = 1–3 models:
    models, not seeds, since a pretrained row pools every model of its kind (12 models over 3 seeds)."""
    long = _long(rows=("naive", "cbft"), props=(0.8,))
    titles = [plots.plot_finetune(long.assign(n=n)).axes[0].get_title() for n in (3, 1, [1, 3, 3, 3])]
    assert titles == ["cue proportion 80% (n = 3 models)", "cue proportion 80% (n = 1 model)",
                      "cue proportion 80% (n = 1–3 models)"]


def test_finetune_bars_without_references_have_no_grey_line():
    """The grey line separates the pretrained references from the methods: none without references."""
    fig = plots.plot_finetune(_long(rows=("naive", "cbft"), props=(0.8,)))
    assert [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"] == []


# ---------------------------------------------------------------------------------------------
# Mechanism map: the less common branches
# ---------------------------------------------------------------------------------------------

def test_the_mechanism_maps_clusters_are_outlined_where_their_rows_sit_and_methods_follow_the_rows(mechanism_map):
    """Each outline is the square of its cluster's rows (in dendrogram order) on the diagonal; the method
    letters sit on their model's row; the dendrogram shows the threshold (its x range reaches past it, to 0)."""
    fig, models, _, order = mechanism_map
    ax_d, ax_n, ax_h, ax_c = fig.axes
    rows = {c: [i for i, m in enumerate(order) if models["cluster"][m] == c] for c in (1, 2)}
    outlines = sorted((p.get_x(), p.get_y(), p.get_width()) for p in ax_h.patches if isinstance(p, Rectangle))
    assert outlines == sorted((min(r) - 0.5, min(r) - 0.5, 2) for r in rows.values())
    methods = {t.get_position()[1]: t.get_text() for t in ax_n.texts if t.get_text() != "•"}
    assert methods == {float(i): models["method"][m] for i, m in enumerate(order) if isinstance(models["method"][m], str)}
    left, right = ax_d.get_xlim()
    assert left >= max(1.05 * 1.0, _map_inputs()[2]["height"].max()) and right == 0     # the whole tree and the cut
    assert ax_c.get_ylabel() == "loss barrier" and ax_d.get_xlabel() == "loss barrier"
    note = next(t.get_text() for t in fig.texts if "cue p:" in t.get_text())
    assert "• above 25 pp" in note and "dashed: the threshold" in note


def test_a_map_with_an_unmeasured_pair_and_no_threshold_still_scales_its_colours_to_the_measured_barriers():
    """A missing pair (NaN) leaves the colour scale at the largest measured barrier (3.3); without a
    threshold the note does not mention a dashed line."""
    models, matrix, tree = _map_inputs()
    matrix.iloc[0, 1] = matrix.iloc[1, 0] = np.nan
    fig = plots.plot_mechanism_map(models, matrix, tree, threshold=None)
    assert fig.axes[2].images[0].get_clim() == (0.0, 3.3)
    note = next(t.get_text() for t in fig.texts if "cue p:" in t.get_text())
    assert "dashed" not in note


def test_eval_set_titles_point_the_way_a_model_without_cue_reliance_moves():
    """↑ on nocue (clean accuracy up), ↓ on randimg (down to about chance); no arrow on cue and randcue."""
    titles = plots.EVAL_SET_TITLES
    assert titles["nocue"].endswith("↑") and titles["randimg"].endswith("↓")
    assert titles["randimg"].startswith("randimg") and not titles["cue"].endswith(("↑", "↓"))
    assert not titles["randcue"].endswith(("↑", "↓"))


def test_a_path_figure_restricted_to_an_aligned_path_shows_that_alignment_only():
    rows = _path_rows(variants=(("linear", None, 2), ("linear", "weight", 2), ("linear", "activation", 2)),
                      sets=("nocue",))
    fig = plots.plot_path(rows, "cue~nocue", path_kind="linear", alignment="weight")
    assert [t.get_text() for t in fig.legends[0].get_texts()][:-1] == ["linear (weight)"]


def test_every_figures_title_ends_with_its_facet_subtitle():
    """The facet label (swept values) the figure job passes as `subtitle` is in each kind's title."""
    path = plots.plot_path(_path_rows(sets=("nocue",)), "cue~nocue", subtitle="finetune.lam = 3")
    barriers = plots.plot_barriers(_barrier_rows(), subtitle="finetune.lam = 3")
    finetune = plots.plot_finetune(_long(props=(0.8,)), subtitle="finetune.lam = 3")
    for fig in (path, barriers, finetune):
        assert fig._suptitle.get_text().endswith(" · finetune.lam = 3"), fig._suptitle.get_text()
        plt.close(fig)


def test_a_pair_types_n_counts_its_pairs_once_when_one_path_kind_lacks_some():
    """Each path kind evaluates the same pairs (one task per pair and kind): with the aligned path
    missing one of the 3 pairs the column still shows n = 3 pairs, not 2 (and not 3 + 2)."""
    rows = _barrier_rows()
    rows = rows[~((rows["path_kind"] == "aligned") & rows["task_id"].str.endswith("-2"))]
    fig = plots.plot_barriers(rows, eval_sets=("nocue",), method_order=FINETUNE_METHOD_NAMES)
    ticks = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
    assert [t.split("\n")[1] for t in ticks] == ["(n = 3)"] * 3


def test_the_title_counts_pairs_per_path_kind_and_alignment_not_per_kind_alone():
    """linear unaligned and linear weight-aligned are two paths of the same 2 pairs: n = 2 pairs, not 4."""
    rows = _path_rows(variants=(("linear", None, 2), ("linear", "weight", 2)), sets=("nocue",))
    title = plots.plot_path(rows, "cue~nocue")._suptitle.get_text()
    assert "\nn = 2 pairs per path kind" in title


def test_the_dendrogram_axis_reaches_a_threshold_above_every_merge():
    """The dashed threshold line is drawn inside the dendrogram's axis, also when it is above the tree's top."""
    models, matrix, tree = _map_inputs()
    fig = plots.plot_mechanism_map(models, matrix, tree, threshold=5.0, chance=0.1, cut=0.25)
    assert fig.axes[0].get_xlim()[0] >= 5.0


def test_many_long_pair_type_names_are_rotated_under_the_barrier_panels():
    pairs = ("cue~nocue", "cue~nocue:same-init", "cue~cue", "nocue~nocue", "pretrained~ft:naive", "pretrained~ft:cbft",
             "pretrained~ft:lpft", "pretrained~ft:llrt")
    rows = pd.DataFrame([{"task_id": f"{p}-{t}", "pair_type": p, "path_kind": "linear", "alignment": None,
                          "eval_set": "nocue", "metric": "loss", "definition": "chord", "value": 0.1 * t}
                         for p in pairs for t in range(2)])
    fig = plots.plot_barriers(rows, "loss", eval_sets=EVAL_SETS, method_order=FINETUNE_METHOD_NAMES)
    assert {t.get_rotation() for t in fig.axes[-1].get_xticklabels()} == {30.0}


# ---------------------------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------------------------

def _training_long() -> pd.DataFrame:
    """`training.curves_long` rows of one row of Table 1 (lpft, cue proportion 0.8): epochs 0-3, the first two
    head-only; 3 models at epochs 0-2, 2 at epoch 3; the mean is not the middle of lowest and highest."""
    rows = []
    for e in range(4):
        loss = (3.0, 2.0, 1.0, 0.5)[e]
        acc = (0.2, 0.4, 0.6, 0.8)[e]
        rows.append({"row": "lpft", "cue_proportion": 0.8, "epoch": e, "head_only": e < 2, "n": 3 if e < 3 else 2,
                     "loss_mean": loss, "loss_min": 0.5 * loss, "loss_max": 3.0 * loss,
                     "acc_mean": acc, "acc_min": acc - 0.15, "acc_max": acc + 0.05})
    return pd.DataFrame(rows)


def test_training_curves_plot_the_mean_loss_and_accuracy_in_percent_titled_by_the_most_models():
    """Top: the mean training loss per epoch; bottom: the mean accuracy in percent; the panel's n is the
    number of models that trained it (the most at any epoch: one stopped early does not lower it)."""
    fig = plots.plot_training(_training_long(), chance=0.1)
    top, bottom = fig.axes[0], fig.axes[1]
    (loss,) = [ln for ln in top.get_lines() if ln.get_linestyle() == "-"]
    (acc,) = [ln for ln in bottom.get_lines() if ln.get_linestyle() == "-"]
    np.testing.assert_allclose(loss.get_xdata(), [0, 1, 2, 3])
    np.testing.assert_allclose(loss.get_ydata(), [3.0, 2.0, 1.0, 0.5])
    np.testing.assert_allclose(acc.get_ydata(), [20.0, 40.0, 60.0, 80.0])
    assert loss.get_label() == "cue proportion 80%"
    assert top.get_title() == "lpft (n = 3)"


def test_training_curves_mark_a_constant_guess_and_chance_and_shade_the_head_only_epochs():
    """Chance 10% (10 classes): the dotted loss line is ln 10 = 2.30 (a constant guess's loss), the dotted
    accuracy line 10 (percent); the head-only epochs 0 and 1 are shaded, from -0.5 to 1.5, on both panels."""
    fig = plots.plot_training(_training_long(), chance=0.1)
    top, bottom = fig.axes[0], fig.axes[1]
    (guess,) = [ln for ln in top.get_lines() if ln.get_linestyle() == ":"]
    (chance,) = [ln for ln in bottom.get_lines() if ln.get_linestyle() == ":"]
    np.testing.assert_allclose(guess.get_ydata(), np.log(10))
    assert guess.get_label() == "a constant guess (ln 10 = 2.30)"
    np.testing.assert_allclose(chance.get_ydata(), 10.0)
    assert chance.get_label() == "chance (10%)"
    for ax in (top, bottom):
        (span,) = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx((-0.5, 1.5))
    assert len(plots.plot_training(_training_long().assign(head_only=False), chance=0.1).axes[0].patches) == 0
