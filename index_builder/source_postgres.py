"""Vectors from PostgreSQL: one consistent snapshot, streamed through a server-side cursor.

Both statements run in one read-only REPEATABLE READ transaction, so the count used to
preallocate the float32 matrix, the watermark and the streamed rows all describe the
same snapshot even while writers keep inserting. The statements and the sorting of
libpq errors live in ``indexops_store.postgres``, shared with the operator's drift probe
so that both compute the count and watermark identically; here they become the
builder's failure codes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import psycopg
from psycopg import sql

from index_builder.errors import SourceInvalid, SourceNotFound, TooFewVectors
from index_builder.source_errors import CredentialsMissing, SourceAuthFailed, SourceUnreachable
from index_builder.source_vectors import fill_rows
from indexops_api.constants import ENV_POSTGRES_DSN
from indexops_api.spec import PostgresSource
from indexops_api.sqltext import UnsafeQuery, single_read_statement
from indexops_store import postgres as pg_shared
from indexops_store.postgres import FailureKind

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 15
PROGRESS_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class PostgresRows:
    vectors: np.ndarray
    ids: np.ndarray
    uri: str
    watermark: str | None
    content_hash: str
    window_anchor: str | None = None  # now() of the snapshot the window was measured from


def parse_duration(text: str) -> timedelta:
    """``48h`` / ``30m`` / ``7d`` / ``90s`` as a timedelta (the spec pattern guarantees the form)."""
    try:
        return pg_shared.parse_duration(text)
    except ValueError as exc:
        raise SourceInvalid(str(exc)) from None


def _check_window(pg: PostgresSource) -> None:
    if pg.window is not None:
        parse_duration(pg.window.last)


def base_select(pg: PostgresSource, now: datetime | None = None) -> sql.Composed:
    """``SELECT id, vector[, time] FROM <table | (query) AS src> [WHERE time >= now() - window]``."""
    _check_window(pg)
    return pg_shared.base_select(pg, now)


IdRange = tuple[int, int | None]  # [first id, end id) of one slice; None: no upper bound


def data_query(pg: PostgresSource, id_range: IdRange | None = None, now: datetime | None = None) -> sql.Composed:
    """The streamed statement: ordered by id so a rebuild adds rows in the same order.

    With ``id_range`` (a slice pod) only the ids ``first <= id < end`` are selected: the
    predicate wraps the same select, so the server can use an index on the id column and
    only the slice's rows cross the network. ``now`` fixes a window's start at the train
    stage's snapshot time, so every slice selects the window the train stage counted.
    """
    if id_range is None:
        relation = None if pg.table else "src"
        return sql.SQL("{} ORDER BY {}").format(base_select(pg), pg_shared.column(pg.id_column, relation))
    return sql.SQL("SELECT * FROM ({}) AS sliced WHERE {} ORDER BY {}").format(
        base_select(pg, now), _range_predicate(pg, id_range), _sliced_id(pg))


def slice_stats_query(pg: PostgresSource, id_range: IdRange, now: datetime | None = None) -> sql.Composed:
    """Row count of one slice's id range (and the newest timestamp, as ``stats_query``)."""
    _check_window(pg)
    newest = sql.SQL("max(sliced.{})").format(sql.Identifier(pg.window.column.split(".")[-1])) if pg.window else sql.SQL("NULL")
    return sql.SQL("SELECT count(*), {} FROM ({}) AS sliced WHERE {}").format(
        newest, base_select(pg, now), _range_predicate(pg, id_range))


def _sliced_id(pg: PostgresSource) -> sql.Identifier:
    return sql.Identifier("sliced", pg.id_column.split(".")[-1])


def _range_predicate(pg: PostgresSource, id_range: IdRange) -> sql.Composed:
    first, end = id_range
    lower = sql.SQL("{} >= {}").format(_sliced_id(pg), sql.Literal(int(first)))
    if end is None:
        return lower
    return sql.SQL("{} AND {} < {}").format(lower, _sliced_id(pg), sql.Literal(int(end)))


def stats_query(pg: PostgresSource) -> sql.Composed:
    """Row count (to preallocate) and, with a window, the newest timestamp (the watermark)."""
    _check_window(pg)
    return pg_shared.stats_query(pg)


source_uri = pg_shared.source_uri


def read(
    pg: PostgresSource, env: Mapping[str, str], *, dimension: int, on_count: Callable[[int], None] | None = None,
    id_range: IdRange | None = None, window_anchor: datetime | None = None,
) -> PostgresRows:
    """Stream the rows; ``on_count`` gets the row count (from ``count(*)``) before any vector is read.

    ``id_range``: only that slice's rows (a slice pod of a sharded build); ``window_anchor``:
    the train stage's ``now()``, so a window means the same rows in every slice.
    """
    dsn = env.get(ENV_POSTGRES_DSN, "").strip()
    if not dsn:
        raise CredentialsMissing(
            f"{ENV_POSTGRES_DSN} is not set: the builder gets the connection string from Secret "
            f"{pg.dsn_secret.name!r} key {pg.dsn_secret.key!r}; check that it exists and holds a libpq DSN"
        )
    target = _describe_target(dsn, pg)
    _check_query(pg)  # before any byte reaches the server
    try:
        conn = psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="faiss-index-builder",
                               options=pg_shared.session_options())
    except psycopg.Error as exc:
        raise _connect_failure(exc, target, dsn) from None  # libpq's text may quote the DSN: never chained
    with conn:
        uri = source_uri(pg, conn.info.host, conn.info.port, conn.info.dbname)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            return _stream(conn, pg, uri, dimension, on_count, id_range, window_anchor)
        except psycopg.Error as exc:
            raise _query_failure(exc, uri, dsn) from None


def _stream(
    conn: psycopg.Connection, pg: PostgresSource, uri: str, dimension: int, on_count: Callable[[int], None] | None,
    id_range: IdRange | None = None, window_anchor: datetime | None = None,
) -> PostgresRows:
    started = time.monotonic()
    _check_window(pg)
    if id_range is None:
        stats = pg_shared.read_stats(conn, pg)  # the same statement as the operator's drift probe
    else:
        with conn.cursor() as cur:
            cur.execute(slice_stats_query(pg, id_range, window_anchor), binary=True)
            row = cur.fetchone()
        assert row is not None
        stats = pg_shared.SourceStats(int(row[0]), pg_shared.format_watermark(row[1]))
    anchor = _transaction_now(conn) if pg.window else None  # now() is fixed for the whole transaction
    total = stats.count
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
        cur.execute(data_query(pg, id_range, window_anchor if id_range is not None else None))
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
    return PostgresRows(vectors, ids, uri, stats.watermark, "sha256:" + digest.hexdigest(), window_anchor=anchor)


def _transaction_now(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0].isoformat()


def _describe_target(dsn: str, pg: PostgresSource) -> str:
    """host:port/db for messages; neither the password nor a bad DSN's content ever appears."""
    try:
        return pg_shared.describe_target(dsn)
    except ValueError as exc:
        raise SourceInvalid(f"{ENV_POSTGRES_DSN} (Secret {pg.dsn_secret.name!r} key {pg.dsn_secret.key!r}) "
                            f"is {exc}") from None


def _check_query(pg: PostgresSource) -> None:
    if pg.query is not None:
        try:
            single_read_statement(pg.query)
        except UnsafeQuery as exc:
            raise SourceInvalid(f"source.postgres.query {exc}") from None


def _connect_failure(exc: psycopg.Error, target: str, dsn: str) -> Exception:
    text = pg_shared.one_line(exc, dsn)
    kind = pg_shared.connect_failure_kind(exc)
    if kind is FailureKind.NOT_FOUND:
        return SourceNotFound(f"postgres {target}: {text}")
    if kind is FailureKind.AUTH:
        return SourceAuthFailed(f"postgres {target} rejected the credentials from {ENV_POSTGRES_DSN}: {text}")
    return SourceUnreachable(f"cannot connect to postgres {target}: {text}")


def _query_failure(exc: psycopg.Error, uri: str, dsn: str) -> Exception:
    text = pg_shared.one_line(exc, dsn)
    kind = pg_shared.query_failure_kind(exc)
    if kind is FailureKind.AUTH:
        return SourceAuthFailed(f"{uri}: the role may not read the source: {text}")
    if kind is FailureKind.CANCELLED:
        return SourceUnreachable(f"{uri}: the server cancelled the statement (statement_timeout?): {text}")
    if kind is FailureKind.UNREACHABLE:
        return SourceUnreachable(f"{uri}: lost the connection while reading: {text}")
    return SourceInvalid(f"{uri}: {text}")
