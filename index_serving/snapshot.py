"""Immutable views of what a runtime serves: the snapshot swapped atomically, and results.

A ``Snapshot`` is never mutated: a swap builds a new one and replaces one reference, so
a query that picked up the old snapshot finishes on exactly the versions it started
with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from index_serving.analysis import AnalysisWindow
from index_serving.loader import LoadedVersion
from indexops_api.pointer import ServingPointer


@dataclass(frozen=True)
class Snapshot:
    stable: LoadedVersion | None = None
    candidate: LoadedVersion | None = None
    candidate_percent: int = 0
    pointer: ServingPointer | None = None  # the pointer this snapshot was derived from
    # Counters of the last fully applied pointer generation; a query records into the
    # window of the snapshot it started with, so a step change never splits a request.
    window: AnalysisWindow | None = field(default=None, compare=False)

    @property
    def shadow_percent(self) -> int:
        """Share of stable-routed queries to shadow: only with a loaded candidate."""
        return self.pointer.shadow_percent if self.pointer is not None and self.candidate is not None else 0

    def versions(self) -> dict[str, LoadedVersion]:
        return {v.version: v for v in (self.stable, self.candidate) if v is not None}

    def shape(self) -> tuple[str | None, str | None, int]:
        return (
            self.stable.version if self.stable else None,
            self.candidate.version if self.candidate else None,
            self.candidate_percent,
        )


@dataclass(frozen=True)
class SearchResult:
    """One answer, kept as the arrays FAISS returned (the HTTP server encodes them as they are).

    ``id_matrix`` is (nq, k) int64 with -1 where the index had fewer than k results;
    ``ids`` / ``distances`` are the list view without those holes (built on first use).
    """

    version: str
    role: str  # "stable" | "candidate" | "fallback" (the embedder's fallback callable answered)
    id_matrix: np.ndarray
    distance_matrix: np.ndarray
    fallback: bool  # not answered by the version the key routes to (candidate not loaded or failed, or no index)

    @cached_property
    def complete(self) -> bool:
        """Every row has k results (no -1 holes)."""
        return bool((self.id_matrix >= 0).all())

    @cached_property
    def ids(self) -> list[list[int]]:
        if self.complete:
            return self.id_matrix.tolist()
        return [row[row >= 0].tolist() for row in self.id_matrix]

    @cached_property
    def distances(self) -> list[list[float]]:
        if self.complete:
            return self.distance_matrix.tolist()
        return [d[row >= 0].tolist() for row, d in zip(self.id_matrix, self.distance_matrix)]

    def rows(self, start: int, stop: int) -> "SearchResult":
        """The answer to rows ``start:stop`` (a request that shared one FAISS call with others)."""
        return SearchResult(self.version, self.role, self.id_matrix[start:stop], self.distance_matrix[start:stop], self.fallback)


def describe(lv: LoadedVersion, role: str) -> dict[str, Any]:
    m = lv.manifest
    return {
        "version": lv.version,
        "role": role,
        "indexType": m.index_type.value,
        "metric": m.metric.value,
        "dimension": m.dimension,
        "vectors": lv.index.ntotal,
        "sizeBytes": m.size_bytes,
        "searchParameters": m.search_parameters,
        "recallAtK": m.measurements.recall_at_k,
        "k": m.measurements.k,
        "loadedAt": lv.loaded_at.isoformat(),
        "loadSeconds": round(lv.load_seconds, 3),
        "warmupSeconds": round(lv.warmup_seconds, 3),
        "readMode": lv.read_mode,
    }
