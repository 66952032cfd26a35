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
from faiss_operator import metrics, shard_cleanup, shard_objects, shard_plan
from faiss_operator.artifacts import bounded, store_for
from faiss_operator.config import OperatorConfig
from faiss_operator.kube import clients, is_conflict, is_not_found
from indexops_api.status import FaissIndexStatus
from faiss_operator.model import Observation, Plan
from faiss_operator.notify import notify_pointer_written
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
        if spec.sharded:
            job = shard_objects.train_job(job)
        try:
            api.batch.create_namespaced_job(obs.namespace, job)
            metrics.BUILDS_STARTED.labels(obs.namespace, obs.name).inc()
        except Exception as exc:
            if not is_conflict(exc):  # already exists: an earlier pass created it
                raise
    if plan.create_stage is not None and spec is not None:
        shards = shard_plan.planned_shards(spec, obs, plan.create_stage, config) if spec.auto_shards else None
        stage = shard_objects.build_stage_job(index=obs.name, namespace=obs.namespace, uid=obs.uid, spec=spec,
                                              stage=plan.create_stage, config=config, shards=shards)
        try:
            api.batch.create_namespaced_job(obs.namespace, stage)
        except Exception as exc:
            if not is_conflict(exc):
                raise
    for name in plan.delete_jobs:
        try:  # Foreground: the Job stays (terminating) until its pods are gone, so the next build waits for it
            api.batch.delete_namespaced_job(name, obs.namespace, propagation_policy="Foreground")
        except Exception as exc:
            if not is_not_found(exc):
                raise
    if plan.resume_job is not None:
        api.batch.patch_namespaced_job(plan.resume_job, obs.namespace, {"spec": {"suspend": False}})
    if plan.write_pointer is not None and spec is not None:
        key = pointer_key(spec.storage.prefix, obs.namespace, obs.name, spec.horizon)
        store, pointer, etag = store_for(spec, obs.namespace, obs.name, config), plan.write_pointer, obs.pointer_etag
        bounded(f"writing s3://{spec.storage.bucket}/{key}", lambda: store.write_pointer(key, pointer, etag=etag),
                key=(obs.namespace, obs.name, "pointer"))
        log.info("pointer %s -> %s", key, plan.write_pointer.to_wire())
        if spec.serving.enabled:
            notify_pointer_written(obs.namespace, obs.name, spec.serving.port)
    if plan.ensure_serving and spec is not None:
        args = dict(index=obs.name, namespace=obs.namespace, uid=obs.uid, spec=spec)
        served = plan.status.shards or 1  # the topology of the version that serves, not of the one being built
        if served > 1:  # shard Deployments/Services and the fan-out in place of the single server
            args["spec"] = spec.updated(shards=served)
            for obj in shard_objects.sharded_serving_objects(**args, config=config):
                patch = api.apps.patch_namespaced_deployment if obj["kind"] == "Deployment" else api.core.patch_namespaced_service
                _apply(patch, obj["metadata"]["name"], obs.namespace, obj)
        else:
            dep = build_deployment(**args, config=config)
            _apply(api.apps.patch_namespaced_deployment, dep["metadata"]["name"], obs.namespace, dep)
            svc = build_service(**args)
            _apply(api.core.patch_namespaced_service, svc["metadata"]["name"], obs.namespace, svc)
        shard_cleanup.prune_stale_shards(obs, served)  # old layout's extra shards, once the new one serves
    if plan.prune_versions and spec is not None:
        store = store_for(spec, obs.namespace, obs.name, config)
        prefix = index_prefix(spec.storage.prefix, obs.namespace, obs.name, spec.horizon)
        for version in plan.prune_versions:
            bounded(f"pruning {version}", store.delete_version, prefix, version, key=(obs.namespace, obs.name, "prune"))
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
