"""IndexRuntime's swap, fallback and retry decisions, against an in-memory store (no network)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import faiss
import numpy as np
import pytest

from index_serving.errors import NoIndexLoaded
from index_serving.routing import goes_to_candidate
from index_serving.runtime import IndexRuntime
from indexops_api.manifest import FileEntry, Manifest, Measurements, SourceFingerprint, Timings
from indexops_api.pointer import ServingPointer
from indexops_store.s3 import StorageError

DIM = 8
PREFIX = "p/ns/idx/6h/versions"


class MemoryStore:
    """The subset of ArtifactStore the runtime uses, backed by a dict."""

    bucket = "memory"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.manifests: dict[str, Manifest] = {}
        self.pointer: ServingPointer | None = None
        self.downloads: list[str] = []

    def read_pointer(self, key: str) -> tuple[ServingPointer | None, str | None]:
        return self.pointer, "etag" if self.pointer else None

    def read_manifest(self, key: str) -> Manifest:
        if key not in self.manifests:
            raise StorageError(f"s3://memory/{key} does not exist", not_found=True)
        return self.manifests[key]

    def download_file(self, key: str, path: Path) -> None:
        self.downloads.append(key)
        if key not in self.objects:
            raise StorageError(f"s3://memory/{key} does not exist", not_found=True)
        path.write_bytes(self.objects[key])

    def publish(self, version: str, seed: int, n: int = 50, corrupt: bool = False) -> np.ndarray:
        data = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
        index = faiss.IndexFlatL2(DIM)
        index.add(data)
        files = {"index.faiss": faiss.serialize_index(index).tobytes()}
        buf = io.BytesIO()
        np.save(buf, np.arange(n, dtype=np.int64) + seed * 1000)
        files["ids.npy"] = buf.getvalue()
        entries = [FileEntry(name=k, size=len(v), sha256=hashlib.sha256(v).hexdigest()) for k, v in files.items()]
        if corrupt:
            body = bytearray(files["index.faiss"])
            body[-1] ^= 0xFF
            files["index.faiss"] = bytes(body)
        for name, body in files.items():
            self.objects[f"{PREFIX}/{version}/{name}"] = body
        self.manifests[f"{PREFIX}/{version}/manifest.json"] = Manifest(
            index="idx", namespace="ns", horizon="6h", version=version, build_key="k" * 64,
            created_at="2026-01-01T00:00:00Z", index_type="Flat", metric="L2", dimension=DIM, vectors=n,
            parameters={}, search_parameters={}, files=entries, index_file="index.faiss", ids_file="ids.npy",
            size_bytes=sum(e.size for e in entries), source=SourceFingerprint(uri="mem", count=n),
            measurements=Measurements(recall_at_k=1.0, k=10, queries=10, latency_p50_ms=0.1, latency_p95_ms=0.1,
                                      latency_p99_ms=0.1),
            timings=Timings(load_seconds=0, train_seconds=0, add_seconds=0, validate_seconds=0, total_seconds=0),
            faiss_version=faiss.__version__, builder_version="test",
        )
        return data

    def point(self, generation: int, stable: str, candidate: str | None = None, percent: int = 0, shadow: int = 0) -> None:
        self.pointer = ServingPointer(generation=generation, stable_version=stable, candidate_version=candidate,
                                      candidate_percent=percent, shadow_percent=shadow, updated_at="2026-01-01T00:00:00Z")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runtime(store: MemoryStore, clock: Clock, tmp_path: Path) -> IndexRuntime:
    return IndexRuntime(store, "p/ns/idx/6h/pointer.json", tmp_path, poll_seconds=2.0, clock=clock)  # type: ignore[arg-type]


def key_routed(to_candidate: bool, percent: int) -> str:
    return next(k for k in (f"k{i}" for i in range(1000)) if goes_to_candidate(k, percent) == to_candidate)


def test_searching_before_any_version_is_loaded_raises_no_index_loaded(runtime: IndexRuntime) -> None:
    assert runtime.refresh() is False
    with pytest.raises(NoIndexLoaded):
        runtime.search(np.zeros((1, DIM)), 3)


def test_a_query_equal_to_a_stored_vector_finds_it_first_with_its_mapped_id(store: MemoryStore, runtime: IndexRuntime) -> None:
    data = store.publish("v1", seed=1)
    store.point(1, "v1")
    assert runtime.refresh() is True
    result = runtime.search(data[7], 3)
    assert (result.version, result.role, result.ids[0][0]) == ("v1", "stable", 1007)


def test_a_broken_new_stable_never_replaces_the_serving_one(store: MemoryStore, runtime: IndexRuntime) -> None:
    store.publish("v1", seed=1)
    store.publish("v2", seed=2, corrupt=True)
    store.point(1, "v1")
    runtime.refresh()
    store.point(2, "v2")

    assert runtime.refresh() is False
    assert runtime.search(np.zeros(DIM), 1).version == "v1"
    status = runtime.status()
    assert [(f["version"], f["reason"]) for f in status["failures"]] == [("v2", "checksum")]
    assert (status["pointerGeneration"], status["appliedGeneration"]) == (2, 1)


def test_a_failed_version_is_retried_only_after_its_backoff_then_served_once_fixed(
    store: MemoryStore, runtime: IndexRuntime, clock: Clock
) -> None:
    store.publish("v1", seed=1)
    store.point(1, "v1")
    runtime.refresh()
    store.point(2, "v2")  # manifest not uploaded yet
    runtime.refresh()
    attempts = len(store.downloads)
    store.publish("v2", seed=2)

    clock.now += 1.0  # backoff after the first failure is max(poll, 1) = 2 s
    runtime.refresh()
    assert runtime.snapshot.stable.version == "v1" and len(store.downloads) == attempts  # type: ignore[union-attr]

    clock.now += 1.5
    assert runtime.refresh() is True
    assert runtime.snapshot.stable.version == "v2"  # type: ignore[union-attr]
    assert runtime.status()["failures"] == []


def test_queries_routed_to_an_unloadable_candidate_fall_back_to_stable_and_are_counted(
    store: MemoryStore, runtime: IndexRuntime
) -> None:
    store.publish("v1", seed=1)
    store.publish("v2", seed=2, corrupt=True)
    store.point(1, "v1", candidate="v2", percent=50)
    runtime.refresh()

    to_candidate = runtime.search(np.zeros(DIM), 1, key=key_routed(True, 50))
    to_stable = runtime.search(np.zeros(DIM), 1, key=key_routed(False, 50))

    assert (to_candidate.version, to_candidate.fallback) == ("v1", True)
    assert (to_stable.version, to_stable.fallback) == ("v1", False)
    assert runtime.metrics.registry.get_sample_value("faiss_serving_candidate_fallbacks_total") == 1


def test_promoting_a_loaded_candidate_swaps_without_downloading_again_and_drops_the_old_stable(
    store: MemoryStore, runtime: IndexRuntime, tmp_path: Path
) -> None:
    store.publish("v1", seed=1)
    store.publish("v2", seed=2)
    store.point(1, "v1", candidate="v2", percent=10)
    runtime.refresh()
    assert runtime.search(np.zeros(DIM), 1, key=key_routed(True, 10)).role == "candidate"
    downloads = len(store.downloads)

    store.point(2, "v2")
    assert runtime.refresh() is True

    assert len(store.downloads) == downloads
    assert runtime.snapshot.shape() == ("v2", None, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2"]


def test_an_in_flight_snapshot_stays_searchable_after_a_swap(store: MemoryStore, runtime: IndexRuntime) -> None:
    data = store.publish("v1", seed=1)
    store.publish("v2", seed=2)
    store.point(1, "v1")
    runtime.refresh()
    in_flight = runtime.snapshot

    store.point(2, "v2")
    runtime.refresh()

    assert in_flight.stable is not None and in_flight.stable.search(data[3:4], 1)[0] == [[1003]]
