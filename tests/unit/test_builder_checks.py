"""Source validation on in-memory arrays and local files: each problem has its own code and says where."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from index_builder import errors
from index_builder.checks import check_count, check_ids, check_shape, check_values
from index_builder.errors import (
    DimensionMismatch, InvalidIds, InvalidVectors, SourceInvalid, TooFewVectors, termination_line,
)
from index_builder.measure import latency_percentiles, recall_at_k
from index_builder.params import resolve
from index_builder.source import open_npy
from indexops_api.spec import IndexParameters, IndexType, Metric

NAME = "s3://embeddings/6h/vectors.npy"


def _vectors(n: int = 10, d: int = 4) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)


def test_a_one_dimensional_array_is_rejected_as_invalid_source() -> None:
    with pytest.raises(SourceInvalid, match=r"expected a 2-D \(n, 4\) matrix, got shape \(10,\)"):
        check_shape((10,), np.dtype("float32"), name=NAME, dimension=4)


@pytest.mark.parametrize("dtype", ["int64", "uint8", "bool", "complex64"])
def test_non_float_dtypes_are_rejected_naming_the_dtype(dtype: str) -> None:
    with pytest.raises(SourceInvalid, match=f"dtype {dtype} is not a float type"):
        check_shape((10, 4), np.dtype(dtype), name=NAME, dimension=4)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_float_dtypes_are_accepted_and_the_row_count_returned(dtype: str) -> None:
    assert check_shape((10, 4), np.dtype(dtype), name=NAME, dimension=4) == 10


def test_a_dimension_mismatch_names_both_dimensions_and_the_object() -> None:
    with pytest.raises(DimensionMismatch) as caught:
        check_shape((10, 8), np.dtype("float32"), name=NAME, dimension=4)
    assert str(caught.value) == f"{NAME}: vectors have dimension 8 but spec.dimension is 4"


def test_nan_and_inf_rows_are_counted_and_the_first_row_is_named_across_chunks() -> None:
    data = _vectors(20)
    data[13, 1] = np.nan
    data[17, 0] = -np.inf
    data[18] = np.nan  # one row, many NaNs: counted once
    with pytest.raises(InvalidVectors, match=r"3 of 20 vectors contain NaN or Inf \(first at row 13"):
        check_values(data, name=NAME, metric=Metric.L2, chunk_rows=4)


def test_float64_values_beyond_float32_range_count_as_inf() -> None:
    data = _vectors().astype(np.float64)
    data[2, 2] = 1e300
    with pytest.raises(InvalidVectors, match="first at row 2"):
        check_values(data, name=NAME, metric=Metric.L2)


def test_zero_vectors_are_rejected_only_under_cosine() -> None:
    data = _vectors(12)
    data[[5, 9]] = 0.0
    check_values(data, name=NAME, metric=Metric.L2)
    check_values(data, name=NAME, metric=Metric.INNER_PRODUCT)
    with pytest.raises(InvalidVectors, match=r"2 of 12 vectors are all zeros \(first at row 5\); metric Cosine"):
        check_values(data, name=NAME, metric=Metric.COSINE, chunk_rows=5)


def test_clean_vectors_pass_every_value_check() -> None:
    check_values(_vectors(100), name=NAME, metric=Metric.COSINE, chunk_rows=7)


def test_an_empty_source_is_too_few_vectors() -> None:
    with pytest.raises(TooFewVectors, match="contains 0 vectors"):
        check_count(0, name=NAME, min_vectors=1, index_type=IndexType.FLAT, resolved=resolve(IndexType.FLAT, IndexParameters(), 0))


def test_fewer_than_min_vectors_is_too_few_vectors() -> None:
    with pytest.raises(TooFewVectors, match="contains 99 vectors, fewer than validation.minVectors=100"):
        check_count(99, name=NAME, min_vectors=100, index_type=IndexType.HNSW,
                    resolved=resolve(IndexType.HNSW, IndexParameters(), 99))


def test_fewer_vectors_than_ivf_lists_is_too_few_to_train() -> None:
    resolved = resolve(IndexType.IVF, IndexParameters(nlist=256), 100)
    with pytest.raises(TooFewVectors, match="nlist=256 needs at least 256 to train"):
        check_count(100, name=NAME, min_vectors=1, index_type=IndexType.IVF, resolved=resolved)


def test_default_ivf_parameters_always_fit_the_data() -> None:
    for n in (1, 2, 38, 39, 40, 1000):
        check_count(n, name=NAME, min_vectors=1, index_type=IndexType.IVF, resolved=resolve(IndexType.IVF, IndexParameters(), n))


def test_valid_ids_are_returned_as_int64() -> None:
    out = check_ids(np.array([5, 3, 9], dtype=np.uint32), name="ids", n=3)
    assert out.dtype == np.int64 and out.tolist() == [5, 3, 9]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (np.arange(4, dtype=np.int64), "holds 4 ids but the vectors have 3 rows"),
        (np.array([1.0, 2.0, 3.0]), "dtype float64 is not an integer type"),
        (np.arange(3, dtype=np.int64).reshape(3, 1), r"expected a 1-D array of 3 ids, got shape \(3, 1\)"),
        (np.array([4, -1, 2], dtype=np.int64), r"1 ids are negative \(first at row 1\)"),
        (np.array([7, 8, 7], dtype=np.int64), r"1 rows repeat an earlier id \(first: id 7 at row 2\)"),
        (np.array([2**63 + 5, 1, 2], dtype=np.uint64), "do not fit in int64"),
    ],
)
def test_bad_ids_are_invalid_ids_with_a_precise_message(ids: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidIds, match=message):
        check_ids(ids, name="ids", n=3)


def test_duplicate_ids_report_how_many_rows_repeat_and_the_earliest_repeat() -> None:
    ids = np.array([1, 2, 3, 2, 1, 1], dtype=np.int64)
    with pytest.raises(InvalidIds, match=r"3 rows repeat an earlier id \(first: id 2 at row 3\)"):
        check_ids(ids, name="ids", n=6)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def test_open_npy_rejects_bytes_that_are_not_npy(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    path.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(SourceInvalid, match=r"x.npy is not a .npy file \(starts with b'PK"):
        open_npy(path, name="x.npy")


def test_open_npy_reports_truncation_with_declared_and_actual_sizes(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    path.write_bytes(_npy(_vectors(100, 8))[:1000])
    with pytest.raises(SourceInvalid, match=r"is truncated: its header declares shape \(100, 8\) float32 \(3328 bytes\) but the file holds 1000 bytes"):
        open_npy(path, name="x.npy")


def test_open_npy_refuses_pickled_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    path.write_bytes(_npy(np.array([{"a": 1}], dtype=object)))
    with pytest.raises(SourceInvalid, match="holds Python objects"):
        open_npy(path, name="x.npy")


def test_open_npy_memory_maps_a_valid_matrix(tmp_path: Path) -> None:
    data = _vectors(50, 8)
    path = tmp_path / "x.npy"
    path.write_bytes(_npy(data))
    opened = open_npy(path, name="x.npy")
    assert isinstance(opened, np.memmap) and np.array_equal(opened, data)


def test_every_failure_class_has_its_own_code() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.BuildFailure)
               and c is not errors.BuildFailure]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)) >= 10


def test_termination_line_is_one_line_and_at_most_4_kib_even_with_multibyte_text() -> None:
    line = termination_line("InvalidVectors", "first line\nsecond ü line " + "é" * 5000)
    assert line.startswith("InvalidVectors: first line second ü line")
    assert "\n" not in line and len(line.encode()) <= 4096 and line.endswith("...")


def test_recall_counts_the_overlap_per_query_and_ignores_missing_results() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    approx = np.array([[3, 2, 9], [4, -1, -1]])
    assert recall_at_k(approx, exact, 3) == pytest.approx((2 + 1) / 6)


def test_latency_percentiles_are_in_milliseconds_and_ordered() -> None:
    p50, p95, p99 = latency_percentiles([i / 1000 for i in range(1, 101)])
    assert p50 == pytest.approx(50.5) and p50 <= p95 <= p99 <= 100
