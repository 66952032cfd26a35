"""The builder reading vectors from a real PostgreSQL (``hack/postgres/pg.sh``).

Each test creates its own table; builds are end-to-end through the CLI's ``execute`` so
exit codes and termination messages are the ones the operator reads.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import psycopg
import pytest
from s3_harness import Buckets, build_request, clustered, free_port, pg_execute, run_builder

from exact import in_source_order

from indexops_api.manifest import Manifest

pytestmark = pytest.mark.integration

DIM = 8
SMALL = {"dimension": DIM, "validation": {"queries": 10, "k": 5}}


@pytest.fixture
def dsn(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FAISS_POSTGRES_DSN", postgres_dsn)
    return postgres_dsn


@pytest.fixture
def table(dsn: str) -> str:
    return f"vectors_{uuid.uuid4().hex[:10]}"


def _create(dsn: str, table: str, vector_type: str, rows: list[tuple[Any, ...]], *, with_time: bool = False) -> None:
    time_column = ", created_at timestamptz NOT NULL DEFAULT now()" if with_time else ""
    pg_execute(dsn, f"CREATE TABLE {table} (id bigint, embedding {vector_type}{time_column})")
    if rows:
        placeholders = ", ".join(["%s"] * len(rows[0]))
        columns = "id, embedding" + (", created_at" if len(rows[0]) == 3 else "")
        pg_execute(dsn, f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)


def _create_with_null_vector(dsn: str, table: str, null_id: int, seed: int) -> None:
    """150 float4[] rows, the one with id ``null_id`` holding NULL instead of a vector."""
    rows = [(i, _encode("float4[]", v)) for i, v in enumerate(clustered(150, DIM, seed=seed))]
    rows[null_id] = (null_id, None)
    _create(dsn, table, "real[]", rows)


def _request(buckets: Buckets, endpoint: str, **postgres: Any) -> dict[str, Any]:
    source = {"postgres": {"dsnSecret": {"name": "pg"}, **postgres}}
    return build_request(buckets=buckets, endpoint=endpoint, **SMALL, source=source)


def _manifest(s3: Any, bucket: str, prefix: str) -> Manifest:
    return Manifest.model_validate(json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read()))


def _index_rows(s3: Any, buckets: Buckets, prefix: str, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The vectors stored in the published Flat index and its ids file, in source order."""
    for name in ("index.faiss", "ids.npy", "validation-queries.npy"):
        s3.download_file(buckets.artifacts, f"{prefix}/{name}", str(tmp_path / name))
    index = faiss.read_index(str(tmp_path / "index.faiss"))
    rows = np.load(tmp_path / "validation-queries.npy")
    return in_source_order(index.reconstruct_n(0, index.ntotal), rows), in_source_order(np.load(tmp_path / "ids.npy"), rows)


def _assert_failed(result: Any, s3: Any, buckets: Buckets, code: str, *fragments: str) -> None:
    assert result.exit_code == 1
    assert result.termination.startswith(f"{code}: "), result.termination
    for fragment in fragments:
        assert fragment in result.termination, result.termination
    assert s3.list_objects_v2(Bucket=buckets.artifacts).get("KeyCount", 0) == 0


def _encode(fmt: str, vector: np.ndarray) -> Any:
    if fmt == "float4[]":
        return [float(v) for v in vector]
    if fmt == "bytea":
        return vector.astype("<f4").tobytes()
    return "[" + ",".join(repr(float(v)) for v in vector) + "]"


@pytest.mark.parametrize(("fmt", "column_type"), [("float4[]", "real[]"), ("bytea", "bytea"), ("pgvector", "text")])
def test_a_table_in_each_vector_format_is_streamed_in_id_order_in_batches(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str, table: str, fmt: str, column_type: str,
) -> None:
    data = clustered(350, DIM, seed=21)
    ids = np.random.default_rng(0).permutation(350).astype(np.int64) * 10 + 3  # inserted out of id order
    _create(dsn, table, column_type, [(int(i), _encode(fmt, v)) for i, v in zip(ids, data)])

    result = run_builder(_request(buckets, s3_endpoint, table=table, vectorFormat=fmt, batchSize=100), tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    port = dsn.rsplit(":", 1)[1].split("/")[0]
    assert manifest.source.uri == f"postgres://127.0.0.1:{port}/faiss/{table}"
    assert manifest.source.count == manifest.vectors == 350
    assert manifest.source.content_hash and manifest.source.content_hash.startswith("sha256:")
    assert manifest.source.watermark is None  # no time column configured
    stored, stored_ids = _index_rows(s3, buckets, result.prefix, tmp_path)
    order = np.argsort(ids)
    np.testing.assert_array_equal(stored_ids, ids[order])
    np.testing.assert_array_equal(stored, data[order])


def test_a_query_is_wrapped_as_a_subquery_and_may_contain_percent_signs_and_a_semicolon(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str, table: str,
) -> None:
    data = clustered(200, DIM, seed=22)
    pg_execute(dsn, f"CREATE TABLE {table} (doc_id bigint, vec real[], label text)")
    pg_execute(dsn, f"INSERT INTO {table} VALUES (%s, %s, %s)",
               [(i, _encode("float4[]", v), "keep%" if i % 2 else "drop") for i, v in enumerate(data)])
    query = f"SELECT doc_id, vec, label FROM {table} WHERE label LIKE 'keep%';"

    result = run_builder(_request(buckets, s3_endpoint, query=query, idColumn="doc_id", vectorColumn="vec"), tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    assert manifest.source.count == 100
    assert manifest.source.uri.rsplit("/", 1)[1].startswith("query-")
    stored, stored_ids = _index_rows(s3, buckets, result.prefix, tmp_path)
    np.testing.assert_array_equal(stored_ids, np.arange(1, 200, 2))
    np.testing.assert_array_equal(stored, data[1::2])


def test_a_time_window_keeps_only_recent_rows_and_records_the_newest_timestamp_as_watermark(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str, table: str,
) -> None:
    data = clustered(240, DIM, seed=23)
    _create(dsn, table, "real[]", [], with_time=True)
    pg_execute(dsn, f"INSERT INTO {table} (id, embedding, created_at) VALUES (%s, %s, now() - %s * interval '1 hour')",
               [(i, _encode("float4[]", v), 72 if i < 90 else 1) for i, v in enumerate(data)])
    pg_execute(dsn, f"UPDATE {table} SET created_at = '2031-01-02T03:04:05+00' WHERE id = 100")

    result = run_builder(_request(buckets, s3_endpoint, table=table, window={"column": "created_at", "last": "48h"}),
                         tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    assert manifest.source.count == 150
    assert manifest.source.watermark is not None and manifest.source.watermark.startswith("2031-01-02T03:04:05")
    _, stored_ids = _index_rows(s3, buckets, result.prefix, tmp_path)
    np.testing.assert_array_equal(stored_ids, np.arange(90, 240))


def test_a_null_vector_fails_as_invalid_vectors_naming_its_id(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str, table: str,
) -> None:
    _create_with_null_vector(dsn, table, null_id=77, seed=24)

    result = run_builder(_request(buckets, s3_endpoint, table=table), tmp_path)

    _assert_failed(result, s3, buckets, "InvalidVectors", "NULL for id 77", table)


def test_a_bytea_of_the_wrong_length_fails_as_invalid_vectors_naming_its_id(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str, table: str,
) -> None:
    rows = [(i, _encode("bytea", v)) for i, v in enumerate(clustered(150, DIM, seed=25))]
    rows[40] = (40, rows[40][1][:-4])
    _create(dsn, table, "bytea", rows)

    result = run_builder(_request(buckets, s3_endpoint, table=table, vectorFormat="bytea"), tmp_path)

    _assert_failed(result, s3, buckets, "InvalidVectors", "id 40 has 7 values (28 bytes), expected 8")


def test_duplicate_ids_fail_as_invalid_ids(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str, table: str,
) -> None:
    rows = [(i % 140, _encode("float4[]", v)) for i, v in enumerate(clustered(150, DIM, seed=26))]
    _create(dsn, table, "real[]", rows)

    result = run_builder(_request(buckets, s3_endpoint, table=table), tmp_path)

    _assert_failed(result, s3, buckets, "InvalidIds", "repeat an earlier id", "id 0")


def test_a_missing_table_fails_as_source_invalid_with_the_servers_message(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str,
) -> None:
    result = run_builder(_request(buckets, s3_endpoint, table="no_such_table"), tmp_path)

    _assert_failed(result, s3, buckets, "SourceInvalid", 'relation "no_such_table" does not exist')


def test_a_missing_column_fails_as_source_invalid_with_the_servers_message(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str, table: str,
) -> None:
    _create(dsn, table, "real[]", [(1, [1.0] * DIM)])

    result = run_builder(_request(buckets, s3_endpoint, table=table, vectorColumn="vec"), tmp_path)

    _assert_failed(result, s3, buckets, "SourceInvalid", 'column "vec" does not exist')


def test_a_closed_port_fails_as_source_unreachable(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setenv("FAISS_POSTGRES_DSN", f"postgresql://faiss:secret-pw@127.0.0.1:{port}/faiss")

    result = run_builder(_request(buckets, s3_endpoint, table="t"), tmp_path)

    _assert_failed(result, s3, buckets, "SourceUnreachable", f"127.0.0.1:{port}", "Connection refused")
    assert "secret-pw" not in result.termination


def test_a_wrong_password_fails_as_source_auth_failed_without_echoing_it(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, postgres_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = postgres_env["PGPASSWORD"]
    monkeypatch.setenv("FAISS_POSTGRES_DSN", postgres_env["FAISS_POSTGRES_DSN"].replace(good, "wrong-pw-123"))

    result = run_builder(_request(buckets, s3_endpoint, table="t"), tmp_path)

    _assert_failed(result, s3, buckets, "SourceAuthFailed", "password authentication failed")
    assert "wrong-pw-123" not in result.termination


def test_a_missing_dsn_fails_as_credentials_missing_naming_the_secret(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FAISS_POSTGRES_DSN", raising=False)

    result = run_builder(_request(buckets, s3_endpoint, table="t"), tmp_path)

    _assert_failed(result, s3, buckets, "CredentialsMissing", "FAISS_POSTGRES_DSN", "'pg'")


def test_the_builder_reads_one_snapshot_in_a_read_only_transaction(dsn: str, table: str) -> None:
    """A source query cannot write: the transaction is read-only even if the query tries."""
    from index_builder.errors import SourceInvalid
    from index_builder.source_postgres import read
    from indexops_api.spec import PostgresSource

    _create(dsn, table, "real[]", [(1, [1.0] * DIM)])
    pg_execute(dsn, f"CREATE FUNCTION {table}_zap() RETURNS boolean LANGUAGE sql AS 'DELETE FROM {table}; SELECT true'")
    pg = PostgresSource.model_validate({
        "dsnSecret": {"name": "pg"}, "query": f"SELECT id, embedding FROM {table} WHERE {table}_zap()",
    })

    with pytest.raises(SourceInvalid, match="read-only transaction"):
        read(pg, {"FAISS_POSTGRES_DSN": dsn}, dimension=DIM)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)


def test_the_memory_preflight_fails_from_the_row_count_before_any_vector_is_read(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, dsn: str, table: str,
) -> None:
    # Row 5 is NULL: reading the vectors would fail as InvalidVectors, so an
    # InsufficientMemory failure proves the preflight ran on count(*) alone.
    _create_with_null_vector(dsn, table, null_id=5, seed=25)
    request = _request(buckets, s3_endpoint, table=table)
    request["spec"]["build"] = {"maxMemory": "1Mi"}

    result = run_builder(request, tmp_path)

    _assert_failed(result, s3, buckets, "InsufficientMemory", "limit")
