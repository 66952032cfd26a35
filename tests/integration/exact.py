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
