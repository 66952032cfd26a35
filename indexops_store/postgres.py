"""The PostgreSQL statements and error classification shared by the builder and the probe.

Drift detection compares the count and watermark the builder recorded with what a probe
sees now, so both must run the very same statement: it is composed here once and imported
by ``index_builder.source_postgres`` (which streams the rows) and ``indexops_store.probe``
(which only counts). SQL is composed with ``psycopg.sql`` (identifiers quoted, the window a
typed literal), never with string formatting; a user ``query`` is wrapped as a subquery
from which only the configured columns are selected.

libpq errors are sorted into a few ``FailureKind``s, each naming a different thing to fix
(the network path, the credentials, the database name, the statement); each caller words
its own message and picks its own exception type.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from indexops_api.spec import PostgresSource

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AUTH_PATTERNS = ("password authentication failed", "no pg_hba.conf entry", "role", "permission denied",
                  "no password supplied", "authentication failed", "certificate")


class FailureKind(str, Enum):
    UNREACHABLE = "unreachable"  # refused, DNS, timeout, connection lost
    AUTH = "auth"  # credentials rejected, or the role may not read the source
    NOT_FOUND = "not_found"  # the database does not exist
    INVALID = "invalid"  # the statement fails: missing table/column, bad query, bad data
    CANCELLED = "cancelled"  # statement_timeout (or an administrator) cancelled the statement


@dataclass(frozen=True)
class SourceStats:
    """``count(*)`` and, with a window, the newest timestamp as ISO text (the watermark)."""

    count: int
    watermark: str | None


def parse_duration(text: str) -> timedelta:
    """``48h`` / ``30m`` / ``7d`` / ``90s`` as a timedelta; ``ValueError`` otherwise."""
    match = re.fullmatch(r"([1-9][0-9]*)([smhd])", text)
    if match is None:
        raise ValueError(f"window.last {text!r} is not a duration like 48h")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _ident(dotted: str) -> sql.Identifier:
    return sql.Identifier(*dotted.split("."))


def column(dotted: str, relation: str | None) -> sql.Identifier:
    """A column, qualified by the wrapping subquery's alias when reading from a query."""
    return sql.Identifier(relation, dotted.split(".")[-1]) if relation else _ident(dotted)


def _window_start(pg: PostgresSource, now: datetime | None) -> sql.Composable:
    """``now() - <window>`` on the server's clock, or a fixed ``timestamptz`` when ``now`` is given."""
    assert pg.window is not None
    last = parse_duration(pg.window.last)
    if now is None:
        return sql.SQL("now() - {}").format(sql.Literal(last))
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return sql.Literal(now - last)


def base_select(pg: PostgresSource, now: datetime | None = None) -> sql.Composed:
    """``SELECT id, vector[, time] FROM <table | (query) AS src> [WHERE time >= <window start>]``."""
    relation = None if pg.table else "src"
    columns = [column(pg.id_column, relation), column(pg.vector_column, relation)]
    if pg.window is not None:
        columns.append(column(pg.window.column, relation))
    if pg.table:
        source: sql.Composable = _ident(pg.table)
    else:
        assert pg.query is not None
        user = pg.query.strip().rstrip(";").strip()
        source = sql.Composed([sql.SQL("("), sql.SQL(user), sql.SQL(") AS src")])
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(columns), source)
    if pg.window is not None:
        query = sql.SQL("{} WHERE {} >= {}").format(query, column(pg.window.column, relation), _window_start(pg, now))
    return query


def stats_query(pg: PostgresSource, now: datetime | None = None) -> sql.Composed:
    """Row count and, with a window, the newest timestamp (the watermark)."""
    newest = sql.SQL("max(selected.{})").format(sql.Identifier(pg.window.column.split(".")[-1])) if pg.window else sql.SQL("NULL")
    return sql.SQL("SELECT count(*), {} FROM ({}) AS selected").format(newest, base_select(pg, now))


def format_watermark(newest: Any) -> str | None:
    return newest.isoformat() if hasattr(newest, "isoformat") else (str(newest) if newest is not None else None)


def read_stats(conn: psycopg.Connection, pg: PostgresSource, now: datetime | None = None) -> SourceStats:
    """Run ``stats_query`` on ``conn`` (inside the caller's transaction)."""
    with conn.cursor() as cur:
        cur.execute(stats_query(pg, now))
        row = cur.fetchone()
    assert row is not None
    return SourceStats(int(row[0]), format_watermark(row[1]))


def source_uri(pg: PostgresSource, host: str, port: str | int, dbname: str) -> str:
    """``postgres://host:port/db/<table | query-<sha256[:12]>>``: never the user or password."""
    what = pg.table or "query-" + hashlib.sha256((pg.query or "").encode()).hexdigest()[:12]
    return f"postgres://{host}:{port}/{dbname}/{what}"


def describe_target(dsn: str) -> str:
    """``host:port/db`` for messages (the password never appears); ``ValueError`` for a bad DSN."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"not a valid libpq connection string: {exc}") from None
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def connect_failure_kind(exc: psycopg.Error) -> FailureKind:
    lowered = one_line(exc).lower()
    if "does not exist" in lowered and "database" in lowered:
        return FailureKind.NOT_FOUND
    if any(p in lowered for p in _AUTH_PATTERNS):
        return FailureKind.AUTH
    return FailureKind.UNREACHABLE


def query_failure_kind(exc: psycopg.Error) -> FailureKind:
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return FailureKind.AUTH
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return FailureKind.CANCELLED
    if isinstance(exc, (psycopg.errors.SyntaxErrorOrAccessRuleViolation, psycopg.errors.DataException)):
        return FailureKind.INVALID
    if isinstance(exc, psycopg.OperationalError):
        return FailureKind.UNREACHABLE
    return FailureKind.INVALID
