"""Report figures (matplotlib, Agg backend: no display needed). Each function takes result
tables and returns a Figure; `figure_png` renders one to PNG bytes.

Figures use fixed margins (in inches) instead of `tight_layout`/`bbox_inches="tight"`: each of
those costs a full extra draw, and the report renders one figure per pair type and path kind.
Accuracy is shown in percent everywhere (as in the paper's Table 1)."""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from orchestrator.stats import (EVAL_SET_ORDER, METHOD_ORDER, PRETRAINED_CUE,  # noqa: E402
                                PRETRAINED_NOCUE, finetune_long, order_values)

DPI = 110
BANDS = ("minmax", "std")
PATH_KIND_ORDER = ("linear", "quadratic", "aligned")
# What each counterfactual set asks, and which way a model without cue reliance should go.
EVAL_SET_TITLES = {"nocue": "nocue (clean) ↑", "cue": "cue", "randcue": "randcue (random cue)",
                   "randimg": "randimg (random image) ↓"}
# Classes per built-in dataset name, for the chance line (tasks.data.DATASETS has the same
# numbers; importing it would pull in torch just for this).
NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "fashion_mnist": 10, "dominoes": 10}
PAIR_ORDER = ("cue~nocue", "cue~cue", "nocue~nocue", *(f"pretrained~ft:{m}" for m in METHOD_ORDER))
_ENDPOINT_NAMES = {"cue": "cue model", "nocue": "no-cue model", "pretrained": "pretrained cue model"}

# Applied while a figure is built (not globally). A fixed title position (`axes.titley`) spares
# matplotlib a tick-label bounding-box pass per axes on every draw (about a quarter of it).
STYLE = {"font.size": 9.5, "axes.titlesize": 10, "axes.labelsize": 9.5, "legend.fontsize": 8.5,
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
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buf.getvalue()


def _margins(fig: Figure, left: float, right: float, top: float, bottom: float,
             wspace: float = 0.25, hspace: float = 0.2) -> None:
    """Fixed margins in inches (one draw per figure instead of three)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h,
                        wspace=wspace, hspace=hspace)


def _variant(path_kind: str, alignment) -> str:
    return f"{path_kind} ({alignment})" if isinstance(alignment, str) else str(path_kind)


def path_title(pair_type: str, path_kind: str, alignment: str | None) -> str:
    return f"{pair_type}: {path_kind} path" + (f" ({alignment} alignment)" if alignment else "")


def endpoint_names(pair_type: str) -> tuple[str, str]:
    """Readable names of a pair's endpoints: `cue~nocue` -> ("cue model", "no-cue model")."""
    a, _, b = str(pair_type).partition("~")

    def name(side: str) -> str:
        if side.startswith("ft:"):
            return f"fine-tuned ({side[3:]})"
        return _ENDPOINT_NAMES.get(side, side or "?")

    first, second = name(a), name(b)
    if a == b:
        return f"{first} (seed s)", f"{second} (next seed)"
    return first, second


def _context(rows: pd.DataFrame) -> str:
    """"digits · small_cnn · p = 90%" for the labels the rows share."""
    parts = []
    for col in ("dataset", "model"):
        if col in rows.columns:
            values = order_values(rows[col], ())
            if len(values) == 1:
                parts.append(str(values[0]))
    if "cue_proportion" in rows.columns:
        props = sorted(float(p) for p in rows["cue_proportion"].dropna().unique())
        if len(props) == 1:
            parts.append(f"cue proportion {props[0]:.0%}")
    return " · ".join(parts)


def _curve_groups(sel: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One curve per (dataset, model, cue proportion) that varies; a single group otherwise."""
    keys = [k for k in ("dataset", "model", "cue_proportion")
            if k in sel.columns and sel[k].nunique(dropna=True) > 1]
    if not keys:
        return [("", sel)]
    out = []
    for key, rows in sel.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"p = {v:.0%}" if k == "cue_proportion" else str(v)
                          for k, v in zip(keys, key))
        out.append((label, rows))
    return out


def _select_path(paths: pd.DataFrame, pair_type: str, path_kind: str,
                 alignment: str | None) -> pd.DataFrame:
    sel = paths[(paths["pair_type"] == pair_type) & (paths["path_kind"] == path_kind)]
    if alignment is None:
        return sel[sel["alignment"].isna()]
    return sel[sel["alignment"] == alignment]


def _curves(rows: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """alpha [A] and values [A, tasks] of one metric (accuracy in percent)."""
    alpha, a_idx = np.unique(rows["alpha"].to_numpy(dtype=float), return_inverse=True)
    _, t_idx = np.unique(rows["task_id"].to_numpy(dtype=object).astype(str), return_inverse=True)
    sums = np.zeros((alpha.size, t_idx.max() + 1))
    counts = np.zeros_like(sums)
    np.add.at(sums, (a_idx, t_idx), rows[metric].to_numpy(dtype=float))
    np.add.at(counts, (a_idx, t_idx), 1.0)
    with np.errstate(invalid="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)
    return alpha, values * (100.0 if metric == "acc" else 1.0)


def _chord_barriers(alpha: np.ndarray, values: np.ndarray, sign: float) -> np.ndarray:
    """Per task: max over alpha of sign * (value - straight line between the endpoints)."""
    a = alpha[:, None]
    line = (1 - a) * values[:1] + a * values[-1:]
    return np.nanmax(sign * (values - line), axis=0)


@_styled
def plot_path(paths: pd.DataFrame, pair_type: str, path_kind: str, alignment: str | None = None,
              band: str = "minmax", *,
              loss_limits: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """Loss (top row) and accuracy in % (bottom row) against alpha, one column per eval set: the
    mean over pairs (tasks) with a band (min–max, or ± one std) across them, the straight line
    between the endpoints (dashed; the chord barrier is the largest gap to it, annotated), one
    curve per cue proportion / model / dataset where the rows hold several. `loss_limits`
    (eval set -> (low, high)) fixes the loss axes, e.g. to share them across path kinds."""
    if band not in BANDS:
        raise ValueError(f"`band`: {band!r} is not allowed; allowed: {', '.join(BANDS)}")
    sel = _select_path(paths, pair_type, path_kind, alignment)
    if sel.empty:
        raise ValueError(f"no path rows for pair_type={pair_type!r}, path_kind={path_kind!r}, "
                         f"alignment={alignment!r}")
    sets = order_values(sel["eval_set"], EVAL_SET_ORDER)
    groups = _curve_groups(sel)
    n_pairs = sel["task_id"].nunique()
    fig, axes = plt.subplots(2, len(sets), figsize=(3.0 * len(sets) + 0.9, 5.9), sharex=True,
                             squeeze=False)
    _margins(fig, left=0.75, right=0.15, top=1.2, bottom=0.8 + 0.2 * len(groups), wspace=0.28,
             hspace=0.28)
    band_label = "min–max over pairs" if band == "minmax" else "± 1 std over pairs"
    for j, eval_set in enumerate(sets):
        for i, metric in enumerate(("loss", "acc")):
            ax = axes[i, j]
            notes = []
            for g, (label, rows) in enumerate(groups):
                rows = rows[rows["eval_set"] == eval_set]
                if rows.empty:
                    continue
                alpha, values = _curves(rows, metric)
                mean = np.nanmean(values, axis=1)
                if band == "minmax":
                    low, high = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
                else:
                    spread = np.nan_to_num(np.nanstd(values, axis=1, ddof=1)) \
                        if values.shape[1] > 1 else np.zeros_like(mean)
                    low, high = mean - spread, mean + spread
                colour = f"C{g}"
                suffix = f" ({label})" if label else ""
                if values.shape[1] > 1:
                    ax.fill_between(alpha, low, high, alpha=0.22, color=colour, lw=0,
                                    label=band_label + suffix)
                ax.plot(alpha, mean, marker="o", ms=3.5, lw=1.8, color=colour,
                        label=f"mean of {values.shape[1]} pair{'s' * (values.shape[1] != 1)}"
                              + suffix)
                ax.plot(alpha[[0, -1]], mean[[0, -1]], ls="--", lw=1.0, color=colour, alpha=0.7,
                        label="straight line between endpoints" + suffix)
                barrier = _chord_barriers(alpha, values, 1.0 if metric == "loss" else -1.0)
                digits, unit = (2, "") if metric == "loss" else (1, " pp")
                spread = f" ± {np.std(barrier, ddof=1):.{digits}f}" if barrier.size > 1 else ""
                notes.append((f"{'loss barrier' if metric == 'loss' else 'accuracy drop'} "
                              f"{np.mean(barrier):.{digits}f}{spread}{unit}" + suffix, colour))
            # One curve: its barrier goes in the panel title; several: coloured notes inside.
            title = notes[0][0] if len(notes) == 1 else ""
            for k, (text, colour) in enumerate(notes if len(notes) > 1 else ()):
                ax.text(0.03, 0.96 - 0.09 * k, text, transform=ax.transAxes, va="top", ha="left",
                        fontsize=8, color=colour,
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8})
            ax.grid(alpha=0.3)
            if i == 0:
                name = EVAL_SET_TITLES.get(eval_set, eval_set)
                ax.set_title(f"{name}\n{title}" if title else name)
                if loss_limits and eval_set in loss_limits:
                    ax.set_ylim(*loss_limits[eval_set])
                else:
                    ax.set_ylim(bottom=0.0)
            else:
                ax.set_ylim(-2, 102)
                ax.set_xlabel("α")
                if title:
                    ax.set_title(title, fontsize=9)
            if j == 0:
                ax.set_ylabel("loss" if metric == "loss" else "accuracy (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(handles)), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    start, end = endpoint_names(pair_type)
    context = _context(sel)
    fig.suptitle(f"{path_title(pair_type, path_kind, alignment)}\n"
                 f"α = 0: {start}, α = 1: {end} · {n_pairs} pair{'s' * (n_pairs != 1)}"
                 + (f" · {context}" if context else ""), fontsize=10.5, y=0.985)
    return fig


def path_loss_limits(paths: pd.DataFrame, pad: float = 0.05) -> dict[str, tuple[float, float]]:
    """Loss axis limits per eval set that fit every curve of `paths` (e.g. one pair type's rows
    over all path kinds), so its figures can be compared side by side. Starts at 0."""
    out = {}
    for eval_set, rows in paths.groupby("eval_set"):
        high = float(np.nanmax(rows["loss"].to_numpy(dtype=float))) if len(rows) else 1.0
        high = high if np.isfinite(high) and high > 0 else 1.0
        out[str(eval_set)] = (0.0, high * (1 + pad))
    return out


def _strip(ax, centres: np.ndarray, data: Sequence[np.ndarray], colour: str, width: float,
           rng: np.random.Generator) -> None:
    """Individual values (jittered points), their mean (black bar), a box when n >= 5."""
    xs, ys = [], []
    for c, d in zip(centres, data):
        xs.append(c + rng.uniform(-0.3, 0.3, d.size) * width)
        ys.append(d)
    if xs:
        ax.scatter(np.concatenate(xs), np.concatenate(ys), s=16, color=colour, alpha=0.85,
                   zorder=3, edgecolors="white", linewidths=0.4)
    means = [(c, d.mean()) for c, d in zip(centres, data) if d.size]
    if means:
        cx, my = zip(*means)
        ax.hlines(my, np.array(cx) - 0.45 * width, np.array(cx) + 0.45 * width, color="black",
                  lw=1.6, zorder=4)
    big = [(c, d) for c, d in zip(centres, data) if d.size >= 5]
    if big:
        ax.boxplot([d for _, d in big], positions=[c for c, _ in big], widths=0.8 * width,
                   showfliers=False, manage_ticks=False, medianprops={"color": colour},
                   boxprops={"color": colour}, whiskerprops={"color": colour},
                   capprops={"color": colour})


@_styled
def plot_barriers(barriers: pd.DataFrame, metric: str | Sequence[str] = "loss",
                  definition: str = "chord") -> Figure:
    """Distribution of barriers across pairs (seeds): one row per eval set, one column per metric
    (`metric` may name several, e.g. ("loss", "acc"); accuracy drops in percentage points);
    x = pair type, one colour per path kind (and alignment). Points are single pairs, black bars
    their mean, boxes appear from 5 pairs on."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    sel = barriers[barriers["metric"].isin(metrics) & (barriers["definition"] == definition)]
    if sel.empty:
        raise ValueError(f"no barrier rows with metric={metric!r}, definition={definition!r}")
    metrics = [m for m in metrics if (sel["metric"] == m).any()]
    sel = sel.assign(variant=[_variant(k, a) for k, a in zip(sel["path_kind"], sel["alignment"])])
    variants = order_values(sel["variant"], [_variant(k, None) for k in PATH_KIND_ORDER]
                            + ["aligned (activation)", "aligned (weight)"])
    pair_types = order_values(sel["pair_type"], PAIR_ORDER)
    sets = order_values(sel["eval_set"], EVAL_SET_ORDER)
    panel_w = max(3.6, 0.8 * len(pair_types) + 1.0)
    fig, axes = plt.subplots(len(sets), len(metrics), figsize=(panel_w * len(metrics) + 1.1,
                                                               2.35 * len(sets) + 1.7),
                             sharex=True, squeeze=False)
    rotate = 0.075 * sum(map(len, pair_types)) > 0.85 * panel_w   # inches of tick text
    _margins(fig, left=0.9, right=0.2, top=1.05,
             bottom=0.75 + (0.03 * max(map(len, pair_types)) if rotate else 0.1),
             wspace=0.22, hspace=0.18)
    width = 0.8 / len(variants)
    x = np.arange(len(pair_types))
    rng = np.random.default_rng(0)
    scale = {m: 100.0 if m == "acc" else 1.0 for m in metrics}
    for c, m in enumerate(metrics):
        for r, eval_set in enumerate(sets):
            ax = axes[r, c]
            cell = sel[(sel["metric"] == m) & (sel["eval_set"] == eval_set)]
            for k, variant in enumerate(variants):
                rows = cell[cell["variant"] == variant]
                data = [rows[rows["pair_type"] == p]["value"].dropna().to_numpy(dtype=float) * scale[m]
                        for p in pair_types]
                _strip(ax, x + (k - (len(variants) - 1) / 2) * width, data, f"C{k}", width, rng)
            ax.axhline(0.0, color="grey", lw=0.8, ls="--")
            ax.grid(axis="y", alpha=0.3)
            ax.set_xlim(-0.5, len(pair_types) - 0.5)
            low, high = ax.get_ylim()
            floor = 1.0 if m == "acc" else 0.02      # no magnified noise around 0
            ax.set_ylim(min(low, -0.05 * floor), max(high, floor))
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
            if r == 0:
                ax.set_title(f"{'loss barrier' if m == 'loss' else 'accuracy drop (pp)'} "
                             f"({definition})")
            if c == 0:
                ax.set_ylabel(EVAL_SET_TITLES.get(eval_set, eval_set))
    for ax in axes[-1]:
        ax.set_xticks(x, pair_types, rotation=20 if rotate else 0, ha="right" if rotate else "center")
        ax.set_xlabel("pair type (α = 0 ~ α = 1)")
    handles = [plt.Line2D([], [], marker="o", ls="", color=f"C{k}", label=v)
               for k, v in enumerate(variants)]
    handles.append(plt.Line2D([], [], color="black", lw=1.6, label="mean over pairs"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.42 / fig.get_size_inches()[1]))
    context = _context(sel)
    fig.suptitle("Barriers along each path, across pairs (seeds)"
                 + (f" · {context}" if context else ""), fontsize=11, y=0.995)
    return fig


def _chance(evaluations: pd.DataFrame) -> float | None:
    if "dataset" not in evaluations.columns:
        return None
    classes = {NUM_CLASSES.get(str(d)) for d in evaluations["dataset"].dropna().unique()}
    return 100.0 / classes.pop() if len(classes) == 1 and None not in classes else None


@_styled
def plot_finetune(evaluations: pd.DataFrame, tasks: pd.DataFrame | None = None) -> Figure:
    """Grouped bars: accuracy (%) on each eval set (bars) per model/method (groups), one panel per
    cue proportion; error bars are the std over seeds, the dotted line is chance."""
    long = finetune_long(evaluations, tasks)
    if long.empty:
        raise ValueError("no pretrain/finetune evaluation rows to plot")
    props = sorted(long["cue_proportion"].unique())
    sets = order_values(long["eval_set"], EVAL_SET_ORDER)
    rows = list(dict.fromkeys(long["row"]))
    panel_w = max(4.4, 0.95 * len(rows) + 0.8)
    width_in = panel_w * len(props) + 1.0
    n_entries = len(sets) + 1
    ncol = max(1, min(n_entries, int(width_in // 2.3)))
    legend_rows = -(-n_entries // ncol)
    fig, axes = plt.subplots(1, len(props), figsize=(width_in, 4.4 + 0.2 * legend_rows),
                             sharey=True, squeeze=False)
    _margins(fig, left=0.8, right=0.2, top=1.0, bottom=0.85 + 0.2 * legend_rows, wspace=0.08)
    width = 0.8 / len(sets)
    chance = _chance(evaluations)
    n_refs = sum(r in (PRETRAINED_NOCUE, PRETRAINED_CUE) for r in rows)
    for j, p in enumerate(props):
        ax = axes[0, j]
        cell = long[long["cue_proportion"] == p].set_index(["row", "eval_set"])
        x = np.arange(len(rows))
        for k, eval_set in enumerate(sets):
            means = np.array([cell["mean"].get((r, eval_set), np.nan) for r in rows]) * 100
            stds = np.array([cell["std"].get((r, eval_set), np.nan) for r in rows]) * 100
            ax.bar(x + (k - (len(sets) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
                   label=EVAL_SET_TITLES.get(eval_set, eval_set), color=f"C{k}",
                   error_kw={"lw": 0.8})
        if chance is not None:
            ax.axhline(chance, color="black", lw=0.9, ls=":", label=f"chance ({chance:.0f}%)")
        if 0 < n_refs < len(rows):
            ax.axvline(n_refs - 0.5, color="grey", lw=0.8)
        ax.set_xticks(x, [r.replace(" (", "\n(") for r in rows])
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_ylim(0, 105)
        ax.set_title(f"cue proportion {p:.0%}")
        ax.grid(axis="y", alpha=0.3)
        if j == 0:
            ax.set_ylabel("accuracy (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    context = _context(evaluations)
    title = "Accuracy on the counterfactual test sets (mean ± std over seeds)"
    if width_in < 8:
        title = title.replace(" (", "\n(")
    fig.suptitle(title + (f" · {context}" if context else ""), fontsize=10.5, y=0.985)
    return fig
