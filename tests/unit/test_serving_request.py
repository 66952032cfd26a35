"""Search request validation: every malformed body is a BadRequest that says what to fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from index_serving.errors import BadRequest
from index_serving.request import check_queries, parse_search_request


def _body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_a_valid_body_becomes_a_float32_matrix_with_k_and_key() -> None:
    parsed = parse_search_request(_body(vectors=[[1, 2.5], [3, 4]], k=3, key="user-1"))
    assert parsed.vectors.dtype == np.float32 and parsed.vectors.flags.c_contiguous
    assert parsed.vectors.tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert (parsed.k, parsed.key) == (3, "user-1")


def test_k_defaults_to_10_and_key_to_none() -> None:
    parsed = parse_search_request(_body(vectors=[[0.0]]))
    assert (parsed.k, parsed.key) == (10, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"\xff\xfe", "body is not valid JSON"),
        (b"[[1, 2]]", "body must be a JSON object"),
        (_body(vectors=[[1.0]], limit=3), r"unknown fields \['limit'\]"),
        (_body(k=3), "vectors must be a non-empty list"),
        (_body(vectors=[]), "vectors must be a non-empty list"),
        (_body(vectors=[1.0, 2.0]), r"vectors\[0\] must be a non-empty list of numbers"),
        (_body(vectors=[[]]), r"vectors\[0\] must be a non-empty list of numbers"),
        (_body(vectors=[[1.0, 2.0], [1.0]]), r"ragged: vectors\[0\] has 2 values but vectors\[1\] has 1"),
        (_body(vectors=[[1.0, "2"]]), r"vectors\[0\]\[1\] is str, not a number"),
        (_body(vectors=[[1.0, True]]), r"vectors\[0\]\[1\] is bool, not a number"),
        (_body(vectors=[[1.0, None]]), r"vectors\[0\]\[1\] is NoneType, not a number"),
        (b'{"vectors": [[1.0, NaN]]}', r"vectors\[0\]\[1\] is NaN, Inf or beyond float32 range"),
        (b'{"vectors": [[1.0], [Infinity]]}', r"vectors\[1\]\[0\] is NaN, Inf or beyond float32 range"),
        (_body(vectors=[[1e39]]), r"vectors\[0\]\[0\] is NaN, Inf or beyond float32 range"),
        (_body(vectors=[[10**400]]), "too large for float32"),
        (_body(vectors=[[1.0]], k=0), "k must be an integer between 1 and 1000, got 0"),
        (_body(vectors=[[1.0]], k=1001), "k must be an integer between 1 and 1000, got 1001"),
        (_body(vectors=[[1.0]], k=2.5), "k must be an integer between 1 and 1000"),
        (_body(vectors=[[1.0]], k=True), "k must be an integer between 1 and 1000"),
        (_body(vectors=[[1.0]], key=7), "key must be a non-empty string"),
        (_body(vectors=[[1.0]], key="x" * 257), "key must be a non-empty string of at most 256"),
        (_body(vectors=[[1.0]] * 1025), "too many vectors: 1025 > 1024 per request"),
    ],
)
def test_malformed_bodies_are_bad_requests_with_a_precise_message(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_search_request(body)


def test_exactly_1024_vectors_and_k_1000_are_accepted() -> None:
    parsed = parse_search_request(_body(vectors=[[1.0, 2.0]] * 1024, k=1000))
    assert parsed.vectors.shape == (1024, 2) and parsed.k == 1000


def test_a_dimension_different_from_the_index_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="vectors have dimension 3 but the index has dimension 4"):
        check_queries(np.zeros((2, 3), np.float32), dimension=4, cosine=False)


def test_a_zero_query_vector_is_a_bad_request_only_under_cosine() -> None:
    queries = np.array([[1, 0], [0, 0]], dtype=np.float32)
    check_queries(queries, dimension=2, cosine=False)
    with pytest.raises(BadRequest, match=r"vectors\[1\] is all zeros; metric Cosine"):
        check_queries(queries, dimension=2, cosine=True)
