"""Guards for `orchestrator.report.stats` behaviours the rest of the report suite leaves unpinned: an
interval shown cut to the range its mean lies in (an accuracy's [0, 1]) and the place of a path kind the
vocabulary does not know in the report's orders."""

from __future__ import annotations

from orchestrator import vocab
from orchestrator.report import stats


def test_an_interval_shown_within_a_range_is_cut_to_it_on_both_sides_never_widened():
    """`Estimate.text(within=(0, 1))` shows an accuracy's interval cut to [0, 1]: a t-interval of three
    accuracies near 100% reaches past it, and cutting keeps the coverage. Cutting must narrow the interval
    (the larger of the lower ends, the smaller of the upper ends): taking the outer ends instead would print
    an interval from 0% to above 100%, a claim about the mean that no data supports."""
    high = stats.Estimate(3, 0.95, 0.05, 0.83, 1.07)
    assert high.text(within=(0.0, 1.0)) == "0.950 [0.830, 1.000] (n = 3)"
    low = stats.Estimate(3, 0.05, 0.05, -0.07, 0.17)
    assert low.text(within=(0.0, 1.0)) == "0.050 [0.000, 0.170] (n = 3)"
    inside = stats.Estimate(4, 0.5, 0.1, 0.4, 0.6)
    assert inside.text(within=(0.0, 1.0)) == inside.text() == "0.500 [0.400, 0.600] (n = 4)"
    assert high.text(scale=100, digits=1, unit="%", within=(0.0, 1.0)) == "95.0% [83.0, 100.0] (n = 3)"


def test_a_path_kind_the_vocabulary_does_not_know_sorts_after_every_known_one():
    """Tables and figures order paths by `vocab.PATH_KINDS` (linear, then the others in the vocabulary's
    order); a path of a kind not in it (a table written by another version, a missing kind shown as its
    text) goes last, after every known kind, so the known paths keep their places and their order."""
    known = [stats.variant_sort_key(kind) for kind in vocab.PATH_KINDS]
    assert known == sorted(known)
    unknown = stats.variant_sort_key("mystery")
    assert all(unknown > key for key in known)
    assert stats.variant_sort_key("None") > stats.variant_sort_key(f"{vocab.PATH_KINDS[-1]} (zzz)")
    order = sorted(["mystery", *reversed(vocab.PATH_KINDS)], key=stats.variant_sort_key)
    assert order == [*vocab.PATH_KINDS, "mystery"]
