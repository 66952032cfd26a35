"""The builder reading Parquet objects and whole prefixes from a real S3 API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pytest
from s3_harness import Buckets, build_request, clustered, put_npy, put_parquet, run_builder, vector_table

from exact import in_source_order

from indexops_api.manifest import Manifest

pytestmark = pytest.mark.integration

DIM = 8
SMALL = {"dimension": DIM, "validation": {"queries": 10, "k": 5}}


def _s3_source(buckets: Buckets, **fields: Any) -> dict[str, Any]:
    return {"s3": {"bucket": buckets.source, **fields}}


def _manifest(s3: Any, bucket: str, prefix: str) -> Manifest:
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read()
    return Manifest.model_validate(json.loads(body))


def _published(s3: Any, bucket: str, prefix: str, name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    s3.download_file(bucket, f"{prefix}/{name}", str(path))
    return path


def _index_rows(s3: Any, buckets: Buckets, prefix: str, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The vectors stored in the published Flat index and its ids file, in source order."""
    index = faiss.read_index(str(_published(s3, buckets.artifacts, prefix, "index.faiss", tmp_path)))
    ids = np.load(_published(s3, buckets.artifacts, prefix, "ids.npy", tmp_path))
    rows = np.load(_published(s3, buckets.artifacts, prefix, "validation-queries.npy", tmp_path))
    return in_source_order(index.reconstruct_n(0, index.ntotal), rows), in_source_order(ids, rows)


def _assert_nothing_published(s3: Any, buckets: Buckets) -> None:
    assert s3.list_objects_v2(Bucket=buckets.artifacts).get("KeyCount", 0) == 0


def test_a_single_parquet_object_with_an_id_column_is_published_with_its_ids(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    data = clustered(300, DIM, seed=3)
    ids = np.arange(300, dtype=np.int64) * 7 + 5
    put_parquet(s3, buckets.source, "6h/part.parquet", vector_table(data, ids), row_group_size=64)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, **SMALL, source=_s3_source(
        buckets, key="{horizon}/part.parquet", format="parquet", idColumn="id"))

    result = run_builder(request, tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    assert (manifest.vectors, manifest.source.count) == (300, 300)
    assert manifest.source.uri == f"s3://{buckets.source}/6h/part.parquet"
    head = s3.head_object(Bucket=buckets.source, Key="6h/part.parquet")
    assert manifest.source.etag == head["ETag"]
    assert manifest.source.watermark == head["LastModified"].isoformat()
    stored, stored_ids = _index_rows(s3, buckets, result.prefix, tmp_path)
    np.testing.assert_array_equal(stored, data)
    np.testing.assert_array_equal(stored_ids, ids)


def test_a_prefix_of_npy_objects_is_concatenated_in_key_order_and_other_objects_are_ignored(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    parts = [clustered(n, DIM, seed=10 + i) for i, n in enumerate((120, 1, 200))]
    # uploaded out of order: the key decides the order, not the upload time
    put_npy(s3, buckets.source, "emb/6h/part-2.npy", parts[2])
    put_npy(s3, buckets.source, "emb/6h/part-0.npy", parts[0])
    put_npy(s3, buckets.source, "emb/6h/part-1.npy", parts[1].astype(np.float64))
    s3.put_object(Bucket=buckets.source, Key="emb/6h/_SUCCESS", Body=b"")
    put_npy(s3, buckets.source, "emb/12h/part-0.npy", clustered(50, DIM, seed=99))
    request = build_request(buckets=buckets, endpoint=s3_endpoint, **SMALL,
                            source=_s3_source(buckets, prefix="emb/{horizon}/"))

    result = run_builder(request, tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    assert manifest.source.count == manifest.vectors == 321
    assert manifest.source.uri == f"s3://{buckets.source}/emb/6h/"
    assert manifest.source.etag is not None and manifest.source.etag.startswith("sha256:")
    listed = s3.list_objects_v2(Bucket=buckets.source, Prefix="emb/6h/part-")["Contents"]
    assert manifest.source.watermark == max(o["LastModified"] for o in listed).isoformat()
    stored, stored_ids = _index_rows(s3, buckets, result.prefix, tmp_path)
    np.testing.assert_array_equal(stored, np.concatenate(parts).astype(np.float32))
    np.testing.assert_array_equal(stored_ids, np.arange(321))


def test_a_prefix_of_parquet_objects_mixing_list_and_fixed_size_list_columns_keeps_every_id(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    first, second = clustered(150, DIM, seed=4), clustered(170, DIM, seed=5)
    put_parquet(s3, buckets.source, "pq/6h/a.parquet", vector_table(first, np.arange(150, dtype=np.int32)))
    put_parquet(s3, buckets.source, "pq/6h/b.parquet",
                vector_table(second, np.arange(1000, 1170, dtype=np.int64), fixed=True), row_group_size=50)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, **SMALL, source=_s3_source(
        buckets, prefix="pq/{horizon}/", format="parquet", idColumn="id"))

    result = run_builder(request, tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    stored, stored_ids = _index_rows(s3, buckets, result.prefix, tmp_path)
    np.testing.assert_array_equal(stored, np.concatenate([first, second]))
    np.testing.assert_array_equal(stored_ids, np.concatenate([np.arange(150), np.arange(1000, 1170)]))


def test_an_empty_prefix_fails_as_source_not_found_naming_the_prefix(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    put_npy(s3, buckets.source, "other/6h/part-0.npy", clustered(50, DIM, seed=1))
    s3.put_object(Bucket=buckets.source, Key="emb/6h/readme.txt", Body=b"not vectors")
    request = build_request(buckets=buckets, endpoint=s3_endpoint, **SMALL,
                            source=_s3_source(buckets, prefix="emb/{horizon}/"))

    result = run_builder(request, tmp_path)

    assert result.exit_code == 1
    assert result.termination.startswith("SourceNotFound: ")
    assert f"s3://{buckets.source}/emb/6h/" in result.termination and ".npy" in result.termination
    _assert_nothing_published(s3, buckets)


@pytest.mark.parametrize(
    ("table", "source_fields", "code", "fragments"),
    [
        (pa.table({"embedding": pa.array(["a", "b"] * 30)}), {}, "SourceInvalid",
         ["column 'embedding'", "type string", "list of float"]),
        (pa.table({"vec": pa.array([[1.0] * DIM] * 60)}), {}, "SourceInvalid",
         ["column 'embedding' not found", "columns: vec"]),
        (vector_table(clustered(60, DIM, seed=2), np.arange(60).astype(str)), {"idColumn": "id"}, "SourceInvalid",
         ["id column 'id'", "type string", "integer"]),
        (pa.table({"embedding": pa.array([[1.0] * DIM] * 59 + [[1.0] * (DIM - 1)])}), {}, "SourceInvalid",
         ["ragged", "row 59 has 7 values"]),
        (vector_table(clustered(60, DIM + 1, seed=2), fixed=True), {}, "DimensionMismatch",
         ["dimension 9", "spec.dimension is 8"]),
        (pa.table({"embedding": pa.array([[1.0] * DIM] * 10 + [None] + [[1.0] * DIM] * 49,
                                         type=pa.list_(pa.float32()))}), {}, "InvalidVectors",
         ["null", "first at row 10"]),
    ],
    ids=["wrong-vector-type", "missing-column", "string-ids", "ragged-rows", "fixed-size-wrong-dimension", "null-vector"],
)
def test_a_malformed_parquet_object_fails_with_a_code_naming_object_column_and_type(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
    table: pa.Table, source_fields: dict[str, Any], code: str, fragments: list[str],
) -> None:
    put_parquet(s3, buckets.source, "6h/bad.parquet", table)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, **SMALL, source=_s3_source(
        buckets, key="{horizon}/bad.parquet", format="parquet", **source_fields))

    result = run_builder(request, tmp_path)

    assert result.exit_code == 1
    assert result.termination.startswith(f"{code}: s3://{buckets.source}/6h/bad.parquet"), result.termination
    for fragment in fragments:
        assert fragment in result.termination
    _assert_nothing_published(s3, buckets)


def test_a_truncated_npy_object_in_a_prefix_is_reported_as_truncated(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    import io

    put_npy(s3, buckets.source, "emb/6h/part-0.npy", clustered(100, DIM, seed=1))
    buf = io.BytesIO()
    np.save(buf, clustered(100, DIM, seed=2))
    s3.put_object(Bucket=buckets.source, Key="emb/6h/part-1.npy", Body=buf.getvalue()[:-40])
    request = build_request(buckets=buckets, endpoint=s3_endpoint, **SMALL,
                            source=_s3_source(buckets, prefix="emb/{horizon}/"))

    result = run_builder(request, tmp_path)

    assert result.exit_code == 1
    assert result.termination.startswith(f"SourceInvalid: s3://{buckets.source}/emb/6h/part-1.npy is truncated")
    _assert_nothing_published(s3, buckets)

