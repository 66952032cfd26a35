"""Sharded indexes on the real local stack: Indexed-Job builds and serving through the fan-out.

The operator runs under the chart's RBAC; the real Job controller schedules the slices
and retries a killed slice alone (``backoffLimitPerIndex``). Serving runs as the
operator writes it for a real cluster: one Deployment + Service per shard and the
fan-out, which reaches the shard Services by their cluster DNS names
(``<index>-serving-shard-N.<ns>.svc:80``); the node agent resolves those names and
proxies the Service IPs (hack/stack/svcnet.py), and the test queries the fan-out's
Service the same way (``Cluster.service_url``).

Every data generation has its own id range (``OFFSET``), so an answer that merged
shards of two versions would carry ids of two generations, and an answer whose ids do
not belong to the version it reports would show too. Builds are shared by the tests of
this module (one namespace); the killed-slice test has its own.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import numpy as np
import pytest
from helpers import (apply_doc, builder_jobs, index_doc, index_status, patch_spec, s3_keys, s3_source,
                     wait_index_ready, wait_status)

from hack.localstack import INDEX_BUCKET, Cluster, sample_embeddings, search

pytestmark = pytest.mark.e2e

N, DIM, K, SHARDS = 3000, 32, 10, 4
OFFSET = 1_000_000  # ids of data generation g are base ids + g * OFFSET
KEY, IDS_KEY = "sharded/gen{gen}/{{horizon}}/vectors.npy", "sharded/gen{gen}/{{horizon}}/ids.npy"
TYPES = {
    "HNSW": {"indexType": "HNSW", "parameters": {"m": 16, "efConstruction": 80, "efSearch": 96}},
    # nprobe 2: recall well below 1, so "equal to the unsharded build" is a real comparison. The
    # sharded build trains the same quantizer on the same rows as the unsharded one
    # (index_builder.sharded.whole_index_seed), so their answers and recall figures should match.
    "IVF": {"indexType": "IVF", "parameters": {"nlist": 32, "nprobe": 2}},
}
MIN_RECALL = {"HNSW": 0.8, "IVF": 0.5}


@dataclass
class Built:
    ns: str
    vectors: np.ndarray
    ids: np.ndarray
    queries: np.ndarray
    generation: dict[str, int] = field(default_factory=dict)  # version -> data generation


def source(gen: int) -> dict:
    return s3_source(KEY.format(gen=gen), IDS_KEY.format(gen=gen))


def doc(cluster: Cluster, name: str, shards: int, kind: str, gen: int = 1, **extra) -> dict:
    return index_doc(cluster, name, DIM, source(gen), shards=shards,
                     validation={"minRecall": MIN_RECALL[kind], "k": K, "queries": 100}, **TYPES[kind], **extra)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    vectors, ids = sample_embeddings(N, DIM, seed=23)
    for gen in (1, 2, 3):
        c.upload_embeddings(KEY.format(gen=gen).format(horizon="6h"), vectors, ids + gen * OFFSET,
                            IDS_KEY.format(gen=gen).format(horizon="6h"))
    return c


@pytest.fixture(scope="module")
def built(cluster: Cluster):
    """A 4-shard and an unsharded index of each kind, same data and parameters, all serving."""
    vectors, ids = sample_embeddings(N, DIM, seed=23)
    queries = (vectors[::15] + np.random.default_rng(5).normal(0, 0.5, (N // 15, DIM))).astype(np.float32)
    with cluster.temporary_namespace("shard") as ns:
        for kind in TYPES:
            # IVF with shardMerge Never stays sharded (Auto would merge 3000 vectors into one file).
            apply_doc(cluster, ns, doc(cluster, f"{kind.lower()}-sharded", SHARDS, kind, shardMerge="Never"))
            apply_doc(cluster, ns, doc(cluster, f"{kind.lower()}-single", 1, kind))
        out = Built(ns, vectors, ids, queries)
        for kind in TYPES:
            for name in (f"{kind.lower()}-sharded", f"{kind.lower()}-single"):
                out.generation[wait_index_ready(cluster, ns, name, timeout=420)["currentVersion"]] = 1
        yield out


@pytest.fixture
def namespace(cluster: Cluster):
    with cluster.temporary_namespace("shard") as ns:
        yield ns


def exact_topk(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = (queries ** 2).sum(1)[:, None] - 2 * queries @ vectors.T + (vectors ** 2).sum(1)[None, :]
    return ids[np.argsort(d, axis=1)[:, :k]]


def recall(url: str, built: Built, gen: int) -> tuple[float, set[str]]:
    truth = exact_topk(built.vectors, built.ids + gen * OFFSET, built.queries, K)
    hits, versions = 0, set()
    for start in range(0, len(built.queries), 50):
        answer = search(url, built.queries[start:start + 50], k=K)
        versions.add(answer["version"])
        hits += sum(len(set(row) & set(t)) for row, t in zip(answer["ids"], truth[start:start + 50].tolist()))
    return hits / truth.size, versions


def fanout_url(cluster: Cluster, ns: str, name: str) -> str:
    return cluster.service_url(ns, f"{name}-serving")


@pytest.mark.parametrize("kind", list(TYPES))
def test_a_four_shard_index_builds_through_an_indexed_job_passes_its_gates_with_the_recall_of_one_index(
    cluster: Cluster, built: Built, kind: str,
) -> None:
    name = f"{kind.lower()}-sharded"
    sharded, single = index_status(cluster, built.ns, name), index_status(cluster, built.ns, f"{kind.lower()}-single")
    assert abs(float(sharded["recall"]) - float(single["recall"])) <= 0.01
    assert sharded["vectors"] == single["vectors"] == N
    jobs = builder_jobs(cluster, built.ns, name)
    stages = {j["metadata"]["annotations"].get("faiss.indexops.io/build-stage"): j for j in jobs}
    assert set(stages) == {"train", "shards", "finalize"}
    slices = stages["shards"]
    assert (slices["spec"]["completionMode"], slices["spec"]["completions"]) == ("Indexed", SHARDS)
    assert slices["status"].get("completedIndexes") == "0-3"
    keys = s3_keys(cluster, f"faiss-indexes/{built.ns}/{name}/6h/versions/{sharded['currentVersion']}/")
    assert {k.rsplit("/", 1)[1] for k in keys} >= {f"shard-00{i}.faiss" for i in range(SHARDS)} | {"manifest.json"}


@pytest.mark.parametrize("kind", list(TYPES))
def test_the_fan_out_serves_the_four_shard_index_by_service_name_with_the_recall_of_the_unsharded_build(
    cluster: Cluster, built: Built, kind: str,
) -> None:
    name = f"{kind.lower()}-sharded"
    fanout = cluster.get_json(f"deployment/{name}-serving", "-n", built.ns)
    env = {e["name"]: e.get("value") for e in fanout["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FAISS_SERVING_MODE"] == "fanout"
    assert env["FAISS_SHARD_URLS"].split(",") == [f"http://{name}-serving-shard-{i}.{built.ns}.svc:80" for i in range(SHARDS)]
    current = index_status(cluster, built.ns, name)["currentVersion"]
    url = fanout_url(cluster, built.ns, name)
    cluster.wait_for("the fan-out answering", lambda: search(url, built.queries[:1])["version"] == current, 120)
    sharded_recall, sharded_versions = recall(url, built, gen=1)
    single_recall, _ = recall(fanout_url(cluster, built.ns, f"{kind.lower()}-single"), built, gen=1)
    print(f"{kind}: recall@{K} fan-out over {SHARDS} shards {sharded_recall:.4f}, unsharded {single_recall:.4f}")
    assert sharded_versions == {current}
    assert abs(sharded_recall - single_recall) <= 0.01
    assert sharded_recall >= MIN_RECALL[kind]
    status = json.loads(urllib.request.urlopen(f"{url}/v1/status", timeout=10).read())
    assert status["failures"] == []


class Traffic:
    """Queries the fan-out in a loop on a thread; records every answer's version and id generations."""

    def __init__(self, url: str, queries: np.ndarray) -> None:
        self.url, self.queries = url, queries
        self.answers: list[tuple[str, set[int]]] = []  # (version, generations of the ids of each row...)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            batch = self.queries[i % len(self.queries):][:4]
            i += 4
            try:
                answer = search(self.url, batch, k=K)
                gens = [{int(x) // OFFSET for x in row} for row in answer["ids"]]
                self.answers.append((answer["version"], set().union(*gens) if all(len(g) == 1 for g in gens) else {-1}))
            except (urllib.error.URLError, OSError, ValueError) as e:
                self.failures.append(f"{type(e).__name__}: {e}")
            time.sleep(0.02)

    def seen(self, version: str) -> bool:
        return any(v == version for v, _ in self.answers[-5:])

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def mixed(self, generation: dict[str, int]) -> list[tuple[str, set[int]]]:
        """Answers whose ids span generations, or whose generation is not their version's."""
        return [(v, g) for v, g in self.answers if g != {generation.get(v, -2)}]


@pytest.mark.parametrize("kind", list(TYPES))
def test_a_hot_swap_and_a_rollback_of_a_four_shard_index_fail_no_query_and_never_merge_two_versions(
    cluster: Cluster, built: Built, kind: str,
) -> None:
    name = f"{kind.lower()}-sharded"
    v1 = index_status(cluster, built.ns, name)["currentVersion"]
    with Traffic(fanout_url(cluster, built.ns, name), built.queries) as traffic:
        cluster.wait_for("answers before the swap", lambda: traffic.seen(v1), 60, interval=0.2)
        patch_spec(cluster, built.ns, name, {"source": source(2)})  # new data: a new sharded version
        v2 = wait_index_ready(cluster, built.ns, name, version_not=v1, timeout=300)["currentVersion"]
        built.generation[v2] = 2
        cluster.wait_for(f"the fan-out answering {v2}", lambda: traffic.seen(v2), 120, interval=0.2)
        time.sleep(3)  # a few hundred answers from the new version before rolling back
        swapped = len(traffic.answers)
        patch_spec(cluster, built.ns, name, {"rollout": {"pinnedVersion": v1}})  # rollback by pin
        wait_status(cluster, built.ns, name, f"pinned back to {v1}", lambda s: s.get("currentVersion") == v1, 120)
        cluster.wait_for(f"the fan-out answering {v1} again", lambda: traffic.seen(v1), 120, interval=0.2)
        time.sleep(2)
    versions = [v for v, _ in traffic.answers]
    print(f"{kind}: {len(versions)} answers, {versions.count(v1)} from {v1}, {versions.count(v2)} from {v2}")
    assert traffic.failures == [], f"{len(traffic.failures)} failed queries, e.g. {traffic.failures[:3]}"
    assert traffic.mixed(built.generation) == []
    assert set(versions[:swapped]) == {v1, v2} and set(versions[swapped:]) <= {v1, v2}
    assert versions[-1] == v1


def test_a_four_shard_version_with_a_missing_shard_file_is_refused_by_serving_and_never_half_served(
    cluster: Cluster, built: Built,
) -> None:
    name = "hnsw-sharded"
    stable = wait_index_ready(cluster, built.ns, name, timeout=300)["currentVersion"]  # v1 (pinned by the test above)
    # Build generation 3 while pinned: it is validated and stored, but held back.
    patch_spec(cluster, built.ns, name, {"source": source(3), "rollout": {"pinnedVersion": stable}})
    st = wait_status(cluster, built.ns, name, "a build held by the pin",
                     lambda s: (s.get("lastBuild") or {}).get("version") not in (None, stable, *built.generation)
                     and s["lastBuild"]["result"] == "Succeeded", 300)
    held = st["lastBuild"]["version"]
    built.generation[held] = 3
    cluster.s3().delete_object(Bucket=INDEX_BUCKET, Key=f"faiss-indexes/{built.ns}/{name}/6h/versions/{held}/shard-002.faiss")
    url = fanout_url(cluster, built.ns, name)
    refusals: list[dict] = []

    def rolled_back() -> dict | None:
        body = json.loads(urllib.request.urlopen(f"{url}/v1/status", timeout=10).read())
        refusals.extend(f for f in body.get("failures") or [] if f["version"] == held)
        st = index_status(cluster, built.ns, name)
        return st if st.get("rolledBackVersion") == held and not st.get("candidateVersion") else None

    with Traffic(url, built.queries) as traffic:
        patch_spec(cluster, built.ns, name, {"rollout": {"pinnedVersion": None}})  # unpin: the held build is next
        st = cluster.wait_for(f"{held} refused and rolled back", rolled_back, 240, interval=0.5)
        time.sleep(5)
    print(f"rollback reason: {st.get('rollbackReason')!r}; fan-out refusals: {refusals[:1]}")
    assert st["currentVersion"] == stable
    assert refusals and refusals[0]["message"].startswith("shard 2:")
    assert traffic.failures == [], f"{len(traffic.failures)} failed queries, e.g. {traffic.failures[:3]}"
    assert traffic.answers and {v for v, _ in traffic.answers} == {stable}
    assert traffic.mixed(built.generation) == []


def test_a_slice_pod_killed_mid_build_is_retried_alone_and_the_version_publishes_complete(
    cluster: Cluster, namespace: str,
) -> None:
    apply_doc(cluster, namespace, doc(cluster, "killed", 4, "HNSW", serving={"enabled": False}))

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
