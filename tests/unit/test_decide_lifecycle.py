"""Every build lifecycle transition of ``decide``, as tables of (state observed) -> (plan).

What starts a build (schedule, rebuild annotation, spec change, retry), what stops it
(suspend, Forbid). Failures, Stalled and restart safety are in ``test_decide_failures``. Multi-step stories use ``next_pass``: the
plan was executed (status written, Job created), then the operator looks again, maybe
later. Drift, missing artifacts, retention and pinning are in ``test_decide_versions``.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from indexops_api.layout import build_key
from indexops_api.status import BuildResult, ConditionType, EventReason as ER, Reason
from faiss_operator.decide import decide

from factories import (
    NOW, building, finished, stalled, job, job_of, manifest, next_pass, observation, serving, spec, utc,
)

HOURLY = "0 * * * *"
REQ = "2026-11-21T11:55:00Z"  # a value of the rebuild-requested-at annotation
MINUTE = timedelta(minutes=1)


def reasons(plan) -> list[ER]:
    return [e.reason for e in plan.events]


def cond(plan, ctype: ConditionType):
    return plan.status.condition(ctype)


# --- schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_schedule", "now", "builds"),
    [
        pytest.param("2026-11-21T12:00:00Z", utc(2026, 11, 21, 12, 30), False, id="a schedule not yet due starts nothing"),
        pytest.param("2026-11-21T11:00:00Z", utc(2026, 11, 21, 12, 0, 30), True, id="a due fire time starts one Schedule build"),
        pytest.param("2026-11-21T06:00:00Z", utc(2026, 11, 21, 12, 0, 30), True,
                     id="an operator down across six fire times starts one build for the latest"),
    ],
)
def test_a_cron_schedule_builds_only_when_a_fire_time_passed(last_schedule, now, builds):
    s = spec(schedule=HOURLY)
    plan = decide(observation(s, serving(s, last_schedule_time=last_schedule), now=now))
    assert plan.status.last_schedule_time == "2026-11-21T12:00:00Z"
    assert plan.status.next_scheduled_build == "2026-11-21T13:00:00Z"
    if builds:
        assert reasons(plan) == [ER.BUILD_SCHEDULED, ER.BUILD_STARTED]
        assert (plan.create_job.trigger, plan.create_job.number) == ("Schedule", 2)
        again = decide(next_pass(observation(s, serving(s, last_schedule_time=last_schedule), now=now), plan, now=now + MINUTE))
        assert again.create_job is None and again.events == []
    else:
        assert plan.create_job is None and plan.events == []
        assert "next scheduled build at 2026-11-21T13:00:00Z" in cond(plan, ConditionType.PROGRESSING).message


def test_a_scheduled_run_later_than_the_starting_deadline_is_skipped_once():
    s = spec(schedule=HOURLY, startingDeadlineSeconds=60)
    obs = observation(s, serving(s, last_schedule_time="2026-11-21T11:00:00Z"), now=utc(2026, 11, 21, 12, 5))
    plan = decide(obs)
    assert plan.create_job is None
    assert reasons(plan) == [ER.SCHEDULE_MISSED]
    assert "300s late > startingDeadlineSeconds 60" in plan.events[0].message
    assert plan.status.last_schedule_time == "2026-11-21T12:00:00Z"
    again = decide(next_pass(obs, plan, now=utc(2026, 11, 21, 12, 6)))
    assert again.create_job is None and again.events == []


@pytest.mark.parametrize(
    ("deadline", "finish", "builds"),
    [
        pytest.param(None, utc(2026, 11, 21, 12, 40), True, id="without a deadline the waiting run starts whenever the build ends"),
        pytest.param(600, utc(2026, 11, 21, 12, 5), True, id="within startingDeadlineSeconds the waiting run starts"),
        pytest.param(600, utc(2026, 11, 21, 12, 20), False, id="past startingDeadlineSeconds the waiting run is skipped"),
    ],
)
def test_forbid_keeps_a_fire_time_due_while_a_build_runs(deadline, finish, builds):
    s = spec(schedule=HOURLY, startingDeadlineSeconds=deadline)
    obs = observation(s, building(s, last_schedule_time="2026-11-21T11:00:00Z"), job=job(s, "Running", number=2),
                      now=utc(2026, 11, 21, 12, 0, 30))
    waiting = decide(obs)
    assert waiting.create_job is None and waiting.events == [] and waiting.delete_jobs == []
    assert waiting.status.last_schedule_time == "2026-11-21T11:00:00Z"
    done = job(s, "Succeeded", number=2)
    plan = decide(next_pass(obs, waiting, now=finish, job=done, manifest=manifest(done.version, done.build_key)))
    assert plan.status.last_schedule_time == "2026-11-21T12:00:00Z"
    if builds:
        assert reasons(plan) == [ER.BUILD_SUCCEEDED, ER.PROMOTED, ER.BUILD_SCHEDULED, ER.BUILD_STARTED]
        assert (plan.create_job.trigger, plan.create_job.number) == ("Schedule", 3)
    else:
        assert reasons(plan) == [ER.BUILD_SUCCEEDED, ER.PROMOTED, ER.SCHEDULE_MISSED]
        assert plan.create_job is None


def test_replace_stops_the_running_build_and_starts_the_scheduled_one():
    s = spec(schedule=HOURLY, concurrencyPolicy="Replace")
    old = job(s, "Running", number=2)
    plan = decide(observation(s, building(s, last_schedule_time="2026-11-21T11:00:00Z"), job=old, now=utc(2026, 11, 21, 12, 0, 30)))
    assert plan.delete_jobs == [old.name]
    assert reasons(plan) == [ER.BUILD_SCHEDULED, ER.BUILD_REPLACED, ER.BUILD_STARTED]
    assert (plan.create_job.trigger, plan.create_job.number) == ("Schedule", 3)
    replaced = plan.status.history[0]
    assert (replaced.job, replaced.result, replaced.reason) == (old.name, BuildResult.FAILED, "Replaced")
    assert plan.status.consecutive_failures == 0


def test_a_suspended_schedule_starts_nothing_and_says_so():
    s = spec(schedule=HOURLY, suspend=True)
    plan = decide(observation(s, serving(s, last_schedule_time="2026-11-21T11:00:00Z"), now=utc(2026, 11, 21, 12, 0, 30)))
    assert plan.create_job is None and plan.events == []
    assert plan.status.next_scheduled_build is None
    assert plan.status.last_schedule_time == "2026-11-21T11:00:00Z"
    progressing = cond(plan, ConditionType.PROGRESSING)
    assert (progressing.status, progressing.reason) == ("False", Reason.SUSPENDED)


@pytest.mark.parametrize(
    ("last_schedule", "now", "builds"),
    [
        pytest.param("2026-11-20T01:00:00Z", utc(2026, 11, 21, 0, 59), False, id="at 00:59 UTC the Berlin 02:00 run is ahead"),
        pytest.param("2026-11-20T01:00:00Z", utc(2026, 11, 21, 1, 0, 30), True, id="at 01:00 UTC in winter the Berlin 02:00 run fires"),
        pytest.param("2026-11-21T01:00:00Z", utc(2026, 11, 21, 2, 0, 30), False, id="02:00 UTC is not a second run"),
    ],
)
def test_a_schedule_fires_in_its_time_zone(last_schedule, now, builds):
    s = spec(schedule="0 2 * * *", timeZone="Europe/Berlin")
    plan = decide(observation(s, serving(s, last_schedule_time=last_schedule), now=now))
    assert (plan.create_job is not None) == builds
    assert plan.status.next_scheduled_build == ("2026-11-21T01:00:00Z" if now.hour == 0 else "2026-11-22T01:00:00Z")
    if builds:
        assert plan.status.last_schedule_time == "2026-11-21T01:00:00Z"


def test_a_duplicate_pass_never_creates_a_second_job():
    s = spec(schedule=HOURLY)
    obs = observation(s, serving(s, last_schedule_time="2026-11-21T11:00:00Z"), now=utc(2026, 11, 21, 12, 0, 30))
    first = decide(obs)
    assert first.create_job is not None
    # The same event delivered twice before anything was written names the same Job (the API server refuses a copy).
    assert decide(obs).create_job == first.create_job
    # Status written and Job created, then the same observation again: nothing new.
    again = decide(next_pass(obs, first))
    assert again.create_job is None and again.events == [] and again.delete_jobs == []
    assert again.status.last_build == first.status.last_build and again.status.build_count == 2
    # Job created but the status write lost (crash), seen a little later: the Job is adopted.
    crashed = dataclasses.replace(next_pass(obs, first, status=obs.status), now=obs.now + MINUTE)
    adopted = decide(crashed)
    assert adopted.create_job is None and ER.BUILD_STARTED not in reasons(adopted)
    assert adopted.status.last_build == first.status.last_build


# --- manual rebuild ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handled", "annotation", "suspend", "builds"),
    [
        pytest.param(None, REQ, False, True, id="a first request builds"),
        pytest.param(REQ, REQ, False, False, id="the same request again builds nothing"),
        pytest.param(REQ, "2026-11-21T11:58:00Z", False, True, id="a new request value builds"),
        pytest.param(None, None, False, False, id="no annotation builds nothing"),
        pytest.param(None, REQ, True, True, id="a request builds even when suspended"),
    ],
)
def test_the_rebuild_annotation_starts_one_manual_build_per_new_value(handled, annotation, suspend, builds):
    s = spec(suspend=suspend)
    obs = observation(s, serving(s, last_handled_rebuild=handled), rebuild_request=annotation)
    plan = decide(obs)
    if not builds:
        assert plan.create_job is None and plan.events == []
        assert plan.status.last_handled_rebuild == handled
        return
    assert reasons(plan) == [ER.REBUILD_REQUESTED, ER.BUILD_STARTED]
    assert (plan.create_job.trigger, plan.create_job.number) == ("Manual", 2)
    assert plan.status.last_handled_rebuild == annotation
    running_pass = decide(next_pass(obs, plan, now=NOW + MINUTE))
    assert running_pass.create_job is None and running_pass.events == []
    made = plan.create_job
    finished_pass = decide(next_pass(obs, running_pass, now=NOW + 30 * MINUTE, job=job_of(made, "Succeeded"),
                                     manifest=manifest(made.version, made.build_key)))
    assert reasons(finished_pass) == [ER.BUILD_SUCCEEDED, ER.PROMOTED]
    assert finished_pass.create_job is None


def test_a_rebuild_requested_during_a_build_waits_then_builds_once():
    s = spec()
    obs = observation(s, building(s), job=job(s, "Running", number=2), rebuild_request=REQ)
    waiting = decide(obs)
    assert waiting.create_job is None and waiting.events == []
    assert waiting.status.last_handled_rebuild is None
    done = job(s, "Succeeded", number=2)
    plan = decide(next_pass(obs, waiting, now=NOW + 10 * MINUTE, job=done, manifest=manifest(done.version, done.build_key)))
    assert reasons(plan) == [ER.BUILD_SUCCEEDED, ER.PROMOTED, ER.REBUILD_REQUESTED, ER.BUILD_STARTED]
    assert (plan.create_job.trigger, plan.create_job.number) == ("Manual", 3)
    assert plan.status.last_handled_rebuild == REQ
    assert decide(next_pass(obs, plan, now=NOW + 11 * MINUTE, manifest=None)).create_job is None


def test_a_manual_rebuild_lifts_stalled():
    s = spec()
    plan = decide(observation(s, stalled(s), job=job(s, "Failed", number=3), rebuild_request=REQ, now=NOW + MINUTE))
    assert reasons(plan) == [ER.REBUILD_REQUESTED, ER.BUILD_STARTED, ER.RECOVERED]
    assert plan.create_job.trigger == "Manual"
    assert plan.status.consecutive_failures == 0 and plan.status.next_retry_time is None
    assert cond(plan, ConditionType.STALLED).status == "False"
    assert plan.status.phase == "Building"


# --- spec changes --------------------------------------------------------------------------


def test_a_build_relevant_spec_change_replaces_the_running_build_of_the_old_spec():
    old, new = spec(), spec(**{"parameters.efSearch": 128})
    stale = job(old, "Running", number=2)
    plan = decide(observation(new, building(old), job=stale, generation=4))
    assert plan.delete_jobs == [stale.name]
    assert reasons(plan) == [ER.BUILD_REPLACED, ER.BUILD_STARTED]
    assert (plan.create_job.trigger, plan.create_job.build_key, plan.create_job.number) == ("Spec", build_key(new), 3)
    assert plan.status.history[0].reason == "Replaced"
    assert plan.status.current_version == building(old).current_version


@pytest.mark.parametrize(
    "change",
    [
        {"rollout.percent": 20}, {"rollout.keepVersions": 2}, {"validation.minRecall": 0.5}, {"validation.minVectors": 5},
        {"serving.replicas": 3}, {"build.maxConsecutiveFailures": 5}, {"build.retryBackoffSeconds": 5},
        {"storage.deletionPolicy": "Delete"}, {"sync.policy": "Report"}, {"concurrencyPolicy": "Replace"}, {"suspend": True},
    ],
    ids=lambda change: f"changing {next(iter(change))} does not rebuild",
)
def test_a_spec_change_outside_the_build_fields_starts_no_build(change):
    s, changed = spec(), spec(**change)
    assert build_key(changed) == build_key(s)
    plan = decide(observation(changed, serving(s), generation=4))
    assert plan.create_job is None and plan.events == []
    assert plan.status.current_version == serving(s).current_version
    assert plan.status.observed_generation == 4


def test_raising_min_recall_rebuilds_an_auto_index_without_tuning_because_auto_aims_at_it():
    auto = {"indexType": "Auto", "parameters": {}}
    s, raised = spec(**auto), spec(**auto, **{"validation.minRecall": 0.97})
    assert build_key(raised) != build_key(s)
    plan = decide(observation(raised, serving(s), generation=4))
    assert plan.create_job is not None and plan.create_job.trigger == "Spec"
    tuned = {**auto, "tuning": {"targetRecall": 0.95}}
    assert build_key(spec(**tuned)) == build_key(spec(**tuned, **{"validation.minRecall": 0.97})), "tuning sets Auto's target"


def test_labels_and_other_annotations_reach_decide_as_the_same_observation_and_start_nothing():
    # Metadata edits do not bump metadata.generation, and observe reads only the rebuild
    # annotation: an edited label or annotation is the same observation again.
    s = spec()
    obs = observation(s, serving(s, last_handled_rebuild=REQ), rebuild_request=REQ)
    first = decide(obs)
    second = decide(next_pass(obs, first, now=NOW + MINUTE))
    assert first.create_job is None and second.create_job is None
    assert first.events == [] and second.events == []


# --- metrics-relevant status ---------------------------------------------------------------


def test_history_keeps_the_ten_newest_finished_builds_and_build_count_counts_every_start():
    s = spec()
    history = [finished(s, number=n, at=NOW - timedelta(days=30 - n)) for n in range(14, 4, -1)]
    status = serving(s, number=15, history=history)
    plan = decide(observation(s, status, rebuild_request=REQ))
    assert plan.status.build_count == 16 and plan.create_job.number == 16
    assert [b.number for b in plan.status.history] == list(range(15, 5, -1))


def test_an_older_rebuild_timestamp_put_back_by_a_gitops_sync_starts_no_build():
    from faiss_operator.conditions import is_new_request

    assert is_new_request("2026-11-21T12:00:00Z", "2026-11-21T11:00:00Z")
    assert not is_new_request("2026-11-21T10:00:00Z", "2026-11-21T11:00:00Z")
    assert not is_new_request("2026-11-21T11:00:00Z", "2026-11-21T11:00:00Z")
    assert is_new_request("please", "2026-11-21T11:00:00Z") and is_new_request("again", "please")
    s = spec()
    st = serving(s, last_handled_rebuild="2026-11-21T11:00:00Z")
    plan = decide(observation(s, st, rebuild_request="2026-11-21T10:00:00Z"))
    assert plan.create_job is None and plan.status.last_handled_rebuild == "2026-11-21T11:00:00Z"
