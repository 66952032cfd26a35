"""Pure checks of the source data and of the built index.

Source checks fail fast with a typed error that names the object. Index checks
(structural: counts, dimension, file sizes; functional: k results per query, no
duplicate ids in a row, monotonic distances) never raise: each returns a
``CheckResult`` that goes into ``manifest.checks`` whether it passed or not, and the
operator's gates refuse a version with any failed check.

Bad data must stop a build before it costs anything and say precisely what is wrong:
which object, which row, how many. The checks work on any array-like with numpy
semantics (in-memory arrays in unit tests, read-only memmaps of multi-GB sources in
Jobs), scanning values in row chunks so memory stays bounded.
"""

from __future__ import annotations

import numpy as np

from index_builder.errors import DimensionMismatch, InvalidIds, InvalidVectors, SourceInvalid, TooFewVectors
from index_builder.params import ResolvedParameters, min_vectors_to_train
from indexops_api.manifest import CheckResult
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
        raise TooFewVectors(f"{name}: contains {n} vectors but {_training_requirement(index_type, resolved, needed)}")


def _training_requirement(index_type: IndexType, resolved: ResolvedParameters, needed: int) -> str:
    b = resolved.build
    if index_type is IndexType.IVF:
        return (f"indexType IVF with nlist={b['nlist']} needs at least {needed} to train "
                "(39 per list recommended); lower parameters.nlist")
    if index_type is IndexType.IVFPQ:
        return (f"indexType IVFPQ with nlist={b['nlist']}, mPq={b['mPq']} ({1 << b['mPq']} PQ centroids) needs at "
                f"least {needed} to train (39 per centroid recommended); lower parameters.nlist or parameters.mPq")
    return (f"indexType {index_type.value} with mPq={b['mPq']} needs at least {needed} to train its PQ and OPQ "
            "rotation (256 centroids each; 39 per centroid recommended); use HNSW or Flat for so few vectors")


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


# -- checks of the built index (recorded, never raised) ------------------------------------


def check_equal(name: str, what: str, actual: int, expected: int) -> CheckResult:
    """``actual == expected`` as a named check, e.g. ``ntotalMatchesVectors``."""
    passed = actual == expected
    return CheckResult(name=name, passed=passed, detail=f"{what} {actual}" + ("" if passed else f", expected {expected}"))


def check_queries_held_out(*, indexed: int, vectors: int, queries: int, k: int) -> CheckResult:
    """Recall was measured with the query rows absent from the index (appended only afterwards)."""
    passed = queries >= 1 and indexed == vectors - queries
    detail = (f"recall@{k} measured on {queries} source rows held out of the index, which held {indexed} of "
              f"{vectors} vectors while measured; the {queries} rows were added afterwards "
              f"(positions {vectors - queries}..{vectors - 1})")
    return CheckResult(name="queriesHeldOut", passed=passed,
                       detail=detail if passed else f"{detail}; expected {vectors - queries} while measured")


def check_files_not_empty(sizes: dict[str, int]) -> CheckResult:
    empty = sorted(name for name, size in sizes.items() if size <= 0)
    detail = ", ".join(f"{name}={size}B" for name, size in sorted(sizes.items()))
    return CheckResult(name="filesNotEmpty", passed=not empty and bool(sizes), detail=detail)


def check_results_have_k(labels: np.ndarray, k: int) -> CheckResult:
    """Every sampled query got ``k`` real results (FAISS pads missing ones with -1)."""
    short = (labels[:, :k] < 0).any(axis=1) if labels.size else np.zeros(0, dtype=bool)
    if not short.any():
        return CheckResult(name="searchReturnsK", passed=True, detail=f"{labels.shape[0]} queries x k={k}")
    row = int(np.argmax(short))
    found = int((labels[row, :k] >= 0).sum())
    return CheckResult(name="searchReturnsK", passed=False,
                       detail=f"{int(short.sum())} of {labels.shape[0]} queries got fewer than k={k} results "
                              f"(first: query {row} got {found}); raise efSearch/nprobe or lower k")


def check_no_duplicate_ids(labels: np.ndarray) -> CheckResult:
    for row, found in enumerate(labels):
        valid = found[found >= 0]
        if len(np.unique(valid)) != len(valid):
            return CheckResult(name="noDuplicateIds", passed=False, detail=f"query {row} returned a position twice")
    return CheckResult(name="noDuplicateIds", passed=True, detail=f"{labels.shape[0]} result rows")


def check_distances_monotonic(distances: np.ndarray, labels: np.ndarray, metric: Metric) -> CheckResult:
    """Ascending distances for L2, descending similarities for InnerProduct/Cosine."""
    order = "ascending" if metric is Metric.L2 else "descending"
    for row, (dist, found) in enumerate(zip(distances, labels)):
        d = dist[found >= 0].astype(np.float64)
        steps = np.diff(d) if metric is Metric.L2 else -np.diff(d)
        tolerance = 1e-5 * max(1.0, float(np.abs(d).max()) if d.size else 1.0)
        if (steps < -tolerance).any():
            at = int(np.argmax(steps < -tolerance))
            return CheckResult(name="distancesMonotonic", passed=False,
                               detail=f"query {row}: distance {d[at + 1]:g} after {d[at]:g} is not {order}")
    return CheckResult(name="distancesMonotonic", passed=True, detail=f"{order} ({metric.value})")
