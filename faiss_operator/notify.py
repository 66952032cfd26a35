"""Tell the serving pods of one index that its pointer changed (``POST /v1/refresh``).

Replicas poll the pointer every few seconds; that poll stays the fallback. After a
pointer write the operator also pokes each running serving pod it owns, so a promotion
reaches every replica in the time of one load rather than one load plus up to a poll
interval. The call carries nothing (no body, no credentials): it only makes the replica
re-read the pointer, which it does at a bounded rate. It is fire-and-forget on a
background thread with a short timeout: an unreachable pod never delays a reconcile, and
an error is logged at debug level only (the poll covers it).

Only pods whose owner is a ReplicaSet of this index's serving Deployment are called: a
pod that merely carries the labels is not the operator's to contact.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from indexops_api import constants as c
from indexops_api.layout import serving_name
from faiss_operator.kube import clients

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 1.0
MAX_PARALLEL = 8


def owned_serving_pods(pods: list[Any], index: str) -> list[tuple[str, str]]:
    """(name, pod IP) of running pods owned by a ReplicaSet of the index's serving Deployment."""
    prefix = f"{serving_name(index)}-"
    out = []
    for p in pods:
        owners = p.metadata.owner_references or []
        owned = any(o.kind == "ReplicaSet" and o.name.startswith(prefix) for o in owners)
        running = p.status and p.status.phase == "Running" and p.status.pod_ip and not p.metadata.deletion_timestamp
        if owned and running:
            out.append((p.metadata.name, p.status.pod_ip))
    return out


def _poke(pod: str, ip: str, port: int) -> bool:
    request = urllib.request.Request(f"http://{ip}:{port}/v1/refresh", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as resp:
            return 200 <= resp.status < 300
    except Exception as exc:  # older serving image (404), pod going away, ...: the poll covers it
        log.debug("refresh notification not delivered", extra={"pod": pod, "error": f"{type(exc).__name__}: {exc}"})
        return False


def notify_now(namespace: str, index: str, port: int) -> int:
    """Poke every owned running serving pod; returns how many acknowledged."""
    selector = f"{c.LABEL_INDEX}={index},{c.LABEL_COMPONENT}=serving"
    pods = owned_serving_pods(clients().core.list_namespaced_pod(namespace, label_selector=selector).items, index)
    if not pods:
        return 0
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pods))) as pool:
        return sum(pool.map(lambda p: _poke(p[0], p[1], port), pods))


def notify_pointer_written(namespace: str, index: str, port: int) -> None:
    """``notify_now`` on a daemon thread: the reconcile does not wait for the pods."""
    def run() -> None:
        try:
            acked = notify_now(namespace, index, port)
            log.debug("serving pods notified of a pointer write", extra={"index": f"{namespace}/{index}", "acknowledged": acked})
        except Exception as exc:  # listing pods failed: the replicas' poll still converges
            log.debug("cannot notify serving pods", extra={"index": f"{namespace}/{index}", "error": str(exc)})

    threading.Thread(target=run, name=f"notify-{index}", daemon=True).start()
