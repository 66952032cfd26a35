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

REJECTED_RESULTS = ("Failed", "ValidationFailed", "RolledBack")


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


def rejected_versions(index: dict[str, Any]) -> set[str]:
    """Versions whose builds the operator recorded as failed or rejected by the gates."""
    status = index.get("status") or {}
    builds = list(status.get("history") or []) + ([status["lastBuild"]] if status.get("lastBuild") else [])
    return {b["version"] for b in builds if b.get("result") in REJECTED_RESULTS and b.get("version")}


def previous_good(index: dict[str, Any], manifests: dict[str, Manifest | str]) -> tuple[str | None, list[str]]:
    """The newest stored version older than the serving one that would pass the gates.

    Returns (version or None, why each newer older-than-current version was skipped).
    """
    spec, status = index.get("spec") or {}, index.get("status") or {}
    current = status.get("currentVersion")
    if not current:
        return None, ["nothing serves yet, so there is no previous version"]
    rejected = rejected_versions(index)
    skipped: list[str] = []
    for version in sorted((v for v in manifests if v < current), reverse=True):
        m = manifests[version]
        if not isinstance(m, Manifest):
            skipped.append(f"{version}: manifest unreadable ({m})")
        elif version in rejected:
            skipped.append(f"{version}: rejected by the operator")
        elif problems := gate_problems(m, spec, for_pin=True):
            skipped.append(f"{version}: {'; '.join(problems)}")
        else:
            return version, skipped
    return None, skipped
