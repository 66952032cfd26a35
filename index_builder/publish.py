"""Publishing an immutable version: files first, ``manifest.json`` last and conditional.

The manifest is the commit marker: a version without one does not exist, so a crash at
any earlier point leaves nothing that serving or the operator would pick up. The
manifest is written with ``If-None-Match: *``; when it already exists, the build key
decides: the same key means a retried pod already finished this exact build (success,
nothing rewritten), another key means two different builds claimed one version id
(refused).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from index_builder.errors import StorageFailure, VersionConflict
from indexops_api.build_request import BuildRequest
from indexops_api.constants import MANIFEST_FILE
from indexops_api.manifest import FileEntry, Manifest, Measurements, SourceFingerprint, Timings
from indexops_store.s3 import ArtifactStore, StorageError, sha256_file

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.npy"
QUERIES_FILE = "validation-queries.npy"


def existing_manifest(store: ArtifactStore, prefix: str, build_key: str) -> Manifest | None:
    """Preflight before any work: the bucket is usable, and this version is not taken.

    Returns the manifest when this very build already committed (idempotent retry).
    """
    key = f"{prefix}/{MANIFEST_FILE}"
    try:
        keys = store.list_keys(f"{prefix}/")
        if key not in keys:
            return None
        manifest = store.read_manifest(key)
    except StorageError as exc:
        raise StorageFailure(f"artifact storage: {exc}") from exc
    return _same_build(manifest, build_key, f"s3://{store.bucket}/{key}")


def _same_build(manifest: Manifest, build_key: str, where: str) -> Manifest:
    if manifest.build_key != build_key:
        raise VersionConflict(
            f"{where} already exists for build key {manifest.build_key[:12]}, not {build_key[:12]}; "
            "versions are immutable"
        )
    return manifest


def file_entries(paths: list[Path]) -> list[FileEntry]:
    return [FileEntry(name=p.name, size=p.stat().st_size, sha256=sha256_file(p)) for p in paths]


def make_manifest(
    request: BuildRequest,
    *,
    vectors: int,
    parameters: dict[str, int],
    search_parameters: dict[str, int],
    files: list[FileEntry],
    source: SourceFingerprint,
    measurements: Measurements,
    timings: Timings,
    faiss_version: str,
    builder_version: str,
    created: datetime | None = None,
) -> Manifest:
    """Pure: every field of the manifest from what the build produced and measured."""
    spec = request.spec
    return Manifest(
        index=request.index,
        namespace=request.namespace,
        horizon=spec.horizon,
        version=request.version,
        build_key=request.build_key,
        created_at=(created or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        index_type=spec.index_type,
        metric=spec.metric,
        dimension=spec.dimension,
        vectors=vectors,
        parameters=parameters,
        search_parameters=search_parameters,
        files=files,
        index_file=INDEX_FILE,
        ids_file=IDS_FILE,
        size_bytes=sum(f.size for f in files),
        source=source,
        measurements=measurements,
        timings=timings,
        faiss_version=faiss_version,
        builder_version=builder_version,
    )


def upload(store: ArtifactStore, prefix: str, paths: list[Path]) -> None:
    for path in paths:
        key = f"{prefix}/{path.name}"
        log.info("uploading", extra={"key": key, "bytes": path.stat().st_size})
        try:
            store.upload_file(path, key)
        except StorageError as exc:
            raise StorageFailure(f"artifact storage: {exc}") from exc


def commit(store: ArtifactStore, prefix: str, manifest: Manifest) -> bool:
    """Write the manifest if absent; True if written, False if this build had already committed."""
    key = f"{prefix}/{MANIFEST_FILE}"
    body = json.dumps(manifest.to_wire(), indent=2, sort_keys=True).encode()
    try:
        store.put_bytes(key, body, if_none_match=True)
        return True
    except StorageError as exc:
        if not exc.conflict:
            raise StorageFailure(f"artifact storage: {exc}") from exc
    try:
        existing = store.read_manifest(key)
    except StorageError as exc:
        raise StorageFailure(f"artifact storage: {exc}") from exc
    _same_build(existing, manifest.build_key, f"s3://{store.bucket}/{key}")
    return False
