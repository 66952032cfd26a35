"""Following a requested rebuild through the status until it has an outcome. Pure.

A rebuild request is the annotation value; the operator records the value it handled in
``status.lastHandledRebuild`` when it starts the build that covers it (a manual build, or
a spec/schedule build starting in the same pass). That build is the first one numbered
above ``status.buildCount`` as it was before the request. ``step`` looks at one status
and says what is happening, or what the outcome is; the command polls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FINISHED_FAILED = ("Failed", "ValidationFailed", "RolledBack")  # RolledBack: passed the gates, then taken out of its canary


@dataclass(frozen=True)
class Baseline:
    request: str  # the annotation value written
    build_count: int  # status.buildCount before the request


@dataclass(frozen=True)
class Outcome:
    ok: bool
    result: str  # Succeeded / Failed / ValidationFailed
    version: str | None
    message: str
    build: dict[str, Any]


def _covering_build(status: dict[str, Any], baseline: Baseline) -> dict[str, Any] | None:
    """The first build started after the request, from lastBuild or history."""
    builds = ([status["lastBuild"]] if status.get("lastBuild") else []) + list(status.get("history") or [])
    started = [b for b in builds if (b.get("number") or 0) > baseline.build_count]
    return min(started, key=lambda b: b.get("number") or 0) if started else None


def step(status: dict[str, Any], baseline: Baseline) -> tuple[str, Outcome | None]:
    """(what is happening now, the outcome once there is one)."""
    last = status.get("lastBuild") or {}
    if status.get("lastHandledRebuild") != baseline.request:
        if last.get("result") == "Running":
            return f"waiting: build #{last.get('number')} ({last.get('trigger')}) is running; the rebuild starts after it", None
        return "waiting for the operator to start the build", None
    build = _covering_build(status, baseline)
    if build is None:
        return "waiting for the operator to record the build", None
    version, result = build.get("version"), build.get("result")
    what = f"build #{build.get('number')} ({build.get('trigger') or '?'}) of version {version}"
    if result == "Running":
        return f"{what}: Job {build.get('job')} is running", None
    if result in FINISHED_FAILED:
        reason = build.get("reason") or result
        return f"{what}: {result}", Outcome(False, result, version, f"{what} {result}: {reason}: {build.get('message') or ''}".rstrip(": "), build)
    if result == "Succeeded":
        if version == status.get("currentVersion"):
            return f"{what}: serving", Outcome(True, result, version, f"{what} succeeded and serves 100% (recall {status.get('recall')})", build)
        if version == status.get("candidateVersion"):
            return f"{what}: canary", Outcome(True, result, version, f"{what} succeeded and is the candidate for {status.get('rolloutPercent')}% of queries", build)
        if status.get("pinnedVersion"):
            return f"{what}: held", Outcome(True, result, version, f"{what} succeeded and is held: the index is pinned to {status['pinnedVersion']}", build)
        if status.get("currentVersion") and version and version < status["currentVersion"]:
            return f"{what}: superseded", Outcome(True, result, version, f"{what} succeeded; a newer version {status['currentVersion']} serves", build)
        return f"{what}: succeeded, waiting for the gates and promotion", None
    return f"{what}: {result}", None
