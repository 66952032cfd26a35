"""boto3-backed access to versions, manifests and the serving pointer.

Listing and deleting are here too because retention, deletion and the check for a version
whose files vanished all start from the same paginated listing. Deletion treats a prefix
as a folder (``a/b`` never touches ``a/bc``), refuses the bucket root, and removes every
``manifest.json`` before anything else: the manifest is the commit marker, so a delete
that stops half-way leaves files that no reader will take for a complete version.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import ValidationError

from indexops_api.constants import ENV_S3_ENDPOINT, MANIFEST_FILE
from indexops_api.manifest import Manifest
from indexops_api.pointer import ServingPointer

_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=4)
MAX_DELETE_BATCH = 1000  # the DeleteObjects limit
_ERRORS_SHOWN = 5


class StorageError(RuntimeError):
    """An S3 operation failed; ``str()`` says which object and why."""

    def __init__(self, message: str, *, not_found: bool = False, conflict: bool = False, denied: bool = False):
        super().__init__(message)
        self.not_found = not_found
        self.conflict = conflict
        self.denied = denied


class DeleteIncomplete(StorageError):
    """Some objects under a prefix could not be deleted; ``deleted`` were, ``failed`` maps key → reason.

    Deleting again is safe: what is already gone is simply not listed any more.
    """

    def __init__(self, message: str, *, deleted: int, failed: Mapping[str, str], denied: bool = False):
        super().__init__(message, denied=denied)
        self.deleted = deleted
        self.failed = dict(failed)


class StorageUnavailable(StorageError):
    """The storage endpoint did not answer within its deadline, or refused the connection."""


class StorageTooLarge(StorageError):
    """An answer (object body, listing page or error) exceeded the reader's size cap; it was not read."""


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None


@dataclass(frozen=True)
class VersionListing:
    """What is stored under ``<index>/versions/<version>/``, from one listing (no object is read)."""

    version: str
    files: Mapping[str, int] = field(default_factory=dict)  # name relative to the version prefix → bytes
    last_modified: datetime | None = None  # newest object

    @property
    def size_bytes(self) -> int:
        return sum(self.files.values())

    @property
    def has_manifest(self) -> bool:
        """A version without its manifest was never committed (or is being deleted)."""
        return MANIFEST_FILE in self.files

    def missing(self, expected: Iterable[str]) -> list[str]:
        """Names in ``expected`` (e.g. the manifest's files) that are not stored, in the given order."""
        return [name for name in expected if name not in self.files]


def make_client(
    endpoint: str | None = None,
    region: str | None = None,
    *,
    credentials: tuple[str, str] | None = None,
    limits: Any = None,
) -> Any:
    """An S3 client; endpoint falls back to ``FAISS_S3_ENDPOINT_URL`` then AWS.

    ``credentials`` (access key id, secret) replace the ambient ones. ``limits``
    (``indexops_store.bounded.Limits``) sends every request through a size- and
    time-bounded exchange: for readers of storage that someone else writes.
    """
    endpoint = endpoint or os.environ.get(ENV_S3_ENDPOINT) or None
    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]} if credentials else {}
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=config, **keys,
    )
    if limits is not None:
        from indexops_store.bounded import attach

        attach(client, limits)
    return client


def _describe(exc: Exception, bucket: str, key: str) -> StorageError:
    where = f"s3://{bucket}/{key}"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return StorageError(f"{where} does not exist", not_found=True)
        if code == "NoSuchBucket":
            return StorageError(f"bucket {bucket!r} does not exist ({where})", not_found=True)
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return StorageError(f"{where} changed concurrently (conditional write refused)", conflict=True)
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return StorageError(f"access denied to {where}: check the storage credentials ({code})", denied=True)
        return StorageError(f"{where}: {code or 'error'}: {exc.response.get('Error', {}).get('Message', exc)}")
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):  # connect/read timeouts, refused, endpoint errors
        return StorageUnavailable(f"{where}: storage unreachable: {exc}")
    return StorageError(f"{where}: storage unreachable: {exc}")


def _folder(prefix: str, *, allow_root: bool) -> str:
    """``a/b`` → ``a/b/`` so that ``a/bc`` is never matched; the root is ``""``."""
    parts = prefix.strip("/")
    if not parts.strip(" \t\r\n/"):  # nothing but slashes and blanks
        if allow_root:
            return ""
        raise StorageError(f"refusing to delete prefix {prefix!r}: it is the root of the bucket")
    return parts + "/"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ArtifactStore:
    """One bucket on one endpoint."""

    client: Any
    bucket: str
    limits: Any = None  # indexops_store.bounded.Limits: size, time and listing caps for untrusted storage

    def _budget(self) -> AbstractContextManager[None]:
        """One wall-clock budget for a whole call (its retries, every page of a listing)."""
        if self.limits is None:
            return nullcontext()
        from indexops_store.bounded import call_budget

        return call_budget(self.limits.call_seconds)

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        """Object body and its ETag; with ``limits``, refused unread when larger than the cap."""
        try:
            with self._budget():
                resp = self.client.get_object(Bucket=self.bucket, Key=key)
                if self.limits is None:
                    return resp["Body"].read(), resp["ETag"]
                cap = self.limits.max_response_bytes
                declared = int(resp.get("ContentLength") or 0)
                body = resp["Body"].read(cap + 1) if declared <= cap else b""
                if declared > cap or len(body) > cap:
                    resp["Body"].close()
                    raise StorageTooLarge(f"s3://{self.bucket}/{key} is larger than the {cap}-byte cap "
                                          f"({max(declared, len(body))} bytes or more); refusing to read it")
                return body, resp["ETag"]
        except (ClientError, BotoCoreError) as exc:
            raise _describe(exc, self.bucket, key) from exc

    def head(self, key: str) -> dict[str, Any]:
        try:
            with self._budget():
                return self.client.head_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _describe(exc, self.bucket, key) from exc

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
            return True
        except StorageError as exc:
            if exc.not_found:
                return False
            raise

    def get_json(self, key: str) -> tuple[dict[str, Any], str]:
        body, etag = self.get_bytes(key)
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise StorageError(f"s3://{self.bucket}/{key} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise StorageError(f"s3://{self.bucket}/{key} is not a JSON object")
        return data, etag

    def put_bytes(self, key: str, body: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write an object, optionally only if its ETag still matches (or it is absent)."""
        extra: dict[str, Any] = {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        try:
            with self._budget():
                resp = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
            return resp["ETag"]
        except (ClientError, BotoCoreError) as exc:
            raise _describe(exc, self.bucket, key) from exc

    def upload_file(self, path: Path, key: str) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, key, Config=_TRANSFER)
        except (ClientError, BotoCoreError) as exc:
            raise _describe(exc, self.bucket, key) from exc
        except Exception as exc:  # boto3's S3UploadFailedError wraps ClientError
            raise StorageError(f"upload of {path} to s3://{self.bucket}/{key} failed: {exc}") from exc

    def download_file(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, key, str(path), Config=_TRANSFER)
        except (ClientError, BotoCoreError) as exc:
            raise _describe(exc, self.bucket, key) from exc

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` (a plain key prefix), page by page, in key order."""
        for page in self._pages(prefix):
            for obj in page.get("Contents", []):
                yield ObjectInfo(obj["Key"], int(obj.get("Size", 0)), obj.get("ETag", ""), obj.get("LastModified"))

    def _pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages; with ``limits``, at most so many pages and keys, all within one budget.

        The budget is entered around each page request only, never across a ``yield``: a
        caller that stops iterating early must not leave a deadline behind in its thread.
        """
        pages = keys = 0
        started = time.monotonic()
        try:
            it = iter(self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix))
            while True:
                if self.limits is None:
                    page = next(it, None)
                else:
                    from indexops_store.bounded import call_budget

                    remaining = self.limits.call_seconds - (time.monotonic() - started)
                    if remaining <= 0:
                        raise StorageUnavailable(f"listing s3://{self.bucket}/{prefix} took longer than "
                                                 f"{self.limits.call_seconds:g}s ({pages} pages); gave up")
                    with call_budget(remaining, shown=self.limits.call_seconds):
                        page = next(it, None)
                if page is None:
                    return
                pages += 1
                keys += len(page.get("Contents", []))
                if self.limits is not None and (pages > self.limits.max_list_pages or keys > self.limits.max_list_keys):
                    raise StorageTooLarge(
                        f"listing s3://{self.bucket}/{prefix} goes on past {self.limits.max_list_pages} pages or "
                        f"{self.limits.max_list_keys} keys ({pages} pages, {keys} keys so far); refusing to list further"
                    )
                yield page
        except (ClientError, BotoCoreError) as exc:
            raise _describe(exc, self.bucket, prefix) from exc

    def list_versions(self, index_prefix: str) -> dict[str, VersionListing]:
        """Every version folder under ``<index_prefix>/versions/``, sorted by version id.

        Includes versions without a manifest (uncommitted, or partly deleted): callers decide
        what they mean. Objects directly under ``versions/`` (not in a version folder) are ignored.
        """
        root = _folder(index_prefix, allow_root=True) + "versions/"
        files: dict[str, dict[str, int]] = {}
        newest: dict[str, datetime | None] = {}
        for obj in self.iter_objects(root):
            version, sep, name = obj.key[len(root):].partition("/")
            if not sep or not version:
                continue
            entries = files.setdefault(version, {})
            if name:  # "versions/<v>/" itself is a folder marker, not a file
                entries[name] = obj.size
            seen = newest.get(version)
            if obj.last_modified is not None and (seen is None or obj.last_modified > seen):
                newest[version] = obj.last_modified
        return {v: VersionListing(v, files[v], newest.get(v)) for v in sorted(files)}

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder ``prefix``; returns how many were deleted.

        Refuses an empty or root prefix. Manifests go first (see the module docstring).
        Raises ``DeleteIncomplete`` listing the keys S3 refused, after trying every batch.
        """
        folder = _folder(prefix, allow_root=False)
        keys = [obj.key for obj in self.iter_objects(folder)]
        keys.sort(key=lambda k: (k.rsplit("/", 1)[-1] != MANIFEST_FILE, k))
        deleted, failed = 0, {}
        for start in range(0, len(keys), MAX_DELETE_BATCH):
            batch = keys[start : start + MAX_DELETE_BATCH]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                cause = _describe(exc, self.bucket, folder)
                raise DeleteIncomplete(
                    f"deleted {deleted} of {len(keys)} objects under s3://{self.bucket}/{folder}, then: {cause}",
                    deleted=deleted, failed={k: str(cause) for k in keys[start:]}, denied=cause.denied,
                ) from exc
            errors = resp.get("Errors", [])
            for err in errors:
                failed[err.get("Key", "?")] = f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
            deleted += len(batch) - len(errors)
        if failed:
            shown = "; ".join(f"{k}: {why}" for k, why in list(failed.items())[:_ERRORS_SHOWN])
            more = f" (and {len(failed) - _ERRORS_SHOWN} more)" if len(failed) > _ERRORS_SHOWN else ""
            raise DeleteIncomplete(
                f"could not delete {len(failed)} of {len(keys)} objects under s3://{self.bucket}/{folder}: {shown}{more}",
                deleted=deleted, failed=failed, denied=any("AccessDenied" in why for why in failed.values()),
            )
        return deleted

    def delete_version(self, index_prefix: str, version: str) -> int:
        """Delete one version folder (manifest first); returns the number of objects deleted."""
        if not version or "/" in version or version in (".", ".."):
            raise StorageError(f"refusing to delete version {version!r}: not a single version id")
        if not index_prefix.strip("/"):
            raise StorageError(f"refusing to delete version {version!r} under an empty index prefix")
        return self.delete_prefix(f"{_folder(index_prefix, allow_root=False)}versions/{version}")

    def list_keys(self, prefix: str) -> list[str]:
        return [obj.key for obj in self.iter_objects(prefix)]

    def read_manifest(self, key: str) -> Manifest:
        data, _ = self.get_json(key)
        try:
            return Manifest.model_validate(data)
        except ValidationError as exc:
            raise StorageError(f"s3://{self.bucket}/{key} is not a valid manifest: {exc}") from exc

    def read_pointer(self, key: str) -> tuple[ServingPointer | None, str | None]:
        """The pointer and its ETag, or (None, None) when no version was ever promoted."""
        try:
            data, etag = self.get_json(key)
        except StorageError as exc:
            if exc.not_found:
                return None, None
            raise
        try:
            return ServingPointer.model_validate(data), etag
        except ValidationError as exc:
            raise StorageError(f"s3://{self.bucket}/{key} is not a valid serving pointer: {exc}") from exc

    def write_pointer(self, key: str, pointer: ServingPointer, *, etag: str | None) -> str:
        """Conditional write: replaces exactly the pointer read with ``etag`` (or creates it)."""
        body = json.dumps(pointer.to_wire(), indent=2, sort_keys=True).encode()
        if etag is None:
            return self.put_bytes(key, body, if_none_match=True)
        return self.put_bytes(key, body, if_match=etag)
