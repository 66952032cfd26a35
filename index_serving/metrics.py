"""Prometheus metrics of one serving runtime, labelled by version for rollout analysis.

Each runtime gets its own ``CollectorRegistry`` so several runtimes (tests, or a
service embedding one runtime per index) never collide; the HTTP server exposes the
runtime's registry at ``/metrics``. Version labels are bounded in practice: a replica
only ever serves the stable and the candidate version of one index.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from index_serving.analysis import LATENCY_BOUNDS_MS

# The analysis window's bounds, in seconds: /metrics and /v1/status bucket alike.
LATENCY_BUCKETS = tuple(ms / 1000.0 for ms in LATENCY_BOUNDS_MS)
NO_VERSION = "none"


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "faiss_serving_requests", "Search requests by answering version and HTTP code.", ["version", "code"], registry=r
        )
        self.latency = Histogram(
            "faiss_serving_search_seconds", "Search latency (FAISS search plus id mapping) by version.",
            ["version"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.queries = Counter("faiss_serving_query_vectors", "Query vectors searched, by version.", ["version"], registry=r)
        self.loaded = Gauge(
            "faiss_serving_loaded_version_info", "1 for each loaded version and its role (stable|candidate).",
            ["version", "role"], registry=r,
        )
        self.vectors = Gauge("faiss_serving_index_vectors", "Vectors in each loaded version.", ["version"], registry=r)
        self.swaps = Counter("faiss_serving_swaps", "Atomic snapshot swaps (a new set of versions went live).", registry=r)
        self.load_failures = Counter(
            "faiss_serving_load_failures", "Versions rejected, by version and reason (manifest|memory|download|checksum|load|warmup|invalid).",
            ["version", "reason"], registry=r,
        )
        self.cache_repairs = Counter(
            "faiss_serving_cache_repairs",
            "Cached files that no longer matched their manifest (size or sha256) and were downloaded again, by version.",
            ["version"], registry=r,
        )
        self.fallbacks = Counter(
            "faiss_serving_candidate_fallbacks",
            "Queries routed to a candidate that is not loaded or whose search failed, answered by stable instead.",
            registry=r,
        )
        self.search_errors = Counter(
            "faiss_serving_search_errors", "Searches that raised inside FAISS or the runtime, by version.", ["version"],
            registry=r,
        )
        self.fallback_searches = Counter(
            "faiss_serving_fallback_searches",
            "Searches answered by the embedder's fallback, by reason (disabled|no-index|error).", ["reason"], registry=r,
        )
        self.shadow_queries = Counter(
            "faiss_serving_shadow_queries", "Query vectors also run on the candidate and compared, by candidate version.",
            ["version"], registry=r,
        )
        self.shadow_overlap = Counter(
            "faiss_serving_shadow_overlap",
            "Sum of overlap@k (0..1 per query) of candidate vs stable; divide by shadow_queries for the mean.",
            ["version"], registry=r,
        )
        self.shadow_errors = Counter(
            "faiss_serving_shadow_errors", "Shadow searches that raised on the candidate.", ["version"], registry=r,
        )
        self.shadow_dropped = Counter(
            "faiss_serving_shadow_dropped", "Shadow searches dropped because the shadow queue was full.", registry=r,
        )
        self.memory_available = Gauge(
            "faiss_serving_memory_available_bytes",
            "Memory available for another index at the last headroom check (cgroup limit or MemAvailable).", registry=r,
        )
        self.pointer_errors = Counter("faiss_serving_pointer_errors", "Failed reads of the serving pointer.", registry=r)
        self.pointer_generation = Gauge("faiss_serving_pointer_generation", "Generation of the last pointer read.", registry=r)
        self.applied_generation = Gauge(
            "faiss_serving_applied_generation", "Generation of the last pointer fully applied (all wanted versions live).",
            registry=r,
        )
        self.ready = Gauge("faiss_serving_ready", "1 when a stable version is loaded.", registry=r)

    def set_loaded(self, roles: dict[str, str], vectors: dict[str, int]) -> None:
        """Replace the loaded-version series with ``{version: role}``."""
        self.loaded.clear()
        self.vectors.clear()
        for version, role in roles.items():
            self.loaded.labels(version=version, role=role).set(1)
            self.vectors.labels(version=version).set(vectors[version])
        self.ready.set(1 if "stable" in roles.values() else 0)
