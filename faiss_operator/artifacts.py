"""Reads of one index's artifacts in S3 for ``observe``: pointer, version listing, manifests.

Thin I/O. Missing or invalid manifests become readable ``*_error`` strings for ``decide``;
any other storage failure propagates as ``StorageError`` (a status condition upstream).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from indexops_api.layout import index_prefix, manifest_key, pointer_key
from indexops_api.manifest import Manifest
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, FaissIndexStatus
from indexops_store import ArtifactStore, StorageError, make_client
from faiss_operator.model import JobObservation, StoredVersion


def store_for(spec: FaissIndexSpec) -> ArtifactStore:
    return ArtifactStore(_client(spec.storage.endpoint, spec.storage.region), spec.storage.bucket)


@lru_cache(maxsize=64)
def _client(endpoint: str | None, region: str | None) -> Any:
    """One S3 client per endpoint and region, shared by every pass (boto3 clients are thread-safe).

    Creating a client costs milliseconds of CPU and a few MB of allocations; per pass and
    per index that was the largest share of an idle operator's CPU at 1,000 indexes.
    Bounded: endpoints are few (the platform's allowlist), and an evicted one is recreated.
    """
    return make_client(endpoint, region)


class Artifacts:
    def __init__(self, store: ArtifactStore, spec: FaissIndexSpec, namespace: str, name: str):
        self.store, self.spec, self.namespace, self.name = store, spec, namespace, name
        args = (spec.storage.prefix, namespace, name, spec.horizon)
        self.prefix = index_prefix(*args)
        self.pointer = pointer_key(*args)

    def manifest(self, version: str) -> tuple[Manifest | None, str | None]:
        """The version's manifest, or None and why (missing or invalid)."""
        key = manifest_key(self.spec.storage.prefix, self.namespace, self.name, self.spec.horizon, version)
        try:
            return self.store.read_manifest(key), None
        except StorageError as exc:
            if not exc.not_found and "not a valid manifest" not in str(exc):
                raise
            return None, str(exc)

    def versions(self) -> dict[str, StoredVersion]:
        listing = self.store.list_versions(self.prefix)
        return {v: StoredVersion(complete=info.has_manifest, files=frozenset(info.files)) for v, info in listing.items()}

    def with_files_checked(self, versions: dict[str, StoredVersion], version: str | None) -> dict[str, StoredVersion]:
        """Mark ``version`` incomplete when a file its manifest lists is gone (one manifest read)."""
        stored = versions.get(version) if version else None
        if stored is None or not stored.complete:
            return versions
        manifest, _ = self.manifest(version)
        if manifest is not None and any(f.name not in stored.files for f in manifest.files):
            return {**versions, version: StoredVersion(complete=False, files=stored.files)}
        return versions

    def manifest_to_gate(self, status: FaissIndexStatus, jobs: tuple[JobObservation, ...]) -> dict[str, Any]:
        """The manifest ``decide`` needs: of a build that just ended, or of one not yet serving."""
        last = status.last_build
        if last is None:
            return {}
        if last.result == BuildResult.RUNNING:
            job = next((j for j in jobs if j.name == last.job), None)
            if job is not None and job.state != "Succeeded":
                return {}
        elif last.result in (BuildResult.FAILED, BuildResult.ROLLED_BACK) or last.version == status.current_version:
            return {}  # (a candidate's manifest is read too: promoting it copies its measurements)
        manifest, error = self.manifest(last.version)
        return {"manifest": manifest, "manifest_error": error}

    def pin_target(self, status: FaissIndexStatus) -> dict[str, Any]:
        """The manifest of the pinned version (or, right after unpinning, of the last good one)."""
        pin = self.spec.rollout.pinned_version
        if pin is not None:
            if status.current_version == pin and status.pinned_version == pin:
                return {}
            target = pin
        elif status.pinned_version is not None and status.last_good_version:
            target = status.last_good_version
        else:
            return {}
        manifest, error = self.manifest(target)
        return {"pinned_manifest": manifest, "pinned_error": error}
