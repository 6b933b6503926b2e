"""The mechanism map's rules on hand-made numbers: chord barriers below 0 count as 0, a model exactly at
the reliance cut does not rely on the cue (the cut is "above"), and the smallest p-value of a
permutation test counts a relabeling and its mirror image as one partition when the groups are equal."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from orchestrator.report import claims, mechanism_map as mm
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
