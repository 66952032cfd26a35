"""Validation rows are held out of the index while it is measured; rules about which rows, and where rows go."""

from __future__ import annotations

import numpy as np
import pytest

from index_builder.build import kept_batches
from index_builder.checks import check_queries_held_out
from index_builder.errors import TooFewVectors
from index_builder.holdout import holdout_rows, holdout_size, index_order, kept_rows, kept_slices
from index_builder.measure import held_out
from indexops_api.spec import Metric


def test_the_held_out_rows_are_a_sorted_seeded_sample_a_retry_picks_again() -> None:
    rows = holdout_rows(10_000, 200, seed=42)
    assert len(rows) == len(np.unique(rows)) == 200 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, holdout_rows(10_000, 200, seed=42))
    assert not np.array_equal(rows, holdout_rows(10_000, 200, seed=43))


@pytest.mark.parametrize(
    ("n", "wanted", "keep", "expected"),
    [
        (10_000, 200, 1, 200),  # the usual case: exactly the queries asked for
        (100, 200, 1, 50),  # at most half the rows: the measured index is at least half the published one
        (300, 200, 256, 44),  # an IVFPQ with 256 PQ centroids keeps 256 rows to train on
        (2, 10, 1, 1),  # the smallest source that can be measured
    ],
)
def test_the_number_held_out_leaves_enough_rows_to_build_the_index(n: int, wanted: int, keep: int, expected: int) -> None:
    assert holdout_size(n, wanted, keep) == expected


@pytest.mark.parametrize(("n", "keep", "needed"), [(1, 1, 2), (256, 256, 257)])
def test_a_source_too_small_to_hold_out_a_query_fails_saying_how_many_vectors_are_needed(
    n: int, keep: int, needed: int
) -> None:
    with pytest.raises(TooFewVectors, match=rf"^s3://b/x.npy: contains {n} vectors; .* needs at least {needed} vectors$"):
        holdout_size(n, 200, keep, name="s3://b/x.npy")


def test_positions_among_the_kept_rows_map_to_the_source_rows_not_held_out() -> None:
    held = np.array([0, 3, 4, 9], dtype=np.int64)
    kept = np.setdiff1d(np.arange(12), held)
    np.testing.assert_array_equal(kept_rows(np.arange(len(kept)), held), kept)
    np.testing.assert_array_equal(kept_rows(np.array([2, 0]), held), [5, 1])
    np.testing.assert_array_equal(kept_rows(np.arange(5), np.array([], dtype=np.int64)), np.arange(5))


def test_kept_slices_cover_every_row_not_held_out_once_and_in_source_order() -> None:
    held = np.array([1, 7, 8, 15, 20], dtype=np.int64)
    covered = [start + np.flatnonzero(keep) for start, _, keep in kept_slices(21, held, rows=4)]
    np.testing.assert_array_equal(np.concatenate(covered), np.setdiff1d(np.arange(21), held))


def test_ids_are_published_in_index_order_kept_rows_then_held_out_rows() -> None:
    ids = np.array([10, 11, 12, 13, 14, 15], dtype=np.int64)
    np.testing.assert_array_equal(index_order(ids, np.array([1, 4])), [10, 12, 13, 15, 11, 14])


@pytest.mark.parametrize("metric", [Metric.L2, Metric.INNER_PRODUCT, Metric.COSINE])
def test_exact_neighbours_of_held_out_rows_are_positions_among_the_other_rows(metric: Metric) -> None:
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((500, 8)).astype(np.float32)
    rows = holdout_rows(500, 20, seed=1)

    measured = held_out(matrix, rows, metric=metric, k=5)

    kept = np.setdiff1d(np.arange(500), rows)
    x, q = matrix[kept].astype(np.float64), matrix[rows].astype(np.float64)
    if metric is Metric.COSINE:
        x, q = x / np.linalg.norm(x, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1, keepdims=True)
    scores = -((q[:, None, :] - x[None, :, :]) ** 2).sum(axis=2) if metric is Metric.L2 else q @ x.T
    np.testing.assert_array_equal(measured.exact, np.argsort(-scores, axis=1)[:, :5])
    assert measured.k == 5 and not np.isin(kept_rows(measured.exact, rows), rows).any()


def test_kept_batches_feed_the_kept_rows_in_order_across_batch_boundaries() -> None:
    matrix = np.arange(30, dtype=np.float64).reshape(10, 3)
    held = np.array([0, 4, 5], dtype=np.int64)
    fed = np.concatenate(list(kept_batches(matrix, Metric.L2, 2, held)))
    assert fed.dtype == np.float32
    np.testing.assert_array_equal(fed, matrix[np.setdiff1d(np.arange(10), held)])


def test_the_manifest_check_says_recall_was_measured_without_the_query_rows() -> None:
    ok = check_queries_held_out(indexed=9_800, vectors=10_000, queries=200, k=10)
    assert ok.passed and ok.name == "queriesHeldOut"
    assert ok.detail == ("recall@10 measured on 200 source rows held out of the index, which held 9800 of 10000 vectors "
                         "while measured; the 200 rows were added afterwards (positions 9800..9999)")
    wrong = check_queries_held_out(indexed=10_000, vectors=10_000, queries=200, k=10)
    assert not wrong.passed and wrong.detail.endswith("; expected 9800 while measured")
