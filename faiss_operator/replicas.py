"""Ask each serving pod what it has loaded and what it measured (``GET /v1/status``).

Thin I/O. The pods run in a tenant's namespace and answer whatever they like, so:

* only pods of the operator's own Deployment are asked: a pod counts when its controlling
  owner is a ReplicaSet whose controlling owner is that Deployment (by uid). Labels decide
  nothing: anyone who may create a pod can copy them.
* each answer is capped in size (``MAX_REPORT_BYTES``) and in wall-clock time
  (``TIMEOUT_SECONDS`` for the whole exchange, however slowly it trickles in), and parsed
  with the same model serving builds it from (``indexops_api.replica``); a pod whose
  answer is too big, too slow or not a report becomes a report with ``error`` (decide
  then falls back to Deployment readiness when none can be asked).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from indexops_api import constants as c
from indexops_api.replica import ReplicaStatus, VersionWindow
from indexops_store.bounded import fetch
from faiss_operator.kube import clients
from faiss_operator.model import ReplicaReport, VersionStats

TIMEOUT_SECONDS = 2.0  # the whole exchange, not each socket read
MAX_REPORT_BYTES = 256 * 1024  # a real report is a few KiB
MAX_PODS = 100  # spec.serving.replicas is at most 100


def _stats(window: VersionWindow) -> VersionStats:
    return VersionStats(
        role=window.role,
        requests=window.requests,
        errors=window.errors,
        latency_le_ms=tuple(window.latency_ms.le),
        latency_counts=tuple(window.latency_ms.counts),
        shadow_queries=window.shadow.queries,
        shadow_overlap_sum=window.shadow.overlap_sum,
    )


def parse_report(pod: str, body: bytes | str | dict[str, Any]) -> ReplicaReport:
    """A ``/v1/status`` answer as the operator's ``ReplicaReport`` (``error`` when it is not a valid report)."""
    try:
        report = ReplicaStatus.model_validate(body) if isinstance(body, dict) else ReplicaStatus.model_validate_json(body)
    except ValidationError as exc:
        return ReplicaReport(pod=pod, error=f"not a serving status report: {exc.error_count()} problem(s), first: "
                                            f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}")
    if "rollout" not in report.model_fields_set:  # an older serving program: it cannot say what it loaded
        return ReplicaReport(pod=pod, error="serving reports no rollout block (older serving image?)")
    rollout = report.rollout
    return ReplicaReport(
        pod=pod,
        generation=rollout.generation if rollout else None,
        stable=rollout.stable_version if rollout else None,
        candidate=rollout.candidate_version if rollout else None,
        versions={v: _stats(w) for v, w in rollout.versions.items()} if rollout else {},
        refused={f.version: f"{f.reason}: {f.message}".strip() for f in report.failures},
    )


def ask(pod: str, url: str) -> ReplicaReport:
    """One pod's report, bounded in size and total time; never raises."""
    try:
        answer = fetch("GET", url, max_bytes=MAX_REPORT_BYTES, seconds=TIMEOUT_SECONDS, connect_seconds=TIMEOUT_SECONDS)
    except Exception as exc:  # unreachable, too slow or too big: reported, never fatal
        return ReplicaReport(pod=pod, error=f"{type(exc).__name__}: {exc}")
    if answer.status != 200:
        return ReplicaReport(pod=pod, error=f"GET {url} answered HTTP {answer.status}")
    return parse_report(pod, answer.body)


def _controller_uid(obj: Any, kind: str) -> str | None:
    for ref in (obj.metadata.owner_references or []) if obj.metadata else []:
        if ref.controller and ref.kind == kind:
            return ref.uid
    return None


def owned_pods(pods: Iterable[Any], replicasets: Iterable[Any], deployment_uid: str) -> list[Any]:
    """Running pods whose ReplicaSet is controlled by the Deployment ``deployment_uid``. Pure."""
    ours = {rs.metadata.uid for rs in replicasets if _controller_uid(rs, "Deployment") == deployment_uid}
    return [
        p for p in pods
        if _controller_uid(p, "ReplicaSet") in ours
        and p.status and p.status.phase == "Running" and p.status.pod_ip and not p.metadata.deletion_timestamp
    ]


def observe_replicas(namespace: str, index: str, port: int, deployment_uid: str) -> tuple[ReplicaReport, ...]:
    selector = f"{c.LABEL_INDEX}={index},{c.LABEL_COMPONENT}=serving"  # narrows the listing; ownership decides
    api = clients()
    pods = api.core.list_namespaced_pod(namespace, label_selector=selector).items
    replicasets = api.apps.list_namespaced_replica_set(namespace, label_selector=selector).items
    running = owned_pods(pods, replicasets, deployment_uid)[:MAX_PODS]
    if not running:
        return ()
    with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
        return tuple(pool.map(lambda p: ask(p.metadata.name, f"http://{p.status.pod_ip}:{port}/v1/status"), running))
