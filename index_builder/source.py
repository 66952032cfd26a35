"""Loading the source vectors, whatever holds them, with errors that name the object.

``load`` is the one entry point the pipeline calls; it dispatches on the source kind and
returns a float matrix, optional ids and what identifies the source revision (the
fingerprint the operator compares for drift). A single ``.npy`` object or file is
downloaded to the work directory (boto3's multipart transfer) and opened as a read-only
memmap, after checking its header against its size so a truncated upload is reported as
truncated rather than as an obscure mmap error. For an S3 object that header is read
first with a ranged GET, so the shape checks and the memory preflight fail a build
before gigabytes are downloaded. Prefixes and Parquet stream through
``source_s3`` / ``source_parquet``; PostgreSQL through ``source_postgres``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from index_builder import source_parquet, source_postgres, source_s3
from index_builder.errors import SourceInvalid, SourceNotFound, StorageFailure
from indexops_api.constants import ENV_S3_ENDPOINT
from indexops_api.layout import render_location
from indexops_api.spec import FaissIndexSpec, S3Source
from indexops_store.s3 import ArtifactStore, StorageError, make_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceLocation:
    """Where the vectors (and optional ids) are, after ``{horizon}`` substitution."""

    vectors: str  # the key, prefix or path
    ids: str | None = None
    bucket: str | None = None  # None for file sources
    endpoint: str | None = None
    region: str | None = None
    is_prefix: bool = False
    format: str = "npy"

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
            vectors=render_location(s3.key or s3.prefix or "", spec.horizon),
            ids=render_location(s3.ids_key, spec.horizon) if s3.ids_key else None,
            bucket=s3.bucket,
            endpoint=s3.endpoint or spec.storage.endpoint or env.get(ENV_S3_ENDPOINT) or None,
            region=spec.storage.region,
            is_prefix=s3.key is None,
            format=s3.format,
        )
    assert spec.source.file is not None  # Source guarantees exactly one member
    f = spec.source.file
    return SourceLocation(
        vectors=render_location(f.path, spec.horizon),
        ids=render_location(f.ids_path, spec.horizon) if f.ids_path else None,
    )


@dataclass(frozen=True)
class LoadedSource:
    """The vectors (a matrix or memmap), ids when the source has them, and its fingerprint."""

    vectors: np.ndarray
    ids: np.ndarray | None
    uri: str
    ids_uri: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    watermark: str | None = None
    content_hash: str | None = None
    window_anchor: str | None = None


def load(
    spec: FaissIndexSpec, env: Mapping[str, str], workdir: Path, on_count: Callable[[int], None] | None = None
) -> LoadedSource:
    """Read the source into memory (or a memmap); raises a typed ``BuildFailure``.

    ``on_count`` (the memory preflight) is called with the row count as soon as it is
    known: from npy headers / Parquet footers / ``count(*)`` before vector data is read
    (for a single S3 object, before it is downloaded); for a local file, once it is open.
    """
    if spec.source.postgres is not None:
        rows = source_postgres.read(spec.source.postgres, env, dimension=spec.dimension, on_count=on_count)
        return LoadedSource(rows.vectors, rows.ids, rows.uri, ids_uri=rows.uri, watermark=rows.watermark,
                            content_hash=rows.content_hash, window_anchor=rows.window_anchor)
    location = locate(spec, env)
    if location.bucket is None or (location.format == "npy" and not location.is_prefix):
        counted = _npy_object_rows(location, spec.dimension) if location.bucket is not None else None
        if on_count is not None and counted is not None:
            on_count(counted)  # before the download
        fetched = fetch(location, workdir)
        vectors = open_npy(fetched.vectors_path, name=fetched.uri)
        if on_count is not None and counted is None and vectors.ndim == 2:
            on_count(int(vectors.shape[0]))
        ids = open_npy(fetched.ids_path, name=fetched.ids_uri or "") if fetched.ids_path else None
        return LoadedSource(vectors, ids, fetched.uri, ids_uri=fetched.ids_uri, etag=fetched.etag,
                            last_modified=fetched.last_modified, watermark=fetched.last_modified)
    assert spec.source.s3 is not None
    return _load_streamed(spec.source.s3, location, spec.dimension, on_count)


def _npy_object_rows(location: SourceLocation, dimension: int) -> int | None:
    """Rows of a single ``.npy`` object from its header (HEAD + a ranged GET), None if only numpy can parse it."""
    assert location.bucket is not None
    store = ArtifactStore(make_client(location.endpoint, location.region), location.bucket)
    header = source_s3.npy_header(store.client, source_s3.head_object(store, location.vectors), dimension)
    if header is not None:
        log.info("source header read", extra={"uri": header.obj.uri, "vectors": header.rows, "dtype": str(header.dtype),
                                              "bytes": header.obj.size})
    return header.rows if header is not None else None


def _load_streamed(
    s3: S3Source, location: SourceLocation, dimension: int, on_count: Callable[[int], None] | None = None
) -> LoadedSource:
    """A prefix of objects, or Parquet: read through ranged GETs into one float32 matrix."""
    assert location.bucket is not None
    store = ArtifactStore(make_client(location.endpoint, location.region), location.bucket)
    extension = f".{location.format}"
    if location.is_prefix:
        objects = source_s3.list_objects(store, location.vectors, extension)
    else:
        objects = [source_s3.head_object(store, location.vectors)]
    log.info("reading source objects", extra={"uri": location.uri(location.vectors), "objects": len(objects),
                                              "bytes": sum(o.size for o in objects), "format": location.format})
    ids: np.ndarray | None = None
    if location.format == "npy":
        vectors = source_s3.read_npy_objects(store.client, objects, dimension, on_count)
    else:
        columns = source_parquet.Columns(vector=s3.vector_column, id=s3.id_column)
        counts = []
        for obj in objects:
            with source_s3.open_object(store.client, obj) as fh:
                counts.append(source_parquet.row_count(fh, columns, name=obj.uri, dimension=dimension))
        if on_count is not None:
            on_count(sum(counts))
        vectors = np.empty((sum(counts), dimension), dtype=np.float32)
        ids = np.empty(sum(counts), dtype=np.int64) if s3.id_column else None
        start = 0
        for obj, count in zip(objects, counts):
            with source_s3.open_object(store.client, obj) as fh:
                got = source_parquet.read_into(fh, columns, vectors, ids, start=start, name=obj.uri)
            if got != count:
                raise SourceInvalid(f"{obj.uri}: footer declares {count} rows but {got} were read")
            start += count
    etag, newest = source_s3.fingerprint(objects)
    uri = location.uri(location.vectors)
    return LoadedSource(vectors, ids, uri, ids_uri=uri if ids is not None else None, etag=etag,
                        last_modified=newest, watermark=newest)


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
