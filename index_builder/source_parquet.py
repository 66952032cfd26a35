"""Parquet objects as (id, vector) rows, checked from the footer before any row is read.

The footer gives every object's row count and schema, so a wrong column type or a
missing column fails before data moves, and the float32 matrix is allocated once.
Rows are then decoded batch by batch, reading only the two configured columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from index_builder.errors import DimensionMismatch, InvalidIds, InvalidVectors, SourceInvalid

BATCH_ROWS = 65536


@dataclass(frozen=True)
class Columns:
    vector: str
    id: str | None


def check_schema(schema: pa.Schema, columns: Columns, *, name: str, dimension: int) -> None:
    """The vector column is a (fixed-size/large) list of floats; the id column an integer."""
    if columns.vector not in schema.names:
        raise SourceInvalid(f"{name}: vector column {columns.vector!r} not found (columns: {', '.join(schema.names)})")
    vtype = schema.field(columns.vector).type
    is_list = pa.types.is_list(vtype) or pa.types.is_large_list(vtype) or pa.types.is_fixed_size_list(vtype)
    if not is_list or not pa.types.is_floating(vtype.value_type):
        raise SourceInvalid(
            f"{name}: vector column {columns.vector!r} has type {vtype}; expected a list of float "
            "(list<float>, large_list<float> or fixed_size_list<float>)"
        )
    if pa.types.is_fixed_size_list(vtype) and vtype.list_size != dimension:
        raise DimensionMismatch(
            f"{name}: vectors have dimension {vtype.list_size} ({vtype}) but spec.dimension is {dimension}"
        )
    if columns.id is not None:
        if columns.id not in schema.names:
            raise SourceInvalid(f"{name}: id column {columns.id!r} not found (columns: {', '.join(schema.names)})")
        itype = schema.field(columns.id).type
        if not pa.types.is_integer(itype):
            raise SourceInvalid(f"{name}: id column {columns.id!r} has type {itype}; expected an integer type")


def row_count(fh: IO[bytes], columns: Columns, *, name: str, dimension: int) -> int:
    """Rows of one object, after checking its schema (reads the footer only)."""
    pf = _open(fh, name)
    check_schema(pf.schema_arrow, columns, name=name, dimension=dimension)
    return pf.metadata.num_rows


def open_checked(fh: IO[bytes], columns: Columns, *, name: str, dimension: int) -> pq.ParquetFile:
    """The file (footer read, schema checked); its row groups can then be read one by one."""
    pf = _open(fh, name)
    check_schema(pf.schema_arrow, columns, name=name, dimension=dimension)
    return pf


def read_row_group(pf: pq.ParquetFile, group: int, columns: Columns, dimension: int, *,
                   name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """One row group's vectors (and ids): only its column chunks of the two columns are read."""
    wanted = [columns.vector] + ([columns.id] if columns.id else [])
    first = sum(pf.metadata.row_group(g).num_rows for g in range(group))
    try:
        table = pf.read_row_group(group, columns=wanted)
        vectors = vectors_of(table.column(columns.vector).combine_chunks(), dimension, name=name,
                             column=columns.vector, first_row=first)
        ids = ids_of(table.column(columns.id).combine_chunks(), name=name, column=columns.id,
                     first_row=first) if columns.id else None
    except pa.ArrowException as exc:
        raise SourceInvalid(f"{name}: unreadable Parquet data: {exc}") from exc
    return vectors, ids


def read_into(
    fh: IO[bytes], columns: Columns, out: np.ndarray, out_ids: np.ndarray | None, *, start: int, name: str
) -> int:
    """Decode one object's rows into ``out[start:]`` (and ``out_ids``); returns the row count."""
    pf = _open(fh, name)
    dimension = out.shape[1]
    check_schema(pf.schema_arrow, columns, name=name, dimension=dimension)
    wanted = [columns.vector] + ([columns.id] if columns.id else [])
    row = start
    try:
        batches: Iterable[pa.RecordBatch] = pf.iter_batches(batch_size=BATCH_ROWS, columns=wanted)
        for batch in batches:
            count = batch.num_rows
            if row + count > out.shape[0]:
                raise SourceInvalid(f"{name}: holds more rows than its footer declares")
            out[row : row + count] = vectors_of(batch.column(columns.vector), dimension, name=name,
                                                column=columns.vector, first_row=row - start)
            if out_ids is not None and columns.id:
                out_ids[row : row + count] = ids_of(batch.column(columns.id), name=name, column=columns.id,
                                                    first_row=row - start)
            row += count
    except pa.ArrowException as exc:
        raise SourceInvalid(f"{name}: unreadable Parquet data: {exc}") from exc
    return row - start


def vectors_of(array: pa.Array, dimension: int, *, name: str, column: str, first_row: int = 0) -> np.ndarray:
    """A (rows, dimension) float array from a list-of-float Arrow array; names the first bad row."""
    if array.null_count:
        bad = first_row + int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidVectors(f"{name}: {array.null_count} vectors in column {column!r} are null (first at row {bad})")
    if pa.types.is_fixed_size_list(array.type):
        lengths = np.full(len(array), array.type.list_size)
    else:
        offsets = array.offsets.to_numpy()
        lengths = np.diff(offsets)
    wrong = lengths != dimension
    if wrong.any():
        first = int(np.argmax(wrong))
        if (lengths == lengths[0]).all() and first_row == 0:
            raise DimensionMismatch(f"{name}: vectors have dimension {int(lengths[0])} but spec.dimension is {dimension}")
        raise SourceInvalid(
            f"{name}: column {column!r} has ragged rows: row {first_row + first} has {int(lengths[first])} values, "
            f"expected {dimension} like the others"
        )
    values = array.flatten()
    if values.null_count:
        raise InvalidVectors(f"{name}: column {column!r} holds {values.null_count} null values inside vectors")
    return values.to_numpy(zero_copy_only=False).reshape(len(array), dimension)


def ids_of(array: pa.Array, *, name: str, column: str, first_row: int = 0) -> np.ndarray:
    if array.null_count:
        bad = first_row + int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidIds(f"{name}: {array.null_count} ids in column {column!r} are null (first at row {bad})")
    ids = array.to_numpy(zero_copy_only=False)
    if ids.dtype.kind == "u" and len(ids) and int(ids.max()) > np.iinfo(np.int64).max:
        raise InvalidIds(f"{name}: ids in column {column!r} above {np.iinfo(np.int64).max} do not fit in int64")
    return ids.astype(np.int64, copy=False)


def _open(fh: IO[bytes], name: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(fh)
    except (pa.ArrowException, OSError) as exc:
        raise SourceInvalid(f"{name} is not a readable Parquet file: {exc}") from exc
