"""The mechanism map (`orchestrator/report/mechanism_map.py`) and claim (e): clustering recovers groups
planted in a barrier matrix and finds none in noise; the threshold follows the sweep's controls; the
permutation test relabels models, not pairs, so its false-positive rate on null data with model effects
is near its level; claim (e) is not testable with too few models and holds on planted groups."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from orchestrator import vocab
from orchestrator.report import claims, mechanism_map as mm
from orchestrator.spec.claim_rules import ClaimRules


def planted(sizes, within=(0.0, 0.1), across=(0.8, 1.2), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    k = labels.size
    m = np.where(labels[:, None] == labels[None, :], rng.uniform(*within, (k, k)), rng.uniform(*across, (k, k)))
    m = np.triu(m, 1)
    m = m + m.T
    perm = rng.permutation(k)              # the groups are not contiguous rows
    return m[np.ix_(perm, perm)], labels[perm]


def test_clustering_recovers_planted_groups():
    matrix, truth = planted([5, 4, 6])
    tree, order, clusters = mm.cluster(matrix, threshold=0.3)
    assert mm.adjusted_rand(clusters, truth) == pytest.approx(1.0)
    assert mm.adjusted_rand(mm.components(matrix, 0.3, order), truth) == pytest.approx(1.0)
    assert sorted(order) == list(range(15)) and tree.shape == (14, 4)
    # rows in leaf order keep each group contiguous, and clusters are numbered along it
    assert [clusters[i] for i in order] == sorted(clusters[i] for i in order)


@pytest.mark.parametrize("low, high", [(0.8, 1.2), (0.0, 0.2)])
def test_clustering_finds_no_groups_in_noise(low, high):
    rng = np.random.default_rng(1)
    k = 14
    noise = np.triu(rng.uniform(low, high, (k, k)), 1)
    noise = noise + noise.T
    _, order, clusters = mm.cluster(noise, threshold=0.3)
    sizes = np.bincount(clusters)[1:]
    # every model alone (all barriers above the threshold) or all in one (all below): no groups either way
    assert sorted(sizes) in ([1] * k, [k])
    assert len(set(mm.components(noise, 0.3, order))) in (1, k)


def test_adjusted_rand_index():
    a = [1, 1, 2, 2, 3, 3]
    assert mm.adjusted_rand(a, [5, 5, 7, 7, 9, 9]) == pytest.approx(1.0)
    assert mm.adjusted_rand(a, [1, 2, 1, 2, 1, 2]) < 0
    # by hand: contingency [[2, 1], [0, 3]]: index 1 + 3, rows 3 + 3, columns 1 + 6, expected 6 * 7 / 15
    assert mm.adjusted_rand([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]) == pytest.approx((4 - 42 / 15) / (6.5 - 42 / 15))


def test_permutations_are_exact_when_few_and_respect_group_sizes():
    groups = np.array([1, 1, 0, 0, 0], dtype=bool)
    perms, exact = mm.labelings(groups, 100)
    assert exact and len(perms) == 10 and (perms.sum(axis=1) == 2).all() and len({p.tobytes() for p in perms}) == 10
    perms, exact = mm.labelings(np.arange(20) < 10, 200)
    assert not exact and len(perms) == 201 and (perms.sum(axis=1) == 10).all()
    matrix, truth = planted([3, 3])
    test = mm.within_across(matrix, truth == 0, 1000)
    assert test.exact and test.min_p == pytest.approx(2 / 20)      # 3 + 3 models: 10 distinct partitions
    assert test.p_upper == pytest.approx(test.min_p)                 # the planted one is the most extreme


def _null_dataset(rng, k: int = 16, in_group: int = 8, model_sd: float = 1.0, noise_sd: float = 0.2):
    """Barriers with a strong effect per model (a model in K − 1 pairs) and no effect of the groups."""
    u = rng.normal(0, model_sd, k)
    m = u[:, None] + u[None, :] + rng.normal(0, noise_sd, (k, k))
    m = np.triu(m, 1)
    return m + m.T, rng.permutation(k) < in_group


@pytest.mark.parametrize("in_group", [8, 4])
def test_the_permutation_test_keeps_its_level_on_null_data(in_group):
    """Relabeling models keeps the false-positive rate near the level even when each model moves all
    its pairs. A test that permuted pairs would not: pairs sharing a model are not independent (with
    groups of 4 and 12 models it rejects about 28% of null datasets at a 10% level; with 8 and 8, none)."""
    rng = np.random.default_rng(2)
    alpha, sims = 0.10, 200
    rejected = sum(mm.within_across(*_null_dataset(rng, in_group=in_group), n=400,
                                    seed=int(rng.integers(1 << 30))).p_upper <= alpha for _ in range(sims))
    assert 0.03 <= rejected / sims <= 0.18, rejected / sims


def test_the_permutation_test_detects_planted_groups():
    rng = np.random.default_rng(3)
    matrix, _ = _null_dataset(rng, k=16, model_sd=0.05)
    groups = np.arange(16) < 8
    matrix = matrix + 0.5 * (groups[:, None] != groups[None, :])
    np.fill_diagonal(matrix, 0)
    assert mm.within_across(matrix, groups, 500).p_upper < 0.01


def test_threshold_follows_the_controls_then_the_noise_floor():
    rows = []
    for pair_type, values in (("cue~cue:spawn@0", [0.10, 0.14, 0.12]), ("cue~cue:self", [0.01, 0.02]),
                              (vocab.CUE_NOCUE, [2.0, 2.5])):
        rows += [{"pair_type": pair_type, "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "nocue",
                  "metric": "loss", "definition": "chord", "value": v} for v in values]
    bars = pd.DataFrame(rows)
    t = mm.threshold_for(bars, "nocue", "linear", "loss", "chord", 0.95)
    assert t.source == "cue~cue:spawn@0" and t.n == 3 and 0.14 < t.value < 0.2
    t = mm.threshold_for(bars[bars["pair_type"] != "cue~cue:spawn@0"], "nocue", "linear", "loss", "chord", 0.95)
    assert t.source == "cue~cue:self" and t.value < 0.1
    assert mm.threshold_for(bars[bars["pair_type"] == vocab.CUE_NOCUE], "nocue", "linear", "loss", "chord",
                            0.95).value is None
    # an aligned map takes its controls' linear barriers when they have no aligned path
    t = mm.threshold_for(bars, "nocue", "aligned (activation)", "loss", "chord", 0.95)
    assert t.source == "cue~cue:spawn@0, linear path"


# ----- claim (e) on synthetic result tables -----

def results_of(matrix: np.ndarray, reliance: np.ndarray, controls=(0.05, 0.08, 0.06)) -> dict[str, pd.DataFrame]:
    k = len(matrix)
    ids = [f"pretrain-{i:016x}" for i in range(k)]
    bars, evs, tasks = [], [], []
    for i, j in itertools.combinations(range(k), 2):
        for eval_set in ("nocue", "cue"):
            for definition in vocab.DEFINITIONS:
                bars.append({"task_id": f"path_eval-{i:08x}{j:08x}", "pair_type": vocab.POPULATION,
                             "path_kind": vocab.LINEAR, "alignment": None, "eval_set": eval_set, "metric": "loss",
                             "definition": definition, "value": matrix[i, j], "endpoint_a": ids[i],
                             "endpoint_b": ids[j], "dataset": "digits", "model": "small_cnn", "seed": None,
                             "cue_proportion": None})
    for n, value in enumerate(controls):
        for eval_set in ("nocue", "cue"):
            for definition in vocab.DEFINITIONS:
                bars.append({"task_id": f"path_eval-c{n}", "pair_type": "cue~cue:spawn@0", "path_kind": vocab.LINEAR,
                             "alignment": None, "eval_set": eval_set, "metric": "loss", "definition": definition,
                             "value": value, "endpoint_a": f"pretrain-c{n}a", "endpoint_b": f"pretrain-c{n}b",
                             "dataset": "digits", "model": "small_cnn", "seed": n, "cue_proportion": 0.8})
    for i, r in enumerate(reliance):
        p = 0.8 if r > 0.25 else 0.0
        for eval_set, acc in (("nocue", 0.95), ("cue", 0.97), ("randcue", 0.5), ("randimg", 0.1 + r)):
            evs.append({"task_id": ids[i], "kind": vocab.PRETRAIN, "eval_set": eval_set, "acc": acc, "loss": 0.3,
                        "dataset": "digits", "model": "small_cnn", "cue_proportion": p, "seed": i, "method": None})
        tasks.append({"task_id": ids[i], "kind": vocab.PRETRAIN, "status": vocab.FINISHED, "parents": [],
                      "cue_proportion": p, "seed": i})
    paths = [{"task_id": b["task_id"], "pair_type": b["pair_type"], "eval_set": b["eval_set"],
              "endpoint_a": b["endpoint_a"], "endpoint_b": b["endpoint_b"], "path_kind": vocab.LINEAR, "alignment": None,
              "alpha": alpha, "acc": 0.9, "loss": 0.3 + (alpha == 0.5) * b["value"]}
             for b in bars if b["definition"] == vocab.DEFINITIONS[0] for alpha in (0.0, 0.5, 1.0)]
    return {vocab.BARRIERS: pd.DataFrame(bars), vocab.EVALUATIONS: pd.DataFrame(evs), vocab.TASKS: pd.DataFrame(tasks),
            vocab.PATHS: pd.DataFrame(paths), vocab.TRAIN_CURVES: pd.DataFrame()}


def claim_e(results) -> claims.Claim:
    found = [c for c in claims.judge(results, (), ClaimRules(permutations=500)) if c.key == "e"]
    assert len(found) == 1
    return found[0]


def test_claim_e_holds_on_planted_mechanisms_and_writes_the_clusters_table():
    matrix, truth = planted([6, 6], seed=4)
    results = results_of(matrix, np.where(truth == 0, 0.8, 0.0))
    c = claim_e(results)
    assert c.verdict == claims.HOLDS, claims.claims_text([c])
    found = mm.maps(results, (), ClaimRules(permutations=500))
    assert [(m.eval_set, m.path, m.k) for m in found] == [("nocue", "linear", 12), ("cue", "linear", 12)]
    assert found[0].ari == pytest.approx(1.0) and 0.06 < found[0].threshold.value < 0.2
    table = mm.clusters_table(found)
    assert len(table) == 24 and set(table["group"]) == {mm.RELIES, mm.IGNORES}
    assert table.groupby("eval_set")["cluster"].nunique().tolist() == [2, 2]


def test_claim_e_is_not_testable_with_too_few_models_in_a_group():
    matrix, truth = planted([1, 5], seed=5)
    c = claim_e(results_of(matrix, np.where(truth == 0, 0.8, 0.0)))
    assert c.verdict == claims.NOT_TESTABLE and "too few models in a group" in claims.claims_text([c])
    matrix, truth = planted([2, 2], seed=5)         # 2 + 2 models: 3 partitions, p >= 1/3
    c = claim_e(results_of(matrix, np.where(truth == 0, 0.8, 0.0)))
    assert c.verdict == claims.NOT_TESTABLE and "smallest p-value" in claims.claims_text([c])


def test_claim_e_does_not_hold_when_models_of_one_group_are_further_apart_than_across_groups():
    matrix, truth = planted([6, 6], within=(0.8, 1.2), across=(0.0, 0.1), seed=6)
    c = claim_e(results_of(matrix, np.where(truth == 0, 0.8, 0.0)))
    assert c.verdict == claims.FAILS, claims.claims_text([c])
