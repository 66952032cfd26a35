"""Cron arithmetic with CronJob's semantics. Pure.

A run is *due* when a fire time lies after the last one handled and not after now. Only the
most recent such time counts, so an operator that was down across many fire times starts one
build, not one per missed time. ``startingDeadlineSeconds`` turns a run that is too late into
a skipped one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter


@dataclass(frozen=True)
class Due:
    at: datetime  # the fire time (UTC)
    late_seconds: float  # how long after the fire time ``now`` is
    skipped: bool  # past startingDeadlineSeconds: record it, do not build


def _zone(time_zone: str | None):
    return ZoneInfo(time_zone) if time_zone else timezone.utc


def latest_fire_time(schedule: str, time_zone: str | None, now: datetime) -> datetime:
    """The most recent fire time at or before ``now``, in UTC."""
    local = now.astimezone(_zone(time_zone)) + timedelta(seconds=1)
    prev = croniter(schedule, local.replace(microsecond=0)).get_prev(datetime)
    return prev.astimezone(timezone.utc)


def next_fire_time(schedule: str, time_zone: str | None, now: datetime) -> datetime:
    """The first fire time strictly after ``now``, in UTC."""
    local = now.astimezone(_zone(time_zone)).replace(microsecond=0)
    return croniter(schedule, local).get_next(datetime).astimezone(timezone.utc)


def due_run(
    schedule: str,
    time_zone: str | None,
    handled_until: datetime,
    now: datetime,
    starting_deadline_seconds: int | None,
) -> Due | None:
    """The run to start (or skip) now, or None when no fire time passed since ``handled_until``."""
    fire = latest_fire_time(schedule, time_zone, now)
    if fire <= handled_until:
        return None
    late = (now - fire).total_seconds()
    skipped = starting_deadline_seconds is not None and late > starting_deadline_seconds
    return Due(at=fire, late_seconds=late, skipped=skipped)
