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
from indexops_api.sqltext import single_read_statement

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


MAX_WINDOW = timedelta(days=36500)  # a century back is "every row"; further would overflow now - window


def parse_duration(text: str) -> timedelta:
    """``48h`` / ``30m`` / ``7d`` / ``90s`` as a timedelta, at most ``MAX_WINDOW``; ``ValueError`` otherwise."""
    match = re.fullmatch(r"([1-9][0-9]{0,17})([smhd])", text)
    if match is None:
        raise ValueError(f"window.last {text[:32]!r} is not a duration like 48h")
    return min(timedelta(seconds=min(int(match.group(1)) * _UNITS[match.group(2)], 10**12)), MAX_WINDOW)


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
        # UnsafeQuery (a ValueError) unless one read-only statement; trailing ';' and comments
        # are cut, so a final "-- comment" cannot swallow the closing parenthesis.
        user = single_read_statement(pg.query)
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
        # binary=True sends the statement on the extended protocol (an unnamed statement, so
        # also through transaction-pooling PgBouncer), which refuses more than one command.
        cur.execute(stats_query(pg, now), binary=True)
        row = cur.fetchone()
    assert row is not None
    return SourceStats(int(row[0]), format_watermark(row[1]))


def source_uri(pg: PostgresSource, host: str, port: str | int, dbname: str) -> str:
    """``postgres://host:port/db/<table | query-<sha256[:12]>>``: never the user or password."""
    what = pg.table or "query-" + hashlib.sha256((pg.query or "").encode()).hexdigest()[:12]
    return f"postgres://{host}:{port}/{dbname}/{what}"


_KNOWN_KEYWORDS = frozenset(
    c.keyword.decode() for c in psycopg.pq.Conninfo.get_defaults() if c.keyword  # what this libpq accepts
)
# Connection coordinates, shown in messages on purpose; every other value is withheld.
_SHOWN_KEYWORDS = frozenset({"host", "hostaddr", "port", "dbname", "user", "sslmode", "connect_timeout",
                             "application_name", "target_session_attrs"})
_URI_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]*@")


def dsn_problem(dsn: str) -> str | None:
    """Why libpq cannot parse ``dsn``, by position and kind only; ``None`` when it parses.

    libpq's own message quotes the text (``missing "=" after "<the Secret's value>"``), and a
    tenant can point ``dsnSecret`` at any key of any Secret in their namespace, so that
    message must never leave the process. This says where and what, never the content.
    """
    try:
        conninfo_to_dict(dsn)
        return None
    except psycopg.Error:
        pass
    head = dsn.lstrip()
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*)://", head)
    if scheme is not None:
        if scheme.group(1).lower() not in ("postgres", "postgresql"):
            return "a URI whose scheme is not postgresql:// (the value is not shown)"
        return "a postgresql:// URI libpq cannot parse: check brackets, percent-encoding and the port (the value is not shown)"
    i, n = 0, len(dsn)
    while i < n:
        if dsn[i].isspace():
            i += 1
            continue
        start = i
        while i < n and not dsn[i].isspace() and dsn[i] != "=":
            i += 1
        keyword = dsn[start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n or dsn[i] != "=":
            return (f"not a libpq key=value string or postgresql:// URI: the word at character {start + 1} has no '=' "
                    "(the value is not shown)")
        if keyword not in _KNOWN_KEYWORDS:
            return f"not a libpq connection string: unknown keyword at character {start + 1} (the value is not shown)"
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        if i < n and dsn[i] == "'":
            quote = i
            i += 1
            while i < n and dsn[i] != "'":
                i += 2 if dsn[i] == "\\" else 1
            if i >= n:
                return f"not a libpq connection string: unterminated quoted value at character {quote + 1} (the value is not shown)"
            i += 1
        else:
            while i < n and not dsn[i].isspace():
                i += 2 if dsn[i] == "\\" else 1
    return "not a libpq connection string libpq can parse (its message is withheld: it would quote the value)"


def secret_fragments(dsn: str) -> list[str]:
    """Substrings of ``dsn`` that must never appear in a message, longest first.

    The whole string; each value but the connection coordinates (host, port, dbname, user…),
    so a password given as ``password=`` or in a URI; and, when libpq cannot parse the
    text at all, every word of it long enough to be a credential. (A value of one or two
    characters is not searched for: replacing it would garble every message.)
    """
    found = {f for f in (dsn, dsn.strip()) if len(f) >= 3}
    try:
        values = conninfo_to_dict(dsn)
    except psycopg.Error:
        found.update(w for w in dsn.split() if len(w) >= 8)  # long enough to be a credential, not an English word
    else:
        found.update(str(v) for k, v in values.items() if k not in _SHOWN_KEYWORDS and v is not None and len(str(v)) >= 3)
    return sorted(found, key=len, reverse=True)


def redact(text: str, dsn: str | None) -> str:
    """``text`` without any fragment of ``dsn`` and without any password in a ``scheme://user:password@`` URI."""
    for fragment in secret_fragments(dsn) if dsn else ():
        text = text.replace(fragment, "***")
    return _URI_PASSWORD.sub(r"\1***@", text)


def describe_target(dsn: str) -> str:
    """``host:port/db`` for messages (the password never appears); ``ValueError`` for a bad DSN.

    The ``ValueError`` says what is wrong with the string, never what it contains.
    """
    problem = dsn_problem(dsn)
    if problem is not None:
        raise ValueError(problem)
    info = conninfo_to_dict(dsn)
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def one_line(exc: BaseException, dsn: str | None = None) -> str:
    """The error on one line, with every fragment of ``dsn`` (and any URI password) redacted."""
    return redact(" ".join(str(exc).split()), dsn)


def session_options(statement_timeout_ms: int | None = None) -> str:
    """libpq ``options`` that make the server itself refuse writes for the whole session.

    Passed as a ``connect()`` keyword, which overrides an ``options`` in the tenant's DSN.
    Even if a statement escaped the checks in ``indexops_api.sqltext``, the server would
    answer ``cannot execute DELETE in a read-only transaction``.
    """
    opts = ["-c default_transaction_read_only=on", "-c standard_conforming_strings=on"]
    if statement_timeout_ms is not None:
        opts.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    return " ".join(opts)


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
