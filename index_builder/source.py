"""Fetching and opening the source ``.npy`` files, with errors that name the object.

Sources can be many GB, so S3 objects are downloaded to a work directory (boto3's
multipart transfer) and opened as read-only memmaps rather than read into memory.
Before numpy touches the data, the ``.npy`` header is read and the file size compared
with what it declares, so a truncated upload is reported as truncated instead of
surfacing as an obscure mmap error halfway through a build.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from index_builder.errors import SourceInvalid, SourceNotFound, StorageFailure
from indexops_api.constants import ENV_S3_ENDPOINT
from indexops_api.layout import render_location
from indexops_api.spec import FaissIndexSpec
from indexops_store.s3 import ArtifactStore, StorageError, make_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceLocation:
    """Where the vectors (and optional ids) are, after ``{horizon}`` substitution."""

    vectors: str
    ids: str | None = None
    bucket: str | None = None  # None for file sources
    endpoint: str | None = None
    region: str | None = None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}" if self.bucket else key


@dataclass(frozen=True)
class FetchedSource:
    """Local paths of the fetched files plus what identifies the source revision."""

    vectors_path: Path
    ids_path: Path | None
    uri: str
    ids_uri: str | None
    etag: str | None
    last_modified: str | None


def locate(spec: FaissIndexSpec, env: Mapping[str, str]) -> SourceLocation:
    """Pure: render templates and pick the endpoint (source, then storage, then env)."""
    if spec.source.s3 is not None:
        s3 = spec.source.s3
        return SourceLocation(
            vectors=render_location(s3.key, spec.horizon),
            ids=render_location(s3.ids_key, spec.horizon) if s3.ids_key else None,
            bucket=s3.bucket,
            endpoint=s3.endpoint or spec.storage.endpoint or env.get(ENV_S3_ENDPOINT) or None,
            region=spec.storage.region,
        )
    assert spec.source.file is not None  # Source guarantees exactly one member
    f = spec.source.file
    return SourceLocation(
        vectors=render_location(f.path, spec.horizon),
        ids=render_location(f.ids_path, spec.horizon) if f.ids_path else None,
    )


def fetch(location: SourceLocation, workdir: Path) -> FetchedSource:
    """Make the source files available locally (download from S3, or check the paths)."""
    if location.bucket is None:
        return _local(location)
    store = ArtifactStore(make_client(location.endpoint, location.region), location.bucket)
    vectors_path = workdir / "source-vectors.npy"
    etag, last_modified = _download(store, location.vectors, vectors_path)
    ids_path = None
    if location.ids:
        ids_path = workdir / "source-ids.npy"
        _download(store, location.ids, ids_path)
    return FetchedSource(
        vectors_path=vectors_path,
        ids_path=ids_path,
        uri=location.uri(location.vectors),
        ids_uri=location.uri(location.ids) if location.ids else None,
        etag=etag,
        last_modified=last_modified,
    )


def _local(location: SourceLocation) -> FetchedSource:
    paths = [Path(location.vectors)] + ([Path(location.ids)] if location.ids else [])
    for path in paths:
        if not path.is_file():
            raise SourceNotFound(f"source file {path} does not exist or is not a regular file")
    stat = paths[0].stat()
    return FetchedSource(
        vectors_path=paths[0],
        ids_path=paths[1] if len(paths) > 1 else None,
        uri=str(paths[0]),
        ids_uri=str(paths[1]) if len(paths) > 1 else None,
        etag=None,
        last_modified=datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(),
    )


def _download(store: ArtifactStore, key: str, path: Path) -> tuple[str | None, str | None]:
    where = f"s3://{store.bucket}/{key}"
    try:
        head = store.head(key)
        log.info("downloading source", extra={"uri": where, "bytes": head.get("ContentLength")})
        store.download_file(key, path)
    except StorageError as exc:
        if exc.not_found:
            raise SourceNotFound(_not_found_message(store, key)) from exc
        raise StorageFailure(f"cannot read source {where}: {exc}") from exc
    modified = head.get("LastModified")
    return head.get("ETag"), modified.isoformat() if modified is not None else None


def _not_found_message(store: ArtifactStore, key: str) -> str:
    """Tell a missing bucket from a missing object (HEAD answers 404 for both)."""
    try:
        store.list_keys(key)
    except StorageError as exc:
        if exc.not_found:
            return f"source bucket {store.bucket!r} does not exist (looking for s3://{store.bucket}/{key})"
    return f"source object s3://{store.bucket}/{key} does not exist"


def open_npy(path: Path, *, name: str) -> np.ndarray:
    """A read-only memmap of a ``.npy`` file after checking its header and size."""
    try:
        size = os.path.getsize(path)
        with path.open("rb") as fh:
            head = fh.read(8)
            fh.seek(0)
            try:
                version = np.lib.format.read_magic(fh)
            except ValueError as exc:
                raise SourceInvalid(f"{name} is not a .npy file (starts with {head!r})") from exc
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                return _load_plain(path, name=name)
            offset = fh.tell()
    except SourceInvalid:
        raise
    except (ValueError, SyntaxError, EOFError) as exc:
        raise SourceInvalid(f"{name} has an unreadable .npy header: {exc}") from exc
    except OSError as exc:
        raise SourceInvalid(f"{name} cannot be read: {exc}") from exc
    if dtype.hasobject:
        raise SourceInvalid(f"{name} holds Python objects (dtype {dtype}); store a numeric array")
    expected = offset + math.prod(shape) * dtype.itemsize
    if size < expected:
        raise SourceInvalid(
            f"{name} is truncated: its header declares shape {tuple(shape)} {dtype} "
            f"({expected} bytes) but the file holds {size} bytes"
        )
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype=dtype)
    return _load_plain(path, name=name, mmap=True)


def _load_plain(path: Path, *, name: str, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SourceInvalid(f"{name} is not a valid .npy file: {exc}") from exc
