"""What ``faissctl status`` reports about one FaissIndex, as plain data. Pure.

Built from the object and its Events as the API server returns them (camelCase dicts),
deliberately without the strict pydantic models: a status written by a newer operator
(a new field, a new reason) must still be shown, not rejected. The same dict is printed
as JSON/YAML and rendered for people by ``status_text``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from faissctl.output import parse_time

DEFAULT_MAX_FAILURES = 3  # spec.build.maxConsecutiveFailures' default (indexops_api.spec_ops.Build)
EVENT_LIMIT = 10


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), {})


def summarize(obj: dict[str, Any], events: list[dict[str, Any]] | None = None, limit: int = EVENT_LIMIT) -> dict[str, Any]:
    """The status report of one FaissIndex (``events=None``: not fetched, e.g. in lists)."""
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    limit_failures = _get(spec, "build", "maxConsecutiveFailures") or DEFAULT_MAX_FAILURES
    failures = int(status.get("consecutiveFailures") or 0)
    stalled = condition(status, "Stalled").get("status") == "True"
    last = status.get("lastBuild")
    report: dict[str, Any] = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "created": meta.get("creationTimestamp"),
        "generation": meta.get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "phase": status.get("phase") or "Pending",
        "ready": condition(status, "Ready").get("status") or "Unknown",
        "horizon": spec.get("horizon"),
        "indexType": status.get("indexType") or spec.get("indexType", "HNSW"),
        "specIndexType": spec.get("indexType", "HNSW"),
        "serving": {
            "version": status.get("currentVersion"),
            "since": status.get("servingSince"),
            "recall": status.get("recall"),
            "recallQueries": status.get("recallQueries"),
            "replicas": status.get("servingReplicas") or [],
            "k": _get(spec, "validation", "k") or 10,
            "p99LatencyMs": status.get("p99LatencyMs"),
            "vectors": status.get("vectors"),
            "sizeBytes": status.get("sizeBytes"),
            "rolloutPercent": status.get("rolloutPercent"),
            "candidate": status.get("candidateVersion"),
            "pinned": status.get("pinnedVersion"),
            "pinRequested": _get(spec, "rollout", "pinnedVersion"),
            # what passed the gates and serves (a pinned version while a pin serves); older operators: lastGoodVersion
            "lastGood": status.get("promotedVersion") or status.get("lastGoodVersion"),
            "unpinRestores": status.get("lastGoodVersion") if status.get("pinnedVersion") else None,
            "rolloutStep": status.get("rolloutStep"),
            "rolloutSteps": len(_get(spec, "rollout", "steps") or []),
            "stepStartedAt": status.get("stepStartedAt"),
            "analysis": status.get("analysis"),
            "rolledBack": status.get("rolledBackVersion"),
            "rollbackReason": status.get("rollbackReason"),
        },
        "lastBuild": last,
        "building": bool(last and last.get("result") == "Running"),
        "failures": {
            "consecutive": failures,
            "limit": limit_failures,
            "stalled": stalled,
            "nextRetryTime": status.get("nextRetryTime"),
        },
        "schedule": {
            "cron": spec.get("schedule"),
            "timeZone": spec.get("timeZone"),
            "suspended": bool(spec.get("suspend")),
            "nextScheduledBuild": status.get("nextScheduledBuild"),
            "lastScheduleTime": status.get("lastScheduleTime"),
        },
        "drift": {
            "detail": status.get("drift"),
            "lastSyncTime": status.get("lastSyncTime"),
            "interval": _get(spec, "sync", "interval"),
            "policy": _get(spec, "sync", "policy"),
        },
        "storedVersions": status.get("storedVersions"),
        "conditions": list(status.get("conditions") or []),
    }
    if events is not None:
        report["events"] = recent_events(events, limit)
    return report


def _event_time(event: dict[str, Any]) -> datetime:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        when = parse_time(event.get(key))
        if when is not None:
            return when
    return parse_time(_get(event, "metadata", "creationTimestamp")) or datetime.min.replace(tzinfo=timezone.utc)


def recent_events(events: list[dict[str, Any]], limit: int = EVENT_LIMIT) -> list[dict[str, Any]]:
    """The newest ``limit`` Events, oldest first (as ``kubectl describe`` lists them)."""
    ordered = sorted(events, key=_event_time)[-limit:] if limit > 0 else []
    return [
        {
            "type": e.get("type"),
            "reason": e.get("reason"),
            "message": e.get("message"),
            "count": e.get("count") or 1,
            "lastSeen": e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp")
            or _get(e, "metadata", "creationTimestamp"),
        }
        for e in ordered
    ]


def hints(report: dict[str, Any]) -> list[str]:
    """What a person should probably do next, from the report (may be empty)."""
    name = report["name"]
    out: list[str] = []
    degraded = condition({"conditions": report["conditions"]}, "Degraded")
    if report["failures"]["stalled"]:
        out.append(f"automatic builds stopped: fix the cause above, then `faissctl rebuild {name}` (or change the spec)")
    elif degraded.get("status") == "True" and degraded.get("reason") == "InvalidSpec":
        out.append("the spec is invalid: check it offline with `faissctl validate FILE`")
    serving = report["serving"]
    if serving["pinRequested"] and serving["pinRequested"] != serving["pinned"]:
        out.append(f"pin to {serving['pinRequested']} not applied yet (see Degraded); `faissctl versions {name}` lists stored versions")
    if serving["candidate"]:
        out.append(f"candidate {serving['candidate']} is in canary: `faissctl promote {name}` or `faissctl abort {name}`")
    generation, observed = report["generation"], report["observedGeneration"]
    if generation and observed and observed < generation:
        out.append(f"the operator has not processed the latest spec yet (observedGeneration {observed} < generation {generation})")
    return out
