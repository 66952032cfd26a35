"""Which version serves: gating a finished build, canary share, pinning, the pointer. Pure."""

from __future__ import annotations

from indexops_api.manifest import Manifest
from indexops_api.pointer import ServingPointer
from indexops_api.rollout_plan import Share
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, EventReason, FaissIndexStatus, Reason
from faiss_operator.conditions import timestamp
from indexops_api.gates import gate_failures
from faiss_operator.model import Event, Observation


def serving_fields(obs: Observation, m: Manifest) -> dict:
    """Status fields describing ``m`` as the version serving 100%."""
    return {
        "current_version": m.version,
        "candidate_version": None,
        "index_type": m.index_type.value,
        "recall": round(m.measurements.recall_at_k, 6),
        "recall_lower_bound": (round(m.measurements.recall_lower_bound, 6)
                               if m.measurements.recall_lower_bound is not None else None),
        "recall_queries": m.measurements.queries,
        "p99_latency_ms": round(m.measurements.latency_p99_ms, 3),
        "vectors": m.vectors,
        "size_bytes": m.size_bytes,
        "shards": m.sharding.shards if m.sharding is not None and not m.sharding.merged else 1,
        "shards_reason": m.sharding.auto_reason if m.sharding is not None else None,
        "serving_since": timestamp(obs.now),
        "drift": None,  # a fresh version was just built from the source
    }


def current_missing(obs: Observation, status: FaissIndexStatus) -> bool:
    if obs.versions is None or status.current_version is None:
        return False
    stored = obs.versions.get(status.current_version)
    return stored is None or not stored.complete


def promote(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> tuple[FaissIndexStatus, list[Event]]:
    """Gate the last finished build (again after a gate change); make it current or candidate."""
    last = status.last_build
    if last is None or last.result not in (BuildResult.SUCCEEDED, BuildResult.VALIDATION_FAILED) or obs.manifest is None:
        return status, []
    if obs.manifest.version != last.version or last.version in (status.current_version, status.candidate_version):
        return status, []
    failures = gate_failures(obs.manifest, spec, last.version, serving_vectors=status.vectors)
    if failures:
        message = "; ".join(failures)
        if last.result == BuildResult.VALIDATION_FAILED and last.message == message:
            return status, []
        rejected = last.updated(result=BuildResult.VALIDATION_FAILED, reason=Reason.VALIDATION_FAILED.value, message=message)
        kept = f"; {status.current_version} keeps serving" if status.current_version else ""
        updates: dict = {"last_build": rejected}
        if last.result == BuildResult.SUCCEEDED:  # counted once, when the build's verdict flips to rejected
            updates["consecutive_failures"] = status.consecutive_failures + 1
        event = Event("Warning", EventReason.VALIDATION_FAILED, f"version {last.version} rejected: {message}{kept}")
        return status.updated(**updates), [event]
    passed = last.updated(result=BuildResult.SUCCEEDED, reason=None, message=None)
    base = {"last_build": passed, "consecutive_failures": 0, "next_retry_time": None}
    if spec.rollout.pinned_version:
        return status.updated(**base), []  # held: the pin decides what serves
    m = obs.manifest
    plan = spec.rollout.plan
    if plan.at_once or status.current_version is None or current_missing(obs, status):
        fields = {**base, **serving_fields(obs, m), "last_good_version": m.version, "promoted_version": m.version}
        message = f"version {m.version} now serves 100% (recall {m.measurements.recall_at_k:.4f})"
        return status.updated(**fields), [Event("Normal", EventReason.PROMOTED, message)]
    fields = {**base, "candidate_version": m.version, "drift": None}  # drift checks now compare the candidate's source
    first = plan.steps[0].percent
    share = f"{first}% of queries (step 1/{len(plan.steps)})" if plan.progressive else f"{first}% of queries"
    event = Event("Normal", EventReason.CANARY_STARTED, f"version {m.version} receives {share}")
    return status.updated(**fields), [event]


def apply_pin(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> tuple[FaissIndexStatus, list[Event]]:
    """``rollout.pinnedVersion`` serves exactly that version; unpinning restores the last good one."""
    pin = spec.rollout.pinned_version
    if pin is None:
        if status.pinned_version is None:
            return status, []
        restore = obs.pinned_manifest
        fields: dict = {"pinned_version": None}
        if restore is not None and restore.version == status.last_good_version:
            fields.update(serving_fields(obs, restore), promoted_version=restore.version)
        message = f"unpinned from {status.pinned_version}; normal promotion resumes with {status.last_good_version}"
        return status.updated(**fields), [Event("Normal", EventReason.UNPINNED, message)]
    if status.current_version == pin and status.pinned_version == pin and status.candidate_version is None:
        return status, []
    if pin_problem(obs, spec, status) is not None:
        return status, []  # what serves stays; the Degraded condition says why
    m = obs.pinned_manifest
    assert m is not None
    fields = {**serving_fields(obs, m), "pinned_version": pin, "promoted_version": pin, "drift": status.drift}
    return status.updated(**fields), [Event("Normal", EventReason.PINNED, f"pinned to version {pin}: it serves 100%")]


def pin_problem(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> str | None:
    """Why the pinned version cannot serve, or None."""
    pin = spec.rollout.pinned_version
    if pin is None or (status.current_version == pin and status.pinned_version == pin):
        return None
    if pin == status.rolled_back_version:
        return f"pinned version {pin} cannot serve: {status.rollback_reason}"
    m = obs.pinned_manifest
    if m is None or m.version != pin:
        return f"pinned version {pin} cannot serve: {obs.pinned_error or 'its manifest was not found'}"
    if m.dimension != spec.dimension:
        return f"pinned version {pin} cannot serve: dimension {m.dimension} != spec.dimension {spec.dimension}"
    return None


def promoted_candidate(obs: Observation, status: FaissIndexStatus) -> dict:
    """Status fields for the candidate becoming current (its measurements when its manifest was read)."""
    candidate = status.candidate_version
    m = obs.manifest
    fields = serving_fields(obs, m) if m is not None and m.version == candidate else {
        "current_version": candidate, "candidate_version": None, "serving_since": timestamp(obs.now)}
    return {**fields, "last_good_version": candidate, "promoted_version": candidate}


def with_rollout(obs: Observation, status: FaissIndexStatus, spec: FaissIndexSpec, events: list[Event]) -> FaissIndexStatus:
    """A non-progressive plan: a candidate holds its share until the plan says at once (percent 100)."""
    if status.candidate_version is None or not spec.rollout.plan.at_once:
        return status
    events.append(Event("Normal", EventReason.PROMOTED, f"candidate {status.candidate_version} promoted to 100%"))
    return status.updated(**promoted_candidate(obs, status))


def desired_pointer(obs: Observation, status: FaissIndexStatus, share: Share) -> ServingPointer | None:
    """The pointer serving must follow (from ``share``, as status is), or None when the stored one already says so."""
    if status.current_version is None:
        return None
    candidate = status.candidate_version
    current = obs.pointer
    if (
        current is not None
        and current.stable_version == status.current_version
        and current.candidate_version == candidate
        and current.candidate_percent == share.candidate_percent
        and current.shadow_percent == share.shadow_percent
    ):
        return None
    return ServingPointer(
        generation=(current.generation + 1) if current else 1,
        stable_version=status.current_version,
        candidate_version=candidate,
        candidate_percent=share.candidate_percent,
        shadow_percent=share.shadow_percent,
        updated_at=timestamp(obs.now),
    )
