"""``IndexRuntime``: follow the serving pointer and answer searches, in process.

The runtime owns one immutable ``Snapshot`` (stable version, optional candidate and
its percent). A refresh reads the pointer, loads any wanted version that is not loaded
yet, and replaces the snapshot reference in one assignment under a lock; a search
takes the reference once at its start, so in-flight queries finish on the versions
they started with and nothing is ever half-swapped. A version that fails to load is
never part of a snapshot: the previous one keeps serving, the failure is logged and
counted, and the version is retried with exponential backoff.

The HTTP server is one user of this class; a service can embed it directly:

    runtime = IndexRuntime.from_config(ServingConfig.from_env())
    runtime.start()                      # background polling
    try:
        result = runtime.search(vectors, k=10, key=user_id)
    except NoIndexLoaded:
        ...                              # the caller's fallback
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index_serving.config import ServingConfig
from index_serving.errors import BadRequest, NoIndexLoaded, VersionRejected
from index_serving.loader import LoadedVersion, VersionLoader, is_safe_name
from index_serving.metrics import ServingMetrics
from index_serving.request import check_queries
from index_serving.routing import goes_to_candidate, request_key
from index_serving.snapshot import SearchResult, Snapshot, describe
from indexops_api.pointer import ServingPointer
from indexops_store.s3 import ArtifactStore, StorageError, make_client

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0


@dataclass
class _Failure:
    attempts: int
    retry_at: float
    reason: str
    message: str


class IndexRuntime:
    def __init__(
        self,
        store: ArtifactStore,
        pointer_key: str,
        cache_dir: Path,
        *,
        versions_prefix: str | None = None,
        poll_seconds: float = 2.0,
        metrics: ServingMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.pointer_key = pointer_key
        self.poll_seconds = poll_seconds
        self.metrics = metrics or ServingMetrics()
        prefix = versions_prefix or ServingConfig(store.bucket, pointer_key).versions_prefix
        self.loader = VersionLoader(store, prefix, cache_dir)
        self._clock = clock
        self._snapshot = Snapshot()
        self._lock = threading.Lock()  # guards the snapshot reference
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._failures: dict[str, _Failure] = {}
        self._pointer_error: str | None = None
        self._pointer_missing_logged = False
        self._applied_generation: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: ServingConfig, metrics: ServingMetrics | None = None) -> "IndexRuntime":
        store = ArtifactStore(make_client(config.endpoint, config.region), config.pointer_bucket)
        return cls(store, config.pointer_key, config.cache_dir, versions_prefix=config.versions_prefix,
                   poll_seconds=config.poll_seconds, metrics=metrics)

    # -- reading -------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def ready(self) -> bool:
        return self._snapshot.stable is not None

    def search(self, vectors: Any, k: int, key: str | None = None) -> SearchResult:
        """Search the version the key routes to; raises ``NoIndexLoaded`` or ``BadRequest``."""
        snap = self._snapshot  # one read: the whole query uses this snapshot
        if snap.stable is None:
            raise NoIndexLoaded("no index version is loaded yet")
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries.reshape(1, -1)
        if queries.ndim != 2 or queries.shape[0] == 0 or not np.isfinite(queries).all():
            raise BadRequest("vectors must be a non-empty 2-D array of finite numbers")
        if not isinstance(k, int) or k < 1:
            raise BadRequest(f"k must be a positive integer, got {k!r}")
        target, role, fallback = self._route(snap, request_key(key))
        check_queries(queries, dimension=target.dimension, cosine=target.cosine)
        started = time.perf_counter()
        ids, distances = target.search(queries, k)
        self.metrics.latency.labels(version=target.version).observe(time.perf_counter() - started)
        self.metrics.queries.labels(version=target.version).inc(queries.shape[0])
        return SearchResult(target.version, role, ids, distances, fallback)

    def _route(self, snap: Snapshot, key: str) -> tuple[LoadedVersion, str, bool]:
        assert snap.stable is not None
        if snap.candidate is not None and goes_to_candidate(key, snap.candidate_percent):
            return snap.candidate, "candidate", False
        wanted = snap.pointer
        if (snap.candidate is None and wanted is not None and wanted.candidate_version
                and goes_to_candidate(key, wanted.candidate_percent)):
            self.metrics.fallbacks.inc()
            return snap.stable, "stable", True
        return snap.stable, "stable", False

    # -- following the pointer -------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the pointer and load/swap as needed; True when the served versions changed."""
        with self._refresh_lock:
            try:
                pointer, _ = self.store.read_pointer(self.pointer_key)
            except StorageError as exc:
                self.metrics.pointer_errors.inc()
                self._pointer_error = str(exc)
                log.warning("cannot read serving pointer; keeping current versions", extra={"error": str(exc)})
                return False
            self._pointer_error = None
            if pointer is None:
                if not self._pointer_missing_logged:
                    log.info("no serving pointer yet", extra={"bucket": self.store.bucket, "key": self.pointer_key})
                    self._pointer_missing_logged = True
                return False
            self.metrics.pointer_generation.set(pointer.generation)
            return self._apply(pointer)

    def _apply(self, pointer: ServingPointer) -> bool:
        current = self._snapshot
        have = current.versions()
        wanted = [pointer.stable_version]
        if pointer.candidate_version and pointer.candidate_percent > 0:
            wanted.append(pointer.candidate_version)
        for version in wanted:
            if version not in have and self._due(version):
                loaded = self._load(version)
                if loaded is not None:
                    have[version] = loaded
        stable = have.get(pointer.stable_version) or current.stable
        candidate = None
        if len(wanted) > 1 and stable is not None and wanted[1] != stable.version:
            candidate = have.get(wanted[1])
        new = Snapshot(stable, candidate, pointer.candidate_percent if candidate else 0, pointer)
        if all(v in have for v in wanted):
            self._applied_generation = pointer.generation
            self.metrics.applied_generation.set(pointer.generation)
        changed = new.shape() != current.shape()
        with self._lock:
            self._snapshot = new
        if changed:
            self.metrics.swaps.inc()
            roles = {new.stable.version: "stable"} if new.stable else {}
            if new.candidate:
                roles[new.candidate.version] = "candidate"
            self.metrics.set_loaded(roles, {v: lv.index.ntotal for v, lv in new.versions().items()})
            log.info("swapped", extra={"stable": new.shape()[0], "candidate": new.shape()[1],
                                       "candidatePercent": new.candidate_percent, "generation": pointer.generation,
                                       "previousStable": current.shape()[0]})
        self._drop_unreferenced(set(new.versions()) | set(wanted))
        return changed

    def _load(self, version: str) -> LoadedVersion | None:
        try:
            loaded = self.loader.load(version)
        except VersionRejected as exc:
            self._record_failure(version, exc.reason, str(exc))
            return None
        except Exception as exc:  # never let one bad version stop the poller
            log.exception("unexpected error loading version", extra={"version": version})
            self._record_failure(version, "load", f"{type(exc).__name__}: {exc}")
            return None
        self._failures.pop(version, None)
        return loaded

    def _due(self, version: str) -> bool:
        failure = self._failures.get(version)
        return failure is None or self._clock() >= failure.retry_at

    def _record_failure(self, version: str, reason: str, message: str) -> None:
        previous = self._failures.get(version)
        attempts = previous.attempts + 1 if previous else 1
        delay = min(max(self.poll_seconds, 1.0) * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
        self._failures[version] = _Failure(attempts, self._clock() + delay, reason, message)
        self.metrics.load_failures.labels(version=version, reason=reason).inc()
        log.error("version rejected; keeping current versions",
                  extra={"version": version, "reason": reason, "error": message, "attempts": attempts,
                         "retryInSeconds": delay})

    def _drop_unreferenced(self, keep: set[str]) -> None:
        for version in list(self._failures):
            if version not in keep:
                del self._failures[version]
        cache = self.loader.cache_dir
        if not cache.is_dir():
            return
        for entry in cache.iterdir():
            if entry.is_dir() and is_safe_name(entry.name) and entry.name not in keep:
                self.loader.discard(entry.name)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Poll the pointer every ``poll_seconds`` in a daemon thread (first poll at once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="faiss-pointer-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # a bug must not kill the poller and freeze the served version
                log.exception("pointer refresh failed unexpectedly")
            self._stop.wait(self.poll_seconds)

    def status(self) -> dict[str, Any]:
        snap, now = self._snapshot, self._clock()
        roles = {snap.stable.version: "stable"} if snap.stable else {}
        if snap.candidate:
            roles[snap.candidate.version] = "candidate"
        return {
            "ready": snap.stable is not None,
            "pointer": snap.pointer.to_wire() if snap.pointer else None,
            "pointerGeneration": snap.pointer.generation if snap.pointer else None,
            "appliedGeneration": self._applied_generation,
            "pointerError": self._pointer_error,
            "candidatePercent": snap.candidate_percent,
            "versions": [describe(lv, roles[v]) for v, lv in snap.versions().items()],
            "failures": [
                {"version": v, "reason": f.reason, "message": f.message, "attempts": f.attempts,
                 "retryInSeconds": round(max(0.0, f.retry_at - now), 1)}
                for v, f in self._failures.items()
            ],
        }
