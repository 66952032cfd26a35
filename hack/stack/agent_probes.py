"""Startup, readiness and liveness probes for the dev/test node agent.

Test/dev infrastructure only. Deployments only become Available, and EndpointSlices
only list a pod, when its Ready condition is true; running the pod's own probes
(httpGet against the pod IP, tcpSocket, exec in the container) gives the operator's
readiness logic the same signal it gets from a real kubelet.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3

from hack.stack.agent_runtime import Container, exec_in

Obj = dict[str, Any]
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def _port(container: Container, port: Any) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.spec.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"named port {port!r} not found in container ports")


def run_probe(probe: Obj, container: Container, pod_ip: str) -> tuple[bool, str]:
    """One probe attempt: (success, message)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in probe:
            h = probe["httpGet"]
            scheme = str(h.get("scheme") or "HTTP").lower()
            host = h.get("host") or pod_ip
            url = f"{scheme}://{host}:{_port(container, h.get('port'))}{h.get('path') or '/'}"
            headers = {x["name"]: x["value"] for x in h.get("httpHeaders") or []}
            with requests.Session() as s:
                s.trust_env = False
                r = s.get(url, headers=headers, timeout=timeout, verify=False,
                          allow_redirects=False)
            ok = 200 <= r.status_code < 400
            return ok, "" if ok else f"HTTP probe failed with statuscode: {r.status_code}"
        if "tcpSocket" in probe:
            t = probe["tcpSocket"]
            with socket.create_connection((t.get("host") or pod_ip, _port(container, t["port"])),
                                          timeout=timeout):
                return True, ""
        if "exec" in probe:
            code, out = exec_in(container, list(probe["exec"].get("command") or []), timeout)
            return code == 0, "" if code == 0 else f"exec probe exit code {code}: {out}"
        return False, f"probe type {sorted(probe)} not supported by the dev node agent"
    except (requests.RequestException, OSError, ValueError) as e:
        return False, f"probe error: {type(e).__name__}: {e}"


@dataclass
class ProbeState:
    """Threshold bookkeeping for one probe of one container run."""

    kind: str  # startup | readiness | liveness
    probe: Obj
    started_at: float = field(default_factory=time.monotonic)
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    result: bool | None = None  # None until a threshold is crossed
    message: str = ""

    def __post_init__(self) -> None:
        self.next_at = self.started_at + float(self.probe.get("initialDelaySeconds") or 0)

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, message: str, now: float) -> None:
        self.next_at = now + float(self.probe.get("periodSeconds") or 10)
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            need = int(self.probe.get("successThreshold") or 1)
            if self.successes >= need:
                self.result = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            self.message = message
            if self.failures >= int(self.probe.get("failureThreshold") or 3):
                self.result = False


class ContainerProbes:
    """Probes of one running container; call `tick()` often, read the verdicts."""

    def __init__(self, container: Container) -> None:
        spec = container.spec
        self.container = container
        self.states = {kind: ProbeState(kind, spec[f"{kind}Probe"])
                       for kind in ("startup", "readiness", "liveness") if spec.get(f"{kind}Probe")}

    def tick(self, pod_ip: str) -> str | None:
        """Run due probes, update ready/started; returns a kill reason on failure."""
        c, now = self.container, time.monotonic()
        startup = self.states.get("startup")
        if startup and startup.result is not True:
            if startup.due(now):
                startup.record(*run_probe(startup.probe, c, pod_ip), now=time.monotonic())
            if startup.result is False:
                return f"Startup probe failed: {startup.message}"
            if startup.result is not True:
                return None
            c.started = True
            now = time.monotonic()
            for kind in ("readiness", "liveness"):  # delays count from startup success
                if kind in self.states:
                    self.states[kind] = ProbeState(kind, self.states[kind].probe)
        live = self.states.get("liveness")
        if live and live.due(now):
            live.record(*run_probe(live.probe, c, pod_ip), now=time.monotonic())
            if live.result is False:
                return f"Liveness probe failed: {live.message}"
        ready = self.states.get("readiness")
        if ready is None:
            c.ready = c.started
        elif ready.due(now):
            ready.record(*run_probe(ready.probe, c, pod_ip), now=time.monotonic())
            if ready.result is not None:
                c.ready = ready.result
        return None
