"""Faults without a human (issue 17), as tables of (state observed) -> (plan) for ``decide``.

A committed version is a success whatever the builder pod did afterwards; a disruption is
retried without counting toward Stalled; a hung storage shows as StorageUnavailable and a
finished Job does not keep saying "Building"; a replaced build never overlaps the next.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from indexops_api.layout import build_key
from indexops_api.status import BuildResult, ConditionType, EventReason as ER, FaissIndexStatus, Reason
from faiss_operator.decide import decide

from factories import building, job, manifest, next_pass, observation, running, spec, stored

KILLED = "builder killed by SIGKILL (exit 137, Error) without writing a termination message"


def cond(plan, ctype: ConditionType):
    return plan.status.condition(ctype)


# --- item 1: a published version is a success whatever the pod's exit --------------------


def test_a_builder_killed_after_its_manifest_was_written_counts_as_a_success_and_serves():
    s = spec()
    b = running(s)
    plan = decide(observation(s, FaissIndexStatus(last_build=b, build_count=1), job=job(s, "Failed", KILLED),
                              manifest=manifest(b.version, b.build_key), versions=stored(b.version)))
    assert plan.status.last_build.result == BuildResult.SUCCEEDED
    assert plan.status.consecutive_failures == 0
    assert plan.status.current_version == b.version and plan.write_pointer.stable_version == b.version
    assert [e.reason for e in plan.events][0] == ER.BUILD_SUCCEEDED
    assert "SIGKILL" in plan.events[0].message and "the published version counts" in plan.events[0].message


def test_three_builders_killed_after_publishing_never_stall_the_index():
    s = spec(**{"build.maxConsecutiveFailures": 3})
    status = building(s, number=2, consecutive_failures=2)
    b = status.last_build
    plan = decide(observation(s, status, job=job(s, "Failed", KILLED, number=2), manifest=manifest(b.version, b.build_key)))
    assert plan.status.consecutive_failures == 0
    assert cond(plan, ConditionType.STALLED).status == "False"


def test_a_manifest_of_another_build_key_does_not_rescue_a_failed_build():
    s, other = spec(), spec(**{"parameters.efSearch": 128})
    b = running(s)
    plan = decide(observation(s, FaissIndexStatus(last_build=b, build_count=1), job=job(s, "Failed", KILLED),
                              manifest=manifest(b.version, build_key(other))))
    assert plan.status.last_build.result == BuildResult.FAILED and plan.status.consecutive_failures == 1


def test_a_failed_job_is_not_judged_while_storage_cannot_say_whether_it_published():
    s = spec()
    plan = decide(observation(s, FaissIndexStatus(last_build=running(s), build_count=1), job=job(s, "Failed", KILLED),
                              storage_error="storage did not answer within 10s", storage_unavailable=True))
    assert plan.status.last_build.result == BuildResult.RUNNING and plan.status.consecutive_failures == 0


# --- item 3: disruptions are retried without counting -------------------------------------


def test_a_disrupted_build_is_retried_at_once_without_counting_toward_stalled():
    s = spec(**{"build.maxConsecutiveFailures": 3})
    status = building(s, number=2, consecutive_failures=2)
    evicted = dataclasses.replace(job(s, "Failed", "builder pod idx-x was disrupted (EvictionByEvictionAPI: evicting)", number=2),
                                  disrupted=True)
    plan = decide(observation(s, status, job=evicted))
    assert plan.status.consecutive_failures == 2
    disrupted = plan.status.history[0]
    assert disrupted.reason == Reason.DISRUPTED.value and "EvictionByEvictionAPI" in disrupted.message
    assert [e.reason for e in plan.events] == [ER.BUILD_FAILED, ER.BUILD_STARTED]
    assert plan.create_job is not None and plan.create_job.trigger == "Retry"  # at once, no cooldown
    assert cond(plan, ConditionType.STALLED).status == "False"


# --- item 4: storage unavailable ----------------------------------------------------------


def test_a_hung_storage_shows_as_storage_unavailable_and_a_finished_job_stops_saying_building():
    s = spec()
    status = building(s)
    plan = decide(observation(s, status, job=job(s, "Succeeded", number=2),
                              storage_error="storage did not answer within 10s (reading s3://idx/...)", storage_unavailable=True))
    degraded, progressing = cond(plan, ConditionType.DEGRADED), cond(plan, ConditionType.PROGRESSING)
    assert (degraded.status, degraded.reason) == ("True", Reason.STORAGE_UNAVAILABLE)
    assert f"{status.current_version} keeps serving" in degraded.message
    assert progressing.reason == Reason.STORAGE_UNAVAILABLE and "finished (Succeeded)" in progressing.message
    assert plan.write_pointer is None and plan.prune_versions == []
    assert plan.status.current_version == status.current_version


def test_a_refused_storage_request_stays_a_storage_error():
    s = spec()
    plan = decide(observation(s, building(s), job=job(s, "Running", number=2), storage_error="access denied to s3://idx"))
    assert cond(plan, ConditionType.DEGRADED).reason == Reason.STORAGE_ERROR
    assert cond(plan, ConditionType.PROGRESSING).reason == Reason.BUILDING


# --- item 5: a replaced build never overlaps the new one ----------------------------------


def test_a_replacing_build_is_created_suspended_and_resumed_only_once_the_old_job_is_gone():
    old, new = spec(), spec(**{"parameters.efSearch": 128})
    stale = job(old, "Running", number=2)
    first = decide(observation(new, building(old), job=stale, generation=4))
    assert first.delete_jobs == [stale.name] and first.create_job.suspended
    assert first.resume_job is None
    created = next_pass(observation(new, building(old), job=stale, generation=4), first)
    # foreground deletion: the old Job stays listed (terminating) until its pod is gone
    terminating = dataclasses.replace(stale, terminating=True)
    new_job = dataclasses.replace(created.jobs[-1], suspended=True)
    waiting = decide(dataclasses.replace(created, jobs=(terminating, new_job)))
    assert waiting.resume_job is None and waiting.create_job is None
    assert "once the replaced builder's pods are gone" in cond(waiting, ConditionType.PROGRESSING).message
    gone = decide(dataclasses.replace(created, jobs=(new_job,)))
    assert gone.resume_job == new_job.name


def test_a_first_build_with_no_other_builder_starts_unsuspended():
    s = spec()
    plan = decide(observation(s, FaissIndexStatus()))
    assert plan.create_job is not None and not plan.create_job.suspended


def test_a_stray_running_builder_is_deleted_so_it_cannot_block_the_new_build_forever():
    old, new = spec(), spec(**{"parameters.efSearch": 128})
    stray = dataclasses.replace(job(old, "Running", number=1), name="idx-stray")
    tracked = job(old, "Running", number=2)
    plan = decide(observation(new, building(old), jobs=(stray, tracked), generation=4))
    assert set(plan.delete_jobs) == {stray.name, tracked.name} and plan.create_job.suspended


def test_a_replaced_builder_stuck_terminating_holds_the_new_build_at_most_five_minutes():
    old, new = spec(), spec(**{"parameters.efSearch": 128})
    stale = job(old, "Running", number=2)
    first = decide(observation(new, building(old), job=stale, generation=4))
    created = next_pass(observation(new, building(old), job=stale, generation=4), first)
    stuck = (dataclasses.replace(stale, terminating=True), dataclasses.replace(created.jobs[-1], suspended=True))
    waiting = decide(dataclasses.replace(created, jobs=stuck, now=created.now + timedelta(seconds=299)))
    assert waiting.resume_job is None
    late = decide(dataclasses.replace(created, jobs=stuck, now=created.now + timedelta(seconds=300)))
    assert late.resume_job == stuck[1].name
    assert any("still terminating after 300s" in e.message for e in late.events)
