"""Every build lifecycle transition of ``decide``, as tables of (state observed) -> (plan).

What starts a build (schedule, rebuild annotation, spec change, retry), what stops it
(Stalled, suspend, Forbid), and restart safety. Multi-step stories use ``next_pass``: the
plan was executed (status written, Job created), then the operator looks again, maybe
later. Drift, missing artifacts, retention and pinning are in ``test_decide_versions``.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from indexops_api.layout import build_key, job_name
from indexops_api.status import BuildResult, ConditionType, EventReason as ER, Reason
from faiss_operator.conditions import timestamp
from faiss_operator.decide import decide
from faiss_operator.triggers import retry_delay_seconds

from factories import (
    NOW, building, finished, job, job_of, manifest, next_pass, observation, running, serving, spec, utc,
)

HOURLY = "0 * * * *"
REQ = "2026-11-21T11:55:00Z"  # a value of the rebuild-requested-at annotation
MINUTE = timedelta(minutes=1)


def reasons(plan) -> list[ER]:
    return [e.reason for e in plan.events]


def cond(plan, ctype: ConditionType):
    return plan.status.condition(ctype)


def stalled(s):
    """The status right after build 3 failed for the third time in a row."""
    plan = decide(observation(s, building(s, 3, consecutive_failures=2), job=job(s, "Failed", "OOMKilled", number=3)))
    assert cond(plan, ConditionType.STALLED).status == "True"
    return plan.status


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


def test_labels_and_other_annotations_reach_decide_as_the_same_observation_and_start_nothing():
    # Metadata edits do not bump metadata.generation, and observe reads only the rebuild
    # annotation: an edited label or annotation is the same observation again.
    s = spec()
    obs = observation(s, serving(s, last_handled_rebuild=REQ), rebuild_request=REQ)
    first = decide(obs)
    second = decide(next_pass(obs, first, now=NOW + MINUTE))
    assert first.create_job is None and second.create_job is None
    assert first.events == [] and second.events == []


# --- failures, retry, Stalled --------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "cap", "failures", "delay"),
    [(60, 3600, 1, 60), (60, 3600, 2, 120), (60, 3600, 3, 240), (60, 3600, 6, 1920), (60, 3600, 7, 3600), (60, 3600, 40, 3600),
     (10, 25, 3, 25)],
    ids=lambda v: str(v),
)
def test_the_retry_cooldown_doubles_per_failure_up_to_its_cap(base, cap, failures, delay):
    s = spec(**{"build.retryBackoffSeconds": base, "build.maxRetryBackoffSeconds": cap})
    assert retry_delay_seconds(s, failures) == delay


@pytest.mark.parametrize(("before", "delay"), [(0, 60), (1, 120), (3, 480)], ids=lambda v: f"{v}")
def test_a_failed_build_counts_and_waits_for_its_cooldown(before, delay):
    s = spec(**{"build.maxConsecutiveFailures": 5})
    plan = decide(observation(s, building(s, consecutive_failures=before), job=job(s, "Failed", "OOMKilled", number=2)))
    assert plan.status.consecutive_failures == before + 1
    assert plan.status.next_retry_time == timestamp(NOW + timedelta(seconds=delay))
    assert reasons(plan) == [ER.BUILD_FAILED, ER.RETRY_SCHEDULED]
    assert f"({before + 1}/5)" in plan.events[1].message
    progressing = cond(plan, ConditionType.PROGRESSING)
    assert (progressing.status, progressing.reason) == ("False", Reason.WAITING_FOR_RETRY)
    assert plan.status.next_retry_time in progressing.message
    assert plan.status.phase == "Degraded" and plan.create_job is None


@pytest.mark.parametrize(
    ("after_failure", "builds"),
    [
        pytest.param(timedelta(seconds=59), False, id="one second before the cooldown ends nothing starts"),
        pytest.param(timedelta(seconds=60), True, id="when the cooldown ends a Retry build starts"),
        pytest.param(timedelta(hours=5), True, id="long after the cooldown one Retry build starts"),
    ],
)
def test_a_retry_starts_only_after_the_cooldown(after_failure, builds):
    s = spec()
    failed = decide(observation(s, building(s), job=job(s, "Failed", "OOMKilled", number=2)))
    plan = decide(observation(s, failed.status, job=job(s, "Failed", number=2), now=NOW + after_failure))
    if builds:
        assert (plan.create_job.trigger, plan.create_job.number) == ("Retry", 3)
        assert plan.status.consecutive_failures == 1
    else:
        assert plan.create_job is None and plan.events == []


def test_the_last_allowed_failure_stalls_the_index():
    s = spec(**{"build.maxConsecutiveFailures": 3})
    plan = decide(observation(s, building(s, 3, consecutive_failures=2), job=job(s, "Failed", "OOMKilled", number=3)))
    assert plan.status.consecutive_failures == 3
    assert reasons(plan) == [ER.BUILD_FAILED, ER.STALLED]
    stalled_cond = cond(plan, ConditionType.STALLED)
    assert (stalled_cond.status, stalled_cond.reason) == ("True", Reason.TOO_MANY_FAILURES)
    assert "3 consecutive failed builds" in stalled_cond.message and "OOMKilled" in stalled_cond.message
    assert plan.status.phase == "Stalled"
    assert cond(plan, ConditionType.PROGRESSING).reason != Reason.WAITING_FOR_RETRY


STALL_SPEC = {"schedule": HOURLY, "sync.policy": "Rebuild"}


@pytest.mark.parametrize(
    ("status_update", "obs_update"),
    [
        pytest.param({}, {"now": NOW + timedelta(days=1)}, id="an elapsed retry cooldown"),
        pytest.param({"last_schedule_time": "2026-11-21T11:00:00Z"}, {"now": utc(2026, 11, 21, 12, 0, 30)}, id="a due schedule"),
        pytest.param({}, {"versions": {}}, id="missing serving artifacts"),
        pytest.param({"drift": "row count 1000 → 1100"}, {}, id="source drift with policy Rebuild"),
    ],
)
def test_no_automatic_trigger_builds_while_stalled(status_update, obs_update):
    s = spec(**STALL_SPEC)
    status = stalled(s).model_copy(update=status_update)
    plan = decide(observation(s, status, job=job(s, "Failed", number=3), **obs_update))
    assert plan.create_job is None
    assert cond(plan, ConditionType.STALLED).status == "True" and plan.status.phase == "Stalled"
    if "last_schedule_time" in status_update:
        assert plan.status.last_schedule_time == "2026-11-21T12:00:00Z"  # recorded, not built
        assert plan.events == []


@pytest.mark.parametrize(
    ("change", "trigger"),
    [
        pytest.param({"parameters.efSearch": 128}, "Spec", id="a build-relevant change builds the new spec at once"),
        pytest.param({"rollout.percent": 50}, "Retry", id="any other change retries the same build at once"),
    ],
)
def test_a_new_spec_generation_lifts_stalled_and_builds_again(change, trigger):
    s = spec()
    plan = decide(observation(spec(**change), stalled(s), job=job(s, "Failed", number=3), generation=4, now=NOW + MINUTE))
    assert plan.create_job.trigger == trigger
    assert plan.status.consecutive_failures == 0
    assert cond(plan, ConditionType.STALLED).status == "False"
    assert ER.RECOVERED in reasons(plan) and ER.STALLED not in reasons(plan)
    assert plan.status.phase == "Building"


def test_a_build_rejected_by_validation_counts_toward_stalled():
    s = spec()
    done = job(s, "Succeeded", number=3)
    plan = decide(observation(s, building(s, 3, consecutive_failures=2), job=done, manifest=manifest(done.version, done.build_key, recall=0.5)))
    assert reasons(plan) == [ER.BUILD_SUCCEEDED, ER.VALIDATION_FAILED, ER.STALLED]
    assert plan.status.consecutive_failures == 3 and plan.status.phase == "Stalled"
    assert plan.status.current_version == building(s).current_version


@pytest.mark.parametrize("percent", [100, 10], ids=["promoted", "canary"])
def test_a_successful_build_resets_the_failure_count(percent):
    s = spec(**{"rollout.percent": percent})
    done = job(s, "Succeeded", number=3)
    status = building(s, 3, consecutive_failures=2, next_retry_time="2026-11-21T11:00:00Z")
    plan = decide(observation(s, status, job=done, manifest=manifest(done.version, done.build_key)))
    assert plan.status.consecutive_failures == 0 and plan.status.next_retry_time is None
    assert cond(plan, ConditionType.DEGRADED).status == "False"
    assert plan.create_job is None


# --- restart safety ------------------------------------------------------------------------


def test_a_job_with_the_planned_name_is_adopted_instead_of_created():
    s = spec()
    made = job(s, "Running", at=NOW - 5 * MINUTE, number=2)  # created by a pass that crashed before writing status
    assert made.name == job_name("idx", build_key(s), serving(s).build_count + 1)
    plan = decide(observation(s, serving(s), jobs=(made,), rebuild_request=REQ))
    assert plan.create_job is None and ER.BUILD_STARTED not in reasons(plan)
    assert (plan.status.last_build.job, plan.status.last_build.version) == (made.name, made.version)
    assert plan.status.build_count == 2 and plan.status.last_handled_rebuild == REQ


@pytest.mark.parametrize("published", [False, True], ids=["without a manifest it failed", "with its manifest it succeeded"])
def test_a_tracked_job_that_vanished_is_judged_by_its_manifest(published):
    s = spec()
    status = building(s)
    v = status.last_build.version
    plan = decide(observation(s, status, jobs=(), manifest=manifest(v, build_key(s)) if published else None))
    if published:
        assert reasons(plan) == [ER.BUILD_SUCCEEDED, ER.PROMOTED]
        assert plan.status.current_version == v
    else:
        assert reasons(plan) == [ER.BUILD_FAILED, ER.RETRY_SCHEDULED]
        last = plan.status.last_build
        assert (last.result, last.reason) == (BuildResult.FAILED, Reason.MANIFEST_INVALID.value)
        assert last.message == f"builder Job {status.last_build.job} disappeared before it published a manifest"
        assert plan.status.consecutive_failures == 1
    assert plan.status.last_build.completion_time == timestamp(NOW)


@pytest.mark.parametrize(
    ("states", "tracked", "deleted"),
    [
        pytest.param({n: "Succeeded" for n in range(1, 5)}, 4, [], id="three finished Jobs besides the tracked one are kept"),
        pytest.param({n: "Failed" for n in range(1, 7)}, 6, [2, 1], id="older finished Jobs are deleted"),
        pytest.param({**{n: "Succeeded" for n in range(1, 7)}, 7: "Running"}, 7, [3, 2, 1], id="a running tracked Job is not counted"),
        pytest.param({n: "Succeeded" for n in range(1, 7)}, 1, [3, 2], id="the tracked Job is never deleted even when oldest"),
        pytest.param({**{n: "Succeeded" for n in range(1, 6)}, 6: "Running", 7: "Running"}, 7, [2, 1],
                     id="an untracked running Job is never deleted"),
    ],
)
def test_finished_jobs_beyond_the_newest_three_are_deleted(states, tracked, deleted):
    s = spec()
    jobs = tuple(job(s, state, number=n) for n, state in states.items())
    last = running(s, number=tracked) if states[tracked] == "Running" else finished(s, number=tracked)
    plan = decide(observation(s, serving(s, last_build=last, build_count=max(states)), jobs=jobs))
    assert plan.delete_jobs == [job_name("idx", build_key(s), n) for n in deleted]
    assert plan.create_job is None


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
