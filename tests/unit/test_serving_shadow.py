"""Shadow sampling is deterministic per key, and the shadow queue drops rather than blocks."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from index_serving.analysis import AnalysisWindow
from index_serving.metrics import ServingMetrics
from index_serving.routing import goes_to_candidate, goes_to_shadow
from index_serving.shadow import ShadowJob, ShadowWorker

KEYS = [f"key-{i}" for i in range(10_000)]


class FakeCandidate:
    """Answers fixed ids, optionally raising or blocking until released."""

    def __init__(self, ids: list[list[int]], fail: bool = False, gate: threading.Event | None = None):
        self.version = "v2"
        self.ids = ids
        self.fail = fail
        self.gate = gate
        self.entered = threading.Event()

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[int]], list[list[float]]]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise RuntimeError("candidate index is broken")
        return self.ids, [[0.0] * len(row) for row in self.ids]


def job(candidate: FakeCandidate, window: AnalysisWindow, stable_ids: list[list[int]]) -> ShadowJob:
    return ShadowJob(window, candidate, np.zeros((len(stable_ids), 4), dtype=np.float32), 2, stable_ids)


@pytest.fixture
def window() -> AnalysisWindow:
    return AnalysisWindow(3, datetime(2026, 1, 1, tzinfo=timezone.utc), "v1", "v2", 10, 50)


@pytest.fixture
def metrics() -> ServingMetrics:
    return ServingMetrics()


def test_shadow_sampling_is_the_same_for_a_key_every_time() -> None:
    assert [goes_to_shadow(k, 30) for k in KEYS[:500]] == [goes_to_shadow(k, 30) for k in KEYS[:500]]


@pytest.mark.parametrize("percent", [5, 10, 50])
def test_about_the_shadow_percent_of_stable_routed_keys_are_shadowed_even_at_or_below_the_candidate_percent(
    percent: int,
) -> None:
    stable_routed = [k for k in KEYS if not goes_to_candidate(k, 50)]
    share = sum(goes_to_shadow(k, percent) for k in stable_routed) / len(stable_routed)
    assert abs(share - percent / 100) < 0.03


def test_zero_percent_never_and_hundred_percent_always_shadows() -> None:
    assert not any(goes_to_shadow(k, 0) for k in KEYS) and all(goes_to_shadow(k, 100) for k in KEYS)


def test_the_worker_records_the_overlap_of_the_candidate_with_the_stable_answer(
    window: AnalysisWindow, metrics: ServingMetrics
) -> None:
    worker = ShadowWorker(metrics)
    assert worker.submit(job(FakeCandidate([[1, 2], [3, 9]]), window, [[1, 2], [3, 4]])) is True
    assert worker.wait_idle()
    worker.close()

    assert window.to_wire()["versions"]["v2"]["shadow"] == {"queries": 2, "overlapSum": 1.5, "k": 2, "errors": 0}
    assert metrics.registry.get_sample_value("faiss_serving_shadow_overlap_total", {"version": "v2"}) == 1.5
    assert metrics.registry.get_sample_value("faiss_serving_shadow_queries_total", {"version": "v2"}) == 2


def test_a_failing_shadow_search_is_counted_as_a_shadow_error_and_the_worker_carries_on(
    window: AnalysisWindow, metrics: ServingMetrics
) -> None:
    worker = ShadowWorker(metrics)
    worker.submit(job(FakeCandidate([[1, 2]], fail=True), window, [[1, 2]]))
    worker.submit(job(FakeCandidate([[1, 2]]), window, [[1, 2]]))
    assert worker.wait_idle()
    worker.close()
    assert window.to_wire()["versions"]["v2"]["shadow"] == {"queries": 1, "overlapSum": 1.0, "k": 2, "errors": 1}


def test_a_full_queue_drops_the_job_at_once_instead_of_blocking_the_request(
    window: AnalysisWindow, metrics: ServingMetrics
) -> None:
    gate = threading.Event()
    slow = FakeCandidate([[1, 2]], gate=gate)
    worker = ShadowWorker(metrics, capacity=1)
    assert worker.submit(job(slow, window, [[1, 2]])) is True
    assert slow.entered.wait(5)  # the worker is busy with the first job
    assert worker.submit(job(slow, window, [[1, 2]])) is True  # fills the queue's one slot

    started = time.perf_counter()
    accepted = worker.submit(job(slow, window, [[1, 2]]))
    elapsed = time.perf_counter() - started

    gate.set()
    assert worker.wait_idle()
    worker.close()
    assert accepted is False and elapsed < 0.05
    assert (worker.dropped, worker.completed) == (1, 2)
    assert metrics.registry.get_sample_value("faiss_serving_shadow_dropped_total") == 1
    assert window.to_wire()["versions"]["v2"]["shadow"]["queries"] == 2


def test_a_closed_worker_drops_submissions_until_reopened(window: AnalysisWindow, metrics: ServingMetrics) -> None:
    worker = ShadowWorker(metrics)
    worker.close()
    assert worker.submit(job(FakeCandidate([[1]]), window, [[1]])) is False
    worker.open()
    assert worker.submit(job(FakeCandidate([[1]]), window, [[1]])) is True
    assert worker.wait_idle()
    worker.close()
    assert worker.status()["running"] is False
