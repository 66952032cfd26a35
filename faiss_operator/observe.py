"""Observe: read the FaissIndex, its Job, its manifest, the pointer and serving state.

Thin I/O; everything it learns goes into an ``Observation`` for ``decide``. S3 problems
become ``storage_error`` (a status condition), never an exception out of the loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from indexops_api import constants as c
from indexops_api.layout import serving_name
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, FaissIndexStatus
from indexops_store import StorageError
from faiss_operator.artifacts import Artifacts, store_for
from faiss_operator.conditions import parse_time
from faiss_operator.kube import clients, is_not_found
from faiss_operator.model import JobObservation, Observation, ServingObservation
from faiss_operator import sharding
from faiss_operator.replicas import observe_replicas
from faiss_operator.sync import probe_sync, sync_due


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


def _last_line(text: str) -> str:
    """Termination messages may fall back to a log tail; the last line says what failed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _termination_message(namespace: str, job: str) -> str:
    pods = clients().core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp or datetime.min, reverse=True):
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            term = cs.state.terminated if cs.state else None
            if term is not None and term.exit_code != 0:
                return _last_line(term.message or "") or f"builder exited with code {term.exit_code} ({term.reason})"
    return ""


def _job_observation(job: Any, namespace: str, want_message: bool) -> JobObservation:
    annotations = job.metadata.annotations or {}
    conditions = {cond.type: cond for cond in ((job.status.conditions if job.status else None) or []) if cond.status == "True"}
    name = job.metadata.name
    if "Complete" in conditions:
        state, message = "Succeeded", ""
    elif "Failed" in conditions:
        state = "Failed"
        reason = conditions["Failed"].reason or "Failed"
        message = _termination_message(namespace, name) if want_message else ""
        if reason == "DeadlineExceeded":
            message = f"build exceeded activeDeadlineSeconds ({job.spec.active_deadline_seconds}s)" + (f": {message}" if message else "")
        elif not message:
            message = f"{reason}: {conditions['Failed'].message or ''}".strip()
    else:
        state, message = "Running", ""
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
    )


def _build_just_ended(status: FaissIndexStatus, jobs: tuple[JobObservation, ...]) -> bool:
    """The tracked build's Job ended and this pass may promote its version.

    A drift probe on such a pass would compare the source with the version serving *before*
    the promotion (the status read at the start of the pass): after a drift rebuild it would
    report the drift the new version just fixed and start yet another build. The next pass
    checks against the new version.
    """
    last = status.last_build
    if last is None or last.result != BuildResult.RUNNING:
        return False
    job = next((j for j in jobs if j.name == last.job), None)
    return job is None or job.state != "Running"


def observe(body: dict[str, Any], now: datetime | None = None) -> Observation:
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    now = now or datetime.now(timezone.utc)
    status = FaissIndexStatus.model_validate(body.get("status") or {})
    spec, spec_error = parse_spec(body.get("spec") or {})
    base = dict(name=name, namespace=namespace, uid=meta["uid"], generation=meta.get("generation", 0), now=now, status=status)
    if spec is None:
        return Observation(spec=None, spec_error=spec_error, **base)

    last = status.last_build
    jobs = observe_jobs(namespace, name, last.job if last else None)
    serving = observe_serving(namespace, name) if spec.serving.enabled else None
    if serving is not None and serving.exists and status.current_version:
        fields_replicas = {"replicas": observe_replicas(namespace, name, spec.serving.port)}
    else:
        fields_replicas = {}
    annotations = meta.get("annotations") or {}
    fields: dict[str, Any] = {
        "created": parse_time(_iso(meta.get("creationTimestamp"))),
        "rebuild_request": annotations.get(c.ANNOTATION_REBUILD) or None,
        "promote_request": annotations.get(c.ANNOTATION_PROMOTE) or None,
        "abort_request": annotations.get(c.ANNOTATION_ABORT) or None,
    }
    store = store_for(spec)
    at = Artifacts(store, spec, namespace, name)
    try:
        fields["pointer"], fields["pointer_etag"] = store.read_pointer(at.pointer)
        fields["versions"] = at.versions()
        fields.update(at.manifest_to_gate(status, jobs))
        fields.update(at.pin_target(status))
        if sync_due(spec, status, now) and not _build_just_ended(status, jobs):
            fields["sync"] = probe_sync(at, status, namespace, now)
            fields["versions"] = at.with_files_checked(fields["versions"], status.current_version)
    except StorageError as exc:
        fields["storage_error"] = str(exc)
    return Observation(spec=spec, spec_error=None, jobs=jobs, serving=serving, **base, **fields, **fields_replicas)
