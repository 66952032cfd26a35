"""Why (and whether) to start a build on this pass. Pure.

One build runs at a time. In order of precedence a build is started by:

1. ``Spec``: the build-relevant spec changed (a new build key); replaces a running build.
2. ``Manual``: a new value of the ``rebuild-requested-at`` annotation (waits for a running build).
3. ``Schedule``: a cron fire time passed (CronJob semantics: Forbid waits for a running
   build while ``startingDeadlineSeconds`` allows, Replace stops it; a run that is too late
   is skipped; many missed fire times start one build).
4. ``ArtifactsMissing``: the serving version's files vanished from storage.
5. ``Drift``: the drift check found the source changed (policy ``Rebuild``).
6. ``Retry``: the last build failed; after an exponential cooldown, until
   ``build.maxConsecutiveFailures`` failures make the index Stalled.

Automatic triggers (3-6) wait while the index is Stalled; ``suspend`` stops 3 and 5. The
level-triggered ones (4, 5) also wait out the cooldown after a failed build (the condition
persists, so they would otherwise rebuild at once on every pass), and stop while
``rollout.pinnedVersion`` is set (a pin holds every new build, so a rebuild cannot fix them).
A failed drift check is not drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from indexops_api.spec import ConcurrencyPolicy, FaissIndexSpec
from indexops_api.status import BuildResult, EventReason, FaissIndexStatus, Trigger
from faiss_operator.conditions import is_new_request, parse_time, timestamp
from faiss_operator.failures import classify
from faiss_operator.model import Event, Observation
from faiss_operator.schedule import due_run, next_fire_time


@dataclass
class TriggerDecision:
    trigger: Trigger | None = None
    replace_running: bool = False
    updates: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


def is_stalled(spec: FaissIndexSpec, status: FaissIndexStatus) -> bool:
    """No automatic builds: too many failures in a row, or one that retrying cannot fix."""
    if status.consecutive_failures >= spec.build.max_consecutive_failures:
        return True
    return needs_a_fix(status)


def needs_a_fix(status: FaissIndexStatus) -> bool:
    """The last build failed in a way the same spec and source reproduce (``failures``)."""
    last = status.last_build
    failed = status.consecutive_failures > 0 and last is not None and last.result == BuildResult.FAILED
    return failed and not classify(last.message).heals


def retry_delay_seconds(spec: FaissIndexSpec, failures: int) -> int:
    """Cooldown after ``failures`` consecutive failed builds: base * 2^(failures-1), capped."""
    b = spec.build
    return min(b.retry_backoff_seconds * 2 ** max(failures - 1, 0), b.max_retry_backoff_seconds)


def choose_trigger(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus, key: str) -> TriggerDecision:
    """``status`` is after following the tracked Job (so a build that just ended is not running)."""
    d = TriggerDecision()
    last = status.last_build
    running = last is not None and last.result == BuildResult.RUNNING
    now = obs.now

    if last is None or last.build_key != key:
        d.trigger, d.replace_running = Trigger.SPEC, running
    request = obs.rebuild_request
    if d.trigger is None and is_new_request(request, status.last_handled_rebuild) and not running:
        d.trigger = Trigger.MANUAL
        d.events.append(Event("Normal", EventReason.REBUILD_REQUESTED, f"rebuild requested at {request}"))

    stalled = is_stalled(spec, status) and d.trigger is None
    _schedule(obs, spec, status, running, stalled, d)
    automatic_ok = d.trigger is None and not running and not stalled
    failed = last is not None and last.result in (BuildResult.FAILED, BuildResult.VALIDATION_FAILED)
    retry_at = parse_time(status.next_retry_time) if failed else None
    level_ok = automatic_ok and spec.rollout.pinned_version is None and (retry_at is None or now >= retry_at)
    if level_ok and obs.versions is not None and status.current_version:
        stored = obs.versions.get(status.current_version)
        if stored is None or not stored.complete:
            d.trigger = Trigger.ARTIFACTS_MISSING
            d.events.append(Event("Warning", EventReason.ARTIFACTS_MISSING,
                                  f"serving version {status.current_version} has no manifest in storage; rebuilding"))
    if level_ok and d.trigger is None and _drift_rebuilds(spec, status):
        d.trigger = Trigger.DRIFT
    if automatic_ok and d.trigger is None and retry_at is not None and now >= retry_at:
        d.trigger = Trigger.RETRY

    if d.trigger is not None and is_new_request(request, status.last_handled_rebuild):
        d.updates["last_handled_rebuild"] = request  # the build starting now covers the request
    return d


def _drift_rebuilds(spec: FaissIndexSpec, status: FaissIndexStatus) -> bool:
    """Whether the drift recorded in ``status`` (not a failed check) calls for a Drift build."""
    drift = bool(status.drift) and not status.drift.startswith("sync failed")
    return drift and not spec.suspend and spec.sync is not None and spec.sync.policy.value == "Rebuild"


def _schedule(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus, running: bool, stalled: bool, d: TriggerDecision) -> None:
    if not spec.schedule:
        d.updates["next_scheduled_build"] = None
        return
    now = obs.now
    # Stalled and suspended indexes skip their fire times: show no next build that will not run.
    quiet = spec.suspend or stalled
    d.updates["next_scheduled_build"] = None if quiet else timestamp(next_fire_time(spec.schedule, spec.time_zone, now))
    if spec.suspend:
        return
    handled = parse_time(status.last_schedule_time) or obs.created or now
    due = due_run(spec.schedule, spec.time_zone, handled, now, spec.starting_deadline_seconds)
    if due is None:
        return
    fired = timestamp(due.at)
    if due.skipped:
        d.updates["last_schedule_time"] = fired
        d.events.append(Event("Warning", EventReason.SCHEDULE_MISSED,
                              f"scheduled build of {fired} skipped: {due.late_seconds:.0f}s late > startingDeadlineSeconds {spec.starting_deadline_seconds}"))
        return
    if d.trigger is not None or stalled:
        d.updates["last_schedule_time"] = fired  # the build starting now covers it / Stalled says why not
        return
    if running and spec.concurrency_policy == ConcurrencyPolicy.FORBID:
        return  # wait for the running build; the fire time stays due (within the deadline)
    d.trigger, d.replace_running = Trigger.SCHEDULE, running
    d.updates["last_schedule_time"] = fired
    d.events.append(Event("Normal", EventReason.BUILD_SCHEDULED, f"scheduled build of {fired} ({spec.schedule})"))


def next_retry_time(spec: FaissIndexSpec, failures: int, finished: datetime) -> str:
    return timestamp(finished + timedelta(seconds=retry_delay_seconds(spec, failures)))
