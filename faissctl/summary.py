"""What ``faissctl status`` reports about one FaissIndex, as plain data. Pure.

Built from the object and its Events as the API server returns them. ``spec`` and
``status`` are read with the shared models (``indexops_api.spec`` / ``.status``), so their
defaults and meanings are the operator's, stated once; but a status written by a newer
operator (a new field, a new reason) or an invalid spec must still be shown, not rejected:
a top-level field the models cannot read is left at its default (``read_status``,
``spec_field``), and conditions are shown as the API server holds them. The same dict is
printed as JSON/YAML and rendered for people by ``status_text``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError

from faissctl.output import parse_time
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import FaissIndexStatus

EVENT_LIMIT = 10


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), {})


def read_status(raw: Any) -> FaissIndexStatus:
    """``status`` as the shared model; top-level fields it cannot read (a newer operator's) are left unset."""
    data = raw if isinstance(raw, dict) else {}
    try:
        return FaissIndexStatus.model_validate(data)
    except ValidationError as exc:
        unreadable = {e["loc"][0] for e in exc.errors() if e["loc"]}
        return FaissIndexStatus.model_validate({k: v for k, v in data.items() if k not in unreadable})


def spec_field(raw: Any, name: str) -> Any:
    """One top-level ``spec`` field as the shared model reads it: its default when absent or invalid (None if required)."""
    info = FaissIndexSpec.model_fields[name]
    key = info.alias or name
    if isinstance(raw, dict) and raw.get(key) is not None:
        try:
            return TypeAdapter(info.annotation).validate_python(raw[key])
        except ValidationError:
            pass
    return None if info.is_required() else info.get_default(call_default_factory=True)


def _wire(model: Any) -> Any:
    return model.to_wire() if model is not None else None


def summarize(obj: dict[str, Any], events: list[dict[str, Any]] | None = None, limit: int = EVENT_LIMIT) -> dict[str, Any]:
    """The status report of one FaissIndex (``events=None``: not fetched, e.g. in lists)."""
    spec, raw_status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    st = read_status(raw_status)
    build, validation, rollout, sync = (spec_field(spec, f) for f in ("build", "validation", "rollout", "sync"))
    spec_type = spec_field(spec, "index_type").value
    stalled = condition(raw_status, "Stalled").get("status") == "True"
    last = st.last_build
    report: dict[str, Any] = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "created": meta.get("creationTimestamp"),
        "generation": meta.get("generation"),
        "observedGeneration": st.observed_generation,
        "phase": st.phase or "Pending",
        "ready": condition(raw_status, "Ready").get("status") or "Unknown",
        "horizon": spec.get("horizon"),
        "indexType": st.index_type or spec_type,
        "specIndexType": spec_type,
        "serving": {
            "version": st.current_version,
            "since": st.serving_since,
            "recall": st.recall,
            "recallQueries": st.recall_queries,
            "replicas": [r.to_wire() for r in st.serving_replicas],
            "k": validation.k,
            "p99LatencyMs": st.p99_latency_ms,
            "vectors": st.vectors,
            "sizeBytes": st.size_bytes,
            "rolloutPercent": st.rollout_percent,
            "candidate": st.candidate_version,
            "pinned": st.pinned_version,
            "pinRequested": rollout.pinned_version,
            # what passed the gates and serves (a pinned version while a pin serves); older operators: lastGoodVersion
            "lastGood": st.promoted_version or st.last_good_version,
            "unpinRestores": st.last_good_version if st.pinned_version else None,
            "rolloutStep": st.rollout_step,
            "rolloutSteps": len(rollout.steps or []),
            "stepStartedAt": st.step_started_at,
            "analysis": _wire(st.analysis),
            "rolledBack": st.rolled_back_version,
            "rollbackReason": st.rollback_reason,
        },
        "lastBuild": _wire(last),
        "building": bool(last and last.result.value == "Running"),
        "failures": {
            "consecutive": st.consecutive_failures,
            "limit": build.max_consecutive_failures,
            "stalled": stalled,
            "nextRetryTime": st.next_retry_time,
        },
        "schedule": {
            "cron": spec_field(spec, "schedule"),
            "timeZone": spec_field(spec, "time_zone"),
            "suspended": bool(spec_field(spec, "suspend")),
            "nextScheduledBuild": st.next_scheduled_build,
            "lastScheduleTime": st.last_schedule_time,
        },
        "drift": {
            "detail": st.drift,
            "lastSyncTime": st.last_sync_time,
            "interval": sync.interval if sync is not None else None,
            "policy": sync.policy.value if sync is not None else None,
        },
        "storedVersions": st.stored_versions,
        "conditions": list(raw_status.get("conditions") or []),  # as stored: a newer operator's reasons still show
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
