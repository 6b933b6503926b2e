"""The mechanism map's rules on hand-made numbers: chord barriers below 0 count as 0, a model exactly at
the reliance cut does not rely on the cue (the cut is "above"), and the smallest p-value of a
permutation test counts a relabeling and its mirror image as one partition when the groups are equal."""
from __future__ import annotations

import itertools
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

def _map(test: mm.Permutation, within_extremes=(0.9, 0.5), ari_test=None, across_extremes=(0.9, 0.5)) -> mm.MechanismMap:
    models = pd.DataFrame({"task_id": [f"m{i}" for i in range(6)], "group": [mm.RELIES] * 3 + [mm.IGNORES] * 3,
                           "cluster": [1, 1, 1, 2, 2, 2]})
    return mm.MechanismMap("cue", vocab.LINEAR, "loss", "chord", models, CHAIN.copy(), mm.Threshold(0.1, "x", 3),
                           within_across=test, ari=1.0 if ari_test else math.nan, ari_test=ari_test,
                           within_extremes=within_extremes, across_extremes=across_extremes, chance=0.1)


def test_claim_e_is_not_testable_where_the_within_group_paths_are_not_measured_or_one_collapses():
    """No paths rows for the within-group pairs: a collapse cannot be told from connectivity (as for the
    barrier comparisons); one within-group path at the floor among healthy ones caps the within mean."""
    rules = ClaimRules(check_definition=None)
    (k, _) = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999), within_extremes=(math.nan, math.nan))], rules).checks
    assert k.outcome == claims.UNTESTABLE and k.reason.startswith("the chance floor is not measured")
    results = _with_paths(results_of(CHAIN, RELIANCE), 0.9, 0.9, 0.5, 0.5)
    pop = results[vocab.PATHS]
    first = pop["task_id"] == pop["task_id"].iloc[0]        # the first pair, 0-1: within a group
    results[vocab.PATHS] = pop.assign(acc=pop["acc"].where(~(first & (pop["alpha"] == 0.5)), 0.12))
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert m.within_extremes[0] == pytest.approx(0.12)


def test_a_collapsed_map_names_the_fix_its_cause_needs():
    """As for a pair type (`_floor_fix`), the reason of a map whose within-group paths collapse says what
    would make it testable: where models of a within-group pair are themselves at chance on the set (their
    endpoints, α 0 or 1), other models or another set; where the models fit the set and only the straight
    path between them collapses, alignment first. An endpoint at chance on an across pair only is not the
    within-group paths' cause."""
    rules = ClaimRules(check_definition=None, permutations=500)

    def reason(results):
        (m, *_) = mm.maps(results, (), rules)
        (k, *_) = [k for k in claims.claim_e([m], rules).checks if "collapse to chance" in k.reason]
        return m, k.reason

    results = _with_paths(results_of(CHAIN, RELIANCE), 0.12, 0.9, 2.0, 0.5)     # within paths dip to 12%
    m, why = reason(results)
    assert m.within_endpoints == pytest.approx((0.9, 0.3))
    assert "permutation alignment (add aligned to `population.path_kinds`)" in why and "themselves" not in why

    pop = results[vocab.PATHS]
    ids = sorted(set(pop["endpoint_a"]) | set(pop["endpoint_b"]))
    across = pop["endpoint_a"].map(ids.index).lt(3) != pop["endpoint_b"].map(ids.index).lt(3)
    at_start = pop["alpha"] == 0.0
    first_across = pop["task_id"] == pop.loc[across, "task_id"].iloc[0]
    results[vocab.PATHS] = pop.assign(acc=pop["acc"].mask(first_across & at_start, 0.11))
    m, why = reason(results)
    assert m.within_endpoints == pytest.approx((0.9, 0.3)) and "themselves" not in why

    first_within = pop["task_id"] == pop.loc[~across, "task_id"].iloc[0]
    results[vocab.PATHS] = pop.assign(acc=pop["acc"].mask(first_within & at_start, 0.11),
                                      loss=pop["loss"].mask(first_within & at_start, 2.25))
    m, why = reason(results)
    assert m.within_endpoints == pytest.approx((0.11, 2.25))
    assert f"some of the models are themselves there (lowest accuracy 11%, highest loss 2.25): they have not learnt " \
           f"{m.eval_set}" in why and "alignment" not in why


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
    # a null too wide for 0.05 (underpowered) at the floor: the floor is the reason (more models would not help)
    c = claims.claim_e([_map(_permutation(0.0, 0.5, 0.5, sd=0.1), within_extremes=(0.9, 2.2))], rules)
    (check,) = [x for x in c.checks if x.group == "within < across"]
    assert check.outcome == claims.UNTESTABLE and "collapse" in check.reason


def test_claim_e_decides_the_index_on_its_upper_tail():
    ari = _permutation(1.0, 0.001, 0.999)
    c = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999), ari_test=ari)], ClaimRules(check_definition=None))
    (index,) = [x for x in c.checks if "adjusted Rand" in x.text]
    assert index.outcome == claims.YES and not index.required
    assert c.verdict == claims.HOLDS


def test_an_undecided_index_is_not_called_underpowered_against_an_effect_no_rule_declares():
    """The rules declare no effect size for the adjusted Rand index: an undecided index test is not testable
    saying so, never 'underpowered … above the 1e-12 the claim is about' (an effect invented in the code)."""
    ari = _permutation(0.04, 0.37, 0.63, sd=0.2)
    c = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999), ari_test=ari)], ClaimRules(check_definition=None))
    (index,) = [x for x in c.checks if "adjusted Rand" in x.text]
    assert index.outcome == claims.UNTESTABLE and "no effect size" in index.reason
    assert "1e-12" not in index.reason and "underpowered" not in index.reason
    assert c.verdict == claims.HOLDS and c.badge() == claims.HOLDS      # supporting: it never decides
    assert cmp.permutation(0.04, 0.37, 0.63, 0.001, 0.2, 0.95, None, 0.8).p_other == 0.63


def test_the_threshold_takes_resubset_controls_as_same_data_pairs_from_one_initialisation():
    rows = [{"pair_type": pair_type, "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue",
             "metric": "loss", "definition": "chord", "value": v}
            for pair_type, values in (("cue~cue:resubset", [0.05, 0.07, 0.09]), ("cue~cue:self", [0.01, 0.02]))
            for v in values]
    t = mm.threshold_for(pd.DataFrame(rows), "cue", vocab.LINEAR, "loss", "chord", 0.95)
    assert t.source == "cue~cue:resubset" and t.value == pytest.approx(stats.Estimate.of([0.05, 0.07, 0.09]).ci_high)



def test_the_threshold_leaves_out_children_that_share_epochs_beyond_the_start():
    """cue~cue:spawn@3 shares 3 epochs of training as well, a lower baseline (as in claim (d)): with spawn@0
    there the threshold reads spawn@0 alone; with only spawn@3, the noise floor."""
    def rows(*groups):
        return pd.DataFrame([{"pair_type": pair_type, "path_kind": vocab.LINEAR, "alignment": None, "eval_set": "cue",
                              "metric": "loss", "definition": "chord", "value": v}
                             for pair_type, values in groups for v in values])

    later, start, self_ = ("cue~cue:spawn@3", [0.01, 0.02, 0.01]), ("cue~cue:spawn@0", [0.3, 0.4, 0.5]), \
        ("cue~cue:self", [0.001, 0.002])
    t = mm.threshold_for(rows(later, start, self_), "cue", vocab.LINEAR, "loss", "chord", 0.95)
    assert t.source == "cue~cue:spawn@0" and t.value == pytest.approx(stats.Estimate.of([0.3, 0.4, 0.5]).ci_high)
    t = mm.threshold_for(rows(later, self_), "cue", vocab.LINEAR, "loss", "chord", 0.95)
    assert t.source == "cue~cue:self" and t.value == pytest.approx(stats.Estimate.of([0.001, 0.002]).ci_high)


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
    assert all(r.label == "6 models: 3 rely on the cue, 2 do not" for r in c.rows)
    found.models["group"] = pd.Series([mm.RELIES] * 3 + [mm.IGNORES] + [None] * 2, dtype=object)   # two unknown:
    c = claims.claim_e([found], ClaimRules(check_definition=None))               # their pair is in no row either
    rows = {r.measure.split(": barrier ")[1].split(" (")[0]: r.est for r in c.rows}
    assert rows["across them"].n == 3 and rows["within reliance groups"].n == 3


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
    assert rows == {"within reliance groups": 6, "across them": 9, "within the models that rely on the cue": 3,
                    "within the models that do not": 3}
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
    assert "(1 left out: pairs missing)" in claims.claim_e([m], ClaimRules(permutations=500)).rows[0].label


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
    assert index.outcome == claims.UNTESTABLE and "no effect size" in index.reason
    assert c.verdict == claims.HOLDS and c.sentence().startswith("Holds:")


# ----- round 4: claim (e)'s family, its guards on every outcome, its check definition -----

@pytest.mark.parametrize("p_lower, outcome, verdict", [(0.02, claims.OVERLAP, claims.UNSEPARATED),
                                                       (0.01, claims.NO, claims.FAILS)])
def test_claim_e_decides_the_other_way_across_its_maps_by_holms_step_down(p_lower, outcome, verdict):
    """Two maps (nocue, cue), each's "within < across" decided the other way (lower-tail p below α/2 = 0.025):
    two comparisons, so Holm's first bar is 0.025 / 2 = 0.0125. At p = 0.02 neither is rejected (cannot be
    separated); at p = 0.01 the first is (≤ 0.0125), then the second (≤ 0.025): the claim does not hold."""
    found = [_map(_permutation(-0.5, 0.99, p_lower)) for _ in range(2)]
    found[0].eval_set = "nocue"
    c = claims.claim_e(found, ClaimRules(check_definition=None))
    within = [x for x in c.checks if x.group == "within < across"]
    assert len(within) == 2 and all(x.outcome == outcome for x in within)
    assert c.verdict == verdict


@pytest.mark.parametrize("lowest, peak", [(0.9, 2.2), (0.15, 0.5)])
def test_claim_e_decided_the_other_way_on_within_group_paths_at_the_chance_floor_is_not_testable(lowest, peak):
    """A "does not hold" is guarded as a "holds": the within-group paths peaking within 0.25 nats of ln 10, or
    dipping within 10 pp of chance (0.15 against 0.10), make the comparison not testable."""
    c = claims.claim_e([_map(_permutation(-0.5, 0.999, 0.001), within_extremes=(lowest, peak))],
                       ClaimRules(check_definition=None))
    (check,) = [x for x in c.checks if x.group == "within < across"]
    assert check.outcome == claims.UNTESTABLE and "collapse" in check.reason


@pytest.mark.parametrize("lowest, outcome", [(0.15, claims.UNTESTABLE), (0.25, claims.YES)])
def test_claim_e_is_not_testable_where_the_within_group_paths_dip_to_chance_accuracy(lowest, outcome):
    """floor_acc 0.10: a lowest accuracy of 0.15 is within 10 pp of chance (0.10), 0.25 is not."""
    c = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999), within_extremes=(lowest, 0.5))],
                       ClaimRules(check_definition=None))
    (check,) = [x for x in c.checks if x.group == "within < across"]
    assert check.outcome == outcome


@pytest.mark.parametrize("check_p_upper, check_p_lower, outcome", [(0.999, 0.001, claims.UNTESTABLE),
                                                                   (0.001, 0.999, claims.YES)])
def test_claim_e_is_not_testable_where_the_check_definition_decides_the_other_way(check_p_upper, check_p_lower,
                                                                                    outcome):
    """The chord barriers put the groups apart (upper-tail p 0.001); the worse-endpoint ones decide the other
    way (lower-tail p 0.001): the endpoints decide, not the paths, so not testable. Agreeing, it holds."""
    m = _map(_permutation(0.9, 0.001, 0.999))
    m.check = _permutation(0.9 if outcome == claims.YES else -0.9, check_p_upper, check_p_lower)
    c = claims.claim_e([m], ClaimRules())
    (check,) = [x for x in c.checks if x.group == "within < across"]
    assert check.outcome == outcome
    assert ("opposite ways" in check.reason) == (outcome == claims.UNTESTABLE)


# ----- round 4: the permutation statistics against independent references -----

def _within_across_by_loops(m: np.ndarray, g: np.ndarray) -> float:
    pairs = list(itertools.combinations(range(len(g)), 2))
    across = [m[i, j] for i, j in pairs if g[i] != g[j]]
    within = [m[i, j] for i, j in pairs if g[i] == g[j]]
    return float(np.mean(across) - np.mean(within))


def test_the_within_across_statistic_and_its_null_are_the_means_over_pairs_for_every_relabeling():
    """2 + 3 models, 10 relabelings (no mirror images): the observed statistic is the mean barrier of the pairs
    across the groups minus that of the pairs within them (each pair once, never a model with itself); the null
    holds it for every relabeling; p_upper and p_lower count the relabelings at or beyond it."""
    rng = np.random.default_rng(7)
    k = 5
    m = np.triu(rng.uniform(0.0, 1.0, (k, k)), 1)
    m = m + m.T
    groups = np.array([1, 1, 0, 0, 0], dtype=bool)
    null = np.array([_within_across_by_loops(m, np.isin(np.arange(k), c))
                     for c in itertools.combinations(range(k), 2)])
    observed = _within_across_by_loops(m, groups)
    test = mm.within_across(m, groups, n=100)
    assert test.exact and test.observed == pytest.approx(observed)
    np.testing.assert_allclose(np.sort(test.null), np.sort(null))
    assert test.p_upper == pytest.approx(np.mean(null >= observed - 1e-9))
    assert test.p_lower == pytest.approx(np.mean(null <= observed + 1e-9))


@pytest.mark.parametrize("sizes, n", [([3, 3], 1000), ([6, 6], 60)])
def test_the_index_null_is_the_adjusted_rand_index_of_the_clusters_and_each_relabeling(sizes, n):
    """Against scikit-learn's adjusted_rand_score: the observed index, and the null as the index of the clusters
    with each relabeling drawn by `labelings` (every one of them, or n random ones and the observed)."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(5)
    k = sum(sizes)
    groups = np.repeat([True, False], sizes)
    clusters = rng.integers(1, 4, k)
    clusters[:3] = [1, 2, 3]
    perms, _ = mm.labelings(groups, n)
    observed, test = mm.ari_test(clusters, groups, n)
    assert observed == pytest.approx(adjusted_rand_score(groups, clusters))
    np.testing.assert_allclose(test.null, [adjusted_rand_score(p, clusters) for p in perms], atol=1e-12)


# ----- round 4: the threshold's rows -----

def test_the_threshold_reads_only_the_controls_of_its_own_set_and_definition():
    """Controls on cue (chord) 0.05, 0.07, 0.09, beside others on nocue and of the worse-endpoint definition:
    the cue chord threshold is the upper bound of the first three alone."""
    rows = [dict(r, eval_set=s, definition=d) for s, d, values in (("cue", "chord", [0.05, 0.07, 0.09]),
                                                                   ("nocue", "chord", [0.5, 0.6, 0.7]),
                                                                   ("cue", "worse_endpoint", [0.9, 1.0, 1.1]))
            for r in _controls(values)]
    t = mm.threshold_for(pd.DataFrame(rows), "cue", vocab.LINEAR, "loss", "chord", 0.95)
    assert t.n == 3 and t.value == pytest.approx(stats.Estimate.of([0.05, 0.07, 0.09]).ci_high)


def test_a_threshold_of_one_measured_control_is_its_value_whatever_else_was_not_measured():
    """One control measured (0.07) and one NaN: n = 1, no interval, so the threshold is that value (the
    largest where n = 1); the NaN is no value."""
    t = mm.threshold_for(pd.DataFrame(_controls([np.nan, 0.07])), "cue", vocab.LINEAR, "loss", "chord", 0.95)
    assert (t.n, t.value) == (1, pytest.approx(0.07))


def test_a_model_label_names_proportion_seed_and_method():
    """`p=0.5 s0 cbft` (the docstring), a seed read back as a float included; no method: nothing after the seed."""
    assert mm.model_label(pd.Series({"cue_proportion": 0.5, "seed": 0.0, "method": "cbft"})) == "p=0.5 s0 cbft"
    assert mm.model_label(pd.Series({"cue_proportion": 0.0, "seed": 3, "method": None})) == "p=0 s3"


# ----- round 4: maps of a population, end to end -----

def _index_of(endpoint: str) -> int:
    return int(endpoint.rsplit("-", 1)[1], 16)


def test_a_map_uses_the_rules_definition_and_checks_it_on_the_check_definition():
    """6 + 6 models whose chord barriers put the reliance groups apart and whose worse-endpoint barriers put them
    together: the map's matrix is the chord one; the check test is run on the worse-endpoint barriers (its
    statistic as computed by hand), so the two decide opposite ways and claim (e) is not testable. The map's
    threshold is the controls' upper bound at the rules' level (90% here, scipy), its groups follow reliance, and
    with 500 relabelings asked for (924 exist) 500 are drawn, for both tests."""
    matrix, truth = planted([6, 6], seed=4)
    same = truth[:, None] == truth[None, :]
    worse = np.where(same, 1.0, 0.05) - np.eye(len(truth))
    results = results_of(matrix, np.where(truth == 0, 0.8, 0.0))
    bars = results[vocab.BARRIERS]
    pop = (bars["pair_type"] == vocab.POPULATION) & (bars["definition"] == "worse_endpoint")
    ends = zip(bars.loc[pop, "endpoint_a"], bars.loc[pop, "endpoint_b"], strict=True)
    bars.loc[pop, "value"] = [worse[_index_of(a), _index_of(b)] for a, b in ends]
    rules = ClaimRules(permutations=500, level=0.90)
    found = mm.maps(results, (), rules)
    assert [m.eval_set for m in found] == ["nocue", "cue"]
    m = found[0]
    np.testing.assert_allclose(m.matrix, matrix)
    groups = truth == 0
    assert m.check.observed == pytest.approx(_within_across_by_loops(worse, groups)) and m.check.observed < 0
    assert m.within_across.observed == pytest.approx(_within_across_by_loops(matrix, groups))
    assert m.models["group"].tolist() == [mm.RELIES if g else mm.IGNORES for g in groups]
    controls = [0.05, 0.08, 0.06]
    _, high = scipy_stats.t.interval(0.90, 2, loc=np.mean(controls), scale=scipy_stats.sem(controls))
    assert m.threshold.value == pytest.approx(high)
    assert not m.within_across.exact and m.within_across.null.size == 501 and m.ari_test.null.size == 501
    assert m.context == {} and m.chance == pytest.approx(0.1)
    (e,) = [c for c in claims.judge(results, (), rules, maps=found) if c.key == "e"]
    within = [c for c in e.checks if c.group == "within < across"]
    assert len(within) == 2 and all(c.outcome == claims.UNTESTABLE and "opposite ways" in c.reason for c in within)


def _paths_of(results, groups, lowest_within: dict, skip=()):
    """A linear path per population pair, on nocue and cue: within-group paths dip to `lowest_within[set]`
    midway, the others to 0.9; the pairs in `skip` have no path."""
    rows = []
    bars = results[vocab.BARRIERS]
    pop = bars[bars["pair_type"] == vocab.POPULATION].drop_duplicates("task_id")
    for r in pop.itertuples():
        i, j = _index_of(r.endpoint_a), _index_of(r.endpoint_b)
        if (i, j) in skip:
            continue
        for eval_set in ("nocue", "cue"):
            lo = lowest_within[eval_set] if groups[i] == groups[j] else 0.9
            for alpha, acc in ((0.0, 0.95), (0.5, lo), (1.0, 0.95)):
                rows.append({"task_id": r.task_id, "eval_set": eval_set, "endpoint_a": r.endpoint_a,
                             "endpoint_b": r.endpoint_b, "path_kind": vocab.LINEAR, "alignment": None,
                             "alpha": alpha, "acc": acc, "loss": 0.3})
    return {**results, vocab.PATHS: pd.DataFrame(rows)}


def test_claim_e_from_the_tables_is_not_testable_on_the_set_where_within_group_paths_dip_to_chance():
    """The within-group paths dip to 12% accuracy on nocue (chance 10% for digits' 10 classes, floor 10 pp), to
    60% on cue; one within pair has no path (it is no value, not a NaN mean). On nocue claim (e)'s comparison
    is not testable; on cue the planted groups are apart (decided as claimed)."""
    matrix, truth = planted([6, 6], seed=4)
    results = results_of(matrix, np.where(truth == 0, 0.8, 0.0))
    within = next((i, j) for i, j in itertools.combinations(range(12), 2) if truth[i] == truth[j])
    results = _paths_of(results, truth, {"nocue": 0.12, "cue": 0.6}, skip={within})
    (e,) = [c for c in claims.judge(results, (), ClaimRules(permutations=500)) if c.key == "e"]
    by_set = {c.text.split(",")[0]: c for c in e.checks if c.group == "within < across"}
    assert by_set["on nocue"].outcome == claims.UNTESTABLE and "collapse" in by_set["on nocue"].reason
    assert by_set["on cue"].outcome == claims.YES


def test_the_maps_of_each_model_are_built_from_that_models_pairs_only():
    """Two models of the sweep, each with its own 3 + 3 population (the second's barriers twice the first's):
    one map per model and set, each of its own 6 models and barriers, its context naming the model."""
    results = results_of(CHAIN, RELIANCE)
    wide = {t: df.copy() for t, df in results.items()}
    for t in (vocab.BARRIERS, vocab.EVALUATIONS, vocab.TASKS):
        df = wide[t]
        for col in ("task_id", "endpoint_a", "endpoint_b"):
            if col in df:
                df[col] = df[col].str.replace("pretrain-", "pretrain-w", regex=False)
        if "model" in df:
            df["model"] = "wide_cnn"
    wide[vocab.BARRIERS]["value"] *= 2
    both = {t: pd.concat([results[t], wide[t]], ignore_index=True) for t in results}
    found = mm.maps(both, (), ClaimRules(permutations=500))
    assert sorted((m.context.get("model"), m.eval_set) for m in found) == [
        ("small_cnn", "cue"), ("small_cnn", "nocue"), ("wide_cnn", "cue"), ("wide_cnn", "nocue")]
    for m in found:
        factor = 2.0 if m.context["model"] == "wide_cnn" else 1.0
        assert m.k == 6 and m.left_out == 0
        np.testing.assert_allclose(m.matrix, factor * CHAIN)
    # claim (e) per model, on that model's two maps
    judged = [c for c in claims.judge(both, (), ClaimRules(permutations=500), maps=found) if c.key == "e"]
    assert sorted(c.context for c in judged) == ["small_cnn", "wide_cnn"]
    assert all(len([x for x in c.checks if x.group == "within < across"]) == 2 for c in judged)


@pytest.mark.parametrize("level, outcome", [(0.80, claims.YES), (0.95, claims.OVERLAP)])
def test_claim_e_decides_at_the_rules_level(level, outcome):
    """Upper-tail p = 0.06: at most α/2 = 0.10 at level 0.80, above 0.025 at 0.95 (a null narrow enough to have
    seen the effect: cannot be separated)."""
    c = claims.claim_e([_map(_permutation(0.9, 0.06, 0.94))], ClaimRules(level=level, check_definition=None))
    (check,) = [x for x in c.checks if x.group == "within < across"]
    assert check.outcome == outcome


def test_a_population_model_without_evaluations_takes_its_labels_from_the_tasks_table():
    """Model n was not evaluated: its kind, cue proportion and seed come from its tasks row, its reliance is
    not measured (NaN), so it is in no reliance group."""
    ev = pd.DataFrame({"task_id": "m", "eval_set": ["nocue", "randcue", "randimg"], "acc": [0.8, 0.3, 0.9]})
    tasks = pd.DataFrame({"task_id": ["m", "n"], "kind": [vocab.PRETRAIN, vocab.FINETUNE],
                          "status": [vocab.FINISHED] * 2, "cue_proportion": [0.8, 0.5], "seed": [1, 2],
                          "method": [None, "cbft"]})
    table = mm.model_table(ev, tasks, ["m", "n"], chance=0.1).set_index("task_id")
    assert (table.loc["n", "kind"], table.loc["n", "cue_proportion"], table.loc["n", "seed"],
            table.loc["n", "method"]) == (vocab.FINETUNE, 0.5, 2, "cbft")
    assert math.isnan(table.loc["n", "reliance_randimg"]) and math.isnan(table.loc["n", "reliance_randcue"])
    assert table.loc["m", "reliance_randimg"] == pytest.approx(0.8)


@pytest.mark.parametrize("barrier, clusters", [(0.5, [1, 2]), (0.05, [1, 1])])
def test_two_models_are_cut_at_the_threshold_as_any_others(barrier, clusters):
    """Two models left after `complete` drops the rest: one cluster when their barrier is at most the threshold
    (0.1), two when it is above it, as the tree cut says for any number of models."""
    m = np.array([[0.0, barrier], [barrier, 0.0]])
    _, order, found = mm.cluster(m, 0.1)
    assert sorted(order) == [0, 1] and found.tolist() == clusters


def test_the_clusters_table_holds_a_missing_threshold_as_a_numeric_nan():
    """A map without a threshold (no same-data control, no noise floor): its rows' threshold is NaN in a float
    column, as every other map's, so the parquet column stays numeric."""
    m = _map(_permutation(0.9, 0.001, 0.999))
    m.threshold = mm.Threshold(None, "")
    m.models = m.models.assign(kind=vocab.PRETRAIN, cue_proportion=0.8, method=None, seed=range(6), reliance_randimg=0.5,
                               reliance_randcue=0.3, component=range(1, 7))
    table = mm.clusters_table([m])
    assert table["threshold"].dtype == float and table["threshold"].isna().all() and len(table) == 6


@pytest.mark.parametrize("n", [103, 104])
def test_random_relabelings_one_short_of_every_partition_are_not_exact(n):
    """2 of 15 models: C(15, 2) = 105 relabelings. n drawn at random and the observed one are n + 1 (104, or
    105 as many as there are relabelings), drawn with repeats: never the exact null, for either test, and
    the smallest p-value is 1/(n + 1)."""
    k = 15
    m = np.triu(np.random.default_rng(0).uniform(0, 1, (k, k)), 1)
    groups = np.arange(k) < 2
    test = mm.within_across(m + m.T, groups, n=n)
    assert test.null.size == n + 1 and not test.exact and test.min_p == pytest.approx(1 / (n + 1))
    _, index = mm.ari_test(np.arange(k) % 3, groups, n=n)
    assert index.null.size == n + 1 and not index.exact
    exact = mm.within_across(m + m.T, groups, n=105)
    assert exact.exact and exact.null.size == 105


def test_a_path_measured_on_two_models_only_makes_no_map():
    """Three models with linear paths between all of them, and an aligned path between two only: a map needs
    three models (its docstring), so there is a linear map per set and no aligned one."""
    matrix, truth = planted([2, 1], seed=4)
    results = results_of(matrix, np.where(truth == 0, 0.8, 0.0))
    bars = results[vocab.BARRIERS]
    one = bars[(bars["pair_type"] == vocab.POPULATION) & (bars["task_id"] == bars["task_id"].iloc[0])]
    aligned = one.assign(path_kind=vocab.ALIGNED, alignment="activation", task_id=one["task_id"] + "-aligned")
    results[vocab.BARRIERS] = pd.concat([bars, aligned], ignore_index=True)
    found = mm.maps(results, (), ClaimRules(permutations=500))
    assert [(m.path, m.eval_set, m.k) for m in found] == [("linear", "nocue", 3), ("linear", "cue", 3)]


def test_a_threshold_says_its_value_its_controls_and_their_count():
    text = mm.Threshold(0.1234, "cue~cue:spawn@0", 3).text()
    assert text.startswith("0.123") and "cue~cue:spawn@0" in text and "n = 3" in text


def test_the_within_group_extremes_leave_out_the_paths_of_a_model_in_no_group():
    """3 + 3 models and a 7th whose reliance is not measured: the within-group paths dip to 50% accuracy, those
    across the groups to 90%, the 7th model's to 10%. Its pairs are in no group, so the within-group lowest
    accuracy is 0.5 (it would sit at the chance floor with them)."""
    matrix, truth = planted([3, 3, 1], seed=4)
    reliance = np.where(truth == 0, 0.8, 0.0)
    reliance[truth == 2] = np.nan
    results = results_of(matrix, reliance)
    rows = []
    bars = results[vocab.BARRIERS]
    for r in bars[bars["pair_type"] == vocab.POPULATION].drop_duplicates("task_id").itertuples():
        i, j = _index_of(r.endpoint_a), _index_of(r.endpoint_b)
        lo = 0.1 if 2 in (truth[i], truth[j]) else 0.5 if truth[i] == truth[j] else 0.9
        for eval_set in ("nocue", "cue"):
            for alpha, acc in ((0.0, 0.95), (0.5, lo), (1.0, 0.95)):
                rows.append({"task_id": r.task_id, "eval_set": eval_set, "endpoint_a": r.endpoint_a,
                             "endpoint_b": r.endpoint_b, "path_kind": vocab.LINEAR, "alignment": None,
                             "alpha": alpha, "acc": acc, "loss": 0.3})
    found = mm.maps({**results, vocab.PATHS: pd.DataFrame(rows)}, (), ClaimRules(permutations=500))
    assert found and all(m.within_extremes == pytest.approx((0.5, 0.3)) for m in found)


def test_claim_e_shows_the_within_group_barriers_as_the_claim_and_the_across_ones_as_the_control():
    """CHAIN's pairs within the reliance groups: 0.05, 0.50, 0.05 and 0.05, 0.05, 0.05 (the claim: within is
    lower); across: nine pairs at 1.0 (the control). Each row's mean and sample SD (ddof = 1, as every Estimate)
    are those of these pairs, with no interval (pairs share models)."""
    c = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999))], ClaimRules(check_definition=None))
    rows = {r.measure.split(": barrier ")[1].split(" (")[0]: r for r in c.rows}
    within, across = rows["within reliance groups"], rows["across them"]
    values = [0.05, 0.50, 0.05, 0.05, 0.05, 0.05]
    assert (within.role, across.role) == (claims.CLAIM, claims.CONTROL)
    assert (within.est.n, across.est.n) == (6, 9)
    assert within.est.mean == pytest.approx(np.mean(values)) and within.est.std == pytest.approx(np.std(values, ddof=1))
    assert across.est.std == pytest.approx(0.0) and math.isnan(within.est.ci_low)


def test_random_relabelings_follow_the_seed_they_are_given():
    """`labelings(groups, n, seed)` draws from the stream of the seed it is given (the report's default,
    PERMUTATION_SEED, makes the draws the same on every report): the same seed gives the same relabelings,
    another seed others, each with the observed labeling first and the group sizes kept."""
    groups = np.array([True] * 6 + [False] * 10)          # C(16, 6) = 8008 relabelings: 200 are drawn
    a, exact = mm.labelings(groups, 200, seed=1)
    assert not exact and a.shape == (201, 16) and (a.sum(axis=1) == 6).all() and (a[0] == groups).all()
    assert (mm.labelings(groups, 200, seed=1)[0] == a).all()
    assert not (mm.labelings(groups, 200, seed=2)[0] == a).all()
    assert not (mm.labelings(groups, 200)[0] == a).all()


def test_the_check_definitions_test_reads_the_same_models_as_the_maps_own_test():
    """The first model's reliance is not measured (no group): the map's test and its check-definition test both
    leave it out. With the same barriers under every definition (`results_of`), the two tests are the same test:
    the same observed difference and the same null."""
    matrix, _ = planted([4, 4], seed=5)
    reliance = np.array([np.nan, 0.8, 0.8, 0.8, 0.0, 0.0, 0.0, 0.8])
    (m, *_) = mm.maps(results_of(matrix, reliance), (), ClaimRules(permutations=500))
    assert m.within_across is not None and m.check is not None
    assert m.check.observed == pytest.approx(m.within_across.observed)
    assert np.allclose(m.check.null, m.within_across.null)


def test_a_pair_a_pair_type_planned_between_population_models_is_in_the_map():
    """docs/SCIENCE.md: "A pair a pair type plans is that pair's task; the others are `pair_type: population`".
    The pair of models 0 and 1 measured as a cue~nocue pair is still the population's pair 0–1: the map keeps all
    four models (none left out for a missing pair) with that pair's barrier in its cell."""
    matrix = np.array([[0.0, 0.7, 0.2, 0.9], [0.7, 0.0, 0.8, 0.3], [0.2, 0.8, 0.0, 0.6], [0.9, 0.3, 0.6, 0.0]])
    results = results_of(matrix, np.array([0.8, 0.0, 0.8, 0.0]))
    bars = results[vocab.BARRIERS]
    first = (bars["pair_type"] == vocab.POPULATION) & bars["endpoint_a"].str.endswith("0") & \
        bars["endpoint_b"].str.endswith("1")
    assert first.sum() == 2 * len(vocab.DEFINITIONS)         # the pair 0–1: two sets, every definition
    bars.loc[first, "pair_type"] = vocab.CUE_NOCUE
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert m.k == 4 and m.left_out == 0
    assert m.matrix[0, 1] == pytest.approx(0.7) and m.matrix == pytest.approx(matrix)


def test_without_a_chance_level_a_models_randimg_reliance_is_not_measured():
    """acc(randimg) − chance needs chance (one class count): without it the randimg index is NaN (the model is
    in no reliance group), never the raw randimg accuracy; nocue − randcue needs no chance and is kept."""
    ev = pd.DataFrame([{"task_id": "m0", "kind": vocab.PRETRAIN, "eval_set": e, "acc": a, "cue_proportion": 0.8,
                        "seed": 0, "method": None} for e, a in (("nocue", 0.9), ("randcue", 0.5), ("randimg", 0.6))])
    tasks = pd.DataFrame([{"task_id": "m0", "kind": vocab.PRETRAIN, "cue_proportion": 0.8, "seed": 0}])
    known = mm.model_table(ev, tasks, ["m0"], 0.1).iloc[0]
    unknown = mm.model_table(ev, tasks, ["m0"], None).iloc[0]
    assert known["reliance_randimg"] == pytest.approx(0.5) and math.isnan(unknown["reliance_randimg"])
    assert known["reliance_randcue"] == pytest.approx(0.4) == unknown["reliance_randcue"]


def test_claim_e_reads_its_index_checks_decided_the_other_way_family_wise_like_every_supporting_check():
    """Supporting checks are a family of their own under Holm's step-down (docs/SCIENCE.md,
    `verdicts.family_wise`). Two maps whose index tests each have a lower-tail p of 0.02 are each decided the
    other way alone (0.02 <= alpha/2 = 0.025), but not across the two: Holm's first bar is 0.025 / 2 = 0.0125.
    So both read as overlap, 'by its own interval only', and neither is 'decided the other way' outright."""
    ari = _permutation(-0.2, 0.99, 0.02)
    maps = [_map(_permutation(0.9, 0.001, 0.999), ari_test=ari) for _ in range(2)]
    maps[1].eval_set = "nocue"
    c = claims.claim_e(maps, ClaimRules(check_definition=None))
    index = [x for x in c.checks if "adjusted Rand index" in x.text]
    assert len(index) == 2 and all(not x.required for x in index)
    assert all(x.p_other == pytest.approx(0.02) for x in index)
    assert [x.outcome for x in index] == [cmp.OVERLAP, cmp.OVERLAP]
    assert c.sentence().count("by its own interval only (family-wise, Holm)") == 2


def test_the_within_group_highest_loss_is_the_peak_of_the_worst_within_group_path():
    """Every within-group path dips to 90% and peaks at loss 0.5, but the first pair (0-1, within a group)
    peaks at 2.3 (ln 10: the chance loss): the map's within-group extremes are (lowest accuracy, HIGHEST loss)
    of any within-group path, (0.9, 2.3), the loss side of claim (e)'s chance-floor guard."""
    results = _with_paths(results_of(CHAIN, RELIANCE), 0.9, 0.9, 0.5, 0.5)
    pop = results[vocab.PATHS]
    first = pop["task_id"] == pop["task_id"].iloc[0]
    results[vocab.PATHS] = pop.assign(loss=pop["loss"].where(~(first & (pop["alpha"] == 0.5)), 2.3))
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert m.within_extremes == pytest.approx((0.9, 2.3))


def test_a_check_definition_missing_a_pair_gives_no_check_test_and_changes_no_verdict():
    """The check definition's barrier of one population pair was not measured: the check test is not run
    (`made.check` None, never a permutation test of a matrix with NaN in it), so claim (e) decides exactly as
    without a check definition."""
    results = results_of(CHAIN, RELIANCE)
    bars = results[vocab.BARRIERS]
    rules = ClaimRules(permutations=500)
    pair = bars[(bars["pair_type"] == vocab.POPULATION)]["task_id"].iloc[0]
    results[vocab.BARRIERS] = bars[~((bars["task_id"] == pair) & (bars["definition"] == rules.check_definition))]
    found = mm.maps(results, (), rules)
    assert found and all(m.within_across is not None and m.check is None for m in found)
    plain = mm.maps(results, (), ClaimRules(permutations=500, check_definition=None))
    (e,) = [c for c in claims.judge(results, (), rules, maps=found) if c.key == "e"]
    (e0,) = [c for c in claims.judge(results, (), ClaimRules(permutations=500, check_definition=None), maps=plain)
             if c.key == "e"]
    assert [(c.text, c.outcome) for c in e.checks] == [(c.text, c.outcome) for c in e0.checks]


def test_a_maps_within_group_extremes_come_from_its_own_path_variant_only():
    """The population is evaluated on the linear and on the activation-aligned path. Only the linear path of
    the first pair (0-1, within a group) dips to 12% accuracy; every aligned path stays at 90%. The linear
    map's lowest within-group accuracy is 0.12, the aligned map's 0.9: the aligned map's chance-floor guard
    never reads (or averages in) another path variant's paths."""
    results = _with_paths(results_of(CHAIN, RELIANCE), 0.9, 0.9, 0.5, 0.5)
    bars, paths = results[vocab.BARRIERS], results[vocab.PATHS]
    pop = bars["pair_type"] == vocab.POPULATION
    aligned_bars = bars[pop].assign(path_kind=vocab.ALIGNED, alignment="activation",
                                    task_id=bars.loc[pop, "task_id"] + "-al")
    first = paths["task_id"] == paths["task_id"].iloc[0]
    linear_paths = paths.assign(acc=paths["acc"].where(~(first & (paths["alpha"] == 0.5)), 0.12))
    aligned_paths = paths.assign(path_kind=vocab.ALIGNED, alignment="activation", task_id=paths["task_id"] + "-al")
    results = {**results, vocab.BARRIERS: pd.concat([bars, aligned_bars], ignore_index=True),
               vocab.PATHS: pd.concat([linear_paths, aligned_paths], ignore_index=True)}
    found = mm.maps(results, (), ClaimRules(permutations=500))
    by_path = {(m.path, m.eval_set): m.within_extremes for m in found}
    assert by_path[(vocab.LINEAR, "nocue")] == pytest.approx((0.12, 0.5))
    assert by_path[("aligned (activation)", "nocue")] == pytest.approx((0.9, 0.5))


def test_without_a_threshold_every_model_is_its_own_component():
    """No threshold, no edge: each model its own component (numbered 1..K), as each is its own cluster."""
    assert mm.components(np.zeros((3, 3)), None).tolist() == [1, 2, 3]


def test_a_control_with_an_infinite_barrier_does_not_make_the_threshold_infinite():
    """The threshold's controls are their finite barriers (a diverged control path's inf is left out, as NaN is):
    one finite control left is the threshold (n = 1: its value)."""
    bars = pd.DataFrame({"pair_type": ["cue~cue:spawn@0"] * 2, "path_kind": [vocab.LINEAR] * 2, "alignment": [None] * 2,
                         "eval_set": ["nocue"] * 2, "metric": ["loss"] * 2, "definition": ["chord"] * 2,
                         "value": [0.1, math.inf]})
    t = mm.threshold_for(bars, "nocue", vocab.LINEAR, "loss", "chord", 0.95)
    assert (t.value, t.n) == (0.1, 1)


def test_maps_go_by_path_kind_order_whatever_order_the_rows_have():
    """Maps are listed by path (the vocabulary's order: linear before quadratic), then by the rules' barrier
    sets, across the models of the sweep: every linear map before any quadratic one."""
    matrix, truth = planted([3, 3], seed=2)
    results = results_of(matrix, np.where(truth == 0, 0.8, 0.0))
    bars = results[vocab.BARRIERS]
    pop = bars[bars["pair_type"] == vocab.POPULATION]
    both = pd.concat([bars, pop.assign(path_kind=vocab.QUADRATIC)], ignore_index=True)
    results[vocab.BARRIERS] = pd.concat([both, both.assign(model="vgg13")], ignore_index=True)
    found = mm.maps(results, (), ClaimRules(permutations=100))
    paths = [m.path for m in found]
    assert set(paths) == {vocab.LINEAR, vocab.QUADRATIC} and paths == sorted(paths, key=stats.variant_sort_key)


def test_a_maps_context_label_names_its_model_and_each_swept_value():
    m = mm.MechanismMap("nocue", "linear", "loss", "chord", pd.DataFrame(), np.zeros((0, 0)), mm.Threshold(None, ""),
                        context={"model": "vgg13", "finetune.lam": 1.0})
    assert m.context_label() == "vgg13 · finetune.lam = 1"


@pytest.mark.parametrize("across, kept", [((0.10, 2.25), {claims.YES}), ((math.nan, math.nan), {claims.YES}),
                                          ((0.9, 0.5), {claims.YES, claims.NO, claims.OVERLAP})])
def test_claim_e_against_the_claim_is_no_evidence_where_the_paths_across_groups_sit_at_the_chance_floor(across, kept):
    """The paths across reliance groups are the higher side: at the chance floor (or that floor not measured)
    their barriers are capped, so "within < across" decided as claimed stands, and decided the other way or not
    separated is no evidence (not testable), as for (b)-(d); healthy, every outcome stands."""
    rules = ClaimRules(check_definition=None)
    for test, outcome in ((_permutation(0.9, 0.001, 0.999), claims.YES), (_permutation(-0.5, 0.999, 0.001), claims.NO),
                          (_permutation(0.0, 0.5, 0.5), claims.OVERLAP)):
        c = claims.claim_e([_map(test, across_extremes=across)], rules)
        (check,) = [x for x in c.checks if x.group == "within < across"]
        assert check.outcome == (outcome if outcome in kept else claims.UNTESTABLE), (across, outcome)
        if check.outcome == claims.UNTESTABLE:
            assert "paths across reliance groups" in check.reason
    results = _with_paths(results_of(CHAIN, RELIANCE), 0.9, 0.9, 0.5, 0.5)
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert all(v == v for v in m.across_extremes)          # measured on real maps, as the within side


def test_claim_e_holds_only_where_each_reliance_group_is_better_connected_inside_than_across():
    """3 models that rely on the cue, 9 that do not: reliant pairs 1.0 apart, reliant to non-reliant 0.8,
    non-reliant pairs 0. Pooled, within (mostly the 36 tight non-reliant pairs) is far below across, but the
    models that rely on the cue are *less* connected with each other than with the others: the statement, about
    each group, is not shown, so "within < across" is not decided as claimed; each group's own pairs are shown.
    With the reliant pairs at 0.1 too, each group is better connected inside, and it holds."""
    def judged(reliant_apart: float) -> claims.Claim:
        k = 12
        relies = np.arange(k) < 3
        matrix = np.where(relies[:, None] & relies[None, :], reliant_apart,
                          np.where(relies[:, None] != relies[None, :], 0.8, 0.0))
        np.fill_diagonal(matrix, 0.0)
        (m, *_) = mm.maps(results_of(matrix, np.where(relies, 0.8, 0.0)), (), ClaimRules(permutations=500))
        return claims.claim_e([m], ClaimRules(permutations=500, check_definition=None))
    apart = judged(1.0)
    (check,) = [x for x in apart.checks if x.group == "within < across"]
    assert check.outcome == claims.UNTESTABLE and "not each group alone" in check.reason, check
    assert "the worse group alone -0.200" in check.evidence and apart.verdict != claims.HOLDS
    shown = {r.measure.split(": barrier ")[1].split(" (")[0]: r.est.mean for r in apart.rows}
    assert shown["within the models that rely on the cue"] == pytest.approx(1.0)
    close = judged(0.1)
    assert [x.outcome for x in close.checks if x.group == "within < across"] == [claims.YES]


def test_a_worse_group_decided_the_other_way_is_guarded_as_any_other_against_the_claim():
    """6 + 6 models, the reliant ones 1.5 apart, 1.0 from the others, those at 0: pooled "within < across" is ✓
    but the reliant group alone is decided below 0, so (e) does not hold. With every across-group path at the
    chance floor (accuracy 0.15, chance 0.10), that ✗ rests on capped barriers: not testable, as any outcome
    against the claim there is."""
    rng = np.random.default_rng(0)
    k, relies = 12, np.arange(12) < 6
    matrix = np.where(relies[:, None] != relies[None, :], 1.0, 0.0) + rng.normal(0, 0.02, (k, k))
    matrix[np.ix_(relies, relies)] = 1.5 + rng.normal(0, 0.02, (6, 6))
    matrix = np.abs((matrix + matrix.T) / 2)
    np.fill_diagonal(matrix, 0.0)
    results = results_of(matrix, np.where(relies, 0.8, 0.0))
    rules = ClaimRules(permutations=500, check_definition=None)
    (m, *_) = mm.maps(results, (), rules)
    (pooled,) = [x for x in claims.claim_e([m], rules).checks if x.group == "within < across"]
    assert pooled.outcome == claims.NO and "that group is not better connected inside" in pooled.reason
    paths = results[vocab.PATHS]
    group = dict(zip(sorted(set(paths["endpoint_a"]) | set(paths["endpoint_b"])), relies))
    across = paths["endpoint_a"].map(group) != paths["endpoint_b"].map(group)
    results[vocab.PATHS] = paths.assign(acc=paths["acc"].where(~(across & (paths["alpha"] == 0.5)), 0.15))
    (m, *_) = mm.maps(results, (), rules)
    (pooled,) = [x for x in claims.claim_e([m], rules).checks if x.group == "within < across"]
    assert pooled.outcome == claims.UNTESTABLE and "paths across reliance groups" in pooled.reason


def test_the_index_check_is_not_testable_where_the_within_group_paths_sit_at_the_chance_floor():
    """The clusters are cut from the same barriers as "within < across": where the within-group paths collapse
    (their barriers capped), an index ✓ on them is no evidence either (a real sweep's copy gave ARI 1.00,
    p = 0.005, beside a not testable main check)."""
    ari = _permutation(1.0, 0.001, 0.999)
    c = claims.claim_e([_map(_permutation(0.9, 0.001, 0.999), within_extremes=(0.12, 0.5), ari_test=ari)],
                       ClaimRules(check_definition=None))
    (index,) = [x for x in c.checks if "adjusted Rand" in x.text]
    assert index.outcome == claims.UNTESTABLE and "collapse to chance" in index.reason


def test_the_worse_group_statistic_is_mirror_symmetric_so_equal_groups_count_each_partition_once():
    """across − max(within_1, within_2) is the same for a relabeling and its mirror image (swapping the groups
    swaps the two within means), so 4 + 4 models give 35 distinct partitions: the smallest p-value is 2/70."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 8))
    matrix = (x + x.T) / 2
    np.fill_diagonal(matrix, 0.0)
    groups = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    worst = mm.worst_group(matrix, groups, n=1000)
    assert worst.exact and len(np.unique(np.round(worst.null, 12))) == 35
    assert worst.min_p == pytest.approx(2 / 70)


def test_the_within_group_endpoints_are_read_at_both_ends_of_each_path():
    """The endpoints of a path are α 0 and α 1: the first (within-group) pair's model B scores 20% accuracy at loss
    2.0 at α 1, so the map's within-group endpoints (lowest accuracy, highest loss) are (0.2, 2.0), not those of
    the A ends alone."""
    results = _with_paths(results_of(CHAIN, RELIANCE), 0.9, 0.9, 0.5, 0.5)
    pop = results[vocab.PATHS]
    end_b = (pop["task_id"] == pop["task_id"].iloc[0]) & (pop["alpha"] == 1.0)
    results[vocab.PATHS] = pop.assign(acc=pop["acc"].where(~end_b, 0.2), loss=pop["loss"].where(~end_b, 2.0))
    (m, *_) = mm.maps(results, (), ClaimRules(permutations=500))
    assert m.within_endpoints == pytest.approx((0.2, 2.0))


def test_the_clusters_tables_context_is_the_model_and_swept_values_not_the_set_and_path():
    """`context` holds what the `eval_set` and `path` columns do not: the model (where there are several) and the
    swept values; a sweep of one model with nothing swept has none."""
    found = mm.maps(results_of(CHAIN, RELIANCE), (), ClaimRules(permutations=200))
    table = mm.clusters_table(found)
    assert len(found) == 2 and set(table["context"]) == {""}
    m = found[0]
    m.context = {"model": "vgg13"}
    assert set(mm.clusters_table([m])["context"]) == {"vgg13"}
