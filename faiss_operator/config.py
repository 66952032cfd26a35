"""Operator configuration, read once from the environment (set by the Helm chart)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "ghcr.io/faiss-index-operator/faiss-index-operator:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    resync_seconds: float = 30.0
    poll_seconds_while_building: float = 10.0
    port: int = 8080
    bind_host: str = "0.0.0.0"
    namespace: str | None = None  # None: all namespaces

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "OperatorConfig":
        e = dict(os.environ if env is None else env)
        return cls(
            image=e.get("FAISS_OPERATOR_IMAGE", cls.image),
            image_pull_policy=e.get("FAISS_OPERATOR_IMAGE_PULL_POLICY", cls.image_pull_policy),
            resync_seconds=float(e.get("FAISS_OPERATOR_RESYNC_SECONDS", cls.resync_seconds)),
            poll_seconds_while_building=float(e.get("FAISS_OPERATOR_BUILD_POLL_SECONDS", cls.poll_seconds_while_building)),
            port=int(e.get("FAISS_OPERATOR_PORT", cls.port)),
            bind_host=e.get("POD_IP") or cls.bind_host,
            namespace=e.get("FAISS_OPERATOR_NAMESPACE") or None,
        )
