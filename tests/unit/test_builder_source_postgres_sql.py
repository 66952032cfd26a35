"""The SQL the PostgreSQL source sends is composed from quoted identifiers, never formatted text."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from index_builder.source_postgres import data_query, parse_duration, source_uri, stats_query
from indexops_api.spec import PostgresSource


def _pg(**fields: Any) -> PostgresSource:
    return PostgresSource.model_validate({"dsnSecret": {"name": "pg"}, **fields})


def _sql(composed: Any) -> str:
    return composed.as_string(None)


def test_a_table_source_selects_the_quoted_columns_ordered_by_id() -> None:
    assert _sql(data_query(_pg(table="public.items", idColumn="item_id", vectorColumn="emb"))) == (
        'SELECT "item_id", "emb" FROM "public"."items" ORDER BY "item_id"'
    )


def test_a_time_window_becomes_an_interval_literal_on_the_quoted_time_column() -> None:
    query = _sql(data_query(_pg(table="items", window={"column": "createdAt", "last": "48h"})))
    assert query == (
        'SELECT "id", "embedding", "createdAt" FROM "items" '
        "WHERE \"createdAt\" >= now() - '2 days 0:00:00'::interval ORDER BY \"id\""
    )


def test_a_query_is_wrapped_as_a_subquery_without_its_trailing_semicolon() -> None:
    query = _sql(data_query(_pg(query="SELECT a AS id, b AS embedding FROM t WHERE x LIKE 'y%' ;  ")))
    assert query == (
        'SELECT "src"."id", "src"."embedding" FROM (SELECT a AS id, b AS embedding FROM t WHERE x LIKE \'y%\') AS src '
        'ORDER BY "src"."id"'
    )


def test_the_stats_query_counts_the_same_rows_and_takes_the_newest_timestamp() -> None:
    plain = _sql(stats_query(_pg(table="items")))
    assert plain == 'SELECT count(*), NULL FROM (SELECT "id", "embedding" FROM "items") AS selected'
    windowed = _sql(stats_query(_pg(table="items", window={"column": "ts", "last": "30m"})))
    assert windowed.startswith('SELECT count(*), max(selected."ts") FROM (SELECT "id", "embedding", "ts" FROM "items" WHERE')


def test_names_that_look_like_injection_cannot_be_configured() -> None:
    with pytest.raises(ValueError):
        _pg(table='items"; DROP TABLE x; --')
    with pytest.raises(ValueError):
        _pg(table="items", idColumn="id, pg_sleep(10)")


@pytest.mark.parametrize(("text", "expected"), [("90s", 90), ("30m", 1800), ("48h", 172800), ("7d", 604800)])
def test_window_durations_are_parsed(text: str, expected: int) -> None:
    assert parse_duration(text) == timedelta(seconds=expected)


def test_the_source_uri_names_table_or_query_hash_and_never_credentials() -> None:
    assert source_uri(_pg(table="public.items"), "db.local", 5433, "emb") == "postgres://db.local:5433/emb/public.items"
    a = source_uri(_pg(query="SELECT 1 AS id, '{1}'::real[] AS embedding"), "h", 5432, "d")
    b = source_uri(_pg(query="SELECT 2 AS id, '{1}'::real[] AS embedding"), "h", 5432, "d")
    assert a.startswith("postgres://h:5432/d/query-") and a != b
