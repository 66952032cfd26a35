"""Conditions and phase: what ``kubectl describe`` tells a person. Pure.

Ready: is a good version serving (kstatus: serving what it should be able to serve)?
Progressing: is something being built or rolled out, including replicas still loading a
newly promoted version while the previous one keeps answering (or waiting, and until when)?
Degraded: what is wrong right now? Stalled: have automatic builds stopped until a person acts?
"""

from __future__ import annotations

from dataclasses import dataclass

from indexops_api.spec import FaissIndexSpec
from indexops_api.status import (MAX_REPLICAS_SHOWN, BuildResult, ConditionType, EventReason, FaissIndexStatus, Reason,
                                 ReplicaVersions)
from faiss_operator.conditions import phase_of, set_condition
from faiss_operator.model import Event, Observation, Plan
from faiss_operator.promotion import current_missing, pin_problem
from faiss_operator.failures import REBUILD_HINT, classify
from faiss_operator.triggers import is_stalled, needs_a_fix

Verdict = tuple[bool, Reason, str]


def _ready(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> Verdict:
    serving, current = obs.serving, status.current_version
    pinned = " (pinned)" if status.pinned_version and status.pinned_version == current else ""
    if current is None:
        return False, Reason.NO_VERSION, "no version has passed validation yet"
    if not spec.serving.enabled:
        return True, Reason.SERVING_DISABLED, f"version {current}{pinned} is published; serving is managed elsewhere"
    if serving is None or not serving.exists or serving.ready_replicas < max(1, serving.desired_replicas):
        have = serving.ready_replicas if serving else 0
        want = serving.desired_replicas if serving and serving.exists else spec.serving.replicas
        return False, Reason.SERVING_UNAVAILABLE, f"{have}/{want} serving replicas ready for {current}{pinned}"
    reason = Reason.PINNED if pinned else Reason.SERVING
    converging = _replicas_converging(obs, status)
    if converging is not None and converging.refused:
        return False, Reason.REPLICAS_CONVERGING, converging.message  # a replica will not load what should serve
    if converging is not None:
        # Ready replicas answer with the version they had: serving is not interrupted while they
        # load the new one, so Ready stays True and Progressing carries the catch-up.
        served = sorted({r.stable for r in obs.replicas if r.error is None and r.stable})
        now_serving = f"; replicas answer with {', '.join(served)} until they have loaded it" if served else ""
        return True, reason, f"version {current}{pinned} promoted{now_serving} ({serving.ready_replicas} ready replica(s))"
    return True, reason, f"version {current}{pinned} serving on {serving.ready_replicas} replica(s) since {status.serving_since}"


@dataclass(frozen=True)
class Converging:
    """Not every reachable serving replica has loaded the versions status says serve."""

    message: str
    refused: bool  # some replica will not load an expected version (checksum, memory, ...)


def _replicas_converging(obs: Observation, status: FaissIndexStatus) -> Converging | None:
    """Not every reachable serving replica has loaded the versions status says serve."""
    reports = obs.replicas
    if not reports or all(r.error is not None for r in reports):
        return None  # replicas cannot be asked (e.g. a NetworkPolicy): Deployment readiness decides
    expected = (status.current_version, status.candidate_version)
    if obs.pointer is not None and (obs.pointer.stable_version, obs.pointer.candidate_version) != expected:
        # this pass writes a new pointer: replicas cannot have it yet; judge them by the stored one
        expected = (obs.pointer.stable_version, obs.pointer.candidate_version)
    on = sum(1 for r in reports if r.error is None and (r.stable, r.candidate) == expected)
    if on == len(reports):
        return None
    want = f"{expected[0]}" + (f" + candidate {expected[1]}" if expected[1] else "")
    refusals = sorted({f"{v}: {why}" for r in reports for v, why in r.refused.items() if v in expected})
    refused = f"; refused: {'; '.join(refusals)}" if refusals else ""
    return Converging(f"{on}/{len(reports)} serving replicas have loaded {want}{refused}", bool(refusals))


def _progressing(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> Verdict:
    last = status.last_build
    if last is not None and last.result == BuildResult.RUNNING:
        job = obs.job_named(last.job)
        if job is not None and job.state != "Running" and obs.storage_error is not None:
            # the Job ended but its manifest cannot be read: say so instead of "building"
            reason = Reason.STORAGE_UNAVAILABLE if obs.storage_unavailable else Reason.STORAGE_ERROR
            return True, reason, f"Job {last.job} finished ({job.state}); its result is read once storage answers: {obs.storage_error}"
        why = f" ({last.trigger.value})" if last.trigger else ""
        if job is not None and job.suspended:
            return True, Reason.BUILDING, f"Job {last.job} will build version {last.version}{why} once the replaced builder's pods are gone"
        return True, Reason.BUILDING, f"Job {last.job} is building version {last.version}{why}"
    if status.candidate_version is not None:
        verdict = f"; {status.analysis.verdict}" if status.analysis is not None and status.analysis.verdict and status.rollout_step is not None else ""
        return True, Reason.ROLLING_OUT, f"{status.candidate_version} receives {status.rollout_percent}% of queries{verdict}"
    converging = _replicas_converging(obs, status) if status.current_version and spec.serving.enabled else None
    if converging is not None:
        return True, Reason.REPLICAS_CONVERGING, converging.message
    failed = last is not None and last.result in (BuildResult.FAILED, BuildResult.VALIDATION_FAILED)
    if failed and not is_stalled(spec, status) and status.next_retry_time:
        n, limit = status.consecutive_failures, spec.build.max_consecutive_failures
        return False, Reason.WAITING_FOR_RETRY, f"build failed ({n}/{limit} in a row); next attempt at {status.next_retry_time}"
    if spec.suspend:
        return False, Reason.SUSPENDED, "suspended: no scheduled or drift-triggered builds"
    if is_stalled(spec, status):
        return False, Reason.IDLE, "no automatic builds while Stalled (see the Stalled condition)"
    nxt = (f"; next scheduled build at {status.next_scheduled_build} (it builds whether or not the source changed; "
           "sync.policy Rebuild builds on a change)") if status.next_scheduled_build else ""
    return False, Reason.IDLE, f"nothing to build or roll out{nxt}"


def _degraded(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> Verdict:
    last = status.last_build
    problem = pin_problem(obs, spec, status)
    if obs.storage_error is not None:
        serves = f"; {status.current_version} keeps serving" if status.current_version else ""
        return True, Reason.STORAGE_UNAVAILABLE if obs.storage_unavailable else Reason.STORAGE_ERROR, obs.storage_error + serves
    if problem is not None:
        return True, Reason.PINNED_VERSION_MISSING, f"{problem}; {status.current_version} keeps serving"
    if current_missing(obs, status):
        return True, Reason.ARTIFACTS_MISSING, f"serving version {status.current_version} is missing from storage"
    if last is not None and last.result == BuildResult.FAILED:
        reason = Reason(last.reason) if last.reason in Reason._value2member_map_ else Reason.BUILD_FAILED
        fix = classify(last.message)
        retry = "retrying will not help" if not fix.heals else (
            f"retry at {status.next_retry_time}" if status.next_retry_time and not is_stalled(spec, status) else "")
        tail = f" [to fix: {fix.remedy}{'; ' + retry if retry else ''}]"
        return True, reason, (last.message or "build failed") + tail
    if last is not None and last.result == BuildResult.VALIDATION_FAILED:
        return True, Reason.VALIDATION_FAILED, f"version {last.version} rejected: {last.message}"
    if last is not None and last.result == BuildResult.ROLLED_BACK:
        return True, Reason.ROLLED_BACK, f"candidate {last.version} rolled back: {last.message}; {status.current_version} serves"
    if status.drift and status.drift.startswith("sync failed"):
        return True, Reason.SYNC_FAILED, status.drift
    if status.drift:
        return True, Reason.SOURCE_DRIFT, f"source changed since {status.current_version}: {status.drift}"
    return False, Reason.AS_EXPECTED, ""


def _stalled(spec: FaissIndexSpec, status: FaissIndexStatus) -> Verdict:
    if not is_stalled(spec, status):
        return False, Reason.AS_EXPECTED, ""
    last = status.last_build
    if needs_a_fix(status) and status.consecutive_failures < spec.build.max_consecutive_failures:
        fix = classify(last.message if last else None)
        return True, Reason.CONFIGURATION_ERROR, (
            f"{fix.code}: retrying the same spec and source fails the same way, so no automatic builds. "
            f"To fix: {fix.remedy}; {REBUILD_HINT}")
    cause = f"; last: {last.message or last.reason}" if last is not None and last.reason else ""
    return True, Reason.TOO_MANY_FAILURES, (
        f"{status.consecutive_failures} consecutive failed builds{cause}. No automatic builds until the spec changes "
        "or a rebuild is requested (annotation faiss.indexops.io/rebuild-requested-at)"
    )


def replica_versions(obs: Observation, status: FaissIndexStatus) -> list[ReplicaVersions]:
    """Which pod serves which version (kept from the last pass when the replicas were not asked)."""
    if obs.replicas is None:
        return status.serving_replicas if status.current_version else []
    rows = [ReplicaVersions(pod=r.pod, stable=r.stable, candidate=r.candidate, error=r.error[:200] if r.error else None)
            for r in sorted(obs.replicas, key=lambda r: r.pod)]
    return rows[:MAX_REPLICAS_SHOWN]


def with_conditions(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> tuple[FaissIndexStatus, list[Event]]:
    gen, now = obs.generation, obs.now
    before = {c.type: c for c in status.conditions}
    conds = list(status.conditions)
    verdicts = {
        ConditionType.READY: _ready(obs, spec, status),
        ConditionType.PROGRESSING: _progressing(obs, spec, status),
        ConditionType.DEGRADED: _degraded(obs, spec, status),
        ConditionType.STALLED: _stalled(spec, status),
    }
    for ctype, (value, reason, message) in verdicts.items():
        conds = set_condition(conds, ctype, value, reason, message, now, gen)
    events = _transition_events(before, verdicts)
    updated = status.updated(conditions=conds, observed_generation=gen, serving_replicas=replica_versions(obs, status))
    return updated.updated(phase=phase_of(updated)), events


def _transition_events(before: dict, verdicts: dict[ConditionType, Verdict]) -> list[Event]:
    events: list[Event] = []
    degraded, old = verdicts[ConditionType.DEGRADED], before.get(ConditionType.DEGRADED)
    if degraded[1] == Reason.PINNED_VERSION_MISSING and (old is None or old.reason != Reason.PINNED_VERSION_MISSING):
        events.append(Event("Warning", EventReason.PINNED_VERSION_MISSING, degraded[2]))
    stalled, old = verdicts[ConditionType.STALLED], before.get(ConditionType.STALLED)
    if not stalled[0] and old is not None and old.status == "True":
        events.append(Event("Normal", EventReason.RECOVERED, "no longer Stalled: automatic builds resume"))
    return events


def invalid_spec_plan(obs: Observation) -> Plan:
    status = obs.status
    message = obs.spec_error or "invalid spec"
    reason = obs.spec_error_reason
    previous = status.condition(ConditionType.DEGRADED)
    events = []
    if previous is None or previous.reason != reason or previous.message != message[:1024]:
        events.append(Event("Warning", EventReason(reason.value), message))
    conds = set_condition(list(status.conditions), ConditionType.DEGRADED, True, reason, message, obs.now, obs.generation)
    conds = set_condition(conds, ConditionType.READY, *_ready_while_refused(status), obs.now, obs.generation)
    updated = status.updated(conditions=conds, observed_generation=obs.generation)
    return Plan(status=updated.updated(phase=phase_of(updated)), events=events)


def _ready_while_refused(status: FaissIndexStatus) -> Verdict:
    """Ready for a spec the operator will not act on: what was serving keeps serving (READY is never empty)."""
    if status.current_version:
        return True, Reason.SERVING, f"version {status.current_version} keeps serving; the spec is not acted on (see Degraded)"
    return False, Reason.NO_VERSION, "no version serves; the spec is not acted on (see Degraded)"
