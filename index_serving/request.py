"""Pure parsing and validation of ``POST /v1/search`` bodies, JSON and binary.

Every malformed query gets a 400 with a message that says what to fix, rather than a
500 from deep inside FAISS (or, worse, a silently wrong answer: FAISS happily searches
NaN vectors). Checks that need the loaded index (the dimension, Cosine's non-zero
norm) are done by ``check_queries`` once the version is chosen.

Cost is bounded *before* anything is converted: the server calls ``check_body_size``
with the Content-Length and the index dimension before it reads a byte, and a JSON body
holding more numbers than the largest valid request (``max_vectors`` rows of the index
dimension) is refused by counting its commas (a C-speed scan) before a parser turns
them into Python floats. Binary bodies (raw little-endian float32 rows, or ``.npy``)
declare their width in a header, so a wrong width is refused with no body read at all.

JSON is parsed with orjson (its depth limit turns deep nesting into a 400, never a
``RecursionError``); a body orjson refuses but Python's ``json`` accepts (``NaN``,
``Infinity``, integers beyond 64 bits, as ``json.dumps`` writes them) is re-read by the
standard library only to give the precise message, and only when it is small.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from index_serving.errors import BadRequest

MAX_VECTORS = 1024
MAX_K = 1000
MAX_KEY_LENGTH = 256
DEFAULT_K = 10
MAX_DIMENSION = 65536  # widest index a binary request may declare before the index is known
# Bytes one coordinate may take in JSON ("-2.2250738585072014e-308" plus separators and
# indentation); a body above max_vectors * dimension * this cannot be a valid request.
JSON_BYTES_PER_NUMBER = 48
JSON_SLACK_BYTES = 4096
STDLIB_RETRY_BYTES = 1 << 20  # re-parse refused bodies with json only up to 1 MiB (for the message)

JSON_TYPE = "application/json"
RAW_TYPE = "application/octet-stream"  # little-endian float32 rows, width in X-Dimension or ?d=
NPY_TYPE = "application/x-npy"  # a .npy file of shape (n, d) or (d,), dtype <f4 or <f8
BINARY_TYPES = (RAW_TYPE, NPY_TYPE)


@dataclass(frozen=True)
class SearchRequest:
    vectors: np.ndarray  # (nq, d) float32, C-contiguous
    k: int
    key: str | None


# Exact types: bool is an int subclass but never a coordinate; JSON gives only int/float.
_NUMBER_TYPES = (int, float)


def max_json_bytes(dimension: int | None, max_vectors: int = MAX_VECTORS) -> int | None:
    """Largest JSON body that can hold ``max_vectors`` rows of ``dimension`` (None: unknown)."""
    if dimension is None:
        return None
    return max_vectors * dimension * JSON_BYTES_PER_NUMBER + JSON_SLACK_BYTES


def check_body_size(content_type: str, length: int | None, *, dimension: int | None, declared_width: int | None,
                    max_vectors: int = MAX_VECTORS) -> None:
    """Refuse a body by its declared size alone, before it is read."""
    if content_type in BINARY_TYPES:
        if content_type == RAW_TYPE:
            width = _check_width(declared_width, dimension)
            if length is not None and (length == 0 or length % (4 * width)):
                raise BadRequest(f"a raw float32 body must be a non-empty multiple of 4 x {width} bytes, got {length}")
            if length is not None and length // (4 * width) > max_vectors:
                raise BadRequest(f"too many vectors: {length // (4 * width)} > {max_vectors} per request")
        elif length is not None and dimension is not None and length > max_vectors * dimension * 8 + 1024:
            raise BadRequest(f"a .npy body of {length} bytes is larger than {max_vectors} float64 rows of dimension {dimension}")
        return
    limit = max_json_bytes(dimension, max_vectors)
    if length is not None and limit is not None and length > limit:
        raise BadRequest(f"a JSON body of {length} bytes cannot hold at most {max_vectors} vectors of dimension "
                         f"{dimension}; split the batch or send binary ({RAW_TYPE})")


def parse_query_params(params: Any, max_k: int = MAX_K) -> tuple[int, str | None, int | None]:
    """``k``, ``key`` and the declared width ``d`` of a binary request (from the query string/headers)."""
    k = _int_param(params.get("k"), "k", DEFAULT_K)
    if not 1 <= k <= max_k:
        raise BadRequest(f"k must be an integer between 1 and {max_k}, got {k!r}")
    key = params.get("key")
    if key is not None and (not key or len(key) > MAX_KEY_LENGTH):
        raise BadRequest(f"key must be a non-empty string of at most {MAX_KEY_LENGTH} characters")
    width = params.get("d")
    return k, key, None if width is None else _int_param(width, "d", 0)


def parse_binary_request(body: bytes, content_type: str, *, k: int, key: str | None, declared_width: int | None,
                         dimension: int | None, max_vectors: int = MAX_VECTORS) -> SearchRequest:
    """Raw float32 rows or a ``.npy`` array; the width is checked before any conversion."""
    if content_type == RAW_TYPE:
        width = _check_width(declared_width, dimension)
        if not body or len(body) % (4 * width):
            raise BadRequest(f"a raw float32 body must be a non-empty multiple of 4 x {width} bytes, got {len(body)}")
        matrix = np.frombuffer(body, dtype="<f4").reshape(-1, width)
    else:
        matrix = _read_npy(body, dimension)
    if matrix.shape[0] > max_vectors:
        raise BadRequest(f"too many vectors: {matrix.shape[0]} > {max_vectors} per request")
    with np.errstate(over="ignore", invalid="ignore"):
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    _check_finite(matrix, None)
    return SearchRequest(vectors=matrix, k=k, key=key)


def parse_search_request(body: bytes, *, max_vectors: int = MAX_VECTORS, max_k: int = MAX_K,
                         dimension: int | None = None) -> SearchRequest:
    """Validate a JSON body ``{"vectors": [[...]], "k": 10, "key": "optional"}``."""
    if dimension is not None:  # more numbers than the largest valid request: refuse before parsing
        numbers = body.count(b",") + 1
        if numbers > max_vectors * (dimension + 1) + MAX_KEY_LENGTH + 16:
            raise BadRequest(f"the body holds about {numbers} values, more than {max_vectors} vectors of dimension {dimension}")
    data = _loads(body)
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
    first = vectors[0]
    if dimension is not None and isinstance(first, list) and first and len(first) != dimension:
        raise BadRequest(f"vectors have dimension {len(first)} but the index has dimension {dimension}")
    matrix = _fast_matrix(vectors, body)
    if matrix is None:
        matrix = _checked_matrix(vectors)
    _check_finite(matrix, vectors)
    return SearchRequest(vectors=matrix, k=k, key=key)


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if len(body) > STDLIB_RETRY_BYTES:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
        error: Exception = exc
    try:  # NaN / Infinity / huge integers: valid for Python's json, refused below with a precise message
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest(f"body is not valid JSON: {error}") from None


def _fast_matrix(vectors: list[Any], body: bytes) -> np.ndarray | None:
    """One numpy conversion when the rows are plain numbers; None sends it to the precise checks."""
    if b"true" in body or b"false" in body or b"null" in body:
        return None  # a bool or null may hide among the numbers: let the precise path name it
    try:
        matrix = np.array(vectors)
    except (ValueError, TypeError, OverflowError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] == 0 or matrix.dtype.kind not in "fi":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(matrix, dtype=np.float32)


def _checked_matrix(vectors: list[Any]) -> np.ndarray:
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
            return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    except OverflowError as exc:  # ints beyond float range
        raise BadRequest(f"vectors contain a number too large for float32: {exc}") from exc


def _check_finite(matrix: np.ndarray, vectors: list[Any] | None) -> None:
    finite = np.isfinite(matrix)
    if not finite.all():
        i, j = (int(x) for x in np.argwhere(~finite)[0])
        value = vectors[i][j] if vectors is not None else matrix[i, j]
        raise BadRequest(f"vectors[{i}][{j}] is NaN, Inf or beyond float32 range ({value!r})")


def _check_width(declared: int | None, dimension: int | None) -> int:
    width = declared if declared is not None else dimension
    if width is None:
        raise BadRequest("a raw float32 body needs its width: header X-Dimension or query parameter d")
    if not 1 <= width <= MAX_DIMENSION:
        raise BadRequest(f"declared dimension {width} is outside 1..{MAX_DIMENSION}")
    if dimension is not None and width != dimension:
        raise BadRequest(f"vectors have dimension {width} but the index has dimension {dimension}")
    return width


_NPY_DTYPES = {"<f4": np.float32, "<f8": np.float64}


def _read_npy(body: bytes, dimension: int | None) -> np.ndarray:
    """A ``.npy`` (version 1-3) header is parsed and checked before the data is looked at."""
    if len(body) < 10 or body[:6] != b"\x93NUMPY":
        raise BadRequest("body is not a .npy file (magic \\x93NUMPY missing)")
    major = body[6]
    if major == 1:
        (size,), start = struct.unpack("<H", body[8:10]), 10
    elif major in (2, 3) and len(body) >= 12:
        (size,), start = struct.unpack("<I", body[8:12]), 12
    else:
        raise BadRequest(f".npy version {major} is not supported")
    if size > 4096 or start + size > len(body):
        raise BadRequest(".npy header is truncated or too long")
    import ast

    try:
        header = ast.literal_eval(body[start:start + size].decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        raise BadRequest(".npy header is not a valid dict with descr, fortran_order and shape") from None
    if descr not in _NPY_DTYPES or fortran is not False:
        raise BadRequest(f".npy dtype must be little-endian float32 or float64 in C order, got {descr!r}")
    if len(shape) == 1:
        shape = (1, *shape)
    if len(shape) != 2 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise BadRequest(f".npy shape must be (n, d) or (d,), got {tuple(header['shape'])}")
    if dimension is not None and shape[1] != dimension:
        raise BadRequest(f"vectors have dimension {shape[1]} but the index has dimension {dimension}")
    itemsize = np.dtype(descr).itemsize
    data = body[start + size:]
    if len(data) != shape[0] * shape[1] * itemsize:
        raise BadRequest(f".npy data has {len(data)} bytes, its shape {shape} needs {shape[0] * shape[1] * itemsize}")
    return np.frombuffer(data, dtype=descr).reshape(shape)


def _int_param(raw: Any, name: str, default: int) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer, got {str(raw)[:40]!r}") from None


def check_queries(vectors: np.ndarray, *, dimension: int, cosine: bool) -> None:
    """Checks that depend on the version answering the query."""
    if vectors.shape[1] != dimension:
        raise BadRequest(f"vectors have dimension {vectors.shape[1]} but the index has dimension {dimension}")
    if cosine:
        zero = ~(vectors != 0).any(axis=1)
        if zero.any():
            raise BadRequest(f"vectors[{int(np.argmax(zero))}] is all zeros; metric Cosine needs a non-zero vector")


def as_queries(vectors: Any, k: int) -> np.ndarray:
    """The library's own validation (the HTTP server has already done stricter checks)."""
    queries = np.ascontiguousarray(vectors, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries.reshape(1, -1)
    if queries.ndim != 2 or queries.shape[0] == 0 or queries.shape[1] == 0 or not np.isfinite(queries).all():
        raise BadRequest("vectors must be a non-empty 2-D array of finite numbers")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise BadRequest(f"k must be a positive integer, got {k!r}")
    return queries
