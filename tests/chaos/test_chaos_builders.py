"""Builder faults: killed after its commit, killed before it, evicted, its pod deleted (issue 17 items 1-3).

Each scenario keeps a query loop on the version that served before the fault and checks
the four promises (see chaos.py). Stated bounds: a fault's outcome shows in status within
CONVERGE_SECONDS of the fault (two operator resyncs plus one build on this machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from chaos import (QueryLoop, assert_every_failure_is_readable, assert_no_lost_build, assert_no_wrong_version, evict,
                   kill_after_commit, running_builder, wait_converged)
from tests.e2e.helpers import builds, cond, index_events, wait_status
from scenario import DIM, pod_version, rebuild, serving_index, start_slow_build, version_prefix

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

CONVERGE_SECONDS = 240


@pytest.mark.chaos_quick
def test_a_builder_killed_after_it_published_counts_as_a_success_and_its_version_serves(cluster, namespace):
    name = "killed-after-commit"
    before = serving_index(cluster, namespace, name)
    with QueryLoop(cluster, namespace, name, DIM) as loop:
        loop.wait_answers(20)
        caught = False
        for attempt in range(3):  # the kill must land between the commit and the exit; retry if the builder was faster
            rebuild(cluster, namespace, name)
            pod, pid = running_builder(cluster, namespace, name)
            version = pod_version(pod)
            caught = kill_after_commit(cluster, namespace, name, pid, version_prefix(namespace, name, version))
            if caught:
                break
            wait_converged(cluster, namespace, name, CONVERGE_SECONDS)
        assert caught, "the builder exited before it could be killed after its commit, three times"
        killed = time.monotonic()
        st = wait_status(cluster, namespace, name, f"{version} serves", lambda s: s.get("currentVersion") == version, CONVERGE_SECONDS)
        took = time.monotonic() - killed
        loop.wait_answers(sum(loop.tally.answers.values()) + 20)
    assert st["lastBuild"]["result"] == "Succeeded" and st.get("consecutiveFailures", 0) == 0
    assert [e for e in index_events(cluster, namespace, name, "BuildFailed")] == []
    succeeded = index_events(cluster, namespace, name, "BuildSucceeded")[-1]["message"]
    assert "builder killed by SIGKILL (exit 137" in succeeded and "the published version counts" in succeeded
    assert_no_wrong_version(loop.tally)
    assert version in loop.tally.answers and before["currentVersion"] in loop.tally.promoted
    assert_no_lost_build(cluster, namespace, name)
    assert_every_failure_is_readable(cluster, namespace, name)
    print(f"killed after commit: {version} served {took:.1f}s after the SIGKILL; queries {loop.tally}")


def test_a_builder_killed_before_it_published_says_killed_by_sigkill_everywhere(cluster, namespace):
    name = "killed-mid-build"
    before = serving_index(cluster, namespace, name)
    with QueryLoop(cluster, namespace, name, DIM) as loop:
        loop.wait_answers(20)
        start_slow_build(cluster, namespace, name)
        pod, pid = running_builder(cluster, namespace, name)
        time.sleep(2)
        os.kill(pid, signal.SIGKILL)
        st = wait_status(cluster, namespace, name, "the build failed",
                         lambda s: (s.get("lastBuild") or {}).get("result") == "Failed", CONVERGE_SECONDS)
    expected = "builder killed by SIGKILL (exit 137"
    assert expected in st["lastBuild"]["message"]
    assert expected in cond(st, "Degraded")["message"] and cond(st, "Degraded")["reason"] == "BuildFailed"
    assert expected in index_events(cluster, namespace, name, "BuildFailed")[-1]["message"]
    shown = subprocess.run([sys.executable, "-m", "faissctl", "status", name, "-n", namespace], env=cluster.env,
                           capture_output=True, text=True, timeout=60)
    assert expected in shown.stdout, shown.stdout + shown.stderr
    assert st["currentVersion"] == before["currentVersion"]
    assert_no_wrong_version(loop.tally)
    assert_every_failure_is_readable(cluster, namespace, name)


def test_an_evicted_builder_is_replaced_by_its_job_and_never_counts_as_a_failure(cluster, namespace):
    name = "evicted-builder"
    serving_index(cluster, namespace, name)
    with QueryLoop(cluster, namespace, name, DIM) as loop:
        loop.wait_answers(20)
        start_slow_build(cluster, namespace, name)
        pod, _ = running_builder(cluster, namespace, name)
        evict(cluster, namespace, pod["metadata"]["name"])
        replacement, _ = cluster.wait_for("a replacement builder pod", lambda: _other_running(cluster, namespace, name, pod), 120)
        st = wait_converged(cluster, namespace, name, CONVERGE_SECONDS)
    assert replacement["metadata"]["labels"]["job-name"] == pod["metadata"]["labels"]["job-name"], "the same Job retried"
    assert st["lastBuild"]["result"] == "Succeeded" and st.get("consecutiveFailures", 0) == 0
    assert index_events(cluster, namespace, name, "BuildFailed") == []
    assert_no_wrong_version(loop.tally)
    assert_no_lost_build(cluster, namespace, name)


def test_a_deleted_builder_pod_is_a_disruption_retried_at_once_without_counting(cluster, namespace):
    name = "deleted-builder"
    serving_index(cluster, namespace, name, build={"maxConsecutiveFailures": 1})
    with QueryLoop(cluster, namespace, name, DIM) as loop:
        loop.wait_answers(20)
        start_slow_build(cluster, namespace, name)
        pod, _ = running_builder(cluster, namespace, name)
        cluster.kubectl("delete", "pod", "-n", namespace, pod["metadata"]["name"], "--wait=false")
        st = wait_converged(cluster, namespace, name, CONVERGE_SECONDS + 120)
    disrupted = [b for b in builds(st) if b.get("reason") == "Disrupted"]
    if disrupted:  # the Job failed (backoffLimit 0): recorded as a disruption, not counted (maxConsecutiveFailures 1 would stall)
        assert "deleted" in disrupted[0]["message"] or "gone" in disrupted[0]["message"], disrupted[0]
    assert cond(st, "Stalled").get("status") != "True" and st.get("consecutiveFailures", 0) == 0
    assert st["lastBuild"]["result"] == "Succeeded"
    assert_no_wrong_version(loop.tally)
    assert_no_lost_build(cluster, namespace, name)
    assert_every_failure_is_readable(cluster, namespace, name)


def _other_running(cluster, ns, name, old):
    from chaos import builder_pods, pod_pid  # noqa: PLC0415

    pods = [p for p in builder_pods(cluster, ns, name) if p["metadata"]["uid"] != old["metadata"]["uid"] and pod_pid(p)]
    return (pods[0], None) if pods else None
