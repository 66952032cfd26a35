"""Cluster loss: a FaissIndex re-applied without status serves its published version at once.

Models a team that lost its cluster (or restored a backup, which drops status) and
re-applies its FaissIndexes from Git onto the same storage: the index is served, deleted
with ``deletionPolicy: Retain`` (its Jobs and serving Deployment go with it, the artifacts
stay), then the same manifest is applied again. The old version must serve from S3 without
any build, and status must be rebuilt from the pointer and the manifest.
"""

from __future__ import annotations

import time

import pytest
from helpers import (
    apply_doc,
    builder_jobs,
    cond,
    index_doc,
    index_events,
    index_status,
    lifecycle_namespace,
    s3_source,
    wait_index_ready,
    wait_status,
)
from hack.localstack import Cluster, sample_embeddings, search

pytestmark = pytest.mark.e2e

N, DIM = 1200, 16
KEY, IDS_KEY = "adoption/{horizon}/vectors.npy", "adoption/{horizon}/ids.npy"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    vectors, ids = sample_embeddings(N, DIM, seed=17)
    c.upload_embeddings(KEY.format(horizon="6h"), vectors, ids, IDS_KEY.format(horizon="6h"))
    return c


@pytest.fixture()
def ns(cluster: Cluster):
    namespaces = lifecycle_namespace(cluster, "adopt")
    yield next(namespaces)
    next(namespaces, None)


def _serving_version(cluster: Cluster, ns: str, name: str, queries) -> str | None:
    urls = cluster.service_pod_urls(f"{name}-serving", ns)
    versions = {search(url, queries, k=5)["version"] for url in urls}
    return versions.pop() if len(versions) == 1 else None


def test_a_reapplied_index_serves_its_published_version_from_storage_without_building(cluster, ns):
    name, queries = "adopt-me", sample_embeddings(N, DIM, seed=17)[0][:3]
    doc = index_doc(cluster, name, DIM, s3_source(KEY, IDS_KEY), storage={"deletionPolicy": "Retain"})
    apply_doc(cluster, ns, doc)
    before = wait_index_ready(cluster, ns, name)
    version = before["currentVersion"]
    cluster.wait_for(f"{name} serving {version}", lambda: _serving_version(cluster, ns, name, queries) == version, 120)

    cluster.kubectl("delete", "faissindex", name, "-n", ns, "--timeout=120s", timeout=150)
    gone = lambda: not builder_jobs(cluster, ns, name) and cluster.kubectl(  # noqa: E731
        "get", "deployment", f"{name}-serving", "-n", ns, check=False).returncode != 0
    cluster.wait_for("Jobs and serving Deployment collected with the FaissIndex", gone, 150)

    started = time.monotonic()
    apply_doc(cluster, ns, doc)
    adopted = wait_status(cluster, ns, name, f"status rebuilt with {version}", lambda st: st.get("currentVersion") == version, 60)
    status_seconds = time.monotonic() - started
    cluster.wait_for(f"{name} serving {version} again", lambda: _serving_version(cluster, ns, name, queries) == version, 120)
    serving_seconds = time.monotonic() - started
    print(f"\nadoption: status rebuilt after {status_seconds:.1f}s, old version answering queries after {serving_seconds:.1f}s")

    assert not builder_jobs(cluster, ns, name), "the re-applied index started a build"
    assert adopted["lastGoodVersion"] == version and adopted["recall"] == before["recall"] and adopted["vectors"] == before["vectors"]
    assert adopted["lastBuild"]["version"] == version and adopted["lastBuild"]["result"] == "Succeeded"
    uid = cluster.faiss_index(ns, name)["metadata"]["uid"]
    mine = [e for e in index_events(cluster, ns, name) if e["involvedObject"].get("uid") == uid]
    assert [e["reason"] for e in mine if e["reason"] == "Adopted"] == ["Adopted"], mine
    assert version in next(e["message"] for e in mine if e["reason"] == "Adopted")
    assert not [e for e in mine if e["reason"] in ("BuildStarted", "Promoted")], mine

    st = wait_index_ready(cluster, ns, name, timeout=60)  # Ready once the recreated Deployment is up
    assert cond(st, "Ready")["reason"] == "Serving" and st["currentVersion"] == version
    time.sleep(12)  # longer than one resync (10 s): a later pass must not start a build either
    assert not builder_jobs(cluster, ns, name) and index_status(cluster, ns, name)["lastBuild"]["result"] == "Succeeded"
