"""Reads of one index's artifacts in S3 for ``observe``: pointer, version listing, manifests.

Thin I/O. Missing or invalid manifests become readable ``*_error`` strings for ``decide``;
any other storage failure propagates as ``StorageError`` (a status condition upstream).
Every client is made here, for storage the platform granted (``storage_policy``), with the
grant's credentials and the operator's size/time limits (``indexops_store.bounded``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from indexops_api.layout import index_prefix, manifest_key, pointer_key
from indexops_api.manifest import Manifest
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, FaissIndexStatus
from indexops_store import ArtifactStore, StorageError, StorageUnavailable, make_client
from indexops_store.bounded import Limits
from faiss_operator.config import OperatorConfig
from faiss_operator.model import JobObservation, StoredVersion
from faiss_operator.storage_policy import OPERATOR_CREDENTIALS, Access, Refusal, StorageGrant, check_index

T = TypeVar("T")
# Every storage step of a reconcile pass (observe's reads, the pointer write, pruning, the
# finalizer's delete) ends within this many seconds: a hung endpoint becomes
# StorageUnavailable (Degraded, a metric) instead of a silent multi-minute stall of the
# index's loop (botocore alone allows 4 attempts x 60 s read timeout). The call itself
# cannot be interrupted: it goes on in a pool thread until botocore gives up or the
# endpoint answers, and while it does, the same step of the same index is not started
# again (it fails at once instead), so a long hang holds at most one thread per step.
STORAGE_DEADLINE_SECONDS = float(os.environ.get("FAISS_OPERATOR_STORAGE_DEADLINE_SECONDS") or 10)
_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="storage")
_inflight: dict[tuple[str, ...], tuple[Future, float]] = {}
_inflight_lock = threading.Lock()


def bounded(what: str, fn: Callable[..., T], *args: Any, deadline: float | None = None, key: tuple[str, ...] | None = None) -> T:
    """``fn(*args)`` or ``StorageUnavailable`` once ``deadline`` seconds have passed.

    ``key`` names the step (e.g. namespace, index, "observe"): while an earlier call of the
    same step has not returned, this one fails at once rather than stacking another thread.
    """
    limit = STORAGE_DEADLINE_SECONDS if deadline is None else deadline
    with _inflight_lock:
        earlier = _inflight.get(key) if key is not None else None
        if earlier is not None and not earlier[0].done():
            raise StorageUnavailable(f"storage has not answered a call made {time.monotonic() - earlier[1]:.0f}s ago ({what})")
        future = _POOL.submit(fn, *args)
        if key is not None:
            _inflight[key] = (future, time.monotonic())
    try:
        return future.result(timeout=limit)
    except FutureTimeout:
        raise StorageUnavailable(f"storage did not answer within {limit:.0f}s ({what})") from None


class StorageNotAllowed(StorageError):
    """The spec names storage outside the operator's grants; nothing was sent (see ``storage_policy``)."""


@lru_cache(maxsize=1)
def operator_config() -> OperatorConfig:
    return OperatorConfig.from_env()


def access_for(spec: FaissIndexSpec, namespace: str, name: str, config: OperatorConfig | None = None) -> Access | Refusal:
    config = config or operator_config()
    return check_index(config.storage_grants, namespace, name, spec, config.default_endpoint)


def _credentials(grant: StorageGrant, credentials_dir: Path) -> tuple[str, str] | None:
    if grant.credentials == OPERATOR_CREDENTIALS:
        return None
    folder = credentials_dir / grant.credentials
    try:
        return ((folder / "AWS_ACCESS_KEY_ID").read_text().strip(), (folder / "AWS_SECRET_ACCESS_KEY").read_text().strip())
    except OSError as exc:  # the path and error name only: never file contents
        raise StorageError(f"credentials of Secret {grant.credentials!r} are not mounted at {folder} ({exc.strerror})") from None


def _limits(config: OperatorConfig) -> Limits:
    return Limits(**dataclasses.asdict(config.s3_limits))


def _client(grant: StorageGrant, endpoint: str | None, region: str | None, config: OperatorConfig) -> Any:
    return _shared_client(endpoint, region, _credentials(grant, config.credentials_dir), _limits(config))


@lru_cache(maxsize=64)
def _shared_client(endpoint: str | None, region: str | None, credentials: tuple[str, str] | None, limits: Limits) -> Any:
    """One S3 client per endpoint, region, credentials and limits, shared by every pass.

    boto3 clients are thread-safe and the bounded exchange (``indexops_store.bounded``) opens
    its own connection per request. Creating a client costs milliseconds of CPU and a few MB
    of allocations; per pass and per index that was the largest share of an idle operator's
    CPU at 1,000 indexes. Bounded: grants are few, and an evicted client is recreated (a
    rotated credentials Secret gives a new key, so a new client).
    """
    return make_client(endpoint, region, credentials=credentials, limits=limits)


def _granted(spec: FaissIndexSpec, namespace: str, name: str, config: OperatorConfig | None) -> tuple[Access, OperatorConfig]:
    config = config or operator_config()
    access = access_for(spec, namespace, name, config)
    if isinstance(access, Refusal):
        raise StorageNotAllowed(access.message, denied=True)
    return access, config


def store_for(spec: FaissIndexSpec, namespace: str, name: str, config: OperatorConfig | None = None) -> ArtifactStore:
    """The index's artifact bucket, with the credentials and limits its grant gives; refuses ungranted storage."""
    access, config = _granted(spec, namespace, name, config)
    client = _client(access.storage, access.storage_endpoint, spec.storage.region, config)
    return ArtifactStore(client, spec.storage.bucket, limits=_limits(config))


def source_client(spec: FaissIndexSpec, namespace: str, name: str, config: OperatorConfig | None = None) -> Any:
    """A client for the index's S3 source (drift probe), under the source's own grant."""
    access, config = _granted(spec, namespace, name, config)
    if access.source is None:
        raise StorageError("the index has no S3 source")
    return _client(access.source, access.source_endpoint, spec.storage.region, config)


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
            if job is not None and job.state == "Running":
                return {}  # (a Failed Job's manifest is read too: a builder killed after the commit published)
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
