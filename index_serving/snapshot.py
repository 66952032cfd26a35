"""Immutable views of what a runtime serves: the snapshot swapped atomically, and results.

A ``Snapshot`` is never mutated: a swap builds a new one and replaces one reference, so
a query that picked up the old snapshot finishes on exactly the versions it started
with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    version: str
    role: str  # "stable" | "candidate" | "fallback" (the embedder's fallback callable answered)
    ids: list[list[int]]
    distances: list[list[float]]
    fallback: bool  # not answered by the version the key routes to (candidate not loaded or failed, or no index)


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
