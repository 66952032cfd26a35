"""EndpointSlices for Services whose pods run on the dev/test node agent.

Test/dev infrastructure only. Pods here get loopback IPs (127.0.0.N), and the API
server's validation rejects loopback addresses in IPv4 EndpointSlices and Endpoints
("may not be in the loopback range"), so the real endpointslice/endpoints
controllers can never publish them (they are disabled in this stack). This module
stands in for them: for every Service with a selector it keeps one EndpointSlice
with `addressType: FQDN` whose addresses are the pod IPs written as text (a valid
DNS-1123 name that every HTTP client connects to as an IP), with the usual
`kubernetes.io/service-name` label, ready/serving/terminating conditions, targetRefs
and ports resolved to the pods' container ports. Clients that list slices by
service name and build `http://<address>:<port>` work unchanged; clients that insist
on addressType IPv4 will not see them. There is no kube-proxy and no DNS; Service
names reach ready pods through agent_services.py/svcnet.py instead (stack-local
Service IPs, a TCP proxy and a hosts file mounted into each pod).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from hack.stack.kube_rest import ApiError, Kube

Obj = dict[str, Any]
log = logging.getLogger("node-agent")
MANAGED_BY = "faiss-local-node-agent"
SLICES = "/apis/discovery.k8s.io/v1"


def _ready(pod: Obj) -> bool:
    conds = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _target_port(svc_port: Obj, pods: list[Obj]) -> int | None:
    target = svc_port.get("targetPort", svc_port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    proto = svc_port.get("protocol", "TCP")
    for pod in pods:
        for c in pod["spec"].get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target and p.get("protocol", "TCP") == proto:
                    return int(p["containerPort"])
    return None


def desired_slice(svc: Obj, pods: list[Obj], node_name: str) -> Obj | None:
    """The slice the endpointslice controller would write, FQDN-typed; None if no selector."""
    meta, spec = svc["metadata"], svc.get("spec", {})
    selector = spec.get("selector") or {}
    if not selector or spec.get("type") == "ExternalName":
        return None
    publish_unready = bool(spec.get("publishNotReadyAddresses"))
    members = sorted(
        (p for p in pods if p["metadata"]["namespace"] == meta["namespace"]
         and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
         and p.get("status", {}).get("podIP")
         and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")),
        key=lambda p: tuple(int(x) for x in p["status"]["podIP"].split(".")))
    endpoints = []
    for p in members:
        terminating = bool(p["metadata"].get("deletionTimestamp"))
        serving = publish_unready or _ready(p)
        endpoints.append({
            "addresses": [p["status"]["podIP"]],
            "conditions": {"ready": serving and not terminating, "serving": serving,
                           "terminating": terminating},
            "nodeName": p["spec"].get("nodeName") or node_name,
            "targetRef": {"kind": "Pod", "namespace": p["metadata"]["namespace"],
                          "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}})
    ports = []
    for sp in spec.get("ports") or []:
        port = _target_port(sp, members)
        if port is not None:
            entry: Obj = {"port": port, "protocol": sp.get("protocol", "TCP")}
            if sp.get("name"):
                entry["name"] = sp["name"]
            if sp.get("appProtocol"):
                entry["appProtocol"] = sp["appProtocol"]
            ports.append(entry)
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": f"{meta['name']}-local", "namespace": meta["namespace"],
            "labels": {"kubernetes.io/service-name": meta["name"],
                       "endpointslice.kubernetes.io/managed-by": MANAGED_BY},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]},
        "addressType": "FQDN", "endpoints": endpoints, "ports": ports}


class EndpointSliceMirror:
    """Reconciles our slices on pod events (debounced) and every few seconds."""

    def __init__(self, kube: Kube, node_name: str, stop: threading.Event) -> None:
        self.kube, self.node_name, self.stop = kube, node_name, stop
        self.wake = threading.Event()
        # Called with (services, pods) on every sync, before the slices are written
        # (agent_services.ServiceNet routes Service IPs from the same listing).
        self.observers: list[Callable[[list[Obj], list[Obj]], None]] = []

    def poke(self) -> None:
        self.wake.set()

    def run(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(3)
            self.wake.clear()
            self.stop.wait(0.2)  # coalesce bursts of pod status updates
            try:
                self.reconcile()
            except Exception as e:  # noqa: BLE001 — keep mirroring through API hiccups
                log.warning("endpointslice sync failed: %s", e)

    def reconcile(self) -> None:
        services = self.kube.get("/api/v1/services")["items"]
        pods = self.kube.get("/api/v1/pods")["items"]
        for observe in self.observers:
            try:
                observe(services, pods)
            except Exception as e:  # noqa: BLE001 — the slices must still be written
                log.warning("service sync observer failed: %s", e)
        existing = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in self.kube.get(
            f"{SLICES}/endpointslices",
            labelSelector=f"endpointslice.kubernetes.io/managed-by={MANAGED_BY}")["items"]}
        for svc in services:
            want = desired_slice(svc, pods, self.node_name)
            if want is None:
                continue
            key = (want["metadata"]["namespace"], want["metadata"]["name"])
            have = existing.pop(key, None)
            path = f"{SLICES}/namespaces/{key[0]}/endpointslices"
            try:
                if have is None:
                    self.kube.post(path, want)
                elif (have.get("endpoints") or []) != want["endpoints"] or \
                        (have.get("ports") or []) != want["ports"]:
                    want["metadata"]["resourceVersion"] = have["metadata"]["resourceVersion"]
                    self.kube.put(f"{path}/{key[1]}", want)
            except ApiError as e:
                if e.status not in (403, 404, 409):  # namespace terminating / raced: next round
                    log.warning("endpointslice %s/%s: %s", key[0], key[1], e)
        for (ns, name) in existing:
            try:
                self.kube.delete(f"{SLICES}/namespaces/{ns}/endpointslices/{name}")
            except ApiError as e:
                if e.status != 404:
                    log.warning("deleting endpointslice %s/%s: %s", ns, name, e)
