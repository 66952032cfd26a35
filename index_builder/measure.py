"""Measuring a built index: recall@k against exact search, latency, memory and result checks.

The builder only measures; the operator compares the numbers with the gates. Queries
are source rows sampled with a seed derived from the build key (so a retried build
measures the same queries) and **held out**: the index is trained and filled with every
other row, measured and tuned, and only then are the query rows appended (see
``index_builder.holdout`` for why and for the resulting layout). Recall is therefore
what a query the index has never seen gets. The rows are published next to the index
(``validation-queries.npy``, source row numbers) so anyone can reproduce the figure:
exact neighbours over the source without those rows.

Ground truth is computed with FAISS's exact ``IndexFlat`` over the kept rows in batches
(``faiss.contrib.knn_ground_truth``), never by holding a second copy of the whole
matrix; its labels are index positions, like the approximate results. The same
held-out queries and ground truth serve tuning (``index_builder.tuning``) and the final
measurement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.exhaustive_search import knn_ground_truth

from index_builder import checks, confidence
from index_builder.build import apply_search_parameters, batch_rows, faiss_metric, kept_batches, prepare
from indexops_api.manifest import CheckResult
from indexops_api.spec import Metric

LATENCY_QUERIES = 1000
WARMUP_QUERIES = 5
BATCH_REPEATS = 3


@dataclass(frozen=True)
class HeldOut:
    """Held-out source rows, their prepared vectors and exact neighbours among the kept rows.

    ``exact`` holds index positions (``k`` columns): the kept rows numbered in source order.
    """

    rows: np.ndarray
    vectors: np.ndarray
    exact: np.ndarray
    k: int


@dataclass(frozen=True)
class Measured:
    recall_at_k: float
    k: int
    query_rows: np.ndarray
    indexed: int  # vectors in the index while it was measured (the source minus the query rows)
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    batch_latency_ms_per_query: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    recall_lower_bound: float | None = None  # index_builder.confidence: bootstrap over the queries


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


def held_out(matrix: np.ndarray, rows: np.ndarray, *, metric: Metric, k: int) -> HeldOut:
    """Exact top-``k`` of the ``rows`` (sorted) among all other rows, by batched brute force."""
    kept = matrix.shape[0] - len(rows)
    if len(rows) == 0 or kept < 1:
        raise ValueError(f"held-out measurement needs query rows and kept rows, got {len(rows)} of {matrix.shape[0]}")
    k = max(1, min(k, kept))
    xq = prepare(matrix[rows], metric)
    kept_data = kept_batches(matrix, metric, batch_rows(matrix.shape[1]), rows)
    _, exact = knn_ground_truth(xq, kept_data, k, faiss_metric(metric))
    return HeldOut(rows, xq, exact, k)


def single_query_seconds(index: faiss.Index, xq: np.ndarray, k: int, limit: int = LATENCY_QUERIES) -> list[float]:
    """Wall time of one-query searches (after a short warm-up), the way a server calls FAISS."""
    timed = xq[:limit]
    for q in timed[:WARMUP_QUERIES]:
        index.search(q[None, :], k)
    seconds = []
    for q in timed:
        one = q[None, :]
        start = time.perf_counter()
        index.search(one, k)
        seconds.append(time.perf_counter() - start)
    return seconds


def batch_ms_per_query(index: faiss.Index, xq: np.ndarray, k: int) -> float:
    """Median over a few runs of one batched search of all queries, per query."""
    runs = []
    for _ in range(BATCH_REPEATS):
        start = time.perf_counter()
        index.search(xq, k)
        runs.append(time.perf_counter() - start)
    return float(np.median(runs)) * 1000.0 / max(1, xq.shape[0])


def measure(index: faiss.Index, queries: HeldOut, *, metric: Metric, search: dict[str, int], k: int) -> Measured:
    """Recall@k, latencies and functional checks with ``search`` applied, on an index without the query rows."""
    k = min(k, queries.k)
    apply_search_parameters(index, search)
    distances, approx = index.search(queries.vectors, k)
    per_query = confidence.per_query_recall(approx, queries.exact, k)
    recall = float(per_query.mean())
    p50, p95, p99 = latency_percentiles(single_query_seconds(index, queries.vectors, k))
    functional = [
        checks.check_results_have_k(approx, k),
        checks.check_no_duplicate_ids(approx),
        checks.check_distances_monotonic(distances, approx, metric),
    ]
    return Measured(recall, k, queries.rows, int(index.ntotal), p50, p95, p99,
                    batch_ms_per_query(index, queries.vectors, k), functional, confidence.lower_bound(per_query))


def structural_checks(
    index: faiss.Index, measured: Measured, *, vectors: int, dimension: int, ids: np.ndarray, files: list[Path]
) -> list[CheckResult]:
    """What was written matches what was read and measured: counts, dimension, held-out queries, files."""
    return [
        checks.check_equal("ntotalMatchesVectors", "index.ntotal", int(index.ntotal), vectors),
        checks.check_queries_held_out(indexed=measured.indexed, vectors=vectors, queries=len(measured.query_rows),
                                      k=measured.k),
        checks.check_equal("dimensionMatchesSpec", "index.d", int(index.d), dimension),
        checks.check_equal("idsMatchNtotal", "ids", int(ids.shape[0]), int(index.ntotal)),
        checks.check_files_not_empty({p.name: p.stat().st_size for p in files}),
    ]
