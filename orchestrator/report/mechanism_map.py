"""The mechanism map of a population (`population:` in the spec): the barrier between every two of its
models, clustered, against each model's cue reliance.

Per eval set and path (the metric and definition of the claims' rules), a K × K barrier matrix (a pair
evaluated twice: the mean; chord barriers below 0 count as 0; models missing a pair are left out until
the rest is complete), average-linkage hierarchical clustering (scipy) and connected components at a
threshold set by the sweep's own controls:

    threshold = the upper bound (at the rules' level) of the mean barrier of the same-data pairs from one
                initialisation (X~X:spawn@0, cue~cue:resubset) on the same set and path (else their linear
                path); without them, of the noise floor (X~X:self); the largest value where n = 1.
    clusters  = the average-linkage tree cut at the threshold: two groups of models stay apart when their
                mean barrier is above what the sweep's same-data controls show.
    components = the models linked by barriers at or below the threshold.

The question — do clusters follow the mechanism? — is asked of the reliance groups (acc(randimg) −
chance above `claims.reliance_cut` or not): a permutation test of "the mean barrier within a group is
below the mean barrier across groups" that permutes the groups of *models* (each model is in K − 1
pairs, so pairs are not exchangeable; models are), and the adjusted Rand index between the clusters and
the groups with the same permutations. Claim (e) in `report/claims.py` decides with these.

Why one module: the matrix, its threshold, the clustering and claim (e)'s permutation test are one
analysis whose parts share the model order and the threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from orchestrator import vocab
from orchestrator.report import stats

RELIES, IGNORES = "relies on the cue", "does not"       # the two reliance groups
PERMUTATION_SEED = 20230726                              # the permutations are the same on every report
MODEL_COLUMNS = ("task_id", "kind", "cue_proportion", "method", "seed", "reliance_randimg", "reliance_randcue")


@dataclass(frozen=True)
class Threshold:
    value: float | None
    source: str                 # the pair types it comes from ("" when there is none)
    n: int = 0

    def text(self) -> str:
        if self.value is None:
            return "no threshold: the sweep has no same-data control (X~X:spawn@0, cue~cue:resubset) or noise " \
                   "floor (X~X:self) on this set"
        return f"{self.value:.3f} (upper bound of the mean barrier of {self.source}, n = {self.n})"


@dataclass(frozen=True)
class Permutation:
    """A permutation test: the observed statistic, its null distribution, both one-sided p-values
    (p = (1 + #null ≥ observed) / (1 + #null)), and the smallest p-value the design can give."""
    observed: float
    null: np.ndarray
    p_upper: float
    p_lower: float
    min_p: float
    exact: bool

    @property
    def sd(self) -> float:
        return float(np.std(self.null, ddof=1)) if self.null.size > 1 else math.nan


@dataclass
class MechanismMap:
    """One map: a set, a path, the models (rows in matrix order) and what was found."""
    eval_set: str
    path: str
    metric: str
    definition: str
    models: pd.DataFrame                   # MODEL_COLUMNS + group, cluster, component; matrix order
    matrix: np.ndarray                     # K × K barriers, 0 on the diagonal
    threshold: Threshold
    linkage: np.ndarray | None = None      # scipy's (K − 1) × 4 linkage matrix
    order: list[int] = field(default_factory=list)    # dendrogram leaf order
    left_out: int = 0                      # models left out for missing pairs
    context: dict = field(default_factory=dict)       # model label and swept values
    within_across: Permutation | None = None
    worst: Permutation | None = None       # across minus the larger of the two groups' own within means
    check_worst: Permutation | None = None  # the same on the rules' `check_definition` barriers
    check: Permutation | None = None       # the same test on the rules' `check_definition` barriers
    ari: float = math.nan
    ari_test: Permutation | None = None
    within_extremes: tuple[float, float] = (math.nan, math.nan)   # within-group pairs: lowest acc, highest loss of any
    across_extremes: tuple[float, float] = (math.nan, math.nan)   # pairs across the groups: the same
    within_endpoints: tuple[float, float] = (math.nan, math.nan)  # within-group pairs' endpoints (α 0 or 1): the same
    chance: float | None = None
    cut: float | None = None               # the rules' reliance cut

    @property
    def k(self) -> int:
        return len(self.models)

    def context_label(self) -> str:
        """The model (where the sweep has several) and the swept values of the map."""
        return " · ".join(str(v) if k == "model" else stats.facet_label({k: v}) for k, v in self.context.items())

    def label(self) -> str:
        return " · ".join(x for x in (f"{self.eval_set}, {self.path}", self.context_label()) if x)


# ----------------------------------------------------------------------------------------------
# The matrix, its clusters and components
# ----------------------------------------------------------------------------------------------

def barrier_matrix(pairs: pd.DataFrame, ids: list[str]) -> np.ndarray:
    """K × K barriers between `ids` from rows with endpoint_a, endpoint_b and value (NaN: not measured)."""
    index = {t: i for i, t in enumerate(ids)}
    out = np.full((len(ids), len(ids)), np.nan)
    np.fill_diagonal(out, 0.0)
    if pairs.empty:
        return out
    sel = pairs[pairs["endpoint_a"].isin(index) & pairs["endpoint_b"].isin(index)
                & (pairs["endpoint_a"] != pairs["endpoint_b"])]
    key = [tuple(sorted(p)) for p in zip(sel["endpoint_a"], sel["endpoint_b"])]
    means = pd.Series(sel["value"].to_numpy(dtype=float)).groupby(pd.Series(key, dtype=object)).mean() \
        if len(sel) else pd.Series(dtype=float)
    for (a, b), value in means.items():
        out[index[a], index[b]] = out[index[b], index[a]] = max(float(value), 0.0)
    return out


def complete(matrix: np.ndarray) -> list[int]:
    """Rows of a matrix with missing pairs to keep: the one missing most is left out until none is."""
    keep = list(range(len(matrix)))
    while keep:
        sub = matrix[np.ix_(keep, keep)]
        missing = np.isnan(sub).sum(axis=1)
        if not missing.any():
            break
        keep.pop(int(np.argmax(missing)))
    return keep


def cluster(matrix: np.ndarray, threshold: float | None) -> tuple[np.ndarray | None, list[int], np.ndarray]:
    """Average-linkage tree, its leaf order and its clusters cut at `threshold` (labels 1.., numbered in
    leaf order; every model its own cluster without a threshold)."""
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
    from scipy.spatial.distance import squareform

    k = len(matrix)
    if k < 2:
        return None, list(range(k)), np.ones(k, dtype=int)
    tree = linkage(squareform(matrix, checks=False), method="average")
    order = [int(i) for i in leaves_list(tree)]
    if threshold is None:
        raw = np.arange(1, k + 1)
    else:
        raw = fcluster(tree, t=threshold, criterion="distance")
    return tree, order, _renumber(raw, order)


def components(matrix: np.ndarray, threshold: float | None, order: list[int] | None = None) -> np.ndarray:
    """Connected components of the graph whose edges are the barriers at or below `threshold`."""
    from scipy.sparse.csgraph import connected_components

    k = len(matrix)
    if threshold is None or k == 0:
        return np.arange(1, k + 1)
    _, raw = connected_components((matrix <= threshold) & ~np.eye(k, dtype=bool), directed=False)
    return _renumber(raw, order or list(range(k)))


def _renumber(labels: np.ndarray, order: list[int]) -> np.ndarray:
    """Labels 1.. in the order they first appear along `order` (stable across reports)."""
    seen: dict = {}
    for i in order:
        seen.setdefault(labels[i], len(seen) + 1)
    return np.array([seen[x] for x in labels], dtype=int)


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------

def adjusted_rand(a, b) -> float:
    """Hubert and Arabie's adjusted Rand index of two labelings (1: the same partition; about 0: chance).
    NaN when both are a single group or every item its own (the index is undefined)."""
    a, b = np.asarray(a), np.asarray(b)
    n = a.size
    if n < 2:
        return math.nan
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)
    return _ari_of(table, n)


def _comb2(x):
    return x * (x - 1) / 2.0


def _ari_of(table: np.ndarray, n: int) -> float:
    index = _comb2(table).sum()
    rows, cols = _comb2(table.sum(axis=1)).sum(), _comb2(table.sum(axis=0)).sum()
    expected = rows * cols / _comb2(n)
    top = (rows + cols) / 2.0
    return math.nan if top == expected else float((index - expected) / (top - expected))


def labelings(groups: np.ndarray, n: int, seed: int = PERMUTATION_SEED) -> tuple[np.ndarray, bool]:
    """Relabelings of the models' two groups with the group sizes kept: every one of them (exact)
    when there are at most `n`, else `n` drawn at random (with the observed one among them: p ≥ 1/(n+1))."""
    groups = np.asarray(groups, dtype=bool)
    k, k1 = groups.size, int(groups.sum())
    total = math.comb(k, k1)
    if total <= n:
        out = np.zeros((total, k), dtype=bool)
        for row, chosen in enumerate(combinations(range(k), k1)):
            out[row, list(chosen)] = True
        return out, True
    rng = np.random.default_rng(seed)
    draws = np.argsort(rng.random((n, k)), axis=1)[:, :k1]
    out = np.zeros((n, k), dtype=bool)
    np.put_along_axis(out, draws, True, axis=1)
    return np.vstack([groups[None, :], out]), False


def _p_values(observed: float, null: np.ndarray, groups: np.ndarray, exact: bool) -> Permutation:
    """p-values of `observed` against `null`: every relabeling (`exact`, as `labelings` says), or the observed
    one and random ones (never exact, even when as many as there are relabelings: draws repeat). Every
    statistic here is the same for a relabeling and its mirror image (the two groups swapped, where they are
    of one size): the pooled one and the ARI treat the groups alike, and the worse group's takes the larger
    of the two within means, which a swap only exchanges."""
    k, k1 = groups.size, int(groups.sum())
    total = math.comb(k, k1)
    tol = 1e-12 * max(1.0, abs(observed))
    p_up, p_lo = float(np.mean(null >= observed - tol)), float(np.mean(null <= observed + tol))
    # a relabeling and its mirror image are one partition when the groups are of equal size
    min_p = (2.0 if 2 * k1 == k else 1.0) / total
    return Permutation(observed, null, p_up, p_lo, min_p if exact else max(min_p, 1.0 / null.size), exact)


def within_across(matrix: np.ndarray, groups, n: int = 2000, seed: int = PERMUTATION_SEED) -> Permutation:
    """Mean barrier across the two groups minus mean barrier within them (> 0: the groups are apart),
    tested by relabeling the models (group sizes kept), never the pairs."""
    return group_tests(matrix, groups, n, seed)[0]


def worst_group(matrix: np.ndarray, groups, n: int = 2000, seed: int = PERMUTATION_SEED) -> Permutation:
    """The mean barrier across the groups minus the larger of the two groups' own within means (> 0: *each*
    group is better connected inside than across), with the same relabelings: a large, tight group cannot
    carry it alone, as it can the pooled statistic of `within_across`."""
    return group_tests(matrix, groups, n, seed)[1]


def group_tests(matrix: np.ndarray, groups, n: int = 2000,
                seed: int = PERMUTATION_SEED) -> tuple[Permutation, Permutation]:
    """(`within_across`, `worst_group`) from one pass over the relabelings. Both statistics give a relabeling
    and its mirror image the same value (`_p_values`)."""
    groups = np.asarray(groups, dtype=bool)
    iu = np.triu_indices(groups.size, 1)
    values = matrix[iu]
    perms, exact = labelings(groups, n, seed)
    first, second = perms[:, iu[0]], perms[:, iu[1]]
    across = first != second                                       # (permutations, pairs)
    inside = {g: ~across & (first == g) for g in (True, False)}    # within each group

    def mean(mask: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (mask @ values) / mask.sum(axis=1)
    pooled_null = mean(across) - mean(~across)
    worst_null = np.minimum(*(mean(across) - mean(inside[g]) for g in (True, False)))
    seen_across = groups[iu[0]] != groups[iu[1]]
    seen = {g: ~seen_across & (groups[iu[0]] == g) for g in (True, False)}
    pooled = float(values[seen_across].mean() - values[~seen_across].mean())
    worst = min(float(values[seen_across].mean() - values[seen[g]].mean()) for g in (True, False))
    return (_p_values(pooled, pooled_null, groups, exact),
            _p_values(worst, worst_null, groups, exact))


def ari_test(clusters, groups, n: int = 2000, seed: int = PERMUTATION_SEED) -> tuple[float, Permutation]:
    """The adjusted Rand index of the clusters and the groups, tested with the same relabelings."""
    groups = np.asarray(groups, dtype=bool)
    clusters = np.asarray(clusters)
    perms, exact = labelings(groups, n, seed)
    _, ci = np.unique(clusters, return_inverse=True)
    onehot = np.eye(ci.max() + 1)[ci]                             # (models, clusters)
    k = groups.size
    inside = perms.astype(float) @ onehot                         # (permutations, clusters): group 1 counts
    outside = onehot.sum(axis=0)[None, :] - inside
    null = np.array([_ari_of(np.vstack([i, o]), k) for i, o in zip(inside, outside)])
    observed = adjusted_rand(clusters, groups)
    null = np.where(np.isnan(null), 0.0, null)
    return observed, _p_values(observed if observed == observed else 0.0, null, groups, exact)


# ----------------------------------------------------------------------------------------------
# From the result tables
# ----------------------------------------------------------------------------------------------

def population_models(barriers: pd.DataFrame) -> list[str]:
    """The models of the population: the endpoints of the pairs labelled `population`, in a stable order."""
    if barriers.empty or "pair_type" not in barriers:
        return []
    rows = barriers[barriers["pair_type"] == vocab.POPULATION]
    return sorted(set(rows["endpoint_a"].dropna()) | set(rows["endpoint_b"].dropna()))


def model_table(evaluations: pd.DataFrame, tasks: pd.DataFrame, ids: list[str], chance: float | None) -> pd.DataFrame:
    """One row per model of `ids`: kind, cue proportion, method, seed, and its two reliance indices."""
    ev = stats.with_labels(evaluations, tasks) if not evaluations.empty else evaluations
    rows = []
    labels = tasks.drop_duplicates("task_id", keep="last").set_index("task_id") if not tasks.empty else None
    for task_id in ids:
        own = ev[ev["task_id"] == task_id] if not ev.empty else ev
        acc = dict(zip(own["eval_set"], own["acc"])) if len(own) else {}
        first = own.iloc[0] if len(own) else (labels.loc[task_id] if labels is not None and task_id in labels.index
                                              else None)
        get = (lambda col: first[col] if first is not None and col in first.index else None)
        rows.append({"task_id": task_id, "kind": get("kind"), "cue_proportion": get("cue_proportion"),
                     "method": get("method"), "seed": get("seed"),
                     "reliance_randimg": acc["randimg"] - chance if "randimg" in acc and chance else math.nan,
                     "reliance_randcue": acc["nocue"] - acc["randcue"] if {"nocue", "randcue"} <= set(acc)
                     else math.nan})
    out = pd.DataFrame(rows, columns=list(MODEL_COLUMNS))
    out["cue_proportion"] = pd.to_numeric(out["cue_proportion"], errors="coerce")
    out.attrs["chance"] = chance
    return out


def model_label(row) -> str:
    """`p=0.5 s0 cbft`: how a model is named on the map's axes."""
    p, seed = row["cue_proportion"], row["seed"]
    text = f"p={float(p):g}" if pd.notna(p) else "p=?"
    text += f" s{int(seed)}" if pd.notna(seed) else ""
    method = row["method"]
    return text + (f" {method}" if isinstance(method, str) else "")


def threshold_for(barriers: pd.DataFrame, eval_set: str, path: str, metric: str, definition: str,
                  level: float) -> Threshold:
    """The rule of the module docstring, on the rows of one context."""
    if barriers.empty:
        return Threshold(None, "")
    rows = barriers[(barriers["eval_set"] == eval_set) & (barriers["metric"] == metric)
                    & (barriers["definition"] == definition)]
    rows = rows.assign(path=stats.path_variants(rows))
    types = stats.order_pairs(rows["pair_type"].dropna().unique())

    def designs(wanted) -> list[str]:
        out = []
        for pair_type in types:
            try:
                if wanted(pair_type):
                    out.append(pair_type)
            except ValueError:
                continue
        return out

    # the same-data pairs from one start (as claim (d)'s controls), else the noise floor
    for chosen in (designs(vocab.shares_only_the_start),
                   designs(lambda p: vocab.parse_pair_type(p)[1] == vocab.SELF)):
        for want in (path, vocab.LINEAR):
            values = rows[rows["pair_type"].isin(chosen) & (rows["path"] == want)]["value"].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size:
                est = stats.Estimate.of(values, level)
                bound = est.ci_high if est.n > 1 else float(values.max())
                where = "" if want == path else f", {want} path"
                return Threshold(max(bound, 0.0), ", ".join(chosen) + where, est.n)
    return Threshold(None, "")


def maps(results: dict[str, pd.DataFrame], swept: tuple[str, ...], rules) -> list[MechanismMap]:
    """Every map of a sweep: per model, combination of swept values, eval set of the rules'
    `barrier_sets` and path of the population (the rules' metric and definition). [] without a
    population of at least three models."""
    bars, ev, tasks = results[vocab.BARRIERS], results[vocab.EVALUATIONS], results[vocab.TASKS]
    ids = population_models(bars)
    if len(ids) < 3:
        return []
    chance = stats.chance({v for f in (ev, bars) if "dataset" in f for v in f["dataset"].dropna()},
                          results.get(vocab.PATHS))
    table = model_table(ev, tasks, ids, chance)
    extremes = _extremes(results.get(vocab.PATHS, pd.DataFrame()))
    own = bars[bars["metric"] == rules.barrier_metric]
    out = []
    models = sorted(own["model"].dropna().unique()) if "model" in own else []
    for model in models or [None]:
        for combo in stats.swept_combos([own], swept):
            part = stats.facet(own, combo)
            if model is not None:
                part = part[part["model"] == model]
            pop = part[part["pair_type"] == vocab.POPULATION]
            for path in stats.order_values(list(stats.path_variants(pop)), ()):
                context = {**({"model": model} if len(models) > 1 else {}), **combo}
                for eval_set in rules.barrier_sets:
                    made = _one_map(part, table, ids, eval_set, path, rules, context, extremes)
                    if made is not None:
                        out.append(made)
    return sorted(out, key=lambda m: (stats.variant_sort_key(m.path), list(rules.barrier_sets).index(m.eval_set)))


def _extremes(paths: pd.DataFrame) -> pd.DataFrame:
    """Per path task and eval set: its endpoints, its path, its lowest accuracy and highest loss, along it
    (lo, hi) and at its endpoints, α 0 or 1 (end_lo, end_hi)."""
    if paths.empty or "endpoint_a" not in paths:
        return pd.DataFrame(columns=["task_id", "eval_set", "endpoint_a", "endpoint_b", "path", "value", "lo", "hi",
                                     "end_lo", "end_hi"])
    end = paths["alpha"].isin((0.0, 1.0)) if "alpha" in paths else pd.Series(False, index=paths.index)
    paths = paths.assign(end_acc=paths["acc"].where(end), end_loss=paths["loss"].where(end))
    per = paths.groupby(["task_id", "eval_set"], sort=False).agg(
        endpoint_a=("endpoint_a", "first"), endpoint_b=("endpoint_b", "first"), path_kind=("path_kind", "first"),
        alignment=("alignment", "first"), lo=("acc", "min"), hi=("loss", "max"), end_lo=("end_acc", "min"),
        end_hi=("end_loss", "max")).reset_index()
    return per.assign(path=stats.path_variants(per))


def _rows(part: pd.DataFrame, eval_set: str, path: str, definition: str) -> pd.DataFrame:
    rows = part[(part["eval_set"] == eval_set) & (part["definition"] == definition)]
    return rows[stats.path_variants(rows) == path] if len(rows) else rows


def _one_map(part: pd.DataFrame, table: pd.DataFrame, ids: list[str], eval_set: str, path: str, rules,
             context: dict, extremes: pd.DataFrame) -> MechanismMap | None:
    rows = _rows(part, eval_set, path, rules.barrier_definition)
    pop = rows[rows["pair_type"] == vocab.POPULATION]
    here = set(pop["endpoint_a"]) | set(pop["endpoint_b"])
    mine = [t for t in ids if t in here]
    if len(mine) < 3:
        return None
    full = barrier_matrix(rows, mine)
    keep = complete(full)
    mine = [mine[i] for i in keep]
    matrix = full[np.ix_(keep, keep)]
    threshold = threshold_for(part[part["definition"] == rules.barrier_definition], eval_set, path,
                              rules.barrier_metric, rules.barrier_definition, rules.level)
    tree, order, clusters = cluster(matrix, threshold.value)
    models = table.set_index("task_id").loc[mine].reset_index()
    reliance = models["reliance_randimg"].to_numpy(dtype=float)
    groups = np.where(reliance > rules.reliance_cut, RELIES, IGNORES).astype(object)
    groups[np.isnan(reliance)] = None                    # not measured: in no group
    models["group"] = pd.Series(groups, index=models.index, dtype=object)   # object: None stays None (pandas 3)
    models["cluster"] = clusters
    models["component"] = components(matrix, threshold.value, order)
    made = MechanismMap(eval_set, path, rules.barrier_metric, rules.barrier_definition, models, matrix, threshold,
                        tree, order, len(full) - len(keep), context, chance=table.attrs.get("chance"),
                        cut=rules.reliance_cut)
    known = ~np.isnan(reliance)
    groups = reliance[known] > rules.reliance_cut
    if min(groups.sum(), (~groups).sum()) < 2:      # a group needs pairs of its own
        return made
    ids_known = [t for t, k in zip(mine, known) if k]
    made.within_across, made.worst = group_tests(matrix[np.ix_(known, known)], groups, rules.permutations)
    if rules.check_definition:
        other = barrier_matrix(_rows(part, eval_set, path, rules.check_definition), ids_known)
        if not np.isnan(other).any():
            made.check, made.check_worst = group_tests(other, groups, rules.permutations)
    if threshold.value is not None and 1 < len(set(clusters[known])) < known.sum():   # else the index is undefined
        made.ari, made.ari_test = ari_test(clusters[known], groups, rules.permutations)
    ext = extremes[(extremes["eval_set"] == eval_set) & (extremes["path"] == path)]
    if len(ext):
        lo, hi, end_lo, end_hi = (barrier_matrix(ext.assign(value=ext[col]), ids_known)
                                  for col in ("lo", "hi", "end_lo", "end_hi"))
        iu = np.triu_indices(len(ids_known), 1)
        within = (groups[iu[0]] == groups[iu[1]])
        made.within_extremes = (_finite(lo[iu][within], np.min), _finite(hi[iu][within], np.max))
        made.across_extremes = (_finite(lo[iu][~within], np.min), _finite(hi[iu][~within], np.max))
        made.within_endpoints = (_finite(end_lo[iu][within], np.min), _finite(end_hi[iu][within], np.max))
    return made


def _finite(values: np.ndarray, reduce) -> float:
    values = values[np.isfinite(values)]
    return float(reduce(values)) if values.size else math.nan


def clusters_table(found: list[MechanismMap]) -> pd.DataFrame:
    """The `clusters` table (report/clusters.parquet): one row per model and map."""
    columns = ["eval_set", "path", "metric", "definition", *MODEL_COLUMNS, "group", "cluster", "component",
               "threshold", "context"]
    frames = []
    for m in found:
        frames.append(m.models.assign(eval_set=m.eval_set, path=m.path, metric=m.metric, definition=m.definition,
                                      threshold=m.threshold.value if m.threshold.value is not None else math.nan,
                                      context=m.context_label())[columns])
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = pd.concat(frames, ignore_index=True)
    out["group"] = out["group"].astype(object)
    return out
