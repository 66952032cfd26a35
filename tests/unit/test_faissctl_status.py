"""`faissctl status`: what a newcomer sees for one index, for a namespace, and when something is wrong."""

from __future__ import annotations

import json

import yaml
from faissctl_fakes import V3, V4, FakeKube, index, invoke, make_app, serving_status

from faissctl.errors import forbidden, no_cluster, not_found
from faissctl.summary import recent_events, summarize

EVENTS = [
    {"type": "Normal", "reason": "Promoted", "message": f"version {V3} now serves 100%", "count": 1,
     "lastTimestamp": "2026-11-21T00:05:00Z"},
    {"type": "Normal", "reason": "BuildStarted", "message": "Job weather-build-cccccccc-3 started", "count": 1,
     "lastTimestamp": "2026-11-21T00:00:00Z"},
    {"type": "Warning", "reason": "SyncFailed", "message": "probe failed", "count": 3, "eventTime": "2026-11-21T01:00:00Z"},
]


def test_status_of_one_index_shows_what_serves_the_last_build_conditions_and_events() -> None:
    kube = FakeKube(events=EVENTS).add(index(status=serving_status(), schedule="0 */6 * * *"))
    result = invoke(make_app(kube), "status", "weather")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Name:           weather" in out
    assert "Phase:          Serving (Ready=True)" in out
    assert f"Version:      {V3}" in out
    assert "Since:        2026-11-21T00:05:00Z (11h ago)" in out
    assert "Recall:       0.9935 (recall@10 on held-out queries, vs exact search)" in out
    assert "p99 latency:  0.412 ms (builder, single query, in process)" in out
    assert "Vectors:      4000" in out and "Size:         1.2 MiB" in out
    assert "Result:       Succeeded (#3 trigger Schedule)" in out
    assert "Job took 4m10s (pod start-up included)" in out
    assert "Failures:       0 in a row (Stalled after 3)" in out
    assert "Schedule:       0 */6 * * *; next build 2026-11-21T18:00:00Z (in 6h)" in out
    assert "Conditions:\n  TYPE          STATUS   REASON       AGE   MESSAGE\n  Ready         True     Serving" in out
    events = out.split("Events:\n")[1].splitlines()
    assert [line.split()[1] for line in events[1:]] == ["BuildStarted", "Promoted", "SyncFailed"], "oldest first"
    assert "(x3)" in events[3]


def test_status_json_is_the_summary_with_serving_build_failures_and_events() -> None:
    kube = FakeKube(events=EVENTS).add(index(status=serving_status()))
    data = json.loads(invoke(make_app(kube), "status", "weather", "-o", "json").stdout)
    assert data["serving"]["version"] == V3 and data["serving"]["recall"] == 0.9935
    assert data["lastBuild"]["trigger"] == "Schedule" and data["building"] is False
    assert data["failures"] == {"consecutive": 0, "limit": 3, "stalled": False, "nextRetryTime": None}
    assert [c["type"] for c in data["conditions"]] == ["Ready", "Progressing", "Degraded", "Stalled"]
    assert [e["reason"] for e in data["events"]] == ["BuildStarted", "Promoted", "SyncFailed"]


def test_status_yaml_parses_to_the_same_summary_as_json() -> None:
    kube = FakeKube(events=EVENTS).add(index(status=serving_status()))
    as_json = json.loads(invoke(make_app(kube), "status", "weather", "-o", "json").stdout)
    assert yaml.safe_load(invoke(make_app(kube), "status", "weather", "-o", "yaml").stdout) == as_json


def test_a_stalled_index_with_a_canary_and_an_unapplied_pin_says_what_to_do() -> None:
    st = serving_status(candidateVersion=V4, rolloutPercent=20, consecutiveFailures=3, phase="Stalled",
                        lastBuild={"job": "j", "version": V4, "buildKey": "d", "result": "Failed", "number": 6, "trigger": "Retry",
                                   "reason": "InvalidVectors", "message": "row 17 has NaN"})
    st["conditions"][3] = {"type": "Stalled", "status": "True", "reason": "TooManyFailures", "message": "3 consecutive failed builds",
                           "lastTransitionTime": "2026-11-21T11:00:00Z"}
    kube = FakeKube().add(index(status=st, rollout={"pinnedVersion": "20261101T000000Z-eeeeeeee"}))
    out = invoke(make_app(kube), "status", "weather").stdout
    assert "Reason:       InvalidVectors: row 17 has NaN" in out
    assert "3 in a row (Stalled after 3); STALLED: no automatic builds" in out
    assert f"Candidate:    {V4} (20% of queries)" in out and "Rollout:      80% stable, 20% candidate" in out
    assert "(requested 20261101T000000Z-eeeeeeee, not applied)" in out
    assert "hint: automatic builds stopped: fix the cause above, then `faissctl rebuild weather`" in out
    assert "hint: candidate" in out and "`faissctl promote weather`" in out


def test_an_index_the_operator_has_not_reconciled_yet_is_pending_with_nothing_serving() -> None:
    out = invoke(make_app(FakeKube().add(index())), "status", "weather").stdout
    assert "Phase:          Pending (Ready=Unknown)" in out
    assert "Serving:        nothing yet" in out and "Last build:     none yet" in out
    assert "none yet (the operator has not reconciled this index)" in out


def test_status_without_a_name_lists_the_namespace_as_an_aligned_table() -> None:
    kube = FakeKube().add(index(status=serving_status())).add(index("other", status={})).add(index("elsewhere", "prod"))
    out = invoke(make_app(kube), "status").stdout.splitlines()
    assert out[0].split() == ["NAME", "HORIZON", "PHASE", "READY", "VERSION", "CANARY", "RECALL", "P99MS", "VECTORS",
                              "LAST-BUILD", "FAILURES", "NEXT-BUILD", "AGE"]
    assert [line.split()[0] for line in out[1:]] == ["other", "weather"]
    assert out[0].index("PHASE") == out[2].index("Serving"), "columns are aligned"
    assert "Succeeded (Schedule)" in out[2] and "in 6h" in out[2] and "36h" in out[2]


def test_all_namespaces_adds_a_namespace_column_and_json_lists_items() -> None:
    kube = FakeKube().add(index(status=serving_status())).add(index("elsewhere", "prod"))
    out = invoke(make_app(kube), "status", "-A").stdout.splitlines()
    assert out[0].startswith("NAMESPACE   NAME")
    assert [line.split()[:2] for line in out[1:]] == [["default", "weather"], ["prod", "elsewhere"]]
    data = json.loads(invoke(make_app(kube), "status", "-A", "-o", "json").stdout)
    assert [i["name"] for i in data["items"]] == ["weather", "elsewhere"] and "events" not in data["items"][0]


def test_an_empty_namespace_says_so_on_stderr() -> None:
    result = invoke(make_app(FakeKube()), "status", "-n", "empty")
    assert result.exit_code == 0 and result.stdout == ""
    assert "No FaissIndex found in namespace 'empty'." in result.stderr


def test_the_namespace_option_and_the_context_reach_the_connection() -> None:
    kube = FakeKube().add(index("x", "team-a", status=serving_status()))
    app = make_app(kube)
    assert invoke(app, "status", "x", "-n", "team-a", "--context", "prod").exit_code == 0
    assert [(o.context, o.namespace) for o in app._kube] == [("prod", "team-a")]


def test_name_and_all_namespaces_together_are_a_usage_error() -> None:
    result = invoke(make_app(FakeKube()), "status", "weather", "-A")
    assert result.exit_code == 2 and "cannot be combined" in result.stderr


def test_cluster_errors_are_one_readable_line_with_their_exit_code() -> None:
    for error, code in ((not_found("FaissIndex 'nope' not found"), 3), (forbidden("permission denied by RBAC"), 5),
                        (no_cluster("cannot reach the Kubernetes API server"), 4)):
        result = invoke(make_app(FakeKube(fail=error)), "status", "nope")
        assert result.exit_code == code
        assert result.stderr == f"Error: {error.message}\n" and "Traceback" not in result.output


def test_events_are_limited_to_the_newest_and_summaries_accept_unknown_status_fields() -> None:
    events = [{"reason": f"R{i}", "lastTimestamp": f"2026-11-21T00:{i:02d}:00Z"} for i in range(15)]
    assert [e["reason"] for e in recent_events(events, 3)] == ["R12", "R13", "R14"]
    report = summarize(index(status={**serving_status(), "futureField": 1, "phase": "Reticulating"}))
    assert report["phase"] == "Reticulating" and "events" not in report


def test_a_stepped_rollout_shows_its_step_analysis_and_the_last_rollback() -> None:
    analysis = {"step": 1, "percent": 50, "replicas": 2, "requests": 1200, "errors": 1, "p99Ms": 3.1, "stableP99Ms": 2.9,
                "shadowQueries": 200, "overlap": 0.971, "verdict": "waiting for the pause to end"}
    st = serving_status(candidateVersion=V4, rolloutPercent=50, rolloutStep=1, stepStartedAt="2026-11-21T11:55:00Z",
                        analysis=analysis, rolledBackVersion="20261120T060000Z-bbbbbbbb", rollbackReason="p99 4.0ms > 2x stable")
    kube = FakeKube().add(index(status=st, rollout={"steps": [{"percent": 10, "pause": "5m"}, {"percent": 50, "pause": "10m"}]}))
    out = invoke(make_app(kube), "status", "weather").stdout
    assert "Step:         2 of 2 since 2026-11-21T11:55:00Z (5m ago)" in out
    assert ("Analysis:     1200 requests, 1 errors, p99 3.100 ms vs stable 2.900 ms, overlap@k 0.971 on 200 shadowed; "
            "waiting for the pause to end") in out
    assert "Rolled back:  20261120T060000Z-bbbbbbbb: p99 4.0ms > 2x stable" in out


def test_status_shows_the_type_that_serves_and_the_spec_type_when_a_pin_crosses_a_migration() -> None:
    pinned = index(status=serving_status(indexType="HNSW", pinnedVersion=V3))
    pinned["spec"]["indexType"] = "IVF"
    out = invoke(make_app(FakeKube().add(pinned)), "status", "weather").stdout
    assert "Horizon / type: 6h / HNSW serving (spec.indexType: IVF)" in out
    same = invoke(make_app(FakeKube().add(index(status=serving_status(indexType="HNSW")))), "status", "weather").stdout
    assert "Horizon / type: 6h / HNSW\n" in same


def test_status_says_how_many_queries_recall_was_measured_on_and_which_pod_serves_what() -> None:
    st = serving_status(recallQueries=200, servingReplicas=[{"pod": "weather-serving-a", "stable": V3},
                                                             {"pod": "weather-serving-b", "stable": V4, "candidate": V3},
                                                             {"pod": "weather-serving-c", "error": "timeout"}])
    out = invoke(make_app(FakeKube().add(index(status=st))), "status", "weather").stdout
    assert "(recall@10 on 200 held-out queries, vs exact search)" in out
    assert f"  Pods:\n    weather-serving-a: {V3}\n    weather-serving-b: {V4} + candidate {V3}\n" in out
    assert "weather-serving-c: unreachable (timeout)" in out


def test_status_shows_the_builders_warnings_of_the_last_build() -> None:
    st = serving_status()
    st["lastBuild"] = {**st["lastBuild"], "warnings": ["nlist 4096 needs at least 159744 training rows; the source has 20000"]}
    out = invoke(make_app(FakeKube().add(index(status=st))), "status", "weather").stdout
    assert "  Warning:      nlist 4096 needs at least 159744 training rows; the source has 20000\n" in out


def test_status_names_the_pinned_version_as_last_good_and_says_what_unpinning_returns_to() -> None:
    pinned = index(status=serving_status(currentVersion=V3, pinnedVersion=V3, promotedVersion=V3, lastGoodVersion=V4),
                   rollout={"pinnedVersion": V3})
    out = invoke(make_app(FakeKube().add(pinned)), "status", "weather").stdout
    assert f"  Last good:    {V3}\n" in out
    assert f"  On unpin:     {V4} (newest version promoted by rollout)\n" in out
    unpinned = invoke(make_app(FakeKube().add(index(status=serving_status(promotedVersion=V3, lastGoodVersion=V3)))),
                      "status", "weather").stdout
    assert f"  Last good:    {V3}\n" in unpinned and "On unpin" not in unpinned
