"""``faissctl status`` for people: a describe-like page for one index, a table for many. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from faissctl.output import NONE, age, cell, human_duration, ms, parse_time, relative, size, table, until

CONDITION_ORDER = ("Ready", "Progressing", "Degraded", "Stalled")


def _field(label: str, value: Any, width: int = 16) -> str:
    return f"{label + ':':<{width}}{cell(value)}"


def _serving(report: dict[str, Any], now: datetime) -> list[str]:
    s = report["serving"]
    if not s["version"]:
        return ["Serving:        nothing yet (no version has passed validation)"]
    queries = f" on {s['recallQueries']} held-out queries" if s.get("recallQueries") else " on held-out queries"
    recall = None if s["recall"] is None else f"{s['recall']:.4f} (recall@{s['k']}{queries}, vs exact search)"
    rollout = s["rolloutPercent"]
    candidate = f"{s['candidate']} ({rollout}% of queries)" if s["candidate"] else None
    pinned = s["pinned"]
    if s["pinRequested"] and s["pinRequested"] != pinned:
        pinned = f"{pinned or NONE} (requested {s['pinRequested']}, not applied)"
    return [
        "Serving:",
        "  " + _field("Version", s["version"], 14),
        "  " + _field("Since", relative(s["since"], now), 14),
        "  " + _field("Recall", recall, 14),
        "  " + _field("p99 latency", f"{ms(s['p99LatencyMs'])} (builder, single query, in process)" if s["p99LatencyMs"] is not None else None, 14),
        "  " + _field("Vectors", s["vectors"], 14),
        "  " + _field("Size", size(s["sizeBytes"]) if s["sizeBytes"] is not None else None, 14),
        "  " + _field("Rollout", _rollout(s), 14),
        "  " + _field("Candidate", candidate, 14),
        "  " + _field("Pinned", pinned, 14),
        "  " + _field("Last good", s["lastGood"], 14),
    ] + _unpin(s) + _replicas(s) + _canary(s, now)


def _unpin(s: dict[str, Any]) -> list[str]:
    """While a pin serves: what ``unpin`` returns to (the newest version promoted by rollout)."""
    restores = s.get("unpinRestores")
    if not s["pinned"] or not restores or restores == s["pinned"]:
        return []
    return ["  " + _field("On unpin", f"{restores} (newest version promoted by rollout)", 14)]


def _replicas(s: dict[str, Any]) -> list[str]:
    """Which pod serves which version, as the pods reported it to the operator."""
    rows = []
    for r in s.get("replicas") or []:
        loaded = r.get("stable") or NONE
        loaded += f" + candidate {r['candidate']}" if r.get("candidate") else ""
        rows.append(f"    {r.get('pod')}: {'unreachable (' + r['error'] + ')' if r.get('error') else loaded}")
    return ["  Pods:"] + rows if rows else []


def _canary(s: dict[str, Any], now: datetime) -> list[str]:
    """Stepped rollout, its online analysis, and the last rollback (only what is set)."""
    lines = []
    if s["candidate"] and s["rolloutStep"] is not None and s["rolloutSteps"]:
        lines.append("  " + _field("Step", f"{s['rolloutStep'] + 1} of {s['rolloutSteps']} since {relative(s['stepStartedAt'], now)}", 14))
    a = s["analysis"]
    if s["candidate"] and isinstance(a, dict):
        p99 = f", p99 {ms(a.get('p99Ms'))} vs stable {ms(a.get('stableP99Ms'))}" if a.get("p99Ms") is not None else ""
        overlap = f", overlap@k {a['overlap']:.3f} on {a.get('shadowQueries', 0)} shadowed" if a.get("overlap") is not None else ""
        verdict = f"; {a['verdict']}" if a.get("verdict") else ""
        lines.append("  " + _field("Analysis", f"{a.get('requests', 0)} requests, {a.get('errors', 0)} errors{p99}{overlap}{verdict}", 14))
    if s["rolledBack"]:
        lines.append("  " + _field("Rolled back", f"{s['rolledBack']}: {s['rollbackReason'] or 'no reason recorded'}", 14))
    return lines


def _rollout(s: dict[str, Any]) -> str | None:
    percent = s["rolloutPercent"]
    if s["candidate"] and percent is not None:
        return f"{100 - percent}% stable, {percent}% candidate"
    return None if percent is None else f"{percent}%"


def _build(report: dict[str, Any], now: datetime) -> list[str]:
    last = report["lastBuild"]
    lines = ["Last build:" if last else "Last build:     none yet"]
    if last:
        number = f"#{last['number']} " if last.get("number") else ""
        trigger = last.get("trigger") or "?"
        took = _took(last.get("startTime"), last.get("completionTime"))
        lines += [
            "  " + _field("Result", f"{last.get('result')} ({number}trigger {trigger})", 14),
            "  " + _field("Version", last.get("version"), 14),
            "  " + _field("Job", last.get("job"), 14),
            "  " + _field("Started", relative(last.get("startTime"), now), 14),
        ]
        if last.get("completionTime"):
            lines.append("  " + _field("Finished", f"{relative(last['completionTime'], now)}{took}", 14))
        if last.get("reason") or last.get("message"):
            lines.append("  " + _field("Reason", f"{last.get('reason') or NONE}: {last.get('message') or ''}".rstrip(": "), 14))
        for warning in last.get("warnings") or []:  # parameter sanity and FAISS warnings the builder recorded
            lines.append("  " + _field("Warning", warning, 14))
    f, sch, drift = report["failures"], report["schedule"], report["drift"]
    lines.append(_field("Failures", f"{f['consecutive']} in a row (Stalled after {f['limit']})"
                        + ("; STALLED: no automatic builds" if f["stalled"] else "")))
    if f["nextRetryTime"] and not f["stalled"]:
        lines.append(_field("Next retry", relative(f["nextRetryTime"], now)))
    if sch["cron"]:
        zone = f" {sch['timeZone']}" if sch["timeZone"] else ""
        nxt = "suspended" if sch["suspended"] else relative(sch["nextScheduledBuild"], now)
        lines.append(_field("Schedule", f"{sch['cron']}{zone}; next build {nxt}"))
    elif sch["suspended"]:
        lines.append(_field("Schedule", "suspended"))
    if drift["interval"] or drift["detail"]:
        state = drift["detail"] or "in sync"
        checked = f" (checked {age(drift['lastSyncTime'], now)} ago)" if drift["lastSyncTime"] else ""
        lines.append(_field("Drift", f"{state}{checked}"))
    return lines


def _took(start: str | None, end: str | None) -> str:
    a, b = parse_time(start), parse_time(end)
    return f", Job took {human_duration((b - a).total_seconds())} (pod start-up included)" if a and b else ""


def _type(report: dict[str, Any]) -> str:
    """The serving version's type; the spec's beside it when they differ (a pin, a migration)."""
    serving, wanted = report["indexType"], report.get("specIndexType")
    return cell(serving) if not wanted or wanted == serving else f"{cell(serving)} serving (spec.indexType: {wanted})"


def render(report: dict[str, Any], now: datetime, hints: list[str] | None = None) -> str:
    """A ``kubectl describe``-like page for one index."""
    lines = [
        _field("Name", report["name"]),
        _field("Namespace", report["namespace"]),
        _field("Phase", f"{report['phase']} (Ready={report['ready']})"),
        _field("Horizon / type", f"{cell(report['horizon'])} / {_type(report)}"),
    ]
    lines += _serving(report, now)
    lines += _build(report, now)
    if report["storedVersions"] is not None:
        lines.append(_field("Stored", f"{report['storedVersions']} version(s); `faissctl versions {report['name']}` lists them"))
    text = "\n".join(lines) + "\n"
    conds = sorted(report["conditions"], key=lambda c: (CONDITION_ORDER + (c.get("type"),)).index(c.get("type")))
    text += "Conditions:\n" + (table(
        ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"],
        [[c.get("type"), c.get("status"), c.get("reason"), age(c.get("lastTransitionTime"), now), c.get("message")] for c in conds],
        indent="  ",
    ) if conds else "  none yet (the operator has not reconciled this index)\n")
    if "events" in report:
        events = report["events"]
        text += "Events:\n" + (table(
            ["TYPE", "REASON", "AGE", "MESSAGE"],
            [[e["type"], e["reason"], age(e["lastSeen"], now) + (f" (x{e['count']})" if e["count"] > 1 else ""), e["message"]]
             for e in events],
            indent="  ",
        ) if events else "  none\n")
    for hint in hints or []:
        text += f"hint: {hint}\n"
    return text


def render_list(reports: list[dict[str, Any]], now: datetime, all_namespaces: bool) -> str:
    """One row per index, like ``kubectl get fi -o wide`` with the build and failure columns people ask for."""
    headers = ["NAME", "HORIZON", "PHASE", "READY", "VERSION", "CANARY", "RECALL", "P99MS", "VECTORS",
               "LAST-BUILD", "FAILURES", "NEXT-BUILD", "AGE"]
    rows = []
    for r in reports:
        s, last = r["serving"], r["lastBuild"] or {}
        canary = f"{s['candidate']} {s['rolloutPercent']}%" if s["candidate"] else None
        build = f"{last.get('result')} ({last.get('trigger') or '?'})" if last else None
        failures = f"{r['failures']['consecutive']}" + (" Stalled" if r["failures"]["stalled"] else "")
        version = f"{s['version']} (pinned)" if s["pinned"] and s["pinned"] == s["version"] else s["version"]
        row = [r["name"], r["horizon"], r["phase"], r["ready"], version,
               canary, None if s["recall"] is None else f"{s['recall']:.4f}", s["p99LatencyMs"], s["vectors"], build, failures,
               until(r["schedule"]["nextScheduledBuild"], now), age(r["created"], now)]
        rows.append(([r["namespace"]] if all_namespaces else []) + row)
    return table((["NAMESPACE"] if all_namespaces else []) + headers, rows)
