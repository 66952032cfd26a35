"""What an embedding service answers with when the index cannot: a fallback search.

A service that embeds ``IndexRuntime`` must keep answering while no version is loaded
yet (cold start, S3 down), when FAISS serving is switched off by its feature flag, or
when a search raises. It passes any ``Fallback`` callable: its own function (a
database query, a cache), or ``ExactFallback``, an exact numpy search over a small set
of vectors it keeps in memory. Answers have the runtime's shape: ids and distances per
query, distances as FAISS reports them (squared L2; inner product for the others).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from index_serving.errors import BadRequest

Fallback = Callable[[np.ndarray, int], tuple[list[list[int]], list[list[float]]]]
METRICS = ("L2", "InnerProduct", "Cosine")


class ExactFallback:
    """Brute-force k-NN over ``vectors`` (n × d); meant for small sets (it is O(n·d) per query)."""

    def __init__(self, vectors: np.ndarray, ids: np.ndarray | None = None, metric: str = "L2"):
        metric = getattr(metric, "value", metric)  # accept indexops_api.spec.Metric too
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        data = np.array(vectors, dtype=np.float32, copy=True)
        if data.ndim != 2 or data.shape[0] == 0 or not np.isfinite(data).all():
            raise ValueError("fallback vectors must be a non-empty 2-D array of finite numbers")
        self.ids = np.arange(data.shape[0], dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if self.ids.shape != (data.shape[0],):
            raise ValueError(f"{data.shape[0]} fallback vectors but ids of shape {self.ids.shape}")
        self.metric = metric
        if metric == "Cosine":
            data /= np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-30)
        self.vectors = data

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def __call__(self, queries: np.ndarray, k: int) -> tuple[list[list[int]], list[list[float]]]:
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dimension:
            raise BadRequest(f"vectors have dimension {q.shape[-1]} but the fallback set has dimension {self.dimension}")
        if self.metric == "Cosine":
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        scores = q @ self.vectors.T
        if self.metric == "L2":  # squared distances, ascending
            scores = np.maximum((q * q).sum(axis=1, keepdims=True) - 2 * scores + (self.vectors * self.vectors).sum(axis=1), 0)
            order = np.argsort(scores, axis=1, kind="stable")
        else:  # similarity, descending
            order = np.argsort(-scores, axis=1, kind="stable")
        order = order[:, : min(k, self.vectors.shape[0])]
        picked = np.take_along_axis(scores, order, axis=1)
        return self.ids[order].tolist(), picked.astype(np.float32).tolist()
