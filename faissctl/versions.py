"""The stored versions of an index as rows, their roles, and the rollback target. Pure.

Input is one S3 listing (``VersionListing`` per version), the manifests that could be
read, and the FaissIndex object; output is what ``faissctl versions`` prints and what
``faissctl pin --previous`` picks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from faissctl.gates import gate_problems
from indexops_api.manifest import Manifest
from indexops_api.previous import excluded, previous_version
from indexops_api.status import FaissIndexStatus

@dataclass(frozen=True)
class VersionRow:
    version: str
    marks: list[str] = field(default_factory=list)  # serving, candidate, last-good, pinned, on-unpin
    complete: bool = True  # has a manifest; a version without one does not exist for serving
    stored: bool = True  # False: named by status but absent from storage
    created: str | None = None
    recall: float | None = None
    k: int | None = None
    p99_latency_ms: float | None = None
    vectors: int | None = None
    size_bytes: int | None = None
    index_type: str | None = None
    error: str | None = None  # the manifest could not be read

    def to_wire(self) -> dict[str, Any]:
        data = asdict(self)
        return {"version": data.pop("version"), "marks": data.pop("marks"), "complete": data.pop("complete"),
                "stored": data.pop("stored"), "createdAt": data.pop("created"), "recall": data.pop("recall"),
                "k": data.pop("k"), "p99LatencyMs": data.pop("p99_latency_ms"), "vectors": data.pop("vectors"),
                "sizeBytes": data.pop("size_bytes"), "indexType": data.pop("index_type"), "error": data.pop("error")}


def roles(index: dict[str, Any]) -> dict[str, list[str]]:
    """version -> its roles, from the index's status (and the pin declared in its spec)."""
    status = index.get("status") or {}
    pin = ((index.get("spec") or {}).get("rollout") or {}).get("pinnedVersion")
    found: dict[str, list[str]] = {}
    promoted = status.get("promotedVersion") or status.get("lastGoodVersion")
    on_unpin = status.get("lastGoodVersion") if status.get("pinnedVersion") else None
    for mark, version in (("serving", status.get("currentVersion")), ("candidate", status.get("candidateVersion")),
                          ("last-good", promoted), ("pinned", pin), ("on-unpin", on_unpin if on_unpin != promoted else None)):
        if version:
            found.setdefault(version, []).append(mark)
    return found


def rows(index: dict[str, Any], listings: dict[str, Any], manifests: dict[str, Manifest | str]) -> list[VersionRow]:
    """Newest first. ``manifests`` maps version -> Manifest, or the error reading it."""
    marks = roles(index)
    out = []
    for version in sorted(set(listings) | set(marks), reverse=True):
        listing = listings.get(version)
        if listing is None:
            out.append(VersionRow(version, marks.get(version, []), complete=False, stored=False))
            continue
        m = manifests.get(version)
        created = listing.last_modified.isoformat().replace("+00:00", "Z") if listing.last_modified else None
        base = VersionRow(version, marks.get(version, []), complete=listing.has_manifest, created=created,
                          size_bytes=listing.size_bytes)
        if isinstance(m, Manifest):
            base = VersionRow(
                version, base.marks, created=m.created_at, recall=m.measurements.recall_at_k, k=m.measurements.k,
                p99_latency_ms=m.measurements.latency_p99_ms, vectors=m.vectors, size_bytes=m.size_bytes,
                index_type=m.index_type.value,
            )
        elif isinstance(m, str):
            base = VersionRow(**{**asdict(base), "error": m})
        out.append(base)
    return out


def previous_good(index: dict[str, Any], manifests: dict[str, Manifest | str]) -> tuple[str | None, list[str]]:
    """The previous version (``indexops_api.previous``) among the stored ones that pass the gates.

    Returns (version or None, why each stored version between it and the serving one was skipped).
    Raises ``ValidationError`` when the index's status cannot be read.
    """
    status = FaissIndexStatus.model_validate(index.get("status") or {})
    pinned = ((index.get("spec") or {}).get("rollout") or {}).get("pinnedVersion")
    current = status.current_version
    if not current:
        return None, ["nothing serves yet, so there is no previous version"]
    why: dict[str, str] = {}
    for version in (v for v in manifests if v < current):
        m = manifests[version]
        if (rule := excluded(status, pinned, version)) is not None:
            why[version] = rule
        elif not isinstance(m, Manifest):
            why[version] = f"manifest unreadable ({m})"
        elif problems := gate_problems(m, index.get("spec") or {}, for_pin=True):
            why[version] = "; ".join(problems)
    chosen = previous_version(status, pinned, pool=(v for v in manifests if v < current and v not in why))
    skipped = [f"{v}: {why[v]}" for v in sorted(why, reverse=True) if chosen is None or v > chosen]
    return chosen, skipped
