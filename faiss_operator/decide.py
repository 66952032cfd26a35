"""The reconcile decision: (spec, status, observations, now) -> plan. Pure.

Level-based: the plan is recomputed from what is observed on every pass, so a missed or
duplicated event changes nothing. Status is the operator's memory (which build it started,
which schedule time and rebuild request it handled); Jobs, found by deterministic names,
are the source of truth for builds in flight, so a restart adopts a Job instead of
starting another.

A pass: follow the tracked build -> pin / gate and promote -> drift bookkeeping -> maybe
start a build (``triggers``) -> retention -> pointer -> conditions.
"""

from __future__ import annotations

from dataclasses import replace

from indexops_api.fingerprint import describe_drift
from indexops_api.layout import build_key, job_name, version_id
from indexops_api.rollout_plan import rollout_share
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, EventReason, FaissIndexStatus, LastBuild, Reason, Trigger
from faiss_operator.adoption import adopt, must_wait_for_storage
from faiss_operator.conditions import parse_time, timestamp
from faiss_operator.manual import apply_manual
from faiss_operator.model import Event, JobToCreate, Observation, Plan
from faiss_operator.pacing import requeue_for
from faiss_operator.promotion import apply_pin, desired_pointer, promote, with_rollout
from faiss_operator.refusal import handle_refusals
from faiss_operator.retention import versions_to_prune
from faiss_operator.rollout import advance_steps
from faiss_operator.sharding import next_stage
from faiss_operator.status_view import invalid_spec_plan, with_conditions
from faiss_operator.failures import REBUILD_HINT, classify, failure_code
from faiss_operator.triggers import TriggerDecision, choose_trigger, is_stalled, needs_a_fix, next_retry_time

HISTORY = 10  # finished builds kept in status.history
FINISHED_JOBS_KEPT = 3  # finished builder Jobs kept for `kubectl logs`; older ones are deleted
REPLACE_WAIT_SECONDS = 300  # a new build waits at most this long for a replaced builder's pods to be gone


def decide(obs: Observation) -> Plan:
    plan = invalid_spec_plan(obs) if obs.spec is None else _reconcile(obs)
    return replace(plan, requeue=requeue_for(obs.spec, plan, obs.storage_error, obs.now))


def _reconcile(obs: Observation) -> Plan:
    assert obs.spec is not None
    spec, status = obs.spec, obs.status
    events: list[Event] = []
    status = _recover_on_spec_change(obs, status)
    status, adopted = adopt(obs, spec, status, build_key(spec))  # a lost status, rebuilt from storage
    events += adopted

    failures_before = status.consecutive_failures
    status, finished = _follow_build(obs, status)
    events += finished
    status, pin_events = apply_pin(obs, spec, status)
    events += pin_events
    status, promoted = promote(obs, spec, status)
    events += promoted
    status, manual = apply_manual(obs, status)
    events += manual
    status = handle_refusals(obs, status, events)
    if status.consecutive_failures > failures_before:
        retry = None if is_stalled(spec, status) else next_retry_time(spec, status.consecutive_failures, obs.now)
        status = status.updated(next_retry_time=retry)
        events += _stall_event(spec, status)
    status, sync_events = _sync(obs, spec, status)
    events += sync_events

    key = build_key(spec)
    decision = TriggerDecision() if must_wait_for_storage(obs, status) else choose_trigger(obs, spec, status, key)
    status = status.updated(**decision.updates)
    events += decision.events
    create, delete_jobs = None, []
    if decision.trigger is not None:
        status, create, start_events, delete_jobs = _start_build(obs, status, key, decision.trigger, decision.replace_running)
        events += start_events
    delete_jobs += _old_finished_jobs(obs, status)
    if create is not None and _other_builders_alive(obs, create.name):
        create = replace(create, suspended=True)
        delete_jobs += [j.name for j in obs.jobs  # one build at a time: a stray builder must not block this one
                        if j.state == "Running" and j.name != create.name and not j.terminating and j.name not in delete_jobs]

    if spec.rollout.plan.progressive:
        status = advance_steps(obs, spec, status, events)
    else:
        status = with_rollout(obs, status, spec, events)
    share = rollout_share(spec.rollout.plan, status.current_version, status.candidate_version, status.rollout_step)
    status = status.updated(rollout_percent=share.newest_percent)  # status and pointer: one derivation
    prune = _prune(obs, spec, status)
    if prune:
        events.append(Event("Normal", EventReason.VERSIONS_PRUNED,
                            f"pruned {len(prune)} version(s) beyond keepVersions={spec.rollout.keep_versions}: {', '.join(prune)}"))
    if obs.versions is not None:
        status = status.updated(stored_versions=len(obs.versions) - len(prune))
    pointer = desired_pointer(obs, status, share)
    status, condition_events = with_conditions(obs, spec, status)
    events += condition_events
    resume = _resume(obs, status, events)
    stage = next_stage(obs, status) if create is None else None  # sharded builds: the Job chain advances
    return Plan(
        create_stage=stage,
        status=status,
        create_job=create,
        write_pointer=pointer if obs.storage_error is None else None,
        ensure_serving=spec.serving.enabled and status.current_version is not None,
        delete_jobs=delete_jobs,
        resume_job=resume,
        prune_versions=prune if obs.storage_error is None else [],
        events=events,
    )


def _recover_on_spec_change(obs: Observation, status: FaissIndexStatus) -> FaissIndexStatus:
    """A new spec generation may fix what made builds fail: retry at once, count afresh."""
    changed = status.observed_generation is not None and status.observed_generation != obs.generation
    if changed and status.consecutive_failures:
        return status.updated(consecutive_failures=0, next_retry_time=timestamp(obs.now))
    return status


def _stall_event(spec: FaissIndexSpec, status: FaissIndexStatus) -> list[Event]:
    n, limit = status.consecutive_failures, spec.build.max_consecutive_failures
    if needs_a_fix(status) and n < limit:
        fix = classify(status.last_build.message if status.last_build else None)
        return [Event("Warning", EventReason.STALLED, f"{fix.code} will fail again on retry: no automatic builds. "
                      f"To fix: {fix.remedy}; {REBUILD_HINT}")]
    if n == limit:
        return [Event("Warning", EventReason.STALLED, f"{n} consecutive failed builds: no more automatic builds until "
                      "the spec changes or a rebuild is requested (annotation faiss.indexops.io/rebuild-requested-at)")]
    if n < limit:
        return [Event("Normal", EventReason.RETRY_SCHEDULED, f"build failed ({n}/{limit}); next attempt at {status.next_retry_time}")]
    return []


def _follow_build(obs: Observation, status: FaissIndexStatus) -> tuple[FaissIndexStatus, list[Event]]:
    """Record the outcome of the tracked build once its Job has finished."""
    last = status.last_build
    if last is None or last.result != BuildResult.RUNNING:
        return status, []
    job = obs.job_named(last.job)
    if job is not None and job.state == "Running":
        return status, []
    completion = (job.completion_time if job else None) or timestamp(obs.now)
    done = {"completion_time": completion}
    if obs.storage_error is not None:
        return status, []  # cannot read the manifest now (even a failed Job may have published); retry on the next pass
    if job is not None and job.state == "Failed" and not _published(obs, last):
        message = job.message or "builder Job failed without a message"
        if job.disrupted:  # not the build's fault: record it, retry at once, do not count it toward Stalled
            failed = last.updated(**done, result=BuildResult.FAILED, reason=Reason.DISRUPTED.value, message=message)
            event = Event("Warning", EventReason.BUILD_FAILED, f"version {last.version}: {message}")
            return _uncounted_failure(status, failed, retry_at=timestamp(obs.now)), [event]
        code = failure_code(message) or Reason.BUILD_FAILED.value  # the builder's code: kubectl get -o wide shows it
        failed = last.updated(**done, result=BuildResult.FAILED, reason=code, message=message)
        event = Event("Warning", EventReason.BUILD_FAILED, f"version {last.version}: {message}")
        return _finished(status, failed, failed_now=True), [event]
    if obs.manifest is None or obs.manifest.version != last.version:
        if job is None:  # the Job vanished (deleted by hand, or TTL) and left no manifest
            message = f"builder Job {last.job} disappeared before it published a manifest"
        else:
            message = obs.manifest_error or "Job succeeded but wrote no manifest"
        failed = last.updated(**done, result=BuildResult.FAILED, reason=Reason.MANIFEST_INVALID.value, message=message)
        return _finished(status, failed, failed_now=True), [Event("Warning", EventReason.BUILD_FAILED, f"version {last.version}: {message}")]
    m = obs.manifest
    succeeded = last.updated(**done, result=BuildResult.SUCCEEDED, reason=None, message=None, warnings=m.warnings[:20])
    message = (
        f"version {m.version}: {m.vectors} vectors, recall@{m.measurements.k}={m.measurements.recall_at_k:.4f}, "
        f"p99={m.measurements.latency_p99_ms:.2f}ms, builder ran {m.timings.total_seconds:.1f}s (the Job's own time adds pod start-up)"
    )
    if job is not None and job.state == "Failed":  # the manifest is the commit: what happened after it does not matter
        message += f" (its pod then failed: {job.message or 'no message'}; the published version counts)"
    warned = [Event("Warning", EventReason.BUILD_WARNING, f"version {m.version}: {w}") for w in m.warnings[:20]]
    return _finished(status, succeeded, failed_now=False), [Event("Normal", EventReason.BUILD_SUCCEEDED, message), *warned]


def _published(obs: Observation, last: LastBuild) -> bool:
    """The tracked build's manifest exists: the version is committed whatever the pod's exit."""
    m = obs.manifest
    return m is not None and m.version == last.version and m.build_key == last.build_key


def _uncounted_failure(status: FaissIndexStatus, last: LastBuild, retry_at: str) -> FaissIndexStatus:
    """A failure that does not count (a disruption): retried at ``retry_at``, Stalled untouched."""
    return status.updated(last_build=last, next_retry_time=retry_at)


def _finished(status: FaissIndexStatus, last: LastBuild, failed_now: bool) -> FaissIndexStatus:
    updates: dict = {"last_build": last}
    if failed_now:
        updates["consecutive_failures"] = status.consecutive_failures + 1
    return status.updated(**updates)


def _sync(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> tuple[FaissIndexStatus, list[Event]]:
    """Record a drift check that ran on this pass."""
    sync = obs.sync
    if sync is None:
        return status, []
    updates: dict = {"last_sync_time": timestamp(obs.now)}
    events: list[Event] = []
    if sync.error is not None:
        if not status.drift or not status.drift.startswith("sync failed"):
            events.append(Event("Warning", EventReason.SYNC_FAILED, f"drift check failed: {sync.error}"))
        updates["drift"] = f"sync failed: {sync.error}"
    elif sync.recorded is not None and sync.probed is not None:
        drift = describe_drift(sync.recorded, sync.probed)
        if drift and drift != status.drift:
            rebuilds = spec.sync and spec.sync.policy.value == "Rebuild" and not spec.suspend and not spec.rollout.pinned_version
            action = "rebuilding" if rebuilds else "reporting only"
            events.append(Event("Warning", EventReason.SOURCE_DRIFT, f"source changed since the serving version: {drift}; {action}"))
        updates["drift"] = drift
    return status.updated(**updates), events


def _start_build(
    obs: Observation, status: FaissIndexStatus, key: str, trigger: Trigger, replace_running: bool
) -> tuple[FaissIndexStatus, JobToCreate | None, list[Event], list[str]]:
    """Start build number ``buildCount + 1``, or adopt its Job when a crashed pass already created it."""
    number = status.build_count + 1
    name = job_name(obs.name, key, number)
    previous = status.last_build
    delete: list[str] = []
    events: list[Event] = []
    if replace_running and previous is not None and previous.result == BuildResult.RUNNING:
        delete.append(previous.job)
        events.append(Event("Normal", EventReason.BUILD_REPLACED, f"Job {previous.job} stopped: superseded by a {trigger.value} build"))
        previous = previous.updated(result=BuildResult.FAILED, reason="Replaced",
                                    message=f"superseded by a {trigger.value} build", completion_time=timestamp(obs.now))
    history = ([previous] + status.history)[:HISTORY] if previous is not None else status.history
    existing = obs.job_named(name)
    create = None
    if existing is not None:
        version, start = existing.version, existing.start_time
    else:
        version, start = version_id(obs.now, key), timestamp(obs.now)
        create = JobToCreate(name=name, version=version, build_key=key, number=number, trigger=trigger.value)
        events.append(Event("Normal", EventReason.BUILD_STARTED, f"Job {name} builds version {version} ({trigger.value})"))
    started = LastBuild(job=name, version=version, build_key=key, result=BuildResult.RUNNING, number=number, trigger=trigger, start_time=start)
    updates: dict = {"last_build": started, "build_count": number, "history": history}
    if trigger in (Trigger.SPEC, Trigger.MANUAL):
        updates.update(consecutive_failures=0, next_retry_time=None)
    return status.updated(**updates), create, events, delete


def _other_builders_alive(obs: Observation, name: str) -> bool:
    """Another builder Job of the index may still have a pod (running, or deleted and terminating).

    A replaced build is deleted with foreground propagation, so its Job stays listed until
    its pods are gone; the new build's Job is created suspended until then, and the two
    builders never overlap on a node.
    """
    return any(j.name != name and j.state == "Running" for j in obs.jobs)


def _resume(obs: Observation, status: FaissIndexStatus, events: list[Event]) -> str | None:
    """The tracked Job, created suspended, once no other builder is alive (or after REPLACE_WAIT_SECONDS).

    The bound keeps a pod stuck terminating (an unreachable node) from holding builds forever:
    then, and only then, two builders may overlap, and an Event says so.
    """
    last = status.last_build
    if last is None or last.result != BuildResult.RUNNING:
        return None
    tracked = obs.job_named(last.job)
    if tracked is None or not tracked.suspended:
        return None
    if _other_builders_alive(obs, tracked.name):
        created = parse_time(last.start_time)
        if created is None or (obs.now - created).total_seconds() < REPLACE_WAIT_SECONDS:
            return None
        events.append(Event("Warning", EventReason.BUILD_STARTED, f"Job {tracked.name} starts although a replaced builder is "
                            f"still terminating after {REPLACE_WAIT_SECONDS}s (its pod may be on an unreachable node)"))
    return tracked.name


def _old_finished_jobs(obs: Observation, status: FaissIndexStatus) -> list[str]:
    """Finished builder Jobs beyond the newest few (the tracked one always stays)."""
    tracked = status.last_build.job if status.last_build else None
    finished = sorted((j for j in obs.jobs if j.state != "Running" and j.name != tracked), key=lambda j: j.number or 0, reverse=True)
    return [j.name for j in finished[FINISHED_JOBS_KEPT:]]


def _prune(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> list[str]:
    if obs.versions is None or obs.storage_error is not None:  # a partial read must not delete (or report deleting) anything
        return []
    last = status.last_build
    protected = [status.current_version, status.candidate_version, status.last_good_version, status.pinned_version,
                 spec.rollout.pinned_version, last.version if last else None]
    protected += [j.version for j in obs.jobs if j.state == "Running"]
    return versions_to_prune(obs.versions, spec.rollout.keep_versions, protected)
