"""Pure parsing and validation of ``POST /v1/search`` bodies.

Every malformed query gets a 400 with a message that says what to fix, rather than a
500 from deep inside FAISS (or, worse, a silently wrong answer: FAISS happily searches
NaN vectors). Checks that need the loaded index (the dimension, Cosine's non-zero
norm) are done by ``check_queries`` once the version is chosen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from index_serving.errors import BadRequest

MAX_VECTORS = 1024
MAX_K = 1000
MAX_KEY_LENGTH = 256
DEFAULT_K = 10


@dataclass(frozen=True)
class SearchRequest:
    vectors: np.ndarray  # (nq, d) float32, C-contiguous
    k: int
    key: str | None


# Exact types: bool is an int subclass but never a coordinate; JSON gives only int/float.
_NUMBER_TYPES = (int, float)


def parse_search_request(body: bytes, *, max_vectors: int = MAX_VECTORS, max_k: int = MAX_K) -> SearchRequest:
    """Validate a JSON body ``{"vectors": [[...]], "k": 10, "key": "optional"}``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest('body must be a JSON object like {"vectors": [[...]], "k": 10}')
    unknown = sorted(set(data) - {"vectors", "k", "key"})
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; allowed: vectors, k, key")

    k = data.get("k", DEFAULT_K)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= max_k:
        raise BadRequest(f"k must be an integer between 1 and {max_k}, got {k!r}")

    key = data.get("key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH):
        raise BadRequest(f"key must be a non-empty string of at most {MAX_KEY_LENGTH} characters")

    vectors = data.get("vectors")
    if not isinstance(vectors, list) or not vectors:
        raise BadRequest("vectors must be a non-empty list of vectors (lists of numbers)")
    if len(vectors) > max_vectors:
        raise BadRequest(f"too many vectors: {len(vectors)} > {max_vectors} per request")
    width = None
    for i, row in enumerate(vectors):
        if not isinstance(row, list) or not row:
            raise BadRequest(f"vectors[{i}] must be a non-empty list of numbers")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise BadRequest(f"vectors are ragged: vectors[0] has {width} values but vectors[{i}] has {len(row)}")
        if not all(type(value) in _NUMBER_TYPES for value in row):
            j = next(j for j, value in enumerate(row) if type(value) not in _NUMBER_TYPES)
            raise BadRequest(f"vectors[{i}][{j}] is {type(row[j]).__name__}, not a number")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    except OverflowError as exc:  # ints beyond float range
        raise BadRequest(f"vectors contain a number too large for float32: {exc}") from exc
    finite = np.isfinite(matrix)
    if not finite.all():
        i, j = (int(x) for x in np.argwhere(~finite)[0])
        raise BadRequest(f"vectors[{i}][{j}] is NaN, Inf or beyond float32 range ({vectors[i][j]!r})")
    return SearchRequest(vectors=matrix, k=k, key=key)


def check_queries(vectors: np.ndarray, *, dimension: int, cosine: bool) -> None:
    """Checks that depend on the version answering the query."""
    if vectors.shape[1] != dimension:
        raise BadRequest(f"vectors have dimension {vectors.shape[1]} but the index has dimension {dimension}")
    if cosine:
        zero = ~(vectors != 0).any(axis=1)
        if zero.any():
            raise BadRequest(f"vectors[{int(np.argmax(zero))}] is all zeros; metric Cosine needs a non-zero vector")
