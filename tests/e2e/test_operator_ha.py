"""Two operator replicas on the real local stack: one leads through a Lease, the other waits.

The chart is installed with a short lease (LEASE seconds) so takeovers are quick. Builder
Jobs are counted by the index label, never by name. Pods are deleted the way Kubernetes
deletes them (SIGTERM, then the leader releases the Lease); one test kills the leader's
process outright (SIGKILL through the dev node agent's containerID, ``localprocess://PID``)
to show a follower waits for the Lease to expire before it acts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from datetime import datetime

import numpy as np
import pytest
import yaml

from hack.localstack import OPERATOR_NAMESPACE, RELEASE, Cluster, sample_embeddings

pytestmark = [pytest.mark.e2e, pytest.mark.e2e_serial]  # changes the shared operator release: runs alone

LEASE = 8  # leaderElection.leaseDurationSeconds for this module
LEASE_NAME = f"{RELEASE}-leader"
SMALL_KEY, SMALL_IDS = "ha/{horizon}/vectors.npy", "ha/{horizon}/ids.npy"
SLOW_KEY, SLOW_IDS = "ha-slow/{horizon}/vectors.npy", "ha-slow/{horizon}/ids.npy"
DIM = 32
# Big enough that HNSW with efConstruction 400 keeps the builder busy for a while on the
# dev machine (tens of seconds), so the operator can be killed while its Job runs.
SLOW_N, SLOW_PARAMETERS = 40000, {"m": 32, "efConstruction": 400, "efSearch": 64}


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator("--set", "replicaCount=2", "--set", f"leaderElection.leaseDurationSeconds={LEASE}")
    c.wait_for("two running operator replicas and a leader", lambda: len(operator_pods(c)) == 2 and leader_pod(c), 120)
    small, small_ids = sample_embeddings(2000, DIM, seed=21)
    c.upload_embeddings(SMALL_KEY.format(horizon="6h"), small, small_ids, SMALL_IDS.format(horizon="6h"))
    slow, slow_ids = sample_embeddings(SLOW_N, DIM, seed=22)
    c.upload_embeddings(SLOW_KEY.format(horizon="6h"), slow, slow_ids, SLOW_IDS.format(horizon="6h"))
    return c


@pytest.fixture
def namespace(cluster: Cluster):
    with cluster.temporary_namespace("ha") as ns:
        yield ns


# -- reading the operator's state ---------------------------------------------------------


def operator_pods(cluster: Cluster) -> list[dict]:
    """Running operator pods that are not being deleted."""
    pods = cluster.get_json("pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    return [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def lease(cluster: Cluster) -> dict:
    return cluster.get_json("lease", LEASE_NAME, "-n", OPERATOR_NAMESPACE)["spec"]


def holder(cluster: Cluster) -> str:
    return lease(cluster).get("holderIdentity") or ""


def pod_of(identity: str) -> str:
    return identity.rsplit("_", 1)[0]


def leader_pod(cluster: Cluster) -> dict | None:
    """The running pod whose identity holds the Lease."""
    name = pod_of(holder(cluster))
    return next((p for p in operator_pods(cluster) if p["metadata"]["name"] == name), None)


def logs(cluster: Cluster, pod: str) -> str:
    return cluster.kubectl("logs", "-n", OPERATOR_NAMESPACE, pod, check=False).stdout


def follow_logs(cluster: Cluster, pod: str) -> subprocess.Popen:
    """``kubectl logs -f``: a deleted pod's logs are gone from the API afterwards."""
    return subprocess.Popen(["kubectl", "logs", "-f", "-n", OPERATOR_NAMESPACE, pod], env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def collected(proc: subprocess.Popen, grace: float = 3) -> str:
    try:
        out, _ = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def leader_gauge(pod: dict) -> float:
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8081/metrics", timeout=5) as resp:
        line = next(l for l in resp.read().decode().splitlines() if l.startswith("faiss_operator_leader "))
    return float(line.split()[1])


def builder_jobs(cluster: Cluster, ns: str, index: str) -> list[dict]:
    return cluster.get_json("jobs", "-n", ns, "-l", f"faiss.indexops.io/index={index}")["items"]


def micro(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


# -- FaissIndex helpers -------------------------------------------------------------------


def apply_index(cluster: Cluster, ns: str, name: str, key: str = SMALL_KEY, ids_key: str = SMALL_IDS, **overrides) -> None:
    doc = yaml.safe_load(cluster.sample_manifest(**{
        "spec.dimension": DIM, "spec.source.s3.key": key, "spec.source.s3.idsKey": ids_key, **overrides}))
    doc["metadata"]["name"] = name
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc))


def wait_ready(cluster: Cluster, ns: str, name: str, timeout: float = 300) -> dict:
    def ready():
        st = cluster.faiss_index(ns, name).get("status", {})
        cond = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), {})
        return st if cond.get("status") == "True" and st.get("currentVersion") else None

    return cluster.wait_for(f"{ns}/{name} Ready", ready, timeout)


def wait_new_leader(cluster: Cluster, old: set[str], timeout: float) -> tuple[str, float]:
    """Wait until an identity other than ``old`` holds the Lease; returns it and when (monotonic)."""
    def taken():
        h = holder(cluster)
        return h if h and h not in old else None

    identity = cluster.wait_for("a new Lease holder", taken, timeout, interval=0.2)
    return identity, time.monotonic()


# -- the tests ----------------------------------------------------------------------------


def test_the_operator_may_read_and_write_leases_only_in_its_own_namespace(cluster):
    sa = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"

    def can(verb: str, ns: str, name: str = "") -> str:
        resource = f"leases.coordination.k8s.io/{name}" if name else "leases.coordination.k8s.io"
        return cluster.kubectl("auth", "can-i", verb, resource, "--as", sa, "-n", ns, check=False).stdout.strip()

    assert [can("get", OPERATOR_NAMESPACE, LEASE_NAME), can("update", OPERATOR_NAMESPACE, LEASE_NAME), can("create", OPERATOR_NAMESPACE)] == ["yes"] * 3
    assert can("update", OPERATOR_NAMESPACE, "kube-scheduler") == "no"
    assert can("delete", OPERATOR_NAMESPACE, LEASE_NAME) == "no"
    assert [can("create", "default"), can("update", "default", LEASE_NAME)] == ["no", "no"]


def test_of_two_replicas_exactly_one_holds_the_lease_builds_once_and_the_follower_never_reconciles(cluster, namespace):
    pods = operator_pods(cluster)
    leader = leader_pod(cluster)
    assert len(pods) == 2 and leader is not None
    follower = next(p for p in pods if p["metadata"]["name"] != leader["metadata"]["name"])
    identity = holder(cluster)
    assert lease(cluster)["leaseDurationSeconds"] == LEASE

    apply_index(cluster, namespace, "one")
    st = wait_ready(cluster, namespace, "one")
    jobs = builder_jobs(cluster, namespace, "one")
    assert len(jobs) == 1
    assert jobs[0]["metadata"]["annotations"]["faiss.indexops.io/version"] == st["currentVersion"]

    assert holder(cluster) == identity, "leadership moved although nothing happened to the leader"
    assert (leader_gauge(leader), leader_gauge(follower)) == (1.0, 0.0)
    follower_log = logs(cluster, follower["metadata"]["name"])
    assert f"waiting for leader {identity}" in follower_log
    assert "acquired leadership" not in follower_log
    assert namespace not in follower_log, "the follower touched the index"
    leader_log = logs(cluster, leader["metadata"]["name"])
    assert f"acquired leadership of lease {OPERATOR_NAMESPACE}/{LEASE_NAME} as {identity}" in leader_log
    assert namespace in leader_log  # e.g. BuildStarted / pointer lines


def test_when_the_leader_pod_is_deleted_another_replica_takes_over_within_the_lease_duration_and_keeps_reconciling(cluster, namespace):
    old_identity = holder(cluster)
    old_pod = pod_of(old_identity)
    old_log = follow_logs(cluster, old_pod)
    time.sleep(1)  # the log stream is open
    deleted = time.monotonic()
    cluster.kubectl("delete", "pod", old_pod, "-n", OPERATOR_NAMESPACE, "--wait=false")

    new_identity, taken = wait_new_leader(cluster, {old_identity}, timeout=3 * LEASE)
    assert taken - deleted < LEASE, f"takeover took {taken - deleted:.1f}s"
    assert pod_of(new_identity) != old_pod
    assert f"released leadership of lease {OPERATOR_NAMESPACE}/{LEASE_NAME}" in collected(old_log)

    apply_index(cluster, namespace, "after-failover")
    st = wait_ready(cluster, namespace, "after-failover")
    assert len(builder_jobs(cluster, namespace, "after-failover")) == 1
    assert st["currentVersion"]
    assert holder(cluster) == new_identity


def test_a_leader_killed_without_releasing_is_replaced_only_after_its_lease_expires(cluster, namespace):
    cluster.wait_for("two running replicas", lambda: len(operator_pods(cluster)) == 2 and leader_pod(cluster), 120)
    old_identity = holder(cluster)
    pod = leader_pod(cluster)
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("localprocess://"))
    os.killpg(pid, signal.SIGKILL)  # a crash or a lost node: no SIGTERM, no release
    killed = time.monotonic()
    last_renew = micro(lease(cluster)["renewTime"])

    new_identity, taken = wait_new_leader(cluster, {old_identity}, timeout=4 * LEASE)
    acquired = micro(lease(cluster)["acquireTime"])
    assert (acquired - last_renew).total_seconds() >= LEASE - 0.05, "taken over before the old claim expired"
    assert taken - killed < LEASE + LEASE / 5 + 3, f"takeover took {taken - killed:.1f}s"
    assert new_identity != old_identity

    apply_index(cluster, namespace, "after-crash")
    wait_ready(cluster, namespace, "after-crash")
    assert len(builder_jobs(cluster, namespace, "after-crash")) == 1


def test_an_operator_killed_mid_build_adopts_the_running_job_after_restart_instead_of_building_again(cluster, namespace):
    cluster.wait_for("two running replicas", lambda: len(operator_pods(cluster)) == 2 and leader_pod(cluster), 120)
    apply_index(cluster, namespace, "slow", key=SLOW_KEY, ids_key=SLOW_IDS, **{"spec.parameters": SLOW_PARAMETERS})

    def builder_running():
        pods = cluster.get_json("pods", "-n", namespace, "-l", "faiss.indexops.io/index=slow")["items"]
        return any(p["status"].get("phase") == "Running" for p in pods)

    cluster.wait_for("the builder pod running", builder_running, 120, interval=0.5)
    [job] = builder_jobs(cluster, namespace, "slow")
    old = {p["metadata"]["name"] for p in operator_pods(cluster)}
    old_identity = holder(cluster)
    cluster.kubectl("delete", "pod", "-n", OPERATOR_NAMESPACE, *old, "--wait=false")

    new_identity, _ = wait_new_leader(cluster, {old_identity}, timeout=60)
    assert pod_of(new_identity) not in old
    job_now = cluster.get_json("job", job["metadata"]["name"], "-n", namespace)
    assert not job_now["status"].get("succeeded"), "the build finished before the new operator took over; make it slower"

    st = wait_ready(cluster, namespace, "slow", timeout=600)
    jobs = builder_jobs(cluster, namespace, "slow")
    assert [j["metadata"]["uid"] for j in jobs] == [job["metadata"]["uid"]]
    assert st["currentVersion"] == job["metadata"]["annotations"]["faiss.indexops.io/version"]
    assert st["lastBuild"]["job"] == job["metadata"]["name"]
    reasons = [e["reason"] for e in cluster.events(namespace, "slow")]
    assert reasons.count("BuildStarted") == 1
