"""The mechanism map's rules on hand-made numbers: chord barriers below 0 count as 0, a model exactly at
the reliance cut does not rely on the cue (the cut is "above"), and the smallest p-value of a
permutation test counts a relabeling and its mirror image as one partition when the groups are equal."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from orchestrator import vocab
from orchestrator.report import claims, comparisons as cmp, mechanism_map as mm, stats
from orchestrator.spec.claim_rules import ClaimRules
from tests.orchestrator.report.test_mechanism_map import planted, results_of


def test_barriers_below_zero_count_as_zero_and_a_pair_measured_twice_is_their_mean():
    pairs = pd.DataFrame({"endpoint_a": ["a", "a", "b", "c"], "endpoint_b": ["b", "c", "c", "b"],
                          "value": [-0.2, 0.5, 0.3, 0.1]})
    m = mm.barrier_matrix(pairs, ["a", "b", "c"])
    np.testing.assert_allclose(m, [[0.0, 0.0, 0.5], [0.0, 0.0, 0.2], [0.5, 0.2, 0.0]])


@pytest.mark.parametrize("groups, min_p", [
    ([1, 1, 0, 0], 2 / 6),               # C(4, 2) = 6 relabelings, 3 partitions
    ([1, 1, 0, 0, 0], 1 / 10),           # C(5, 2) = 10, no mirror images
    ([1, 1, 1, 1, 0, 0, 0, 0], 2 / 70),
])
def test_the_smallest_p_value_counts_mirror_relabelings_of_equal_groups_once(groups, min_p):
    groups = np.array(groups, dtype=bool)
    k = groups.size
    matrix = np.ones((k, k)) - np.eye(k)
    assert mm.within_across(matrix, groups, n=1000).min_p == pytest.approx(min_p)


def test_four_and_four_models_cannot_reach_half_alpha():
    """4 + 4 models: 35 partitions, p ≥ 1/35 ≈ 0.029 > α/2 = 0.025: claim (e) is not testable."""
    matrix, truth = planted([4, 4], seed=3)
    found = [c for c in claims.judge(results_of(matrix, np.where(truth == 0, 0.8, 0.0)), (),
                                     ClaimRules(permutations=500)) if c.key == "e"]
    assert len(found) == 1 and found[0].verdict == claims.NOT_TESTABLE
    assert "smallest p-value" in claims.claims_text(found)


def test_a_model_exactly_at_the_reliance_cut_does_not_rely_on_the_cue():
    """Six models far above the cut and six exactly at it (reliance == cut): two groups of six, as the
    map's group column shows them, and the permutation test runs on those two groups."""
    matrix, truth = planted([6, 6], seed=4)
    at_cut = 0.3
    rules = ClaimRules(permutations=500, reliance_cut=(0.1 + at_cut) - 0.1)   # what the map computes
    results = results_of(matrix, np.where(truth == 0, 0.8, at_cut))
    found = mm.maps(results, (), rules)
    assert found and all(m.within_across is not None for m in found)
    assert all(sorted(m.models["group"].value_counts().tolist()) == [6, 6] for m in found)
    assert math.isfinite(found[0].within_across.observed)


# ----- the permutation test's p-values and smallest p-value -----

def test_the_lower_tail_p_value_counts_the_observed_relabeling():
    """Groups further apart within than across (3 + 3 models, 10 partitions): the observed relabeling
    and its mirror are the most extreme low ones, so p_lower = 2/20, never 0."""
    matrix, truth = planted([3, 3], within=(0.8, 1.2), across=(0.0, 0.1))
    test = mm.within_across(matrix, truth == 0, 1000)
    assert test.exact and test.p_lower == pytest.approx(2 / 20) and test.p_upper == pytest.approx(1.0)
    assert test.sd == pytest.approx(np.std(test.null, ddof=1))


def test_random_relabelings_never_promise_a_smaller_p_value_than_the_partitions_allow():
    """4 + 4 models: 35 partitions, p >= 2/70 whatever the number of random relabelings drawn."""
    matrix, truth = planted([4, 4], seed=3)
    test = mm.within_across(matrix, truth == 0, n=50)
    assert not test.exact and test.null.size == 51
    assert test.min_p == pytest.approx(2 / 70)


def test_relabelings_are_exact_when_there_are_exactly_as_many_as_allowed():
    perms, exact = mm.labelings(np.array([1, 1, 0, 0, 0], dtype=bool), 10)      # C(5, 2) = 10
    assert exact and len(perms) == 10 and len({p.tobytes() for p in perms}) == 10


# ----- the matrix, its threshold and components -----

def test_the_model_missing_most_pairs_is_left_out_first():
    nan = np.nan
    m = np.array([[0, 1, nan, 1], [1, 0, nan, 1], [nan, nan, 0, 1], [1, 1, 1, 0]], dtype=float)
    assert mm.complete(m) == [0, 1, 3]


def test_a_pair_of_a_model_with_itself_leaves_the_diagonal_at_zero():
    pairs = pd.DataFrame({"endpoint_a": ["a", "a", "b"], "endpoint_b": ["a", "b", "b"], "value": [0.3, 0.5, 0.4]})
    m = mm.barrier_matrix(pairs, ["a", "b"])
    np.testing.assert_allclose(m, [[0.0, 0.5], [0.5, 0.0]])


def test_components_link_barriers_at_the_threshold():
    m = np.array([[0.0, 0.3, 1.0], [0.3, 0.0, 1.0], [1.0, 1.0, 0.0]])
    assert mm.components(m, 0.3).tolist() == [1, 1, 2]


def test_an_aligned_map_takes_its_controls_aligned_barriers_where_they_have_them():
    rows = [{"pair_type": "cue~cue:spawn@0", "path_kind": kind, "alignment": align, "eval_set": "cue",
             "metric": "loss", "definition": "chord", "value": v}
            for kind, align, values in (("linear", None, [0.5, 0.6, 0.7]), ("aligned", "activation", [0.01, 0.02, 0.03]))
            for v in values]
    t = mm.threshold_for(pd.DataFrame(rows), "cue", "aligned (activation)", "loss", "chord", 0.95)
    est = stats.Estimate.of([0.01, 0.02, 0.03])
    assert t.source == "cue~cue:spawn@0" and t.value == pytest.approx(est.ci_high)


# ----- maps of a population: components, extremes, the ARI -----

CHAIN = np.array([                        # models 0-2 rely on the cue, 3-5 do not
    [0.00, 0.05, 0.50, 1.0, 1.0, 1.0],
    [0.05, 0.00, 0.05, 1.0, 1.0, 1.0],
    [0.50, 0.05, 0.00, 1.0, 1.0, 1.0],
    [1.0, 1.0, 1.0, 0.00, 0.05, 0.05],
    [1.0, 1.0, 1.0, 0.05, 0.00, 0.05],
    [1.0, 1.0, 1.0, 0.05, 0.05, 0.00]])
RELIANCE = np.array([0.8, 0.8, 0.8, 0.0, 0.0, 0.0])


def _with_paths(results, lowest_within, lowest_across, peak_within, peak_across):
    """A path per population pair whose accuracy dips to `lowest_*` and loss peaks at `peak_*` midway."""
    rows = []
    bars = results[vocab.BARRIERS]
    pop = bars[bars["pair_type"] == vocab.POPULATION].drop_duplicates("task_id")
    ids = sorted(set(pop["endpoint_a"]) | set(pop["endpoint_b"]))
    for r in pop.itertuples():
        within = (RELIANCE[ids.index(r.endpoint_a)] > 0.25) == (RELIANCE[ids.index(r.endpoint_b)] > 0.25)
        lo, hi = (lowest_within, peak_within) if within else (lowest_across, peak_across)
        for eval_set in ("nocue", "cue"):
            for alpha, acc, loss in ((0.0, 0.9, 0.3), (0.5, lo, hi), (1.0, 0.9, 0.3)):
                rows.append({"task_id": r.task_id, "eval_set": eval_set, "endpoint_a": r.endpoint_a,
                             "endpoint_b": r.endpoint_b, "path_kind": vocab.LINEAR, "alignment": None,
                             "alpha": alpha, "acc": acc, "loss": loss})
    return {**results, vocab.PATHS: pd.DataFrame(rows)}


def test_components_follow_chains_that_the_average_linkage_clusters_do_not():
    """0–1 and 1–2 are below the threshold (≈ 0.10 from the controls 0.05, 0.08, 0.06), 0–2 is not: one
    component {0, 1, 2}; average linkage joins 2 to {0, 1} at (0.05 + 0.5) / 2 = 0.275, so not one cluster."""
    (m, *_) = mm.maps(results_of(CHAIN, RELIANCE), (), ClaimRules(permutations=500))
    comp, clus = m.models["component"].tolist(), m.models["cluster"].tolist()
    assert comp[0] == comp[1] == comp[2] != comp[3] == comp[4] == comp[5]
    assert clus[0] == clus[1] != clus[2]


def test_the_within_group_extremes_are_the_lowest_accuracy_and_highest_loss_of_within_group_paths():
    results = _with_paths(results_of(CHAIN, RELIANCE), 0.5, 0.2, 1.0, 2.0)
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert m.within_extremes == pytest.approx((0.5, 1.0))


def test_one_cluster_leaves_the_adjusted_rand_index_undefined():
    """Controls far apart (threshold above every barrier): one cluster, no index, its check not measured."""
    results = results_of(CHAIN, RELIANCE, controls=(5.0, 5.1, 5.2))
    found = mm.maps(results, (), ClaimRules(permutations=500))
    assert all(m.ari_test is None and m.models["cluster"].nunique() == 1 for m in found)
    (e,) = [c for c in claims.judge(results, (), ClaimRules(permutations=500)) if c.key == "e"]
    ari = [c for c in e.checks if "adjusted Rand" in c.text]
    assert ari and all(c.outcome == claims.MISSING and "one cluster" in c.reason for c in ari)


# ----- claim (e)'s guards and its index check, on hand-made maps -----

def _map(test: mm.Permutation, within_extremes=(0.9, 0.5), ari_test=None) -> mm.MechanismMap:
    models = pd.DataFrame({"task_id": [f"m{i}" for i in range(6)], "group": [mm.RELIES] * 3 + [mm.IGNORES] * 3,
                           "cluster": [1, 1, 1, 2, 2, 2]})
    return mm.MechanismMap("cue", vocab.LINEAR, "loss", "chord", models, CHAIN.copy(), mm.Threshold(0.1, "x", 3),
                           within_across=test, ari=1.0 if ari_test else math.nan, ari_test=ari_test,
                           within_extremes=within_extremes, chance=0.1)


def _permutation(observed, p_upper, p_lower, sd=0.001):
    null = np.array([-sd, sd] * 50)
    return mm.Permutation(observed, null, p_upper, p_lower, 0.001, False)


def test_claim_e_is_not_testable_where_the_within_group_paths_peak_near_chance_loss():
    """Undecided with a null narrow enough to see 0.05 (would be 'cannot be separated'); the within-group
    paths peak at 2.2 nats, within 0.25 of ln 10 = 2.30: not testable."""
    rules = ClaimRules(check_definition=None)
    assert cmp.permutation(0.0, 0.5, 0.5, 0.001, _permutation(0.0, 0.5, 0.5).sd, 0.95, 0.05, 0.8).outcome == cmp.OVERLAP
    c = claims.claim_e([_map(_permutation(0.0, 0.5, 0.5), within_extremes=(0.9, 2.2))], rules)
    (check,) = [x for x in c.checks if x.group == "within < across"]
    assert check.outcome == claims.UNTESTABLE and "collapse" in check.reason
    c = claims.claim_e([_map(_permutation(0.0, 0.5, 0.5), within_extremes=(0.9, 1.9))], rules)
    assert [x for x in c.checks if x.group == "within < across"][0].outcome == claims.OVERLAP


def test_claim_e_decides_the_index_on_its_upper_tail():
    ari = _permutation(1.0, 0.001, 0.999)
    c = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999), ari_test=ari)], ClaimRules(check_definition=None))
    (index,) = [x for x in c.checks if "adjusted Rand" in x.text]
    assert index.outcome == claims.YES and not index.required
    assert c.verdict == claims.HOLDS


def test_the_threshold_takes_resubset_controls_as_same_data_pairs_from_one_initialisation():
    rows = [{"pair_type": pair_type, "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue",
             "metric": "loss", "definition": "chord", "value": v}
            for pair_type, values in (("cue~cue:resubset", [0.05, 0.07, 0.09]), ("cue~cue:self", [0.01, 0.02]))
            for v in values]
    t = mm.threshold_for(pd.DataFrame(rows), "cue", vocab.LINEAR, "loss", "chord", 0.95)
    assert t.source == "cue~cue:resubset" and t.value == pytest.approx(stats.Estimate.of([0.05, 0.07, 0.09]).ci_high)


# ----- the clustering rule, by hand -----

def test_clusters_join_two_groups_at_their_average_barrier():
    """Barriers 0–1 0.1, 0–2 0.2, 1–2 0.5: average linkage joins 2 to {0, 1} at (0.2 + 0.5) / 2 = 0.35, so a
    cut at 0.4 leaves one cluster (complete linkage would join at 0.5 and keep 2 apart)."""
    m = np.array([[0.0, 0.1, 0.2], [0.1, 0.0, 0.5], [0.2, 0.5, 0.0]])
    tree, _, clusters = mm.cluster(m, 0.4)
    assert tree[:, 2].tolist() == pytest.approx([0.1, 0.35])
    assert len(set(clusters)) == 1


def test_without_a_threshold_every_model_is_its_own_cluster():
    m = np.array([[0.0, 0.1, 0.2], [0.1, 0.0, 0.5], [0.2, 0.5, 0.0]])
    _, _, clusters = mm.cluster(m, None)
    assert sorted(clusters.tolist()) == [1, 2, 3]


def test_the_across_groups_row_of_claim_e_counts_only_pairs_of_models_with_a_known_group():
    """Models 0–2 rely on the cue, 3–4 do not, 5's reliance is not measured: 3 · 2 = 6 pairs across the
    groups (all 1.0 in CHAIN), 3 + 1 = 4 within; the pairs of model 5 are in neither."""
    test = _permutation(0.9, 0.001, 0.999)
    found = _map(test)
    found.models["group"] = pd.Series([mm.RELIES] * 3 + [mm.IGNORES] * 2 + [None], dtype=object)
    c = claims.claim_e([found], ClaimRules(check_definition=None))
    rows = {r.measure.split(": barrier ")[1].split(" (")[0]: r.est for r in c.rows}
    assert rows["across them"].n == 6 and rows["across them"].mean == pytest.approx(1.0)
    assert rows["within reliance groups"].n == 4


def test_a_model_whose_reliance_is_not_measured_is_in_no_group_of_the_map():
    """3 + 3 models with reliance, a 7th without (randimg not measured): the map leaves it out of both
    groups (its group is None, not a string NaN that `!= None` would count, as pandas 3's string columns
    made it), so claim (e) shows 3 + 3 = 6 pairs within the groups and 3 · 3 = 9 across them."""
    matrix, truth = planted([3, 3, 1], seed=4)
    reliance = np.where(truth == 0, 0.8, 0.0)
    reliance[truth == 2] = np.nan
    (m, *_) = mm.maps(results_of(matrix, reliance), (), ClaimRules(permutations=500))
    c = claims.claim_e([m], ClaimRules(permutations=500))
    rows = {r.measure.split(": barrier ")[1].split(" (")[0]: r.est.n for r in c.rows if r.measure.startswith("on nocue")}
    assert rows == {"within reliance groups": 6, "across them": 9}
    assert m.models["group"].dtype == object and sum(g is None for g in m.models["group"]) == 1


def _first_appearances(labels, order) -> list:
    seen: list = []
    for i in order:
        if labels[i] not in seen:
            seen.append(labels[i])
    return seen


def test_a_maps_components_are_numbered_along_the_leaf_order_as_its_clusters():
    """Labels 1, 2, … in the order they first appear along the dendrogram's leaves (stable across reports),
    for components as for clusters (seed 1 puts a model of the second row's group first in the leaves)."""
    matrix, truth = planted([3, 3], seed=1)
    (m, *_) = mm.maps(results_of(matrix, np.where(truth == 0, 0.8, 0.0)), (), ClaimRules(permutations=500))
    for column in ("cluster", "component"):
        assert _first_appearances(m.models[column].tolist(), m.order) == [1, 2], column


def test_random_relabelings_never_promise_a_p_value_below_one_over_their_count_plus_one():
    """10 + 10 models (C(20, 10) = 184,756 relabelings) with 100 drawn and the observed one: the smallest
    p-value is 1/101, not 2/184,756."""
    matrix, truth = planted([10, 10], seed=2)
    test = mm.within_across(matrix, truth == 0, n=100)
    assert not test.exact and test.null.size == 101
    assert test.min_p == pytest.approx(1 / 101)


def test_the_maps_reliance_indices_are_randimg_minus_chance_and_nocue_minus_randcue():
    """As the claims' (verdicts.Slice.reliance): 0.9 − 0.1 on randimg, 0.8 − 0.3 for the random cue."""
    ev = pd.DataFrame({"task_id": "m", "eval_set": ["nocue", "randcue", "randimg"], "acc": [0.8, 0.3, 0.9]})
    tasks = pd.DataFrame({"task_id": ["m"], "kind": [vocab.PRETRAIN], "status": [vocab.FINISHED]})
    row = mm.model_table(ev, tasks, ["m"], chance=0.1).iloc[0]
    assert (row["reliance_randimg"], row["reliance_randcue"]) == pytest.approx((0.8, 0.5))


def _controls(values, metric="loss", eval_set="cue"):
    return [{"pair_type": "cue~cue:spawn@0", "path_kind": vocab.LINEAR, "alignment": None, "eval_set": eval_set,
             "metric": metric, "definition": "chord", "value": v} for v in values]


def test_a_threshold_below_zero_counts_as_zero_as_the_barriers_do():
    """Controls' chord barriers −0.05, −0.04, −0.06: their upper bound is below 0; on the map's scale, where
    barriers below 0 count as 0, the threshold is 0."""
    values = [-0.05, -0.04, -0.06]
    assert stats.Estimate.of(values).ci_high < 0
    t = mm.threshold_for(pd.DataFrame(_controls(values)), "cue", vocab.LINEAR, "loss", "chord", 0.95)
    assert t.value == 0.0


def test_the_threshold_reads_the_controls_of_its_own_metric_at_the_rules_level():
    """Loss controls 0.05, 0.07, 0.09 beside accuracy ones of 0.5: the loss map's threshold is the loss
    controls' upper bound at the level asked for (90% here: scipy's t.interval)."""
    loss = [0.05, 0.07, 0.09]
    bars = pd.DataFrame(_controls(loss) + _controls([0.5, 0.6, 0.7], metric="acc"))
    _, high = scipy_stats.t.interval(0.90, 2, loc=np.mean(loss), scale=scipy_stats.sem(loss))
    t = mm.threshold_for(bars, "cue", vocab.LINEAR, "loss", "chord", 0.90)
    assert t.n == 3 and t.value == pytest.approx(high)


def test_a_map_of_loss_barriers_ignores_the_accuracy_barriers_of_the_same_pairs():
    """The population's accuracy barriers (here 0.7 for every pair) sit beside the loss ones in the
    barriers table: the loss map's matrix is the loss barriers alone."""
    matrix, truth = planted([3, 3], seed=4)
    results = results_of(matrix, np.where(truth == 0, 0.8, 0.0))
    bars = results[vocab.BARRIERS]
    results[vocab.BARRIERS] = pd.concat([bars, bars.assign(metric="acc", value=0.7)], ignore_index=True)
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    np.testing.assert_allclose(m.matrix, matrix)


def test_every_model_its_own_cluster_leaves_the_adjusted_rand_index_undefined():
    """Controls at 0.001 (threshold 0.001) below every population barrier (0.05 or more): each model its own
    cluster, so no index and its check not measured."""
    matrix, truth = planted([3, 3], within=(0.05, 0.1), seed=4)
    results = results_of(matrix, np.where(truth == 0, 0.8, 0.0), controls=(0.001, 0.001, 0.001))
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert m.models["cluster"].nunique() == 6 and m.ari_test is None
    (e,) = [c for c in claims.judge(results, (), ClaimRules(permutations=500)) if c.key == "e"]
    ari = [c for c in e.checks if "adjusted Rand" in c.text]
    assert ari and all(c.outcome == claims.MISSING and "every model its own cluster" in c.reason for c in ari)


def test_a_map_says_how_many_models_it_left_out_for_missing_pairs():
    """Seven models, one pair of model 0 not measured: one model is left out (the map of the other six)."""
    matrix, truth = planted([4, 3], seed=4)
    results = results_of(matrix, np.where(truth == 0, 0.8, 0.0))
    bars = results[vocab.BARRIERS]
    ids = sorted(set(bars.loc[bars["pair_type"] == vocab.POPULATION, "endpoint_a"]))
    gone = (bars["endpoint_a"] == ids[0]) & (bars["endpoint_b"] == ids[1])
    results[vocab.BARRIERS] = bars[~gone]
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert (m.k, m.left_out) == (6, 1)


def test_random_relabelings_are_the_same_on_every_report():
    """The relabelings are drawn from a fixed seed: the same matrix and groups give the same null and
    p-values each time they are computed."""
    matrix, truth = planted([10, 10], seed=2)
    first, second = (mm.within_across(matrix, truth == 0, n=100) for _ in range(2))
    np.testing.assert_array_equal(first.null, second.null)
    assert (first.p_upper, first.p_lower) == (second.p_upper, second.p_lower)


def test_an_undecided_index_check_is_never_read_as_a_real_null():
    """The rules declare no effect size for the adjusted Rand index (unitless; the barrier effect is in
    nats): an index its null does not separate is not testable, never "cannot be separated", so it
    does not qualify the claim's "holds"."""
    ari = _permutation(0.0, 0.5, 0.5)
    assert cmp.permutation_detectable(ari.sd, 0.95, 0.8) < ClaimRules().barrier_effect
    c = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999), ari_test=ari)], ClaimRules(check_definition=None))
    (index,) = [x for x in c.checks if "adjusted Rand" in x.text]
    assert index.outcome == claims.UNTESTABLE and "underpowered" in index.reason
    assert c.verdict == claims.HOLDS and c.sentence().startswith("Holds:")
