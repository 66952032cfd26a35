"""Ask each serving pod what it has loaded and what it measured (``GET /v1/status``).

Thin I/O: a pod that cannot be asked becomes a report with ``error`` (decide then falls
back to Deployment readiness when none can be asked). Parsing is defensive: a replica of
another version of the serving program may lack the rollout block.
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from indexops_api import constants as c
from faiss_operator.kube import clients
from faiss_operator.model import ReplicaReport, VersionStats

TIMEOUT_SECONDS = 2.0


def _stats(raw: dict[str, Any]) -> VersionStats:
    latency = raw.get("latencyMs") or {}
    shadow = raw.get("shadow") or {}
    return VersionStats(
        role=str(raw.get("role", "")),
        requests=int(raw.get("requests", 0)),
        errors=int(raw.get("errors", 0)),
        latency_le_ms=tuple(float(b) for b in latency.get("le", [])),
        latency_counts=tuple(int(n) for n in latency.get("counts", [])),
        shadow_queries=int(shadow.get("queries", 0)),
        shadow_overlap_sum=float(shadow.get("overlapSum", 0.0)),
    )


def parse_report(pod: str, body: dict[str, Any]) -> ReplicaReport:
    if "rollout" not in body:  # an older serving program: it cannot say what it loaded
        return ReplicaReport(pod=pod, error="serving reports no rollout block (older serving image?)")
    rollout = body.get("rollout") or {}
    return ReplicaReport(
        pod=pod,
        generation=rollout.get("generation"),
        stable=rollout.get("stableVersion"),
        candidate=rollout.get("candidateVersion"),
        versions={v: _stats(s) for v, s in (rollout.get("versions") or {}).items()},
        refused={str(f["version"]): f"{f.get('reason', 'load')}: {f.get('message', '')}".strip()
                 for f in body.get("failures") or [] if isinstance(f, dict) and f.get("version")},
    )


def _ask(pod: str, ip: str, port: int) -> ReplicaReport:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/v1/status", timeout=TIMEOUT_SECONDS) as resp:
            return parse_report(pod, json.loads(resp.read()))
    except Exception as exc:  # unreachable, not ready yet, or not JSON: reported, never fatal
        return ReplicaReport(pod=pod, error=f"{type(exc).__name__}: {exc}")


def observe_replicas(namespace: str, index: str, port: int) -> tuple[ReplicaReport, ...]:
    selector = f"{c.LABEL_INDEX}={index},{c.LABEL_COMPONENT}=serving"
    pods = clients().core.list_namespaced_pod(namespace, label_selector=selector).items
    running = [p for p in pods if p.status and p.status.phase == "Running" and p.status.pod_ip and not p.metadata.deletion_timestamp]
    if not running:
        return ()
    with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
        return tuple(pool.map(lambda p: _ask(p.metadata.name, p.status.pod_ip, port), running))
