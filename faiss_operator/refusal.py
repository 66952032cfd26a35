"""Versions the serving replicas refuse to load (checksum, load or memory failure). Pure.

Serving never serves a version it cannot verify and load; it keeps what it had. When every
reachable replica refuses the candidate, the candidate is rolled back; when every replica
refuses the version status calls current (a promotion or a pin to a broken version), status
goes back to the version the replicas actually serve. The refused version is remembered
(``rolledBackVersion``) so it is neither promoted nor pinned again.
"""

from __future__ import annotations

import re
from dataclasses import replace

from indexops_api.status import BuildResult, EventReason, FaissIndexStatus
from faiss_operator.manual import roll_back
from faiss_operator.model import Event, Observation, ReplicaReport


_SHARD_FILE = re.compile(r"shard-\d{3}\.faiss")
LAYOUT = "layout:"  # a pod of the other serving topology (sharded vs not, shard count): not a broken version


def _broken_only(report: ReplicaReport) -> ReplicaReport:
    return replace(report, refused={v: why for v, why in report.refused.items() if not why.startswith(LAYOUT)})


def _stored_shards(obs: Observation, version: str) -> int | None:
    """Shard count of a stored version from its file names, when they were listed."""
    stored = (obs.versions or {}).get(version)
    if stored is None or not stored.files:
        return None
    shards = sum(1 for name in stored.files if _SHARD_FILE.fullmatch(name))
    return shards if shards and "index.faiss" not in stored.files else 1


def handle_refusals(obs: Observation, status: FaissIndexStatus, events: list[Event]) -> FaissIndexStatus:
    """Act on versions every replica refuses as broken; a layout mismatch during a topology change is not one.

    When a version with another shard count is promoted, the pods of the old topology refuse it
    ("layout: ...") until the new shard Deployments and fan-out replace them; rolling it back
    for that would undo every change of ``spec.shards``.
    """
    reports = [_broken_only(r) for r in obs.replicas or () if r.error is None]
    if not reports:
        return status
    candidate, current = status.candidate_version, status.current_version
    if candidate and all(candidate in r.refused for r in reports):
        why = f"refused by {len(reports)}/{len(reports)} serving replicas: {reports[0].refused[candidate]}"
        events.append(Event("Warning", EventReason.ROLLED_BACK, f"candidate {candidate} rolled back: {why}; {current} serves 100%"))
        return roll_back(status, why).updated(rollout_step=None, step_started_at=None)
    served = {r.stable for r in reports}
    if current and all(current in r.refused for r in reports) and len(served) == 1 and None not in served:
        actual = served.pop()
        why = f"refused by {len(reports)}/{len(reports)} serving replicas: {reports[0].refused[current]}"
        events.append(Event("Warning", EventReason.ROLLED_BACK, f"version {current} rolled back: {why}; {actual} keeps serving"))
        last = status.last_build
        updates: dict = {
            "current_version": actual, "last_good_version": actual, "promoted_version": actual, "candidate_version": None,
            "rolled_back_version": current, "rollback_reason": why, "pinned_version": None,
            "recall": None, "p99_latency_ms": None, "vectors": None, "size_bytes": None,  # unknown for the version kept
        }
        layout = _stored_shards(obs, actual)
        if layout is not None:  # serve the kept version with its own topology again
            updates["shards"] = layout
        if last is not None and last.version == current:
            updates["last_build"] = last.updated(result=BuildResult.ROLLED_BACK, reason="RolledBack", message=why)
        return status.updated(**updates)
    return status
