"""Vectors from PostgreSQL: one consistent snapshot, streamed through a server-side cursor.

Both statements run in one read-only REPEATABLE READ transaction, so the count used to
preallocate the float32 matrix, the watermark and the streamed rows all describe the
same snapshot even while writers keep inserting. SQL is composed with
``psycopg.sql`` (identifiers quoted, the window a typed literal), never with string
formatting; a user ``query`` is wrapped as a subquery from which only the configured
columns are selected. libpq errors become codes a person can act on.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from index_builder.errors import SourceInvalid, SourceNotFound, TooFewVectors
from index_builder.source_errors import CredentialsMissing, SourceAuthFailed, SourceUnreachable
from index_builder.source_vectors import fill_rows
from indexops_api.constants import ENV_POSTGRES_DSN
from indexops_api.spec import PostgresSource

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 15
PROGRESS_EVERY_SECONDS = 10.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AUTH_PATTERNS = ("password authentication failed", "no pg_hba.conf entry", "role", "permission denied",
                  "no password supplied", "authentication failed", "certificate")


@dataclass(frozen=True)
class PostgresRows:
    vectors: np.ndarray
    ids: np.ndarray
    uri: str
    watermark: str | None
    content_hash: str


def parse_duration(text: str) -> timedelta:
    """``48h`` / ``30m`` / ``7d`` / ``90s`` as a timedelta (the spec pattern guarantees the form)."""
    match = re.fullmatch(r"([1-9][0-9]*)([smhd])", text)
    if match is None:
        raise SourceInvalid(f"window.last {text!r} is not a duration like 48h")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _ident(dotted: str) -> sql.Identifier:
    return sql.Identifier(*dotted.split("."))


def _column(dotted: str, relation: str | None) -> sql.Identifier:
    """A column, qualified by the wrapping subquery's alias when reading from a query."""
    return sql.Identifier(relation, dotted.split(".")[-1]) if relation else _ident(dotted)


def base_select(pg: PostgresSource) -> sql.Composed:
    """``SELECT id, vector[, time] FROM <table | (query) AS src> [WHERE time >= now() - window]``."""
    relation = None if pg.table else "src"
    columns = [_column(pg.id_column, relation), _column(pg.vector_column, relation)]
    if pg.window is not None:
        columns.append(_column(pg.window.column, relation))
    if pg.table:
        source: sql.Composable = _ident(pg.table)
    else:
        assert pg.query is not None
        user = pg.query.strip().rstrip(";").strip()
        source = sql.Composed([sql.SQL("("), sql.SQL(user), sql.SQL(") AS src")])
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(columns), source)
    if pg.window is not None:
        query = sql.SQL("{} WHERE {} >= now() - {}").format(
            query, _column(pg.window.column, relation), sql.Literal(parse_duration(pg.window.last))
        )
    return query


def data_query(pg: PostgresSource) -> sql.Composed:
    """The streamed statement: ordered by id so a rebuild adds rows in the same order."""
    relation = None if pg.table else "src"
    return sql.SQL("{} ORDER BY {}").format(base_select(pg), _column(pg.id_column, relation))


def stats_query(pg: PostgresSource) -> sql.Composed:
    """Row count (to preallocate) and, with a window, the newest timestamp (the watermark)."""
    newest = sql.SQL("max(selected.{})").format(sql.Identifier(pg.window.column.split(".")[-1])) if pg.window else sql.SQL("NULL")
    return sql.SQL("SELECT count(*), {} FROM ({}) AS selected").format(newest, base_select(pg))


def source_uri(pg: PostgresSource, host: str, port: str | int, dbname: str) -> str:
    """``postgres://host:port/db/<table | query-<sha256[:12]>>``: never the user or password."""
    what = pg.table or "query-" + hashlib.sha256((pg.query or "").encode()).hexdigest()[:12]
    return f"postgres://{host}:{port}/{dbname}/{what}"


def read(
    pg: PostgresSource, env: Mapping[str, str], *, dimension: int, on_count: Callable[[int], None] | None = None
) -> PostgresRows:
    """Stream the rows; ``on_count`` gets the row count (from ``count(*)``) before any vector is read."""
    dsn = env.get(ENV_POSTGRES_DSN, "").strip()
    if not dsn:
        raise CredentialsMissing(
            f"{ENV_POSTGRES_DSN} is not set: the builder gets the connection string from Secret "
            f"{pg.dsn_secret.name!r} key {pg.dsn_secret.key!r}; check that it exists and holds a libpq DSN"
        )
    target = _describe_target(dsn)
    try:
        conn = psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="faiss-index-builder")
    except psycopg.Error as exc:
        raise _connect_failure(exc, target) from exc
    with conn:
        uri = source_uri(pg, conn.info.host, conn.info.port, conn.info.dbname)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            return _stream(conn, pg, uri, dimension, on_count)
        except psycopg.Error as exc:
            raise _query_failure(exc, uri) from exc


def _stream(
    conn: psycopg.Connection, pg: PostgresSource, uri: str, dimension: int, on_count: Callable[[int], None] | None
) -> PostgresRows:
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.execute(stats_query(pg))
        row = cur.fetchone()
        assert row is not None
        total, newest = int(row[0]), row[1]
    if total == 0:
        raise TooFewVectors(f"{uri}: the {'table' if pg.table else 'query'} returned 0 rows"
                            + (f" in the last {pg.window.last} of {pg.window.column}" if pg.window else ""))
    if on_count is not None:
        on_count(total)
    log.info("reading postgres source", extra={"uri": uri, "rows": total, "batchSize": pg.batch_size})
    vectors = np.empty((total, dimension), dtype=np.float32)
    ids = np.empty(total, dtype=np.int64)
    digest = hashlib.sha256()
    done, last_log = 0, started
    with conn.cursor(name="faiss_source") as cur:
        cur.itersize = pg.batch_size
        cur.execute(data_query(pg))
        while True:
            batch = cur.fetchmany(pg.batch_size)
            if not batch:
                break
            if done + len(batch) > total:  # impossible within one snapshot; guard the preallocation
                raise SourceInvalid(f"{uri}: returned more rows than the {total} it counted")
            fill_rows([r[0] for r in batch], [r[1] for r in batch], vectors, ids, start=done, fmt=pg.vector_format,
                      name=uri, id_column=pg.id_column, vector_column=pg.vector_column)
            digest.update(ids[done : done + len(batch)].tobytes())
            digest.update(vectors[done : done + len(batch)].tobytes())
            done += len(batch)
            now = time.monotonic()
            if now - last_log >= PROGRESS_EVERY_SECONDS:
                last_log = now
                log.info("postgres progress", extra={"uri": uri, "rows": done, "of": total,
                                                     "rowsPerSecond": round(done / (now - started))})
    if done != total:
        raise SourceInvalid(f"{uri}: counted {total} rows but the cursor returned {done}")
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info("postgres source read", extra={"uri": uri, "rows": done, "seconds": round(elapsed, 3),
                                            "rowsPerSecond": round(done / elapsed)})
    return PostgresRows(vectors, ids, uri, newest.isoformat() if hasattr(newest, "isoformat") else
                        (str(newest) if newest is not None else None), "sha256:" + digest.hexdigest())


def _describe_target(dsn: str) -> str:
    """host:port/db for messages; the password never appears."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise SourceInvalid(f"{ENV_POSTGRES_DSN} is not a valid libpq connection string: {exc}") from None
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _connect_failure(exc: psycopg.Error, target: str) -> Exception:
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if "does not exist" in lowered and "database" in lowered:
        return SourceNotFound(f"postgres {target}: {text}")
    if any(p in lowered for p in _AUTH_PATTERNS):
        return SourceAuthFailed(f"postgres {target} rejected the credentials from {ENV_POSTGRES_DSN}: {text}")
    return SourceUnreachable(f"cannot connect to postgres {target}: {text}")


def _query_failure(exc: psycopg.Error, uri: str) -> Exception:
    text = " ".join(str(exc).split())
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return SourceAuthFailed(f"{uri}: the role may not read the source: {text}")
    if isinstance(exc, (psycopg.errors.SyntaxErrorOrAccessRuleViolation, psycopg.errors.DataException)):
        return SourceInvalid(f"{uri}: {text}")
    if isinstance(exc, psycopg.OperationalError):
        return SourceUnreachable(f"{uri}: lost the connection while reading: {text}")
    return SourceInvalid(f"{uri}: {text}")
