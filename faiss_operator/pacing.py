"""When an idle FaissIndex is looked at again: timers first, a shared resync budget after. Pure.

Every reconcile pass of an idle index reads the object, lists its Jobs and reads its
pointer and version listing in S3. A fixed resync interval makes that cost grow with the
number of indexes (1,000 indexes every 30 s is 33 passes/s: most of a core, ~70 API-server
and ~70 S3 requests/s, for nothing). Nothing an idle index waits for needs that:

- what users and Jobs change wakes the index at once through watch events (its own
  changes, its Jobs', its serving Deployment's), so latency never depends on the resync;
- what time changes (a cron fire time, a retry after a failure, the next drift check, the
  end of a rollout step's pause) is known in advance: the pass is scheduled for it;
- only what changes *outside* the cluster without an event (artifacts deleted from S3 by
  hand, a pointer edited) waits for the safety-net resync. That resync shares a budget of
  ``idle_passes_per_second`` across all indexes: with N indexes each is looked at every
  ``max(resync_seconds, N / budget)`` seconds, jittered by +-20% so indexes created (or
  adopted) together do not resync together forever.

So the idle cost is bounded by the budget, not by N, and the price is stated: external
edits to storage are noticed within ``N / budget`` seconds (about 8 minutes for 1,000
indexes at the default 2 passes/s).
"""

from __future__ import annotations

import random
from datetime import datetime

from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, FaissIndexStatus
from faiss_operator.conditions import parse_time
from faiss_operator.drift import next_sync_time
from faiss_operator.model import Plan, Requeue

MIN_DELAY = 1.0
JITTER = 0.2
POINTER_SETTLE_SECONDS = 3.0  # after a pointer write: replicas load the new pointer within seconds, look again soon


def safety_resync_seconds(resync_seconds: float, indexes: int, idle_passes_per_second: float) -> float:
    """The per-index safety-net interval that keeps all idle indexes within the shared budget."""
    if idle_passes_per_second <= 0:
        return resync_seconds
    return max(resync_seconds, indexes / idle_passes_per_second)


def next_timer(spec: FaissIndexSpec | None, status: FaissIndexStatus, now: datetime) -> float | None:
    """Seconds until something time-based is due for this index (None: nothing is)."""
    if spec is None:
        return None
    due: list[datetime] = []
    fire = parse_time(status.next_scheduled_build)
    if fire is not None:
        due.append(fire)
    last = status.last_build
    if last is not None and last.result in (BuildResult.FAILED, BuildResult.VALIDATION_FAILED):
        retry = parse_time(status.next_retry_time)
        if retry is not None:
            due.append(retry)
    sync = next_sync_time(spec, status, now)
    if sync is not None:
        due.append(sync)
    if not due:
        return None
    return max(MIN_DELAY, min((d - now).total_seconds() for d in due))


def idle_wait(spec: FaissIndexSpec | None, status: FaissIndexStatus, now: datetime, *, resync_seconds: float,
              indexes: int, idle_passes_per_second: float, rng: random.Random | None = None) -> tuple[float, bool]:
    """(seconds an idle index sleeps, whether that is the safety net rather than a timer).

    A safety-net pass also takes a slot from ``ResyncSlots``: the interval above spreads
    indexes out, the slots enforce the budget when many are due at once (after a mass
    apply, the interval was computed while N was still small).
    """
    return _idle(next_timer(spec, status, now), resync_seconds, indexes, idle_passes_per_second, rng)


def _idle(timer: float | None, resync_seconds: float, indexes: int, idle_passes_per_second: float,
          rng: random.Random | None) -> tuple[float, bool]:
    r = rng or random
    safety = safety_resync_seconds(resync_seconds, indexes, idle_passes_per_second) * r.uniform(1 - JITTER, 1 + JITTER)
    if timer is not None and timer <= safety:
        return max(MIN_DELAY, timer), False
    return max(MIN_DELAY, safety), True


def requeue_for(spec: FaissIndexSpec | None, plan: Plan, storage_error: str | None, now: datetime) -> Requeue:
    """When the pass after ``plan`` should look: soon after a pointer write, at the poll interval while
    anything is in flight, else at the next timer (or the safety net)."""
    if plan.write_pointer is not None:
        return Requeue("pointer")
    last = plan.status.last_build
    if (last is not None and last.result == BuildResult.RUNNING) or plan.status.candidate_version is not None or storage_error:
        return Requeue("busy")
    return Requeue("idle", next_timer(spec, plan.status, now))


def wait_seconds(requeue: Requeue, *, poll_seconds: float, resync_seconds: float, indexes: int,
                 idle_passes_per_second: float, rng: random.Random | None = None) -> tuple[float, bool]:
    """(seconds until the next pass, whether it is a safety-net resync paced by the shared budget)."""
    if requeue.kind == "pointer":
        return POINTER_SETTLE_SECONDS, False
    if requeue.kind == "busy":
        return poll_seconds, False
    return _idle(requeue.timer, resync_seconds, indexes, idle_passes_per_second, rng)


def idle_delay(spec: FaissIndexSpec | None, status: FaissIndexStatus, now: datetime, **kw) -> float:
    return idle_wait(spec, status, now, **kw)[0]


class ResyncSlots:
    """Start times for safety-net passes, at most ``rate`` per second across all indexes.

    O(1) and lock-free under asyncio (one event loop thread): each caller gets the next
    free slot. A pass woken by an event while waiting for its slot runs at once and the
    slot is simply unused.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = float("-inf")

    def take(self, now: float) -> float:
        if self.rate <= 0:
            return now
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        return slot
