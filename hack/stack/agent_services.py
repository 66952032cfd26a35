"""Services for pods of the dev/test node agent: what the Service proxy routes where.

Test/dev infrastructure only (see svcnet.py for the mechanism). ``service_routes`` is
the pure part: from the Services and pods the agent lists, the (Service IP, port) ->
ready endpoints table, with endpoints and targetPorts resolved exactly as
agent_endpoints.py resolves them for the EndpointSlices it publishes. ``ServiceNet``
applies it on every EndpointSlice sync (pod events, debounced, and every 3 s).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from hack.stack.agent_endpoints import _target_port, desired_slice
from hack.stack.svcnet import Backend, ServiceProxy, ServiceTable

Obj = dict[str, Any]
log = logging.getLogger("node-agent")


def proxied(svc: Obj) -> bool:
    """Services the proxy serves: with a selector, a cluster IP (not headless), not ExternalName."""
    spec = svc.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"


def service_routes(services: list[Obj], pods: list[Obj], ip_for: Callable[[str, str], str],
                   node_name: str) -> dict[tuple[str, int], list[Backend]]:
    """(Service IP, Service port) -> ready backends (pod IP, resolved targetPort), TCP ports only."""
    routes: dict[tuple[str, int], list[Backend]] = {}
    for svc in services:
        if not proxied(svc):
            continue
        meta = svc["metadata"]
        want = desired_slice(svc, pods, node_name)
        if want is None:
            continue
        ready = [ep["addresses"][0] for ep in want["endpoints"] if ep["conditions"]["ready"]]
        members = [p for p in pods if p["metadata"]["namespace"] == meta["namespace"]
                   and p.get("status", {}).get("podIP") in ready]
        ip = ip_for(meta["namespace"], meta["name"])
        for sp in svc["spec"].get("ports") or []:
            if sp.get("protocol", "TCP") != "TCP":
                continue
            target = _target_port(sp, members)
            routes[(ip, int(sp["port"]))] = [Backend(a, target) for a in ready] if target is not None else []
    return routes


class ServiceNet:
    """Owns the Service table, the hosts files and the proxy of one node agent."""

    def __init__(self, state_dir: Path, octet: int, node_name: str) -> None:
        self.table = ServiceTable(state_dir, octet)
        self.proxy = ServiceProxy()
        self.node_name = node_name

    def hosts_file(self, namespace: str) -> Path:
        return self.table.hosts_file(namespace)

    def sync(self, services: list[Obj], pods: list[Obj]) -> None:
        routes = service_routes(services, pods, self.table.ip_for, self.node_name)
        self.table.refresh_hosts()  # names before listeners: a name never points nowhere for long
        self.proxy.set_routes(routes)

    def close(self) -> None:
        self.proxy.close()
