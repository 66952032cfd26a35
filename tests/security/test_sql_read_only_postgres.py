"""A tenant's query cannot write through the builder or the operator's drift probe (real PostgreSQL).

The attack closes the subquery the query is wrapped in and appends ``COMMIT; DELETE FROM
victim``: with raw multi-statement SQL the DELETE ran after the read-only transaction ended.
Three layers stop it, and each is proven on its own here: the spec refuses the text, the
builder and probe refuse it again before connecting, and with both lexer checks switched off
the server still refuses (extended protocol: one command per message; the session's
``default_transaction_read_only``). In every case the victim table keeps every row.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.integration.s3_harness import Buckets, build_request, clustered, pg_execute, run_builder

import indexops_api.source_spec
import indexops_store.postgres
import index_builder.source_postgres
from indexops_api.spec import PostgresSource, SecretKeyRef
from indexops_store.probe import ProbeError, probe_postgres

pytestmark = [pytest.mark.integration, pytest.mark.security]

DIM = 8
VICTIM_ROWS = 25


def _wrapper_escape(items: str, victim: str) -> str:
    """Closes ``SELECT count(*) … FROM (SELECT src.id, src.embedding FROM (<query>) AS src) AS selected`` and reopens it."""
    return (f"select id, embedding from {items}) AS src) AS selected; COMMIT; DELETE FROM {victim}; "
            f"SELECT count(*), NULL FROM (SELECT 1 AS id, 2 AS embedding FROM (select 1")


def _attacks(items: str, victim: str) -> dict[str, str]:
    return {
        "wrapper-escape": _wrapper_escape(items, victim),
        "second-statement": f"select id, embedding from {items}; COMMIT; DELETE FROM {victim}",
        "data-modifying-cte": f"with gone as (delete from {victim} returning id) select id, embedding from {items}",
    }


@pytest.fixture
def tables(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("FAISS_POSTGRES_DSN", postgres_dsn)
    suffix = uuid.uuid4().hex[:10]
    items, victim = f"items_{suffix}", f"victim_{suffix}"
    pg_execute(postgres_dsn, f"CREATE TABLE {items} (id bigint, embedding real[])")
    pg_execute(postgres_dsn, f"INSERT INTO {items} VALUES (%s, %s)",
               [(i, [float(x) for x in v]) for i, v in enumerate(clustered(150, DIM, seed=7))])
    pg_execute(postgres_dsn, f"CREATE TABLE {victim} (id bigint)")
    pg_execute(postgres_dsn, f"INSERT INTO {victim} SELECT generate_series(1, {VICTIM_ROWS})")
    return items, victim


def _victim_rows(dsn: str, victim: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {victim}").fetchone()
    assert row is not None
    return int(row[0])


def _unchecked(query: str) -> PostgresSource:
    """A source whose query skipped the spec's validation (as if the CRD were edited around the operator)."""
    return PostgresSource.model_construct(dsn_secret=SecretKeyRef(name="pg", key="dsn"), table=None, query=query,
                                          id_column="id", vector_column="embedding", vector_format="float4[]",
                                          window=None, batch_size=10000)


def _lexer_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the text checks off everywhere: only the server's own refusal remains."""
    def trusting(text: str) -> str:
        return text.strip().rstrip(";")

    for module in (indexops_api.source_spec, indexops_store.postgres, index_builder.source_postgres,
                   __import__("indexops_store.probe", fromlist=["_"])):
        monkeypatch.setattr(module, "single_read_statement", trusting)


def _build(buckets: Buckets, endpoint: str, query: str, tmp_path: Path) -> Any:
    source = {"postgres": {"dsnSecret": {"name": "pg"}, "query": query}}
    request = build_request(buckets=buckets, endpoint=endpoint, dimension=DIM, validation={"queries": 10, "k": 5},
                            source=source)
    return run_builder(request, tmp_path)


@pytest.mark.parametrize("attack", ["wrapper-escape", "second-statement", "data-modifying-cte"])
def test_the_builder_refuses_an_escaping_query_and_the_victim_keeps_every_row(
    attack: str, tables: tuple[str, str], postgres_dsn: str, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    items, victim = tables
    result = _build(buckets, s3_endpoint, _attacks(items, victim)[attack], tmp_path)
    assert _victim_rows(postgres_dsn, victim) == VICTIM_ROWS
    assert result.exit_code == 1
    assert "query" in result.termination and ("statement" in result.termination or "may only read" in result.termination)


@pytest.mark.parametrize("attack", ["wrapper-escape", "second-statement", "data-modifying-cte"])
def test_the_drift_probe_refuses_an_escaping_query_and_the_victim_keeps_every_row(
    attack: str, tables: tuple[str, str], postgres_dsn: str
) -> None:
    items, victim = tables
    with pytest.raises(ProbeError) as caught:
        try:
            probe_postgres(postgres_dsn, _unchecked(_attacks(items, victim)[attack]))
        finally:
            assert _victim_rows(postgres_dsn, victim) == VICTIM_ROWS
    assert _victim_rows(postgres_dsn, victim) == VICTIM_ROWS
    assert caught.value.reason == "SourceInvalid"


@pytest.mark.parametrize("attack", ["wrapper-escape", "second-statement", "data-modifying-cte"])
def test_with_the_text_checks_off_the_server_still_refuses_to_write_from_the_builder(
    attack: str, tables: tuple[str, str], postgres_dsn: str, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _lexer_off(monkeypatch)
    items, victim = tables
    result = _build(buckets, s3_endpoint, _attacks(items, victim)[attack], tmp_path)
    assert result.exit_code == 1, result.termination
    assert _victim_rows(postgres_dsn, victim) == VICTIM_ROWS


@pytest.mark.parametrize("attack", ["wrapper-escape", "second-statement", "data-modifying-cte"])
def test_with_the_text_checks_off_the_server_still_refuses_to_write_from_the_probe(
    attack: str, tables: tuple[str, str], postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lexer_off(monkeypatch)
    items, victim = tables
    with pytest.raises(ProbeError):
        probe_postgres(postgres_dsn, _unchecked(_attacks(items, victim)[attack]))
    assert _victim_rows(postgres_dsn, victim) == VICTIM_ROWS


def test_a_session_opened_by_the_builder_cannot_commit_a_write(tables: tuple[str, str], postgres_dsn: str) -> None:
    """The server, not the client, holds the session read-only: even an explicit read-write attempt fails."""
    _, victim = tables
    with psycopg.connect(postgres_dsn, options=indexops_store.postgres.session_options(5000), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(f"DELETE FROM {victim}")
    assert _victim_rows(postgres_dsn, victim) == VICTIM_ROWS


def test_a_legitimate_query_still_builds(tables: tuple[str, str], s3_endpoint: str, buckets: Buckets, tmp_path: Path) -> None:
    items, _ = tables
    result = _build(buckets, s3_endpoint, f"select id, embedding from {items} -- trailing comment", tmp_path)
    assert (result.exit_code, result.termination) == (0, "")


def test_a_dsn_asking_for_a_writable_session_is_overridden(tables: tuple[str, str], postgres_dsn: str) -> None:
    """The tenant writes the DSN too: its ``options`` cannot switch the session back to read-write."""
    _, victim = tables
    writable = postgres_dsn + "?options=-c%20default_transaction_read_only%3Doff"
    with psycopg.connect(writable, options=indexops_store.postgres.session_options(), autocommit=True) as conn:
        row = conn.execute("SHOW default_transaction_read_only").fetchone()
        assert row is not None and row[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(f"DELETE FROM {victim}")
    assert _victim_rows(postgres_dsn, victim) == VICTIM_ROWS
