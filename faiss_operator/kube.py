"""The Kubernetes API clients the operator uses, created once.

In a pod this is the in-cluster service account (so the chart's RBAC is what limits
it); elsewhere the local kubeconfig.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import kubernetes
from kubernetes.client.rest import ApiException

from indexops_api.api_status import status_body


@dataclass(frozen=True)
class Clients:
    core: kubernetes.client.CoreV1Api
    batch: kubernetes.client.BatchV1Api
    apps: kubernetes.client.AppsV1Api
    custom: kubernetes.client.CustomObjectsApi


@lru_cache(maxsize=1)
def clients() -> Clients:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    api = kubernetes.client.ApiClient()
    return Clients(
        core=kubernetes.client.CoreV1Api(api),
        batch=kubernetes.client.BatchV1Api(api),
        apps=kubernetes.client.AppsV1Api(api),
        custom=kubernetes.client.CustomObjectsApi(api),
    )


def to_dict(obj: object) -> dict:
    """A client object as the API server serialises it (camelCase), for the pure modules."""
    return kubernetes.client.ApiClient.sanitize_for_serialization(_SERIALIZER, obj)


_SERIALIZER = kubernetes.client.ApiClient.__new__(kubernetes.client.ApiClient)  # no pool: serialising needs none


def is_not_found(exc: Exception) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def is_conflict(exc: Exception) -> bool:
    return isinstance(exc, ApiException) and exc.status == 409


def is_namespace_terminating(exc: Exception) -> bool:
    """The API server refused to create an object because its namespace is being deleted.

    Expected while a tenant deletes a namespace that holds a FaissIndex: the namespace
    controller deletes the index next, so the reconcile loop just waits for that.
    """
    if not isinstance(exc, ApiException) or exc.status != 403:
        return False
    causes = (status_body(exc).get("details") or {}).get("causes") or []
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


def api_error_summary(exc: ApiException) -> str:
    """One line for a log: status, reason and the server's message, without HTTP headers."""
    message = status_body(exc).get("message") or ""
    return f"HTTP {exc.status} {exc.reason}" + (f": {message}" if message else "")
