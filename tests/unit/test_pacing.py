"""Idle pacing: timers are honoured exactly, the safety-net resync shares one budget across indexes."""

from __future__ import annotations

import random
from datetime import timedelta

from factories import NOW, finished, serving, spec
from indexops_api.status import BuildResult, FaissIndexStatus
from faiss_operator.conditions import timestamp
from faiss_operator.pacing import JITTER, ResyncSlots, idle_delay, idle_wait, next_timer, safety_resync_seconds

S = spec()


def delay(s, status, indexes=1, budget=2.0, seed=1):
    return idle_delay(s, status, NOW, resync_seconds=30, indexes=indexes, idle_passes_per_second=budget, rng=random.Random(seed))


def test_the_safety_net_resync_of_a_thousand_idle_indexes_stays_within_the_shared_budget():
    assert safety_resync_seconds(30, 10, 2.0) == 30  # few indexes: the configured resync
    assert safety_resync_seconds(30, 1000, 2.0) == 500  # 1,000 indexes: 2 passes/s in total
    assert safety_resync_seconds(30, 1000, 0) == 30  # budget off: the old fixed interval
    delays = [delay(S, serving(S), indexes=1000, seed=i) for i in range(200)]
    assert all(500 * (1 - JITTER) <= d <= 500 * (1 + JITTER) for d in delays)
    assert len({round(d) for d in delays}) > 50  # spread out, not in lockstep


def test_a_cron_fire_time_wakes_an_idle_index_when_it_is_due_not_at_the_next_resync():
    status = serving(S, next_scheduled_build=timestamp(NOW + timedelta(seconds=42)))
    assert delay(S, status, indexes=1000) == 42


def test_a_retry_after_a_failed_build_is_due_at_its_retry_time():
    status = serving(S, last_build=finished(S, BuildResult.FAILED), next_retry_time=timestamp(NOW + timedelta(seconds=90)))
    assert next_timer(S, status, NOW) == 90


def test_the_drift_check_runs_at_its_interval_and_at_once_when_it_never_ran():
    synced = spec(sync={"interval": "10m"})
    assert next_timer(synced, serving(synced, last_sync_time=timestamp(NOW - timedelta(minutes=4))), NOW) == 360
    assert next_timer(synced, serving(synced), NOW) == 1.0


def test_an_overdue_timer_runs_after_a_second_and_an_index_without_timers_waits_for_the_resync():
    status = serving(S, next_scheduled_build=timestamp(NOW - timedelta(seconds=5)))
    assert delay(S, status) == 1.0
    assert next_timer(S, FaissIndexStatus(), NOW) is None and next_timer(None, FaissIndexStatus(), NOW) is None


def test_safety_net_passes_due_at_once_are_spread_to_the_shared_budget():
    slots = ResyncSlots(rate=2.0)
    starts = [slots.take(100.0) for _ in range(1000)]  # a thousand resyncs due at the same moment
    assert starts[0] == 100.0 and starts[-1] == 100.0 + 999 / 2
    assert all(b - a == 0.5 for a, b in zip(starts, starts[1:]))
    assert slots.take(1000.0) == 1000.0  # idle again: no queue left
    assert ResyncSlots(rate=0).take(5.0) == 5.0  # budget off: no pacing


def test_a_timer_sooner_than_the_safety_net_is_not_paced_and_the_safety_net_is():
    timer = serving(S, next_scheduled_build=timestamp(NOW + timedelta(seconds=42)))
    kw = dict(resync_seconds=30, indexes=1000, idle_passes_per_second=2.0, rng=random.Random(3))
    assert idle_wait(S, timer, NOW, **kw) == (42, False)
    seconds, paced = idle_wait(S, serving(S), NOW, **kw)
    assert paced and 400 <= seconds <= 600
