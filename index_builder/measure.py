"""Measuring a built index: recall@k against exact search, latency, memory and result checks.

The builder only measures; the operator compares the numbers with the gates. Queries
are rows sampled from the source with a seed derived from the build key (so a retried
build measures the same queries), and their row numbers are published next to the
index so anyone can reproduce the recall figure. Because every vector is indexed, each
query row would find itself; recall is therefore leave-one-out: the query's own row is
removed from both the exact and the approximate results (searched with k+1), so the
figure is what an unseen query gets and tuning does not stop too early. Ground truth is computed with FAISS's
exact ``IndexFlat`` over the data in batches (``faiss.contrib.knn_ground_truth``),
never by holding a second copy of the whole matrix. The same held-out queries and
ground truth serve tuning (``index_builder.tuning``) and the final measurement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.exhaustive_search import knn_ground_truth

from index_builder import checks
from index_builder.build import apply_search_parameters, batch_rows, batches, faiss_metric, prepare, sample_rows
from indexops_api.manifest import CheckResult
from indexops_api.spec import Metric

LATENCY_QUERIES = 1000
WARMUP_QUERIES = 5
BATCH_REPEATS = 3


@dataclass(frozen=True)
class HeldOut:
    """Sampled query rows, their (prepared) vectors and exact neighbours (``k`` columns)."""

    rows: np.ndarray
    vectors: np.ndarray
    exact: np.ndarray
    k: int


@dataclass(frozen=True)
class Measured:
    recall_at_k: float
    k: int
    query_rows: np.ndarray
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    batch_latency_ms_per_query: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)


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


def drop_self(distances: np.ndarray, labels: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own row from its result and keep ``k`` columns (-1 padded)."""
    out_d = np.full((labels.shape[0], k), np.nan, dtype=np.float32)
    out_i = np.full((labels.shape[0], k), -1, dtype=np.int64)
    for i, (dist, found, row) in enumerate(zip(distances, labels, rows)):
        keep = found != row
        kept_i, kept_d = found[keep][:k], dist[keep][:k]
        out_i[i, : len(kept_i)] = kept_i
        out_d[i, : len(kept_d)] = kept_d
    return out_d, out_i


def held_out(matrix: np.ndarray, *, metric: Metric, k: int, queries: int, seed: int) -> HeldOut:
    """Sample query rows and compute their exact top-``k`` other rows by batched brute force."""
    n = matrix.shape[0]
    k = max(1, min(k, n - 1))
    rows = sample_rows(n, min(queries, n), seed)
    xq = prepare(matrix[rows], metric)
    depth = min(k + 1, n)
    dist, exact = knn_ground_truth(xq, batches(matrix, metric, batch_rows(matrix.shape[1])), depth, faiss_metric(metric))
    _, exact = drop_self(dist, exact, rows, k)
    return HeldOut(rows, xq, exact, k)


def search_others(index: faiss.Index, queries: HeldOut, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-``k`` of each query row, excluding the row itself."""
    distances, labels = index.search(queries.vectors, min(k + 1, index.ntotal))
    return drop_self(distances, labels, queries.rows, k)


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
    """Recall@k, latencies and functional checks with ``search`` parameters applied."""
    k = min(k, queries.k)
    apply_search_parameters(index, search)
    distances, approx = search_others(index, queries, k)
    recall = recall_at_k(approx, queries.exact, k)
    p50, p95, p99 = latency_percentiles(single_query_seconds(index, queries.vectors, k))
    functional = [
        checks.check_results_have_k(approx, k),
        checks.check_no_duplicate_ids(approx),
        checks.check_distances_monotonic(distances, approx, metric),
    ]
    return Measured(recall, k, queries.rows, p50, p95, p99, batch_ms_per_query(index, queries.vectors, k), functional)


def structural_checks(index: faiss.Index, *, vectors: int, dimension: int, ids: np.ndarray, files: list[Path]) -> list[CheckResult]:
    """What was written matches what was read: counts, dimension, non-empty files."""
    return [
        checks.check_equal("ntotalMatchesVectors", "index.ntotal", int(index.ntotal), vectors),
        checks.check_equal("dimensionMatchesSpec", "index.d", int(index.d), dimension),
        checks.check_equal("idsMatchNtotal", "ids", int(ids.shape[0]), int(index.ntotal)),
        checks.check_files_not_empty({p.name: p.stat().st_size for p in files}),
    ]
