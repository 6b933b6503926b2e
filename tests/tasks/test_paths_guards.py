"""Guards for `tasks.paths` behaviours the rest of the path suite leaves unpinned: the cue-reliance indices
of a path whose evaluation sets are only some of the counterfactual sets."""
from __future__ import annotations

import pytest

from tasks.paths import cue_reliance


@pytest.mark.parametrize("sets", [("randcue",), ("nocue",), ("randimg", "randcue"), ("cue", "randcue")])
def test_the_wrong_cue_index_needs_both_the_no_cue_and_the_wrong_cue_sets_and_is_none_otherwise(sets):
    """reliance_randcue = acc(nocue) - acc(randcue) is defined only where both sets were evaluated.
    `evaluate_path` takes any subset of the counterfactual sets and promises None for an index whose sets
    are not evaluated: a path evaluated on `randcue` without `nocue` gets None for it, not a KeyError that
    fails the path task after every alpha was evaluated, nor a number read against a set never run. The
    other index is computed from what is there."""
    acc = {name: 0.5 for name in sets}
    reliance = cue_reliance(acc, num_classes=4)
    assert reliance["reliance_randcue"] is None
    assert reliance["reliance_randimg"] == (0.25 if "randimg" in sets else None)


def test_both_indices_follow_their_definitions_when_every_set_is_evaluated():
    """With every set present: randimg reliance is accuracy above chance (1/K), randcue reliance what a
    wrong cue costs against no cue (positive for a model that follows the cue)."""
    reliance = cue_reliance({"cue": 0.9, "nocue": 0.8, "randcue": 0.3, "randimg": 0.6}, num_classes=10)
    assert reliance["reliance_randimg"] == pytest.approx(0.5)
    assert reliance["reliance_randcue"] == pytest.approx(0.5)
