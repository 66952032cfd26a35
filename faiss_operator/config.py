"""Operator configuration, read once from the environment (set by the Helm chart)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from dataclasses import dataclass, field

from indexops_api.constants import ENV_S3_ENDPOINT

from faiss_operator.storage_policy import StorageGrant, parse_grants

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


@dataclass(frozen=True)
class S3Limits:
    """What the operator reads from S3 at most (``indexops_store.bounded.Limits`` takes these fields)."""

    max_response_bytes: int = 4 * 1024 * 1024  # a pointer, a manifest or one listing page
    call_seconds: float = 10.0  # wall clock of one S3 call, a whole listing included
    max_list_pages: int = 100
    max_list_keys: int = 100_000


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "ghcr.io/faiss-index-operator/faiss-index-operator:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    resync_seconds: float = 30.0
    poll_seconds_while_building: float = 10.0
    # Safety-net resyncs of idle indexes share this budget (faiss_operator/pacing.py): with
    # N indexes each is resynced every max(resync_seconds, N / budget) seconds.
    idle_passes_per_second: float = 2.0
    port: int = 8080
    bind_host: str = "0.0.0.0"
    namespaces: tuple[str, ...] = ()  # (): all namespaces; else exactly these (the chart's RBAC is Roles there)
    # Leader election (faiss_operator/leader.py): only the Lease holder reconciles.
    leader_election: bool = True
    lease_name: str = "faiss-operator"
    lease_namespace: str = "default"  # the chart sets POD_NAMESPACE: the operator's own namespace
    lease_duration_seconds: int = 15
    pod_name: str = ""  # POD_NAME (downward API); the host name outside a pod
    # ServiceAccounts of the builder and serving pods, which live in each FaissIndex's own
    # namespace. Those pods never call the Kubernetes API: their token is never mounted and
    # no RBAC is bound, so the namespace's `default` account is enough. The chart sets a
    # dedicated name (and creates it where it can) when pods need an identity of their own,
    # e.g. for cloud IAM through account annotations; it must exist in every index namespace.
    builder_service_account: str = "default"
    serving_service_account: str = "default"
    # S3 the operator may touch (faiss_operator/storage_policy.py) and how much it reads from
    # it (indexops_store/bounded.py); the chart's storage.allowed / storage.limits.
    storage_grants: tuple[StorageGrant, ...] = (StorageGrant(endpoint=""),)
    default_endpoint: str | None = None  # where a spec without storage.endpoint goes, as make_client falls back (AWS when None)
    s3_limits: S3Limits = field(default_factory=S3Limits)
    credentials_dir: Path = Path("/var/run/faiss-operator/s3")  # one folder per grant's credentials Secret
    # Chart value allowedImages (faiss_operator/images.py): patterns build.image and
    # serving.image must match; empty allows any image.
    allowed_images: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "OperatorConfig":
        e = dict(os.environ if env is None else env)
        return cls(
            image=e.get("FAISS_OPERATOR_IMAGE", cls.image),
            image_pull_policy=e.get("FAISS_OPERATOR_IMAGE_PULL_POLICY", cls.image_pull_policy),
            resync_seconds=float(e.get("FAISS_OPERATOR_RESYNC_SECONDS", cls.resync_seconds)),
            poll_seconds_while_building=float(e.get("FAISS_OPERATOR_BUILD_POLL_SECONDS", cls.poll_seconds_while_building)),
            idle_passes_per_second=float(e.get("FAISS_OPERATOR_IDLE_PASSES_PER_SECOND") or cls.idle_passes_per_second),
            port=int(e.get("FAISS_OPERATOR_PORT", cls.port)),
            bind_host=e.get("POD_IP") or cls.bind_host,
            namespaces=watched_namespaces(e.get("FAISS_OPERATOR_NAMESPACES"), e.get("FAISS_OPERATOR_NAMESPACE")),
            leader_election=_flag(e.get("FAISS_OPERATOR_LEADER_ELECTION"), cls.leader_election),
            lease_name=e.get("FAISS_OPERATOR_LEASE_NAME") or cls.lease_name,
            lease_namespace=e.get("POD_NAMESPACE") or cls.lease_namespace,
            lease_duration_seconds=int(e.get("FAISS_OPERATOR_LEASE_DURATION_SECONDS") or cls.lease_duration_seconds),
            pod_name=e.get("POD_NAME") or socket.gethostname(),
            builder_service_account=e.get("FAISS_OPERATOR_BUILDER_SERVICE_ACCOUNT") or cls.builder_service_account,
            serving_service_account=e.get("FAISS_OPERATOR_SERVING_SERVICE_ACCOUNT") or cls.serving_service_account,
            storage_grants=parse_grants(e.get("FAISS_OPERATOR_STORAGE_ALLOWED"),
                                        e.get("FAISS_OPERATOR_STORAGE_ENDPOINT") or e.get(ENV_S3_ENDPOINT)),
            default_endpoint=e.get(ENV_S3_ENDPOINT) or None,
            s3_limits=_limits(e),
            credentials_dir=Path(e.get("FAISS_OPERATOR_S3_CREDENTIALS_DIR") or cls.credentials_dir),
            allowed_images=tuple(p.strip() for p in e.get("FAISS_OPERATOR_ALLOWED_IMAGES", "").split(",") if p.strip()),
        )


def watched_namespaces(*values: str | None) -> tuple[str, ...]:
    """Comma- or space-separated namespace lists, merged in order without duplicates."""
    names: list[str] = []
    for value in values:
        for name in (value or "").replace(",", " ").split():
            if name not in names:
                names.append(name)
    return tuple(names)


def _limits(e: dict[str, str]) -> S3Limits:
    d = S3Limits()
    return S3Limits(
        max_response_bytes=int(e.get("FAISS_OPERATOR_S3_MAX_OBJECT_BYTES") or d.max_response_bytes),
        call_seconds=float(e.get("FAISS_OPERATOR_S3_CALL_TIMEOUT_SECONDS") or d.call_seconds),
        max_list_pages=int(e.get("FAISS_OPERATOR_S3_MAX_LIST_PAGES") or d.max_list_pages),
        max_list_keys=int(e.get("FAISS_OPERATOR_S3_MAX_LIST_KEYS") or d.max_list_keys),
    )
