"""One slice's rows of the source, reading only what the slice needs.

A slice pod of a sharded build adds the contiguous source rows ``[first, first+rows)``
(``indexops_api.shards.row_ranges``). Instead of fetching the whole source it reads:

* a single S3 ``.npy`` object (and its ids object): the header, then ranged GETs of the
  slice's rows only;
* an S3 prefix of ``.npy`` objects: every header (a few KB each), then ranged GETs of the
  part of each object that overlaps the slice;
* Parquet (one object or a prefix): every footer, then only the row groups that overlap
  the slice, and only the two configured columns;
* PostgreSQL: only the slice's id range (rows are in id order; the train stage recorded
  the first id of every slice), in a read-only transaction as the whole-source read;
* a local file: a memory map of which only the slice's pages are touched.

Every reader checks that the source still has the row count (and, for S3, the ETags) the
train stage saw, so a source replaced mid-build fails the slice instead of mixing two
revisions. ``SliceRows.fetched_bytes`` counts the bytes read for the slice (S3 bodies,
PostgreSQL vector and id values, local pages) so the per-slice cost can be reported.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from index_builder import source, source_parquet, source_postgres, source_s3
from index_builder.errors import SourceInvalid
from indexops_api.spec import FaissIndexSpec
from indexops_store.s3 import ArtifactStore, make_client


@dataclass(frozen=True)
class SliceRows:
    vectors: np.ndarray  # (rows, dimension)
    ids: np.ndarray  # (rows,) int64: the source's ids, or the row numbers when it has none
    fetched_bytes: int
    uri: str


@dataclass(frozen=True)
class Planned:
    """What the train stage saw, and which rows this slice owns."""

    vectors: int  # rows of the whole source
    first: int
    rows: int
    etag: str | None = None
    first_id: int | None = None  # PostgreSQL: the slice's id range [first_id, end_id)
    end_id: int | None = None
    window_anchor: str | None = None  # PostgreSQL window: the train stage's now(), ISO 8601


def load_slice(spec: FaissIndexSpec, env: Mapping[str, str], planned: Planned, workdir: Path) -> SliceRows:
    """``workdir``: scratch disk; ``.npy`` rows land in a memory-mapped file there (reclaimable page cache)."""
    if spec.source.postgres is not None:
        return _postgres(spec, env, planned)
    location = source.locate(spec, env)
    if location.bucket is None:
        return _local(location, planned)
    store = ArtifactStore(make_client(location.endpoint, location.region), location.bucket)
    if location.is_prefix:
        objects = source_s3.list_objects(store, location.vectors, f".{location.format}")
    else:
        objects = [source_s3.head_object(store, location.vectors)]
    etag, _ = source_s3.fingerprint(objects)
    uri = location.uri(location.vectors)
    if planned.etag is not None and etag != planned.etag:
        raise SourceInvalid(f"{uri} changed since the index was trained (ETag {etag} != {planned.etag}); "
                            "the source changed during the build")
    if location.format == "parquet":
        assert spec.source.s3 is not None
        columns = source_parquet.Columns(vector=spec.source.s3.vector_column, id=spec.source.s3.id_column)
        return _parquet(store.client, objects, columns, spec.dimension, planned, uri)
    vectors, fetched = _npy_objects(store.client, objects, spec.dimension, planned, uri, workdir)
    if location.ids:
        ids, more = _ids_object(store.client, source_s3.head_object(store, location.ids), planned)
        fetched += more
    else:
        ids = np.arange(planned.first, planned.first + planned.rows, dtype=np.int64)
    return SliceRows(vectors, ids, fetched, uri)


def _check_total(total: int, planned: Planned, uri: str) -> None:
    if total != planned.vectors:
        raise SourceInvalid(f"{uri} has {total} vectors now but {planned.vectors} when the index was trained; "
                            "the source changed during the build")


def overlaps(counts: list[int], first: int, rows: int) -> list[tuple[int, int, int]]:
    """Pure: ``(part, first row inside it, rows)`` of every part (object, row group) the slice overlaps."""
    out, start, end = [], 0, first + rows
    for part, count in enumerate(counts):
        lo, hi = max(first, start), min(end, start + count)
        if lo < hi:
            out.append((part, lo - start, hi - lo))
        start += count
    return out


def _npy_objects(client: Any, objects: list[source_s3.S3Object], dimension: int, planned: Planned,
                 uri: str, workdir: Path) -> tuple[np.ndarray, int]:
    layouts, fetched = [], 0
    for obj in objects:
        layout = source_s3.npy_layout(client, obj, dimension)
        fetched += layout.header_bytes
        layouts.append(layout)
    _check_total(sum(lay.rows for lay in layouts), planned, uri)
    # On the scratch disk, not the heap: the slice pod then holds its rows as page cache, as
    # it held the memory-mapped whole source before, and the index it builds in memory.
    out = (np.lib.format.open_memmap(workdir / "slice-vectors.npy", mode="w+", dtype=np.float32,
                                     shape=(planned.rows, dimension)) if planned.rows
           else np.empty((0, dimension), dtype=np.float32))
    done = 0
    for part, inside, count in overlaps([lay.rows for lay in layouts], planned.first, planned.rows):
        fetched += source_s3.read_npy_rows(client, layouts[part], inside, count, out[done:done + count])
        done += count
    return out, fetched


def _ids_object(client: Any, obj: source_s3.S3Object, planned: Planned) -> tuple[np.ndarray, int]:
    raw = source_s3.raw_npy_header(client, obj)
    if raw is None:
        raise SourceInvalid(f"{obj.uri}: unsupported .npy version (3.0); save it with numpy.save defaults")
    shape, _, dtype, offset, fetched = raw
    if len(shape) != 1 or dtype.kind not in "iu" or shape[0] != planned.vectors:
        raise SourceInvalid(f"{obj.uri} has shape {shape} {dtype}; expected ({planned.vectors},) integer ids "
                            "(the source changed during the build?)")
    reader = source_s3.ObjectReader(client, obj)
    reader.seek(offset + planned.first * dtype.itemsize)
    buffer = bytearray(planned.rows * dtype.itemsize)
    got = source_s3.read_exactly(reader, memoryview(buffer))
    if got != len(buffer):
        raise SourceInvalid(f"{obj.uri} ended after {got} of {len(buffer)} bytes of ids")
    return np.frombuffer(bytes(buffer), dtype=dtype).astype(np.int64), fetched + reader.fetched


def _parquet(client: Any, objects: list[source_s3.S3Object], columns: source_parquet.Columns, dimension: int,
             planned: Planned, uri: str) -> SliceRows:
    readers, files, fetched = [], [], 0
    for obj in objects:
        reader = source_s3.ObjectReader(client, obj)
        fh = io.BufferedReader(reader, buffer_size=64 * 1024)  # little read-ahead past a row group
        files.append(source_parquet.open_checked(fh, columns, name=obj.uri, dimension=dimension))
        readers.append(reader)
    _check_total(sum(pf.metadata.num_rows for pf in files), planned, uri)
    vectors = np.empty((planned.rows, dimension), dtype=np.float32)
    ids = np.arange(planned.first, planned.first + planned.rows, dtype=np.int64)
    done = 0
    for part, inside, count in overlaps([pf.metadata.num_rows for pf in files], planned.first, planned.rows):
        pf, name = files[part], objects[part].uri
        groups = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
        for group, in_group, rows in overlaps(groups, inside, count):
            got_v, got_i = source_parquet.read_row_group(pf, group, columns, dimension, name=name)
            vectors[done:done + rows] = got_v[in_group:in_group + rows]
            if got_i is not None:
                ids[done:done + rows] = got_i[in_group:in_group + rows]
            done += rows
    fetched += sum(r.fetched for r in readers)
    return SliceRows(vectors, ids, fetched, uri)


def _postgres(spec: FaissIndexSpec, env: Mapping[str, str], planned: Planned) -> SliceRows:
    pg = spec.source.postgres
    assert pg is not None
    if planned.rows == 0 or planned.first_id is None:
        return SliceRows(np.empty((0, spec.dimension), dtype=np.float32), np.empty(0, dtype=np.int64), 0, "")
    anchor = datetime.fromisoformat(planned.window_anchor) if planned.window_anchor else None
    got = source_postgres.read(pg, env, dimension=spec.dimension, id_range=(planned.first_id, planned.end_id),
                               window_anchor=anchor)
    if len(got.ids) != planned.rows:
        raise SourceInvalid(f"{got.uri}: ids [{planned.first_id}, {planned.end_id}) hold {len(got.ids)} rows now but "
                            f"{planned.rows} when the index was trained; the source changed during the build")
    return SliceRows(got.vectors, got.ids, int(got.vectors.nbytes + got.ids.nbytes), got.uri)


def _local(location: source.SourceLocation, planned: Planned) -> SliceRows:
    fetched = source.fetch(location, Path("."))  # local paths are only checked, never copied
    matrix = source.open_npy(fetched.vectors_path, name=fetched.uri)
    _check_total(int(matrix.shape[0]) if matrix.ndim == 2 else -1, planned, fetched.uri)
    end = planned.first + planned.rows
    vectors = matrix[planned.first:end]
    if fetched.ids_path is not None:
        ids = np.asarray(source.open_npy(fetched.ids_path, name=fetched.ids_uri or "")[planned.first:end], dtype=np.int64)
    else:
        ids = np.arange(planned.first, end, dtype=np.int64)
    return SliceRows(vectors, ids, int(vectors.nbytes + ids.nbytes), fetched.uri)
