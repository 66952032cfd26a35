"""One FaissIndex from `kubectl apply` to answering queries, on the real local stack.

The operator is installed with `helm` and runs as a pod under the chart's own RBAC, so a
permission missing from the chart fails these tests. Builder Jobs and serving pods run
through the real Job/Deployment controllers and the node agent.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import yaml

from hack.localstack import OPERATOR_NAMESPACE, RELEASE, Cluster, sample_embeddings, search
from tests.e2e.helpers import index_status as status

pytestmark = pytest.mark.e2e

N, DIM, K = 4000, 32, 10
KEY = "e2e/{horizon}/vectors.npy"
IDS_KEY = "e2e/{horizon}/ids.npy"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    return c


@pytest.fixture(scope="module")
def data(cluster: Cluster) -> tuple[np.ndarray, np.ndarray]:
    vectors, ids = sample_embeddings(N, DIM, seed=11)
    cluster.upload_embeddings(KEY.format(horizon="6h"), vectors, ids, IDS_KEY.format(horizon="6h"))
    return vectors, ids


@pytest.fixture
def namespace(cluster: Cluster):
    with cluster.temporary_namespace("e2e") as ns:
        yield ns


def manifest(cluster: Cluster, name: str, **overrides) -> str:
    doc = yaml.safe_load(cluster.sample_manifest(**{"spec.dimension": DIM, "spec.source.s3.key": KEY, "spec.source.s3.idsKey": IDS_KEY, **overrides}))
    doc["metadata"]["name"] = name
    return yaml.safe_dump(doc)


def condition(st: dict, ctype: str) -> dict:
    return next((c for c in st.get("conditions", []) if c["type"] == ctype), {})


def wait_ready(cluster: Cluster, ns: str, name: str, version_not: str | None = None, timeout: float = 300) -> dict:
    def ready():
        st = status(cluster, ns, name)
        ok = condition(st, "Ready").get("status") == "True" and st.get("currentVersion") not in (None, version_not)
        return st if ok else None

    return cluster.wait_for(f"{name} Ready", ready, timeout, interval=1)


def serving_url(cluster: Cluster, ns: str, name: str) -> str:
    return cluster.wait_for("serving endpoint", lambda: (cluster.service_pod_urls(f"{name}-serving", ns) or [None])[0], 120)


def events(cluster: Cluster, ns: str, name: str) -> list[dict]:
    return cluster.events(ns, name)


def exact_neighbours(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = ((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    return ids[np.argsort(d, axis=1)[:, :k]]


@pytest.mark.parametrize(
    "override, message",
    [
        ({"spec.indexType": "Annoy"}, 'spec.indexType: Unsupported value: "Annoy"'),
        ({"spec.dimension": 0}, "spec.dimension: Invalid value: 0"),
        ({"spec.horizon": "6 hours"}, "spec.horizon: Invalid value"),
        ({"spec.parameters": {"nlist": 64}}, "parameters nlist, nprobe, nSubquantizers, mPq, mHnsw do not apply to indexType HNSW"),
    ],
)
def test_an_invalid_spec_is_rejected_by_the_api_server_at_apply_time_with_a_readable_message(cluster, override, message):
    proc = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", "-", input=manifest(cluster, "invalid", **override), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_the_operator_runs_from_the_chart_under_a_service_account_without_secret_access(cluster):
    pods = cluster.get_json("pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    assert pods and pods[0]["spec"]["serviceAccountName"] == f"{RELEASE}"
    sa = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"
    assert cluster.kubectl("auth", "can-i", "create", "jobs.batch", "--as", sa, "-n", "default", check=False).stdout.strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "get", "secrets", "--as", sa, "-n", "default", check=False).stdout.strip() == "no"
    assert cluster.kubectl("auth", "can-i", "update", "faissindexes.faiss.indexops.io", "--as", sa, "-n", "default", check=False).stdout.strip() == "no"


def test_a_valid_index_reaches_ready_and_serves_the_exact_nearest_neighbours(cluster, data, namespace):
    vectors, ids = data
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest(cluster, "hnsw"))
    st = wait_ready(cluster, namespace, "hnsw")
    assert st["recall"] >= 0.9 and st["vectors"] == N and st["observedGeneration"] >= 1
    assert condition(st, "Degraded")["status"] == "False"

    job = cluster.get_json("job", st["lastBuild"]["job"], "-n", namespace)
    assert job["metadata"]["ownerReferences"][0]["name"] == "hnsw"

    url = serving_url(cluster, namespace, "hnsw")
    queries = vectors[:20] + np.float32(0.05)
    answer = search(url, queries, k=K)
    assert answer["version"] == st["currentVersion"]
    expected = exact_neighbours(vectors, ids, queries, K)
    overlap = np.mean([len(set(a) & set(e)) / K for a, e in zip(answer["ids"], expected.tolist())])
    assert overlap >= 0.9
    assert all(a[0] == e[0] for a, e in zip(answer["ids"], expected.tolist()))
    reasons = {e["reason"] for e in events(cluster, namespace, "hnsw")}
    assert {"BuildStarted", "BuildSucceeded", "Promoted"} <= reasons


def test_changing_parameters_builds_a_new_version_and_serving_moves_to_it_without_a_failed_query(cluster, data, namespace):
    vectors, _ = data
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest(cluster, "swap"))
    first = wait_ready(cluster, namespace, "swap")["currentVersion"]
    url = serving_url(cluster, namespace, "swap")

    results: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def loop():
        rng = np.random.default_rng(1)
        while not stop.is_set() and len(results) + len(failures) < 20000:
            try:
                results.append(search(url, vectors[rng.integers(0, N, 1)], k=K)["version"])
            except Exception as exc:  # noqa: BLE001 - every failure is what the test counts
                failures.append(repr(exc))
            time.sleep(0.01)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        patch = {"spec": {"parameters": {"efSearch": 96}}}
        cluster.kubectl("patch", "faissindex", "swap", "-n", namespace, "--type", "merge", "-p", json.dumps(patch))
        second = wait_ready(cluster, namespace, "swap", version_not=first)["currentVersion"]
        cluster.wait_for("serving on the new version", lambda: results and results[-1] == second, 60)
        time.sleep(1)
    finally:
        stop.set()
        worker.join(10)
    assert failures == []
    assert first in results and second in results
    assert results.index(second) > results.index(first)
    assert first not in results[results.index(second):], "serving went back to the old version"


def test_a_build_below_min_recall_leaves_the_old_version_serving_and_says_why(cluster, data, namespace):
    vectors, _ = data
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest(cluster, "gate"))
    good = wait_ready(cluster, namespace, "gate")["currentVersion"]
    bad = {"spec": {"parameters": {"m": 4, "efConstruction": 8, "efSearch": 1}, "validation": {"minRecall": 0.999}}}
    cluster.kubectl("patch", "faissindex", "gate", "-n", namespace, "--type", "merge", "-p", json.dumps(bad))

    def rejected():
        st = status(cluster, namespace, "gate")
        return st if condition(st, "Degraded").get("reason") == "ValidationFailed" else None

    st = cluster.wait_for("ValidationFailed", rejected, 300)
    assert st["currentVersion"] == good
    assert "< minRecall 0.9990" in condition(st, "Degraded")["message"]
    assert condition(st, "Ready")["status"] == "True"
    warnings = [e for e in events(cluster, namespace, "gate") if e["reason"] == "ValidationFailed"]
    assert warnings and warnings[0]["type"] == "Warning" and f"{good} keeps serving" in warnings[0]["message"]
    assert search(serving_url(cluster, namespace, "gate"), vectors[:1], k=K)["version"] == good


def test_deleting_the_index_removes_its_jobs_and_deployment_through_garbage_collection(cluster, data, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest(cluster, "gone"))
    wait_ready(cluster, namespace, "gone")
    selector = "faiss.indexops.io/index=gone"
    assert cluster.get_json("jobs", "-n", namespace, "-l", selector)["items"]
    assert cluster.get_json("deployments", "-n", namespace, "-l", selector)["items"]
    cluster.kubectl("delete", "faissindex", "gone", "-n", namespace, "--timeout=60s")

    def collected():
        left = [cluster.get_json(kind, "-n", namespace, "-l", selector)["items"] for kind in ("jobs", "deployments", "services", "pods")]
        return not any(left)

    cluster.wait_for("garbage collection of Jobs, Deployment, Service and pods", collected, 180, interval=2)


def test_a_build_that_fails_reports_the_builders_reason_in_status_and_events(cluster, data, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest(cluster, "wrongdim", **{"spec.dimension": DIM + 1}))

    def failed():
        st = status(cluster, namespace, "wrongdim")
        return st if condition(st, "Degraded").get("reason") == "BuildFailed" else None

    st = cluster.wait_for("BuildFailed", failed, 240)
    assert st["lastBuild"]["result"] == "Failed"
    assert st["lastBuild"]["message"].startswith("DimensionMismatch:"), st["lastBuild"]["message"]
    assert st.get("currentVersion") is None and condition(st, "Ready")["status"] == "False"
    assert st["consecutiveFailures"] == 1
    warnings = [e for e in events(cluster, namespace, "wrongdim") if e["reason"] == "BuildFailed"]
    assert warnings and "DimensionMismatch" in warnings[0]["message"]
