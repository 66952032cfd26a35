"""Cheap source fingerprints for drift checks, equal to what the builder records when nothing changed.

The operator compares a probe with the serving version's ``manifest.source`` (see
``indexops_api.fingerprint.describe_drift``), so a probe must compute each field the way
the builder does, from the same code:

* PostgreSQL — ``count(*)`` and, with a window, ``max(<time column>)``: the statement of
  ``indexops_store.postgres``, which the builder runs too. No vector is read.
* S3 — one HEAD for a ``key``, one listing for a ``prefix``: the ETag (a single object's
  own, or ``combined_etag`` over every key and ETag) and the newest LastModified, exactly
  as the builder records them. A listing cannot know how many rows the objects hold, so
  the probe's ``count`` is ``COUNT_NOT_PROBED`` (0); ``describe_drift`` compares S3
  fingerprints by ETag, which identifies the bytes and therefore the rows.
* Files live on the builder's filesystem, which the operator cannot read: probing one
  gives a ``NotProbeable`` result (a value, not an error), so the caller can say so in
  status instead of retrying.

Probes block (libpq, boto3): call them from a thread in async code. Failures raise
``ProbeError`` whose ``reason`` uses the builder's failure codes, so a source problem has
the same name whoever finds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg

from indexops_api.layout import render_location
from indexops_api.manifest import SourceFingerprint
from indexops_api.spec import FileSource, PostgresSource, S3Source, Source
from indexops_api.sqltext import UnsafeQuery, single_read_statement
from indexops_store import postgres as pg_shared
from indexops_store.postgres import FailureKind
from indexops_store.s3 import ArtifactStore, ObjectInfo, StorageError

CONNECT_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT_SECONDS = 60
APPLICATION_NAME = "faiss-index-operator-probe"
COUNT_NOT_PROBED = 0  # S3 probes: the row count is not known from a listing (compare the ETag)


class ProbeError(RuntimeError):
    """The source could not be probed; ``reason`` is a builder failure code, ``str()`` says why.

    Reasons: ``CredentialsMissing`` (empty DSN), ``SourceUnreachable``, ``SourceAuthFailed``,
    ``SourceNotFound`` (database, bucket, key or prefix), ``SourceInvalid`` (bad DSN; the
    statement fails, e.g. a missing table or column), ``StorageError`` (other S3 errors).
    """

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class NotProbeable:
    """The source kind cannot be fingerprinted from the operator; drift is not checked."""

    reason: str
    message: str


class ListedObject(Protocol):
    key: str
    etag: str
    last_modified: datetime | None


def combined_etag(objects: Sequence[ListedObject]) -> tuple[str | None, str | None]:
    """(ETag, newest LastModified as ISO text): one object's own ETag, or a digest of every key and ETag.

    ``objects`` must be in key order. This is the builder's source fingerprint
    (``index_builder.source_s3.fingerprint`` calls it).
    """
    newest = max((o.last_modified for o in objects if o.last_modified is not None), default=None)
    if len(objects) == 1:
        etag: str | None = objects[0].etag
    else:
        digest = hashlib.sha256()
        for o in objects:
            digest.update(f"{o.key}\0{o.etag}\n".encode())
        etag = f"sha256:{digest.hexdigest()}"
    return etag, newest.isoformat() if newest is not None else None


def probe_source(
    source: Source, horizon: str, now: datetime | None = None, *, dsn: str | None = None, s3_client: Any = None
) -> SourceFingerprint | NotProbeable:
    """Dispatch on the source kind; ``dsn`` is needed for PostgreSQL, ``s3_client`` for S3."""
    if source.postgres is not None:
        return probe_postgres(dsn or "", source.postgres, now)
    if source.s3 is not None:
        if s3_client is None:
            raise ValueError("probing an S3 source needs an S3 client")
        return probe_s3(s3_client, source.s3, horizon)
    assert source.file is not None
    return probe_file(source.file)


def probe_file(source: FileSource) -> NotProbeable:
    return NotProbeable(
        reason="FileSourceNotProbeable",
        message=f"source file {source.path} is on the builder's filesystem, which the operator cannot read: "
        "drift is not checked; rebuild on a schedule or with the rebuild-requested-at annotation",
    )


# -- PostgreSQL ----------------------------------------------------------------------------------


def probe_postgres(
    dsn: str,
    source: PostgresSource,
    now: datetime | None = None,
    *,
    connect_timeout: int = CONNECT_TIMEOUT_SECONDS,
    statement_timeout: float = STATEMENT_TIMEOUT_SECONDS,
) -> SourceFingerprint:
    """Row count and watermark of the rows the builder would read, without reading a vector.

    ``now`` anchors the time window: ``None`` uses the database's ``now()`` exactly as the
    builder does (a sliding window drifts by itself as rows age out of it); a timezone-aware
    time, e.g. when the serving version was built, counts the rows in that build's window,
    so only inserted, deleted or re-timed rows show up as drift.
    """
    secret = f"Secret {source.dsn_secret.name!r} key {source.dsn_secret.key!r}"
    if not dsn.strip():
        raise ProbeError(f"the PostgreSQL connection string from {secret} is empty", reason="CredentialsMissing")
    try:
        target = pg_shared.describe_target(dsn)
    except ValueError as exc:
        raise ProbeError(f"the PostgreSQL connection string from {secret} is {exc}", reason="SourceInvalid") from None
    if source.query is not None:
        try:
            single_read_statement(source.query)  # before any byte reaches the server
        except UnsafeQuery as exc:
            raise ProbeError(f"source.postgres.query {exc}", reason="SourceInvalid") from None
    try:
        conn = psycopg.connect(dsn, connect_timeout=connect_timeout, application_name=APPLICATION_NAME,
                               options=pg_shared.session_options(int(statement_timeout * 1000)))
    except psycopg.Error as exc:
        raise _connect_failure(exc, target, secret, dsn) from None  # libpq's text may quote the DSN: never chained
    with conn:
        uri = pg_shared.source_uri(source, conn.info.host, conn.info.port, conn.info.dbname)
        conn.read_only = True
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(statement_timeout * 1000)}ms"])
                stats = pg_shared.read_stats(conn, source, now)
        except psycopg.Error as exc:
            raise _query_failure(exc, uri, statement_timeout, dsn) from None
    return SourceFingerprint(uri=uri, count=stats.count, watermark=stats.watermark)


def _connect_failure(exc: psycopg.Error, target: str, secret: str, dsn: str) -> ProbeError:
    text = pg_shared.one_line(exc, dsn)
    kind = pg_shared.connect_failure_kind(exc)
    if kind is FailureKind.NOT_FOUND:
        return ProbeError(f"postgres {target}: {text}", reason="SourceNotFound")
    if kind is FailureKind.AUTH:
        return ProbeError(f"postgres {target} rejected the credentials from {secret}: {text}", reason="SourceAuthFailed")
    return ProbeError(f"cannot connect to postgres {target}: {text}", reason="SourceUnreachable")


def _query_failure(exc: psycopg.Error, uri: str, timeout: float, dsn: str) -> ProbeError:
    text = pg_shared.one_line(exc, dsn)
    kind = pg_shared.query_failure_kind(exc)
    if kind is FailureKind.AUTH:
        return ProbeError(f"{uri}: the role may not read the source: {text}", reason="SourceAuthFailed")
    if kind is FailureKind.CANCELLED:
        return ProbeError(f"{uri}: counting the rows took longer than {timeout:g}s: {text}", reason="SourceUnreachable")
    if kind is FailureKind.UNREACHABLE:
        return ProbeError(f"{uri}: lost the connection while counting: {text}", reason="SourceUnreachable")
    return ProbeError(f"{uri}: {text}", reason="SourceInvalid")


# -- S3 ------------------------------------------------------------------------------------------


def probe_s3(client: Any, source: S3Source, horizon: str) -> SourceFingerprint:
    """ETag and newest LastModified of the source object(s); ``count`` is ``COUNT_NOT_PROBED``.

    A ``key`` is HEADed (the builder records HEAD's ETag and LastModified); a ``prefix`` is
    listed and only objects with the format's extension count, in key order, as the
    builder reads them. ``idsKey`` is not part of the fingerprint (nor of the builder's).
    """
    store = ArtifactStore(client, source.bucket)
    if source.key is not None:
        key = render_location(source.key, horizon)
        objects = [_head(store, key)]
        uri = f"s3://{source.bucket}/{key}"
    else:
        prefix = render_location(source.prefix or "", horizon)
        objects = _list(store, prefix, f".{source.format}")
        uri = f"s3://{source.bucket}/{prefix}"
    etag, newest = combined_etag(objects)
    return SourceFingerprint(uri=uri, count=COUNT_NOT_PROBED, etag=etag, last_modified=newest, watermark=newest)


def _head(store: ArtifactStore, key: str) -> ObjectInfo:
    try:
        head = store.head(key)
    except StorageError as exc:
        if exc.not_found:
            raise ProbeError(_missing_key_message(store, key), reason="SourceNotFound") from exc
        raise _storage_failure(exc) from exc
    return ObjectInfo(key, int(head.get("ContentLength", 0)), head.get("ETag", ""), head.get("LastModified"))


def _list(store: ArtifactStore, prefix: str, extension: str) -> list[ObjectInfo]:
    found: list[ObjectInfo] = []
    others = 0
    try:
        for obj in store.iter_objects(prefix):
            if obj.key.endswith(extension):
                found.append(obj)
            else:
                others += 1
    except StorageError as exc:
        raise _storage_failure(exc) from exc
    if not found:
        also = f" ({others} objects with other extensions)" if others else ""
        raise ProbeError(f"no {extension} objects under prefix s3://{store.bucket}/{prefix}{also}",
                         reason="SourceNotFound")
    return sorted(found, key=lambda o: o.key)


def _missing_key_message(store: ArtifactStore, key: str) -> str:
    """HEAD answers 404 for a missing bucket and a missing key alike; a listing tells them apart."""
    try:
        next(store.iter_objects(key), None)
    except StorageError as exc:
        if exc.not_found:
            return f"source bucket {store.bucket!r} does not exist (looking for s3://{store.bucket}/{key})"
    return f"source object s3://{store.bucket}/{key} does not exist"


def _storage_failure(exc: StorageError) -> ProbeError:
    if exc.not_found:
        return ProbeError(f"source {exc}", reason="SourceNotFound")
    if exc.denied:
        return ProbeError(f"source {exc}", reason="SourceAuthFailed")
    return ProbeError(f"source {exc}", reason="StorageError")
