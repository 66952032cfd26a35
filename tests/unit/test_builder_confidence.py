"""The recall lower bound is a bootstrap over queries: below the mean, tighter with more queries, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from index_builder.confidence import lower_bound, per_query_recall


def test_per_query_recall_counts_each_querys_hits_over_k_and_never_matches_minus_one() -> None:
    approx = np.array([[1, 2, 3], [4, -1, -1]])
    exact = np.array([[3, 2, 9], [4, 5, 6]])
    assert per_query_recall(approx, exact, 3).tolist() == pytest.approx([2 / 3, 1 / 3])


def test_the_bound_lies_below_the_measured_recall_and_is_reproducible() -> None:
    per_query = np.random.default_rng(1).choice([0.7, 0.9, 1.0], size=200, p=[0.1, 0.3, 0.6])
    bound = lower_bound(per_query)
    assert bound < per_query.mean() and bound == lower_bound(per_query)
    assert per_query.mean() - bound < 0.03


def test_more_queries_give_a_tighter_bound_for_the_same_spread() -> None:
    few = np.tile([0.8, 1.0], 50)
    many = np.tile([0.8, 1.0], 2000)
    assert many.mean() - lower_bound(many) < few.mean() - lower_bound(few)


def test_correlated_misses_within_a_query_widen_the_bound_compared_with_spread_out_misses() -> None:
    # Same mean recall 0.95: one query in ten loses half its k, or every query loses 1 in 20.
    clumped = np.tile([0.5] + [1.0] * 9, 20)
    spread = np.full(200, 0.95)
    assert lower_bound(clumped) < lower_bound(spread) == pytest.approx(0.95)


def test_a_bound_needs_at_least_one_query() -> None:
    with pytest.raises(ValueError):
        lower_bound(np.array([]))
