"""The embedder's fallback: exact search over a small set, used when no index can answer."""

from __future__ import annotations

import numpy as np
import pytest

from index_serving.errors import BadRequest
from index_serving.fallback import ExactFallback

rng = np.random.default_rng(4)
DATA = rng.standard_normal((40, 6)).astype(np.float32)
IDS = np.arange(40, dtype=np.int64) * 3 + 100


@pytest.mark.parametrize("metric", ["L2", "InnerProduct", "Cosine"])
def test_exact_fallback_returns_the_true_neighbours_with_the_caller_s_ids(metric: str) -> None:
    queries = rng.standard_normal((3, 6)).astype(np.float32)
    ids, distances = ExactFallback(DATA, IDS, metric)(queries, 5)

    x, q = DATA.astype(np.float64), queries.astype(np.float64)
    if metric == "L2":
        expected = np.argsort(((q[:, None] - x[None]) ** 2).sum(axis=2), axis=1)[:, :5]
    else:
        if metric == "Cosine":
            x, q = x / np.linalg.norm(x, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1, keepdims=True)
        expected = np.argsort(-(q @ x.T), axis=1)[:, :5]
    assert ids == IDS[expected].tolist()
    assert np.array(distances).shape == (3, 5)


def test_l2_distances_are_squared_like_faiss_reports_them() -> None:
    _, distances = ExactFallback(np.array([[0.0, 0.0], [3.0, 4.0]]))(np.array([[0.0, 0.0]], dtype=np.float32), 2)
    assert distances[0] == pytest.approx([0.0, 25.0])


def test_k_larger_than_the_set_returns_every_vector() -> None:
    ids, _ = ExactFallback(DATA[:3])(DATA[:1], 10)
    assert sorted(ids[0]) == [0, 1, 2]


def test_a_query_of_the_wrong_dimension_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="dimension 5 but the fallback set has dimension 6"):
        ExactFallback(DATA)(np.zeros((1, 5), dtype=np.float32), 1)


@pytest.mark.parametrize(("vectors", "ids", "metric", "message"), [
    (np.zeros((0, 3)), None, "L2", "non-empty 2-D"),
    (np.array([[np.nan, 1.0]]), None, "L2", "finite"),
    (np.zeros((2, 3)), np.arange(3), "L2", "2 fallback vectors but ids"),
    (np.zeros((2, 3)), None, "Hamming", "metric must be one of"),
])
def test_a_malformed_fallback_set_is_refused_when_built(vectors: np.ndarray, ids: np.ndarray | None, metric: str,
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExactFallback(vectors, ids, metric)
