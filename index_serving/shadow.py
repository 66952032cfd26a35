"""Shadow searches: run sampled stable queries on the candidate too, off the request path.

The request thread only enqueues (``put_nowait``) and returns its stable answer; one
daemon worker thread searches the candidate and records overlap@k in the analysis
window the request belonged to. The queue is bounded and a full queue drops the job
(counted), so shadowing never adds latency to a request nor grows memory without bound:
at most ``capacity`` jobs of at most ``MAX_VECTORS`` query vectors each are held.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index_serving.analysis import AnalysisWindow, overlap_sum
from index_serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 64


class Searchable(Protocol):
    version: str

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[int]], list[list[float]]]: ...


@dataclass(frozen=True)
class ShadowJob:
    window: AnalysisWindow
    candidate: Searchable
    queries: np.ndarray  # a private copy: the caller may reuse its array
    k: int
    stable_ids: list[list[int]]


class ShadowWorker:
    """A bounded queue and one lazily started worker thread."""

    def __init__(self, metrics: ServingMetrics, capacity: int = DEFAULT_CAPACITY):
        if capacity < 1:
            raise ValueError(f"shadow queue capacity must be >= 1, got {capacity}")
        self.metrics = metrics
        self.capacity = capacity
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0
        self.completed = 0

    def submit(self, job: ShadowJob) -> bool:
        """Enqueue without ever blocking; False when the queue is full (counted as dropped) or closed."""
        if not self._ensure_running():
            return False
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            self.metrics.shadow_dropped.inc()
            return False
        return True

    def process(self, job: ShadowJob) -> None:
        """Search the candidate and record the comparison (the worker's body)."""
        version = job.candidate.version
        try:
            candidate_ids, _ = job.candidate.search(job.queries, job.k)
            overlap = overlap_sum(job.stable_ids, candidate_ids, job.k)
        except Exception as exc:  # a shadow failure is a finding about the candidate, never a crash
            job.window.record_shadow_error(version)
            self.metrics.shadow_errors.labels(version=version).inc()
            log.warning("shadow search failed", extra={"version": version, "error": f"{type(exc).__name__}: {exc}"})
            return
        job.window.record_shadow(version, queries=len(job.stable_ids), overlap=overlap, k=job.k)
        self.metrics.shadow_queries.labels(version=version).inc(len(job.stable_ids))
        self.metrics.shadow_overlap.labels(version=version).inc(overlap)

    def status(self) -> dict[str, int | bool]:
        return {"capacity": self.capacity, "queued": self._queue.qsize(), "dropped": self.dropped,
                "completed": self.completed, "running": self._thread is not None and self._thread.is_alive()}

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued job is processed (tests, graceful shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def open(self) -> None:
        with self._lock:
            self._closed = False

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker; queued jobs are discarded, later submissions dropped until ``open``."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._discard_queued()
        if thread is None:
            return
        while True:  # wake the worker; a submission racing with close may have taken the room
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                self._discard_queued()
        thread.join(timeout)

    def _discard_queued(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
            self._queue.task_done()

    def _ensure_running(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="faiss-shadow", daemon=True)
                self._thread.start()
            return True

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self.process(job)
                with self._lock:
                    self.completed += 1
            finally:
                self._queue.task_done()
