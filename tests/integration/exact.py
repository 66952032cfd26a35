"""Independent recall checks for the builder: exact neighbours in float64 numpy, no builder code.

The builder measures recall with its validation rows held out of the index and appends
them afterwards, so the published index is not the index it measured (HNSW links, for
one, change when nodes are added). ``capture_measured_indexes`` keeps a copy of the
index exactly as the builder measured it (the only thing taken from the builder run);
the exact neighbours and the recall arithmetic here are computed independently.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import pytest


def brute_force_topk(data: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact top-k row numbers of ``data`` for each query under ``metric`` (L2, InnerProduct or Cosine)."""
    x, q = data.astype(np.float64), queries.astype(np.float64)
    if metric == "Cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    norms = (x * x).sum(axis=1)[None, :]
    out = []
    for start in range(0, q.shape[0], 256):  # bounded memory: 256 x n scores at a time
        scores = q[start:start + 256] @ x.T
        if metric == "L2":  # -|q - x|^2 up to the per-query constant |q|^2
            scores = 2 * scores - norms
        out.append(_top(scores, k))
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Column numbers of the ``k`` largest scores per row, best first (ties: lower column first)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.tile(np.arange(k), (len(scores), 1))
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    return np.take_along_axis(part, order, axis=1)


def overlap(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over queries of ``|found ∩ truth| / k`` (``-1``, FAISS's 'no result', never matches)."""
    return float(np.mean([len(set(f[f >= 0].tolist()) & set(t.tolist())) / k for f, t in zip(found[:, :k], truth[:, :k])]))


def held_out_recall(found_ids: np.ndarray, data: np.ndarray, rows: np.ndarray, ids: np.ndarray, k: int, metric: str) -> float:
    """Recall@k of ``found_ids`` for the queries ``data[rows]`` vs numpy brute force over every *other* row.

    ``ids`` are the source's ids in source order; ``found_ids`` are ids too (-1: no result).
    """
    others = np.setdiff1d(np.arange(data.shape[0]), rows)
    truth = ids[others[brute_force_topk(data[others], data[rows], k, metric)]]
    return overlap(found_ids, truth, k)


def leave_one_out_recall(found_rows: np.ndarray, data: np.ndarray, rows: np.ndarray, k: int, metric: str) -> float:
    """The old, optimistic scheme: queries are indexed rows; their own row is dropped from both results.

    ``found_rows`` are source rows searched with ``k + 1`` results. Only used to show that
    test data is one where this scheme over-states recall.
    """
    exact = brute_force_topk(data, data[rows], k + 1, metric)
    approx = np.stack([_without(f, r, k) for f, r in zip(found_rows, rows)])
    truth = np.stack([_without(e, r, k) for e, r in zip(exact, rows)])
    return overlap(approx, truth, k)


def _without(found: np.ndarray, row: int, k: int) -> np.ndarray:
    kept = [x for x in found.tolist() if x != row][:k]
    return np.array(kept + [-1] * (k - len(kept)), dtype=np.int64)


def search_ids(index: Any, queries: np.ndarray, k: int, ids_in_index_order: np.ndarray,
               search: dict[str, int], metric: str) -> np.ndarray:
    """Ids of the top-k results of ``index`` with ``search`` parameters (Cosine: queries normalised)."""
    space = faiss.ParameterSpace()
    for name, value in search.items():
        space.set_index_parameter(index, name, value)
    xq = np.ascontiguousarray(queries, dtype=np.float32).copy()
    if metric == "Cosine":
        faiss.normalize_L2(xq)
    _, labels = index.search(xq, k)
    return np.where(labels >= 0, ids_in_index_order[np.maximum(labels, 0)], -1)


def in_source_order(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per-position ``values`` of a published index (kept rows, then the held-out ``rows``) in source order."""
    n = values.shape[0]
    source_row_at = np.concatenate([np.setdiff1d(np.arange(n), rows), rows])
    return values[np.argsort(source_row_at)]


def capture_measured_indexes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Copies of each index as ``index_builder.measure.measure`` saw it, appended as builds run in-process."""
    from index_builder import measure

    captured: list[Any] = []
    original = measure.measure

    def spy(index: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(index, *args, **kwargs)
        captured.append(faiss.deserialize_index(faiss.serialize_index(index)))
        return result

    monkeypatch.setattr(measure, "measure", spy)
    return captured
