"""Parquet columns are checked from the schema and decoded from Arrow arrays without I/O."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from index_builder.errors import DimensionMismatch, InvalidIds, InvalidVectors, SourceInvalid
from index_builder.source_parquet import Columns, check_schema, ids_of, vectors_of
from index_builder.source_s3 import S3Object, fingerprint


def _schema(**fields: pa.DataType) -> pa.Schema:
    return pa.schema(list(fields.items()))


@pytest.mark.parametrize(
    "vtype", [pa.list_(pa.float32()), pa.large_list(pa.float64()), pa.list_(pa.float16()), pa.list_(pa.float32(), 4)]
)
def test_lists_of_floats_are_accepted_as_vector_columns(vtype: pa.DataType) -> None:
    check_schema(_schema(embedding=vtype, id=pa.int32()), Columns("embedding", "id"), name="o", dimension=4)


@pytest.mark.parametrize(
    ("schema", "columns", "error", "message"),
    [
        (_schema(embedding=pa.list_(pa.int64())), Columns("embedding", None), SourceInvalid, r"type list<item: int64>"),
        (_schema(embedding=pa.binary()), Columns("embedding", None), SourceInvalid, "type binary"),
        (_schema(vec=pa.list_(pa.float32())), Columns("embedding", None), SourceInvalid, "not found .columns: vec"),
        (_schema(embedding=pa.list_(pa.float32()), id=pa.string()), Columns("embedding", "id"), SourceInvalid, "type string"),
        (_schema(embedding=pa.list_(pa.float32())), Columns("embedding", "key"), SourceInvalid, "id column 'key' not found"),
        (_schema(embedding=pa.list_(pa.float32(), 3)), Columns("embedding", None), DimensionMismatch, "dimension 3"),
    ],
)
def test_schema_problems_name_the_column_and_its_actual_type(
    schema: pa.Schema, columns: Columns, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        check_schema(schema, columns, name="s3://b/k.parquet", dimension=4)


def test_list_arrays_decode_to_a_row_matrix_even_when_sliced() -> None:
    array = pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], type=pa.list_(pa.float32())).slice(1)
    np.testing.assert_array_equal(vectors_of(array, 2, name="o", column="c"), [[3, 4], [5, 6]])


def test_ragged_rows_name_the_row_and_its_length() -> None:
    array = pa.array([[1.0, 2.0], [3.0]], type=pa.list_(pa.float32()))
    with pytest.raises(SourceInvalid, match="row 11 has 1 values, expected 2"):
        vectors_of(array, 2, name="o", column="c", first_row=10)


def test_uniformly_wrong_lengths_are_a_dimension_mismatch() -> None:
    with pytest.raises(DimensionMismatch, match="dimension 3"):
        vectors_of(pa.array([[1.0, 2.0, 3.0]] * 2), 2, name="o", column="c")


def test_null_vectors_and_null_elements_are_invalid_vectors() -> None:
    with pytest.raises(InvalidVectors, match="first at row 1"):
        vectors_of(pa.array([[1.0, 2.0], None], type=pa.list_(pa.float32())), 2, name="o", column="c")
    with pytest.raises(InvalidVectors, match="null values inside"):
        vectors_of(pa.array([[1.0, None]], type=pa.list_(pa.float32())), 2, name="o", column="c")


def test_null_ids_are_invalid_ids() -> None:
    with pytest.raises(InvalidIds, match="first at row 2"):
        ids_of(pa.array([1, 2, None]), name="o", column="id")
    assert ids_of(pa.array([1, 2], type=pa.uint16()), name="o", column="id").dtype == np.int64


def test_a_prefix_fingerprint_changes_when_any_object_changes_and_keeps_the_newest_time() -> None:
    from datetime import datetime, timezone

    t1, t2 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
    objs = [S3Object("b", "p/a.npy", 1, '"e1"', t2), S3Object("b", "p/b.npy", 1, '"e2"', t1)]
    etag, newest = fingerprint(objs)
    changed, _ = fingerprint([objs[0], S3Object("b", "p/b.npy", 1, '"e3"', t1)])
    assert etag.startswith("sha256:") and etag != changed and newest == t2.isoformat()
    assert fingerprint(objs[:1]) == ('"e1"', t2.isoformat())
