"""Manual rollout controls: promote or abort the candidate. Pure.

``faissctl promote|abort`` and the ArgoCD actions set the annotations
``faiss.indexops.io/promote-requested-at`` / ``abort-requested-at``; each new value is
handled once (status remembers the last value handled), so re-applying a manifest that
still carries an old value does nothing.

Abort takes the candidate out of rotation for good: its build is marked ``RolledBack``
(never promoted or retried); the next build of any trigger rolls out normally.
"""

from __future__ import annotations

from indexops_api.status import BuildResult, EventReason, FaissIndexStatus
from faiss_operator.conditions import is_new_request
from faiss_operator.model import Event, Observation
from faiss_operator.promotion import promoted_candidate


def roll_back(status: FaissIndexStatus, why: str) -> FaissIndexStatus:
    """Candidate share -> 0; its build can never be promoted again."""
    candidate = status.candidate_version
    last = status.last_build
    updates: dict = {"candidate_version": None, "rolled_back_version": candidate, "rollback_reason": why}
    if last is not None and last.version == candidate:
        updates["last_build"] = last.updated(result=BuildResult.ROLLED_BACK, reason="RolledBack", message=why)
    return status.updated(**updates)


def apply_manual(obs: Observation, status: FaissIndexStatus) -> tuple[FaissIndexStatus, list[Event]]:
    events: list[Event] = []
    abort, promote = obs.abort_request, obs.promote_request
    if is_new_request(abort, status.last_handled_abort):
        status = status.updated(last_handled_abort=abort)
        candidate = status.candidate_version
        if candidate is not None:
            why = f"aborted manually (abort requested at {abort})"
            status = roll_back(status, why)
            events.append(Event("Warning", EventReason.ROLLED_BACK, f"candidate {candidate} rolled back: {why}; {status.current_version} serves 100%"))
    if is_new_request(promote, status.last_handled_promote):
        status = status.updated(last_handled_promote=promote)
        candidate = status.candidate_version
        if candidate is not None:
            status = status.updated(**promoted_candidate(obs, status))
            events.append(Event("Normal", EventReason.PROMOTED, f"candidate {candidate} promoted to 100% manually (requested at {promote})"))
    return status, events
