"""A tracked build's outcome: record it in status once its Job has finished. Pure.

The manifest is the commit: a published version counts whatever the pod did after it; a
failure is counted toward ``Stalled`` unless the pod was taken away (a disruption, retried
at once). A new spec generation resets the count (it may fix what failed).
"""

from __future__ import annotations

from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, EventReason, FaissIndexStatus, LastBuild, Reason
from faiss_operator.conditions import timestamp
from faiss_operator.failures import REBUILD_HINT, classify, failure_code
from faiss_operator.model import Event, Observation
from faiss_operator.triggers import is_stalled, needs_a_fix, next_retry_time


def recover_on_spec_change(obs: Observation, status: FaissIndexStatus) -> FaissIndexStatus:
    """A new spec generation may fix what made builds fail: retry at once, count afresh."""
    changed = status.observed_generation is not None and status.observed_generation != obs.generation
    if changed and status.consecutive_failures:
        return status.updated(consecutive_failures=0, next_retry_time=timestamp(obs.now))
    return status


def stall_event(spec: FaissIndexSpec, status: FaissIndexStatus) -> list[Event]:
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


def follow_build(obs: Observation, status: FaissIndexStatus) -> tuple[FaissIndexStatus, list[Event]]:
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


def after_failures(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus,
                   failures_before: int) -> tuple[FaissIndexStatus, list[Event]]:
    """A pass that counted a new failure schedules the retry (or none, when stalled) and says so."""
    if status.consecutive_failures <= failures_before:
        return status, []
    retry = None if is_stalled(spec, status) else next_retry_time(spec, status.consecutive_failures, obs.now)
    status = status.updated(next_retry_time=retry)
    return status, stall_event(spec, status)
