"""Decoding database vector values is pure: pgvector text, bytea bytes, float arrays, NULLs."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from index_builder.errors import DimensionMismatch, InvalidIds, InvalidVectors, SourceInvalid
from index_builder.source_vectors import VectorValueError, decode_bytea, decode_vector, fill_rows, parse_pgvector


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[1,2,3]", [1, 2, 3]), (" [ -1.5 , 2e-3,0 ] ", [-1.5, 0.002, 0]), ("[]", []), ("[NaN,1]", [np.nan, 1])],
)
def test_pgvector_text_parses_to_float32(text: str, expected: list[float]) -> None:
    got = parse_pgvector(text)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array(expected, dtype=np.float32))


@pytest.mark.parametrize(
    "text", ["1,2,3", "[1,2", "[1,,2]", "[1,two]", "[__import__('os')]", "{1,2}", "[1;2]", ""]
)
def test_malformed_pgvector_text_is_rejected_rather_than_evaluated_or_truncated(text: str) -> None:
    with pytest.raises(VectorValueError):
        parse_pgvector(text)


def test_bytea_is_read_as_little_endian_float32() -> None:
    raw = struct.pack("<3f", 1.0, -2.5, 3.25)
    np.testing.assert_array_equal(decode_bytea(raw), np.array([1.0, -2.5, 3.25], dtype=np.float32))
    np.testing.assert_array_equal(decode_bytea(memoryview(raw)), decode_bytea(raw))
    assert decode_bytea(struct.pack(">f", 1.0))[0] != 1.0  # big-endian bytes are not silently accepted as-is


def test_bytea_whose_length_is_not_a_multiple_of_four_is_rejected() -> None:
    with pytest.raises(VectorValueError, match="7 bytes"):
        decode_bytea(b"\x00" * 7)


@pytest.mark.parametrize(
    ("value", "fmt", "message"),
    [([1.0, None], "float4[]", "NULL elements"), ([[1.0], [2.0]], "float4[]", "one-dimensional"),
     ("[1,2]", "float4[]", "array of floats"), ([1.0], "bytea", "expected bytea"), (b"\0" * 4, "pgvector", "pgvector text")],
)
def test_a_value_of_the_wrong_shape_or_type_for_its_format_is_rejected(value: Any, fmt: str, message: str) -> None:
    with pytest.raises(VectorValueError, match=message):
        decode_vector(value, fmt)


def _fill(ids: list[Any], values: list[Any], fmt: str = "float4[]", dim: int = 2, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    out, out_ids = np.zeros((start + len(ids), dim), np.float32), np.zeros(start + len(ids), np.int64)
    fill_rows(ids, values, out, out_ids, start=start, fmt=fmt, name="pg://t", id_column="id", vector_column="vec")
    return out, out_ids


def test_rows_are_written_at_the_batch_offset() -> None:
    out, ids = _fill([7, 9], ["[1,2]", "[3,4]"], fmt="pgvector", start=1)
    np.testing.assert_array_equal(out, [[0, 0], [1, 2], [3, 4]])
    np.testing.assert_array_equal(ids, [0, 7, 9])


def test_a_null_vector_names_its_id() -> None:
    with pytest.raises(InvalidVectors, match="vec is NULL for id 42"):
        _fill([1, 42], [[1.0, 2.0], None])


def test_a_null_id_is_an_id_error() -> None:
    with pytest.raises(InvalidIds, match="id is NULL at row 1"):
        _fill([1, None], [[1.0, 2.0], [3.0, 4.0]])


def test_a_non_integer_id_column_is_a_source_error_naming_the_type() -> None:
    with pytest.raises(SourceInvalid, match="got str"):
        _fill(["a"], [[1.0, 2.0]])


def test_a_short_vector_after_the_first_names_its_id_and_length() -> None:
    with pytest.raises(InvalidVectors, match=r"id 5 has 1 values \(4 bytes\), expected 2"):
        _fill([4, 5], [struct.pack("<2f", 1, 2), struct.pack("<f", 1)], fmt="bytea")


def test_a_first_vector_of_another_dimension_is_a_dimension_mismatch() -> None:
    with pytest.raises(DimensionMismatch, match="dimension 3 .* spec.dimension is 2"):
        _fill([4], [[1.0, 2.0, 3.0]])
