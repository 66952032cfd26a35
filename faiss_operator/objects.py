"""Pure builders of the Kubernetes objects the operator owns: ``build_*() -> dict``.

No client calls here, so every manifest can be unit-tested and diffed. Pods run
non-root with a read-only root filesystem; scratch space is an emptyDir. Builder and
serving pods run under the configured ServiceAccount without its token: they never call
the Kubernetes API.
"""

from __future__ import annotations

import json
from typing import Any

from indexops_api import constants as c
from indexops_api.build_request import BuildRequest
from indexops_api.layout import pointer_key, serving_name
from indexops_api.spec import FaissIndexSpec, Resources
from faiss_operator.config import OperatorConfig
from faiss_operator.model import JobToCreate

_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "fsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


# A pod taken away (eviction, preemption, drain: the DisruptionTarget condition) is replaced
# without counting toward backoffLimit (Kubernetes >= 1.26; needs restartPolicy Never).
# Other pod failures count as usual; a plain `kubectl delete pod` sets no DisruptionTarget,
# so the Job fails and ``jobstate`` recognises the deleted pod as a disruption instead.
POD_FAILURE_POLICY: dict[str, Any] = {
    "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}],
}


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(index: str, component: str) -> dict[str, str]:
    return {
        c.LABEL_PART_OF: c.PART_OF,
        c.LABEL_MANAGED_BY: "faiss-operator",
        c.LABEL_COMPONENT: component,
        c.LABEL_INDEX: index,
    }


def serving_selector(index: str) -> dict[str, str]:
    return {c.LABEL_INDEX: index, c.LABEL_COMPONENT: "serving"}


def _serving_metadata(index: str, namespace: str, uid: str) -> dict[str, Any]:
    return {
        "name": serving_name(index),
        "namespace": namespace,
        "labels": labels(index, "serving"),
        "ownerReferences": [owner_reference(index, uid)],
    }


def _resources(res: Resources | None, default: dict[str, dict[str, str]]) -> dict[str, Any]:
    if res is None:
        return default
    return res.model_dump(exclude_none=True)


def _storage_env(spec: FaissIndexSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    env: list[dict[str, Any]] = [{"name": "TMPDIR", "value": "/tmp"}]
    if spec.storage.endpoint:
        env.append({"name": c.ENV_S3_ENDPOINT, "value": spec.storage.endpoint})
    if spec.storage.region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": spec.storage.region})
    env_from = []
    if spec.storage.credentials_secret is not None:
        env_from.append({"secretRef": {"name": spec.storage.credentials_secret.name}})
    return env, env_from


def build_job(
    *, index: str, namespace: str, uid: str, spec: FaissIndexSpec, job: JobToCreate, config: OperatorConfig
) -> dict[str, Any]:
    request = BuildRequest(index=index, namespace=namespace, version=job.version, build_key=job.build_key, spec=spec)
    env, env_from = _storage_env(spec)
    env.append({"name": c.ENV_BUILD_REQUEST, "value": json.dumps(request.to_wire(), sort_keys=True)})
    if spec.source.postgres is not None:
        ref = spec.source.postgres.dsn_secret
        env.append({"name": c.ENV_POSTGRES_DSN, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    pod_labels = {**labels(index, "builder"), c.LABEL_BUILD_KEY: job.build_key[:16]}
    annotations = {
        c.ANNOTATION_VERSION: job.version,
        c.ANNOTATION_BUILD_KEY: job.build_key,
        c.ANNOTATION_BUILD_NUMBER: str(job.number),
        c.ANNOTATION_TRIGGER: job.trigger,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.name,
            "namespace": namespace,
            "labels": pod_labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(index, uid)],
        },
        "spec": {
            "backoffLimit": spec.build.backoff_limit,
            "activeDeadlineSeconds": spec.build.active_deadline_seconds,
            "podFailurePolicy": POD_FAILURE_POLICY,
            "suspend": job.suspended,  # resumed by the operator once a replaced build's pods are gone
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": config.builder_service_account,
                    "automountServiceAccountToken": False,  # no Kubernetes API access
                    "securityContext": _POD_SECURITY,
                    "containers": [
                        {
                            "name": "builder",
                            "image": spec.build.image or config.image,
                            "imagePullPolicy": config.image_pull_policy,
                            "command": ["faiss-index-builder"],
                            "env": env,
                            "envFrom": env_from,
                            "resources": _resources(
                                spec.build.resources,
                                {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
                            ),
                            "securityContext": _CONTAINER_SECURITY,
                            # File: a message is one the builder wrote; without one the operator reads the
                            # terminated state (OOMKilled, signal, exit code), never a log line.
                            "terminationMessagePolicy": "File",
                            "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
        },
    }


def build_deployment(*, index: str, namespace: str, uid: str, spec: FaissIndexSpec, config: OperatorConfig) -> dict[str, Any]:
    env, env_from = _storage_env(spec)
    env += [
        {"name": c.ENV_POD_IP, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": c.ENV_POINTER_BUCKET, "value": spec.storage.bucket},
        {"name": c.ENV_POINTER_KEY, "value": pointer_key(spec.storage.prefix, namespace, index, spec.horizon)},
        {"name": c.ENV_SERVING_PORT, "value": str(spec.serving.port)},
        {"name": c.ENV_CACHE_DIR, "value": "/cache"},
    ]
    selector = serving_selector(index)
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 2, "failureThreshold": 2}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _serving_metadata(index, namespace, uid),
        "spec": {
            "replicas": spec.serving.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(index, "serving")},
                "spec": {
                    "serviceAccountName": config.serving_service_account,
                    "automountServiceAccountToken": False,  # no Kubernetes API access
                    "securityContext": _POD_SECURITY,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "server",
                            "image": spec.serving.image or config.image,
                            "imagePullPolicy": config.image_pull_policy,
                            "command": ["faiss-index-server"],
                            "ports": [{"name": "http", "containerPort": spec.serving.port}],
                            "env": env,
                            "envFrom": env_from,
                            "readinessProbe": probe,
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "resources": _resources(
                                spec.serving.resources,
                                {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "4Gi"}},
                            ),
                            "securityContext": _CONTAINER_SECURITY,
                            "volumeMounts": [
                                {"name": "cache", "mountPath": "/cache"},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def build_service(*, index: str, namespace: str, uid: str, spec: FaissIndexSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _serving_metadata(index, namespace, uid),
        "spec": {
            "type": "ClusterIP",
            "selector": serving_selector(index),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
