"""Canary routing is a consistent hash: stable per key, close to the percent, monotone in it."""

from __future__ import annotations

import hashlib

import pytest

from index_serving.routing import goes_to_candidate, request_key, route_bucket

KEYS = [f"key-{i}" for i in range(10_000)]


def test_the_bucket_is_sha256_of_the_key_modulo_100() -> None:
    for key in ("user-1", "cell:42:17", "ü-ñ"):
        assert route_bucket(key) == int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100


def test_a_key_always_routes_the_same_way() -> None:
    first = [goes_to_candidate(k, 37) for k in KEYS[:500]]
    assert [goes_to_candidate(k, 37) for k in KEYS[:500]] == first


@pytest.mark.parametrize("percent", [1, 5, 10, 25, 50, 90])
def test_the_candidate_share_over_10k_keys_is_within_2_points_of_the_percent(percent: int) -> None:
    share = sum(goes_to_candidate(k, percent) for k in KEYS) / len(KEYS)
    assert abs(share - percent / 100) < 0.02


def test_zero_percent_never_and_hundred_percent_always_route_to_the_candidate() -> None:
    assert not any(goes_to_candidate(k, 0) for k in KEYS)
    assert all(goes_to_candidate(k, 100) for k in KEYS)


def test_raising_the_percent_only_moves_keys_from_stable_to_candidate() -> None:
    at_10 = {k for k in KEYS if goes_to_candidate(k, 10)}
    at_20 = {k for k in KEYS if goes_to_candidate(k, 20)}
    assert at_10 < at_20


def test_a_given_key_is_kept_and_a_missing_key_becomes_a_fresh_random_id() -> None:
    assert request_key("user-7") == "user-7"
    generated = {request_key(None) for _ in range(100)} | {request_key("")}
    assert len(generated) == 101
