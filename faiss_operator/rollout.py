"""Progressive rollout through ``spec.rollout.steps``, gated by online analysis. Pure.

A validated build becomes the candidate at the first step's percent. Each pass measures
the current step from the replicas' reports (``analysis.measure``): a failed gate rolls
the candidate back at once (``RolledBack``, the numbers in status and the Event); a step
passes only after its ``pause`` AND enough samples (low traffic never counts as success);
passing the last step promotes the candidate to 100%. Without steps, ``rollout.percent``
is a one-step plan that holds (``indexops_api.rollout_plan``, ``promotion.with_rollout``).
The shares themselves (status and pointer) are derived once, by ``rollout_plan.rollout_share``.
"""

from __future__ import annotations

from indexops_api.spec import FaissIndexSpec
from indexops_api.spec_ops import duration_seconds
from indexops_api.status import EventReason, FaissIndexStatus
from faiss_operator.analysis import failures, measure, missing_samples, stable_requests
from faiss_operator.conditions import parse_time, timestamp
from faiss_operator.manual import roll_back
from faiss_operator.model import Event, Observation
from faiss_operator.promotion import promoted_candidate


def advance_steps(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus, events: list[Event]) -> FaissIndexStatus:
    steps = spec.rollout.plan.steps
    candidate, stable = status.candidate_version, status.current_version
    if candidate is None or stable is None:
        return status.updated(rollout_step=None, step_started_at=None)
    step = status.rollout_step
    if step is None or step >= len(steps):
        return _enter(obs, status, 0)
    percent = steps[step].percent
    pointer = obs.pointer
    if pointer is None or pointer.candidate_version != candidate or pointer.candidate_percent != percent:
        return status  # the pointer for this step is written now (decide derives it from the plan)
    gates = spec.rollout.analysis
    a = measure(obs.replicas or (), pointer.generation, candidate, stable, step, percent)
    failed = failures(a, gates, stable_requests(obs.replicas or (), pointer.generation, stable))
    label = f"step {step + 1}/{len(steps)} ({percent}%)"
    if failed:
        why = f"{label}: " + "; ".join(failed)
        events.append(Event("Warning", EventReason.ROLLED_BACK, f"candidate {candidate} rolled back at {why}; {stable} serves 100%"))
        rolled = roll_back(status, why)
        return rolled.updated(rollout_step=None, step_started_at=None,
                              analysis=a.updated(verdict=f"rolled back: {'; '.join(failed)}"))
    started = parse_time(status.step_started_at) or obs.now
    left = duration_seconds(steps[step].pause or "0s") - (obs.now - started).total_seconds()
    lacking = missing_samples(a, gates, percent)
    if left > 0 or lacking:
        waiting = [f"{left:.0f}s of pause left"] if left > 0 else []
        verdict = f"{label}: " + ", ".join(waiting + ([f"waiting for {', '.join(lacking)}"] if lacking else []))
        return status.updated(analysis=a.updated(verdict=verdict))
    summary = _summary(a)
    if step + 1 < len(steps):
        nxt = steps[step + 1].percent
        events.append(Event("Normal", EventReason.STEP_ADVANCED, f"candidate {candidate} passed {label} ({summary}); now {nxt}%"))
        entered = _enter(obs, status, step + 1)
        return entered.updated(analysis=a.updated(verdict=f"passed {label}"))
    events.append(Event("Normal", EventReason.PROMOTED, f"candidate {candidate} passed all {len(steps)} steps ({summary}); now 100%"))
    promoted = status.updated(**promoted_candidate(obs, status))
    return promoted.updated(rollout_step=None, step_started_at=None,
                            analysis=a.updated(verdict=f"passed all {len(steps)} steps"))


def _enter(obs: Observation, status: FaissIndexStatus, step: int) -> FaissIndexStatus:
    return status.updated(rollout_step=step, step_started_at=timestamp(obs.now))


def _summary(a) -> str:
    parts = [f"{a.requests} requests", f"error rate {a.error_rate or 0:.4f}"]
    if a.p99_ms is not None:
        parts.append(f"p99 {a.p99_ms:g}ms" + (f" vs {a.stable_p99_ms:g}ms" if a.stable_p99_ms else ""))
    if a.overlap is not None:
        parts.append(f"overlap@k {a.overlap:.3f} on {a.shadow_queries} shadowed")
    return ", ".join(parts)
