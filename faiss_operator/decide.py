"""The reconcile decision: (spec, status, observations, now) -> plan. Pure.

Level-based: the plan is recomputed from what is observed on every pass, so a missed or
duplicated event changes nothing. Status is the operator's memory of which build it
handled (``lastBuild.buildKey``); the Job, found by its deterministic name, is the source
of truth for a build in flight, so a restart adopts it instead of starting another.
"""

from __future__ import annotations

from indexops_api.layout import build_key, job_name, version_id
from indexops_api.pointer import ServingPointer
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import (
    BuildResult,
    ConditionType,
    EventReason,
    FaissIndexStatus,
    LastBuild,
    Reason,
)
from faiss_operator.conditions import phase_of, set_condition, timestamp
from faiss_operator.gates import gate_failures
from faiss_operator.model import Event, JobToCreate, Observation, Plan


def decide(obs: Observation) -> Plan:
    if obs.spec is None:
        return _invalid_spec(obs)
    spec = obs.spec
    status = obs.status
    events: list[Event] = []
    key = build_key(spec)
    last = status.last_build
    create: JobToCreate | None = None

    if last is None or last.build_key != key:
        last, create, events = _start_or_adopt(obs, key)
    if last.result == BuildResult.RUNNING:
        last, finished = _follow_job(obs, last)
        events += finished

    updates: dict = {"last_build": last}
    if last.result == BuildResult.FAILED and create is None and (status.last_build != last):
        updates["consecutive_failures"] = status.consecutive_failures + 1

    promote_events, pointer_fields = _promotion(obs, spec, last)
    events += promote_events
    updates.update(pointer_fields)
    new_status = status.model_copy(update=updates)
    new_status = _with_rollout(new_status, spec, events)

    pointer = _desired_pointer(obs, new_status)
    new_status = _with_conditions(obs, spec, new_status)
    return Plan(
        status=new_status,
        create_job=create,
        write_pointer=pointer if obs.storage_error is None else None,
        ensure_serving=spec.serving.enabled and new_status.current_version is not None,
        events=events,
    )


def _start_or_adopt(obs: Observation, key: str) -> tuple[LastBuild, JobToCreate | None, list[Event]]:
    """A new build key: adopt its Job if one exists (restart), else create it."""
    name = job_name(obs.name, key)
    if obs.job is not None and obs.job.build_key == key:
        adopted = LastBuild(
            job=obs.job.name,
            version=obs.job.version,
            build_key=key,
            result=BuildResult.RUNNING,
            start_time=obs.job.start_time,
        )
        return adopted, None, []
    version = version_id(obs.now, key)
    started = LastBuild(job=name, version=version, build_key=key, result=BuildResult.RUNNING, start_time=timestamp(obs.now))
    event = Event("Normal", EventReason.BUILD_STARTED, f"Job {name} builds version {version}")
    return started, JobToCreate(name=name, version=version, build_key=key), [event]


def _follow_job(obs: Observation, last: LastBuild) -> tuple[LastBuild, list[Event]]:
    job = obs.job
    if job is None or job.name != last.job:
        return last, []  # just created, or not yet visible: keep waiting
    if job.state == "Running":
        return last, []
    done = {"completion_time": job.completion_time or timestamp(obs.now)}
    if job.state == "Failed":
        message = job.message or "builder Job failed without a message"
        failed = last.model_copy(update={**done, "result": BuildResult.FAILED, "reason": Reason.BUILD_FAILED.value, "message": message})
        return failed, [Event("Warning", EventReason.BUILD_FAILED, f"version {last.version}: {message}")]
    if obs.storage_error is not None:
        return last, []  # cannot read the manifest now; retry on the next pass
    if obs.manifest is None:
        message = obs.manifest_error or "Job succeeded but wrote no manifest"
        failed = last.model_copy(
            update={**done, "result": BuildResult.FAILED, "reason": Reason.MANIFEST_INVALID.value, "message": message}
        )
        return failed, [Event("Warning", EventReason.BUILD_FAILED, f"version {last.version}: {message}")]
    succeeded = last.model_copy(update={**done, "result": BuildResult.SUCCEEDED, "reason": None, "message": None})
    m = obs.manifest
    message = (
        f"version {m.version}: {m.vectors} vectors, recall@{m.measurements.k}={m.measurements.recall_at_k:.4f}, "
        f"p99={m.measurements.latency_p99_ms:.2f}ms, built in {m.timings.total_seconds:.1f}s"
    )
    return succeeded, [Event("Normal", EventReason.BUILD_SUCCEEDED, message)]


def _promotion(obs: Observation, spec: FaissIndexSpec, last: LastBuild) -> tuple[list[Event], dict]:
    """Gate a finished build (again after a gate change) and make it current or candidate."""
    if last.result not in (BuildResult.SUCCEEDED, BuildResult.VALIDATION_FAILED) or obs.manifest is None:
        return [], {}
    status = obs.status
    if last.version in (status.current_version, status.candidate_version):
        return [], {}
    failures = gate_failures(obs.manifest, spec, last.version, serving_vectors=status.vectors)
    if failures:
        message = "; ".join(failures)
        if last.result == BuildResult.VALIDATION_FAILED and last.message == message:
            return [], {}
        rejected = last.model_copy(
            update={"result": BuildResult.VALIDATION_FAILED, "reason": Reason.VALIDATION_FAILED.value, "message": message}
        )
        kept = f"; {status.current_version} keeps serving" if status.current_version else ""
        return [Event("Warning", EventReason.VALIDATION_FAILED, f"version {last.version} rejected: {message}{kept}")], {
            "last_build": rejected
        }
    m = obs.manifest
    passed = last.model_copy(update={"result": BuildResult.SUCCEEDED, "reason": None, "message": None})
    fields: dict = {"last_build": passed, "consecutive_failures": 0}
    if spec.rollout.percent >= 100 or status.current_version is None:
        fields.update(_current_fields(obs, m))
        return [Event("Normal", EventReason.PROMOTED, f"version {m.version} now serves 100% (recall {m.measurements.recall_at_k:.4f})")], fields
    fields["candidate_version"] = m.version
    return [
        Event("Normal", EventReason.CANARY_STARTED, f"version {m.version} receives {spec.rollout.percent}% of queries")
    ], fields


def _current_fields(obs: Observation, m) -> dict:
    return {
        "current_version": m.version,
        "last_good_version": m.version,
        "candidate_version": None,
        "recall": round(m.measurements.recall_at_k, 6),
        "p99_latency_ms": round(m.measurements.latency_p99_ms, 3),
        "vectors": m.vectors,
        "size_bytes": m.size_bytes,
        "serving_since": timestamp(obs.now),
    }


def _with_rollout(status: FaissIndexStatus, spec: FaissIndexSpec, events: list[Event]) -> FaissIndexStatus:
    """A candidate whose rollout percent reached 100 becomes current."""
    if status.candidate_version is None:
        return status.model_copy(update={"rollout_percent": 100 if status.current_version else None})
    if spec.rollout.percent < 100:
        return status.model_copy(update={"rollout_percent": spec.rollout.percent})
    events.append(Event("Normal", EventReason.PROMOTED, f"candidate {status.candidate_version} promoted to 100%"))
    return status.model_copy(
        update={
            "current_version": status.candidate_version,
            "last_good_version": status.candidate_version,
            "candidate_version": None,
            "rollout_percent": 100,
        }
    )


def _desired_pointer(obs: Observation, status: FaissIndexStatus) -> ServingPointer | None:
    """The pointer serving must follow, or None when the stored one already says so."""
    if status.current_version is None:
        return None
    candidate = status.candidate_version
    percent = status.rollout_percent if candidate else 0
    current = obs.pointer
    if (
        current is not None
        and current.stable_version == status.current_version
        and current.candidate_version == candidate
        and current.candidate_percent == (percent or 0)
    ):
        return None
    return ServingPointer(
        generation=(current.generation + 1) if current else 1,
        stable_version=status.current_version,
        candidate_version=candidate,
        candidate_percent=percent or 0,
        updated_at=timestamp(obs.now),
    )


def _with_conditions(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> FaissIndexStatus:
    gen, now = obs.generation, obs.now
    conds = list(status.conditions)
    last = status.last_build

    serving = obs.serving
    if status.current_version is None:
        ready = (False, Reason.NO_VERSION, "no version has passed validation yet")
    elif not spec.serving.enabled:
        ready = (True, Reason.SERVING_DISABLED, f"version {status.current_version} is published; serving is managed elsewhere")
    elif serving is None or not serving.exists or serving.ready_replicas < max(1, serving.desired_replicas):
        have = serving.ready_replicas if serving else 0
        want = serving.desired_replicas if serving and serving.exists else spec.serving.replicas
        ready = (False, Reason.SERVING_UNAVAILABLE, f"{have}/{want} serving replicas ready for {status.current_version}")
    else:
        ready = (True, Reason.SERVING, f"version {status.current_version} serving on {serving.ready_replicas} replica(s)")
    conds = set_condition(conds, ConditionType.READY, ready[0], ready[1], ready[2], now, gen)

    if last is not None and last.result == BuildResult.RUNNING:
        progressing = (True, Reason.BUILDING, f"Job {last.job} is building version {last.version}")
    elif status.candidate_version is not None:
        progressing = (True, Reason.ROLLING_OUT, f"{status.candidate_version} receives {status.rollout_percent}% of queries")
    else:
        progressing = (False, Reason.IDLE, "nothing to build or roll out")
    conds = set_condition(conds, ConditionType.PROGRESSING, *progressing, now, gen)

    if obs.storage_error is not None:
        degraded = (True, Reason.STORAGE_ERROR, obs.storage_error)
    elif last is not None and last.result == BuildResult.FAILED:
        reason = Reason(last.reason) if last.reason in Reason._value2member_map_ else Reason.BUILD_FAILED
        degraded = (True, reason, last.message or "build failed")
    elif last is not None and last.result == BuildResult.VALIDATION_FAILED:
        degraded = (True, Reason.VALIDATION_FAILED, f"version {last.version} rejected: {last.message}")
    else:
        degraded = (False, Reason.AS_EXPECTED, "")
    conds = set_condition(conds, ConditionType.DEGRADED, *degraded, now, gen)

    updated = status.model_copy(update={"conditions": conds, "observed_generation": gen})
    return updated.model_copy(update={"phase": phase_of(updated)})


def _invalid_spec(obs: Observation) -> Plan:
    status = obs.status
    message = obs.spec_error or "invalid spec"
    previous = status.condition(ConditionType.DEGRADED)
    events = []
    if previous is None or previous.reason != Reason.INVALID_SPEC or previous.message != message[:1024]:
        events.append(Event("Warning", EventReason.INVALID_SPEC, message))
    conds = set_condition(list(status.conditions), ConditionType.DEGRADED, True, Reason.INVALID_SPEC, message, obs.now, obs.generation)
    updated = status.model_copy(update={"conditions": conds, "observed_generation": obs.generation})
    return Plan(status=updated.model_copy(update={"phase": phase_of(updated)}), events=events)
