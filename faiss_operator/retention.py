"""Which stored versions to prune. Pure.

Keeps the newest ``keep`` complete versions plus every protected one (serving, candidate,
last-good, pinned, and any version a running build is writing). Incomplete versions (no
manifest: a build that failed mid-upload) are pruned unless a running build owns them.
Version ids sort by creation time, so "newest" is a string sort.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from faiss_operator.model import StoredVersion


def versions_to_prune(versions: Mapping[str, StoredVersion], keep: int, protected: Iterable[str | None]) -> list[str]:
    guard = {v for v in protected if v}
    complete = sorted((v for v, info in versions.items() if info.complete), reverse=True)
    kept = set(complete[:keep]) | guard
    return sorted(v for v in versions if v not in kept)
