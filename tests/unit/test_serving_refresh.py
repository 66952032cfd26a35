"""Pointer refresh on request: a wake-up reads the pointer at once, a flood of them at a bounded rate."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from test_serving_runtime import MemoryStore

from faiss_operator.notify import owned_serving_pods
from index_serving.runtime import MIN_REFRESH_SECONDS, IndexRuntime


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read_pointer(self, key: str):  # type: ignore[override]
        self.reads += 1
        return super().read_pointer(key)


def test_a_requested_refresh_reads_the_pointer_long_before_the_next_poll(tmp_path: Path) -> None:
    store = CountingStore()
    store.publish("v1", seed=1)
    runtime = IndexRuntime(store, "p/ns/idx/6h/pointer.json", tmp_path, poll_seconds=60.0)  # type: ignore[arg-type]
    runtime.start()
    try:
        deadline = time.monotonic() + 10
        while store.reads < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        store.point(1, "v1")
        runtime.request_refresh()
        while not runtime.ready and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runtime.ready, "the pointer was not re-read on request (the poll is 60 s away)"
    finally:
        runtime.stop()


def test_a_flood_of_refresh_requests_reads_the_pointer_at_most_once_per_interval(tmp_path: Path) -> None:
    store = CountingStore()
    runtime = IndexRuntime(store, "p/ns/idx/6h/pointer.json", tmp_path, poll_seconds=60.0)  # type: ignore[arg-type]
    runtime.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            runtime.request_refresh()
            time.sleep(0.001)
        seconds = time.monotonic() - started
    finally:
        runtime.stop()
    assert 2 <= store.reads <= seconds / MIN_REFRESH_SECONDS + 2


def pod(name: str, owner: str | None, phase: str = "Running", ip: str | None = "10.0.0.5", deleting: bool = False):
    owners = [SimpleNamespace(kind="ReplicaSet", name=owner)] if owner else None
    return SimpleNamespace(metadata=SimpleNamespace(name=name, owner_references=owners,
                                                    deletion_timestamp="now" if deleting else None),
                           status=SimpleNamespace(phase=phase, pod_ip=ip))


def test_only_running_pods_of_the_index_s_own_replica_sets_are_notified() -> None:
    from indexops_api.layout import serving_name

    rs = f"{serving_name('analogs')}-5d8f"
    pods = [pod("a", rs), pod("b", "someone-else-5d8f"), pod("c", None), pod("d", rs, phase="Pending"),
            pod("e", rs, ip=None), pod("f", rs, deleting=True), pod("g", rs, ip="10.0.0.7")]
    assert owned_serving_pods(pods, "analogs") == [("a", "10.0.0.5"), ("g", "10.0.0.7")]
