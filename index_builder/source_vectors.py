"""Pure decoding of database vector values into float32 rows.

A vector reaches the builder as a Python value whose shape depends on how it is stored:
``float4[]`` arrives as a list of floats, ``bytea`` as little-endian float32 bytes, and
pgvector's ``vector`` (or a text column holding the same form) as the text ``[1,2,3]``.
Everything here is free of I/O so the edge cases (NULLs, wrong lengths, malformed text)
are table-tested without a database; text is parsed by numpy, never evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from index_builder.errors import DimensionMismatch, InvalidIds, InvalidVectors, SourceInvalid

FORMATS = ("float4[]", "bytea", "pgvector")


class VectorValueError(ValueError):
    """A single value is not a vector of the declared format (the caller adds which row)."""


def parse_pgvector(text: str) -> np.ndarray:
    """pgvector's text form ``[1,2.5,-3e-2]`` as float32; no ``eval``, no silent truncation."""
    body = text.strip()
    if len(body) < 2 or body[0] != "[" or body[-1] != "]":
        raise VectorValueError(f"expected pgvector text like '[1,2,3]', got {_preview(text)}")
    inner = body[1:-1].strip()
    if not inner:
        return np.zeros(0, dtype=np.float32)
    parts = inner.split(",")
    try:
        values = np.array([p.strip() for p in parts], dtype=np.float64)
    except ValueError as exc:
        raise VectorValueError(f"not a list of numbers: {_preview(text)}") from exc
    return values.astype(np.float32)


def decode_bytea(raw: bytes | bytearray | memoryview) -> np.ndarray:
    """Little-endian float32 values; the length must be a multiple of 4."""
    size = len(raw)
    if size % 4:
        raise VectorValueError(f"bytea of {size} bytes is not a whole number of float32 values (4 bytes each)")
    return np.frombuffer(bytes(raw), dtype="<f4").astype(np.float32, copy=False)


def decode_float_array(value: Any) -> np.ndarray:
    """A ``float4[]``/``float8[]``/``numeric[]`` value (a Python list) as float32."""
    if not isinstance(value, (list, tuple)):
        raise VectorValueError(f"expected an array of floats, got {type(value).__name__} {_preview(value)}")
    if any(v is None for v in value):  # numpy would turn None into NaN silently
        raise VectorValueError("the array contains NULL elements")
    try:
        out = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise VectorValueError(f"the array holds non-numbers: {_preview(value)}") from exc
    if out.ndim != 1:
        raise VectorValueError(f"expected a one-dimensional array, got {out.ndim} dimensions")
    return out


def decode_vector(value: Any, fmt: str) -> np.ndarray:
    if fmt == "float4[]":
        return decode_float_array(value)
    if fmt == "bytea":
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise VectorValueError(f"expected bytea, got {type(value).__name__} {_preview(value)}")
        return decode_bytea(value)
    if fmt == "pgvector":
        if not isinstance(value, str):
            raise VectorValueError(f"expected pgvector text, got {type(value).__name__} {_preview(value)}")
        return parse_pgvector(value)
    raise ValueError(f"unknown vector format {fmt!r}")


def fill_rows(
    ids: Sequence[Any], vectors: Sequence[Any], out: np.ndarray, out_ids: np.ndarray, *,
    start: int, fmt: str, name: str, id_column: str, vector_column: str,
) -> None:
    """Decode one batch into ``out[start:]`` / ``out_ids[start:]``, naming the id of any bad row."""
    dimension = out.shape[1]
    for offset, (row_id, value) in enumerate(zip(ids, vectors)):
        row = start + offset
        if row_id is None:
            raise InvalidIds(f"{name}: {id_column} is NULL at row {row}")
        if isinstance(row_id, bool) or not isinstance(row_id, int):
            raise SourceInvalid(
                f"{name}: id column {id_column!r} must be an integer column, got {type(row_id).__name__} ({row_id!r})"
            )
        if value is None:
            raise InvalidVectors(f"{name}: {vector_column} is NULL for id {row_id}")
        try:
            vector = decode_vector(value, fmt)
        except VectorValueError as exc:
            raise InvalidVectors(f"{name}: {vector_column} of id {row_id} is not a {fmt} vector: {exc}") from exc
        if vector.shape[0] != dimension:
            unit = f" ({vector.shape[0] * 4} bytes)" if fmt == "bytea" else ""
            if row == 0:
                raise DimensionMismatch(
                    f"{name}: vectors have dimension {vector.shape[0]}{unit} (id {row_id}) but spec.dimension is {dimension}"
                )
            raise InvalidVectors(
                f"{name}: {vector_column} of id {row_id} has {vector.shape[0]} values{unit}, expected {dimension}"
            )
        out[row] = vector
        out_ids[row] = row_id


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
