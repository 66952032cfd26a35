"""The analysis window: overlap@k, per-version counters and the /v1/status ``rollout`` shape."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from index_serving.analysis import LATENCY_BOUNDS_MS, AnalysisWindow, overlap_at_k, overlap_sum
from indexops_api.pointer import ServingPointer

SINCE = datetime(2026, 11, 22, 2, 30, tzinfo=timezone.utc)


def window() -> AnalysisWindow:
    pointer = ServingPointer(generation=7, stable_version="v1", candidate_version="v2", candidate_percent=10,
                             shadow_percent=20, updated_at="2026-11-22T02:29:00Z")
    return AnalysisWindow.open(pointer, SINCE)


@pytest.mark.parametrize(("stable", "candidate", "k", "expected"), [
    ([1, 2, 3, 4], [1, 2, 3, 4], 4, 1.0),
    ([1, 2, 3, 4], [4, 3, 2, 1], 4, 1.0),  # order within the top k does not matter
    ([1, 2, 3, 4], [1, 2, 9, 8], 4, 0.5),
    ([1, 2, 3, 4], [5, 6, 7, 8], 4, 0.0),
    ([1, 2, 3, 4, 5], [1, 9, 9, 9, 5], 2, 0.5),  # only the first k of each answer count
    ([1, 2, 3], [1, 2, 3], 10, 1.0),  # fewer vectors than k: identical answers agree fully
    ([1, 2, 3, 4], [1], 4, 0.25),  # a short candidate answer is not excused
    ([], [], 5, 1.0),
])
def test_overlap_at_k_is_the_shared_share_of_the_top_k(stable: list[int], candidate: list[int], k: int,
                                                       expected: float) -> None:
    assert overlap_at_k(stable, candidate, k) == pytest.approx(expected)


def test_overlap_sum_adds_the_per_query_overlaps_of_a_batch() -> None:
    assert overlap_sum([[1, 2], [3, 4], [5, 6]], [[1, 2], [3, 9], [7, 8]], 2) == pytest.approx(1.5)


def test_overlap_sum_refuses_answers_that_do_not_pair_up() -> None:
    with pytest.raises(ValueError, match="2 stable answers but 1 candidate"):
        overlap_sum([[1], [2]], [[1]], 1)


def test_a_new_window_lists_both_pointer_versions_with_zero_counters_in_the_operator_s_shape() -> None:
    assert window().to_wire() == {
        "generation": 7, "since": "2026-11-22T02:30:00Z", "stableVersion": "v1", "candidateVersion": "v2",
        "candidatePercent": 10, "shadowPercent": 20,
        "versions": {
            v: {"role": role, "requests": 0, "errors": 0, "fallbacks": 0,
                "latencyMs": {"le": list(LATENCY_BOUNDS_MS), "counts": [0] * 13, "count": 0, "sumMs": 0.0},
                "shadow": {"queries": 0, "overlapSum": 0.0, "k": 0, "errors": 0}}
            for v, role in (("v1", "stable"), ("v2", "candidate"))
        },
    }


def test_latency_buckets_are_cumulative_with_inclusive_upper_bounds() -> None:
    w = window()
    for ms in (0.2, 0.5, 0.7, 3.0, 4000.0, 9000.0):
        w.record_request("v1", seconds=ms / 1000)
    latency = w.to_wire()["versions"]["v1"]["latencyMs"]
    assert latency["counts"] == [2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5]
    assert (latency["count"], latency["sumMs"]) == (6, pytest.approx(13004.4))


def test_errors_and_fallbacks_count_as_requests_but_add_no_latency() -> None:
    w = window()
    w.record_request("v2", seconds=0.001)
    w.record_request("v2", error=True, fallback=True)
    w.record_request("v1", seconds=0.002)
    versions = w.to_wire()["versions"]
    assert {k: versions["v2"][k] for k in ("requests", "errors", "fallbacks")} == {"requests": 2, "errors": 1, "fallbacks": 1}
    assert versions["v2"]["latencyMs"]["count"] == 1
    assert (versions["v1"]["requests"], versions["v1"]["errors"]) == (1, 0)


def test_shadow_comparisons_are_recorded_under_the_candidate() -> None:
    w = window()
    w.record_shadow("v2", queries=3, overlap=2.5, k=10)
    w.record_shadow("v2", queries=1, overlap=1.0, k=10)
    w.record_shadow_error("v2")
    wire = w.to_wire()["versions"]
    assert wire["v2"]["shadow"] == {"queries": 4, "overlapSum": 3.5, "k": 10, "errors": 1}
    assert wire["v1"]["shadow"]["queries"] == 0


def test_a_version_not_named_by_the_pointer_gets_its_own_entry_with_a_candidate_role() -> None:
    w = window()
    w.record_request("v9", seconds=0.001)
    assert w.to_wire()["versions"]["v9"]["role"] == "candidate"
