"""A serving replica killed mid-swap, the index deleted mid-canary (issue 17 item 6 and the passing faults).

The query loop uses ``faissctl.search_client``: a killed replica's endpoint stays listed for
a few seconds, and an idempotent search is retried on the other replica, so no query fails.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from chaos import QueryLoop, assert_every_failure_is_readable, assert_no_lost_build, assert_no_wrong_version, pod_pid, wait_converged
from tests.e2e.helpers import wait_status
from scenario import DIM, rebuild, serving_index

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

CONVERGE_SECONDS = 180


def serving_pods(cluster, ns, name):
    return [p for p in cluster.get_json("pods", "-n", ns, "-l", f"faiss.indexops.io/index={name},app.kubernetes.io/component=serving")["items"]
            if pod_pid(p) and not p["metadata"].get("deletionTimestamp")]


@pytest.mark.chaos_quick
def test_a_serving_replica_killed_mid_swap_fails_no_query_when_the_client_retries(cluster, namespace):
    name = "replica-killed"
    before = serving_index(cluster, namespace, name, replicas=2)
    cluster.wait_for("two serving endpoints", lambda: len(cluster.service_pod_urls(f"{name}-serving", namespace)) == 2, 120)
    with QueryLoop(cluster, namespace, name, DIM, threads=3) as loop:
        loop.wait_answers(30)
        rebuild(cluster, namespace, name)
        wait_status(cluster, namespace, name, "the new version in the pointer",
                    lambda s: s.get("currentVersion") not in (None, before["currentVersion"]), CONVERGE_SECONDS, )
        victim = serving_pods(cluster, namespace, name)[0]
        os.killpg(pod_pid(victim), signal.SIGKILL)  # mid-swap: replicas are loading the new version
        killed = time.monotonic()
        loop.wait_answers(sum(loop.tally.answers.values()) + 100, timeout=60)
        st = wait_converged(cluster, namespace, name, CONVERGE_SECONDS)
        cluster.wait_for("two serving endpoints again", lambda: len(cluster.service_pod_urls(f"{name}-serving", namespace)) == 2,
                         CONVERGE_SECONDS)
    assert_no_wrong_version(loop.tally, allowed_failures=0)
    assert st["currentVersion"] != before["currentVersion"]
    assert_no_lost_build(cluster, namespace, name)
    assert_every_failure_is_readable(cluster, namespace, name)
    print(f"replica killed: {loop.tally.total} queries, {loop.tally.retried} retried on the other replica, "
          f"0 failed; converged {time.monotonic() - killed:.1f}s after the kill")


def test_deleting_an_index_mid_canary_removes_it_and_its_artifacts_without_a_human(cluster, namespace):
    name = "deleted-mid-canary"
    serving_index(cluster, namespace, name, rollout={"percent": 50}, storage={"deletionPolicy": "Delete"})
    rebuild(cluster, namespace, name)
    wait_status(cluster, namespace, name, "a candidate", lambda s: s.get("candidateVersion"), CONVERGE_SECONDS)
    cluster.kubectl("delete", "faissindex", name, "-n", namespace, "--wait=false")
    started = time.monotonic()
    cluster.wait_for("the FaissIndex gone", lambda: cluster.kubectl("get", "faissindex", name, "-n", namespace, check=False).returncode != 0,
                     120)
    from helpers import index_prefix, s3_keys  # noqa: PLC0415

    cluster.wait_for("its serving and builder objects gone", lambda: not cluster.get_json(
        "deploy,jobs", "-n", namespace, "-l", f"faiss.indexops.io/index={name}")["items"], 120)
    assert s3_keys(cluster, index_prefix(namespace, name)) == []
    print(f"deleted mid-canary: gone in {time.monotonic() - started:.1f}s")

