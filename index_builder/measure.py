"""Measuring a built index: recall@k against exact search, and single-query latency.

The builder only measures; the operator compares the numbers with the gates. Queries
are rows sampled from the source with a seed derived from the build key (so a retried
build measures the same queries), and their row numbers are published next to the
index so anyone can reproduce the recall figure. Ground truth is computed with FAISS's
exact ``IndexFlat`` over the data in batches (``faiss.contrib.knn_ground_truth``),
never by holding a second copy of the whole matrix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np
from faiss.contrib.exhaustive_search import knn_ground_truth

from index_builder.build import apply_search_parameters, batch_rows, batches, faiss_metric, prepare, sample_rows
from indexops_api.spec import Metric

LATENCY_QUERIES = 1000
WARMUP_QUERIES = 5


@dataclass(frozen=True)
class Measured:
    recall_at_k: float
    k: int
    query_rows: np.ndarray
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of ``|approx ∩ exact| / k`` (``-1`` placeholders never match)."""
    if approx.shape[0] == 0:
        raise ValueError("recall needs at least one query")
    hits = 0
    for found, truth in zip(approx[:, :k], exact[:, :k]):
        hits += len(set(found[found >= 0].tolist()) & set(truth[truth >= 0].tolist()))
    return hits / (k * approx.shape[0])


def latency_percentiles(seconds: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds."""
    p50, p95, p99 = np.percentile(np.asarray(seconds) * 1000.0, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def measure(
    index: faiss.Index,
    matrix: np.ndarray,
    *,
    metric: Metric,
    search: dict[str, int],
    k: int,
    queries: int,
    seed: int,
) -> Measured:
    n = matrix.shape[0]
    k = min(k, n)
    rows = sample_rows(n, min(queries, n), seed)
    xq = prepare(matrix[rows], metric)
    _, exact = knn_ground_truth(xq, batches(matrix, metric, batch_rows(matrix.shape[1])), k, faiss_metric(metric))
    apply_search_parameters(index, search)
    _, approx = index.search(xq, k)
    recall = recall_at_k(approx, exact, k)

    timed = xq[:LATENCY_QUERIES]
    for q in timed[:WARMUP_QUERIES]:
        index.search(q[None, :], k)
    seconds = []
    for q in timed:
        one = q[None, :]
        start = time.perf_counter()
        index.search(one, k)
        seconds.append(time.perf_counter() - start)
    p50, p95, p99 = latency_percentiles(seconds)
    return Measured(recall, k, rows, p50, p95, p99)
