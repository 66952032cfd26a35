"""Setting up a chaos scenario: an index that serves, a slow build to break, the operator's pods."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from chaos import GROUP
from tests.e2e.helpers import apply_doc, index_doc, index_status, patch_spec, request_rebuild, s3_source, wait_index_ready
from hack.localstack import OPERATOR_NAMESPACE, RELEASE, Cluster

DIM = 16
SMALL = ("chaos/small/{horizon}/vectors.npy", "chaos/small/{horizon}/ids.npy", 3000)
SLOW = ("chaos/slow/{horizon}/vectors.npy", "chaos/slow/{horizon}/ids.npy", 30000)
# HNSW with a high efConstruction over SLOW keeps a builder busy for tens of seconds here.
SLOW_PARAMETERS = {"m": 32, "efConstruction": 400, "efSearch": 64}


def small_source() -> dict:
    return s3_source(SMALL[0], SMALL[1])


def slow_change() -> dict:
    """A build-relevant spec change to the slow source: its builder runs for tens of seconds."""
    return {"indexType": "HNSW", "parameters": SLOW_PARAMETERS, "source": s3_source(SLOW[0], SLOW[1])}


def serving_index(cluster: Cluster, ns: str, name: str, replicas: int = 1, **spec) -> dict:
    """Apply a small Flat index and wait until it serves; returns its status."""
    doc = index_doc(cluster, name, DIM, small_source(), serving={"replicas": replicas}, **spec)
    apply_doc(cluster, ns, doc)
    return wait_index_ready(cluster, ns, name, timeout=240)


def rebuild(cluster: Cluster, ns: str, name: str) -> None:
    request_rebuild(cluster, ns, name, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def start_slow_build(cluster: Cluster, ns: str, name: str, **extra) -> None:
    patch_spec(cluster, ns, name, {**slow_change(), **extra})


def version_prefix(ns: str, name: str, version: str) -> str:
    return f"faiss-indexes/{ns}/{name}/6h/versions/{version}/"


def pod_version(pod: dict) -> str:
    return pod["metadata"]["annotations"][f"{GROUP}/version"]


def operator_pods(cluster: Cluster) -> list[dict]:
    pods = cluster.get_json("pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    return [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def operator_metrics_urls(cluster: Cluster) -> list[str]:
    """/metrics of every running operator pod (only the leader reconciles, so read them all)."""
    pods = cluster.wait_for("a running operator pod", lambda: operator_pods(cluster), 120)
    return [f"http://{p['status']['podIP']}:8081/metrics" for p in pods]


def elapsed(since: float) -> float:
    return round(time.monotonic() - since, 1)


def status(cluster: Cluster, ns: str, name: str) -> dict:
    return index_status(cluster, ns, name)
