"""Table-style tests of the pure reconcile decision: observation in, plan out."""

from __future__ import annotations

from datetime import timedelta

from indexops_api.layout import build_key, job_name, version_id
from indexops_api.status import BuildResult, ConditionType, EventReason, FaissIndexStatus, Reason
from faiss_operator.decide import decide
from faiss_operator.model import ServingObservation

from factories import NOW, job, manifest, observation, pointer, running, spec


def reasons(plan) -> list[EventReason]:
    return [e.reason for e in plan.events]


def cond(plan, ctype: ConditionType):
    return plan.status.condition(ctype)


def test_a_new_index_creates_one_job_named_from_its_spec_digest():
    s = spec()
    plan = decide(observation(s, serving=None))
    key = build_key(s)
    assert plan.create_job is not None
    assert plan.create_job.name == job_name("idx", key)
    assert plan.create_job.version == version_id(NOW, key)
    assert reasons(plan) == [EventReason.BUILD_STARTED]
    assert plan.status.last_build.result == BuildResult.RUNNING
    assert cond(plan, ConditionType.PROGRESSING).reason == Reason.BUILDING
    assert cond(plan, ConditionType.READY).status == "False"
    assert plan.status.observed_generation == 3
    assert plan.write_pointer is None and not plan.ensure_serving


def test_a_restarted_operator_adopts_the_existing_job_instead_of_creating_another():
    s = spec()
    plan = decide(observation(s, job=job(s, "Running")))
    assert plan.create_job is None
    assert plan.events == []
    assert plan.status.last_build.job == job(s, "Running").name
    assert plan.status.last_build.result == BuildResult.RUNNING


def test_a_running_build_stays_running_without_new_events():
    s = spec()
    status = FaissIndexStatus(last_build=running(s))
    plan = decide(observation(s, status, job=job(s, "Running")))
    assert plan.create_job is None and plan.events == []
    assert cond(plan, ConditionType.PROGRESSING).status == "True"


def test_a_successful_build_that_passes_the_gate_is_promoted_and_the_pointer_written():
    s = spec()
    j = job(s, "Succeeded")
    status = FaissIndexStatus(last_build=running(s))
    plan = decide(observation(s, status, job=j, manifest=manifest(j.version, j.build_key)))
    assert reasons(plan) == [EventReason.BUILD_SUCCEEDED, EventReason.PROMOTED]
    assert plan.status.current_version == j.version
    assert plan.status.last_good_version == j.version == plan.status.promoted_version
    assert plan.status.recall == 0.97 and plan.status.vectors == 1000
    assert plan.write_pointer is not None
    assert plan.write_pointer.stable_version == j.version and plan.write_pointer.generation == 1
    assert plan.ensure_serving
    assert cond(plan, ConditionType.READY).status == "True"
    assert plan.status.phase == "Serving"


def test_the_pointer_generation_increments_over_the_stored_pointer():
    s = spec()
    j = job(s, "Succeeded")
    plan = decide(
        observation(s, FaissIndexStatus(last_build=running(s), current_version="old"), job=j,
                    manifest=manifest(j.version, j.build_key), pointer=pointer("old", generation=4))
    )
    assert plan.write_pointer.generation == 5 and plan.write_pointer.stable_version == j.version


def test_a_build_below_min_recall_is_rejected_and_the_old_version_keeps_serving():
    s = spec()
    j = job(s, "Succeeded")
    status = FaissIndexStatus(last_build=running(s), current_version="v-old", last_good_version="v-old")
    plan = decide(observation(s, status, job=j, manifest=manifest(j.version, j.build_key, recall=0.42), pointer=pointer("v-old")))
    assert reasons(plan) == [EventReason.BUILD_SUCCEEDED, EventReason.VALIDATION_FAILED, EventReason.RETRY_SCHEDULED]
    assert "recall@10 0.4200 < minRecall 0.9000" in plan.events[1].message
    assert "v-old keeps serving" in plan.events[1].message
    assert plan.status.current_version == "v-old"
    assert plan.write_pointer is None
    degraded = cond(plan, ConditionType.DEGRADED)
    assert degraded.status == "True" and degraded.reason == Reason.VALIDATION_FAILED
    assert "0.4200" in degraded.message
    assert plan.status.last_build.result == BuildResult.VALIDATION_FAILED
    assert cond(plan, ConditionType.READY).status == "True"


def test_a_rejected_build_is_not_reported_twice():
    s = spec()
    j = job(s, "Succeeded")
    first = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=j, manifest=manifest(j.version, j.build_key, recall=0.5)))
    second = decide(observation(s, first.status, job=j, manifest=manifest(j.version, j.build_key, recall=0.5)))
    assert second.events == [] and second.create_job is None


def test_lowering_min_recall_promotes_the_rejected_build_without_rebuilding():
    s = spec()
    j = job(s, "Succeeded")
    rejected = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=j, manifest=manifest(j.version, j.build_key, recall=0.5)))
    lax = spec(**{"validation.minRecall": 0.4})
    assert build_key(lax) == build_key(s)
    plan = decide(observation(lax, rejected.status, job=j, manifest=manifest(j.version, j.build_key, recall=0.5)))
    assert plan.create_job is None
    assert reasons(plan) == [EventReason.PROMOTED]
    assert plan.status.current_version == j.version


def test_a_failed_job_reports_its_termination_message_and_counts_the_failure():
    s = spec()
    message = "SourceUnreachable: could not connect to 10.0.0.5:5432"
    plan = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=job(s, "Failed", message)))
    assert reasons(plan) == [EventReason.BUILD_FAILED, EventReason.RETRY_SCHEDULED]
    assert message in plan.events[0].message
    assert plan.status.consecutive_failures == 1
    degraded = cond(plan, ConditionType.DEGRADED)
    assert degraded.reason == Reason.BUILD_FAILED and message in degraded.message
    assert "to fix: the source did not answer" in degraded.message and f"retry at {plan.status.next_retry_time}" in degraded.message
    again = decide(observation(s, plan.status, job=job(s, "Failed", message)))
    assert again.events == [] and again.status.consecutive_failures == 1 and again.create_job is None


def test_a_failure_retrying_cannot_fix_stalls_at_once_with_the_remedy_and_no_pending_times():
    s = spec(schedule="0 * * * *")
    message = "InvalidVectors: 3 rows contain NaN"
    plan = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=job(s, "Failed", message)))
    assert reasons(plan) == [EventReason.BUILD_FAILED, EventReason.STALLED]
    assert "To fix: the source holds NaN/Inf values" in plan.events[1].message
    stalled = cond(plan, ConditionType.STALLED)
    assert (stalled.status, stalled.reason) == ("True", Reason.CONFIGURATION_ERROR) and "rebuild" in stalled.message
    assert "retrying will not help" in cond(plan, ConditionType.DEGRADED).message
    assert plan.status.next_retry_time is None and plan.status.next_scheduled_build is None
    assert plan.status.consecutive_failures == 1 and plan.status.phase == "Stalled"
    later = decide(observation(s, plan.status, job=job(s, "Failed", message), now=NOW + timedelta(hours=3)))
    assert later.create_job is None and later.events == [], "no retry and no scheduled build while it needs a fix"
    fixed = decide(observation(s, plan.status, job=job(s, "Failed", message), rebuild_request="2026-11-21T13:00:00Z",
                               now=NOW + timedelta(hours=3)))
    assert fixed.status.last_build.trigger.value == "Manual" and fixed.status.last_build.result == BuildResult.RUNNING
    assert cond(fixed, ConditionType.STALLED).status == "False"


def test_a_succeeded_job_without_a_manifest_is_a_failed_build():
    s = spec()
    plan = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=job(s, "Succeeded"), manifest_error="s3://idx/m.json does not exist"))
    assert reasons(plan) == [EventReason.BUILD_FAILED, EventReason.RETRY_SCHEDULED]
    assert cond(plan, ConditionType.DEGRADED).reason == Reason.MANIFEST_INVALID


def test_a_storage_error_waits_instead_of_failing_the_build():
    s = spec()
    status = FaissIndexStatus(last_build=running(s))
    plan = decide(observation(s, status, job=job(s, "Succeeded"), storage_error="s3://idx: storage unreachable"))
    assert plan.status.last_build.result == BuildResult.RUNNING
    assert plan.events == [] and plan.write_pointer is None
    assert cond(plan, ConditionType.DEGRADED).reason == Reason.STORAGE_ERROR


def test_changing_build_parameters_starts_a_new_build_while_the_old_version_serves():
    old = spec()
    j = job(old, "Succeeded")
    served = decide(observation(old, FaissIndexStatus(last_build=running(old)), job=j, manifest=manifest(j.version, j.build_key)))
    new = spec(**{"parameters.efSearch": 128})
    plan = decide(observation(new, served.status, pointer=pointer(j.version)))
    assert plan.create_job is not None and plan.create_job.build_key == build_key(new)
    assert plan.status.current_version == j.version
    assert plan.write_pointer is None
    assert cond(plan, ConditionType.READY).status == "True"
    assert cond(plan, ConditionType.PROGRESSING).reason == Reason.BUILDING


def test_changing_rollout_or_gates_does_not_rebuild():
    s = spec()
    for changed in (spec(**{"rollout.percent": 20}), spec(**{"validation.minRecall": 0.5}), spec(**{"serving.replicas": 3})):
        assert build_key(changed) == build_key(s)


def test_a_partial_rollout_makes_the_new_version_a_candidate_then_promotes_at_100():
    s = spec(**{"rollout.percent": 10})
    j = job(s, "Succeeded")
    status = FaissIndexStatus(last_build=running(s), current_version="v-old")
    plan = decide(observation(s, status, job=j, manifest=manifest(j.version, j.build_key), pointer=pointer("v-old")))
    assert reasons(plan) == [EventReason.BUILD_SUCCEEDED, EventReason.CANARY_STARTED]
    assert plan.status.candidate_version == j.version and plan.status.current_version == "v-old"
    assert plan.write_pointer.candidate_version == j.version and plan.write_pointer.candidate_percent == 10
    assert cond(plan, ConditionType.PROGRESSING).reason == Reason.ROLLING_OUT
    full = spec(**{"rollout.percent": 100})
    promoted = decide(observation(full, plan.status, pointer=plan.write_pointer))
    assert reasons(promoted) == [EventReason.PROMOTED]
    assert promoted.status.current_version == j.version and promoted.status.candidate_version is None
    assert promoted.write_pointer.stable_version == j.version and promoted.write_pointer.candidate_version is None


def test_serving_not_ready_keeps_ready_false_with_a_reason():
    s = spec()
    j = job(s, "Succeeded")
    plan = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=j, manifest=manifest(j.version, j.build_key),
                              serving=ServingObservation(exists=True, desired_replicas=2, ready_replicas=1)))
    ready = cond(plan, ConditionType.READY)
    assert ready.status == "False" and ready.reason == Reason.SERVING_UNAVAILABLE and "1/2 serving replicas" in ready.message


def test_an_invalid_spec_is_reported_once_and_changes_nothing_else():
    status = FaissIndexStatus(current_version="v1")
    plan = decide(observation(None, status, spec_error="spec.dimension: must be >= 1"))
    assert reasons(plan) == [EventReason.INVALID_SPEC]
    assert cond(plan, ConditionType.DEGRADED).reason == Reason.INVALID_SPEC
    assert plan.create_job is None and plan.write_pointer is None and plan.status.current_version == "v1"
    again = decide(observation(None, plan.status, spec_error="spec.dimension: must be >= 1"))
    assert again.events == []


def test_an_invalid_spec_still_says_whether_something_serves_so_ready_is_never_empty():
    serving = decide(observation(None, FaissIndexStatus(current_version="v1"), spec_error="spec.dimension: must be >= 1"))
    ready = cond(serving, ConditionType.READY)
    assert (ready.status, ready.reason) == ("True", Reason.SERVING) and "v1 keeps serving" in ready.message
    nothing = decide(observation(None, FaissIndexStatus(), spec_error="spec.dimension: must be >= 1"))
    assert (cond(nothing, ConditionType.READY).status, cond(nothing, ConditionType.READY).reason) == ("False", Reason.NO_VERSION)


def test_condition_transition_times_move_only_when_status_flips():
    s = spec()
    first = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=job(s, "Running")))
    before = cond(first, ConditionType.PROGRESSING).last_transition_time
    from datetime import timedelta
    later = observation(s, first.status, job=job(s, "Running"))
    later = later.__class__(**{**later.__dict__, "now": NOW + timedelta(minutes=5)})
    second = decide(later)
    assert cond(second, ConditionType.PROGRESSING).last_transition_time == before
