"""A kubelet-style `/containerLogs` HTTPS endpoint, so `kubectl logs` works on the dev stack.

Test/dev infrastructure only. The API server proxies `kubectl logs` to the node's
kubelet port (status.daemonEndpoints.kubeletEndpoint); the dev node agent serves
the per-container log files it writes from that port on 127.0.0.1. Only
`/containerLogs/<ns>/<pod>/<container>` with tailLines/limitBytes/follow is served.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

log = logging.getLogger("node-agent")


def _tail(data: bytes, lines: int) -> bytes:
    if lines < 0:
        return data
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:]) if lines else b""


def serve_logs(pods_dir: Path, cert: Path, key: Path,
               is_running: Callable[[str, str], bool]) -> int:
    """Start the endpoint on a free 127.0.0.1 port in a daemon thread; returns the port."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:  # quiet
            log.debug("logs: " + fmt, *args)

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "containerLogs":
                self.send_error(404, "only /containerLogs/<ns>/<pod>/<container> is served")
                return
            _, ns, pod, container = parts
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if q.get("previous") == "true":
                self.send_error(400, "previous container logs are not kept by the dev node agent")
                return
            path = pods_dir / f"{ns}_{pod}" / f"{container}.log"
            if not path.exists():
                self.send_error(404, f"no log for container {container} in pod {ns}/{pod}")
                return
            data = _tail(path.read_bytes(), int(q.get("tailLines", "-1")))
            limit = int(q.get("limitBytes", "0") or 0)
            if limit:
                data = data[:limit]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                self.wfile.write(data)
                self.wfile.flush()
                if q.get("follow") == "true" and not limit:
                    self._follow(path, path.stat().st_size, ns, pod)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass

        def _follow(self, path: Path, offset: int, ns: str, pod: str) -> None:
            idle_checks = 0
            while True:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                if chunk:
                    offset += len(chunk)
                    self.wfile.write(chunk)
                    self.wfile.flush()
                elif not is_running(ns, pod):
                    idle_checks += 1
                    if idle_checks > 3:
                        return
                time.sleep(0.3)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="log-server", daemon=True).start()
    return int(server.server_address[1])
