"""The analysis window: per-version counters of one applied pointer generation.

A progressive rollout gates each step on what the replicas saw *during that step*. A
step change writes a new pointer generation, so a replica opens a fresh window each
time it fully applies a new generation (every wanted version live) and the operator,
which reads ``rollout`` from every pod's ``/v1/status``, only aggregates windows whose
``generation`` is the one it wrote. Counters never mix two steps, and a replica that has
not applied the step yet shows an older generation rather than misleading zeros.

Per version the window counts requests (searches answered or failed by it), errors
(searches that raised inside FAISS or the runtime; 4xx validation errors are not
requests at all), fallbacks (requests routed to it but answered by something else) and
a latency histogram of its *successful* searches. A request that falls back from a
failed candidate to stable is counted under both: a failed request (error + fallback)
of the candidate and an answered request of stable. Shadow comparisons are recorded
under the candidate version: ``queries`` shadowed, ``overlapSum`` = sum over them of
``overlap_at_k``, so ``overlapSum / queries`` is the mean overlap@k.

Nothing here does I/O or imports FAISS: it is plain counting behind one lock.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from indexops_api.pointer import ServingPointer

# Upper bounds (milliseconds, inclusive: ``latency <= le``) of the latency histogram in
# ``rollout.versions.<v>.latencyMs``. Same bounds as the Prometheus histogram (which is
# in seconds), from sub-millisecond flat/HNSW searches up to 5 s batch searches; there
# is no +Inf bucket in the list: ``count`` is the total, so ``count - counts[-1]``
# requests took longer than 5 s. ``counts`` are cumulative, like Prometheus buckets.
LATENCY_BOUNDS_MS: tuple[float, ...] = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)

STABLE = "stable"
CANDIDATE = "candidate"


def overlap_at_k(stable_ids: Sequence[int], candidate_ids: Sequence[int], k: int) -> float:
    """``|top-k stable ∩ top-k candidate| / k`` for one query, in 0..1.

    ``k`` is capped at the number of results the larger answer holds: an index with 5
    vectors searched at k=10 returns 5 ids, and two identical 5-id answers agree
    fully (1.0). Two empty answers agree too.
    """
    a, b = set(stable_ids[:k]), set(candidate_ids[:k])
    denominator = min(k, max(len(a), len(b)))
    return len(a & b) / denominator if denominator else 1.0


def overlap_sum(stable_ids: Sequence[Sequence[int]], candidate_ids: Sequence[Sequence[int]], k: int) -> float:
    """Sum of ``overlap_at_k`` over the queries of one batch (rows must pair up)."""
    if len(stable_ids) != len(candidate_ids):
        raise ValueError(f"{len(stable_ids)} stable answers but {len(candidate_ids)} candidate answers")
    return sum(overlap_at_k(s, c, k) for s, c in zip(stable_ids, candidate_ids))


def utc_timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Counters:
    role: str
    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BOUNDS_MS))  # not cumulative
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    shadow_queries: int = 0
    shadow_overlap_sum: float = 0.0
    shadow_k: int = 0
    shadow_errors: int = 0

    def to_wire(self) -> dict[str, Any]:
        cumulative, running = [], 0
        for n in self.buckets:
            running += n
            cumulative.append(running)
        return {
            "role": self.role,
            "requests": self.requests,
            "errors": self.errors,
            "fallbacks": self.fallbacks,
            "latencyMs": {"le": list(LATENCY_BOUNDS_MS), "counts": cumulative, "count": self.latency_count,
                          "sumMs": round(self.latency_sum_ms, 3)},
            "shadow": {"queries": self.shadow_queries, "overlapSum": round(self.shadow_overlap_sum, 6),
                       "k": self.shadow_k, "errors": self.shadow_errors},
        }


class AnalysisWindow:
    """Counters since one pointer generation was applied on this replica (thread-safe)."""

    def __init__(self, generation: int, since: datetime, stable_version: str, candidate_version: str | None = None,
                 candidate_percent: int = 0, shadow_percent: int = 0):
        self.generation = generation
        self.since = since
        self.stable_version = stable_version
        self.candidate_version = candidate_version
        self.candidate_percent = candidate_percent
        self.shadow_percent = shadow_percent
        self._lock = threading.Lock()
        self._versions: dict[str, _Counters] = {stable_version: _Counters(STABLE)}
        if candidate_version and candidate_version != stable_version:
            self._versions[candidate_version] = _Counters(CANDIDATE)

    @classmethod
    def open(cls, pointer: ServingPointer, now: datetime) -> "AnalysisWindow":
        return cls(pointer.generation, now, pointer.stable_version, pointer.candidate_version,
                   pointer.candidate_percent, pointer.shadow_percent)

    def _counters(self, version: str) -> _Counters:
        found = self._versions.get(version)
        if found is None:
            found = self._versions[version] = _Counters(STABLE if version == self.stable_version else CANDIDATE)
        return found

    def record_request(self, version: str, *, seconds: float | None = None, error: bool = False,
                       fallback: bool = False) -> None:
        """One search routed to ``version``; ``seconds`` only when it answered."""
        with self._lock:
            c = self._counters(version)
            c.requests += 1
            c.errors += int(error)
            c.fallbacks += int(fallback)
            if seconds is not None:
                ms = seconds * 1000.0
                slot = bisect.bisect_left(LATENCY_BOUNDS_MS, ms)
                if slot < len(c.buckets):
                    c.buckets[slot] += 1
                c.latency_count += 1
                c.latency_sum_ms += ms

    def record_shadow(self, version: str, *, queries: int, overlap: float, k: int) -> None:
        with self._lock:
            c = self._counters(version)
            c.shadow_queries += queries
            c.shadow_overlap_sum += overlap
            c.shadow_k = k

    def record_shadow_error(self, version: str) -> None:
        with self._lock:
            self._counters(version).shadow_errors += 1

    def to_wire(self) -> dict[str, Any]:
        with self._lock:
            versions = {v: c.to_wire() for v, c in self._versions.items()}
        return {
            "generation": self.generation,
            "since": utc_timestamp(self.since),
            "stableVersion": self.stable_version,
            "candidateVersion": self.candidate_version,
            "candidatePercent": self.candidate_percent,
            "shadowPercent": self.shadow_percent,
            "versions": versions,
        }
