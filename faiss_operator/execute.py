"""Execute a plan: create the Job, write the pointer, apply serving, patch status, post Events.

Order matters for safety: the pointer is written (conditionally) before status says a
version serves, and status is written last, so a crash at any step is repaired by the
next reconcile, which recomputes the same plan from what it observes.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from indexops_api import constants as c
from indexops_api.layout import index_prefix, pointer_key
from faiss_operator import metrics
from faiss_operator.artifacts import store_for
from faiss_operator.config import OperatorConfig
from faiss_operator.kube import clients, is_conflict, is_not_found
from indexops_api.status import FaissIndexStatus
from faiss_operator.model import Observation, Plan
from faiss_operator.objects import build_deployment, build_job, build_service

FIELD_MANAGER = "faiss-operator"
log = logging.getLogger(__name__)


def _apply(patch_fn, name: str, namespace: str, body: dict[str, Any]) -> None:
    """Server-side apply: creates or converges the object, owning only our fields."""
    patch_fn(name, namespace, body, field_manager=FIELD_MANAGER, force=True, _content_type="application/apply-patch+yaml")


def execute(plan: Plan, obs: Observation, body: dict[str, Any], config: OperatorConfig) -> None:
    spec = obs.spec
    api = clients()
    if plan.create_job is not None and spec is not None:
        job = build_job(index=obs.name, namespace=obs.namespace, uid=obs.uid, spec=spec, job=plan.create_job, config=config)
        try:
            api.batch.create_namespaced_job(obs.namespace, job)
            metrics.BUILDS_STARTED.labels(obs.namespace, obs.name).inc()
        except Exception as exc:
            if not is_conflict(exc):  # already exists: an earlier pass created it
                raise
    for name in plan.delete_jobs:
        try:  # Background: the Job goes at once, its pods follow (a replaced build stops)
            api.batch.delete_namespaced_job(name, obs.namespace, propagation_policy="Background")
        except Exception as exc:
            if not is_not_found(exc):
                raise
    if plan.write_pointer is not None and spec is not None:
        key = pointer_key(spec.storage.prefix, obs.namespace, obs.name, spec.horizon)
        store_for(spec).write_pointer(key, plan.write_pointer, etag=obs.pointer_etag)
        log.info("pointer %s -> %s", key, plan.write_pointer.to_wire())
    if plan.ensure_serving and spec is not None:
        args = dict(index=obs.name, namespace=obs.namespace, uid=obs.uid, spec=spec)
        dep = build_deployment(**args, config=config)
        _apply(api.apps.patch_namespaced_deployment, dep["metadata"]["name"], obs.namespace, dep)
        svc = build_service(**args)
        _apply(api.core.patch_namespaced_service, svc["metadata"]["name"], obs.namespace, svc)
    if plan.prune_versions and spec is not None:
        store = store_for(spec)
        prefix = index_prefix(spec.storage.prefix, obs.namespace, obs.name, spec.horizon)
        for version in plan.prune_versions:
            store.delete_version(prefix, version)
    new_status = status_body(plan.status)
    if new_status != status_body(obs.status):
        api.custom.patch_namespaced_custom_object_status(
            c.GROUP, c.VERSION, obs.namespace, c.PLURAL, obs.name, {"status": new_status},
            _content_type="application/merge-patch+json",
        )
    for event in plan.events:
        kopf.event(body, type=event.type, reason=event.reason.value, message=event.message[:1024])
        log.info("%s/%s %s: %s", obs.namespace, obs.name, event.reason.value, event.message)
    metrics.record(plan.status, obs.namespace, obs.name, [e.reason.value for e in plan.events])


def status_body(status: FaissIndexStatus) -> dict:
    """The status merge patch: None deletes a field; so does an empty list (no empty `History:` in describe)."""
    return {k: (None if v == [] else v) for k, v in status.model_dump(mode="json", by_alias=True).items()}
