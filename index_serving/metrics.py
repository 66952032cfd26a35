"""Prometheus metrics of one serving runtime, labelled by version for rollout analysis.

Each runtime gets its own ``CollectorRegistry`` so several runtimes (tests, or a
service embedding one runtime per index) never collide; the HTTP server exposes the
runtime's registry at ``/metrics``. Version labels are bounded in practice: a replica
only ever serves the stable and the candidate version of one index.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
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
            "faiss_serving_load_failures", "Versions rejected, by version and reason (manifest|download|checksum|load|invalid).",
            ["version", "reason"], registry=r,
        )
        self.fallbacks = Counter(
            "faiss_serving_candidate_fallbacks",
            "Queries routed to a candidate that is not loaded, answered by stable instead.", registry=r,
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
