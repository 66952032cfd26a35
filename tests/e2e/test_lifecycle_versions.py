"""Stored versions: pinning (declarative rollback), retention (keepVersions) and what happens to
the artifacts when the FaissIndex is deleted (storage.deletionPolicy).

What serves is checked where it matters, at the serving endpoint; what is stored, by listing
S3. Every test's index is applied up front (module fixture ``indexes``) so their first builds
overlap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pytest
from helpers import (
    apply_doc,
    builder_jobs,
    cond,
    index_doc,
    index_events,
    index_object,
    index_prefix,
    index_status,
    lifecycle_namespace,
    patch_spec,
    request_rebuild,
    s3_keys,
    s3_source,
    s3_versions,
    stamp,
    wait_build_done,
    wait_index_ready,
    wait_status,
)
from hack.localstack import Cluster, sample_embeddings, search

pytestmark = pytest.mark.e2e

N, DIM = 1500, 16
KEY, IDS_KEY = "lifecycle-versions/{horizon}/vectors.npy", "lifecycle-versions/{horizon}/ids.npy"
HNSW = {"indexType": "HNSW", "parameters": {"m": 16, "efConstruction": 64, "efSearch": 32}}
ABSENT = "20200101T000000Z-deadbeef"  # a well-formed version id nothing ever built
FINALIZER = "faiss.indexops.io/finalizer"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    vectors, ids = sample_embeddings(N, DIM, seed=13)
    c.upload_embeddings(KEY.format(horizon="6h"), vectors, ids, IDS_KEY.format(horizon="6h"))
    return c


@dataclass
class Indexes:
    ns: str
    queries: np.ndarray


@pytest.fixture(scope="module")
def indexes(cluster: Cluster):
    namespaces = lifecycle_namespace(cluster, "lc-ver")
    ns = next(namespaces)
    source = s3_source(KEY, IDS_KEY)
    apply_doc(cluster, ns, index_doc(cluster, "pin", DIM, source, **HNSW))
    apply_doc(cluster, ns, index_doc(cluster, "keep", DIM, source, rollout={"keepVersions": 1}))
    for name, policy in (("delete-me", "Delete"), ("retain-me", "Retain")):
        apply_doc(cluster, ns, index_doc(cluster, name, DIM, source, storage={"deletionPolicy": policy}))
    yield Indexes(ns, sample_embeddings(N, DIM, seed=13)[0][:3])
    next(namespaces, None)


def now() -> datetime:
    return datetime.now(timezone.utc)


def serves(cluster: Cluster, ns: str, name: str, version: str, queries: np.ndarray, timeout: float = 90) -> None:
    """Wait until the serving endpoint answers from ``version``."""
    def answered():
        urls = cluster.service_pod_urls(f"{name}-serving", ns)
        return urls and all(search(url, queries, k=5)["version"] == version for url in urls)

    cluster.wait_for(f"{ns}/{name} serving {version}", answered, timeout)


def test_pinning_an_older_version_serves_it_unpinning_returns_to_the_newest_and_a_missing_pin_changes_nothing(cluster, indexes):
    ns, name, queries = indexes.ns, "pin", indexes.queries
    v1 = wait_index_ready(cluster, ns, name)["currentVersion"]
    patch_spec(cluster, ns, name, {"parameters": {"efSearch": 48}})
    v2 = wait_index_ready(cluster, ns, name, version_not=v1)["currentVersion"]
    serves(cluster, ns, name, v2, queries)

    patch_spec(cluster, ns, name, {"rollout": {"pinnedVersion": v1}})
    st = wait_status(cluster, ns, name, f"pinned to {v1}", lambda st: st.get("currentVersion") == v1 and st.get("pinnedVersion") == v1)
    serves(cluster, ns, name, v1, queries)
    st = wait_status(cluster, ns, name, "Ready (Pinned)", lambda st: cond(st, "Ready").get("reason") == "Pinned")
    assert st["buildCount"] == 2 and st["lastGoodVersion"] == v2
    assert len(index_events(cluster, ns, name, "Pinned")) == 1

    patch_spec(cluster, ns, name, {"rollout": {"pinnedVersion": None}})
    st = wait_status(cluster, ns, name, "unpinned", lambda st: st.get("currentVersion") == v2 and not st.get("pinnedVersion"))
    serves(cluster, ns, name, v2, queries)
    assert len(index_events(cluster, ns, name, "Unpinned")) == 1

    patch_spec(cluster, ns, name, {"rollout": {"pinnedVersion": ABSENT}})
    missing = lambda st: cond(st, "Degraded").get("reason") == "PinnedVersionMissing"  # noqa: E731
    st = wait_status(cluster, ns, name, "Degraded PinnedVersionMissing", missing)
    assert ABSENT in cond(st, "Degraded")["message"] and st["currentVersion"] == v2 and not st.get("pinnedVersion")
    assert cond(st, "Ready")["status"] == "True"
    events = index_events(cluster, ns, name, "PinnedVersionMissing")
    assert len(events) == 1 and events[0]["type"] == "Warning" and ABSENT in events[0]["message"]
    serves(cluster, ns, name, v2, queries)
    assert index_status(cluster, ns, name)["buildCount"] == 2  # pinning never builds


def test_keep_versions_prunes_old_versions_from_storage_but_never_the_serving_or_pinned_one(cluster, indexes):
    ns, name = indexes.ns, "keep"
    v1 = wait_index_ready(cluster, ns, name)["currentVersion"]
    assert s3_versions(cluster, ns, name) == {v1}

    request_rebuild(cluster, ns, name, f"first-{stamp(now())}")
    wait_build_done(cluster, ns, name, 2)
    v2 = wait_index_ready(cluster, ns, name, version_not=v1)["currentVersion"]
    cluster.wait_for(f"{v1} pruned", lambda: s3_versions(cluster, ns, name) == {v2}, 60)
    st = wait_status(cluster, ns, name, "storedVersions 1", lambda st: st.get("storedVersions") == 1)
    assert st["lastGoodVersion"] == v2

    # Pin the serving version; later builds are held (not served) and the oldest unprotected goes.
    patch_spec(cluster, ns, name, {"rollout": {"pinnedVersion": v2}})
    wait_status(cluster, ns, name, f"pinned to {v2}", lambda st: st.get("pinnedVersion") == v2)
    request_rebuild(cluster, ns, name, f"second-{stamp(now())}")
    v3 = wait_build_done(cluster, ns, name, 3)["version"]
    cluster.wait_for(f"{v2} (pinned) and {v3} (newest) stored", lambda: s3_versions(cluster, ns, name) == {v2, v3}, 60)
    request_rebuild(cluster, ns, name, f"third-{stamp(now())}")
    v4 = wait_build_done(cluster, ns, name, 4)["version"]
    cluster.wait_for(f"{v3} pruned, pinned {v2} kept", lambda: s3_versions(cluster, ns, name) == {v2, v4}, 60)
    st = index_status(cluster, ns, name)
    assert st["currentVersion"] == v2 and st["pinnedVersion"] == v2 and st["lastBuild"]["result"] == "Succeeded"

    pruned = " ".join(e["message"] for e in index_events(cluster, ns, name, "VersionsPruned"))
    assert v1 in pruned and v3 in pruned and v2 not in pruned and v4 not in pruned, pruned
    manifest = cluster.s3().get_object(Bucket="faiss-demo-indexes", Key=f"{index_prefix(ns, name)}/versions/{v2}/manifest.json")
    assert json.loads(manifest["Body"].read())["version"] == v2


def test_deleting_an_index_removes_its_artifacts_under_delete_and_keeps_them_under_retain(cluster, indexes):
    ns = indexes.ns
    stored = {}
    for name in ("delete-me", "retain-me"):
        version = wait_index_ready(cluster, ns, name)["currentVersion"]
        assert FINALIZER in index_object(cluster, ns, name)["metadata"].get("finalizers", [])
        stored[name] = s3_keys(cluster, index_prefix(ns, name))
        assert f"{index_prefix(ns, name)}/versions/{version}/manifest.json" in stored[name], stored[name]

    cluster.kubectl("delete", "faissindex", "delete-me", "retain-me", "-n", ns, "--timeout=120s", timeout=150)
    gone = cluster.kubectl("get", "faissindex", "-n", ns, "-o", "name", check=False).stdout.split()
    assert not {"faissindex.faiss.indexops.io/delete-me", "faissindex.faiss.indexops.io/retain-me"} & set(gone), gone
    assert s3_keys(cluster, index_prefix(ns, "delete-me")) == []
    assert sorted(s3_keys(cluster, index_prefix(ns, "retain-me"))) == sorted(stored["retain-me"])

    def event(name: str, reason: str) -> list[dict]:
        return index_events(cluster, ns, name, reason)

    deleted = cluster.wait_for("ArtifactsDeleted Event", lambda: event("delete-me", "ArtifactsDeleted"), 30)
    retained = cluster.wait_for("ArtifactsRetained Event", lambda: event("retain-me", "ArtifactsRetained"), 30)
    assert len(deleted) == 1 and f"removed {len(stored['delete-me'])} object(s)" in deleted[0]["message"], deleted
    assert len(retained) == 1 and index_prefix(ns, "retain-me") in retained[0]["message"], retained
    assert event("delete-me", "ArtifactsRetained") == [] and event("retain-me", "ArtifactsDeleted") == []
    cluster.wait_for("builder Jobs collected", lambda: not builder_jobs(cluster, ns, "delete-me") and not builder_jobs(cluster, ns, "retain-me"), 120)
