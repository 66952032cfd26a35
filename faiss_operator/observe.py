"""Observe: read the FaissIndex, its Job, its manifest, the pointer and serving state.

Thin I/O; everything it learns goes into an ``Observation`` for ``decide``. S3 problems
become ``storage_error`` (a status condition), never an exception out of the loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from indexops_api import constants as c
from indexops_api.layout import build_key, serving_name
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import FaissIndexStatus, Reason
from indexops_store import StorageError, StorageUnavailable
from faiss_operator.adoption import status_lost
from faiss_operator.adoption_reads import read_adoptable
from faiss_operator.artifacts import Artifacts, access_for, bounded, store_for
from faiss_operator.conditions import parse_time
from faiss_operator.config import OperatorConfig
from faiss_operator.images import image_refusal
from faiss_operator.jobstate import Failure, job_failure, job_state
from faiss_operator.kube import clients, is_not_found, to_dict
from faiss_operator.model import JobObservation, Observation, ServingObservation
from faiss_operator.storage_policy import Refusal
from faiss_operator import sharding
from faiss_operator.replicas import observe_replicas
from faiss_operator.drift import probe_due
from faiss_operator.sync import probe_sync


def _spec_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"spec.{where}: {err['msg']}")
    return "; ".join(parts)


def parse_spec(raw: dict[str, Any]) -> tuple[FaissIndexSpec | None, str | None]:
    try:
        return FaissIndexSpec.model_validate(raw), None
    except ValidationError as exc:
        return None, _spec_error(exc)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _failure(namespace: str, job: dict[str, Any]) -> Failure:
    name = job["metadata"]["name"]
    pods = clients().core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    return job_failure(job, [to_dict(p) for p in pods])


def _job_observation(job: Any, namespace: str, want_message: bool) -> JobObservation:
    annotations = job.metadata.annotations or {}
    raw = to_dict(job)
    name = job.metadata.name
    state, message, disrupted = job_state(raw), "", False
    if state == "Failed" and want_message:
        failure = _failure(namespace, raw)
        message, disrupted = failure.message, failure.disrupted
    number = annotations.get(c.ANNOTATION_BUILD_NUMBER, "")
    return JobObservation(
        name=name,
        version=annotations.get(c.ANNOTATION_VERSION, ""),
        build_key=annotations.get(c.ANNOTATION_BUILD_KEY, ""),
        state=state,
        start_time=_iso(job.status.start_time if job.status else None),
        completion_time=_iso(job.status.completion_time if job.status else None),
        message=message,
        number=int(number) if number.isdigit() else None,
        trigger=annotations.get(c.ANNOTATION_TRIGGER),
        disrupted=disrupted,
        terminating=job.metadata.deletion_timestamp is not None,
        suspended=bool(job.spec.suspend) if job.spec else False,
        uid=job.metadata.uid or "",
        stage=annotations.get(c.ANNOTATION_BUILD_STAGE),
        parent=annotations.get(c.ANNOTATION_PARENT_JOB),
    )


def observe_jobs(namespace: str, index: str, tracked: str | None) -> tuple[JobObservation, ...]:
    """Every builder Job of the index (by label); the failure message only for the tracked one."""
    selector = f"{c.LABEL_INDEX}={index},{c.LABEL_COMPONENT}=builder"
    jobs = clients().batch.list_namespaced_job(namespace, label_selector=selector).items
    observed = (_job_observation(j, namespace, want_message=tracked is not None and (
        j.metadata.name == tracked or (j.metadata.annotations or {}).get(c.ANNOTATION_PARENT_JOB) == tracked))
        for j in jobs)
    return sharding.combine(tuple(observed))  # a sharded build's stage Jobs count as one build


def observe_serving(namespace: str, index: str) -> ServingObservation:
    try:
        dep = clients().apps.read_namespaced_deployment(serving_name(index), namespace)
    except Exception as exc:
        if is_not_found(exc):
            return ServingObservation(exists=False)
        raise
    return ServingObservation(
        exists=True,
        desired_replicas=dep.spec.replicas or 0,
        ready_replicas=(dep.status.ready_replicas or 0) if dep.status else 0,
        uid=dep.metadata.uid or "",
    )


def _read_storage(at: Artifacts, status: FaissIndexStatus, jobs: tuple[JobObservation, ...], now: datetime,
                  config: OperatorConfig | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    fields["pointer"], fields["pointer_etag"] = at.store.read_pointer(at.pointer)
    fields["versions"] = at.versions()
    if status_lost(status):  # status was dropped (cluster loss, Retain + re-apply): rebuild it from storage
        fields["adoptable"] = read_adoptable(at, fields["pointer"], fields["versions"], build_key(at.spec))
    fields.update(at.manifest_to_gate(status, jobs))
    fields.update(at.pin_target(status))
    if probe_due(at.spec, status, jobs, now):
        fields["sync"] = probe_sync(at, status, at.namespace, now, config)
        fields["versions"] = at.with_files_checked(fields["versions"], status.current_version)
    return fields


def observe(body: dict[str, Any], now: datetime | None = None, config: OperatorConfig | None = None) -> Observation:
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    now = now or datetime.now(timezone.utc)
    status = FaissIndexStatus.model_validate(body.get("status") or {})
    spec, spec_error = parse_spec(body.get("spec") or {})
    if spec is not None and config is not None:  # refused like an invalid spec: nothing is created or replaced
        spec_error = image_refusal(spec, config.allowed_images, config.image)
        spec = None if spec_error else spec
    base = dict(name=name, namespace=namespace, uid=meta["uid"], generation=meta.get("generation", 0), now=now, status=status)
    if spec is None:
        return Observation(spec=None, spec_error=spec_error, **base)
    # Before anything is contacted: storage the platform did not grant is never touched.
    access = access_for(spec, namespace, name, config)
    if isinstance(access, Refusal):
        return Observation(spec=None, spec_error=access.message, spec_error_reason=Reason.STORAGE_NOT_ALLOWED, **base)

    last = status.last_build
    jobs = observe_jobs(namespace, name, last.job if last else None)
    serving = observe_serving(namespace, name) if spec.serving.enabled else None
    if serving is not None and serving.exists and status.current_version:
        fields_replicas = {"replicas": observe_replicas(namespace, name, spec.serving.port, serving.uid)}
    else:
        fields_replicas = {}
    annotations = meta.get("annotations") or {}
    fields: dict[str, Any] = {
        "created": parse_time(_iso(meta.get("creationTimestamp"))),
        "rebuild_request": annotations.get(c.ANNOTATION_REBUILD) or None,
        "promote_request": annotations.get(c.ANNOTATION_PROMOTE) or None,
        "abort_request": annotations.get(c.ANNOTATION_ABORT) or None,
    }
    try:
        at = Artifacts(store_for(spec, namespace, name, config), spec, namespace, name)
        fields.update(bounded(f"reading s3://{spec.storage.bucket}/{at.prefix}/", _read_storage, at, status, jobs, now, config,
                              key=(namespace, name, "observe")))
    except StorageError as exc:
        fields["storage_error"] = str(exc)
        fields["storage_unavailable"] = isinstance(exc, StorageUnavailable)
    return Observation(spec=spec, spec_error=None, jobs=jobs, serving=serving, **base, **fields, **fields_replicas)
