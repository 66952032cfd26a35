"""Failure handling and restart safety of ``decide``, as tables of (state observed) -> (plan).

Retry cooldown, Stalled and what lifts it; adopting a Job a crashed pass created, a
tracked Job that vanished, and deleting old finished Jobs. Schedules, manual rebuilds and
spec changes are in ``test_decide_lifecycle``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from indexops_api.layout import build_key, job_name
from indexops_api.status import BuildResult, ConditionType, EventReason as ER, Reason
from faiss_operator.conditions import timestamp
from faiss_operator.decide import decide
from faiss_operator.triggers import retry_delay_seconds

from factories import (
    NOW, building, finished, stalled, job, manifest, observation, running, serving, spec, utc,
)

MINUTE = timedelta(minutes=1)
HOURLY = "0 * * * *"
REQ = "2026-11-21T11:55:00Z"


def reasons(plan) -> list[ER]:
    return [e.reason for e in plan.events]


def cond(plan, ctype: ConditionType):
    return plan.status.condition(ctype)

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


