"""Each slice pod of a sharded build reads only its share of the source (real S3 server, real PostgreSQL).

The bytes a slice fetches are counted twice: by the builder (``sharding.slices[].sourceBytes``
in the manifest) and, independently, by a hook on the S3 client that sums the body length
of every GetObject response the slice stage makes. Each source is built as 4 Flat shards,
so the whole-index recall must stay exactly 1.0 and the shards together must hold every id
once: the result is the same as reading the whole source in every pod.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from s3_harness import Buckets, build_request, clustered, pg_execute, put_npy, put_parquet, run_stage, vector_table

from indexops_api.layout import version_prefix
from indexops_api.manifest import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_faiss_thread")]

SHARDS, DIM = 4, 32
HEADER_READ = 4096  # one buffered ranged GET per .npy header


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Body bytes of every source GetObject made by slice stages, as S3 reported them."""
    from index_builder import source_slice

    seen: list[int] = []
    real = source_slice.make_client

    def counting(endpoint: str | None, region: str | None) -> Any:
        client = real(endpoint, region)
        client.meta.events.register("after-call.s3.GetObject",
                                    lambda parsed, **_: seen.append(int(parsed.get("ContentLength", 0))))
        return client

    monkeypatch.setattr(source_slice, "make_client", counting)
    return seen


def _sharded(s3: Any, buckets: Buckets, endpoint: str, tmp_path: Path, fetched: list[int], *, dimension: int = DIM,
             **spec: Any) -> tuple[Manifest, list[int], list[np.ndarray]]:
    """Train, 4 slices (bytes each counted by the hook), finalize; the manifest, bytes per slice, ids per shard."""
    request = build_request(buckets=buckets, endpoint=endpoint, dimension=dimension, shards=SHARDS,
                            shardMerge="Never", validation={"queries": 40, "k": 10}, **spec)
    assert run_stage(request, tmp_path, "train") == (0, "")
    per_slice = []
    for shard in range(SHARDS):
        before = sum(fetched)
        assert run_stage(request, tmp_path, "shard", shard) == (0, "")
        per_slice.append(sum(fetched) - before)
    assert run_stage(request, tmp_path, "finalize") == (0, "")
    s = request["spec"]
    prefix = version_prefix("faiss-indexes", request["namespace"], request["index"], s["horizon"], request["version"])
    manifest = Manifest.model_validate(json.loads(
        s3.get_object(Bucket=buckets.artifacts, Key=f"{prefix}/manifest.json")["Body"].read()))
    assert manifest.sharding is not None
    ids = []
    for entry in manifest.sharding.shard_files:
        s3.download_file(buckets.artifacts, f"{prefix}/{entry.ids_file}", str(tmp_path / entry.ids_file))
        ids.append(np.load(tmp_path / entry.ids_file))
    return manifest, per_slice, ids


def _assert_whole_result(manifest: Manifest, shard_ids: list[np.ndarray], source_ids: np.ndarray) -> None:
    assert manifest.sharding is not None
    assert manifest.sharding.rule == "contiguous row ranges in source order"
    assert manifest.measurements.recall_at_k == pytest.approx(1.0)  # Flat shards: exact, as one index
    for entry, ids in zip(manifest.sharding.slices, shard_ids):
        assert sorted(ids.tolist()) == sorted(source_ids[entry.first_row:entry.first_row + entry.rows].tolist())
    assert sorted(np.concatenate(shard_ids).tolist()) == sorted(source_ids.tolist())


def test_slices_of_one_npy_object_with_an_ids_object_each_fetch_a_quarter_of_the_bytes_plus_two_headers(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, fetched: list[int],
) -> None:
    n = 16_000
    ids = np.arange(n, dtype=np.int64) * 3 + 5
    put_npy(s3, buckets.source, "6h/vectors.npy", clustered(n, DIM, seed=5))
    put_npy(s3, buckets.source, "6h/ids.npy", ids)
    manifest, per_slice, shard_ids = _sharded(s3, buckets, s3_endpoint, tmp_path, fetched, ids_key="{horizon}/ids.npy")
    _assert_whole_result(manifest, shard_ids, ids)
    share = n // SHARDS * (DIM * 4 + 8)  # the slice's vector rows and ids
    assert manifest.sharding is not None
    assert [s.source_bytes for s in manifest.sharding.slices] == per_slice  # the builder counts what S3 sent
    for got in per_slice:
        assert share <= got <= share + 2 * HEADER_READ


def test_slices_of_a_prefix_of_npy_objects_fetch_only_the_object_parts_they_overlap(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, fetched: list[int],
) -> None:
    sizes = [5_000, 7_000, 4_000]  # slice boundaries (every 4,000 rows) fall inside objects
    data = clustered(sum(sizes), DIM, seed=6)
    start = 0
    for part, size in enumerate(sizes):
        put_npy(s3, buckets.source, f"parts/6h/{part:02d}.npy", data[start:start + size])
        start += size
    manifest, per_slice, shard_ids = _sharded(s3, buckets, s3_endpoint, tmp_path, fetched,
                                              source={"s3": {"bucket": buckets.source, "prefix": "parts/{horizon}/"}})
    _assert_whole_result(manifest, shard_ids, np.arange(sum(sizes)))
    share = sum(sizes) // SHARDS * DIM * 4
    for got in per_slice:
        assert share <= got <= share + len(sizes) * HEADER_READ


def test_slices_of_parquet_objects_read_only_the_row_groups_they_overlap(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, fetched: list[int],
) -> None:
    n, group = 16_000, 500
    data, ids = clustered(n, DIM, seed=7), np.arange(n, dtype=np.int64) * 2 + 1
    for part in range(2):
        rows = slice(part * n // 2, (part + 1) * n // 2)
        put_parquet(s3, buckets.source, f"pq/6h/{part}.parquet", vector_table(data[rows], ids[rows]), row_group_size=group)
    total = sum(s3.head_object(Bucket=buckets.source, Key=f"pq/6h/{p}.parquet")["ContentLength"] for p in range(2))
    manifest, per_slice, shard_ids = _sharded(s3, buckets, s3_endpoint, tmp_path, fetched, source={"s3": {
        "bucket": buckets.source, "prefix": "pq/{horizon}/", "format": "parquet", "idColumn": "id"}})
    _assert_whole_result(manifest, shard_ids, ids)
    for got in per_slice:
        # its quarter, plus the tail of both objects (the reader fetches the last 64 KiB for the footer,
        # to count rows) and at most one 64 KiB buffer of read-ahead past its last row group
        assert total / SHARDS <= got <= total / SHARDS + 3 * 64 * 1024, (got, total)


def test_slices_of_a_postgres_table_select_only_their_id_range(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch,
    fetched: list[int],
) -> None:
    monkeypatch.setenv("FAISS_POSTGRES_DSN", postgres_dsn)
    table, n, dim = f"sliced_{uuid.uuid4().hex[:10]}", 4_000, 8
    ids = np.arange(n, dtype=np.int64) * 10 + 7
    vectors = clustered(n, dim, seed=8)
    pg_execute(postgres_dsn, f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding real[])")
    order = np.random.default_rng(1).permutation(n)  # inserted out of order; read in id order
    pg_execute(postgres_dsn, f"INSERT INTO {table} (id, embedding) VALUES (%s, %s)",
               [(int(ids[i]), [float(v) for v in vectors[i]]) for i in order])
    manifest, per_slice, shard_ids = _sharded(s3, buckets, s3_endpoint, tmp_path, fetched, dimension=dim, source={
        "postgres": {"dsnSecret": {"name": "pg"}, "table": table}})
    _assert_whole_result(manifest, shard_ids, ids)
    assert manifest.sharding is not None
    for entry, got in zip(manifest.sharding.slices, shard_ids):
        assert entry.rows == n // SHARDS
        assert entry.source_bytes == entry.rows * (dim * 4 + 8)  # only its rows crossed the connection
        assert (np.sort(got) == ids[entry.first_row:entry.first_row + entry.rows]).all()  # one id range
    assert per_slice == [0] * SHARDS  # and nothing from S3


def test_slices_of_a_windowed_postgres_table_hold_only_the_rows_inside_the_window(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch,
    fetched: list[int],
) -> None:
    monkeypatch.setenv("FAISS_POSTGRES_DSN", postgres_dsn)
    table, n, dim = f"windowed_{uuid.uuid4().hex[:10]}", 2_000, 8
    vectors = clustered(n, dim, seed=10)
    pg_execute(postgres_dsn, f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding real[], created_at timestamptz)")
    # every third row is older than the window and must be in no slice
    pg_execute(postgres_dsn, f"INSERT INTO {table} (id, embedding, created_at) VALUES "
               "(%s, %s, now() - (CASE WHEN %s THEN interval '100 hours' ELSE interval '1 hour' END))",
               [(i, [float(v) for v in vectors[i]], i % 3 == 0) for i in range(n)])
    manifest, _, shard_ids = _sharded(s3, buckets, s3_endpoint, tmp_path, fetched, dimension=dim, source={
        "postgres": {"dsnSecret": {"name": "pg"}, "table": table, "window": {"column": "created_at", "last": "48h"}}})
    recent = np.array([i for i in range(n) if i % 3], dtype=np.int64)
    _assert_whole_result(manifest, shard_ids, recent)
