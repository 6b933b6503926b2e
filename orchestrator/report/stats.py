"""Connectivity statistics and report tables: barrier summaries with Student-t intervals, facets by
swept settings, and the paper's Table 1 (fine-tuning accuracy on each counterfactual set).

Intervals. The pairs of one pair type share no model (graph.py plans disjoint pairs), so their
barriers are independent draws and a t-interval of their mean has its nominal coverage even for a
handful of pairs, where a percentile bootstrap of 3 values is about [min, max] and covers far less
(tests/orchestrator/report/test_stats.py simulates both). `n` is the number of pairs (or models) behind
each statistic.

Evaluation sets, fine-tuning methods and class counts are the `tasks/` registries, imported when
first needed (they pull in torch; the figure workers that import this module never need them).

Why one module: every interval and table the report prints comes from here, so a statistic is defined
once for the report, the claims and the API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from orchestrator import vocab
from tasks.settings.data import DATASETS, EVAL_SETS
from tasks.settings.finetune import FINETUNE_METHOD_NAMES

GROUP_KEYS = ("pair_type", "path_kind", "alignment", "eval_set", "metric", "definition")
# Added to the grouping when present in the barriers table with at least one value, so a sweep over
# several datasets or models never mixes them.
EXTRA_GROUP_KEYS = ("dataset", "model", "cue_proportion")
SUMMARY_COLUMNS = ("n", "mean", "std", "ci_low", "ci_high")
PRETRAINED_NOCUE = "pretrained (no cue)"
PRETRAINED_CUE = "pretrained (cue)"
MISSING = "—"


# ----------------------------------------------------------------------------------------------
# The tasks/ registries
# ----------------------------------------------------------------------------------------------

def row_order() -> tuple[str, ...]:
    """Rows of Table 1: the pretrained references, then the fine-tuning methods."""
    return (PRETRAINED_NOCUE, PRETRAINED_CUE, *FINETUNE_METHOD_NAMES)


def chance(datasets, paths: pd.DataFrame | None = None) -> float | None:
    """1 / number of classes of the dataset(s) named (one class count among them), else None. A dataset of
    your own (not built in) has the class count its path tasks used: `paths` rows on randimg hold
    acc − 1/K as `reliance_randimg` (`tasks.paths.cue_reliance`), so K is read back from them."""
    counts = {DATASETS[d].num_classes if d in DATASETS else recorded_classes(paths, d)
              for d in pd.unique(pd.Series(list(datasets)).dropna())}
    return 1.0 / counts.pop() if len(counts) == 1 and None not in counts else None


def recorded_classes(paths: pd.DataFrame | None, dataset: str) -> int | None:
    """The class count `dataset`'s path tasks used (one for all of its rows), else None."""
    needed = {"dataset", "eval_set", "acc", "reliance_randimg"}
    if paths is None or paths.empty or not needed <= set(paths.columns):
        return None
    rows = paths[(paths["dataset"] == dataset) & (paths["eval_set"] == "randimg")]
    gap = (rows["acc"].to_numpy(dtype=float) - rows["reliance_randimg"].to_numpy(dtype=float))
    gap = gap[np.isfinite(gap) & (gap > 0)]
    counts = set(np.rint(1.0 / gap).astype(int).tolist())
    return counts.pop() if len(counts) == 1 and min(counts) >= 2 else None


# ----------------------------------------------------------------------------------------------
# Intervals and summaries
# ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def t_quantile(level: float, df: int) -> float:
    """The (1 + level) / 2 quantile of Student's t with `df` degrees of freedom."""
    from scipy import stats as scipy_stats

    return float(scipy_stats.t.ppf(0.5 + level / 2, df))


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of independent `values`: mean ± t_{(1+level)/2, n-1} s / sqrt(n);
    (nan, nan) for fewer than 2 values (no spread to estimate)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n < 2:
        return math.nan, math.nan
    mean, sem = float(values.mean()), float(values.std(ddof=1)) / math.sqrt(n)
    half = t_quantile(float(level), n - 1) * sem
    return mean - half, mean + half


class Estimate(NamedTuple):
    """A mean over n independent values with its 95% t-interval (NaN where n < 2)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, values, level: float = 0.95, floor: float = 0.0) -> "Estimate":
        """`floor`: the measure's resolution (an accuracy's: one image), the least spread its interval is built
        with, as the claims' comparisons are (`comparisons.compare`); the std shown stays the values' own."""
        vals = np.asarray(values, dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        n = int(vals.size)
        std = float(vals.std(ddof=1)) if n > 1 else math.nan
        low, high = t_interval(vals, level)
        if n > 1 and std < floor:
            half = t_quantile(float(level), n - 1) * floor / math.sqrt(n)
            low, high = float(vals.mean()) - half, float(vals.mean()) + half
        return cls(n, float(vals.mean()) if n else math.nan, std, low, high)

    def without_interval(self) -> "Estimate":
        """The same mean, no interval: for values that are not independent (a population's pairs share models)."""
        return self._replace(ci_low=math.nan, ci_high=math.nan)

    def text(self, digits: int = 3, scale: float = 1.0, unit: str = "", within: tuple[float, float] | None = None) -> str:
        """`within`: the range the true mean lies in (an accuracy's [0, 1]); the interval shown is cut to it,
        which keeps its coverage (a t interval of 3 accuracies can reach past 100%)."""
        if not self.n:
            return MISSING
        low, high = (self.ci_low, self.ci_high) if within is None else \
            (max(self.ci_low, within[0]), min(self.ci_high, within[1]))
        ci = "" if math.isnan(self.ci_low) else f" [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"
        return f"{scale * self.mean:.{digits}f}{unit}{ci} (n = {self.n})"


def group_keys(df: pd.DataFrame, keys: Sequence[str] = GROUP_KEYS, swept: Sequence[str] | None = None) -> list[str]:
    """`keys` plus the EXTRA_GROUP_KEYS that the table fills, plus the swept setting columns: `swept`
    when given, else every `<section>.<field>` column that takes several values in the table."""
    extra = [k for k in EXTRA_GROUP_KEYS if k in df.columns and df[k].notna().any()]
    if swept is None:
        swept = [c for c in df.columns if "." in c and df[c].nunique(dropna=True) > 1]
    return [k for k in keys if k in df.columns] + extra + [c for c in swept if c in df.columns]


def summarize(barriers: pd.DataFrame, keys: Sequence[str] = GROUP_KEYS, value: str = "value",
              level: float = 0.95, swept: Sequence[str] | None = None) -> pd.DataFrame:
    """Group barrier values by `keys` (plus dataset/model/cue_proportion and swept settings where
    they vary) and give n, mean, std (ddof=1; NaN when n = 1), ci_low, ci_high (`t_interval`; NaN
    when n = 1, and for a population, whose pairs share models and are not independent). NaN values
    are left out (n counts the rest). A row whose swept column is null (a task no axis affects) forms
    its own group: it belongs to every value of the axis."""
    by = group_keys(barriers, keys, swept)
    columns = [*by, *SUMMARY_COLUMNS]
    if barriers.empty:
        return pd.DataFrame(columns=columns)
    out = []
    shared = by.index("pair_type") if "pair_type" in by else None
    for key, group in barriers.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        est = Estimate.of(group[value], level)
        out.append([*key, *(est.without_interval() if shared is not None and key[shared] == vocab.POPULATION
                             else est)])
    return pd.DataFrame(out, columns=columns)


# ----------------------------------------------------------------------------------------------
# Facets: one view per combination of swept values
# ----------------------------------------------------------------------------------------------

def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def proportion_text(p) -> str:
    """A cue proportion as a percent with the digits it needs: 0.8 -> "80%", 0.371 -> "37.1%", so two
    proportions of one sweep never share a label (the planner refuses two that cue the same samples)."""
    return f"{100 * float(p):.6g}%"


def facet_label(combo: Mapping[str, object]) -> str:
    """`finetune.lam = 3, finetune.lr = 0.02` ("" without swept settings)."""
    return ", ".join(f"{k} = {_show(v)}" for k, v in combo.items())


def swept_combos(frames: Sequence[pd.DataFrame], swept: Sequence[str]) -> list[dict]:
    """Every combination of swept values the rows hold: the distinct tuples of rows that set every
    swept column; where no row sets them all (axes of different task kinds), the grid of each
    column's values. [{}] without swept columns."""
    keys = [k for k in swept if any(k in f.columns and f[k].notna().any() for f in frames)]
    if not keys:
        return [{}]
    full = [f[keys].dropna().drop_duplicates() for f in frames if set(keys) <= set(f.columns)]
    full = pd.concat(full, ignore_index=True).drop_duplicates() if full else pd.DataFrame(columns=keys)
    if full.empty:
        values = [sorted({v for f in frames if k in f.columns for v in f[k].dropna()}) for k in keys]
        index = pd.MultiIndex.from_product(values, names=keys)
        full = index.to_frame(index=False)
    full = full.sort_values(keys).reset_index(drop=True)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in zip(keys, row)}
            for row in full.itertuples(index=False)]


def by_model(frames: Sequence[pd.DataFrame], swept: Sequence[str]) -> list[str]:
    """The keys of a table or figure that pools a sweep's models (Table 1, the barrier distributions):
    `model` first where the frames hold several (two architectures never share a mean), then `swept`."""
    several = any("model" in f.columns and f["model"].nunique(dropna=True) > 1 for f in frames)
    return (["model"] if several else []) + list(swept)


def facet(df: pd.DataFrame, combo: Mapping[str, object]) -> pd.DataFrame:
    """The rows of one combination: those whose swept columns equal its values or are null (a task
    that no axis affects belongs to every value)."""
    mask = np.ones(len(df), dtype=bool)
    for key, value in combo.items():
        if key in df.columns:
            mask &= (df[key].isna() | (df[key] == value)).to_numpy()
    return df[mask]


# ----------------------------------------------------------------------------------------------
# Orders
# ----------------------------------------------------------------------------------------------

def order_values(values, order: Sequence[str]) -> list:
    """Distinct non-null `values`: those named in `order` first, in that order, then the rest sorted."""
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.unique()       # a column of 10^6 rows: distinct values first, in Arrow/NumPy
    present = [v for v in pd.unique(pd.Series(list(values), dtype=object)) if v is not None and v == v]
    return [v for v in order if v in present] + sorted(v for v in present if v not in order)


def pair_sort_key(pair_type: str, method_order: Sequence[str] = ()) -> tuple:
    """Main pairs in `vocab.PAIRS` order, each followed by its controls (designs in vocab order),
    fine-tuning pairs by `method_order`; unknown pair types last."""
    text = str(pair_type)
    prefix = vocab.PRETRAINED_FT + ":"
    if text.startswith(prefix):
        method = text[len(prefix):]
        rank = list(method_order).index(method) if method in method_order else len(method_order)
        return (vocab.PAIRS.index(vocab.PRETRAINED_FT), rank, 0, text)
    try:
        pair, design, epoch = vocab.parse_pair_type(text)
    except ValueError:
        return (len(vocab.PAIRS), 0, 0, text)
    return (vocab.PAIRS.index(pair), vocab.PAIR_DESIGNS[pair].index(design), epoch or 0, text)


def order_pairs(values, method_order: Sequence[str] = ()) -> list[str]:
    present = order_values(values, ())
    return sorted(present, key=lambda p: pair_sort_key(p, method_order))


def varying_labels(df: pd.DataFrame) -> list[str]:
    """The model and cue-proportion labels worth a column: several models; several cue proportions
    above 0 (0 is the no-cue pairs' own label, not a setting that varies)."""
    out = ["model"] if "model" in df.columns and df["model"].nunique(dropna=True) > 1 else []
    if "cue_proportion" in df.columns and df.loc[df["cue_proportion"] > 0, "cue_proportion"].nunique() > 1:
        out.append("cue_proportion")
    return out


def path_variant(path_kind, alignment) -> str:
    """`linear`, `quadratic`, `aligned (activation)`: a path kind with its alignment."""
    return f"{path_kind} ({alignment})" if isinstance(alignment, str) else str(path_kind)


def path_variants(frame: pd.DataFrame) -> np.ndarray:
    """`path_variant` of every row of `frame` (its `path_kind` and `alignment`), computed once per
    distinct pair of values instead of once per row (a paths table holds 10^6 rows at 10^5 tasks)."""
    return per_values(frame["path_kind"], frame["alignment"], path_variant)


def per_values(first: pd.Series, second: pd.Series | None, fn) -> np.ndarray:
    """`fn(a)` (or `fn(a, b)`) of every row, computed once per distinct value (pair of values): what a
    Python loop over the rows gives, without the loop. A missing value reaches `fn` as the column holds
    it (None, NaN or pd.NA)."""
    columns = [_distinct(first)] + ([_distinct(second)] if second is not None else [])
    shape = tuple(len(values) for _codes, values in columns)
    table = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        table[index] = fn(*(values[i] for i, (_codes, values) in zip(index, columns)))
    if not len(first):
        return np.empty(0, dtype=object)
    return table[tuple(codes for codes, _values in columns)]


def _distinct(column: pd.Series) -> tuple[np.ndarray, list]:
    """Codes of every row and the distinct values they index, a missing value as the column holds it."""
    codes, uniques = pd.factorize(column)      # in the column's own Arrow/NumPy form: no Python object per row
    uniques = list(np.asarray(uniques, dtype=object))
    missing = codes < 0
    if missing.any():
        codes = np.where(missing, len(uniques), codes)
        uniques.append(pd.Series(column).iloc[[int(np.argmax(missing))]].to_numpy(dtype=object)[0])
    return codes, uniques


def variant_sort_key(variant: str) -> tuple:
    kind, _, rest = variant.partition(" ")
    return (vocab.PATH_KINDS.index(kind) if kind in vocab.PATH_KINDS else len(vocab.PATH_KINDS), rest)


# ----------------------------------------------------------------------------------------------
# Text tables
# ----------------------------------------------------------------------------------------------

def _cell(value, digits: int) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, (float, np.floating)):
        return MISSING if math.isnan(value) else f"{value:.{digits}f}"
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
    return "\n".join([line(header), rule, *[line(r) for r in body]])


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

def with_labels(evaluations: pd.DataFrame, tasks: pd.DataFrame | None) -> pd.DataFrame:
    """Fill label columns missing from evaluations from the tasks table; drop rows of tasks whose
    latest status is not finished."""
    ev = evaluations.copy()
    if tasks is not None and not tasks.empty:
        labels = tasks.drop_duplicates("task_id", keep="last").set_index("task_id")
        position = labels.index.get_indexer(ev["task_id"])       # once (10^6 curve rows: ~0.2 s a lookup)
        for col in ("kind", "cue_proportion", "seed", "method", "dataset", "model", "status"):
            if col in labels.columns and not (col in ev.columns and ev[col].notna().all()):   # (else nothing to fill)
                from_tasks = pd.Series(pd.api.extensions.take(labels[col].array, position, allow_fill=True),
                                       index=ev.index, name=col)     # `map`: null where the task has no row
                ev[col] = ev[col].where(ev[col].notna(), from_tasks) if col in ev.columns else from_tasks
        if "status" in ev.columns:
            ev = ev[ev["status"].isna() | (ev["status"] == vocab.FINISHED)]
    for col in ("kind", "cue_proportion", "method", "seed"):
        if col not in ev.columns:
            ev[col] = None
    return ev


def is_no_cue(cue_proportion) -> bool:
    return cue_proportion is None or cue_proportion != cue_proportion or cue_proportion == 0


def row_label(kind, method, cue_proportion) -> str | None:
    if kind == vocab.PRETRAIN:
        return PRETRAINED_NOCUE if is_no_cue(cue_proportion) else PRETRAINED_CUE
    if kind == vocab.FINETUNE and isinstance(method, str):
        return method
    return None


def _task_proportions(tasks: pd.DataFrame | None) -> list[float]:
    """Cue proportions (> 0) of the fine-tuning tasks recorded in the tasks table."""
    if tasks is None or tasks.empty or "kind" not in tasks.columns or "cue_proportion" not in tasks:
        return []
    ft = tasks[tasks["kind"] == vocab.FINETUNE]["cue_proportion"].dropna()
    return [float(p) for p in ft if p > 0]


def finetune_long(evaluations: pd.DataFrame, tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long form of Table 1: one row per (row, cue_proportion, eval_set) with n, mean, std of the
    accuracy over models (a fine-tuning method's: one per seed; a pretrained row's: every model of its
    kind). The no-cue pretrained model is repeated under every cue proportion column (those of the
    evaluations and of the fine-tuning tasks) as a reference."""
    columns = ["row", "cue_proportion", "eval_set", "n", "mean", "std"]
    if evaluations.empty:
        return pd.DataFrame(columns=columns)
    ev = with_labels(evaluations, tasks)
    ev = ev.assign(row=[row_label(k, m, p) for k, m, p in zip(ev["kind"], ev["method"], ev["cue_proportion"])])
    ev = ev[ev["row"].notna()]
    if ev.empty:
        return pd.DataFrame(columns=columns)
    proportions = {float(p) for p in ev["cue_proportion"].dropna() if p > 0}
    proportions = sorted(proportions | set(_task_proportions(tasks))) or [0.0]
    ref = ev[ev["row"] == PRETRAINED_NOCUE]
    ev = pd.concat([ev[ev["row"] != PRETRAINED_NOCUE], *[ref.assign(cue_proportion=p) for p in proportions]],
                   ignore_index=True)
    ev["cue_proportion"] = ev["cue_proportion"].astype(float)
    grouped = ev.groupby(["row", "cue_proportion", "eval_set"], sort=False)["acc"]
    out = grouped.agg(n="count", mean="mean", std=lambda s: s.std(ddof=1) if len(s) > 1 else 0.0)
    out = out.reset_index()[columns]
    row_rank = {r: i for i, r in enumerate(order_values(out["row"], row_order()))}
    set_rank = {e: i for i, e in enumerate(order_values(out["eval_set"], EVAL_SETS))}
    out = out.assign(_r=out["row"].map(row_rank), _s=out["eval_set"].map(set_rank))
    return out.sort_values(["_r", "cue_proportion", "_s"]).drop(columns=["_r", "_s"]).reset_index(drop=True)


class FinetuneTable(NamedTuple):
    text: pd.DataFrame    # "mean ± std (n)" strings, "—" where missing
    long: pd.DataFrame    # row, cue_proportion, eval_set, n, mean, std (accuracy as a fraction)


def finetune_table(evaluations: pd.DataFrame, tasks: pd.DataFrame | None = None) -> FinetuneTable:
    """The paper's Table 1. `text` has one row per model (pretrained no-cue and cue references
    first, then fine-tuning methods) and one column per (cue proportion, eval set), cells
    "mean ± std" accuracy in percent over models (the mean alone for one), "—" where missing,
    and an `n` column (models per
    cell, a range where they differ); `long` is `finetune_long`. Methods and proportions named in
    the tasks table (e.g. failed tasks) appear with "—" cells."""
    long = finetune_long(evaluations, tasks)
    rows = list(long["row"].unique()) if not long.empty else []
    props = sorted(set(long["cue_proportion"])) if not long.empty else []
    sets = list(long["eval_set"].unique()) if not long.empty else []
    props += _task_proportions(tasks)
    if tasks is not None and not tasks.empty and {"kind", "method"} <= set(tasks.columns):
        rows += list(tasks[tasks["kind"] == vocab.FINETUNE]["method"].dropna())
    rows = order_values(rows, row_order())
    props = sorted(set(props))
    sets = order_values(sets, EVAL_SETS) or list(EVAL_SETS)
    lookup = {(r.row, r.cue_proportion, r.eval_set): r for r in long.itertuples(index=False)}
    text_rows = []
    for row in rows:
        cells, ns = {"method": row}, set()
        for p in props:
            for s in sets:
                hit = lookup.get((row, p, s))
                cells[f"{proportion_text(p)} {s}"] = MISSING if not hit else f"{100 * hit.mean:.1f}" + (
                    f" ± {100 * hit.std:.1f}" if hit.n > 1 else "")
                ns |= {int(hit.n)} if hit else set()
        cells["n"] = MISSING if not ns else (str(min(ns)) if len(ns) == 1 else f"{min(ns)}–{max(ns)}")
        text_rows.append(cells)
    columns = ["method"] + [f"{proportion_text(p)} {s}" for p in props for s in sets] + ["n"]
    return FinetuneTable(pd.DataFrame(text_rows, columns=columns), long)


# ----------------------------------------------------------------------------------------------
# Mechanism along the path
# ----------------------------------------------------------------------------------------------

MECHANISM_COLUMNS = ("agree_a", "agree_b", "reliance_randimg", "reliance_randcue")


def mechanism_table(paths: pd.DataFrame, alphas: Sequence[float] = (0.0, 0.5, 1.0), eval_set: str | None = None,
                    swept: Sequence[str] | None = None) -> pd.DataFrame:
    """Per pair type and path (and model, cue proportion, swept settings where they vary): n pairs,
    and at each of `alphas` (the nearest evaluated alpha) the mean over pairs of the prediction
    agreement with endpoint A and B on `eval_set` (default: the first evaluation set) and of the two
    cue-reliance indices, with their 95% t-intervals (`<column>@<alpha>`, `..._low`, `..._high`)."""
    if paths.empty or not any(c in paths.columns and paths[c].notna().any() for c in MECHANISM_COLUMNS):
        return pd.DataFrame()
    eval_set = eval_set or order_values(paths["eval_set"], EVAL_SETS)[0]
    rows = paths[paths["eval_set"] == eval_set]
    by = group_keys(rows, ("pair_type", "path_kind", "alignment"), swept)
    out = []
    for key, group in rows.groupby(by, dropna=False, sort=True):
        record = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        record["n"] = int(group["task_id"].nunique())
        evaluated = np.unique(group["alpha"].to_numpy(dtype=float))
        for alpha in alphas:
            nearest = evaluated[np.argmin(np.abs(evaluated - alpha))]
            at = group[group["alpha"] == nearest]
            for column in MECHANISM_COLUMNS:
                est = Estimate.of(at[column]) if column in at.columns else Estimate.of([])
                name = f"{column}@{alpha:g}"
                record.update({name: est.mean, f"{name}_low": est.ci_low, f"{name}_high": est.ci_high})
        out.append(record)
    df = pd.DataFrame(out)
    df = df.assign(_p=[pair_sort_key(p, FINETUNE_METHOD_NAMES) for p in df["pair_type"]],
                   _v=[variant_sort_key(v) for v in path_variants(df)])
    return df.sort_values(["_p", "_v"]).drop(columns=["_p", "_v"]).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# Endpoints on the path vs the trained models (BatchNorm re-estimation drift)
# ----------------------------------------------------------------------------------------------

def path_endpoints(paths: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The paths table's rows of each path's endpoints, BatchNorm re-estimated: ("A", "endpoint_a", the rows at
    the lowest alpha) and ("B", "endpoint_b", the rows at the highest)."""
    lo, hi = paths["alpha"].min(), paths["alpha"].max()
    return [("A", "endpoint_a", paths[paths["alpha"] == lo]), ("B", "endpoint_b", paths[paths["alpha"] == hi])]


def endpoint_drift(paths: pd.DataFrame, evaluations: pd.DataFrame, swept: Sequence[str] | None = None) -> pd.DataFrame:
    """How far the path's endpoints (alpha 0 and 1, BatchNorm re-estimated on `paths.bn_data`) are from
    the trained models (their own BatchNorm statistics; the `evaluations` of the endpoint tasks, on the
    same counterfactual sets): per pair type, path, endpoint (A / B) and eval set, n pairs and the mean
    [interval] of loss(path) − loss(trained) and of acc(path) − acc(trained). An aligned path's B is
    the permuted model, which computes the trained B's function."""
    columns = ["pair_type", "path", "endpoint", "eval_set", "n", "loss_drift", "loss_low", "loss_high",
               "acc_drift", "acc_low", "acc_high"]
    if paths.empty or evaluations.empty or "endpoint_a" not in paths:
        return pd.DataFrame(columns=columns)
    trained = evaluations.drop_duplicates(["task_id", "eval_set"], keep="last").set_index(["task_id", "eval_set"])
    rows = []
    for endpoint, column, at in path_endpoints(paths):
        key = pd.MultiIndex.from_arrays([at[column], at["eval_set"]])
        found = key.isin(trained.index)
        at, key = at[found], key[found]
        if at.empty:
            continue
        ref = trained.loc[key]
        rows.append(at.assign(endpoint=endpoint, loss_d=at["loss"].to_numpy() - ref["loss"].to_numpy(),
                              acc_d=at["acc"].to_numpy() - ref["acc"].to_numpy()))
    if not rows:
        return pd.DataFrame(columns=columns)
    both = pd.concat(rows, ignore_index=True)
    both = both.assign(path=path_variants(both))
    # several models or cue proportions: one row each (pooled, a drift of one would hide in another's)
    by = ["pair_type", "path", "endpoint", "eval_set", *varying_labels(both),
          *[c for c in (swept or ()) if c in both.columns]]
    out = []
    for key, group in both.groupby(by, dropna=False, sort=False):
        loss, acc = Estimate.of(group["loss_d"]), Estimate.of(group["acc_d"])
        if key[0] == vocab.POPULATION:        # its pairs share models: not independent, no interval
            loss, acc = loss.without_interval(), acc.without_interval()
        out.append([*key, loss.n, loss.mean, loss.ci_low, loss.ci_high, acc.mean, acc.ci_low, acc.ci_high])
    df = pd.DataFrame(out, columns=[*by, *columns[4:]])
    order = [pair_sort_key(p, FINETUNE_METHOD_NAMES) + variant_sort_key(v) for p, v in zip(df["pair_type"], df["path"])]
    return df.assign(_o=order).sort_values(["_o", "endpoint", "eval_set"], kind="stable").drop(columns="_o") \
        .reset_index(drop=True)
