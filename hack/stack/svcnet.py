"""Service networking for the dev/test node agent: stable Service IPs, names, a TCP proxy.

THIS IS TEST/DEV INFRASTRUCTURE, NOT PART OF THE PRODUCT. On a real cluster kube-proxy
and cluster DNS make `http://<svc>.<ns>.svc:80` reach a ready pod of the Service. The
local stack has neither (pods are local processes on loopback IPs, see
shared/design/LOCAL_CLUSTER.md), so this module stands in for both:

- every Service gets a *stack-local* IP, 127.S.8.1 ... 127.S.15.254 (S: the octet the
  agent claimed for its pod IPs, 127.S.0.0/21), stable for its namespace/name for the life
  of the stack state directory (the table is saved in ``services.json``);
- a userspace TCP proxy listens on that IP at every Service port and forwards each
  connection to a ready endpoint at the resolved targetPort, round-robin, skipping
  endpoints that refuse (per connection, like kube-proxy: a kept-alive connection stays
  on its pod);
- name resolution: per namespace a hosts file (the host's ``/etc/hosts`` plus
  ``<ip> <svc>.<ns>.svc.cluster.local <svc>.<ns>.svc <svc>.<ns> [<svc>]``, the short
  name only for Services of that namespace) that the agent bind-mounts over
  ``/etc/hosts`` in each pod's private mount namespace. glibc's ``files`` NSS backend
  reads it on every lookup, so every process of the pod (Python, curl, anything linked
  against libc) resolves Service names without a resolver shim. The file is only ever
  *appended to* once a pod may have it mounted (IPs never change for a name), so a
  reader never sees a half-written file.

Headless and ExternalName Services are not proxied. The Service's API clusterIP
(10.0.0.x) is not reachable; use the names.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("node-agent")
CLUSTER_DOMAIN = "cluster.local"
FIRST_HI, LAST_HI = 8, 15  # 127.S.8.0 - 127.S.15.255, above the pod range 127.S.0.0/21
CONNECT_TIMEOUT = 2.0


# ---- pure parts -------------------------------------------------------------------------

def service_names(namespace: str, name: str) -> list[str]:
    """Every name a pod can use for a Service, fully qualified first."""
    return [f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}", f"{name}.{namespace}.svc", f"{name}.{namespace}"]


def parse_service_host(host: str, pod_namespace: str | None = None) -> tuple[str, str] | None:
    """(namespace, name) a host name means, like the cluster DNS with the pod's search path.

    ``svc``, ``svc.ns``, ``svc.ns.svc`` and ``svc.ns.svc.cluster.local`` (case-insensitive,
    a trailing dot allowed); a single label needs the asking pod's namespace. None for
    anything else (IPs, external names, ``svc.ns.pod...``).
    """
    labels = host.rstrip(".").lower().split(".")
    if not all(labels):
        return None
    if labels[-2:] == CLUSTER_DOMAIN.split("."):
        labels = labels[:-2]
        if len(labels) != 3 or labels[2] != "svc":
            return None
    if len(labels) == 3 and labels[2] == "svc":
        labels = labels[:2]
    if len(labels) == 1:
        return (pod_namespace, labels[0]) if pod_namespace else None
    if len(labels) == 2 and not labels[1].isdigit():
        return labels[1], labels[0]
    return None


def next_free_ip(octet: int, taken: set[str]) -> str:
    """The lowest Service IP of range 127.<octet>.8-15.x not in ``taken``."""
    for hi in range(FIRST_HI, LAST_HI + 1):
        for lo in range(1, 255):
            ip = f"127.{octet}.{hi}.{lo}"
            if ip not in taken:
                return ip
    raise RuntimeError(f"out of Service IPs in 127.{octet}.{FIRST_HI}-{LAST_HI}.x")


def hosts_lines(table: dict[tuple[str, str], str], pod_namespace: str) -> list[str]:
    """The hosts-file lines of every Service, short names only for ``pod_namespace``'s."""
    lines = []
    for (ns, name), ip in sorted(table.items(), key=lambda kv: kv[1]):
        names = service_names(ns, name) + ([name] if ns == pod_namespace else [])
        lines.append(f"{ip} {' '.join(names)}")
    return lines


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int


# ---- the proxy --------------------------------------------------------------------------

class Listener:
    """One (service IP, port) with the current ready backends; picks round-robin."""

    def __init__(self, server: asyncio.base_events.Server) -> None:
        self.server = server
        self.backends: list[Backend] = []
        self._turn = itertools.count()

    def order(self) -> list[Backend]:
        if not self.backends:
            return []
        start = next(self._turn) % len(self.backends)
        return self.backends[start:] + self.backends[:start]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            pass


class ServiceProxy:
    """Userspace TCP proxy for Service IPs, run on its own asyncio loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.listeners: dict[tuple[str, int], Listener] = {}
        self._thread = threading.Thread(target=self.loop.run_forever, name="svc-proxy", daemon=True)
        self._thread.start()

    def set_routes(self, routes: dict[tuple[str, int], list[Backend]]) -> None:
        """Make the listeners exactly ``routes`` (blocks until applied)."""
        asyncio.run_coroutine_threadsafe(self._apply(routes), self.loop).result(timeout=30)

    async def _apply(self, routes: dict[tuple[str, int], list[Backend]]) -> None:
        for key in [k for k in self.listeners if k not in routes]:
            self.listeners.pop(key).server.close()
        for key, backends in routes.items():
            listener = self.listeners.get(key)
            if listener is None:
                try:
                    server = await asyncio.start_server(
                        lambda r, w, k=key: self._serve(k, r, w), host=key[0], port=key[1], reuse_address=True)
                except OSError as e:
                    log.warning("service proxy cannot listen on %s:%d: %s", key[0], key[1], e)
                    continue
                listener = self.listeners[key] = Listener(server)
            listener.backends = list(backends)

    async def _serve(self, key: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener = self.listeners.get(key)
        upstream = None
        for backend in listener.order() if listener else []:
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(backend.ip, backend.port), CONNECT_TIMEOUT)
                break
            except (OSError, asyncio.TimeoutError):
                continue
        if upstream is None:  # no ready endpoint: refuse, as kube-proxy's REJECT does
            writer.close()
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    def close(self) -> None:
        try:
            self.set_routes({})
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


# ---- the address table and the hosts files ------------------------------------------------

class ServiceTable:
    """(namespace, name) -> Service IP, persisted; the per-namespace hosts files."""

    def __init__(self, state_dir: Path, octet: int, base_hosts: Path = Path("/etc/hosts")) -> None:
        self.dir = state_dir / "svcnet"
        self.hosts_dir = self.dir / "hosts"
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        self.octet = octet
        self.file = self.dir / "services.json"
        self._lock = threading.Lock()
        self.table: dict[tuple[str, str], str] = {}
        if self.file.exists():
            saved = json.loads(self.file.read_text())
            if saved.get("octet") == octet:
                self.table = {tuple(k.split("/", 1)): v for k, v in saved["services"].items()}  # type: ignore[misc]
        try:
            self.base = base_hosts.read_text()
        except OSError:
            self.base = "127.0.0.1 localhost\n"
        if not self.base.endswith("\n"):
            self.base += "\n"
        self._written: dict[str, set[str]] = {}

    def ip_for(self, namespace: str, name: str) -> str:
        with self._lock:
            key = (namespace, name)
            if key not in self.table:
                self.table[key] = next_free_ip(self.octet, set(self.table.values()))
                self._save()
            return self.table[key]

    def _save(self) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"octet": self.octet, "services": {
            f"{ns}/{name}": ip for (ns, name), ip in sorted(self.table.items())}}, indent=1))
        os.replace(tmp, self.file)

    def hosts_file(self, namespace: str) -> Path:
        """The hosts file for pods of ``namespace``, created if needed, brought up to date."""
        with self._lock:
            path = self.hosts_dir / namespace
            lines = hosts_lines(self.table, namespace)
            written = self._written.get(namespace)
            if written is None:  # first use by this agent: nothing has it mounted yet
                tmp = path.with_suffix(".tmp")
                tmp.write_text(self.base + "# Services (dev node agent)\n" + "".join(f"{ln}\n" for ln in lines))
                os.replace(tmp, path)
                self._written[namespace] = set(lines)
                return path
            new = [ln for ln in lines if ln not in written]
            if new:  # append only: a mounted file must never be seen half-rewritten
                with open(path, "a") as f:
                    f.write("".join(f"{ln}\n" for ln in new))
                written.update(new)
            return path

    def refresh_hosts(self) -> None:
        for namespace in list(self._written):
            self.hosts_file(namespace)
