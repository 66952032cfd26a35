"""IndexRuntime's rollout analysis: per-generation windows, fallbacks, shadowing, memory and flag.

Runs against the in-memory store of ``test_serving_runtime`` (no network); a version's
search is made to fail by wrapping it in a ``LoadedVersion`` subclass.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_serving_runtime import DIM, PREFIX, Clock, MemoryStore, key_routed

from index_serving.errors import BadRequest, NoIndexLoaded, VersionRejected
from index_serving.fallback import ExactFallback
from index_serving.loader import LoadedVersion, VersionLoader, warm_up
from index_serving.memory import MemoryReading
from index_serving.routing import goes_to_candidate, goes_to_shadow
from index_serving.runtime import IndexRuntime

POINTER = "p/ns/idx/6h/pointer.json"


class FailingVersion(LoadedVersion):
    def search_arrays(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise RuntimeError("faiss exploded")


def failing(lv: LoadedVersion) -> FailingVersion:
    return FailingVersion(**{f.name: getattr(lv, f.name) for f in fields(lv)})


class BreakingLoader:
    """A real loader whose versions in ``broken`` load fine but fail every search afterwards."""

    def __init__(self, inner: VersionLoader, broken: set[str]):
        self.inner, self.broken = inner, broken

    def load(self, version: str, admit: Any = None, **options: Any) -> LoadedVersion:
        loaded = self.inner.load(version, admit, **options)
        return failing(loaded) if version in self.broken else loaded

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Wall:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 2, 30, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def make(store: MemoryStore, wall: Wall, tmp_path: Path) -> Any:
    def build(broken: frozenset[str] = frozenset(), **options: Any) -> IndexRuntime:
        loader = BreakingLoader(VersionLoader(store, PREFIX, tmp_path), set(broken))  # type: ignore[arg-type]
        return IndexRuntime(store, POINTER, tmp_path, poll_seconds=2.0, clock=options.pop("clock", Clock()),  # type: ignore[arg-type]
                            wall_clock=wall, loader=loader, **options)  # type: ignore[arg-type]
    return build


def rollout(runtime: IndexRuntime) -> dict[str, Any]:
    return runtime.status()["rollout"]


def counts(runtime: IndexRuntime, version: str) -> tuple[int, int, int, int]:
    v = rollout(runtime)["versions"][version]
    return v["requests"], v["errors"], v["fallbacks"], v["latencyMs"]["count"]


def test_the_window_opens_when_a_generation_is_applied_and_counts_answered_requests_only(
    store: MemoryStore, make: Any
) -> None:
    runtime = make()
    assert runtime.status()["rollout"] is None
    store.publish("v1", seed=1)
    store.point(1, "v1")
    runtime.refresh()
    runtime.search(np.zeros((3, DIM)), 2)
    runtime.search(np.zeros(DIM), 2)
    with pytest.raises(BadRequest):
        runtime.search(np.zeros(DIM + 1), 2)  # a 4xx is not a request of any version

    status = runtime.status()
    assert (status["appliedGeneration"], status["rollout"]["generation"]) == (1, 1)
    assert status["rollout"]["since"] == "2026-11-22T02:30:00Z"
    assert (status["rollout"]["stableVersion"], status["rollout"]["candidateVersion"]) == ("v1", None)
    assert counts(runtime, "v1") == (2, 0, 0, 2)
    assert [v["version"] for v in status["versions"]] == ["v1"]


def test_a_step_change_restarts_the_counters_even_with_the_same_versions(
    store: MemoryStore, make: Any, wall: Wall
) -> None:
    runtime = make()
    store.publish("v1", seed=1)
    store.publish("v2", seed=2)
    store.point(6, "v1", candidate="v2", percent=10)
    runtime.refresh()
    runtime.search(np.zeros(DIM), 1, key=key_routed(True, 10))
    runtime.search(np.zeros(DIM), 1, key=key_routed(False, 10))
    assert counts(runtime, "v2")[0] == 1

    wall.now += timedelta(minutes=5)
    store.point(7, "v1", candidate="v2", percent=50)
    assert runtime.refresh() is True

    window = rollout(runtime)
    assert (window["generation"], window["since"], window["candidatePercent"]) == (7, "2026-11-22T02:35:00Z", 50)
    assert counts(runtime, "v1") == counts(runtime, "v2") == (0, 0, 0, 0)
    assert {v: e["role"] for v, e in window["versions"].items()} == {"v1": "stable", "v2": "candidate"}


def test_the_window_stays_on_the_last_applied_generation_while_the_new_candidate_cannot_load(
    store: MemoryStore, make: Any
) -> None:
    runtime = make()
    store.publish("v1", seed=1)
    store.publish("v2", seed=2, corrupt=True)
    store.point(6, "v1")
    runtime.refresh()
    store.point(7, "v1", candidate="v2", percent=10)
    runtime.refresh()

    status = runtime.status()
    assert (status["pointerGeneration"], status["appliedGeneration"], status["rollout"]["generation"]) == (7, 6, 6)


def test_a_candidate_search_that_raises_is_answered_by_stable_and_counted_as_error_and_fallback(
    store: MemoryStore, make: Any
) -> None:
    runtime = make(broken=frozenset({"v2"}))
    data = store.publish("v1", seed=1)
    store.publish("v2", seed=2)
    store.point(1, "v1", candidate="v2", percent=50)
    runtime.refresh()

    result = runtime.search(data[4], 1, key=key_routed(True, 50))

    assert (result.version, result.role, result.fallback, result.ids) == ("v1", "stable", True, [[1004]])
    assert counts(runtime, "v2") == (1, 1, 1, 0)
    assert counts(runtime, "v1") == (1, 0, 0, 1)
    registry = runtime.metrics.registry
    assert registry.get_sample_value("faiss_serving_search_errors_total", {"version": "v2"}) == 1
    assert registry.get_sample_value("faiss_serving_candidate_fallbacks_total") == 1


def test_a_failing_stable_search_raises_without_a_fallback_and_is_counted_as_an_error(
    store: MemoryStore, make: Any
) -> None:
    runtime = make(broken=frozenset({"v1"}))
    store.publish("v1", seed=1)
    store.point(1, "v1")
    runtime.refresh()
    with pytest.raises(RuntimeError, match="faiss exploded"):
        runtime.search(np.zeros(DIM), 1)
    assert counts(runtime, "v1") == (1, 1, 0, 0)


def test_the_fallback_answers_when_stable_fails_and_counts_a_fallback(store: MemoryStore, make: Any) -> None:
    runtime = make(broken=frozenset({"v1"}), fallback=ExactFallback(np.eye(DIM), np.arange(DIM) + 500))
    store.publish("v1", seed=1)
    store.point(1, "v1")
    runtime.refresh()

    result = runtime.search(np.eye(DIM)[3], 1)

    assert (result.version, result.role, result.ids, result.fallback) == ("fallback", "fallback", [[503]], True)
    assert counts(runtime, "v1") == (1, 1, 1, 0)
    assert runtime.metrics.registry.get_sample_value("faiss_serving_fallback_searches_total", {"reason": "error"}) == 1


def test_the_fallback_answers_until_an_index_is_loaded(store: MemoryStore, make: Any) -> None:
    runtime = make(fallback=ExactFallback(np.eye(DIM)))
    assert runtime.search(np.eye(DIM)[2], 1).ids == [[2]]
    store.publish("v1", seed=1)
    store.point(1, "v1")
    runtime.refresh()
    assert runtime.search(np.eye(DIM)[2], 1).version == "v1"
    assert runtime.metrics.registry.get_sample_value("faiss_serving_fallback_searches_total", {"reason": "no-index"}) == 1


def test_a_disabled_runtime_never_reads_the_pointer_and_answers_only_from_its_fallback(
    store: MemoryStore, make: Any
) -> None:
    store.publish("v1", seed=1)
    store.point(1, "v1")
    with_fallback = make(enabled=False, fallback=ExactFallback(np.eye(DIM)))
    without = make(enabled=False)

    assert with_fallback.refresh() is False and with_fallback.snapshot.stable is None
    assert with_fallback.search(np.eye(DIM)[5], 1).role == "fallback"
    assert with_fallback.status()["enabled"] is False
    with pytest.raises(NoIndexLoaded, match="disabled"):
        without.search(np.zeros(DIM), 1)


def test_a_shadow_only_step_loads_the_candidate_at_0_percent_and_compares_every_sampled_query(
    store: MemoryStore, make: Any
) -> None:
    runtime = make()
    data = store.publish("v1", seed=1)
    store.publish("v2", seed=1)  # the same vectors and ids: the candidate agrees fully
    store.point(3, "v1", candidate="v2", percent=0, shadow=100)
    runtime.refresh()
    assert runtime.snapshot.shape() == ("v1", "v2", 0)

    answers = [runtime.search(data[i:i + 2], 5, key=f"user-{i}") for i in range(4)]
    assert runtime.shadow.wait_idle()

    assert {a.version for a in answers} == {"v1"}
    assert rollout(runtime)["versions"]["v2"]["shadow"] == {"queries": 8, "overlapSum": 8.0, "k": 5, "errors": 0}
    assert rollout(runtime)["versions"]["v2"]["requests"] == 0
    runtime.stop()


def test_only_stable_routed_keys_sampled_by_the_shadow_percent_are_shadowed(store: MemoryStore, make: Any) -> None:
    runtime = make()
    store.publish("v1", seed=1)
    store.publish("v2", seed=2)
    store.point(3, "v1", candidate="v2", percent=50, shadow=50)
    runtime.refresh()
    keys = [f"user-{i}" for i in range(40)]
    for key in keys:
        runtime.search(np.zeros(DIM), 3, key=key)
    assert runtime.shadow.wait_idle()

    expected = sum(not goes_to_candidate(k, 50) and goes_to_shadow(k, 50) for k in keys)
    assert 0 < expected < sum(not goes_to_candidate(k, 50) for k in keys)
    assert rollout(runtime)["versions"]["v2"]["shadow"]["queries"] == expected
    runtime.stop()


def test_a_candidate_without_traffic_or_shadow_is_not_loaded(store: MemoryStore, make: Any) -> None:
    runtime = make()
    store.publish("v1", seed=1)
    store.publish("v2", seed=2)
    store.point(1, "v1", candidate="v2", percent=0, shadow=0)
    runtime.refresh()
    assert runtime.snapshot.shape() == ("v1", None, 0)


def test_a_second_version_that_does_not_fit_in_memory_is_refused_and_the_first_keeps_serving(
    store: MemoryStore, make: Any
) -> None:
    available = {"bytes": 10}
    clock = Clock()
    runtime = make(clock=clock, memory=lambda: MemoryReading(available["bytes"], "cgroup-v2"))
    store.publish("v1", seed=1)  # nothing loaded yet: nothing to protect, no check
    store.publish("v2", seed=2)
    store.point(1, "v1")
    runtime.refresh()
    store.point(2, "v1", candidate="v2", percent=10)
    runtime.refresh()

    status = runtime.status()
    assert runtime.snapshot.shape() == ("v1", None, 0)
    assert [(f["version"], f["reason"]) for f in status["failures"]] == [("v2", "memory")]
    assert "is available (cgroup-v2)" in status["failures"][0]["message"]
    assert status["memory"] == {"availableBytes": 10, "source": "cgroup-v2"}
    assert not any("/v2/" in key for key in store.downloads), "a refused version is not downloaded"
    registry = runtime.metrics.registry
    assert registry.get_sample_value("faiss_serving_load_failures_total", {"version": "v2", "reason": "memory"}) == 1
    assert registry.get_sample_value("faiss_serving_memory_available_bytes") == 10

    available["bytes"] = 1 << 30
    clock.now += 10
    runtime.refresh()
    assert runtime.snapshot.shape() == ("v1", "v2", 10)


def test_loaded_versions_are_warmed_up_and_a_version_whose_warm_up_fails_is_rejected(
    store: MemoryStore, make: Any, tmp_path: Path
) -> None:
    store.publish("v1", seed=1)
    loaded = VersionLoader(store, PREFIX, tmp_path).load("v1")  # type: ignore[arg-type]
    assert loaded.warmup_seconds > 0

    with pytest.raises(VersionRejected, match="warm-up search failed: RuntimeError: faiss exploded") as rejected:
        warm_up(failing(loaded))
    assert rejected.value.reason == "warmup"
