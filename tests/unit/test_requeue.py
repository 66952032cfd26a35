"""When the next reconcile pass looks is part of the plan: decided purely, timed from the config."""

from __future__ import annotations

import random
from datetime import timedelta

from indexops_api.status import BuildResult
from faiss_operator.conditions import timestamp
from faiss_operator.decide import decide
from faiss_operator.model import Requeue
from faiss_operator.pacing import JITTER, POINTER_SETTLE_SECONDS, wait_seconds

from factories import NOW, finished, job, observation, pointer, serving, spec, status_running

S = spec()


def wait(requeue: Requeue, indexes: int = 1) -> tuple[float, bool]:
    return wait_seconds(requeue, poll_seconds=5, resync_seconds=30, indexes=indexes, idle_passes_per_second=2.0,
                        rng=random.Random(1))


def test_a_pass_that_writes_the_pointer_looks_again_within_seconds():
    st = serving(S)
    plan = decide(observation(S, st, pointer=None))
    assert plan.write_pointer is not None
    assert plan.requeue == Requeue("pointer")
    assert wait(plan.requeue) == (POINTER_SETTLE_SECONDS, False)


def test_a_running_build_is_polled_at_the_configured_interval():
    plan = decide(observation(S, status_running(S), job=job(S, "Running")))
    assert plan.requeue == Requeue("busy")
    assert wait(plan.requeue) == (5, False)


def test_a_storage_error_is_polled_like_a_build():
    st = serving(S)
    plan = decide(observation(S, st, pointer=pointer(st.current_version), storage_error="timed out"))
    assert plan.requeue.kind == "busy"


def test_an_idle_index_waits_for_its_next_timer_when_that_comes_before_the_safety_net():
    st = serving(S, last_build=finished(S, BuildResult.FAILED), consecutive_failures=1,
                 next_retry_time=timestamp(NOW + timedelta(seconds=20)))
    plan = decide(observation(S, st, pointer=pointer(st.current_version)))
    assert plan.requeue == Requeue("idle", 20.0)
    assert wait(plan.requeue) == (20.0, False)


def test_an_idle_index_without_timers_waits_for_the_shared_safety_net_resync():
    st = serving(S)
    plan = decide(observation(S, st, pointer=pointer(st.current_version)))
    assert plan.requeue == Requeue("idle", None)
    seconds, paced = wait(plan.requeue, indexes=1000)
    assert paced and 500 * (1 - JITTER) <= seconds <= 500 * (1 + JITTER)


def test_an_invalid_spec_is_looked_at_again_by_the_safety_net_only():
    plan = decide(observation(None, serving(S)))
    assert plan.requeue == Requeue("idle", None)
