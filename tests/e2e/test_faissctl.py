"""`faissctl` against the real local stack: the commands a newcomer runs after the quickstart.

One index is applied and built by the helm-installed operator; then `status`, `versions`,
`rebuild --wait`, `pin` / `unpin` and `bench` run as the installed program would (a
subprocess with the stack's KUBECONFIG and S3 credentials), and their output is checked
against what the API server and S3 hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import yaml

from hack.localstack import Cluster, sample_embeddings

pytestmark = pytest.mark.e2e

N, DIM = 3000, 32
KEY, IDS_KEY = "faissctl/{horizon}/vectors.npy", "faissctl/{horizon}/ids.npy"
NAME = "cli"


@pytest.fixture(scope="module")
def cluster(stack_env: dict[str, str]) -> Cluster:  # stack_env: `stack.py up` (idempotent) first
    c = Cluster.from_stack()
    c.install_operator()
    vectors, ids = sample_embeddings(N, DIM, seed=23)
    c.upload_embeddings(KEY.format(horizon="6h"), vectors, ids, IDS_KEY.format(horizon="6h"))
    return c


@pytest.fixture(scope="module")
def namespace(cluster: Cluster):
    with cluster.temporary_namespace("e2e-cli") as ns:
        yield ns


def faissctl(cluster: Cluster, *args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "faissctl", *args], capture_output=True, text=True, env=cluster.env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"faissctl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def as_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(faissctl(cluster, *args, "-o", "json").stdout)


def status(cluster: Cluster, ns: str) -> dict[str, Any]:
    return cluster.faiss_index(ns, NAME).get("status", {})


@pytest.fixture(scope="module")
def first_version(cluster: Cluster, namespace: str) -> str:
    doc = yaml.safe_load(cluster.sample_manifest(**{"spec.dimension": DIM, "spec.source.s3.key": KEY, "spec.source.s3.idsKey": IDS_KEY,
                                                     "spec.validation.queries": 100}))
    doc["metadata"]["name"] = NAME
    del doc["spec"]["schedule"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))

    def ready() -> str | None:
        st = status(cluster, namespace)
        ok = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))
        return st.get("currentVersion") if ok else None

    return cluster.wait_for(f"{NAME} Ready", ready, 240)


def test_status_shows_what_serves_in_json_and_for_people(cluster: Cluster, namespace: str, first_version: str) -> None:
    report = as_json(cluster, "status", NAME, "-n", namespace)
    st = status(cluster, namespace)
    assert report["serving"]["version"] == first_version == st["currentVersion"]
    assert report["serving"]["recall"] == st["recall"] and report["serving"]["vectors"] == N
    assert report["lastBuild"]["result"] == "Succeeded" and report["lastBuild"]["trigger"] == "Spec"
    assert {c["type"]: c["status"] for c in report["conditions"]}["Ready"] == "True"
    assert {"BuildStarted", "BuildSucceeded", "Promoted"} <= {e["reason"] for e in report["events"]}

    human = faissctl(cluster, "status", NAME, "-n", namespace).stdout
    assert f"Name:           {NAME}" in human and "Phase:          Serving (Ready=True)" in human
    assert f"Version:      {first_version}" in human and "Result:       Succeeded (#1 trigger Spec)" in human
    assert "Conditions:" in human and "Events:" in human and "Promoted" in human

    table = faissctl(cluster, "status", "-n", namespace).stdout.splitlines()
    assert table[0].startswith("NAME ") and table[1].split()[:5] == [NAME, "6h", "Serving", "True", first_version]


def test_errors_are_readable_with_their_exit_codes(cluster: Cluster, namespace: str) -> None:
    missing = faissctl(cluster, "status", "nope", "-n", namespace, check=False)
    assert missing.returncode == 3 and missing.stderr.strip() == (
        f"Error: get faissindex nope: FaissIndex 'nope' not found in namespace '{namespace}'")
    no_context = faissctl(cluster, "status", "--context", "nowhere", check=False)
    assert no_context.returncode == 4 and "context 'nowhere' not found" in no_context.stderr


def test_versions_lists_the_stored_version_with_its_manifest(cluster: Cluster, namespace: str, first_version: str) -> None:
    data = as_json(cluster, "versions", NAME, "-n", namespace)
    assert data["location"].endswith(f"/faiss-indexes/{namespace}/{NAME}/6h/versions/")
    [row] = data["versions"]
    assert row["version"] == first_version and row["marks"] == ["serving", "last-good"]
    assert row["complete"] and row["vectors"] == N and row["recall"] >= 0.9 and row["sizeBytes"] > 0
    assert first_version in faissctl(cluster, "versions", NAME, "-n", namespace).stdout


def test_rebuild_wait_pin_and_unpin(cluster: Cluster, namespace: str, first_version: str) -> None:
    rebuilt = as_json(cluster, "rebuild", NAME, "-n", namespace, "--wait", "--timeout", "4m")
    second = rebuilt["version"]
    assert rebuilt["ok"] and rebuilt["build"]["trigger"] == "Manual" and second != first_version
    assert status(cluster, namespace)["currentVersion"] == second
    versions = as_json(cluster, "versions", NAME, "-n", namespace)["versions"]
    assert [v["version"] for v in versions] == [second, first_version]

    pinned = as_json(cluster, "pin", NAME, "--previous", "-n", namespace)
    assert pinned["pinnedVersion"] == first_version
    cluster.wait_for("the pin to serve", lambda: status(cluster, namespace).get("pinnedVersion") == first_version
                     and status(cluster, namespace).get("currentVersion") == first_version, 90)
    human = faissctl(cluster, "status", NAME, "-n", namespace).stdout
    assert f"Pinned:       {first_version}" in human
    # "last good" describes what serves; what unpinning returns to is said separately
    assert status(cluster, namespace)["promotedVersion"] == first_version
    assert f"Last good:    {first_version}\n" in human and f"On unpin:     {second} (newest version promoted by rollout)" in human
    marks = {v["version"]: v["marks"] for v in as_json(cluster, "versions", NAME, "-n", namespace)["versions"]}
    assert marks == {first_version: ["serving", "last-good", "pinned"], second: ["on-unpin"]}

    faissctl(cluster, "unpin", NAME, "-n", namespace)
    cluster.wait_for("the last good version to serve again",
                     lambda: status(cluster, namespace).get("currentVersion") == second
                     and not status(cluster, namespace).get("pinnedVersion"), 90)
    assert status(cluster, namespace)["promotedVersion"] == second


def test_bench_reports_latency_of_the_served_version(cluster: Cluster, namespace: str, first_version: str) -> None:
    data = as_json(cluster, "bench", NAME, "-n", namespace, "-r", "40", "-c", "2")
    served = [v for v in data["versions"] if v["version"]]
    assert served and sum(v["requests"] for v in served) == 40 and all(v["errors"] == 0 for v in data["versions"])
    assert served[0]["role"] == "stable" and served[0]["p99Ms"] >= served[0]["p50Ms"] > 0
    assert np.isfinite(served[0]["qps"])
