"""Which version serves and which are kept, as tables of (state observed) -> (plan).

Drift checks, a serving version gone from storage, retention under ``keepVersions`` and
pinning. Build triggers, retries and restart safety are in ``test_decide_lifecycle``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from indexops_api.spec import IndexType
from indexops_api.layout import build_key
from indexops_api.manifest import SourceFingerprint
from indexops_api.status import BuildResult, ConditionType, EventReason as ER, Reason
from faiss_operator.conditions import timestamp
from faiss_operator.decide import decide
from faiss_operator.model import SyncObservation

from factories import (
    NOW, building, finished, job, manifest, next_pass, observation, pointer, running, serving, spec, stored, utc, version,
)

MINUTE = timedelta(minutes=1)


def reasons(plan) -> list[ER]:
    return [e.reason for e in plan.events]


def cond(plan, ctype: ConditionType):
    return plan.status.condition(ctype)


# --- drift ---------------------------------------------------------------------------------


def fingerprint(count: int) -> SourceFingerprint:
    return SourceFingerprint(uri="postgres://db/emb", count=count)


DRIFTED = SyncObservation(recorded=fingerprint(1000), probed=fingerprint(1100))
DRIFT = "row count 1000 → 1100"


def test_source_drift_with_policy_rebuild_is_reported_once_and_rebuilt_once():
    s = spec(**{"sync.policy": "Rebuild"})
    obs = observation(s, serving(s), sync=DRIFTED)
    plan = decide(obs)
    assert reasons(plan) == [ER.SOURCE_DRIFT, ER.BUILD_STARTED]
    assert DRIFT in plan.events[0].message and "rebuilding" in plan.events[0].message
    assert plan.create_job.trigger == "Drift"
    assert plan.status.drift == DRIFT and plan.status.last_sync_time == timestamp(NOW)
    again = decide(next_pass(obs, plan, now=NOW + 10 * MINUTE))
    assert again.events == [] and again.create_job is None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"sync.policy": "Report"}, id="policy Report"),
        pytest.param({"sync.policy": "Rebuild", "suspend": True}, id="policy Rebuild while suspended"),
    ],
)
def test_drift_that_must_not_rebuild_is_only_reported(change):
    s = spec(**change)
    obs = observation(s, serving(s), sync=DRIFTED)
    plan = decide(obs)
    assert reasons(plan) == [ER.SOURCE_DRIFT] and "reporting only" in plan.events[0].message
    assert plan.create_job is None
    degraded = cond(plan, ConditionType.DEGRADED)
    assert (degraded.status, degraded.reason) == ("True", Reason.SOURCE_DRIFT) and DRIFT in degraded.message
    again = decide(next_pass(obs, plan, now=NOW + 10 * MINUTE))
    assert again.events == [] and again.create_job is None


def test_a_failed_drift_check_is_reported_once_and_cleared_by_a_clean_one():
    s = spec(**{"sync.policy": "Rebuild"})
    obs = observation(s, serving(s), sync=SyncObservation(error="OperationalError: connection refused"))
    plan = decide(obs)
    assert reasons(plan) == [ER.SYNC_FAILED] and plan.create_job is None
    degraded = cond(plan, ConditionType.DEGRADED)
    assert (degraded.status, degraded.reason) == ("True", Reason.SYNC_FAILED) and "connection refused" in degraded.message
    assert decide(next_pass(obs, plan, now=NOW + 10 * MINUTE)).events == []
    clean = decide(next_pass(obs, plan, now=NOW + 20 * MINUTE, sync=SyncObservation(recorded=fingerprint(1000), probed=fingerprint(1000))))
    assert clean.status.drift is None and cond(clean, ConditionType.DEGRADED).status == "False"
    assert clean.events == [] and clean.create_job is None


@pytest.mark.parametrize("percent", [100, 10], ids=["promoted at 100%", "as a canary"])
def test_a_drift_build_that_passes_its_gates_clears_the_drift(percent):
    s = spec(**{"sync.policy": "Rebuild", "rollout.percent": percent})
    done = job(s, "Succeeded", number=2)
    plan = decide(observation(s, building(s, drift=DRIFT), job=done, manifest=manifest(done.version, done.build_key)))
    assert plan.status.drift is None
    assert cond(plan, ConditionType.DEGRADED).status == "False"
    assert plan.create_job is None
    assert done.version in (plan.status.current_version, plan.status.candidate_version)


def test_a_failed_drift_build_waits_for_its_cooldown_before_rebuilding():
    s = spec(**{"sync.policy": "Rebuild"})
    failed = decide(observation(s, building(s, drift=DRIFT), job=job(s, "Failed", "OOMKilled", number=2)))
    assert reasons(failed) == [ER.BUILD_FAILED, ER.RETRY_SCHEDULED]
    assert failed.create_job is None
    soon = decide(observation(s, failed.status, job=job(s, "Failed", number=2), now=NOW + timedelta(seconds=30)))
    assert soon.create_job is None
    later = decide(observation(s, failed.status, job=job(s, "Failed", number=2), now=NOW + 2 * MINUTE))
    assert later.create_job is not None and later.create_job.number == 3


# --- artifacts missing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listing", "builds"),
    [
        pytest.param(lambda current: stored(), True, id="a serving version absent from storage is rebuilt"),
        pytest.param(lambda current: stored(incomplete=(current,)), True, id="a serving version without its manifest is rebuilt"),
        pytest.param(lambda current: stored(current), False, id="a complete serving version is left alone"),
    ],
)
def test_a_serving_version_missing_from_storage_is_rebuilt(listing, builds):
    s = spec()
    status = serving(s)
    plan = decide(observation(s, status, versions=listing(status.current_version)))
    if builds:
        assert reasons(plan) == [ER.ARTIFACTS_MISSING, ER.BUILD_STARTED]
        assert plan.create_job.trigger == "ArtifactsMissing"
        assert cond(plan, ConditionType.DEGRADED).reason == Reason.ARTIFACTS_MISSING
    else:
        assert plan.create_job is None and plan.events == []


@pytest.mark.parametrize("missing", [True, False], ids=["missing: promoted at 100%", "present: a 10% canary"])
def test_a_version_rebuilt_for_missing_artifacts_serves_100_percent_at_once(missing):
    s = spec(**{"rollout.percent": 10})
    status = building(s)
    done = job(s, "Succeeded", number=2)
    listing = stored(done.version) if missing else stored(status.current_version, done.version)
    plan = decide(observation(s, status, job=done, manifest=manifest(done.version, done.build_key), versions=listing))
    if missing:
        assert (plan.status.current_version, plan.status.candidate_version) == (done.version, None)
        assert (plan.write_pointer.stable_version, plan.write_pointer.candidate_version) == (done.version, None)
        assert reasons(plan) == [ER.BUILD_SUCCEEDED, ER.PROMOTED]
        assert cond(plan, ConditionType.DEGRADED).status == "False"
    else:
        assert (plan.status.current_version, plan.status.candidate_version) == (status.current_version, done.version)


def test_missing_artifacts_are_not_rebuilt_while_a_pin_holds_every_new_build():
    s = pinned_spec()  # the pinned version is not stored either: nothing can serve until the pin is fixed
    plan = decide(observation(s, building(s), job=job(s, "Succeeded", number=2),
                              manifest=manifest(version(s, NOW), build_key(s)), versions=stored(version(s, NOW))))
    assert plan.status.current_version == serving(s).current_version  # held by the pin
    assert plan.create_job is None  # building again would be held again, forever


def test_a_failed_rebuild_of_missing_artifacts_waits_for_its_cooldown():
    s = spec()
    plan = decide(observation(s, building(s), job=job(s, "Failed", "OOMKilled", number=2), versions=stored()))
    assert reasons(plan) == [ER.BUILD_FAILED, ER.RETRY_SCHEDULED]
    assert plan.create_job is None


# --- retention -----------------------------------------------------------------------------


def days(s, *numbers: int) -> list[str]:
    """Version ids of ``s`` built on the given days of November 2026."""
    return [version(s, utc(2026, 11, d)) for d in numbers]


def test_versions_beyond_keep_versions_are_pruned_with_an_event():
    s = spec(**{"rollout.keepVersions": 2})
    vs = days(s, 1, 2, 3, 4, 5)
    plan = decide(observation(s, serving(s, at=utc(2026, 11, 5)), versions=stored(*vs)))
    assert plan.prune_versions == vs[:3]
    assert reasons(plan) == [ER.VERSIONS_PRUNED]
    assert "keepVersions=2" in plan.events[0].message and all(v in plan.events[0].message for v in vs[:3])
    assert plan.status.stored_versions == 2


GUARDS = {
    "the serving version": lambda s, old: ({}, {"current_version": old, "last_good_version": old}, ()),
    "the canary candidate": lambda s, old: ({}, {"candidate_version": old}, ()),
    "the last good version": lambda s, old: ({}, {"last_good_version": old}, ()),
    "the pinned version": lambda s, old: ({"rollout.pinnedVersion": old}, {}, ()),
    "the last build's version": lambda s, old: ({}, {"last_build": finished(s, BuildResult.VALIDATION_FAILED, 2, utc(2026, 11, 1))}, ()),
    "a running build's version": lambda s, old: ({}, {}, (job(s, "Running", at=utc(2026, 11, 1), number=9),)),
}


@pytest.mark.parametrize("guard", GUARDS)
def test_retention_never_prunes_a_guarded_version(guard):
    base = spec()
    old, *rest = days(base, 1, 2, 3, 4, 5)
    spec_change, status_update, jobs = GUARDS[guard](base, old)
    s = spec(**{"rollout.keepVersions": 1, "rollout.percent": 10, **spec_change})
    status = serving(s, at=utc(2026, 11, 5)).model_copy(update=status_update)
    plan = decide(observation(s, status, versions=stored(old, *rest), jobs=jobs))
    assert plan.prune_versions == rest[:3]


@pytest.mark.parametrize("owned", [False, True], ids=["an orphaned incomplete version is pruned", "a running Job's is kept"])
def test_an_incomplete_version_is_pruned_unless_a_running_job_owns_it(owned):
    s = spec()
    current, partial = days(s, 20, 21)
    jobs = (job(s, "Running", at=utc(2026, 11, 21), number=9),) if owned else ()
    plan = decide(observation(s, serving(s, at=utc(2026, 11, 20)), versions=stored(current, incomplete=(partial,)), jobs=jobs))
    assert plan.prune_versions == ([] if owned else [partial])


def test_nothing_is_pruned_or_reported_on_a_storage_error():
    s = spec(**{"rollout.keepVersions": 1})
    vs = days(s, 1, 2, 3)
    plan = decide(observation(s, serving(s, at=utc(2026, 11, 3)), versions=stored(*vs), storage_error="s3://idx: timeout"))
    assert plan.prune_versions == []
    assert ER.VERSIONS_PRUNED not in reasons(plan)
    assert cond(plan, ConditionType.DEGRADED).reason == Reason.STORAGE_ERROR


# --- pinning -------------------------------------------------------------------------------

PINNED_DAY = utc(2026, 11, 1)


def pinned_spec(**overrides):
    return spec(**{"rollout.pinnedVersion": version(spec(), PINNED_DAY), **overrides})


@pytest.mark.parametrize("candidate", [False, True], ids=["while serving", "during a canary"])
def test_a_pinned_version_serves_exactly_and_is_reported_once(candidate):
    s = pinned_spec(**{"rollout.percent": 10})
    pin, key = s.rollout.pinned_version, build_key(s)
    status = serving(s)
    good = status.current_version
    if candidate:
        status = status.model_copy(update={"candidate_version": version(s, NOW), "rollout_percent": 10})
    obs = observation(s, status, pointer=pointer(good), pinned_manifest=manifest(pin, key, recall=0.95))
    plan = decide(obs)
    assert reasons(plan) == [ER.PINNED]
    assert (plan.status.current_version, plan.status.pinned_version, plan.status.candidate_version) == (pin, pin, None)
    assert plan.status.last_good_version == good and plan.status.recall == 0.95
    assert plan.status.promoted_version == pin  # "last good" describes what serves; unpinning returns to last_good_version
    assert (plan.write_pointer.stable_version, plan.write_pointer.candidate_version, plan.write_pointer.generation) == (pin, None, 2)
    assert cond(plan, ConditionType.READY).reason == Reason.PINNED
    again = decide(next_pass(obs, plan, pointer=plan.write_pointer, pinned_manifest=None, now=NOW + MINUTE))
    assert again.events == [] and again.write_pointer is None and again.status.current_version == pin


def test_status_names_the_index_type_that_serves_when_a_pin_crosses_a_migration():
    s = pinned_spec(indexType="IVF")
    pin, key = s.rollout.pinned_version, build_key(s)
    hnsw = manifest(pin, key).model_copy(update={"index_type": IndexType.HNSW})
    plan = decide(observation(s, serving(s), pointer=pointer(serving(s).current_version), pinned_manifest=hnsw))
    assert plan.status.current_version == pin and plan.status.index_type == "HNSW" and s.index_type.value == "IVF"


def pinned_status(s, **fields):
    pin = s.rollout.pinned_version
    return serving(s, current_version=pin, pinned_version=pin, **fields)


def test_a_version_built_while_pinned_is_held():
    s = pinned_spec()
    status = pinned_status(s, last_build=running(s, number=2), build_count=2)
    done = job(s, "Succeeded", number=2)
    obs = observation(s, status, job=done, manifest=manifest(done.version, done.build_key), pointer=pointer(status.current_version))
    plan = decide(obs)
    assert reasons(plan) == [ER.BUILD_SUCCEEDED]
    assert (plan.status.current_version, plan.status.candidate_version) == (s.rollout.pinned_version, None)
    assert plan.status.last_build.result == BuildResult.SUCCEEDED and plan.write_pointer is None
    again = decide(next_pass(obs, plan, now=NOW + MINUTE))
    assert again.events == [] and again.create_job is None


def test_drift_found_while_pinned_is_only_reported():
    s = pinned_spec(**{"sync.policy": "Rebuild"})
    plan = decide(observation(s, pinned_status(s), sync=DRIFTED))
    assert reasons(plan) == [ER.SOURCE_DRIFT] and "reporting only" in plan.events[0].message
    assert plan.create_job is None and cond(plan, ConditionType.DEGRADED).reason == Reason.SOURCE_DRIFT


def test_drift_while_pinned_builds_at_most_once():
    s = pinned_spec(**{"sync.policy": "Rebuild"})
    status = pinned_status(s, last_build=running(s, number=2), build_count=2, drift=DRIFT)
    done = job(s, "Succeeded", number=2)
    plan = decide(observation(s, status, job=done, manifest=manifest(done.version, done.build_key)))
    assert plan.create_job is None  # the held build cannot serve: building again would loop forever


@pytest.mark.parametrize(
    ("pinned_manifest", "problem"),
    [
        pytest.param(None, "its manifest was not found", id="a pinned version that is not stored"),
        pytest.param(lambda pin: manifest(pin, "k").model_copy(update={"dimension": 16}), "dimension 16 != spec.dimension 8",
                     id="a pinned version of another dimension"),
    ],
)
def test_a_pin_that_cannot_serve_degrades_once_and_changes_nothing(pinned_manifest, problem):
    s = pinned_spec()
    pin = s.rollout.pinned_version
    status = serving(s)
    obs = observation(s, status, pointer=pointer(status.current_version), pinned_manifest=pinned_manifest(pin) if pinned_manifest else None)
    plan = decide(obs)
    assert reasons(plan) == [ER.PINNED_VERSION_MISSING]
    degraded = cond(plan, ConditionType.DEGRADED)
    assert (degraded.status, degraded.reason) == ("True", Reason.PINNED_VERSION_MISSING)
    assert pin in degraded.message and problem in degraded.message and f"{status.current_version} keeps serving" in degraded.message
    assert plan.status.current_version == status.current_version and plan.status.pinned_version is None
    assert plan.write_pointer is None and plan.create_job is None
    assert decide(next_pass(obs, plan, now=NOW + MINUTE)).events == []


@pytest.mark.parametrize("held", [False, True], ids=["the last good version is restored", "a build held by the pin is promoted"])
def test_unpinning_resumes_normal_promotion(held):
    was_pinned, s = pinned_spec(), spec()
    good = serving(s).current_version
    last = finished(s, number=2, at=NOW - timedelta(hours=1)) if held else finished(s)
    status = pinned_status(was_pinned, last_build=last, build_count=2)
    obs = observation(s, status, pointer=pointer(was_pinned.rollout.pinned_version), pinned_manifest=manifest(good, build_key(s)),
                      manifest=manifest(last.version, build_key(s)))
    plan = decide(obs)
    expected = last.version if held else good
    assert reasons(plan) == ([ER.UNPINNED, ER.PROMOTED] if held else [ER.UNPINNED])
    assert was_pinned.rollout.pinned_version in plan.events[0].message
    assert (plan.status.current_version, plan.status.pinned_version, plan.status.last_good_version) == (expected, None, expected)
    assert plan.status.promoted_version == expected
    assert plan.write_pointer.stable_version == expected
    assert cond(plan, ConditionType.READY).reason == Reason.SERVING
