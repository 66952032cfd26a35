"""The Kubernetes API clients the operator uses, created once.

In a pod this is the in-cluster service account (so the chart's RBAC is what limits
it); elsewhere the local kubeconfig.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import kubernetes
from kubernetes.client.rest import ApiException


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
