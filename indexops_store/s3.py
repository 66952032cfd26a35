"""boto3-backed access to versions, manifests and the serving pointer."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from indexops_api.constants import ENV_S3_ENDPOINT
from indexops_api.manifest import Manifest
from indexops_api.pointer import ServingPointer

_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=4)


class StorageError(RuntimeError):
    """An S3 operation failed; ``str()`` says which object and why."""

    def __init__(self, message: str, *, not_found: bool = False, conflict: bool = False):
        super().__init__(message)
        self.not_found = not_found
        self.conflict = conflict


def make_client(endpoint: str | None = None, region: str | None = None) -> Any:
    """An S3 client; endpoint falls back to ``FAISS_S3_ENDPOINT_URL`` then AWS."""
    endpoint = endpoint or os.environ.get(ENV_S3_ENDPOINT) or None
    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    return boto3.client("s3", endpoint_url=endpoint, region_name=region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1", config=config)


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
            return StorageError(f"access denied to {where}: check the storage credentials ({code})")
        return StorageError(f"{where}: {code or 'error'}: {exc.response.get('Error', {}).get('Message', exc)}")
    return StorageError(f"{where}: storage unreachable: {exc}")


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

    def get_bytes(self, key: str) -> tuple[bytes, str]:
        """Object body and its ETag."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
            return resp["Body"].read(), resp["ETag"]
        except (ClientError, BotoCoreError) as exc:
            raise _describe(exc, self.bucket, key) from exc

    def head(self, key: str) -> dict[str, Any]:
        try:
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

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise _describe(exc, self.bucket, prefix) from exc
        return keys

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
