"""Source probes against a real PostgreSQL and a real S3 API.

For unchanged data a probe must equal the fingerprint the builder records in the manifest
(that is what drift is measured against), so each test builds with the builder first and
then probes; a change to the source must then show up in ``describe_drift``.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from s3_harness import Buckets, build_request, clustered, free_port, pg_execute, put_npy, put_parquet, run_builder, vector_table

from index_builder import source_postgres
from indexops_api.fingerprint import describe_drift
from indexops_api.manifest import Manifest, SourceFingerprint
from indexops_api.spec import PostgresSource, Source
from indexops_store.probe import COUNT_NOT_PROBED, NotProbeable, ProbeError, probe_postgres, probe_s3, probe_source

pytestmark = pytest.mark.integration

DIM = 8
SMALL = {"dimension": DIM, "validation": {"queries": 10, "k": 5}}


@pytest.fixture
def table(postgres_dsn: str) -> str:
    return f"probe_{uuid.uuid4().hex[:10]}"


def _pg(**fields: Any) -> PostgresSource:
    return PostgresSource.model_validate({"dsnSecret": {"name": "pg"}, **fields})


def _create(dsn: str, table: str, rows: int, *, hours_ago: int | None = None, first_id: int = 0) -> None:
    pg_execute(dsn, f"CREATE TABLE IF NOT EXISTS {table} (id bigint, embedding real[], created_at timestamptz)")
    data = clustered(rows, DIM, seed=first_id + rows)
    pg_execute(dsn, f"INSERT INTO {table} VALUES (%s, %s, now() - %s * interval '1 hour')",
               [(first_id + i, [float(x) for x in v], hours_ago or 0) for i, v in enumerate(data)])


def _built(s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, source: dict[str, Any]) -> SourceFingerprint:
    result = run_builder(build_request(buckets=buckets, endpoint=s3_endpoint, **SMALL, source=source), tmp_path)
    assert (result.exit_code, result.termination) == (0, "")
    body = s3.get_object(Bucket=buckets.artifacts, Key=f"{result.prefix}/manifest.json")["Body"].read()
    return Manifest.model_validate(json.loads(body)).source


# -- PostgreSQL ----------------------------------------------------------------------------------


def test_a_postgres_probe_equals_the_builders_fingerprint_until_rows_are_added(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, postgres_dsn: str, table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAISS_POSTGRES_DSN", postgres_dsn)
    _create(postgres_dsn, table, 120, hours_ago=72)  # outside the window
    _create(postgres_dsn, table, 150, hours_ago=1, first_id=1000)
    spec = {"dsnSecret": {"name": "pg"}, "table": table, "window": {"column": "created_at", "last": "48h"}}
    recorded = _built(s3, s3_endpoint, buckets, tmp_path, {"postgres": spec})

    probed = probe_postgres(postgres_dsn, _pg(**spec))

    assert (probed.uri, probed.count, probed.watermark) == (recorded.uri, recorded.count, recorded.watermark)
    assert recorded.count == 150 and recorded.watermark is not None
    assert describe_drift(recorded, probed) is None

    _create(postgres_dsn, table, 25, first_id=5000)  # newer rows than any built
    drift = describe_drift(recorded, probe_postgres(postgres_dsn, _pg(**spec)))

    assert drift is not None and drift.startswith("row count 150 → 175; watermark ")


def test_rows_ageing_out_of_the_window_after_a_build_are_not_drift_when_probed_at_its_anchor(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, postgres_dsn: str, table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import datetime

    monkeypatch.setenv("FAISS_POSTGRES_DSN", postgres_dsn)
    pg_execute(postgres_dsn, f"CREATE TABLE {table} (id bigint, embedding real[], created_at timestamptz)")
    data = clustered(60, DIM, seed=3)
    # 20 rows sit 2 s inside the 1 h window: they age out while the test runs
    pg_execute(postgres_dsn, f"INSERT INTO {table} VALUES (%s, %s, now() - interval '1 hour' + %s * interval '1 second')",
               [(i, [float(x) for x in v], 2 if i < 20 else 600) for i, v in enumerate(data)])
    spec = {"dsnSecret": {"name": "pg"}, "table": table, "window": {"column": "created_at", "last": "1h"}}
    recorded = _built(s3, s3_endpoint, buckets, tmp_path, {"postgres": spec})
    assert recorded.count == 60 and recorded.window_anchor is not None
    time.sleep(3)

    anchored = probe_postgres(postgres_dsn, _pg(**spec), datetime.fromisoformat(recorded.window_anchor))
    sliding = probe_postgres(postgres_dsn, _pg(**spec))

    assert describe_drift(recorded, anchored) is None
    assert sliding.count == 40 and describe_drift(recorded, sliding) is not None


def test_a_postgres_query_source_probes_like_the_builder_reads_it(postgres_dsn: str, table: str) -> None:
    _create(postgres_dsn, table, 90)
    pg = _pg(query=f"SELECT id, embedding FROM {table} WHERE id % 3 = 0;", idColumn="id")
    read = source_postgres.read(pg, {"FAISS_POSTGRES_DSN": postgres_dsn}, dimension=DIM)

    probed = probe_postgres(postgres_dsn, pg)

    assert (probed.uri, probed.count, probed.watermark) == (read.uri, len(read.ids), read.watermark) == (read.uri, 30, None)
    pg_execute(postgres_dsn, f"DELETE FROM {table} WHERE id = 3")
    assert describe_drift(probed, probe_postgres(postgres_dsn, pg)) == "row count 30 → 29"


def test_a_probe_anchored_at_an_earlier_time_counts_the_rows_of_that_times_window(postgres_dsn: str, table: str) -> None:
    _create(postgres_dsn, table, 40, hours_ago=72)
    _create(postgres_dsn, table, 60, hours_ago=1, first_id=100)
    pg = _pg(table=table, window={"column": "created_at", "last": "48h"})
    with psycopg.connect(postgres_dsn) as conn:
        db_now = conn.execute("SELECT now()").fetchone()[0]

    assert probe_postgres(postgres_dsn, pg).count == 60
    assert probe_postgres(postgres_dsn, pg, db_now).count == 60
    assert probe_postgres(postgres_dsn, pg, db_now - timedelta(hours=30)).count == 100
    with pytest.raises(ValueError, match="timezone-aware"):
        probe_postgres(postgres_dsn, pg, db_now.replace(tzinfo=None))


def test_a_probe_of_a_missing_table_fails_as_source_invalid_with_the_servers_message(postgres_dsn: str) -> None:
    with pytest.raises(ProbeError, match='relation "no_such_table" does not exist') as raised:
        probe_postgres(postgres_dsn, _pg(table="no_such_table"))
    assert raised.value.reason == "SourceInvalid"


def test_a_probe_of_a_missing_database_fails_as_source_not_found(postgres_dsn: str) -> None:
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/no_such_db"

    with pytest.raises(ProbeError, match="no_such_db") as raised:
        probe_postgres(dsn, _pg(table="t"))
    assert raised.value.reason == "SourceNotFound"


def test_a_probe_of_a_closed_port_fails_quickly_as_source_unreachable_without_the_password() -> None:
    port = free_port()

    started = time.monotonic()
    with pytest.raises(ProbeError, match=f"cannot connect to postgres 127.0.0.1:{port}/faiss") as raised:
        probe_postgres(f"postgresql://faiss:secret-pw@127.0.0.1:{port}/faiss", _pg(table="t"), connect_timeout=2)

    assert raised.value.reason == "SourceUnreachable"
    assert "secret-pw" not in str(raised.value)
    assert time.monotonic() - started < 10


def test_a_probe_with_a_wrong_password_fails_as_source_auth_failed_naming_the_secret(
    postgres_env: dict[str, str],
) -> None:
    dsn = postgres_env["FAISS_POSTGRES_DSN"].replace(postgres_env["PGPASSWORD"], "wrong-pw-123")

    with pytest.raises(ProbeError, match="rejected the credentials from Secret 'pg' key 'dsn'") as raised:
        probe_postgres(dsn, _pg(table="t"))

    assert raised.value.reason == "SourceAuthFailed"
    assert "password authentication failed" in str(raised.value) and "wrong-pw-123" not in str(raised.value)


@pytest.mark.parametrize(("dsn", "reason", "fragment"), [
    ("", "CredentialsMissing", "Secret 'pg' key 'dsn' is empty"),
    ("this is not a dsn", "SourceInvalid", "not a libpq key=value string"),
])
def test_an_empty_or_malformed_connection_string_is_named_as_such(dsn: str, reason: str, fragment: str) -> None:
    with pytest.raises(ProbeError, match=fragment) as raised:
        probe_postgres(dsn, _pg(table="t"))
    assert raised.value.reason == reason


def test_a_probe_that_counts_too_long_is_cancelled_by_its_statement_timeout(postgres_dsn: str, table: str) -> None:
    _create(postgres_dsn, table, 3)
    pg = _pg(query=f"SELECT id, embedding FROM {table}, pg_sleep(5)")

    started = time.monotonic()
    with pytest.raises(ProbeError, match=r"took longer than 0.3s") as raised:
        probe_postgres(postgres_dsn, pg, statement_timeout=0.3)

    assert raised.value.reason == "SourceUnreachable"
    assert time.monotonic() - started < 4


def test_a_probe_runs_read_only_even_when_the_query_tries_to_write(postgres_dsn: str, table: str) -> None:
    _create(postgres_dsn, table, 3)
    pg_execute(postgres_dsn, f"CREATE FUNCTION {table}_zap() RETURNS boolean LANGUAGE sql AS 'DELETE FROM {table}; SELECT true'")

    with pytest.raises(ProbeError, match="read-only transaction"):
        probe_postgres(postgres_dsn, _pg(query=f"SELECT id, embedding FROM {table} WHERE {table}_zap()"))
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (3,)


# -- S3 ------------------------------------------------------------------------------------------


def test_an_s3_prefix_probe_equals_the_builders_fingerprint_until_an_object_is_added(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
) -> None:
    for part in range(3):
        put_npy(s3, buckets.source, f"emb/6h/part-{part}.npy", clustered(60, DIM, seed=part))
    s3.put_object(Bucket=buckets.source, Key="emb/6h/_SUCCESS", Body=b"")
    source = {"s3": {"bucket": buckets.source, "prefix": "emb/{horizon}/"}}
    recorded = _built(s3, s3_endpoint, buckets, tmp_path, source)

    probed = probe_s3(s3, Source.model_validate(source).s3, "6h")

    assert recorded.count == 180 and probed.count == COUNT_NOT_PROBED
    assert probed.model_dump(exclude={"count"}) == recorded.model_dump(exclude={"count"})
    assert probed.etag is not None and probed.etag.startswith("sha256:")
    assert describe_drift(recorded, probed) is None

    s3.put_object(Bucket=buckets.source, Key="emb/6h/notes.txt", Body=b"other extensions do not count")
    assert describe_drift(recorded, probe_s3(s3, Source.model_validate(source).s3, "6h")) is None

    put_npy(s3, buckets.source, "emb/6h/part-3.npy", clustered(60, DIM, seed=3))
    drift = describe_drift(recorded, probe_s3(s3, Source.model_validate(source).s3, "6h"))

    assert drift is not None and drift.startswith(f"etag {recorded.etag[:19]}… → sha256:")


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_an_s3_key_probe_equals_the_builders_fingerprint_until_the_object_is_replaced(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, fmt: str,
) -> None:
    def upload(seed: int) -> None:
        data = clustered(100, DIM, seed=seed)
        if fmt == "npy":
            put_npy(s3, buckets.source, "6h/vectors.npy", data)
        else:
            put_parquet(s3, buckets.source, "6h/vectors.parquet", vector_table(data))

    upload(seed=1)
    source = {"s3": {"bucket": buckets.source, "key": f"{{horizon}}/vectors.{fmt}", "format": fmt}}
    recorded = _built(s3, s3_endpoint, buckets, tmp_path, source)

    probed = probe_s3(s3, Source.model_validate(source).s3, "6h")

    assert probed.model_dump(exclude={"count"}) == recorded.model_dump(exclude={"count"})
    assert describe_drift(recorded, probed) is None

    time.sleep(1.1)  # HEAD's Last-Modified has one-second resolution
    upload(seed=2)
    drift = describe_drift(recorded, probe_s3(s3, Source.model_validate(source).s3, "6h"))

    assert drift is not None and drift.startswith("etag ") and "; newest object " in drift


def _s3_source(**fields: Any) -> Any:
    return Source.model_validate({"s3": fields}).s3


def test_an_s3_probe_names_what_is_missing(s3: Any, buckets: Buckets) -> None:
    s3.put_object(Bucket=buckets.source, Key="emb/6h/readme.txt", Body=b"")
    cases = [
        (_s3_source(bucket=buckets.source, prefix="emb/{horizon}/"),
         f"no .npy objects under prefix s3://{buckets.source}/emb/6h/ (1 objects with other extensions)"),
        (_s3_source(bucket=buckets.source, key="{horizon}/gone.npy"), f"source object s3://{buckets.source}/6h/gone.npy does not exist"),
        (_s3_source(bucket="no-such-bucket-xyz", key="v.npy"), "source bucket 'no-such-bucket-xyz' does not exist"),
        (_s3_source(bucket="no-such-bucket-xyz", prefix="p/"), "bucket 'no-such-bucket-xyz' does not exist"),
    ]
    for source, message in cases:
        with pytest.raises(ProbeError) as raised:
            probe_s3(s3, source, "6h")
        assert (raised.value.reason, message in str(raised.value)) == ("SourceNotFound", True), str(raised.value)


def test_an_unreachable_s3_endpoint_is_a_storage_error_reason(fake_aws_env: None) -> None:
    from indexops_store import make_client

    with pytest.raises(ProbeError, match="storage unreachable") as raised:
        probe_s3(make_client(f"http://127.0.0.1:{free_port()}"), _s3_source(bucket="emb", prefix="p/"), "6h")
    assert raised.value.reason == "StorageError"


# -- any source ----------------------------------------------------------------------------------


def test_a_file_source_is_explicitly_not_probeable(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", clustered(10, DIM, seed=0))
    source = Source.model_validate({"file": {"path": str(tmp_path / "v.npy")}})

    result = probe_source(source, "6h")

    assert isinstance(result, NotProbeable)
    assert result.reason == "FileSourceNotProbeable" and "builder's filesystem" in result.message


def test_probe_source_dispatches_on_the_source_kind(s3: Any, buckets: Buckets, postgres_dsn: str, table: str) -> None:
    _create(postgres_dsn, table, 5)
    put_npy(s3, buckets.source, "6h/v.npy", clustered(10, DIM, seed=0))

    pg = probe_source(Source.model_validate({"postgres": {"dsnSecret": {"name": "pg"}, "table": table}}), "6h",
                      dsn=postgres_dsn)
    obj = probe_source(Source.model_validate({"s3": {"bucket": buckets.source, "key": "{horizon}/v.npy"}}), "6h",
                       s3_client=s3)

    assert isinstance(pg, SourceFingerprint) and pg.count == 5
    assert isinstance(obj, SourceFingerprint) and obj.uri == f"s3://{buckets.source}/6h/v.npy" and obj.etag
