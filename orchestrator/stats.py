"""Connectivity statistics and report tables: barrier summaries with Student-t intervals, and the
paper's Table 1 (fine-tuning accuracy on each counterfactual set by cue proportion).

Intervals. The pairs of one pair type share no model (graph.py plans disjoint pairs), so their
barriers are independent draws and a t-interval of their mean has its nominal coverage even for a
handful of pairs, where a percentile bootstrap of 3 values is about [min, max] and covers far less
(tests/orchestrator/test_stats.py simulates both). `n` is the number of pairs behind each statistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from scipy import stats as scipy_stats

from orchestrator import vocab
from tasks.data import EVAL_SETS
from tasks.finetune import FINETUNE_METHODS

GROUP_KEYS = ("pair_type", "path_kind", "alignment", "eval_set", "metric", "definition")
# Added to the grouping when present in the barriers table with at least one value, so a sweep over
# several datasets or models never mixes them.
EXTRA_GROUP_KEYS = ("dataset", "model", "cue_proportion")
SUMMARY_COLUMNS = ("n", "mean", "std", "ci_low", "ci_high")
EVAL_SET_ORDER = EVAL_SETS
METHOD_ORDER = tuple(FINETUNE_METHODS)
PRETRAINED_NOCUE = "pretrained (no cue)"
PRETRAINED_CUE = "pretrained (cue)"
ROW_ORDER = (PRETRAINED_NOCUE, PRETRAINED_CUE, *METHOD_ORDER)
MISSING = "—"


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of independent `values`: mean ± t_{(1+level)/2, n-1} s / sqrt(n);
    (nan, nan) for fewer than 2 values (no spread to estimate)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n < 2:
        return math.nan, math.nan
    mean, sem = float(values.mean()), float(values.std(ddof=1)) / math.sqrt(n)
    half = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * sem
    return mean - half, mean + half


def group_keys(df: pd.DataFrame, keys: Sequence[str] = GROUP_KEYS) -> list[str]:
    """`keys` plus the EXTRA_GROUP_KEYS that the table actually fills, plus every setting column
    (`<section>.<field>`) that takes several values in it (the swept ones)."""
    extra = [k for k in EXTRA_GROUP_KEYS if k in df.columns and df[k].notna().any()]
    swept = [c for c in df.columns if "." in c and df[c].nunique(dropna=True) > 1]
    return [k for k in keys if k in df.columns] + extra + swept


def summarize(barriers: pd.DataFrame, keys: Sequence[str] = GROUP_KEYS, value: str = "value",
              level: float = 0.95) -> pd.DataFrame:
    """Group barrier values by `keys` (plus dataset/model/cue_proportion and swept settings where
    they vary) and give n, mean, std (ddof=1; NaN when n = 1), ci_low, ci_high (`t_interval`; NaN
    when n = 1). NaN values are left out (n counts the rest)."""
    by = group_keys(barriers, keys)
    columns = [*by, *SUMMARY_COLUMNS]
    if barriers.empty:
        return pd.DataFrame(columns=columns)
    out = []
    for key, group in barriers.groupby(by, dropna=False, sort=True):
        vals = group[value].to_numpy(dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        n = int(vals.size)
        mean = float(vals.mean()) if n else math.nan
        std = float(vals.std(ddof=1)) if n > 1 else math.nan
        low, high = t_interval(vals, level)
        key = key if isinstance(key, tuple) else (key,)
        out.append([*key, n, mean, std, low, high])
    return pd.DataFrame(out, columns=columns)


# ----------------------------------------------------------------------------------------------
# Text tables
# ----------------------------------------------------------------------------------------------

def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    if value is pd.NA or value is pd.NaT:
        return MISSING
    return str(value)


def _cells(df: pd.DataFrame, digits: int) -> tuple[list[str], list[list[str]]]:
    header = [str(c) for c in df.columns]
    body = [[_cell(v, digits) for v in row] for row in df.itertuples(index=False, name=None)]
    return header, body


def format_table(df: pd.DataFrame, digits: int = 4) -> str:
    """Fixed-width text table for the terminal: text left-aligned, numbers right-aligned,
    missing values as "—"."""
    header, body = _cells(df, digits)
    if not header:
        return "(empty)"
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(cells, widths, numeric)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *[line(r) for r in body]] or ["(empty)"])


def format_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """GitHub-flavoured Markdown table (no extra dependency)."""
    header, body = _cells(df, digits)
    if not header:
        return "_(empty)_"
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    esc = [[c.replace("|", "\\|") for c in row] for row in [header, *body]]
    rule = ["---:" if num else "---" for num in numeric]
    lines = ["| " + " | ".join(esc[0]) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Table 1: fine-tuning
# ----------------------------------------------------------------------------------------------

def order_values(values, order: Sequence[str]) -> list:
    """Distinct non-null `values`: those named in `order` first, in that order, then the rest sorted."""
    present = [v for v in pd.unique(pd.Series(list(values))) if v is not None and v == v]
    return [v for v in order if v in present] + sorted(v for v in present if v not in order)


def _with_labels(evaluations: pd.DataFrame, tasks: pd.DataFrame | None) -> pd.DataFrame:
    """Fill label columns missing from evaluations from the tasks table; drop failed tasks."""
    ev = evaluations.copy()
    if tasks is not None and not tasks.empty:
        labels = tasks.drop_duplicates("task_id").set_index("task_id")
        for col in ("kind", "cue_proportion", "seed", "method", "dataset", "model", "status"):
            if col in labels.columns:
                from_tasks = ev["task_id"].map(labels[col])
                ev[col] = ev[col].where(ev[col].notna(), from_tasks) if col in ev.columns else from_tasks
        if "status" in ev.columns:
            ev = ev[ev["status"].isna() | ev["status"].isin((vocab.FINISHED,))]
    for col in ("kind", "cue_proportion", "method", "seed"):
        if col not in ev.columns:
            ev[col] = None
    return ev


def _row_label(kind, method, cue_proportion) -> str | None:
    if kind == "pretrain":
        no_cue = cue_proportion is None or cue_proportion != cue_proportion or cue_proportion == 0
        return PRETRAINED_NOCUE if no_cue else PRETRAINED_CUE
    if kind == "finetune" and isinstance(method, str):
        return method
    return None


def _task_proportions(tasks: pd.DataFrame | None) -> list[float]:
    """Cue proportions (> 0) of the fine-tuning tasks recorded in the tasks table."""
    if tasks is None or tasks.empty or "kind" not in tasks.columns or "cue_proportion" not in tasks:
        return []
    ft = tasks[tasks["kind"] == "finetune"]["cue_proportion"].dropna()
    return [float(p) for p in ft if p > 0]


def finetune_long(evaluations: pd.DataFrame, tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long form of Table 1: one row per (row, cue_proportion, eval_set) with n, mean, std of the
    accuracy over seeds. The no-cue pretrained model is repeated under every cue proportion
    column (those of the evaluations and of the fine-tuning tasks) as a reference."""
    columns = ["row", "cue_proportion", "eval_set", "n", "mean", "std"]
    if evaluations.empty:
        return pd.DataFrame(columns=columns)
    ev = _with_labels(evaluations, tasks)
    ev = ev.assign(row=[_row_label(k, m, p) for k, m, p in
                        zip(ev["kind"], ev["method"], ev["cue_proportion"])])
    ev = ev[ev["row"].notna()]
    if ev.empty:
        return pd.DataFrame(columns=columns)
    proportions = {float(p) for p in ev["cue_proportion"].dropna() if p > 0}
    proportions = sorted(proportions | set(_task_proportions(tasks))) or [0.0]
    parts = [ev[ev["row"] != PRETRAINED_NOCUE]]
    ref = ev[ev["row"] == PRETRAINED_NOCUE]
    parts += [ref.assign(cue_proportion=p) for p in proportions]
    ev = pd.concat(parts, ignore_index=True)
    ev["cue_proportion"] = ev["cue_proportion"].astype(float)
    grouped = ev.groupby(["row", "cue_proportion", "eval_set"], sort=False)["acc"]
    out = grouped.agg(n="count", mean="mean", std=lambda s: s.std(ddof=1) if len(s) > 1 else 0.0)
    out = out.reset_index()[columns]
    row_rank = {r: i for i, r in enumerate(order_values(out["row"], ROW_ORDER))}
    set_rank = {e: i for i, e in enumerate(order_values(out["eval_set"], EVAL_SET_ORDER))}
    out = out.assign(_r=out["row"].map(row_rank), _s=out["eval_set"].map(set_rank))
    return out.sort_values(["_r", "cue_proportion", "_s"]).drop(columns=["_r", "_s"]) \
        .reset_index(drop=True)


def _percent_cell(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


class FinetuneTable(NamedTuple):
    text: pd.DataFrame    # "mean ± std" strings, "—" where missing
    long: pd.DataFrame    # row, cue_proportion, eval_set, n, mean, std (accuracy as a fraction)


def finetune_table(evaluations: pd.DataFrame, tasks: pd.DataFrame | None = None) -> FinetuneTable:
    """The paper's Table 1. Returns (text, long): `text` has one row per model (pretrained no-cue
    and cue references first, then fine-tuning methods) and one column per (cue proportion,
    eval set), cells "mean ± std" accuracy in percent over seeds, "—" where missing; `long` is
    `finetune_long`. Methods and proportions named in the tasks table (e.g. failed tasks) appear
    with "—" cells."""
    long = finetune_long(evaluations, tasks)
    rows = list(long["row"].unique()) if not long.empty else []
    props = sorted(set(long["cue_proportion"])) if not long.empty else []
    sets = list(long["eval_set"].unique()) if not long.empty else []
    props += _task_proportions(tasks)
    if tasks is not None and not tasks.empty and {"kind", "method"} <= set(tasks.columns):
        rows += list(tasks[tasks["kind"] == "finetune"]["method"].dropna())
    rows = order_values(rows, ROW_ORDER)
    props = sorted(set(props))
    sets = order_values(sets, EVAL_SET_ORDER) or list(EVAL_SET_ORDER)
    lookup = {(r.row, r.cue_proportion, r.eval_set): r for r in long.itertuples(index=False)}
    text_rows = []
    for row in rows:
        cells = {"method": row}
        for p in props:
            for s in sets:
                hit = lookup.get((row, p, s))
                cells[f"{p:.0%} {s}"] = _percent_cell(hit.mean, hit.std) if hit else MISSING
        text_rows.append(cells)
    columns = ["method"] + [f"{p:.0%} {s}" for p in props for s in sets]
    return FinetuneTable(pd.DataFrame(text_rows, columns=columns), long)
