"""A hostile S3 endpoint on loopback, for the attack tests (``test_s3_*``) and the e2e proof.

It speaks just enough of the S3 REST API (path-style) for boto3 to accept its answers, and
misbehaves according to the bucket asked for:

* ``huge``          — every object is 200 MB, with its Content-Length declared;
* ``huge-unsized``  — every object is 200 MB with no Content-Length (ends when the connection closes);
* ``endless``       — ListObjectsV2 answers ``IsTruncated=true`` with a fresh continuation token
                      forever (and no object exists);
* ``drip``          — every answer (status line, headers, body) comes one byte per second;
* anything else     — objects are ``{}`` and listings are empty.

Writes (PUT, POST, DELETE) always succeed at once: only what the operator reads misbehaves.

It records the method, path and ``Authorization`` header of every request, so a test can show
which access key id (if any) the client sent.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HUGE_BYTES = 200 * 1024 * 1024
_CHUNK = b" " * (1024 * 1024)
_KEY_ID = re.compile(r"Credential=([^/]+)/")


@dataclass
class Seen:
    method: str
    path: str
    authorization: str

    @property
    def access_key_id(self) -> str | None:
        match = _KEY_ID.search(self.authorization)
        return match.group(1) if match else None


@dataclass
class HostileS3:
    requests: list[Seen] = field(default_factory=list)
    list_pages: int = 0

    def start(self) -> "HostileS3":
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one answer per connection; unsized bodies end at close

            def log_message(self, *_: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hostile._answer(self, head=True)

            def do_GET(self) -> None:
                hostile._answer(self, head=False)

            def do_PUT(self) -> None:
                hostile._answer(self, head=False)

            def do_POST(self) -> None:
                hostile._answer(self, head=False)

            def do_DELETE(self) -> None:
                hostile._answer(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def key_ids(self) -> set[str | None]:
        return {r.access_key_id for r in self.requests}

    # -- behaviours -------------------------------------------------------------------------

    def _answer(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        self.requests.append(Seen(h.command, h.path, h.headers.get("Authorization", "")))
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        parts = urlsplit(h.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        query = parse_qs(parts.query)
        try:
            if h.command not in ("GET", "HEAD"):
                self._small(h, head=False, body=b"")  # writes "succeed": only what the operator reads misbehaves
            elif bucket == "drip":
                self._drip(h, head)
            elif bucket == "endless" and "list-type" not in query:
                self._missing(h, head, key)
            elif "list-type" in query:
                self._listing(h, bucket, key_prefix=(query.get("prefix") or [""])[0])
            elif bucket in ("huge", "huge-unsized") and key:
                self._huge(h, head, sized=bucket == "huge")
            else:
                self._small(h, head)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the client gave up: what the tests want

    def _small(self, h: BaseHTTPRequestHandler, head: bool, body: bytes = b"{}") -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        h.send_header("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT")
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _missing(self, h: BaseHTTPRequestHandler, head: bool, key: str) -> None:
        body = f"<Error><Code>NoSuchKey</Code><Message>no such key</Message><Key>{key}</Key></Error>".encode()
        h.send_response(404)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _huge(self, h: BaseHTTPRequestHandler, head: bool, sized: bool) -> None:
        h.send_response(200)
        if sized:
            h.send_header("Content-Length", str(HUGE_BYTES))
        h.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        h.end_headers()
        if head:
            return
        for _ in range(HUGE_BYTES // len(_CHUNK)):
            h.wfile.write(_CHUNK)

    def _listing(self, h: BaseHTTPRequestHandler, bucket: str, key_prefix: str) -> None:
        truncated = bucket == "endless"
        self.list_pages += 1
        contents = "".join(
            f"<Contents><Key>{key_prefix}x{uuid.uuid4().hex}.npy</Key><Size>1</Size><ETag>\"e\"</ETag>"
            "<LastModified>2026-12-07T00:00:00.000Z</LastModified></Contents>"
            for _ in range(3 if truncated else 0)
        )
        token = f"<NextContinuationToken>{uuid.uuid4().hex}</NextContinuationToken>" if truncated else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{bucket}</Name><Prefix>{key_prefix}</Prefix><KeyCount>{3 if truncated else 0}</KeyCount>"
            f"<MaxKeys>1000</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{token}{contents}"
            "</ListBucketResult>"
        ).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _drip(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        body = b"{}" + b" " * 998
        answer = (
            b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\nETag: \"0123456789abcdef0123456789abcdef\"\r\n"
            b"Last-Modified: Mon, 07 Dec 2026 00:00:00 GMT\r\n\r\n" + (b"" if head else body)
        )
        for i in range(len(answer)):
            h.wfile.write(answer[i:i + 1])
            h.wfile.flush()
            time.sleep(1.0)
