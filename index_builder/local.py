"""Run the builder pipeline on a laptop and publish the version to a local directory.

``pipeline.run`` publishes through an ``ArtifactStore`` it opens from ``spec.storage``.
For a build without a cluster or an S3 server (``faissctl build``), the version is
written through ``DirectoryS3`` instead: the handful of S3 client calls the store makes
(list, get, head, put with ``If-None-Match``, upload, download), answered from a folder.
So the local build runs exactly the code a builder Job runs (checks, measurements,
manifest written last and only if absent), and the result has the same layout as in S3:
``<out>/<version>/{index.faiss, ids.npy, validation-queries.npy, manifest.json}``.

``pipeline.run`` has no parameter for the store yet, so ``run_to_directory`` swaps
the client factory that ``pipeline`` looks up, for the duration of the call, under a lock.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from index_builder import pipeline
from indexops_api.build_request import BuildRequest
from indexops_api.layout import index_prefix

_SWAP = threading.Lock()


def _client_error(code: str, operation: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _etag(path: Path) -> str:
    return '"' + hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest() + '"'


class _Paginator:
    def __init__(self, client: "DirectoryS3"):
        self._client = client

    def paginate(self, Bucket: str, Prefix: str = "") -> Iterator[dict[str, Any]]:  # noqa: N803 - boto3's names
        yield {"Contents": self._client.list(Prefix)}


class DirectoryS3:
    """The S3 client calls ``ArtifactStore`` makes, on the folder ``root``.

    Only keys under ``key_prefix`` are accepted; ``<key_prefix><rest>`` is the file
    ``root/<rest>``. The bucket name is ignored (one folder is one bucket).
    """

    def __init__(self, root: Path, key_prefix: str):
        self.root = root
        self.key_prefix = key_prefix

    def _path(self, key: str, operation: str) -> Path:
        rest = key[len(self.key_prefix):] if key.startswith(self.key_prefix) else None
        parts = rest.split("/") if rest else []
        if not parts or any(p in ("", ".", "..") for p in parts):
            raise _client_error("AccessDenied", operation, f"key {key!r} is outside {self.key_prefix!r}")
        return self.root.joinpath(*parts)

    def _existing(self, key: str, operation: str) -> Path:
        path = self._path(key, operation)
        if not path.is_file():
            raise _client_error("NoSuchKey", operation, f"{key} does not exist")
        return path

    def list(self, prefix: str) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            key = self.key_prefix + path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                stat = path.stat()
                found.append({"Key": key, "Size": stat.st_size, "ETag": _etag(path),
                              "LastModified": datetime.fromtimestamp(stat.st_mtime, timezone.utc)})
        return found

    def get_paginator(self, name: str) -> _Paginator:
        if name != "list_objects_v2":
            raise NotImplementedError(name)
        return _Paginator(self)

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        path = self._existing(Key, "HeadObject")
        return {"ContentLength": path.stat().st_size, "ETag": _etag(path)}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        path = self._existing(Key, "GetObject")
        return {"Body": io.BytesIO(path.read_bytes()), "ETag": _etag(path)}

    def put_object(self, Bucket: str, Key: str, Body: bytes, IfNoneMatch: str | None = None,  # noqa: N803
                   IfMatch: str | None = None) -> dict[str, Any]:
        path = self._path(Key, "PutObject")
        if IfNoneMatch == "*" and path.exists():
            raise _client_error("PreconditionFailed", "PutObject", f"{Key} already exists")
        if IfMatch is not None and (not path.exists() or _etag(path) != IfMatch):
            raise _client_error("PreconditionFailed", "PutObject", f"{Key} changed")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Body)
        return {"ETag": _etag(path)}

    def upload_file(self, Filename: str, Bucket: str, Key: str, Config: Any = None) -> None:  # noqa: N803
        path = self._path(Key, "PutObject")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Filename, path)

    def download_file(self, Bucket: str, Key: str, Filename: str, Config: Any = None) -> None:  # noqa: N803
        shutil.copyfile(self._existing(Key, "GetObject"), Filename)


@contextmanager
def _publishing_to(client: DirectoryS3) -> Iterator[None]:
    with _SWAP:
        original = pipeline.make_client
        pipeline.make_client = lambda *args, **kwargs: client  # type: ignore[assignment]
        try:
            yield
        finally:
            pipeline.make_client = original  # type: ignore[assignment]


def run_to_directory(request: BuildRequest, out: Path, env: Mapping[str, str], workdir: Path | None = None) -> pipeline.Outcome:
    """Build ``request`` and write its version folder under ``out`` (``out/<version>/``).

    Raises ``BuildFailure`` like a builder Job; nothing is written unless the build succeeds
    (the manifest goes last, and only if ``out/<version>/manifest.json`` does not exist).
    """
    spec = request.spec
    prefix = index_prefix(spec.storage.prefix, request.namespace, request.index, spec.horizon) + "/versions/"
    with _publishing_to(DirectoryS3(out, prefix)):
        return pipeline.run(request, env, workdir)
