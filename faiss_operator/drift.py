"""Drift checks: when the source is probed, and what a probe's result does to status. Pure.

``observe`` asks ``probe_due`` before it probes (the probe itself is I/O, ``sync.probe_sync``);
``decide`` records the result with ``record_sync``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from indexops_api.fingerprint import describe_drift
from indexops_api.spec import FaissIndexSpec
from indexops_api.spec_ops import duration_seconds
from indexops_api.status import BuildResult, EventReason, FaissIndexStatus
from faiss_operator.conditions import parse_time, timestamp
from faiss_operator.model import Event, JobObservation, Observation


def next_sync_time(spec: FaissIndexSpec, status: FaissIndexStatus, now: datetime) -> datetime | None:
    """When the next drift check is due: every ``sync.interval`` once a version serves (now if never)."""
    if spec.sync is None or status.current_version is None:
        return None
    last = parse_time(status.last_sync_time)
    return now if last is None else last + timedelta(seconds=duration_seconds(spec.sync.interval))


def sync_due(spec: FaissIndexSpec, status: FaissIndexStatus, now: datetime) -> bool:
    """A drift check runs every ``sync.interval`` once a version serves."""
    due = next_sync_time(spec, status, now)
    return due is not None and now >= due


def build_just_ended(status: FaissIndexStatus, jobs: Iterable[JobObservation]) -> bool:
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


def probe_due(spec: FaissIndexSpec, status: FaissIndexStatus, jobs: Iterable[JobObservation], now: datetime) -> bool:
    """Probe the source on this pass: the interval passed and no build just ended (see ``build_just_ended``)."""
    return sync_due(spec, status, now) and not build_just_ended(status, tuple(jobs))


def record_sync(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> tuple[FaissIndexStatus, list[Event]]:
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
