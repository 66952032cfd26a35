"""Progressive rollout: steps gated by online analysis, rollback, manual promote/abort, replica convergence."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from indexops_api.status import BuildResult, ConditionType, EventReason, FaissIndexStatus, Reason
from faiss_operator.analysis import measure
from faiss_operator.decide import decide
from faiss_operator.model import ReplicaReport, VersionStats

from factories import NOW, finished, job, manifest, observation, pointer, running, serving, spec, version

LE = (1.0, 2.5, 5.0, 10.0, 25.0)
STEPS = [{"percent": 10, "pause": "5m"}, {"percent": 50, "pause": "10m"}]
GATES = {"minSamples": 100, "maxErrorRate": 0.01, "maxLatencyRatio": 2.0, "minOverlap": 0.8, "minShadowSamples": 20, "shadowPercent": 10}


def stats(role: str, requests: int, errors: int = 0, fast: bool = True, shadow: int = 0, overlap: float = 1.0) -> VersionStats:
    ok = requests - errors
    counts = (ok, ok, ok, ok, ok) if fast else (0, 0, 0, ok, ok)  # every answer within 1ms, or within 10ms
    return VersionStats(role=role, requests=requests, errors=errors, latency_le_ms=LE, latency_counts=counts,
                        shadow_queries=shadow, shadow_overlap_sum=overlap * shadow)


def report(pod: str, generation: int, stable: str, cand: str | None, **versions: VersionStats) -> ReplicaReport:
    return ReplicaReport(pod=pod, generation=generation, stable=stable, candidate=cand, versions=dict(versions))


def reasons(plan) -> list[EventReason]:
    return [e.reason for e in plan.events]


@pytest.fixture
def stepped():
    """v1 serves; v2 (build 2) is the candidate in step 1 (10%) since NOW, pointer generation 2."""
    old = spec(**{"parameters": {"efSearch": 32}})
    s = spec(**{"rollout.steps": STEPS, "rollout.analysis": GATES})
    v1, v2 = version(old, NOW - timedelta(days=1)), version(s, NOW - timedelta(minutes=1))
    st = serving(old, candidate_version=v2, rollout_percent=10, rollout_step=0, step_started_at="2026-11-21T12:00:00Z",
                 last_build=finished(s, number=2, at=NOW - timedelta(minutes=1)), build_count=2)
    ptr = pointer(v1, generation=2, candidate=v2, percent=10).model_copy(update={"shadow_percent": 10})
    return s, st, ptr, v1, v2


def at(minutes: float, s, st, ptr, replicas, **fields):
    return observation(s, st, pointer=ptr, replicas=tuple(replicas), now=NOW + timedelta(minutes=minutes),
                       manifest=fields.pop("manifest", None), **fields)


def test_a_validated_build_enters_the_first_step_with_shadowing_in_the_pointer():
    s = spec(**{"rollout.steps": STEPS, "rollout.analysis": GATES})
    old = spec(**{"parameters": {"efSearch": 32}})
    status = serving(old).model_copy(update={"last_build": running(s, number=2), "build_count": 2})
    j = job(s, "Succeeded", number=2)
    plan = decide(observation(s, status, job=j, manifest=manifest(j.version, j.build_key), pointer=pointer(status.current_version)))
    assert reasons(plan) == [EventReason.BUILD_SUCCEEDED, EventReason.CANARY_STARTED]
    assert "10% of queries (step 1/2)" in plan.events[-1].message
    assert plan.status.candidate_version == j.version and plan.status.rollout_step == 0
    assert plan.write_pointer.candidate_percent == 10 and plan.write_pointer.shadow_percent == 10


def test_a_step_holds_during_its_pause_even_with_plenty_of_good_samples(stepped):
    s, st, ptr, v1, v2 = stepped
    good = [report("a", 2, v1, v2, **{v1: stats("stable", 900), v2: stats("candidate", 150, shadow=90, overlap=0.95)})]
    plan = decide(at(2, s, st, ptr, good))
    assert plan.events == [] and plan.status.rollout_step == 0 and plan.write_pointer is None
    assert "180s of pause left" in plan.status.analysis.verdict
    assert plan.status.condition(ConditionType.PROGRESSING).reason == Reason.ROLLING_OUT


def test_low_traffic_never_counts_as_success_after_the_pause(stepped):
    s, st, ptr, v1, v2 = stepped
    few = [report("a", 2, v1, v2, **{v1: stats("stable", 90), v2: stats("candidate", 12, shadow=5)})]
    plan = decide(at(30, s, st, ptr, few))
    assert plan.events == [] and plan.status.candidate_version == v2 and plan.status.rollout_step == 0
    assert "waiting for 12/100 candidate requests, 5/20 shadowed queries" in plan.status.analysis.verdict


def test_a_step_that_passes_advances_to_the_next_share_summed_over_replicas(stepped):
    s, st, ptr, v1, v2 = stepped
    replicas = [report(p, 2, v1, v2, **{v1: stats("stable", 500), v2: stats("candidate", 60, shadow=15, overlap=0.9)}) for p in "ab"]
    plan = decide(at(6, s, st, ptr, replicas))
    assert reasons(plan) == [EventReason.STEP_ADVANCED]
    assert "120 requests" in plan.events[0].message and "now 50%" in plan.events[0].message
    assert plan.status.rollout_step == 1 and plan.status.step_started_at == "2026-11-21T12:06:00Z"
    assert plan.write_pointer.candidate_percent == 50 and plan.write_pointer.generation == 3
    assert plan.status.analysis.requests == 120 and plan.status.analysis.replicas == 2


def test_passing_the_last_step_promotes_the_candidate_with_its_measurements(stepped):
    s, st, ptr, v1, v2 = stepped
    st = st.model_copy(update={"rollout_step": 1, "rollout_percent": 50})
    ptr = ptr.model_copy(update={"generation": 3, "candidate_percent": 50})
    replicas = [report("a", 3, v1, v2, **{v1: stats("stable", 400), v2: stats("candidate", 400, shadow=40, overlap=0.97)})]
    plan = decide(at(11, s, st, ptr, replicas, manifest=manifest(v2, st.last_build.build_key, recall=0.99, vectors=1200)))
    assert reasons(plan) == [EventReason.PROMOTED] and "passed all 2 steps" in plan.events[0].message
    assert plan.status.current_version == v2 and plan.status.candidate_version is None
    assert plan.status.recall == 0.99 and plan.status.vectors == 1200 and plan.status.last_good_version == v2 == plan.status.promoted_version
    assert plan.write_pointer.stable_version == v2 and plan.write_pointer.candidate_version is None
    assert plan.write_pointer.shadow_percent == 0


@pytest.mark.parametrize(
    "candidate, stable, expected",
    [
        (stats("candidate", 200, errors=10), stats("stable", 500), "error rate 0.0500 > maxErrorRate 0.01 (10/200)"),
        (stats("candidate", 200, shadow=50, overlap=0.3), stats("stable", 500), "overlap@k 0.3000 < minOverlap 0.8 on 50 shadowed queries"),
        (stats("candidate", 200, fast=False), stats("stable", 500), "p99 10ms is 10.00x stable 1ms > maxLatencyRatio 2"),
    ],
    ids=["errors", "overlap", "latency"],
)
def test_a_failing_gate_rolls_the_candidate_back_at_once_with_the_measured_numbers(stepped, candidate, stable, expected):
    s, st, ptr, v1, v2 = stepped
    plan = decide(at(1, s, st, ptr, [report("a", 2, v1, v2, **{v1: stable, v2: candidate})]))
    assert reasons(plan) == [EventReason.ROLLED_BACK]
    assert expected in plan.events[0].message and plan.events[0].type == "Warning"
    assert plan.status.candidate_version is None and plan.status.current_version == v1
    assert plan.status.last_build.result == BuildResult.ROLLED_BACK
    assert plan.write_pointer.candidate_version is None and plan.write_pointer.candidate_percent == 0
    degraded = plan.status.condition(ConditionType.DEGRADED)
    assert degraded.status == "True" and degraded.reason == Reason.ROLLED_BACK and expected in degraded.message
    again = decide(dataclasses.replace(at(2, s, plan.status, plan.write_pointer, []), manifest=manifest(v2, st.last_build.build_key)))
    assert again.status.candidate_version is None and again.create_job is None, "a rolled-back version is neither re-promoted nor retried"


def test_numbers_from_replicas_still_on_the_previous_step_are_not_counted(stepped):
    s, st, ptr, v1, v2 = stepped
    stale = report("old", 1, v1, v2, **{v1: stats("stable", 500), v2: stats("candidate", 500, errors=400)})
    fresh = report("new", 2, v1, v2, **{v1: stats("stable", 50), v2: stats("candidate", 5)})
    plan = decide(at(1, s, st, ptr, [stale, fresh]))
    assert plan.events == [] and plan.status.analysis.requests == 5 and plan.status.analysis.replicas == 1


def test_ready_stays_true_while_replicas_load_the_expected_versions_and_progressing_says_so(stepped):
    s, st, ptr, v1, v2 = stepped
    behind = [report("a", 2, v1, v2), report("b", 1, v1, None)]
    plan = decide(at(1, s, st, ptr, behind))
    ready = plan.status.condition(ConditionType.READY)
    assert ready.status == "True" and ready.reason == Reason.SERVING
    assert v1 in ready.message, "Ready names the version the replicas answer with meanwhile"
    unreachable = [ReplicaReport(pod="a", error="timeout"), ReplicaReport(pod="b", error="timeout")]
    assert decide(at(1, s, st, ptr, unreachable)).status.condition(ConditionType.READY).status == "True"


def test_a_promoted_version_still_loading_on_a_replica_is_progressing_replicas_converging(stepped):
    s, st, ptr, v1, v2 = stepped
    promoted = st.model_copy(update={"current_version": v2, "candidate_version": None})
    pointer = ptr.model_copy(update={"stable_version": v2, "candidate_version": None, "candidate_percent": 0})
    behind = [report("a", 2, v2, None), report("b", 1, v1, None)]
    plan = decide(at(1, s, promoted, pointer, behind))
    ready, progressing = (plan.status.condition(t) for t in (ConditionType.READY, ConditionType.PROGRESSING))
    assert ready.status == "True" and v1 in ready.message
    assert progressing.status == "True" and progressing.reason == Reason.REPLICAS_CONVERGING
    assert progressing.message.startswith("1/2 serving replicas have loaded") and plan.status.phase == "RollingOut"
    caught_up = decide(at(2, s, promoted, pointer, [report("a", 2, v2, None), report("b", 2, v2, None)]))
    assert caught_up.status.condition(ConditionType.PROGRESSING).status == "False"


def test_the_p99_of_merged_histograms_is_the_bucket_bound_of_the_99th_percentile():
    slow = VersionStats(role="candidate", requests=100, latency_le_ms=LE, latency_counts=(0, 50, 98, 99, 100))
    fast = VersionStats(role="candidate", requests=100, latency_le_ms=LE, latency_counts=(100, 100, 100, 100, 100))
    a = measure([report("a", 1, "s", "c", c=slow), report("b", 1, "s", "c", c=fast)], 1, "c", "s", 0, 10)
    assert a.requests == 200 and a.p99_ms == 5.0


def test_a_manual_abort_rolls_back_once_per_annotation_value(stepped):
    s, st, ptr, v1, v2 = stepped
    plan = decide(at(1, s, st, ptr, [], abort_request="2026-11-21T12:01:00Z"))
    assert reasons(plan) == [EventReason.ROLLED_BACK] and "aborted manually" in plan.events[0].message
    assert plan.status.candidate_version is None and plan.status.last_handled_abort == "2026-11-21T12:01:00Z"
    again = decide(at(2, s, plan.status, plan.write_pointer, [], abort_request="2026-11-21T12:01:00Z"))
    assert again.events == []


def test_a_manual_promote_skips_the_remaining_steps(stepped):
    s, st, ptr, v1, v2 = stepped
    plan = decide(at(1, s, st, ptr, [], promote_request="2026-11-21T12:01:00Z"))
    assert reasons(plan) == [EventReason.PROMOTED] and "manually" in plan.events[0].message
    assert plan.status.current_version == v2 and plan.status.candidate_version is None and plan.status.rollout_step is None
    assert plan.write_pointer.stable_version == v2


def test_a_promote_request_without_a_candidate_is_recorded_and_changes_nothing():
    s = spec()
    st = serving(s)
    plan = decide(observation(s, st, pointer=pointer(st.current_version), promote_request="x"))
    assert plan.events == [] and plan.status.current_version == st.current_version and plan.status.last_handled_promote == "x"
    assert isinstance(plan.status, FaissIndexStatus)


def refusing(pod: str, generation: int, stable: str, cand: str | None, refused: dict[str, str]) -> ReplicaReport:
    return ReplicaReport(pod=pod, generation=generation, stable=stable, candidate=cand, refused=refused)


def test_a_candidate_every_replica_refuses_is_rolled_back_and_ready_stays_true(stepped):
    s, st, ptr, v1, v2 = stepped
    bad = {v2: "checksum: sha256 of index.faiss does not match the manifest"}
    plan = decide(at(1, s, st, ptr, [refusing("a", 1, v1, None, bad), refusing("b", 1, v1, None, bad)]))
    assert reasons(plan) == [EventReason.ROLLED_BACK]
    assert "refused by 2/2 serving replicas: checksum" in plan.events[0].message
    assert plan.status.candidate_version is None and plan.status.rolled_back_version == v2
    assert plan.status.condition(ConditionType.DEGRADED).reason == Reason.ROLLED_BACK
    after = decide(at(2, s, plan.status, plan.write_pointer, [refusing("a", 3, v1, None, {}), refusing("b", 3, v1, None, {})]))
    assert after.status.condition(ConditionType.READY).status == "True"


def test_a_candidate_only_some_replicas_refuse_is_not_rolled_back_and_ready_names_the_refusal(stepped):
    s, st, ptr, v1, v2 = stepped
    plan = decide(at(1, s, st, ptr, [refusing("a", 1, v1, None, {v2: "memory: needs 2 GiB"}), report("b", 2, v1, v2)]))
    assert plan.status.candidate_version == v2 and EventReason.ROLLED_BACK not in reasons(plan)
    ready = plan.status.condition(ConditionType.READY)
    assert ready.status == "False" and "refused: " in ready.message and "memory: needs 2 GiB" in ready.message


def test_a_pinned_version_every_replica_refuses_is_undone_and_not_pinned_again():
    base = spec()
    v1, v2 = version(base, NOW - timedelta(days=2)), version(base, NOW - timedelta(days=1))
    s = spec(**{"rollout.pinnedVersion": v2})
    st = serving(base, at=NOW - timedelta(days=2)).model_copy(update={"current_version": v2, "pinned_version": v2})
    replicas = (refusing("a", 5, v1, None, {v2: "checksum: mismatch"}),)
    plan = decide(observation(s, st, pointer=pointer(v2, generation=5), replicas=replicas))
    assert reasons(plan) == [EventReason.ROLLED_BACK, EventReason.PINNED_VERSION_MISSING]
    assert f"{v1} keeps serving" in plan.events[0].message
    assert plan.status.current_version == v1 and plan.status.pinned_version is None
    assert plan.status.promoted_version == v1  # "last good" follows what serves once the refused pin is undone
    assert plan.write_pointer.stable_version == v1
    again = decide(observation(s, plan.status, pointer=plan.write_pointer, replicas=(refusing("a", 6, v1, None, {}),)))
    assert again.status.current_version == v1 and again.write_pointer is None
    degraded = again.status.condition(ConditionType.DEGRADED)
    assert degraded.reason == Reason.PINNED_VERSION_MISSING and "refused by 1/1 serving replicas" in degraded.message


def test_a_replica_whose_status_has_no_rollout_block_counts_as_unknown_not_as_behind():
    from faiss_operator.replicas import parse_report

    old = parse_report("old", {"ready": True, "versions": []})
    assert old.error is not None and "older serving image" in old.error
    loading = parse_report("new", {"rollout": None, "failures": [{"version": "v9", "reason": "checksum", "message": "bad"}]})
    assert loading.error is None and loading.stable is None and loading.refused == {"v9": "checksum: bad"}


def test_status_lists_which_pod_serves_which_version_and_keeps_it_when_replicas_are_not_asked(stepped):
    s, st, ptr, v1, v2 = stepped
    plan = decide(at(1, s, st, ptr, [report("b", 2, v1, v2), report("a", 2, v1, None), ReplicaReport(pod="c", error="timeout")]))
    rows = [(r.pod, r.stable, r.candidate, r.error) for r in plan.status.serving_replicas]
    assert rows == [("a", v1, None, None), ("b", v1, v2, None), ("c", None, None, "timeout")]
    unasked = decide(dataclasses.replace(at(2, s, plan.status, ptr, []), replicas=None))
    assert unasked.status.serving_replicas == plan.status.serving_replicas


def test_empty_lists_are_left_out_of_the_status_patch_so_describe_shows_no_empty_fields():
    from faiss_operator.execute import status_body  # noqa: PLC0415 — execute imports kopf; keep it local

    body = status_body(FaissIndexStatus(history=[], serving_replicas=[]))
    assert body["history"] is None and body["servingReplicas"] is None and body["buildCount"] == 0
