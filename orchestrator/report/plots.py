"""Report figures (matplotlib, Agg backend: no display needed). Each function takes result rows
and returns a Figure; `figure_png` renders one to PNG bytes.

Orders (evaluation sets, fine-tuning methods) and chance come in as arguments, resolved by the
caller from the `tasks/` registries, so a figure worker never imports torch. Figures use fixed
margins (in inches) instead of `tight_layout`/`bbox_inches="tight"` (each costs a full extra draw)
and few, fixed ticks (tick objects are most of matplotlib's drawing time). Accuracy, agreement and
cue reliance are in percent everywhere (as in the paper's Table 1).

Why one module: every report figure in one file, each a short function on result rows, so a figure
worker imports one module (and never torch).
"""

from __future__ import annotations

import functools
import io
import re
import warnings
from collections.abc import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from orchestrator import vocab  # noqa: E402
from orchestrator.report.stats import (PRETRAINED_CUE, PRETRAINED_NOCUE, order_pairs, order_values,  # noqa: E402
                                path_variants, proportion_text, variant_sort_key)

DPI = 100
BANDS = ("minmax", "std")
# What each counterfactual set asks, and which way a model without cue reliance should go.
EVAL_SET_TITLES = {"nocue": "nocue (clean) ↑", "cue": "cue", "randcue": "randcue (random cue)",
                   "randimg": "randimg (random image) ↓"}
_ENDPOINT_NAMES = {"cue": "cue model", "nocue": "no-cue model", "pretrained": "pretrained cue model"}
CONTEXT_KEYS = ("dataset", "model", "cue_proportion")
UNIT_TICKS = (0.0, 0.5, 1.0)
NOTE_STEP = 0.085            # height of one barrier note (a line per path kind) above the curves, in axes units
PERCENT_TICKS = (0, 50, 100)

# Applied while a figure is built (not globally). A fixed title position (`axes.titley`) spares
# matplotlib a tick-label bounding-box pass per axes on every draw.
STYLE = {"font.size": 9.5, "axes.titlesize": 9.5, "axes.labelsize": 9.5, "legend.fontsize": 8.5,
         "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "axes.titley": 1.0}


def _styled(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    @functools.wraps(plot)
    def wrapper(*args, **kwargs) -> Figure:
        with plt.rc_context(STYLE):
            return plot(*args, **kwargs)
    return wrapper


def slug(text: str) -> str:
    """A file-name-safe form of a label: `pretrained~ft:naive` -> `pretrained-ft-naive`."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-")


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Render a figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", pil_kwargs={"compress_level": 3})
    plt.close(fig)
    return buf.getvalue()


def _margins(fig: Figure, left: float, right: float, top: float, bottom: float,
             wspace: float = 0.25, hspace: float = 0.2) -> None:
    """Fixed margins in inches (one draw per figure instead of three)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h,
                        wspace=wspace, hspace=hspace)


def endpoint_names(pair_type: str) -> tuple[str, str]:
    """Readable names of a pair's endpoints: `cue~nocue` -> ("cue model", "no-cue model"),
    `pretrained~ft:cbft` -> ("pretrained cue model", "fine-tuned (cbft)")."""
    pair, _, design = str(pair_type).partition(":")
    a, _, b = pair.partition("~")
    if a == vocab.PRETRAINED_FT.partition("~")[0]:
        return _ENDPOINT_NAMES.get(a, a), f"fine-tuned ({design})" if design else "fine-tuned model"
    first, second = _ENDPOINT_NAMES.get(a, a or "?"), _ENDPOINT_NAMES.get(b, b or "?")
    if a == b:
        return f"{first} A", f"{second} B"
    return first, second


def context_text(rows: pd.DataFrame) -> str:
    """"digits · small_cnn · cue proportion 80%" for the labels the rows share."""
    parts = []
    for col in CONTEXT_KEYS:
        values = order_values(rows[col], ()) if col in rows.columns else []
        if len(values) == 1:
            parts.append(f"cue proportion {proportion_text(values[0])}" if col == "cue_proportion" else str(values[0]))
    return " · ".join(parts)


def _series(sel: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One series per path kind (with alignment), and per dataset/model/cue proportion that varies."""
    sel = sel.assign(_variant=path_variants(sel))
    keys = [k for k in CONTEXT_KEYS if k in sel.columns and sel[k].nunique(dropna=True) > 1]
    out = []
    for key, rows in sel.groupby(["_variant", *keys], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        extra = ", ".join(f"p = {proportion_text(v)}" if k == "cue_proportion" else str(v) for k, v in zip(keys, key[1:]))
        out.append((key[0] + (f" ({extra})" if extra else ""), rows))
    return sorted(out, key=lambda s: (variant_sort_key(s[0]), s[0]))


def _curves(rows: pd.DataFrame, metric: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """alpha [A] and values [A, tasks] of one metric (mean over rows of a task at an alpha)."""
    alpha, a_idx = np.unique(rows["alpha"].to_numpy(dtype=float), return_inverse=True)
    _, t_idx = np.unique(rows["task_id"].to_numpy(dtype=object).astype(str), return_inverse=True)
    sums = np.zeros((alpha.size, t_idx.max() + 1))
    counts = np.zeros_like(sums)
    vals = rows[metric].to_numpy(dtype=float)
    ok = np.isfinite(vals)
    np.add.at(sums, (a_idx[ok], t_idx[ok]), vals[ok])
    np.add.at(counts, (a_idx[ok], t_idx[ok]), 1.0)
    with np.errstate(invalid="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)
    return alpha, values * scale


def chord_barriers(alpha: np.ndarray, values: np.ndarray, sign: float) -> np.ndarray:
    """Per task: max over alpha of sign * (value - straight line between the endpoints)."""
    a = alpha[:, None]
    line = (1 - a) * values[:1] + a * values[-1:]
    return np.nanmax(sign * (values - line), axis=0)


def _band(ax, alpha, values, colour, band: str, ls: str = "-", label: str | None = None, marker="o"):
    """Mean over tasks (line) and the spread across them (band); returns the mean."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN alphas (a missing point)
        mean = np.nanmean(values, axis=1)
        if values.shape[1] > 1:
            if band == "minmax":
                low, high = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
            else:
                spread = np.nan_to_num(np.nanstd(values, axis=1, ddof=1))
                low, high = mean - spread, mean + spread
            ax.fill_between(alpha, low, high, alpha=0.18, color=colour, lw=0)
    ax.plot(alpha, mean, marker=marker, ms=3, lw=1.6, color=colour, ls=ls, label=label)
    return mean


def _axes_grid(fig: Figure, rows: list[str], n_sets: int) -> dict[tuple[str, int], plt.Axes]:
    """Rows of one panel per eval set; the cue-reliance row has two wide panels."""
    grid = fig.add_gridspec(len(rows), 2 * n_sets)
    axes: dict[tuple[str, int], plt.Axes] = {}
    first = None
    for r, row in enumerate(rows):
        if row == "reliance":
            spans = [(0, n_sets), (n_sets, 2 * n_sets)]
        else:
            spans = [(2 * j, 2 * j + 2) for j in range(n_sets)]
        for j, (lo, hi) in enumerate(spans):
            ax = fig.add_subplot(grid[r, lo:hi], sharex=first)
            first = first or ax
            axes[(row, j)] = ax
    return axes


@_styled
def plot_path(paths: pd.DataFrame, pair_type: str, path_kind: str | None = None, alignment: str | None = None,
              band: str = "minmax", *, eval_sets: Sequence[str] = (), chance: float | None = None,
              loss_limits: Mapping[str, tuple[float, float]] | None = None, subtitle: str = "") -> Figure:
    """One pair type along every path kind (colours), one column per eval set. Rows: loss; accuracy;
    prediction agreement with endpoint A (solid) and B (dashed); and, in two wide panels, the cue
    reliance of the model at alpha (acc(randimg) − chance; acc(nocue) − acc(randcue)). Lines are
    means over pairs, bands their spread (min–max or ± 1 std); dashed straight lines join the
    endpoints (the chord barrier is the largest gap to it, annotated as mean ± std over pairs).
    `path_kind`/`alignment` restrict the figure to one path; `loss_limits` fixes the loss axes."""
    if band not in BANDS:
        raise ValueError(f"`band`: {band!r} is not allowed; allowed: {', '.join(BANDS)}")
    sel = paths[paths["pair_type"] == pair_type]
    if path_kind is not None:
        sel = sel[(sel["path_kind"] == path_kind)
                  & (sel["alignment"].isna() if alignment is None else sel["alignment"] == alignment)]
    if sel.empty:
        raise ValueError(f"no path rows for pair_type={pair_type!r}, path_kind={path_kind!r}, alignment={alignment!r}")
    sets = order_values(sel["eval_set"], eval_sets)
    series = _series(sel)
    has = {c: c in sel.columns and sel[c].notna().any() for c in
           ("agree_a", "agree_b", "reliance_randimg", "reliance_randcue")}
    rows = ["loss", "acc"] + (["agree"] if has["agree_a"] or has["agree_b"] else []) \
        + (["reliance"] if has["reliance_randimg"] or has["reliance_randcue"] else [])
    legend_rows = -(-(len(series) + 1) // 3)
    fig = plt.figure(figsize=(2.9 * len(sets) + 0.9, 2.3 * len(rows) + 1.3 + 0.2 * legend_rows))
    _margins(fig, left=0.75, right=0.15, top=1.0, bottom=0.55 + 0.2 * legend_rows, wspace=0.9, hspace=0.42)
    axes = _axes_grid(fig, rows, len(sets))
    start, end = endpoint_names(pair_type)
    for s, (label, srows) in enumerate(series):
        colour = f"C{s}"
        by_set = dict(tuple(srows.groupby("eval_set")))
        for j, eval_set in enumerate(sets):
            rows_e = by_set.get(eval_set)
            if rows_e is None:
                continue
            for metric, scale, sign in (("loss", 1.0, 1.0), ("acc", 100.0, -1.0)):
                ax = axes[(metric, j)]
                alpha, values = _curves(rows_e, metric, scale)
                mean = _band(ax, alpha, values, colour, band, label=label if (metric, j) == ("loss", 0) else None)
                ax.plot(alpha[[0, -1]], mean[[0, -1]], ls="--", lw=0.8, color=colour, alpha=0.6)
                barrier = chord_barriers(alpha, values, sign)
                digits, unit = (2, "") if metric == "loss" else (1, " pp")
                spread = f" ± {np.std(barrier, ddof=1):.{digits}f}" if barrier.size > 1 else ""
                ax.text(0.03, 0.97 - NOTE_STEP * s, f"{np.mean(barrier):.{digits}f}{spread}{unit}",
                        transform=ax.transAxes, va="top", ha="left", fontsize=7, color=colour)
            if "agree" in rows:
                ax = axes[("agree", j)]
                for column, ls in (("agree_a", "-"), ("agree_b", "--")):
                    if has[column]:
                        _band(ax, *_curves(rows_e, column, 100.0), colour, band, ls=ls, marker=None)
        if "reliance" in rows:
            per_alpha = srows.drop_duplicates(["task_id", "alpha"])
            for j, column in enumerate(("reliance_randimg", "reliance_randcue")):
                if has[column]:
                    _band(axes[("reliance", j)], *_curves(per_alpha, column, 100.0), colour, band)
    titles = {("reliance", 0): "cue reliance: acc(randimg) − chance",
              ("reliance", 1): "cue reliance: acc(nocue) − acc(randcue)"}
    ylabels = {"loss": "loss", "acc": "accuracy (%)", "agree": "agreement (%)", "reliance": "pp"}
    for (row, j), ax in axes.items():
        ax.grid(alpha=0.3)
        ax.set_xticks(UNIT_TICKS)
        ax.set_xlim(-0.03, 1.03)
        headroom = 1.0 / (1.0 - NOTE_STEP * len(series) - 0.03)   # the barrier notes sit above the curves
        if row == "loss":
            ax.set_title(EVAL_SET_TITLES.get(sets[j], sets[j]))
            low, high = (loss_limits or {}).get(sets[j]) or (0.0, ax.get_ylim()[1])
            ax.set_ylim(low, low + (high - low) * headroom)
            ax.set_yticks([t for t in MaxNLocator(4).tick_values(low, high) if low <= t <= low + 1.08 * (high - low)])
        elif row in ("acc", "agree"):
            ax.set_ylim(-3, -3 + 106 * (headroom if row == "acc" else 1.0))
            ax.set_yticks(PERCENT_TICKS)
            if row == "agree":
                ax.set_title("agreement with A (—), with B (- -)", fontsize=8.5)
        else:
            ax.set_title(titles[(row, j)], fontsize=8.5)
            ax.axhline(0.0, color="grey", lw=0.8, ls=":")
            ax.yaxis.set_major_locator(MaxNLocator(4))
        if j == 0:
            ax.set_ylabel(ylabels[row])
        if row == rows[-1]:
            ax.set_xlabel("α")
    handles, labels = axes[("loss", 0)].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], ls="--", color="grey", lw=0.8))
    labels.append("straight line between the endpoints")
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(handles)), frameon=False, bbox_to_anchor=(0.5, 0.0))
    n_pairs = sel.drop_duplicates(["task_id"]).groupby(["path_kind", "alignment"], dropna=False).size()
    n_text = f"{n_pairs.min()}" if n_pairs.min() == n_pairs.max() else f"{n_pairs.min()}–{n_pairs.max()}"
    context = " · ".join(x for x in (context_text(sel), subtitle) if x)
    chance_note = f" · chance {100 * chance:.0f}%" if chance else ""
    fig.suptitle(f"{pair_type}: α = 0 is A, the {start}; α = 1 is B, the {end}\n"
                 f"n = {n_text} pair{'s' * (n_text != '1')} per path kind" + chance_note
                 + (f" · {context}" if context else ""), fontsize=10.5, y=0.99)
    return fig


def path_loss_limits(paths: pd.DataFrame, pad: float = 0.05) -> dict[str, tuple[float, float]]:
    """Loss axis limits per eval set that fit every curve of `paths`, so figures can be compared
    side by side. Start at 0."""
    out = {}
    for eval_set, rows in paths.groupby("eval_set"):
        high = float(np.nanmax(rows["loss"].to_numpy(dtype=float))) if len(rows) else 1.0
        high = high if np.isfinite(high) and high > 0 else 1.0
        out[str(eval_set)] = (0.0, high * (1 + pad))
    return out


def _strip(ax, centres: np.ndarray, data: Sequence[np.ndarray], colour: str, width: float,
           rng: np.random.Generator) -> None:
    """Individual values (jittered points), their mean (black bar), a box when n >= 5."""
    xs = [c + rng.uniform(-0.3, 0.3, d.size) * width for c, d in zip(centres, data)]
    if xs:
        ax.scatter(np.concatenate(xs), np.concatenate(data), s=14, color=colour, alpha=0.85, zorder=3,
                   edgecolors="white", linewidths=0.4)
    means = [(c, d.mean()) for c, d in zip(centres, data) if d.size]
    if means:
        cx, my = zip(*means)
        ax.hlines(my, np.array(cx) - 0.45 * width, np.array(cx) + 0.45 * width, color="black", lw=1.6, zorder=4)
    big = [(c, d) for c, d in zip(centres, data) if d.size >= 5]
    if big:
        ax.boxplot([d for _, d in big], positions=[c for c, _ in big], widths=0.8 * width, showfliers=False,
                   manage_ticks=False, medianprops={"color": colour}, boxprops={"color": colour},
                   whiskerprops={"color": colour}, capprops={"color": colour})


@_styled
def plot_barriers(barriers: pd.DataFrame, metric: str | Sequence[str] = "loss", definition: str = "chord", *,
                  eval_sets: Sequence[str] = (), method_order: Sequence[str] = (), subtitle: str = "") -> Figure:
    """Distribution of barriers across pairs: one row per eval set, one column per metric (e.g.
    ("loss", "acc"); accuracy drops in percentage points); x = pair type (controls next to their
    pair), one colour per path kind (and alignment). Points are single pairs, black bars their
    mean, boxes appear from 5 pairs on."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    sel = barriers[barriers["metric"].isin(metrics) & (barriers["definition"] == definition)]
    if sel.empty:
        raise ValueError(f"no barrier rows with metric={metric!r}, definition={definition!r}")
    metrics = [m for m in metrics if (sel["metric"] == m).any()]
    sel = sel.assign(variant=path_variants(sel))
    variants = sorted(order_values(sel["variant"], ()), key=variant_sort_key)
    pair_types = order_pairs(sel["pair_type"], method_order)
    sets = order_values(sel["eval_set"], eval_sets)
    panel_w = max(3.6, 0.75 * len(pair_types) + 1.0)
    fig, axes = plt.subplots(len(sets), len(metrics), figsize=(panel_w * len(metrics) + 1.1, 2.2 * len(sets) + 2.0),
                             sharex=True, squeeze=False)
    rotate = 0.075 * sum(map(len, pair_types)) > 0.85 * panel_w   # inches of tick text
    _margins(fig, left=0.9, right=0.2, top=1.05, bottom=0.8 + (0.035 * max(map(len, pair_types)) if rotate else 0.2),
             wspace=0.22, hspace=0.18)
    width = 0.8 / len(variants)
    x = np.arange(len(pair_types))
    rng = np.random.default_rng(0)
    for c, m in enumerate(metrics):
        for r, eval_set in enumerate(sets):
            ax = axes[r, c]
            cell = sel[(sel["metric"] == m) & (sel["eval_set"] == eval_set)]
            for k, variant in enumerate(variants):
                rows = cell[cell["variant"] == variant]
                scale = 100.0 if m == "acc" else 1.0
                data = [rows[rows["pair_type"] == p]["value"].dropna().to_numpy(dtype=float) * scale for p in pair_types]
                _strip(ax, x + (k - (len(variants) - 1) / 2) * width, data, f"C{k}", width, rng)
            ax.axhline(0.0, color="grey", lw=0.8, ls="--")
            ax.grid(axis="y", alpha=0.3)
            ax.set_xlim(-0.5, len(pair_types) - 0.5)
            low, high = ax.get_ylim()
            floor = 1.0 if m == "acc" else 0.02      # no magnified noise around 0
            ax.set_ylim(min(low, -0.05 * floor), max(high, floor))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            if r == 0:
                ax.set_title(f"{'loss barrier' if m == 'loss' else 'accuracy drop (pp)'} ({definition})")
            if c == 0:
                ax.set_ylabel(EVAL_SET_TITLES.get(eval_set, eval_set))
    counts = sel.drop_duplicates("task_id").groupby(["pair_type", "variant"])["task_id"].count().groupby(level=0).max()
    labels = [f"{p}\n(n = {counts.get(p, 0)})" for p in pair_types]
    for ax in axes[-1]:
        ax.set_xticks(x, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    handles = [plt.Line2D([], [], marker="o", ls="", color=f"C{k}", label=v) for k, v in enumerate(variants)]
    handles.append(plt.Line2D([], [], color="black", lw=1.6, label="mean over pairs"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.42 / fig.get_size_inches()[1]))
    context = " · ".join(x for x in (context_text(sel), subtitle) if x)
    fig.suptitle("Barriers along each path, one point per pair" + (f" · {context}" if context else ""),
                 fontsize=11, y=0.995)
    return fig


@_styled
def plot_finetune(long: pd.DataFrame, *, eval_sets: Sequence[str] = (), chance: float | None = None,
                  subtitle: str = "") -> Figure:
    """Grouped bars: accuracy (%) on each eval set (bars) per model/method (groups), one panel per
    cue proportion, from `stats.finetune_long` rows; error bars are the std over the models of a row (one
    per seed; a pretrained row pools every model of its kind, partners and controls included, as the
    table does), the dotted line is chance (a fraction)."""
    if long.empty:
        raise ValueError("no pretrain/finetune evaluation rows to plot")
    props = sorted(long["cue_proportion"].unique())
    sets = order_values(long["eval_set"], eval_sets)
    rows = list(dict.fromkeys(long["row"]))
    panel_w = max(4.4, 0.95 * len(rows) + 0.8)
    width_in = panel_w * len(props) + 1.0
    n_entries = len(sets) + 1
    ncol = max(1, min(n_entries, int(width_in // 2.3)))
    legend_rows = -(-n_entries // ncol)
    fig, axes = plt.subplots(1, len(props), figsize=(width_in, 4.4 + 0.2 * legend_rows), sharey=True, squeeze=False)
    _margins(fig, left=0.8, right=0.2, top=1.0, bottom=0.85 + 0.2 * legend_rows, wspace=0.08)
    width = 0.8 / len(sets)
    n_refs = sum(r in (PRETRAINED_NOCUE, PRETRAINED_CUE) for r in rows)   # references, left of a grey line
    for j, p in enumerate(props):
        ax = axes[0, j]
        cell = long[long["cue_proportion"] == p].set_index(["row", "eval_set"])
        x = np.arange(len(rows))
        for k, eval_set in enumerate(sets):
            means = np.array([cell["mean"].get((r, eval_set), np.nan) for r in rows]) * 100
            stds = np.array([cell["std"].get((r, eval_set), np.nan) for r in rows]) * 100
            ax.bar(x + (k - (len(sets) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
                   label=EVAL_SET_TITLES.get(eval_set, eval_set), color=f"C{k}", error_kw={"lw": 0.8})
        if chance is not None:
            ax.axhline(100 * chance, color="black", lw=0.9, ls=":", label=f"chance ({100 * chance:.0f}%)")
        if 0 < n_refs < len(rows):
            ax.axvline(n_refs - 0.5, color="grey", lw=0.8)
        ax.set_xticks(x, [r.replace(" (", "\n(") for r in rows])
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_ylim(0, 105)
        ax.set_yticks((0, 25, 50, 75, 100))
        n = cell["n"]
        n_text = f"n = {n.min()}" if n.min() == n.max() else f"n = {n.min()}–{n.max()}"
        ax.set_title(f"cue proportion {proportion_text(p)} ({n_text} model{'s' * (n_text != 'n = 1')})")
        ax.grid(axis="y", alpha=0.3)
        if j == 0:
            ax.set_ylabel("accuracy (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
    title = "Accuracy on the counterfactual test sets (mean ± std over models)"
    if width_in < 8:
        title = title.replace(" (", "\n(")
    fig.suptitle(title + (f" · {subtitle}" if subtitle else ""), fontsize=10.5, y=0.985)
    return fig


@_styled
def plot_mechanism_map(models: pd.DataFrame, matrix: pd.DataFrame, linkage: pd.DataFrame, *, threshold=None,
                       title: str = "", unit: str = "loss barrier", chance: float | None = None,
                       cut: float | None = None) -> Figure:
    """The mechanism map of a population: the average-linkage dendrogram (left; the dashed line is the
    clustering threshold), the annotations of each model (cue proportion, fine-tuning method,
    acc(randimg) − chance; its cluster in the label) and the heat map of the barrier between every two
    models (rows and columns in the dendrogram's order, clusters outlined). `models` and `matrix` are
    in the same order; `linkage` is scipy's linkage matrix of `matrix` (empty below two models)."""
    from scipy.cluster.hierarchy import dendrogram

    k = len(models)
    if k < 2:
        raise ValueError("a mechanism map needs at least two models")
    values = matrix.to_numpy(dtype=float)
    side = float(np.clip(0.13 * k, 3.2, 11.0))            # the heat map, inches
    dendro_w, notes_w, label_w = 1.4, 0.75, 1.55
    fig = plt.figure(figsize=(0.35 + dendro_w + notes_w + side + label_w + 1.0, side + 1.5))
    W, H = fig.get_size_inches()
    bottom, top = 0.45, 1.2
    h = (H - bottom - top) / H
    def box(left, width):   # noqa: E306 - axes at fixed inches
        return fig.add_axes([left / W, bottom / H, width / W, h])
    ax_d = box(0.35, dendro_w)
    ax_n = box(0.35 + dendro_w + 0.05, notes_w - 0.1)
    ax_h = box(0.35 + dendro_w + notes_w, side)
    ax_c = fig.add_axes([(0.35 + dendro_w + notes_w + side + label_w) / W, bottom / H, 0.14 / W, h * 0.5])
    tree = linkage.to_numpy(dtype=float)
    if len(tree):
        d = dendrogram(tree, orientation="left", ax=ax_d, no_labels=True, color_threshold=threshold or 0,
                       above_threshold_color="0.55")
        order = [int(i) for i in d["leaves"]]      # leaf i sits at y = 10 i + 5: row i of the heat map, top down
        ax_d.set_ylim(10 * k, 0)
    else:
        order = list(range(k))
    if threshold is not None and len(tree):
        ax_d.axvline(threshold, color="black", ls="--", lw=0.9)
        ax_d.set_xlim(max(ax_d.get_xlim()[0], 1.05 * threshold), 0)
    ax_d.set_xlabel(unit, fontsize=8)
    for spine in ("top", "right", "left"):
        ax_d.spines[spine].set_visible(False)
    ax_d.set_yticks([])
    ax_d.tick_params(labelsize=7)
    shown = values[np.ix_(order, order)]
    top_value = float(np.nanmax(shown)) if np.isfinite(shown).any() else 1.0
    image = ax_h.imshow(shown, cmap="magma_r", vmin=0.0, vmax=max(top_value, 1e-9), interpolation="nearest",
                        aspect="auto")
    cbar = fig.colorbar(image, cax=ax_c)
    cbar.set_label(unit, fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    rows = models.iloc[order].reset_index(drop=True)
    clusters = rows["cluster"].to_numpy()
    start = 0
    for i in range(1, k + 1):       # outline each run of one cluster along the diagonal
        if i == k or clusters[i] != clusters[start]:
            if i - start > 1:
                ax_h.add_patch(plt.Rectangle((start - 0.5, start - 0.5), i - start, i - start, fill=False,
                                             ec="#1e88e5", lw=1.4))
            start = i
    ax_h.set_xticks([])
    ax_h.yaxis.tick_right()
    size = 7 if k <= 40 else 5 if k <= 80 else 4
    ax_h.set_yticks(range(k), [f"{label}  [{c}]" for label, c in zip(rows["label"], clusters)], fontsize=size)
    # annotations: cue proportion (grey), method (letter), reliance (red)
    props = rows["cue_proportion"].to_numpy(dtype=float)
    reliance = rows["reliance_randimg"].to_numpy(dtype=float)
    span = max(1.0 - (chance or 0.0), 1e-9)
    notes = np.stack([np.nan_to_num(props, nan=0.0), np.clip(np.nan_to_num(reliance, nan=0.0) / span, 0, 1)], axis=1)
    ax_n.imshow(notes[:, :1], cmap="Greys", vmin=0, vmax=1, aspect="auto", extent=(-0.5, 0.5, k - 0.5, -0.5))
    ax_n.imshow(notes[:, 1:], cmap="Reds", vmin=0, vmax=1, aspect="auto", extent=(0.5, 1.5, k - 0.5, -0.5))
    for i, (method, p, r) in enumerate(zip(rows["method"], props, reliance)):
        if isinstance(method, str) and k <= 80:
            ax_n.text(2.0, i, method[:6], va="center", ha="left", fontsize=size)
        if cut is not None and r == r and r > cut and k <= 80:
            ax_n.text(1.0, i, "•", va="center", ha="center", fontsize=size, color="white")
    ax_n.set_xlim(-0.5, 3.8)
    ax_n.set_ylim(k - 0.5, -0.5)
    ax_n.set_yticks([])
    ax_n.set_xticks([0, 1, 2.6], ["cue p", "reliance", "method"], rotation=90, fontsize=7)
    ax_n.xaxis.tick_top()
    for spine in ax_n.spines.values():
        spine.set_visible(False)
    fig.suptitle(title or "Mechanism map", fontsize=10, y=1 - 0.12 / H)
    fig.text(0.5, 1 - 0.42 / H, "cue p: the model's cue proportion (white 0, black 1) · reliance: acc(randimg) − "
             "chance (white 0, red all)" + (f", • above {100 * cut:g} pp" if cut is not None else "")
             + "\n[n]: the model's cluster; each cluster outlined" + ("; dashed: the threshold" if threshold is not None
                                                                      else ""),
             fontsize=7, color="0.3", ha="center", va="top")
    return fig


@_styled
def plot_training(long: pd.DataFrame, *, chance: float | None = None, subtitle: str = "") -> Figure:
    """Training loss (top, log scale) and accuracy (bottom, %) per epoch, one column per row of Table 1 in
    `long`'s order (`report.training.curves_long`), one colour per cue proportion: the mean over the models
    (line) and their lowest and highest (band). Dotted: a constant guess's loss, ln(1 / chance), and chance;
    shaded: epochs that train the head alone (LLRT, LP-FT's first phase)."""
    if long.empty:
        raise ValueError("no training curve rows to plot")
    rows = list(dict.fromkeys(long["row"]))
    proportions = sorted(long["cue_proportion"].unique())
    colour = {p: f"C{i}" for i, p in enumerate(proportions)}
    width_in = max(6.0, 2.5 * len(rows) + 1.0)
    fig, axes = plt.subplots(2, len(rows), figsize=(width_in, 5.4), sharex="col", sharey="row", squeeze=False)
    _margins(fig, left=0.8, right=0.2, top=0.85, bottom=1.05, wspace=0.12, hspace=0.3)
    guess = float(np.log(1 / chance)) if chance else None
    for j, row in enumerate(rows):
        cell = long[long["row"] == row]
        top, bottom = axes[0, j], axes[1, j]
        head = cell.loc[cell["head_only"].astype(bool), "epoch"]
        for ax in (top, bottom):
            if not head.empty:
                ax.axvspan(head.min() - 0.5, head.max() + 0.5, color="0.88", lw=0)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        for proportion, curve in cell.groupby("cue_proportion", sort=True):
            x = curve["epoch"].to_numpy(dtype=float)
            for ax, stat, scale in ((top, "loss", 1.0), (bottom, "acc", 100.0)):
                low, high = (np.clip(curve[f"{stat}_{b}"].to_numpy(dtype=float), 1e-4, None) * scale for b in ("min", "max"))
                mean = np.clip(curve[f"{stat}_mean"].to_numpy(dtype=float), 1e-4, None) * scale
                ax.fill_between(x, low, high, color=colour[proportion], alpha=0.18, lw=0)
                ax.plot(x, mean, color=colour[proportion], lw=1.5, marker="o" if len(x) < 12 else None, ms=3,
                        label=f"cue proportion {proportion_text(proportion)}")
        if guess is not None:
            top.axhline(guess, color="black", lw=0.9, ls=":", label=f"a constant guess (ln {round(1 / chance)} = {guess:.2f})")
            bottom.axhline(100 * chance, color="black", lw=0.9, ls=":", label=f"chance ({100 * chance:.0f}%)")
        top.set_yscale("log")
        for axis in (top.yaxis.set_major_formatter, top.yaxis.set_minor_formatter):   # 2.2, not 2.2 × 10⁰
            axis(FuncFormatter(lambda v, _: f"{v:g}"))
        first_epoch, last_epoch = int(cell["epoch"].min()), int(cell["epoch"].max())
        top.set_xlim(first_epoch - 0.5, last_epoch + 0.5)
        if last_epoch - first_epoch < 6:
            top.set_xticks(range(first_epoch, last_epoch + 1))
        n = cell["n"]
        top.set_title(f"{row} (n = {n.max()})", fontsize=9)
        bottom.set_xlabel("epoch")
        bottom.set_ylim(0, 105)
    axes[0, 0].set_ylabel("training loss")
    axes[1, 0].set_ylabel("training accuracy (%)")
    handles, labels = [], []
    for ax in axes.ravel():
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    first = sorted(range(len(labels)), key=lambda i: not labels[i].startswith("cue proportion"))   # colours first
    handles, labels = [handles[i] for i in first], [labels[i] for i in first]
    if long["head_only"].astype(bool).any():
        handles.append(Patch(color="0.88"))
        labels.append("head-only epochs")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), max(1, int(width_in // 2.6))),
               frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle("Training loss and accuracy per epoch (mean over models; band: lowest to highest)"
                 + (f" · {subtitle}" if subtitle else ""), fontsize=10.5, y=0.985)
    return fig
