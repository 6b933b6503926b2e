"""Report figures (matplotlib, Agg backend: no display needed). Each function takes result
tables and returns a Figure; `figure_png` renders one to PNG bytes."""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from orchestrator.stats import EVAL_SET_ORDER, order_values, finetune_long  # noqa: E402

DPI = 110
BANDS = ("minmax", "std")


def slug(text: str) -> str:
    """A file-name-safe form of a label: `pretrained~ft:naive` -> `pretrained-ft-naive`."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-")


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Render a figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _select_path(paths: pd.DataFrame, pair_type: str, path_kind: str,
                 alignment: str | None) -> pd.DataFrame:
    sel = paths[(paths["pair_type"] == pair_type) & (paths["path_kind"] == path_kind)]
    if alignment is None:
        return sel[sel["alignment"].isna()]
    return sel[sel["alignment"] == alignment]


def path_title(pair_type: str, path_kind: str, alignment: str | None) -> str:
    return f"{pair_type}: {path_kind} path" + (f" ({alignment} alignment)" if alignment else "")


def plot_path(paths: pd.DataFrame, pair_type: str, path_kind: str, alignment: str | None = None,
              band: str = "minmax") -> Figure:
    """Loss (top row) and accuracy (bottom row) against alpha, one column per eval set: the mean
    over pairs (tasks) with a band (min–max, or ± one std) across them."""
    if band not in BANDS:
        raise ValueError(f"`band`: {band!r} is not allowed; allowed: {', '.join(BANDS)}")
    sel = _select_path(paths, pair_type, path_kind, alignment)
    if sel.empty:
        raise ValueError(f"no path rows for pair_type={pair_type!r}, path_kind={path_kind!r}, "
                         f"alignment={alignment!r}")
    sets = order_values(sel["eval_set"], EVAL_SET_ORDER)
    n_pairs = sel["task_id"].nunique()
    fig, axes = plt.subplots(2, len(sets), figsize=(3.2 * len(sets), 5.6), sharex=True,
                             squeeze=False)
    for j, eval_set in enumerate(sets):
        rows = sel[sel["eval_set"] == eval_set]
        for i, metric in enumerate(("loss", "acc")):
            ax = axes[i, j]
            stats = rows.groupby("alpha")[metric].agg(["mean", "min", "max", "std"]).sort_index()
            alpha = stats.index.to_numpy(dtype=float)
            if band == "minmax":
                low, high, band_label = stats["min"], stats["max"], "min–max"
            else:
                spread = stats["std"].fillna(0.0)
                low, high, band_label = stats["mean"] - spread, stats["mean"] + spread, "± std"
            ax.fill_between(alpha, low, high, alpha=0.25, color=f"C{i}", label=band_label)
            ax.plot(alpha, stats["mean"], marker="o", ms=3, color=f"C{i}",
                    label=f"mean of {n_pairs}")
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(eval_set)
            else:
                ax.set_xlabel("alpha (0 = endpoint A, 1 = endpoint B)")
                ax.set_ylim(-0.02, 1.02)
            if j == 0:
                ax.set_ylabel("loss" if metric == "loss" else "accuracy")
                ax.legend(fontsize=8, loc="best")
    fig.suptitle(path_title(pair_type, path_kind, alignment))
    fig.tight_layout()
    return fig


def _category(row) -> str:
    label = f"{row.pair_type}\n{row.path_kind}"
    if isinstance(row.alignment, str):
        label += f" ({row.alignment})"
    return label


def plot_barriers(barriers: pd.DataFrame, metric: str = "loss", definition: str = "chord") -> Figure:
    """Distribution of one barrier (default: the loss chord barrier) per pair type and path kind:
    a box plot with the individual values on top, one panel per eval set."""
    sel = barriers[(barriers["metric"] == metric) & (barriers["definition"] == definition)]
    if sel.empty:
        raise ValueError(f"no barrier rows with metric={metric!r}, definition={definition!r}")
    sel = sel.assign(category=[_category(r) for r in sel.itertuples(index=False)])
    categories = sorted(sel["category"].unique())
    sets = order_values(sel["eval_set"], EVAL_SET_ORDER)
    panel_w = max(3.0, 0.8 * len(categories) + 1.0)
    ncols = min(2, len(sets))
    nrows = -(-len(sets) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols, 4.4 * nrows), sharey=True,
                             squeeze=False)
    for ax in axes.flat[len(sets):]:
        ax.set_visible(False)
    rng = np.random.default_rng(0)
    for j, eval_set in enumerate(sets):
        ax = axes.flat[j]
        data = [sel[(sel["eval_set"] == eval_set) & (sel["category"] == c)]["value"].dropna()
                .to_numpy(dtype=float) for c in categories]
        positions = np.arange(1, len(categories) + 1)
        ax.boxplot([d if d.size else [np.nan] for d in data], positions=positions, widths=0.5,
                   showfliers=False)
        for k, d in enumerate(data):
            ax.scatter(positions[k] + rng.uniform(-0.12, 0.12, d.size), d, s=14, alpha=0.8,
                       color=f"C{k % 10}", zorder=3)
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(positions, categories, rotation=45, ha="right", fontsize=8)
        ax.set_title(eval_set)
        ax.grid(axis="y", alpha=0.3)
        if j % ncols == 0:
            ax.set_ylabel(f"{metric} barrier ({definition})")
    fig.suptitle(f"{metric} barrier ({definition}) per pair type and path")
    fig.tight_layout()
    return fig


def plot_finetune(evaluations: pd.DataFrame, tasks: pd.DataFrame | None = None) -> Figure:
    """Grouped bars: accuracy on each eval set (bars) per model/method (groups), one panel per cue
    proportion; error bars are the std over seeds."""
    long = finetune_long(evaluations, tasks)
    if long.empty:
        raise ValueError("no pretrain/finetune evaluation rows to plot")
    props = sorted(long["cue_proportion"].unique())
    sets = order_values(long["eval_set"], EVAL_SET_ORDER)
    rows = list(dict.fromkeys(long["row"]))
    panel_w = max(3.5, 1.1 * len(rows) + 1.0)
    fig, axes = plt.subplots(1, len(props), figsize=(panel_w * len(props), 4.4), sharey=True,
                             squeeze=False)
    width = 0.8 / len(sets)
    for j, p in enumerate(props):
        ax = axes[0, j]
        cell = long[long["cue_proportion"] == p].set_index(["row", "eval_set"])
        x = np.arange(len(rows))
        for k, eval_set in enumerate(sets):
            means = [cell["mean"].get((r, eval_set), np.nan) for r in rows]
            stds = [cell["std"].get((r, eval_set), np.nan) for r in rows]
            ax.bar(x + (k - (len(sets) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
                   label=eval_set, color=f"C{k}")
        ax.set_xticks(x, rows, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"cue proportion {p:.0%}")
        ax.grid(axis="y", alpha=0.3)
        if j == 0:
            ax.set_ylabel("accuracy")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle("Accuracy on counterfactual sets after fine-tuning (mean ± std over seeds)")
    fig.tight_layout()
    fig.legend(handles, labels, title="eval set", fontsize=8, loc="center left",
               bbox_to_anchor=(1.0, 0.5))
    return fig
