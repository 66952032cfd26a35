"""Builder Jobs: starting the next build, one builder at a time, and cleaning up old Jobs. Pure.

Jobs are found by deterministic names (``layout.job_name``), so a pass that crashed after
creating one adopts it instead of starting another.
"""

from __future__ import annotations

from indexops_api.layout import job_name, version_id
from indexops_api.status import BuildResult, EventReason, FaissIndexStatus, LastBuild, Trigger
from faiss_operator.conditions import parse_time, timestamp
from faiss_operator.model import Event, JobToCreate, Observation

HISTORY = 10  # finished builds kept in status.history
FINISHED_JOBS_KEPT = 3  # finished builder Jobs kept for `kubectl logs`; older ones are deleted
REPLACE_WAIT_SECONDS = 300  # a new build waits at most this long for a replaced builder's pods to be gone


def start_build(
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


def other_builders_alive(obs: Observation, name: str) -> bool:
    """Another builder Job of the index may still have a pod (running, or deleted and terminating).

    A replaced build is deleted with foreground propagation, so its Job stays listed until
    its pods are gone; the new build's Job is created suspended until then, and the two
    builders never overlap on a node.
    """
    return any(j.name != name and j.state == "Running" for j in obs.jobs)


def resume_tracked(obs: Observation, status: FaissIndexStatus, events: list[Event]) -> str | None:
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
    if other_builders_alive(obs, tracked.name):
        created = parse_time(last.start_time)
        if created is None or (obs.now - created).total_seconds() < REPLACE_WAIT_SECONDS:
            return None
        events.append(Event("Warning", EventReason.BUILD_STARTED, f"Job {tracked.name} starts although a replaced builder is "
                            f"still terminating after {REPLACE_WAIT_SECONDS}s (its pod may be on an unreachable node)"))
    return tracked.name


def old_finished_jobs(obs: Observation, status: FaissIndexStatus) -> list[str]:
    """Finished builder Jobs beyond the newest few (the tracked one always stays)."""
    tracked = status.last_build.job if status.last_build else None
    finished = sorted((j for j in obs.jobs if j.state != "Running" and j.name != tracked), key=lambda j: j.number or 0, reverse=True)
    return [j.name for j in finished[FINISHED_JOBS_KEPT:]]
