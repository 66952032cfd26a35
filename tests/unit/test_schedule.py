"""Cron arithmetic with CronJob semantics, as tables of (schedule, zone, times) -> fire time / due run."""

from __future__ import annotations

import pytest

from faiss_operator.schedule import due_run, latest_fire_time, next_fire_time

from factories import utc

BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("schedule", "zone", "now", "latest", "following"),
    [
        pytest.param("0 * * * *", None, utc(2026, 11, 21, 12, 30), utc(2026, 11, 21, 12), utc(2026, 11, 21, 13),
                     id="an hourly schedule fired at the top of this hour and fires at the next"),
        pytest.param("0 * * * *", None, utc(2026, 11, 21, 12), utc(2026, 11, 21, 12), utc(2026, 11, 21, 13),
                     id="a fire time equal to now has fired, the next one is strictly later"),
        pytest.param("0 * * * *", None, utc(2026, 11, 21, 11, 59, 59, 500000), utc(2026, 11, 21, 11), utc(2026, 11, 21, 12),
                     id="half a second before a fire time it has not fired yet"),
        pytest.param("@daily", None, utc(2026, 11, 21, 12), utc(2026, 11, 21), utc(2026, 11, 22),
                     id="a macro schedule works like its cron expression"),
        pytest.param("0 2 * * *", BERLIN, utc(2026, 11, 21, 12), utc(2026, 11, 21, 1), utc(2026, 11, 22, 1),
                     id="02:00 in Berlin is 01:00 UTC in winter"),
        pytest.param("0 2 * * *", BERLIN, utc(2026, 7, 21, 12), utc(2026, 7, 21, 0), utc(2026, 7, 22, 0),
                     id="02:00 in Berlin is 00:00 UTC in summer"),
        pytest.param("0 2 * * *", BERLIN, utc(2026, 11, 21, 1, 30), utc(2026, 11, 21, 1), utc(2026, 11, 22, 1),
                     id="at 01:30 UTC the Berlin 02:00 run of today has fired"),
        pytest.param("0 2 * * *", BERLIN, utc(2026, 11, 21, 0, 59), utc(2026, 11, 20, 1), utc(2026, 11, 21, 1),
                     id="at 00:59 UTC the Berlin 02:00 run of today is still ahead"),
        pytest.param("0 2 * * *", None, utc(2026, 11, 21, 1, 30), utc(2026, 11, 20, 2), utc(2026, 11, 21, 2),
                     id="without a time zone the schedule is UTC"),
    ],
)
def test_fire_times_are_computed_in_the_schedule_time_zone_and_returned_in_utc(schedule, zone, now, latest, following):
    assert latest_fire_time(schedule, zone, now) == latest
    assert next_fire_time(schedule, zone, now) == following


def test_a_daily_run_at_a_time_skipped_by_the_spring_forward_fires_once_after_the_gap():
    # 2026-03-29: Berlin clocks jump from 02:00 to 03:00, so 02:30 does not exist that day.
    fires = [next_fire_time("30 2 * * *", BERLIN, utc(2026, 3, 28, 12))]
    fires.append(next_fire_time("30 2 * * *", BERLIN, fires[-1]))
    assert fires == [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]


HANDLED = utc(2026, 11, 21, 11)  # the last fire time already handled


@pytest.mark.parametrize(
    ("now", "deadline", "at", "late", "skipped"),
    [
        pytest.param(utc(2026, 11, 21, 11, 30), None, None, None, None, id="no fire time since the handled one: nothing is due"),
        pytest.param(utc(2026, 11, 21, 11), None, None, None, None, id="the handled fire time itself is not due again"),
        pytest.param(utc(2026, 11, 21, 12, 0, 30), None, utc(2026, 11, 21, 12), 30, False, id="a fire time 30s ago is due"),
        pytest.param(utc(2026, 11, 21, 18, 0, 30), None, utc(2026, 11, 21, 18), 30, False,
                     id="after many missed fire times only the most recent one is due"),
        pytest.param(utc(2026, 11, 21, 12, 0, 30), 60, utc(2026, 11, 21, 12), 30, False, id="a run within the deadline is due"),
        pytest.param(utc(2026, 11, 21, 12, 1), 60, utc(2026, 11, 21, 12), 60, False, id="a run exactly at the deadline is still due"),
        pytest.param(utc(2026, 11, 21, 12, 5), 60, utc(2026, 11, 21, 12), 300, True,
                     id="a run later than startingDeadlineSeconds is skipped"),
        pytest.param(utc(2026, 11, 21, 12, 59), None, utc(2026, 11, 21, 12), 3540, False,
                     id="without a deadline a late run is never skipped"),
    ],
)
def test_a_run_is_due_once_per_fire_time_and_skipped_past_the_starting_deadline(now, deadline, at, late, skipped):
    due = due_run("0 * * * *", None, HANDLED, now, deadline)
    if at is None:
        assert due is None
    else:
        assert due is not None
        assert (due.at, due.late_seconds, due.skipped) == (at, late, skipped)


def test_a_run_is_due_at_its_local_fire_time_not_at_the_same_wall_time_in_utc():
    handled = utc(2026, 11, 20, 1)  # yesterday's Berlin 02:00 run
    assert due_run("0 2 * * *", BERLIN, handled, utc(2026, 11, 21, 0, 59), None) is None
    due = due_run("0 2 * * *", BERLIN, handled, utc(2026, 11, 21, 1, 0, 30), None)
    assert due is not None and due.at == utc(2026, 11, 21, 1)
    assert due_run("0 2 * * *", BERLIN, due.at, utc(2026, 11, 21, 2, 0, 30), None) is None
