"""S3 objects as seekable streams: listing a prefix, ranged reads, ``.npy`` concatenation.

A prefix can hold many large objects, so nothing is downloaded whole: each object is
read through ranged GETs pinned to the ETag seen when listing (``If-Match``), which
both keeps memory to one chunk and refuses an object replaced mid-build. Headers
(``.npy``) and footers (Parquet) are read first so the float32 matrix is allocated
once at its final size and filled in place.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from index_builder import checks
from index_builder.errors import SourceInvalid, SourceNotFound, StorageFailure
from indexops_store.probe import combined_etag
from indexops_store.s3 import ArtifactStore, StorageError

CHUNK_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime | None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def _error(exc: Exception, where: str) -> Exception:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return SourceNotFound(f"source object {where} does not exist")
        if code == "NoSuchBucket":
            return SourceNotFound(f"source bucket of {where} does not exist")
        if code in ("PreconditionFailed", "412"):
            return SourceInvalid(f"{where} was replaced while the build read it; retry the build")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return StorageFailure(f"access denied to {where}: check the source credentials ({code})")
        return StorageFailure(f"cannot read {where}: {code}: {exc}")
    return StorageFailure(f"cannot read {where}: storage unreachable: {exc}")


def head_object(store: ArtifactStore, key: str) -> S3Object:
    try:
        head = store.head(key)
    except StorageError as exc:
        if exc.not_found:
            from index_builder.source import _not_found_message  # the single-key wording, shared

            raise SourceNotFound(_not_found_message(store, key)) from exc
        raise StorageFailure(f"cannot read source s3://{store.bucket}/{key}: {exc}") from exc
    return S3Object(store.bucket, key, int(head.get("ContentLength", 0)), head.get("ETag", ""), head.get("LastModified"))


def list_objects(store: ArtifactStore, prefix: str, extension: str) -> list[S3Object]:
    """Objects under ``prefix`` ending in ``extension``, in key order; none is an error."""
    found: list[S3Object] = []
    others = 0
    where = f"s3://{store.bucket}/{prefix}"
    try:
        for page in store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(extension):
                    found.append(S3Object(store.bucket, obj["Key"], int(obj["Size"]), obj["ETag"], obj.get("LastModified")))
                else:
                    others += 1
    except (ClientError, BotoCoreError) as exc:
        raise _error(exc, where) from exc
    if not found:
        also = f" ({others} objects with other extensions)" if others else ""
        raise SourceNotFound(f"no {extension} objects under prefix {where}{also}")
    return sorted(found, key=lambda o: o.key)


def fingerprint(objects: list[S3Object]) -> tuple[str | None, str | None]:
    """(ETag, newest LastModified): one object's own ETag, or a digest of every key and ETag.

    The operator's drift probe computes the same from a listing: one implementation, shared.
    """
    return combined_etag(objects)


class ObjectReader(io.RawIOBase):
    """A read-only, seekable view of one S3 object backed by ranged GETs."""

    def __init__(self, client: Any, obj: S3Object):
        super().__init__()
        self._client, self._obj, self._pos = client, obj, 0
        self.fetched = 0  # body bytes received, for the per-slice read figures

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._obj.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._obj.size or not len(view):
            return 0
        end = min(self._pos + len(view), self._obj.size) - 1
        extra = {"IfMatch": self._obj.etag} if self._obj.etag else {}
        try:
            body = self._client.get_object(Bucket=self._obj.bucket, Key=self._obj.key,
                                           Range=f"bytes={self._pos}-{end}", **extra)["Body"]
            data = body.read()
        except (ClientError, BotoCoreError) as exc:
            raise _error(exc, self._obj.uri) from exc
        view[: len(data)] = data
        self._pos += len(data)
        self.fetched += len(data)
        return len(data)


def open_object(client: Any, obj: S3Object, buffer_size: int = 1 << 20) -> io.BufferedReader:
    return io.BufferedReader(ObjectReader(client, obj), buffer_size=buffer_size)


def raw_npy_header(client: Any, obj: S3Object) -> tuple[tuple[int, ...], bool, np.dtype, int, int] | None:
    """(shape, fortran, dtype, data offset, bytes fetched) of a ``.npy`` object's header; None for format 3.0."""
    reader = ObjectReader(client, obj)
    with io.BufferedReader(reader, buffer_size=4096) as fh:  # headers are ~128 bytes
        try:
            version = np.lib.format.read_magic(fh)
        except (ValueError, EOFError) as exc:
            raise SourceInvalid(f"{obj.uri} is not a .npy file: {exc}") from exc
        try:
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                return None
        except (ValueError, SyntaxError, EOFError) as exc:
            raise SourceInvalid(f"{obj.uri} has an unreadable .npy header: {exc}") from exc
        offset = fh.tell()
    if dtype.hasobject:
        raise SourceInvalid(f"{obj.uri} holds Python objects (dtype {dtype}); store a numeric array")
    return tuple(shape), fortran, dtype, offset, reader.fetched


@dataclass(frozen=True)
class _NpyLayout:
    obj: S3Object
    rows: int
    dtype: np.dtype
    offset: int
    header_bytes: int = 0  # bytes fetched to read the header


def npy_layout(client: Any, obj: S3Object, dimension: int) -> _NpyLayout:
    layout = npy_header(client, obj, dimension)
    if layout is None:
        raise SourceInvalid(f"{obj.uri}: unsupported .npy version (3.0); save it with numpy.save defaults")
    return layout


def npy_header(client: Any, obj: S3Object, dimension: int) -> _NpyLayout | None:
    """Shape, dtype and data offset from the header alone (ranged GETs of the first bytes).

    Checks the shape against ``dimension`` and the object size against the header, so a
    wrong or truncated object fails before its data is read. None for format 3.0 headers,
    which only ``numpy.load`` parses.
    """
    raw = raw_npy_header(client, obj)
    if raw is None:
        return None
    shape, fortran, dtype, offset, fetched = raw
    rows = checks.check_shape(tuple(shape), dtype, name=obj.uri, dimension=dimension)
    if fortran and rows > 1:
        raise SourceInvalid(f"{obj.uri} is stored in Fortran order; save it C-contiguous (np.ascontiguousarray)")
    expected = offset + rows * dimension * dtype.itemsize
    if obj.size < expected:
        raise SourceInvalid(f"{obj.uri} is truncated: its header declares shape {tuple(shape)} {dtype} "
                            f"({expected} bytes) but the object holds {obj.size} bytes")
    return _NpyLayout(obj, rows, dtype, offset, fetched)


def read_npy_objects(
    client: Any, objects: list[S3Object], dimension: int, on_count: Callable[[int], None] | None = None
) -> np.ndarray:
    """Concatenate (n_i, dimension) float ``.npy`` objects into one preallocated float32 matrix.

    ``on_count`` gets the total row count from the headers before any data is read.
    """
    layouts = [npy_layout(client, o, dimension) for o in objects]
    if on_count is not None:
        on_count(sum(lay.rows for lay in layouts))
    out = np.empty((sum(lay.rows for lay in layouts), dimension), dtype=np.float32)
    start = 0
    for lay in layouts:
        read_npy_rows(client, lay, 0, lay.rows, out[start:start + lay.rows])
        start += lay.rows
    return out


def read_npy_rows(client: Any, lay: _NpyLayout, first: int, count: int, out: np.ndarray) -> int:
    """Rows ``first .. first+count`` of one ``.npy`` object into ``out`` (float32) by ranged GETs; bytes fetched.

    Only those rows' bytes are requested, so a slice of a large object costs its share.
    """
    dimension = out.shape[1]
    reader = ObjectReader(client, lay.obj)
    row_bytes = dimension * lay.dtype.itemsize
    reader.seek(lay.offset + first * row_bytes)
    step = max(1, CHUNK_BYTES // row_bytes)
    for done in range(0, count, step):
        rows = min(step, count - done)
        target = out[done:done + rows]
        if lay.dtype == np.dtype("<f4"):
            got = read_exactly(reader, memoryview(target).cast("B"))
        else:
            raw = bytearray(rows * row_bytes)
            got = read_exactly(reader, memoryview(raw))
            target[...] = np.frombuffer(raw, dtype=lay.dtype).reshape(rows, dimension)
        if got != rows * row_bytes:
            raise SourceInvalid(f"{lay.obj.uri} ended after {got} of {rows * row_bytes} bytes of rows {first + done}..")
    return reader.fetched


def read_exactly(reader: ObjectReader, view: memoryview) -> int:
    done = 0
    while done < len(view):
        got = reader.readinto(view[done:])
        if not got:
            break
        done += got
    return done
