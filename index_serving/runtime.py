"""``IndexRuntime``: follow the serving pointer and answer searches, in process.

The runtime owns one immutable ``Snapshot`` (stable version, optional candidate and
its percent). A refresh reads the pointer, loads any wanted version that is not loaded
yet, and replaces the snapshot reference in one assignment under a lock; a search
takes the reference once at its start, so in-flight queries finish on the versions
they started with and nothing is ever half-swapped. A version that fails to load is
never part of a snapshot: the previous one keeps serving, the failure is logged and
counted, and the version is retried with exponential backoff. Loading a version while
another is loaded first checks memory headroom (``memory.py``).

Each search is counted in the analysis window of its snapshot (``analysis.py``): a
candidate search that raises is answered by stable instead (a fallback, never a failed
request), and a sampled share of stable-routed queries is also run on the candidate by
the shadow worker (``shadow.py``) to measure overlap@k off the request path.

The HTTP server is one user of this class; a service can embed it directly:

    runtime = IndexRuntime.from_config(ServingConfig.from_env(),   # FAISS_SERVING_ENABLED=false: fallback only
                                       fallback=ExactFallback(small_set, ids))  # or any (queries, k) -> (ids, distances)
    runtime.start()                      # background polling
    result = runtime.search(vectors, k=10, key=user_id)   # result.role == "fallback" when no index answered

Without a fallback, ``search`` raises ``NoIndexLoaded`` until a version is loaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from indexops_api.replica import MAX_FAILURES, LoadFailure, ReplicaStatus, RolloutWindow
from index_serving import batch_search
from index_serving.analysis import AnalysisWindow
from index_serving.config import ServingConfig
from index_serving.errors import NoIndexLoaded, VersionRejected
from index_serving.fallback import Fallback
from index_serving.loader import LoadedVersion, VersionLoader, is_safe_name
from index_serving.memory import DEFAULT_HEADROOM_FACTOR, MemoryReader, MemoryReading, headroom_problem, read_available_memory
from index_serving.metrics import ServingMetrics
from index_serving.request import as_queries, check_queries
from index_serving.routing import goes_to_candidate, goes_to_shadow, request_key
from index_serving.shadow import DEFAULT_CAPACITY, ShadowJob, ShadowWorker
from index_serving.snapshot import SearchResult, Snapshot, describe
from indexops_api.pointer import ServingPointer
from indexops_store.s3 import ArtifactStore, StorageError, make_client

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0
MIN_REFRESH_SECONDS = 0.2  # at most 5 pointer reads a second, however often a refresh is requested
FALLBACK_VERSION = "fallback"


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
        enabled: bool = True,
        fallback: Fallback | None = None,
        loader: VersionLoader | None = None,
        subprocess_fetch: bool = False,
        memory: MemoryReader = read_available_memory,
        memory_headroom_factor: float = DEFAULT_HEADROOM_FACTOR,
        shadow_queue_size: int = DEFAULT_CAPACITY,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.store = store
        self.pointer_key = pointer_key
        self.poll_seconds = poll_seconds
        self.metrics = metrics or ServingMetrics()
        prefix = versions_prefix or ServingConfig(store.bucket, pointer_key).versions_prefix
        self.loader = loader or VersionLoader(store, prefix, cache_dir, subprocess_fetch=subprocess_fetch)
        self.loader.on_cache_repair = lambda version, _file: self.metrics.cache_repairs.labels(version=version).inc()
        self.enabled = enabled
        self.fallback = fallback
        self.shadow = ShadowWorker(self.metrics, shadow_queue_size)
        self._memory = memory
        self._memory_factor = memory_headroom_factor
        self._last_memory: MemoryReading | None = None
        self._clock = clock
        self._wall_clock = wall_clock
        self._snapshot = Snapshot()
        self._lock = threading.Lock()  # guards the snapshot reference
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._failures: dict[str, _Failure] = {}
        self._pointer_error: str | None = None
        self._pointer_missing_logged = False
        self._applied_generation: int | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by request_refresh: read the pointer now, not at the next poll
        self._last_refresh = float("-inf")
        self._thread: threading.Thread | None = None
        self._children: dict[str, tuple[Any, Any]] = {}

    @classmethod
    def from_config(cls, config: ServingConfig, metrics: ServingMetrics | None = None,
                    fallback: Fallback | None = None) -> "IndexRuntime":
        store = ArtifactStore(make_client(config.endpoint, config.region), config.pointer_bucket)
        return cls(store, config.pointer_key, config.cache_dir, versions_prefix=config.versions_prefix,
                   poll_seconds=config.poll_seconds, metrics=metrics, enabled=config.enabled, fallback=fallback,
                   memory_headroom_factor=config.memory_headroom_factor, shadow_queue_size=config.shadow_queue_size,
                   subprocess_fetch=config.fetch_subprocess)

    # -- reading -------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def ready(self) -> bool:
        return self._snapshot.stable is not None

    def search(self, vectors: Any, k: int, key: str | None = None) -> SearchResult:
        """Search the version the key routes to.

        Raises ``BadRequest`` for malformed queries, ``NoIndexLoaded`` when no version is
        loaded (or serving is disabled) and there is no fallback, and the search's own
        exception when stable fails and there is no fallback.
        """
        snap = self._snapshot  # one read: the whole query uses this snapshot
        queries = as_queries(vectors, k)
        if not self.enabled or snap.stable is None:
            reason = "disabled" if not self.enabled else "no-index"
            if self.fallback is None:
                raise NoIndexLoaded("serving is disabled" if not self.enabled else "no index version is loaded yet")
            return self._use_fallback(queries, k, reason)
        key = request_key(key)
        target, role, fallback = self._route(snap, key)
        check_queries(queries, dimension=target.dimension, cosine=target.cosine)
        if role == "candidate":
            try:
                return self._search_version(snap, target, role, queries, k)
            except Exception as exc:
                self._failed(snap, target, exc, fallback=True)
                self.metrics.fallbacks.inc()
                target, role, fallback = snap.stable, "stable", True
                check_queries(queries, dimension=target.dimension, cosine=target.cosine)
        try:
            result = self._search_version(snap, target, role, queries, k, fallback)
        except Exception as exc:
            self._failed(snap, target, exc, fallback=self.fallback is not None)
            if self.fallback is None:
                raise
            return self._use_fallback(queries, k, "error")
        if not fallback and snap.candidate is not None and goes_to_shadow(key, snap.shadow_percent) and snap.window:
            self.shadow.submit(ShadowJob(snap.window, snap.candidate, queries.copy(), k, result.ids))
        return result

    def _search_version(self, snap: Snapshot, target: LoadedVersion, role: str, queries: np.ndarray, k: int,
                        fallback: bool = False) -> SearchResult:
        started = time.perf_counter()
        ids, distances = target.search_arrays(queries, k)
        seconds = time.perf_counter() - started
        self._record(snap, target.version, seconds, queries.shape[0], requests=1)
        return SearchResult(target.version, role, ids, distances, fallback)

    def _record(self, snap: Snapshot, version: str, seconds: float, vectors: int, requests: int) -> None:
        """Per-request metrics through cached label children (a label lookup per request is not free)."""
        children = self._children.get(version)
        if children is None:
            children = self._children[version] = (self.metrics.latency.labels(version=version),
                                                   self.metrics.queries.labels(version=version))
        for _ in range(requests):
            children[0].observe(seconds)
            if snap.window is not None:
                snap.window.record_request(version, seconds=seconds)
        children[1].inc(vectors)

    def search_many(self, requests: Sequence[tuple[np.ndarray, int, str | None]]) -> list[SearchResult | Exception]:
        """Several requests, one FAISS call per (version, k); ``out[i]`` answers request i (``batch_search.py``)."""
        return batch_search.search_many(self, requests)

    def _failed(self, snap: Snapshot, target: LoadedVersion, exc: Exception, *, fallback: bool) -> None:
        self.metrics.search_errors.labels(version=target.version).inc()
        if snap.window is not None:
            snap.window.record_request(target.version, error=True, fallback=fallback)
        log.error("search failed", extra={"version": target.version, "error": f"{type(exc).__name__}: {exc}",
                                          "fallback": fallback}, exc_info=None if fallback else exc)

    def _use_fallback(self, queries: np.ndarray, k: int, reason: str) -> SearchResult:
        assert self.fallback is not None
        ids, distances = self.fallback(queries, k)
        self.metrics.fallback_searches.labels(reason=reason).inc()
        return SearchResult(FALLBACK_VERSION, "fallback", np.asarray(ids, dtype=np.int64).reshape(len(queries), -1),
                            np.asarray(distances, dtype=np.float32).reshape(len(queries), -1), True)

    def _route(self, snap: Snapshot, key: str) -> tuple[LoadedVersion, str, bool]:
        assert snap.stable is not None
        if snap.candidate is not None and goes_to_candidate(key, snap.candidate_percent):
            return snap.candidate, "candidate", False
        wanted = snap.pointer
        if (snap.candidate is None and wanted is not None and wanted.candidate_version
                and goes_to_candidate(key, wanted.candidate_percent)):
            self.metrics.fallbacks.inc()  # not in the window: it describes an older, fully applied pointer
            return snap.stable, "stable", True
        return snap.stable, "stable", False

    # -- following the pointer -------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the pointer and load/swap as needed; True when the served versions changed."""
        if not self.enabled:
            return False
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
        if pointer.candidate_version and (pointer.candidate_percent > 0 or pointer.shadow_percent > 0):
            wanted.append(pointer.candidate_version)  # loaded for shadowing even at 0%
        for version in wanted:
            if version not in have and self._due(version):
                loaded = self._load(version, others=len(have))
                if loaded is not None:
                    have[version] = loaded
        stable = have.get(pointer.stable_version) or current.stable
        candidate = None
        if len(wanted) > 1 and stable is not None and wanted[1] != stable.version:
            candidate = have.get(wanted[1])
        window = current.window
        if all(v in have for v in wanted):
            self._applied_generation = pointer.generation
            self.metrics.applied_generation.set(pointer.generation)
            if window is None or window.generation != pointer.generation:
                window = AnalysisWindow.open(pointer, self._wall_clock())
        new = Snapshot(stable, candidate, pointer.candidate_percent if candidate else 0, pointer, window)
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

    def _load(self, version: str, others: int) -> LoadedVersion | None:
        try:
            # Something already serves: fetch at low priority (the first version loads at full speed).
            loaded = self.loader.load(version, admit=self._admit if others else None, low_priority=others > 0)
        except VersionRejected as exc:
            self._record_failure(version, exc.reason, str(exc))
            return None
        except Exception as exc:  # never let one bad version stop the poller
            log.exception("unexpected error loading version", extra={"version": version})
            self._record_failure(version, "load", f"{type(exc).__name__}: {exc}")
            return None
        self._failures.pop(version, None)
        return loaded

    def _admit(self, manifest: Any) -> None:
        """Refuse a version that would not fit next to the loaded one(s)."""
        reading = self._memory()
        self._last_memory = reading
        if reading is not None:
            self.metrics.memory_available.set(reading.available_bytes)
        problem = headroom_problem(manifest.size_bytes, reading, self._memory_factor)
        if problem is not None:
            raise VersionRejected(manifest.version, "memory", problem)

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
        self.shadow.open()
        if self._thread is not None or not self.enabled:
            return
        worker = getattr(self.loader, "worker", None)
        if worker is not None:
            worker.start()  # import boto3 in the child now, at low priority, not when a swap needs it
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="faiss-pointer-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.shadow.close(timeout)
        worker = getattr(self.loader, "worker", None)
        if worker is not None:
            worker.close()

    def request_refresh(self) -> None:
        """Read the pointer now instead of at the next poll (the operator calls this after a write).

        Cheap and safe to call from any thread, any number of times: requests coalesce into
        one wake-up of the poller, and the poller reads the pointer at most once per
        ``MIN_REFRESH_SECONDS`` however often it is woken, so a flood of calls costs at most a
        few pointer reads a second.
        """
        self._wake.set()

    def _poll(self) -> None:
        while not self._stop.is_set():
            wait = self._last_refresh + MIN_REFRESH_SECONDS - self._clock()
            if wait > 0:  # woken again too soon: the bounded rate of pointer reads
                self._stop.wait(wait)
                continue
            self._wake.clear()
            self._last_refresh = self._clock()
            try:
                self.refresh()
            except Exception:  # a bug must not kill the poller and freeze the served version
                log.exception("pointer refresh failed unexpectedly")
            self._wake.wait(self.poll_seconds)

    def status(self) -> dict[str, Any]:
        """The ``/v1/status`` document, built from the model the operator parses it with."""
        snap, now = self._snapshot, self._clock()
        roles = {snap.stable.version: "stable"} if snap.stable else {}
        if snap.candidate:
            roles[snap.candidate.version] = "candidate"
        report = ReplicaStatus(
            enabled=self.enabled,
            ready=snap.stable is not None,
            pointer=snap.pointer.to_wire() if snap.pointer else None,
            pointer_generation=snap.pointer.generation if snap.pointer else None,
            applied_generation=self._applied_generation,
            pointer_error=self._pointer_error,
            candidate_percent=snap.candidate_percent,
            versions=[describe(lv, roles[v]) for v, lv in snap.versions().items()],
            failures=[
                LoadFailure(version=v, reason=f.reason, message=f.message, attempts=f.attempts,
                            retry_in_seconds=round(max(0.0, f.retry_at - now), 1))
                for v, f in list(self._failures.items())[-MAX_FAILURES:]
            ],
            rollout=RolloutWindow.model_validate(snap.window.to_wire()) if snap.window is not None else None,
            shadow_queue=self.shadow.status(),
            memory=self._last_memory.to_wire() if self._last_memory is not None else None,
            fallback_configured=self.fallback is not None,
        )
        return report.to_json_dict()
