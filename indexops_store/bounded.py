"""S3 requests with a hard size cap and a wall-clock deadline, for programs that read untrusted storage.

Why not botocore's own options: ``read_timeout`` applies to each socket read, so a server
that sends one byte a second never trips it, and non-streaming answers (ListObjectsV2,
errors) are read into memory whole before anyone can look at their size. The operator
reads objects in buckets that tenants write (pointer, manifests, listings), so it must
bound both.

``attach(client, limits)`` registers a ``before-send`` hook: botocore builds and signs the
request as usual, then this module sends it over a fresh ``http.client`` connection that it
owns. A watchdog shuts that connection's socket down when the deadline passes, wherever the
exchange is (status line, headers or body), and the body is read in chunks and refused as
soon as it, or its Content-Length, exceeds the cap. The answer is handed back to botocore
already in memory, so a response never holds more than ``max_response_bytes``.

The deadline is the request's own budget, shortened by the enclosing call's budget when
one is set with ``call_budget`` (``ArtifactStore`` sets one per operation, so a paginated
listing or botocore's retries share one wall-clock limit).

Failures raise ``StorageUnavailable`` (no complete answer in time, connection refused or
reset) or ``StorageTooLarge`` (over the cap); both are ``StorageError``.
"""

from __future__ import annotations

import io
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse

from indexops_store.s3 import StorageError, StorageTooLarge, StorageUnavailable

_CHUNK = 64 * 1024
_local = threading.local()


@dataclass(frozen=True)
class Limits:
    """Bounds of every S3 exchange of one client (defaults: the operator's)."""

    max_response_bytes: int = 4 * 1024 * 1024  # a pointer, a manifest or one listing page
    call_seconds: float = 10.0  # wall clock of one request, and of one ArtifactStore call
    connect_seconds: float = 5.0
    max_list_pages: int = 100  # ListObjectsV2 pages of one listing (1,000 keys each)
    max_list_keys: int = 100_000

    def __post_init__(self) -> None:
        if self.max_response_bytes < 1024 or self.call_seconds <= 0 or self.connect_seconds <= 0:
            raise ValueError(f"unusable S3 limits: {self}")
        if self.max_list_pages < 1 or self.max_list_keys < 1:
            raise ValueError(f"unusable S3 listing limits: {self}")


@contextmanager
def call_budget(seconds: float, shown: float | None = None) -> Iterator[None]:
    """Every request sent by this thread inside the block ends by ``now + seconds`` (nesting keeps the earliest).

    ``shown`` is the budget an error names (the whole call's, when ``seconds`` is what is left of it).
    """
    outer = getattr(_local, "budget", None)
    mine = (time.monotonic() + seconds, seconds if shown is None else shown)
    _local.budget = mine if outer is None or mine[0] < outer[0] else outer
    try:
        yield
    finally:
        _local.budget = outer


class _Body(io.BytesIO):
    """What botocore reads a response from: bytes already in memory."""

    def stream(self, amt: int = _CHUNK, decode_content: bool = False) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


def _where(method: str, url: str) -> str:
    parts = urlsplit(url)  # the query carries no secret (signatures travel in headers) but is noise
    return f"{method} {parts.scheme}://{parts.netloc}{parts.path}"


def _ssl_context() -> ssl.SSLContext:
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if not bundle:
        from botocore.httpsession import get_cert_path

        bundle = get_cert_path(True)
    return ssl.create_default_context(cafile=bundle)


def _request_body(body: Any) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if hasattr(body, "read"):
        if hasattr(body, "seek"):
            body.seek(0)
        data = body.read()
        return data.encode() if isinstance(data, str) else data
    return b"".join(body)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class _Exchange:
    """One request on its own connection, with a watchdog that kills the socket at the deadline."""

    def __init__(self, method: str, url: str, *, max_bytes: int, seconds: float, connect_seconds: float):
        self.method, self.url, self.max_bytes, self.connect_seconds = method, url, max_bytes, connect_seconds
        now = time.monotonic()
        self.deadline, self.budget = now + seconds, seconds
        outer = getattr(_local, "budget", None)
        if outer is not None and outer[0] < self.deadline:
            self.deadline, self.budget = outer
        self.seconds = max(0.0, self.deadline - now)
        self.expired = threading.Event()
        self.conn: HTTPConnection | None = None

    def _kill(self) -> None:
        self.expired.set()
        sock = self.conn.sock if self.conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _too_slow(self) -> StorageUnavailable:
        return StorageUnavailable(f"{_where(self.method, self.url)}: no complete answer within {self.budget:.1f}s; gave up")

    def send(self, headers: dict[str, str], body: bytes | None) -> Answer:
        if self.seconds <= 0:
            raise self._too_slow()
        parts = urlsplit(self.url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        timeout = min(self.connect_seconds, self.seconds)
        if parts.scheme == "https":
            self.conn = HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=_ssl_context())
        else:
            self.conn = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        watchdog = threading.Timer(self.seconds, self._kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            self.conn.connect()
            self.conn.sock.settimeout(max(0.01, self.deadline - time.monotonic()))
            self.conn.request(self.method, target, body=body, headers=headers)
            resp = self.conn.getresponse()
            declared = resp.getheader("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_large(f"Content-Length {declared}")
            return Answer(resp.status, dict(resp.getheaders()), self._read(resp))
        except StorageError:
            raise
        except (OSError, HTTPException, ValueError) as exc:
            if self.expired.is_set() or time.monotonic() >= self.deadline or isinstance(exc, socket.timeout):
                raise self._too_slow() from None
            raise StorageUnavailable(f"{_where(self.method, self.url)}: {type(exc).__name__}: {exc}") from None
        finally:
            watchdog.cancel()
            self.conn.close()

    def _read(self, resp: Any) -> bytes:
        if self.method == "HEAD":
            return b""
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() >= self.deadline:
                raise self._too_slow()
            chunk = resp.read1(_CHUNK)
            if not chunk:
                if self.expired.is_set():
                    raise self._too_slow()
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(f"more than {self.max_bytes} bytes read")
            chunks.append(chunk)

    def _too_large(self, seen: str) -> StorageTooLarge:
        return StorageTooLarge(
            f"{_where(self.method, self.url)}: the answer is larger than the {self.max_bytes}-byte cap "
            f"({seen}); refusing to read it"
        )


def fetch(
    method: str, url: str, *, max_bytes: int, seconds: float, connect_seconds: float = 5.0,
    headers: dict[str, str] | None = None, body: bytes | None = None,
) -> Answer:
    """One HTTP exchange, whole answer in memory, at most ``max_bytes`` and ``seconds`` of wall clock.

    Raises ``StorageTooLarge`` / ``StorageUnavailable``; also used for the serving pods'
    ``/v1/status``, which the tenant's pods answer.
    """
    return _Exchange(method, url, max_bytes=max_bytes, seconds=seconds, connect_seconds=connect_seconds).send(headers or {}, body)


def attach(client: Any, limits: Limits) -> Any:
    """Send every request of ``client`` through a bounded exchange; returns the client."""

    def send(request: Any, **_: Any) -> AWSResponse:
        headers = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()}
        headers.pop("Expect", None)  # the body is sent at once; no 100-continue dance
        answer = fetch(request.method, request.url, max_bytes=limits.max_response_bytes, seconds=limits.call_seconds,
                       connect_seconds=limits.connect_seconds, headers=headers, body=_request_body(request.body))
        return AWSResponse(request.url, answer.status, answer.headers, _Body(answer.body))

    client.meta.events.register_first("before-send.s3", send)
    return client
