"""Canary routing is a consistent hash: stable per key, close to the percent, monotone in it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from index_serving.routing import goes_to_candidate, goes_to_shadow, request_key, route_bucket

KEYS = [f"key-{i}" for i in range(10_000)]


def test_the_bucket_is_sha256_of_the_key_modulo_100() -> None:
    for key in ("user-1", "cell:42:17", "ü-ñ"):
        assert route_bucket(key) == int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100


def test_a_key_always_routes_the_same_way() -> None:
    first = [goes_to_candidate(k, 37) for k in KEYS[:500]]
    assert [goes_to_candidate(k, 37) for k in KEYS[:500]] == first


# Written down once; any replica, any release, any Python process must agree with them.
FIXED_BUCKETS = {"user-1": 79, "user-2": 95, "session-9f3": 86, "cell:42:17": 29, "ü-ñ": 30, "": 49}
FIXED_SHADOW_BUCKETS = {"user-1": 27, "user-2": 98, "session-9f3": 42, "cell:42:17": 87, "ü-ñ": 51, "": 95}


def test_keys_land_in_the_buckets_written_down_here() -> None:
    assert {k: route_bucket(k) for k in FIXED_BUCKETS} == FIXED_BUCKETS
    assert {k: route_bucket(f"shadow:{k}") for k in FIXED_SHADOW_BUCKETS} == FIXED_SHADOW_BUCKETS


_CHILD = """
import json, sys
from index_serving.routing import goes_to_candidate, goes_to_shadow, route_bucket
keys = json.load(sys.stdin)
json.dump({"buckets": [route_bucket(k) for k in keys], "candidate": [goes_to_candidate(k, 37) for k in keys],
           "shadow": [goes_to_shadow(k, 20) for k in keys], "salted": [hash(k) % 100 for k in keys]}, sys.stdout)
"""


def _route_in_a_new_process(keys: list[str], hash_seed: str) -> dict[str, list]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(keys), capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    return json.loads(done.stdout)


def test_every_process_routes_a_key_the_same_way_whatever_its_hash_seed() -> None:
    keys = KEYS[:300] + list(FIXED_BUCKETS)
    runs = [_route_in_a_new_process(keys, seed) for seed in ("0", "1", "4242")]
    assert runs[0]["salted"] != runs[1]["salted"] != runs[2]["salted"]  # the seeds do change Python's hash()
    here = {"buckets": [route_bucket(k) for k in keys], "candidate": [goes_to_candidate(k, 37) for k in keys],
            "shadow": [goes_to_shadow(k, 20) for k in keys]}
    for run in runs:
        assert {name: run[name] for name in here} == here


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
