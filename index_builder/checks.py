"""Pure checks of the source data, each failing with a typed error that names the object.

Bad data must stop a build before it costs anything and say precisely what is wrong:
which object, which row, how many. The checks work on any array-like with numpy
semantics (in-memory arrays in unit tests, read-only memmaps of multi-GB sources in
Jobs), scanning values in row chunks so memory stays bounded.
"""

from __future__ import annotations

import numpy as np

from index_builder.errors import DimensionMismatch, InvalidIds, InvalidVectors, SourceInvalid, TooFewVectors
from index_builder.params import ResolvedParameters, min_vectors_to_train
from indexops_api.spec import IndexType, Metric

CHUNK_ROWS = 65536


def check_shape(shape: tuple[int, ...], dtype: np.dtype, *, name: str, dimension: int) -> int:
    """A 2-D float matrix with ``dimension`` columns; returns the row count."""
    if len(shape) != 2:
        raise SourceInvalid(f"{name}: expected a 2-D (n, {dimension}) matrix, got shape {tuple(shape)}")
    if dtype.kind != "f":
        raise SourceInvalid(f"{name}: dtype {dtype} is not a float type; store float32 (float16/float64 are converted)")
    if shape[1] != dimension:
        raise DimensionMismatch(f"{name}: vectors have dimension {shape[1]} but spec.dimension is {dimension}")
    return int(shape[0])


def check_count(
    n: int, *, name: str, min_vectors: int, index_type: IndexType, resolved: ResolvedParameters
) -> None:
    """Enough vectors for ``validation.minVectors`` and for the index type to train."""
    if n == 0:
        raise TooFewVectors(f"{name}: contains 0 vectors")
    if n < min_vectors:
        raise TooFewVectors(f"{name}: contains {n} vectors, fewer than validation.minVectors={min_vectors}")
    needed = min_vectors_to_train(index_type, resolved)
    if n < needed:
        raise TooFewVectors(
            f"{name}: contains {n} vectors but indexType {index_type.value} with nlist={resolved.build['nlist']} "
            f"needs at least {needed} to train (39 per list recommended); lower parameters.nlist"
        )


def check_values(matrix: np.ndarray, *, name: str, metric: Metric, chunk_rows: int = CHUNK_ROWS) -> None:
    """No NaN/Inf after conversion to float32; no all-zero rows under Cosine."""
    nonfinite, first_nonfinite = 0, -1
    zero, first_zero = 0, -1
    for start in range(0, matrix.shape[0], chunk_rows):
        with np.errstate(over="ignore", invalid="ignore"):
            chunk = np.asarray(matrix[start : start + chunk_rows], dtype=np.float32)
        bad = ~np.isfinite(chunk).all(axis=1)
        if bad.any():
            nonfinite += int(bad.sum())
            if first_nonfinite < 0:
                first_nonfinite = start + int(np.argmax(bad))
        if metric is Metric.COSINE:
            zeros = ~(chunk != 0).any(axis=1) & ~bad
            if zeros.any():
                zero += int(zeros.sum())
                if first_zero < 0:
                    first_zero = start + int(np.argmax(zeros))
    if nonfinite:
        raise InvalidVectors(
            f"{name}: {nonfinite} of {matrix.shape[0]} vectors contain NaN or Inf "
            f"(first at row {first_nonfinite}; float64 values beyond float32 range count as Inf)"
        )
    if zero:
        raise InvalidVectors(
            f"{name}: {zero} of {matrix.shape[0]} vectors are all zeros (first at row {first_zero}); "
            "metric Cosine cannot normalise them"
        )


def check_ids(ids: np.ndarray, *, name: str, n: int) -> np.ndarray:
    """A 1-D array of ``n`` distinct non-negative integers; returned as int64."""
    if ids.ndim != 1:
        raise InvalidIds(f"{name}: expected a 1-D array of {n} ids, got shape {tuple(ids.shape)}")
    if ids.dtype.kind not in "iu":
        raise InvalidIds(f"{name}: dtype {ids.dtype} is not an integer type; store int64 ids")
    if ids.shape[0] != n:
        raise InvalidIds(f"{name}: holds {ids.shape[0]} ids but the vectors have {n} rows")
    if ids.dtype.kind == "u" and n and int(ids.max()) > np.iinfo(np.int64).max:
        raise InvalidIds(f"{name}: ids above {np.iinfo(np.int64).max} do not fit in int64")
    out = np.asarray(ids, dtype=np.int64)
    if n and int(out.min()) < 0:
        negative = out < 0
        raise InvalidIds(
            f"{name}: {int(negative.sum())} ids are negative (first at row {int(np.argmax(negative))}); "
            "ids must be >= 0 (-1 means 'no result' to FAISS)"
        )
    order = np.argsort(out, kind="stable")
    ordered = out[order]
    repeats = ordered[1:] == ordered[:-1]
    if repeats.any():
        rows = order[1:][repeats]
        first = int(rows.min())
        raise InvalidIds(
            f"{name}: {int(repeats.sum())} rows repeat an earlier id (first: id {int(out[first])} at row {first})"
        )
    return out
