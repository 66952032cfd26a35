"""The binary request formats and the size/width checks that run before any conversion."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from index_serving.errors import BadRequest
from index_serving.request import (
    NPY_TYPE, RAW_TYPE, check_body_size, max_json_bytes, parse_binary_request, parse_query_params, parse_search_request,
)


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_raw_little_endian_float32_rows_become_the_same_matrix_as_json() -> None:
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    raw = parse_binary_request(rows.astype("<f4").tobytes(), RAW_TYPE, k=5, key="u", declared_width=4, dimension=4)
    from_json = parse_search_request(json.dumps({"vectors": rows.tolist(), "k": 5, "key": "u"}).encode())
    assert np.array_equal(raw.vectors, from_json.vectors) and (raw.k, raw.key) == (from_json.k, from_json.key)


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_an_npy_body_of_one_or_several_rows_is_accepted(dtype: str) -> None:
    rows = np.random.default_rng(1).standard_normal((2, 4)).astype(dtype)
    assert parse_binary_request(npy(rows), NPY_TYPE, k=3, key=None, declared_width=None, dimension=4).vectors.shape == (2, 4)
    assert parse_binary_request(npy(rows[0]), NPY_TYPE, k=3, key=None, declared_width=None, dimension=4).vectors.shape == (1, 4)


@pytest.mark.parametrize(
    ("body", "ctype", "width", "message"),
    [
        (b"\x00" * 12, RAW_TYPE, 4, "multiple of 4 x 4 bytes"),
        (b"\x00" * 16, RAW_TYPE, 8, "dimension 8 but the index has dimension 4"),
        (b"\x00" * 16, RAW_TYPE, 7_800_000, "outside 1..65536"),
        (np.full((1, 4), np.nan, "<f4").tobytes(), RAW_TYPE, 4, "NaN, Inf"),
        (b"not npy at all", NPY_TYPE, None, "magic"),
        (npy(np.zeros((2, 5), "<f4")), NPY_TYPE, None, "dimension 5 but the index has dimension 4"),
        (npy(np.zeros((2, 4), "<i8")), NPY_TYPE, None, "float32 or float64"),
        (npy(np.zeros((2, 4), ">f4")), NPY_TYPE, None, "little-endian"),
        (npy(np.zeros((2, 2, 4), "<f4")), NPY_TYPE, None, "shape must be"),
        (npy(np.zeros((2, 4), "<f4"))[:-3], NPY_TYPE, None, "needs 32"),
        (npy(np.zeros((1025, 4), "<f4")), NPY_TYPE, None, "too many vectors"),
    ],
)
def test_malformed_binary_bodies_are_bad_requests(body: bytes, ctype: str, width: int | None, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_binary_request(body, ctype, k=3, key=None, declared_width=width, dimension=4)


def test_a_raw_body_of_a_wrong_width_is_refused_from_its_headers_alone() -> None:
    check_body_size(RAW_TYPE, 4 * 384, dimension=384, declared_width=384)
    with pytest.raises(BadRequest, match="dimension 768 but the index has dimension 384"):
        check_body_size(RAW_TYPE, 4 * 768, dimension=384, declared_width=768)
    with pytest.raises(BadRequest, match="outside 1..65536"):
        check_body_size(RAW_TYPE, 31_200_000, dimension=384, declared_width=7_800_000)


def test_a_json_body_too_large_for_1024_rows_of_the_index_dimension_is_refused_by_its_length() -> None:
    limit = max_json_bytes(384)
    assert limit is not None
    check_body_size("application/json", limit, dimension=384, declared_width=None)
    with pytest.raises(BadRequest, match="cannot hold at most 1024 vectors of dimension 384"):
        check_body_size("application/json", limit + 1, dimension=384, declared_width=None)


def test_a_json_row_with_more_values_than_any_valid_request_is_refused_before_parsing() -> None:
    body = b'{"vectors": [[' + b"1," * 20_000 + b"1]]}"
    with pytest.raises(BadRequest, match="more than 1024 vectors of dimension 4"):
        parse_search_request(body, dimension=4)


def test_a_json_row_of_the_wrong_width_names_both_widths() -> None:
    with pytest.raises(BadRequest, match="dimension 3 but the index has dimension 4"):
        parse_search_request(b'{"vectors": [[1, 2, 3]]}', dimension=4)


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"vectors": ' + b"[" * 3000 + b"]" * 3000 + b"}", b"{" * 10_000])
def test_deeply_nested_json_is_a_bad_request_not_a_recursion_error(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_search_request(body)


def test_query_parameters_give_k_key_and_the_declared_width() -> None:
    assert parse_query_params({"k": "7", "key": "user", "d": "384"}) == (7, "user", 384)
    assert parse_query_params({}) == (10, None, None)
    with pytest.raises(BadRequest, match="k must be an integer"):
        parse_query_params({"k": "ten"})
    with pytest.raises(BadRequest, match="between 1 and 1000"):
        parse_query_params({"k": "1001"})
