"""Exact nearest neighbours in float64 numpy, independent of FAISS, for recall checks."""

from __future__ import annotations

import numpy as np


def brute_force_topk(data: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact top-k row numbers for ``metric`` (L2, InnerProduct or Cosine)."""
    x, q = data.astype(np.float64), queries.astype(np.float64)
    if metric == "L2":
        scores = -((q[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    else:
        if metric == "Cosine":
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
        scores = q @ x.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def without_self(labels: np.ndarray, rows: np.ndarray, k: int) -> list[list[int]]:
    """Leave-one-out: each row's result without the query's own row, first ``k``."""
    return [[int(x) for x in found if x != row][:k] for found, row in zip(labels.tolist(), rows.tolist())]


def leave_one_out_recall(index, queries: np.ndarray, data: np.ndarray, rows: np.ndarray, k: int, metric: str) -> float:
    """Recall@k of ``index`` vs numpy brute force, both excluding each query's own row."""
    _, approx = index.search(queries, k + 1)
    exact = brute_force_topk(data, data[rows], k + 1, metric)
    pairs = zip(without_self(approx, rows, k), without_self(exact, rows, k))
    return float(np.mean([len(set(a) & set(e)) / k for a, e in pairs]))
