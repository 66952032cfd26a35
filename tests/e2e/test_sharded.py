"""Sharded builds on the real local stack: train Job, Indexed slice Job, finalize Job.

The operator runs under the chart's RBAC; the real Job controller schedules the slices
and retries a killed slice alone (``backoffLimitPerIndex``). Recall is the whole index's,
measured by the builder on merged shard answers, and is compared with an unsharded build
of the same data and parameters. (Serving through the fan-out is covered by
``tests/integration/test_serving_sharded.py`` with real processes: this stack has no
Service DNS, which the fan-out uses to reach the shard Services.)
"""

from __future__ import annotations


import pytest


from helpers import apply_doc, builder_jobs, index_doc, s3_keys, s3_source, wait_index_ready  # noqa: E402
from hack.localstack import Cluster, sample_embeddings

pytestmark = pytest.mark.e2e

N, DIM = 3000, 32
KEY, IDS_KEY = "sharded/{horizon}/vectors.npy", "sharded/{horizon}/ids.npy"
TYPES = {
    "HNSW": {"indexType": "HNSW", "parameters": {"m": 16, "efConstruction": 80, "efSearch": 96}},
    "IVF": {"indexType": "IVF", "parameters": {"nlist": 32, "nprobe": 8}},
}


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    vectors, ids = sample_embeddings(N, DIM, seed=23)
    c.upload_embeddings(KEY.format(horizon="6h"), vectors, ids, IDS_KEY.format(horizon="6h"))
    return c


@pytest.fixture
def namespace(cluster: Cluster):
    with cluster.temporary_namespace("shard") as ns:
        yield ns


def doc(cluster: Cluster, name: str, shards: int, kind: str, **extra) -> dict:
    return index_doc(cluster, name, DIM, s3_source(KEY, IDS_KEY), shards=shards, serving={"enabled": False},
                     validation={"minRecall": 0.8, "k": 10, "queries": 100}, **TYPES[kind], **extra)


@pytest.mark.parametrize("kind", ["HNSW", "IVF"])
def test_a_four_shard_index_builds_through_an_indexed_job_passes_its_gates_with_the_recall_of_one_index(
    cluster: Cluster, namespace: str, kind: str,
) -> None:
    apply_doc(cluster, namespace, doc(cluster, "sharded", 4, kind, shardMerge="Never"))
    apply_doc(cluster, namespace, doc(cluster, "single", 1, kind))
    sharded = wait_index_ready(cluster, namespace, "sharded", timeout=400)
    single = wait_index_ready(cluster, namespace, "single", timeout=400)
    assert abs(float(sharded["recall"]) - float(single["recall"])) <= 0.01
    assert sharded["vectors"] == single["vectors"] == N
    jobs = builder_jobs(cluster, namespace, "sharded")
    stages = {j["metadata"]["annotations"].get("faiss.indexops.io/build-stage"): j for j in jobs}
    assert set(stages) == {"train", "shards", "finalize"}
    slices = stages["shards"]
    assert (slices["spec"]["completionMode"], slices["spec"]["completions"]) == ("Indexed", 4)
    assert slices["status"].get("completedIndexes") == "0-3"
    keys = s3_keys(cluster, f"faiss-indexes/{namespace}/sharded/6h/versions/{sharded['currentVersion']}/")
    assert {k.rsplit("/", 1)[1] for k in keys} >= {f"shard-00{i}.faiss" for i in range(4)} | {"manifest.json"}


def test_a_slice_pod_killed_mid_build_is_retried_alone_and_the_version_publishes_complete(
    cluster: Cluster, namespace: str,
) -> None:
    apply_doc(cluster, namespace, doc(cluster, "killed", 4, "HNSW"))

    def running_slice() -> dict | None:
        pods = cluster.get_json("pods", "-n", namespace, "-l", "faiss.indexops.io/index=killed")["items"]
        return next((p for p in pods if p["metadata"]["annotations"].get("faiss.indexops.io/build-stage") == "shards"
                     and p["status"].get("phase") == "Running"
                     and p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index") == "1"), None)

    victim = cluster.wait_for("slice 1 running", running_slice, timeout=240, interval=0.2)
    cluster.kubectl("delete", "pod", "-n", namespace, victim["metadata"]["name"], "--wait=false")
    status = wait_index_ready(cluster, namespace, "killed", timeout=400)
    slices = next(j for j in builder_jobs(cluster, namespace, "killed")
                  if j["metadata"]["annotations"].get("faiss.indexops.io/build-stage") == "shards")
    assert slices["status"].get("completedIndexes") == "0-3"
    assert slices["status"].get("failed", 0) >= 1  # the killed pod counted against slice 1 only
    pods = cluster.get_json("pods", "-n", namespace, "-l", f"job-name={slices['metadata']['name']}")["items"]
    per_index: dict[str, int] = {}
    for pod in pods:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        per_index[index] = per_index.get(index, 0) + 1
    assert all(per_index.get(i, 0) == 1 for i in ("0", "2", "3")), per_index  # the other slices ran once
    assert status["vectors"] == N
