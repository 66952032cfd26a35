"""Pure builders of the Kubernetes objects a sharded FaissIndex adds (``spec.shards > 1``).

Build: the stage Jobs that follow the train Job (``faiss_operator.sharding``). The slice
Job is an Indexed Job: one pod per slice, ``JOB_COMPLETION_INDEX`` tells the pod its slice,
``backoffLimitPerIndex`` (``build.backoffLimit``, at least 1: a lost node must not cost the
whole build) retries a failed slice alone and ``maxFailedIndexes: 0`` fails the
build as soon as one slice has exhausted its retries (a version is all slices or none).
Stage Jobs are owned by the train Job, so whatever deletes it deletes them.

Serving: one Deployment + Service per shard (component ``serving-shard``, each pod loads
its shard of every version it is asked for) and the usual serving Deployment/Service
running the fan-out, so clients and the operator's replica reports keep talking to the
same Service. Shard URLs are the shard Services' cluster DNS names.
"""

from __future__ import annotations

import copy
from typing import Any

from indexops_api import constants as c
from indexops_api.layout import serving_name
from indexops_api.spec import FaissIndexSpec
from faiss_operator.config import OperatorConfig
from faiss_operator.model import JobToCreate, StageToCreate
from faiss_operator.objects import build_deployment, build_job, build_service, labels, owner_reference
from faiss_operator.sharding import SHARDS, stage_job_name

ENV_STAGE = "FAISS_BUILD_STAGE"
LABEL_SHARD = f"{c.GROUP}/shard"
SHARD_COMPONENT = "serving-shard"
_BUILDER_STAGE = {SHARDS: "shard", "finalize": "finalize"}


def _env(container: dict[str, Any], name: str, value: str) -> None:
    container["env"] = [e for e in container.get("env", []) if e["name"] != name] + [{"name": name, "value": value}]


def _annotate(job: dict[str, Any], values: dict[str, str]) -> None:
    job["metadata"]["annotations"].update(values)
    job["spec"]["template"]["metadata"]["annotations"].update(values)


def train_job(job: dict[str, Any]) -> dict[str, Any]:
    """The tracked builder Job of a sharded spec: it runs the train stage."""
    out = copy.deepcopy(job)
    _env(out["spec"]["template"]["spec"]["containers"][0], ENV_STAGE, "train")
    _annotate(out, {c.ANNOTATION_BUILD_STAGE: "train"})
    return out


def build_stage_job(*, index: str, namespace: str, uid: str, spec: FaissIndexSpec, stage: StageToCreate,
                    config: OperatorConfig, shards: int | None = None) -> dict[str, Any]:
    """``shards``: the count the train stage planned (``autoShards``); ``spec.shards`` otherwise."""
    name = stage_job_name(stage.parent, stage.stage)
    job = build_job(index=index, namespace=namespace, uid=uid, spec=spec, config=config,
                    job=JobToCreate(name=name, version=stage.version, build_key=stage.build_key, number=stage.number,
                                    trigger=stage.trigger))
    job["metadata"]["ownerReferences"] = [{
        "apiVersion": "batch/v1", "kind": "Job", "name": stage.parent, "uid": stage.parent_uid,
        "controller": True, "blockOwnerDeletion": True,
    }]
    _annotate(job, {c.ANNOTATION_BUILD_STAGE: stage.stage, c.ANNOTATION_PARENT_JOB: stage.parent})
    _env(job["spec"]["template"]["spec"]["containers"][0], ENV_STAGE, _BUILDER_STAGE[stage.stage])
    if stage.stage == SHARDS:
        body = job["spec"]
        body.pop("backoffLimit", None)  # per slice instead
        count = shards or spec.shards
        body.update(completions=count, parallelism=count, completionMode="Indexed",
                    backoffLimitPerIndex=max(1, spec.build.backoff_limit), maxFailedIndexes=0)
    return job


def shard_name(index: str, shard: int) -> str:
    base = serving_name(index)
    suffix = f"shard-{shard}"
    return f"{base[: 63 - len(suffix) - 1].rstrip('-')}-{suffix}"


def shard_urls(index: str, namespace: str, spec: FaissIndexSpec) -> list[str]:
    return [f"http://{shard_name(index, i)}.{namespace}.svc:80" for i in range(spec.shards)]


def build_shard_deployment(*, index: str, namespace: str, uid: str, spec: FaissIndexSpec, config: OperatorConfig,
                           shard: int) -> dict[str, Any]:
    dep = build_deployment(index=index, namespace=namespace, uid=uid, spec=spec, config=config)
    name = shard_name(index, shard)
    selector = {c.LABEL_INDEX: index, c.LABEL_COMPONENT: SHARD_COMPONENT, LABEL_SHARD: str(shard)}
    pod_labels = {**labels(index, SHARD_COMPONENT), LABEL_SHARD: str(shard)}
    dep["metadata"].update(name=name, labels=pod_labels)
    dep["spec"]["selector"] = {"matchLabels": selector}
    dep["spec"]["template"]["metadata"]["labels"] = pod_labels
    container = dep["spec"]["template"]["spec"]["containers"][0]
    _env(container, "FAISS_SHARD", str(shard))
    _env(container, "FAISS_SHARDS", str(spec.shards))
    return dep


def build_shard_service(*, index: str, namespace: str, uid: str, spec: FaissIndexSpec, shard: int) -> dict[str, Any]:
    svc = build_service(index=index, namespace=namespace, uid=uid, spec=spec)
    svc["metadata"].update(name=shard_name(index, shard), labels={**labels(index, SHARD_COMPONENT), LABEL_SHARD: str(shard)})
    svc["spec"]["selector"] = {c.LABEL_INDEX: index, c.LABEL_COMPONENT: SHARD_COMPONENT, LABEL_SHARD: str(shard)}
    return svc


def build_fanout_deployment(*, index: str, namespace: str, uid: str, spec: FaissIndexSpec,
                            config: OperatorConfig) -> dict[str, Any]:
    """The serving Deployment in fan-out mode: it loads nothing, so it needs little memory."""
    dep = build_deployment(index=index, namespace=namespace, uid=uid, spec=spec, config=config)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    _env(container, "FAISS_SERVING_MODE", "fanout")
    _env(container, "FAISS_SHARD_URLS", ",".join(shard_urls(index, namespace, spec)))
    if spec.serving.resources is None:
        container["resources"] = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    return dep


def sharded_serving_objects(*, index: str, namespace: str, uid: str, spec: FaissIndexSpec,
                            config: OperatorConfig) -> list[dict[str, Any]]:
    """Every serving object of a sharded spec, shards first (the fan-out waits for them anyway)."""
    objects: list[dict[str, Any]] = []
    for shard in range(spec.shards):
        objects.append(build_shard_deployment(index=index, namespace=namespace, uid=uid, spec=spec, config=config, shard=shard))
        objects.append(build_shard_service(index=index, namespace=namespace, uid=uid, spec=spec, shard=shard))
    objects.append(build_fanout_deployment(index=index, namespace=namespace, uid=uid, spec=spec, config=config))
    objects.append(build_service(index=index, namespace=namespace, uid=uid, spec=spec))
    return objects


def shard_selector(index: str) -> str:
    """Label selector of every shard Deployment/Service of one index (any shard count)."""
    return f"{c.LABEL_INDEX}={index},{c.LABEL_COMPONENT}={SHARD_COMPONENT}"


def new_layout_serves(*, desired: int, ready: int, reports: tuple[tuple[str | None, str | None], ...],
                      current: str | None) -> bool:
    """Every replica of the serving Deployment (fan-out or plain server) is ready and reports the current version.

    ``reports`` are (stable version, error) per replica asked. Pods of the old topology refuse
    a version of the new layout, so this holds only once the new layout answers queries.
    """
    if current is None or desired < 1 or ready < desired or len(reports) < desired:
        return False
    return all(error is None and stable == current for stable, error in reports)


def stale_shards(existing: list[tuple[str, str | None]], served: int) -> list[str]:
    """Names of shard objects (name, shard label) whose shard number the serving layout no longer has.

    ``served`` is the serving version's shard count; 1 means no shard objects at all. An
    object without a readable shard label is left alone (it is not one the operator made).
    """
    keep = served if served > 1 else 0
    out = []
    for name, shard in existing:
        if shard is not None and shard.isdigit() and int(shard) >= keep:
            out.append(name)
    return sorted(out)
