"""`rebuild`, `promote`, `abort`: request annotations, and following a rebuild to its outcome."""

from __future__ import annotations

import json
from typing import Any

import pytest
from faissctl_fakes import NOW, V3, V4, FakeKube, index, invoke, make_app, serving_status

from faissctl.commands.annotate import request_value
from faissctl.watch import Baseline, step
from indexops_api.constants import ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_REBUILD

REQUEST = "2026-11-21T12:00:00Z"


def _build(number: int, result: str, version: str = V4, **extra: Any) -> dict[str, Any]:
    return {"job": f"weather-build-dddddddd-{number}", "version": version, "buildKey": "d" * 64, "result": result,
            "number": number, "trigger": "Manual", **extra}


def test_rebuild_sets_the_annotation_to_the_current_utc_time() -> None:
    kube = FakeKube().add(index(status=serving_status()))
    result = invoke(make_app(kube), "rebuild", "weather")
    assert result.exit_code == 0, result.output
    assert kube.patches == [("default", "weather", {"metadata": {"annotations": {ANNOTATION_REBUILD: REQUEST}}})]
    assert f"requested at {REQUEST}" in result.stdout


def test_a_second_rebuild_within_the_same_second_still_writes_a_newer_value() -> None:
    kube = FakeKube().add(index(status=serving_status()))
    kube.objects[("default", "weather")]["metadata"]["annotations"][ANNOTATION_REBUILD] = REQUEST
    data = json.loads(invoke(make_app(kube), "rebuild", "weather", "-o", "json").stdout)
    assert data["requestedAt"] == "2026-11-21T12:00:01Z"


@pytest.mark.parametrize(
    ("earlier", "value"),
    [((), REQUEST), ((None, "garbage"), REQUEST), (("2026-11-21T11:00:00Z",), REQUEST),
     (("2026-11-21T12:00:00Z",), "2026-11-21T12:00:01Z"), (("2026-11-21T12:05:00Z", "2026-11-21T12:00:00Z"), "2026-11-21T12:05:01Z")],
)
def test_a_request_value_is_now_unless_an_earlier_value_is_not_older(earlier: tuple, value: str) -> None:
    assert request_value(NOW.replace(microsecond=123), *earlier) == value


def test_a_request_is_newer_than_what_the_operator_handled_even_with_a_clock_behind() -> None:
    kube = FakeKube().add(index(status=serving_status(candidateVersion=V4, lastHandledPromote="2026-11-21T12:10:00Z")))
    invoke(make_app(kube), "promote", "weather")
    assert kube.patches[0][2] == {"metadata": {"annotations": {ANNOTATION_PROMOTE: "2026-11-21T12:10:01Z"}}}


def test_rebuild_wait_follows_the_build_and_prints_its_outcome() -> None:
    kube = FakeKube().add(index(status=serving_status()))
    steps = iter([
        {},  # read before the request
        {},  # the operator has not seen the request yet
        {"lastHandledRebuild": REQUEST, "lastBuild": _build(4, "Running"), "buildCount": 4},
        {"lastHandledRebuild": REQUEST, "lastBuild": _build(4, "Succeeded"), "currentVersion": V4, "recall": 0.99},
    ])
    kube.on_get = lambda obj: obj["status"].update(next(steps, {}))
    result = invoke(make_app(kube), "rebuild", "weather", "--wait", "-o", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["version"] == V4 and "serves 100% (recall 0.99)" in data["message"]
    assert "waiting for the operator to start the build" in result.stderr
    assert "Job weather-build-dddddddd-4 is running" in result.stderr


def test_rebuild_wait_exits_1_with_the_reason_when_the_build_fails() -> None:
    kube = FakeKube().add(index(status=serving_status()))
    failed = _build(4, "Failed", reason="InvalidVectors", message="row 3 is NaN")
    kube.on_get = lambda obj: obj["status"].update({"lastHandledRebuild": obj["metadata"]["annotations"].get(ANNOTATION_REBUILD),
                                                    "lastBuild": failed})
    result = invoke(make_app(kube), "rebuild", "weather", "--wait")
    assert result.exit_code == 1
    assert result.stdout == f"build #4 (Manual) of version {V4} Failed: InvalidVectors: row 3 is NaN\n"


def test_rebuild_wait_times_out_with_the_last_state() -> None:
    kube = FakeKube().add(index(status=serving_status()))
    result = invoke(make_app(kube), "rebuild", "weather", "--wait", "--timeout", "10s")
    assert result.exit_code == 1
    assert "timed out after 10s; last state: waiting for the operator to start the build" in result.stderr


def test_a_bad_timeout_is_a_usage_error() -> None:
    result = invoke(make_app(FakeKube().add(index())), "rebuild", "weather", "--wait", "--timeout", "soon")
    assert result.exit_code == 2 and "is not a duration like 90s, 20m or 1h" in result.stderr


@pytest.mark.parametrize(
    ("status", "state", "ok"),
    [
        ({"lastBuild": _build(3, "Running", trigger="Spec")}, "waiting: build #3 (Spec) is running; the rebuild starts after it", None),
        ({"lastHandledRebuild": REQUEST, "lastBuild": _build(3, "Succeeded")}, "waiting for the operator to record the build", None),
        ({"lastHandledRebuild": REQUEST, "lastBuild": _build(4, "ValidationFailed", reason="ValidationFailed", message="recall low")},
         f"build #4 (Manual) of version {V4}: ValidationFailed", False),
        ({"lastHandledRebuild": REQUEST, "lastBuild": _build(4, "Succeeded"), "candidateVersion": V4, "rolloutPercent": 10},
         f"build #4 (Manual) of version {V4}: canary", True),
        ({"lastHandledRebuild": REQUEST, "lastBuild": _build(4, "Succeeded"), "pinnedVersion": V3, "currentVersion": V3},
         f"build #4 (Manual) of version {V4}: held", True),
        ({"lastHandledRebuild": REQUEST, "lastBuild": _build(4, "Succeeded"), "currentVersion": V3},
         f"build #4 (Manual) of version {V4}: succeeded, waiting for the gates and promotion", None),
        ({"lastHandledRebuild": REQUEST, "lastBuild": _build(4, "RolledBack", reason="RolledBack", message="p99 too high")},
         f"build #4 (Manual) of version {V4}: RolledBack", False),
        ({"lastHandledRebuild": REQUEST, "lastBuild": _build(5, "Running", trigger="Retry"),
          "history": [_build(4, "Failed", reason="BuildError")]}, f"build #4 (Manual) of version {V4}: Failed", False),
    ],
)
def test_watch_step_reads_the_covering_build_from_the_status(status: dict[str, Any], state: str, ok: bool | None) -> None:
    said, outcome = step(status, Baseline(REQUEST, build_count=3))
    assert said == state
    assert (outcome.ok if outcome else None) == ok


def test_promote_sets_its_annotation_when_there_is_a_candidate() -> None:
    kube = FakeKube().add(index(status=serving_status(candidateVersion=V4, rolloutPercent=20)))
    result = invoke(make_app(kube), "promote", "weather")
    assert result.exit_code == 0, result.output
    assert kube.patches[0][2] == {"metadata": {"annotations": {ANNOTATION_PROMOTE: REQUEST}}}
    assert f"candidate {V4} (now 20% of queries) to serve 100%" in result.stdout


def test_abort_sets_its_annotation_and_says_the_stable_version_keeps_serving() -> None:
    kube = FakeKube().add(index(status=serving_status(candidateVersion=V4, rolloutPercent=20)))
    data = json.loads(invoke(make_app(kube), "abort", "weather", "-o", "json").stdout)
    assert kube.patches[0][2] == {"metadata": {"annotations": {ANNOTATION_ABORT: REQUEST}}}
    assert data["candidate"] == V4 and data["serving"] == V3


@pytest.mark.parametrize("command", ["promote", "abort"])
def test_promote_and_abort_refuse_without_a_candidate(command: str) -> None:
    kube = FakeKube().add(index(status=serving_status()))
    result = invoke(make_app(kube), command, "weather")
    assert result.exit_code == 1 and kube.patches == []
    assert f"has no candidate in canary (serving {V3}); nothing to {command}" in result.stderr
