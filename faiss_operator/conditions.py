"""Pure helpers to set conditions without losing their transition times."""

from __future__ import annotations

from datetime import datetime, timezone

from indexops_api.status import Condition, ConditionType, FaissIndexStatus, Reason

_ORDER = [ConditionType.READY, ConditionType.PROGRESSING, ConditionType.DEGRADED, ConditionType.STALLED]


def timestamp(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    """The inverse of ``timestamp`` (None stays None; unparsable counts as None)."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def set_condition(
    conditions: list[Condition],
    ctype: ConditionType,
    status: bool,
    reason: Reason,
    message: str,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """A new list with ``ctype`` set; the transition time moves only when status flips."""
    value = "True" if status else "False"
    previous = next((c for c in conditions if c.type == ctype), None)
    since = previous.last_transition_time if previous is not None and previous.status == value else timestamp(now)
    updated = Condition(
        type=ctype,
        status=value,
        reason=reason,
        message=message[:1024],
        last_transition_time=since,
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != ctype]
    return sorted(others + [updated], key=lambda c: _ORDER.index(c.type))


def phase_of(status: FaissIndexStatus) -> str:
    """One word for ``kubectl get``: the most important thing going on."""
    ready = status.condition(ConditionType.READY)
    progressing = status.condition(ConditionType.PROGRESSING)
    degraded = status.condition(ConditionType.DEGRADED)
    stalled = status.condition(ConditionType.STALLED)
    if stalled is not None and stalled.status == "True":
        return "Stalled"
    if progressing is not None and progressing.status == "True":
        return "Building" if progressing.reason == Reason.BUILDING else "RollingOut"
    if degraded is not None and degraded.status == "True":
        return "Degraded" if status.current_version else "Failed"
    if ready is not None and ready.status == "True":
        return "Serving"
    return "Deploying" if status.current_version else "Pending"


def is_new_request(value: str | None, handled: str | None) -> bool:
    """A request annotation (rebuild/promote/abort) that has not been acted on yet.

    Timestamps must be newer than the last one handled, so a GitOps sync that puts back an
    older value does not act again; other values only need to differ.
    """
    if not value or value == handled:
        return False
    new, old = parse_instant(value), parse_instant(handled)
    return new > old if new is not None and old is not None else True


def parse_instant(value: str | None) -> datetime | None:
    """Any ISO-8601 time (naive means UTC), or None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
