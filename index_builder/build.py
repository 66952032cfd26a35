"""Constructing, training and filling the FAISS index from a (possibly memmapped) matrix.

The index stores row positions 0..n-1 only; user ids live in ``ids.npy`` next to it, so
every index type works the same way (no IndexIDMap wrappers) and serving maps
positions to ids with one array lookup. Cosine is implemented the standard FAISS way:
L2-normalise vectors (and, at search time, queries) and use inner product.

Data is fed in batches converted to contiguous float32 one at a time, so the source
matrix is never copied whole on top of what the index itself holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faiss
import numpy as np

from index_builder.logs import Progress
from index_builder.params import ResolvedParameters, train_sample_size
from indexops_api.spec import IndexType, Metric

log = logging.getLogger(__name__)

BATCH_BYTES = 64 * 1024 * 1024


def faiss_metric(metric: Metric) -> int:
    return faiss.METRIC_L2 if metric is Metric.L2 else faiss.METRIC_INNER_PRODUCT


def factory_string(index_type: IndexType, resolved: ResolvedParameters) -> str:
    if index_type is IndexType.FLAT:
        return "Flat"
    if index_type is IndexType.HNSW:
        return f"HNSW{resolved.build['m']},Flat"
    if index_type is IndexType.IVF:
        return f"IVF{resolved.build['nlist']},Flat"
    raise ValueError(f"unsupported indexType {index_type!r}")


def new_index(dimension: int, metric: Metric, index_type: IndexType, resolved: ResolvedParameters) -> faiss.Index:
    index = faiss.index_factory(dimension, factory_string(index_type, resolved), faiss_metric(metric))
    if index_type is IndexType.HNSW:
        faiss.downcast_index(index).hnsw.efConstruction = resolved.build["efConstruction"]
    return index


def apply_search_parameters(index: faiss.Index, search: dict[str, int]) -> None:
    """Set efSearch / nprobe (wire names) on an index, whatever wrapper it comes in."""
    space = faiss.ParameterSpace()
    for name, value in search.items():
        space.set_index_parameter(index, name, value)


def prepare(rows: np.ndarray, metric: Metric) -> np.ndarray:
    """Contiguous float32 copy of ``rows``, L2-normalised for Cosine."""
    out = np.array(rows, dtype=np.float32, order="C", copy=True)
    if metric is Metric.COSINE:
        faiss.normalize_L2(out)
    return out


def batch_rows(dimension: int) -> int:
    return max(1024, BATCH_BYTES // (4 * dimension))


def batches(matrix: np.ndarray, metric: Metric, rows: int) -> Iterator[np.ndarray]:
    for start in range(0, matrix.shape[0], rows):
        yield prepare(matrix[start : start + rows], metric)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted distinct row numbers, reproducible from ``seed``."""
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)


def train(index: faiss.Index, matrix: np.ndarray, metric: Metric, resolved: ResolvedParameters, seed: int) -> int:
    """Train if the type needs it; returns the number of training rows used."""
    if index.is_trained:
        return 0
    n = matrix.shape[0]
    rows = sample_rows(n, train_sample_size(n, resolved.build["nlist"]), seed)
    sample = prepare(matrix[rows], metric)
    log.info("training", extra={"rows": len(rows), "of": n, "nlist": resolved.build["nlist"]})
    index.train(sample)
    return len(rows)


def add_all(index: faiss.Index, matrix: np.ndarray, metric: Metric, progress_every: float = 10.0) -> None:
    n, dimension = matrix.shape
    progress = Progress("add", n, every_seconds=progress_every)
    for batch in batches(matrix, metric, batch_rows(dimension)):
        index.add(batch)
        progress.advance(batch.shape[0])
    if index.ntotal != n:
        raise RuntimeError(f"index holds {index.ntotal} vectors after adding {n}")
