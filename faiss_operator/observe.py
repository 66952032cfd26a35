"""Observe: read the FaissIndex, its Job, its manifest, the pointer and serving state.

Thin I/O; everything it learns goes into an ``Observation`` for ``decide``. S3 problems
become ``storage_error`` (a status condition), never an exception out of the loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from indexops_api import constants as c
from indexops_api.layout import build_key, job_name, manifest_key, pointer_key, serving_name
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, FaissIndexStatus
from indexops_store import ArtifactStore, StorageError, make_client
from faiss_operator.kube import clients, is_not_found
from faiss_operator.model import JobObservation, Observation, ServingObservation


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


def observe_job(namespace: str, name: str) -> JobObservation | None:
    try:
        job = clients().batch.read_namespaced_job(name, namespace)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    annotations = job.metadata.annotations or {}
    conditions = {cond.type: cond for cond in (job.status.conditions or []) if cond.status == "True"}
    if "Complete" in conditions:
        state, message = "Succeeded", ""
    elif "Failed" in conditions:
        state = "Failed"
        reason = conditions["Failed"].reason or "Failed"
        message = _termination_message(namespace, name)
        if reason == "DeadlineExceeded":
            message = f"build exceeded activeDeadlineSeconds ({job.spec.active_deadline_seconds}s)" + (f": {message}" if message else "")
        elif not message:
            message = f"{reason}: {conditions['Failed'].message or ''}".strip()
    else:
        state, message = "Running", ""
    return JobObservation(
        name=name,
        version=annotations.get(c.ANNOTATION_VERSION, ""),
        build_key=annotations.get(c.ANNOTATION_BUILD_KEY, ""),
        state=state,
        start_time=_iso(job.status.start_time),
        completion_time=_iso(job.status.completion_time),
        message=message,
    )


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


def store_for(spec: FaissIndexSpec) -> ArtifactStore:
    return ArtifactStore(make_client(spec.storage.endpoint, spec.storage.region), spec.storage.bucket)


def observe(body: dict[str, Any], now: datetime | None = None) -> Observation:
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    now = now or datetime.now(timezone.utc)
    status = FaissIndexStatus.model_validate(body.get("status") or {})
    spec, spec_error = parse_spec(body.get("spec") or {})
    base = dict(name=name, namespace=namespace, uid=meta["uid"], generation=meta.get("generation", 0), now=now, status=status)
    if spec is None:
        return Observation(spec=None, spec_error=spec_error, **base)

    key = build_key(spec)
    job = observe_job(namespace, job_name(name, key))
    serving = observe_serving(namespace, name) if spec.serving.enabled else None
    fields: dict[str, Any] = {}
    store = store_for(spec)
    prefix = spec.storage.prefix
    try:
        fields["pointer"], fields["pointer_etag"] = store.read_pointer(pointer_key(prefix, namespace, name, spec.horizon))
        version = _version_to_gate(status, job, key)
        if version is not None:
            try:
                fields["manifest"] = store.read_manifest(manifest_key(prefix, namespace, name, spec.horizon, version))
            except StorageError as exc:
                if not exc.not_found and "not a valid manifest" not in str(exc):
                    raise
                fields["manifest_error"] = str(exc)
    except StorageError as exc:
        fields["storage_error"] = str(exc)
    return Observation(spec=spec, spec_error=None, job=job, serving=serving, **base, **fields)


def _version_to_gate(status: FaissIndexStatus, job: JobObservation | None, key: str) -> str | None:
    """The version whose manifest decide() needs: a just-finished or a rejected build."""
    last = status.last_build
    if job is not None and job.state == "Succeeded" and job.build_key == key:
        if last is None or last.build_key != key or last.result in (BuildResult.RUNNING, BuildResult.VALIDATION_FAILED):
            return job.version
    if last is not None and last.build_key == key and last.result == BuildResult.VALIDATION_FAILED:
        return last.version
    return None
