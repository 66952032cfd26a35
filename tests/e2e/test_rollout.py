"""Progressive rollout on the real local stack: stepped canary, online analysis, rollback.

Every test runs continuous query traffic (``rollout_support.Traffic``) against the serving
pods while the operator moves a new version through ``spec.rollout.steps``, and checks the
result from three sides: what the clients got (which version answered each key, and that
nothing failed), what every replica says it serves (``/v1/status``, ``/metrics``), and what
the operator says (status, conditions, Events).

Sizes are small on purpose (3000 x 32 vectors, 20 s pauses, minSamples 50): a build takes
about 10 s and the file runs in a few minutes on the shared 2-core dev machine. The
latency gate is set loose (``maxLatencyRatio``) except where it is tested, because p99 of
a few hundred sub-millisecond searches on a shared machine is noise, not a property of
the candidate.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from datetime import datetime, timezone

import numpy as np
import pytest
import yaml

from hack.localstack import INDEX_BUCKET, Cluster, sample_embeddings
from rollout_support import (K, Traffic, annotate, condition, events, keys_in_buckets, metric_value, patch_spec,  # noqa: E402
                             read_pointer, ready, replica_states, replica_status, route_bucket, status, wait_candidate,
                             wait_event, wait_replicas, wait_status)

pytestmark = pytest.mark.e2e

N, DIM = 3000, 32
KEY, IDS_KEY = "rollout/{horizon}/vectors.npy", "rollout/{horizon}/ids.npy"
STEPS = [{"percent": 10, "pause": "20s"}, {"percent": 50, "pause": "20s"}]
HOLD = [{"percent": 10, "pause": "10m"}, {"percent": 50, "pause": "10m"}]  # steps that never pass on their own
LAX = {"minSamples": 50, "maxErrorRate": 0.01, "maxLatencyRatio": 50, "minOverlap": 0.7, "minShadowSamples": 20, "shadowPercent": 10}
# A version that passes a lax build gate (minRecall 0) but answers badly: a tiny HNSW graph (recall@10
# 0.2-0.5 here). efSearch stays >= k: below it the builder's structural check searchReturnsK rejects the build.
BAD_PARAMETERS = {"m": 4, "efConstruction": 8, "efSearch": 12}
# Fixed keys: always candidate (bucket < 10), candidate from the 50% step on, always stable until promotion.
FIXED = {"early": keys_in_buckets(0, 10, 2), "middle": keys_in_buckets(10, 50, 2), "late": keys_in_buckets(50, 100, 2)}
FIXED_KEYS = tuple(k for keys in FIXED.values() for k in keys)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    return c


@pytest.fixture(scope="module")
def data(cluster: Cluster) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The embeddings, their ids, and the queries the traffic sends (embeddings plus a little noise)."""
    vectors, ids = sample_embeddings(N, DIM, seed=31)
    cluster.upload_embeddings(KEY.format(horizon="6h"), vectors, ids, IDS_KEY.format(horizon="6h"))
    queries = (vectors + np.random.default_rng(32).normal(0, 0.1, vectors.shape)).astype(np.float32)
    return vectors, ids, queries


@pytest.fixture
def namespace(cluster: Cluster):
    with cluster.temporary_namespace("ro") as ns:
        yield ns


def create_index(cluster: Cluster, ns: str, name: str, *, replicas: int, steps: list[dict], analysis: dict) -> str:
    """Apply a small HNSW index with a stepped rollout; returns its first version once Ready."""
    doc = yaml.safe_load(cluster.sample_manifest(**{"spec.dimension": DIM, "spec.source.s3.key": KEY, "spec.source.s3.idsKey": IDS_KEY}))
    doc["metadata"]["name"] = name
    doc["spec"].pop("schedule", None)
    doc["spec"]["parameters"] = {"m": 16, "efConstruction": 100, "efSearch": 64}
    doc["spec"]["serving"] = {"replicas": replicas}
    doc["spec"]["rollout"] = {"steps": steps, "analysis": analysis}
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc))
    st = wait_status(cluster, ns, name, "Ready with a first version", lambda s: ready(s) and s.get("currentVersion"), 300)
    return st["currentVersion"]


# -- what the clients saw -------------------------------------------------------------------


def check_routing(traffic: Traffic) -> dict[tuple, list]:
    """Every attributable answer came from the version its key routes to; answers grouped by shape."""
    groups, unattributed = traffic.by_state()
    wrong = [(a.key, route_bucket(a.key), a.version, s) for s, answers in groups.items() for a in answers if a.version != s.expected(a.key)]
    assert not wrong, f"{len(wrong)} answers not from the version their key routes to, e.g. {wrong[:3]}"
    by_shape: dict[tuple, list] = {}
    for s, answers in groups.items():
        by_shape.setdefault(s.shape, []).extend(answers)
    total = sum(len(v) for v in by_shape.values())
    assert unattributed <= 0.2 * (total + unattributed), f"{unattributed} of {total + unattributed} answers straddled a swap"
    return by_shape


def assert_share(answers: list, candidate: str, percent: int) -> tuple[int, float]:
    """The candidate's share of random-key answers is the step percent, within 5 standard deviations.

    Random keys are uuid4 strings; sha256 spreads them uniformly over the 100 buckets, so
    the number of candidate answers among n of them is Binomial(n, p) with p = percent/100.
    |share - p| <= 5 * sqrt(p(1-p)/n) fails a correct implementation with probability
    below 1e-6 per check, and with n >= 300 the band is at most ±14.5 points at p = 0.5 and
    ±8.7 at p = 0.1 (with the usual ~1500 answers per step: ±6.5 and ±3.9): ignoring
    the key, or serving another step's percent, fails it.
    """
    random_keys = [a for a in answers if not a.fixed]
    n = len(random_keys)
    assert n >= 300, f"only {n} random-key answers in the {percent}% step"
    share = sum(a.version == candidate for a in random_keys) / n
    p = percent / 100
    band = 5 * math.sqrt(p * (1 - p) / n)
    assert abs(share - p) <= band, f"{percent}% step: candidate answered {share:.3%} of {n} random keys (allowed ±{band:.3%})"
    return n, share


def test_a_stepped_canary_moves_traffic_10_50_100_percent_by_key_without_a_failed_query(cluster, data, namespace):
    _, _, queries = data
    name = "canary"
    stable = create_index(cluster, namespace, name, replicas=3, steps=STEPS, analysis=LAX)
    with Traffic(cluster, namespace, f"{name}-serving", queries, threads=4, fixed_keys=FIXED_KEYS) as traffic:
        patch_spec(cluster, namespace, name, {"parameters": {"efSearch": 128}})
        candidate = wait_candidate(cluster, namespace, name, (stable,))
        promoted = wait_event(cluster, namespace, name, "Promoted", f"candidate {candidate} passed all 2 steps", timeout=240)
        st = wait_status(cluster, namespace, name, "Ready on the new version",
                         lambda s: ready(s) and s.get("currentVersion") == candidate and not s.get("candidateVersion"), 120)
        wait_replicas(cluster, namespace, name, (candidate, None, 0), count=3)
        traffic.wait_answers("answers from the promoted version on every replica",
                             lambda answers: {a.url for a in answers[-300:] if a.version == candidate} >= set(traffic.urls), 60)

    assert traffic.failures == [], f"{len(traffic.failures)} failed queries, e.g. {traffic.failures[:3]}"
    by_shape = check_routing(traffic)
    shares = {p: assert_share(by_shape.get((stable, candidate, p), []), candidate, p) for p in (10, 50)}
    assert all(a.version == candidate for a in by_shape[(candidate, None, 0)])
    # A fixed key lands on one version per step, and the one its bucket says.
    for shape, answers in by_shape.items():
        for key in FIXED_KEYS:
            seen = {a.version for a in answers if a.key == key}
            assert len(seen) <= 1, f"key {key} answered by {seen} in step {shape}"
    expect = {10: ("early",), 50: ("early", "middle")}
    for p, groups in expect.items():
        answers = by_shape[(stable, candidate, p)]
        assert len({a.url for a in answers if a.fixed}) == 3, f"the fixed keys did not reach every replica in the {p}% step"
        for group, keys in FIXED.items():
            versions = {a.version for a in answers if a.key in keys}
            assert versions == ({candidate} if group in groups else {stable}), f"{group} keys in the {p}% step: {versions}"
    # Each step lasted at least its pause (give or take the replicas' 2 s pointer poll).
    first_seen = {}
    for t, _, s in traffic.states_seen():
        first_seen.setdefault(s.shape, t)
    assert first_seen[(stable, candidate, 50)] - first_seen[(stable, candidate, 10)] >= 20 - 3
    assert first_seen[(candidate, None, 0)] - first_seen[(stable, candidate, 50)] >= 20 - 3

    assert st["rolloutPercent"] == 100 and st["lastGoodVersion"] == candidate and st["analysis"]["verdict"] == "passed all 2 steps"
    assert condition(st, "Degraded")["status"] == "False"
    advanced = events(cluster, namespace, name, "StepAdvanced")
    assert [e for e in advanced if f"candidate {candidate} passed step 1/2 (10%)" in e["message"] and "now 50%" in e["message"]]
    requests = int(re.search(r"\((\d+) requests", promoted["message"]).group(1))
    assert requests >= LAX["minSamples"], promoted["message"]
    print(f"\nshares {shares}; answers {len(traffic.answers)}; states {len(by_shape)}")


def test_a_candidate_with_poor_overlap_is_rolled_back_by_online_analysis_and_never_promoted(cluster, data, namespace):
    vectors, ids, queries = data
    name = "rollback"
    gates = {**LAX, "minOverlap": 0.9, "minShadowSamples": 100}
    stable = create_index(cluster, namespace, name, replicas=2, steps=HOLD, analysis=gates)
    with Traffic(cluster, namespace, f"{name}-serving", queries, threads=4, fixed_keys=FIXED_KEYS) as traffic:
        patch_spec(cluster, namespace, name, {"parameters": BAD_PARAMETERS, "validation": {"minRecall": 0.0}})
        bad = wait_candidate(cluster, namespace, name, (stable,))
        rolled = wait_event(cluster, namespace, name, "RolledBack", f"candidate {bad} rolled back", timeout=180)
        wait_replicas(cluster, namespace, name, (stable, None, 0), count=2)
        rolled_back_at = time.monotonic()
        # Not re-promoted: neither by later passes nor when the gates are re-applied after a gate change.
        patch_spec(cluster, namespace, name, {"validation": {"minRecall": 0.01}})
        traffic.wait_answers("30 s of traffic after the rollback", lambda a: a and a[-1].started > rolled_back_at + 30, 90)

    # The Event and status carry the measured overlap; it is the candidate's real quality.
    m = re.search(r"overlap@k (0\.\d+) < minOverlap 0\.9 on (\d+) shadowed queries", rolled["message"])
    assert m and "step 1/2 (10%)" in rolled["message"] and f"{stable} serves 100%" in rolled["message"], rolled["message"]
    overlap, shadowed = float(m.group(1)), int(m.group(2))
    assert overlap < 0.9 and shadowed >= 100
    st = status(cluster, namespace, name)
    assert st["currentVersion"] == stable and not st.get("candidateVersion") and st["rolledBackVersion"] == bad
    assert condition(st, "Degraded")["reason"] == "RolledBack" and bad in condition(st, "Degraded")["message"]
    assert condition(st, "Ready")["status"] == "True"
    assert f"overlap@k {overlap:.4f}" in st["rollbackReason"] and st["lastBuild"]["result"] == "RolledBack"
    assert not [e for e in events(cluster, namespace, name, "Promoted") if bad in e["message"]]
    pointer = read_pointer(cluster, namespace, name)
    assert pointer["stableVersion"] == stable and not pointer.get("candidateVersion")
    assert all(s.shape == (stable, None, 0) for s in replica_states(cluster, namespace, name).values())

    assert traffic.failures == [], f"{len(traffic.failures)} failed queries, e.g. {traffic.failures[:3]}"
    by_shape = check_routing(traffic)
    assert (stable, bad, 50) not in by_shape, "the bad candidate reached the 50% step"
    assert all(a.version == stable for a in traffic.answers if a.started > rolled_back_at)
    # The test's own measurement: recall@10 against exact search of what each version answered.
    # Stable is (near) exact, so the candidate's overlap@k with stable estimates the same quantity
    # as its recall; both are means of per-query values in 0..1, compared within 5 standard errors.
    exact = exact_neighbours(vectors, ids, queries)
    per_query = {v: np.array([len(set(a.ids) & exact[a.row]) / K for a in traffic.answers if a.version == v]) for v in (stable, bad)}
    recall = {v: float(x.mean()) for v, x in per_query.items()}
    n = len(per_query[bad])
    assert n >= 20 and recall[stable] >= 0.95 and recall[bad] < 0.9, (recall, n)
    sd = max(float(per_query[bad].std()), 0.1)
    band = 5 * sd * math.sqrt(1 / shadowed + 1 / n)
    assert abs(recall[bad] - overlap) <= band, f"operator overlap {overlap} on {shadowed} vs recall {recall[bad]:.3f} of {n} answers (±{band:.3f})"
    print(f"\noverlap {overlap} on {shadowed} shadowed; recall of the answers {recall} ({n} from {bad}); ±{band:.3f}")


def exact_neighbours(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray) -> list[set[int]]:
    d = (queries**2).sum(1)[:, None] - 2 * queries @ vectors.T + (vectors**2).sum(1)[None, :]
    return [set(row) for row in ids[np.argsort(d, axis=1)[:, :K]].tolist()]


def test_a_corrupt_candidate_artifact_is_refused_by_serving_rolled_back_and_the_old_version_keeps_answering(cluster, data, namespace):
    _, _, queries = data
    name = "corrupt"
    stable = create_index(cluster, namespace, name, replicas=2, steps=HOLD, analysis=LAX)
    # Build the next version while pinned: it is validated and stored, but held back.
    patch_spec(cluster, namespace, name, {"parameters": {"efSearch": 96}, "rollout": {"pinnedVersion": stable}})
    st = wait_status(cluster, namespace, name, "a second build held by the pin",
                     lambda s: (s.get("lastBuild") or {}).get("version") not in (None, stable) and s["lastBuild"]["result"] == "Succeeded")
    held = st["lastBuild"]["version"]
    assert st["currentVersion"] == stable and not st.get("candidateVersion")
    # Flip one byte in the middle of the held version's index file (same size: only sha256 can tell).
    s3 = cluster.s3()
    prefix = f"faiss-indexes/{namespace}/{name}/6h/versions/{held}"
    manifest = json.loads(s3.get_object(Bucket=INDEX_BUCKET, Key=f"{prefix}/manifest.json")["Body"].read())
    index_key = f"{prefix}/{manifest['indexFile']}"
    blob = bytearray(s3.get_object(Bucket=INDEX_BUCKET, Key=index_key)["Body"].read())
    blob[len(blob) // 2] ^= 0xFF
    s3.put_object(Bucket=INDEX_BUCKET, Key=index_key, Body=io.BytesIO(bytes(blob)))

    with Traffic(cluster, namespace, f"{name}-serving", queries, threads=3, fixed_keys=FIXED_KEYS) as traffic:
        patch_spec(cluster, namespace, name, {"rollout": {"pinnedVersion": None}})  # unpin: the held build becomes the candidate
        wait_status(cluster, namespace, name, "the held build as candidate (or already rolled back)",
                    lambda s: held in (s.get("candidateVersion"), s.get("rolledBackVersion")), 120)
        urls = traffic.urls

        # Every replica refuses it (sha256 mismatch), so the operator rolls the candidate back by itself.
        st = wait_status(cluster, namespace, name, "the refused candidate rolled back",
                         lambda s: s.get("rolledBackVersion") == held and not s.get("candidateVersion"), 180)
        assert st["currentVersion"] == stable and "checksum" in (st.get("rollbackReason") or "")
        rolled = events(cluster, namespace, name, "RolledBack")
        assert rolled and "refused by 2/2 serving replicas: checksum" in rolled[-1]["message"]
        for url in urls:
            assert metric_value(url, "faiss_serving_load_failures_total", version=held, reason="checksum") >= 1
        wait_status(cluster, namespace, name, "Ready on the old version", lambda s: ready(s), 120)
        seen_at = time.monotonic()
        traffic.wait_answers("15 s of traffic after the rollback", lambda a: a and a[-1].started > seen_at + 15, 60)
        for url in urls:
            body = replica_status(url)
            assert [v["version"] for v in body["versions"]] == [stable] and not body["pointer"].get("candidateVersion")

    assert traffic.failures == [], f"{len(traffic.failures)} failed queries, e.g. {traffic.failures[:3]}"
    assert {a.version for a in traffic.answers} == {stable}
    early = [a for a in traffic.answers if a.key in FIXED["early"]]
    assert early and all(a.role == "stable" for a in early), "candidate-routed keys were not answered by stable"


def test_a_serving_pod_deleted_mid_step_comes_back_with_stable_and_candidate_and_the_rollout_continues(cluster, data, namespace):
    _, _, queries = data
    name = "restart"
    stable = create_index(cluster, namespace, name, replicas=2, steps=[{"percent": 10, "pause": "30s"}, {"percent": 50, "pause": "20s"}], analysis=LAX)
    with Traffic(cluster, namespace, f"{name}-serving", queries, threads=4, fixed_keys=FIXED_KEYS, retry=True) as traffic:
        patch_spec(cluster, namespace, name, {"parameters": {"efSearch": 128}})
        candidate = wait_candidate(cluster, namespace, name, (stable,))
        before = wait_replicas(cluster, namespace, name, (stable, candidate, 10), count=2)
        victim = sorted(before)[0]
        cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=false")
        deleted_at = datetime.now(timezone.utc).replace(microsecond=0)

        def replacement():
            states = replica_states(cluster, namespace, name)
            new = {p: s for p, s in states.items() if p not in before}
            return new if len(states) == 2 and new and all(s.stable == stable and s.candidate == candidate for s in new.values()) else None

        back = cluster.wait_for("a replacement pod serving stable + candidate", replacement, 120)
        assert all(s.percent in (10, 50) for s in back.values()), back
        wait_event(cluster, namespace, name, "Promoted", f"candidate {candidate} passed all 2 steps", timeout=240)
        st = wait_status(cluster, namespace, name, "Ready on the new version",
                         lambda s: ready(s) and s.get("currentVersion") == candidate and not s.get("candidateVersion"), 120)
        final = wait_replicas(cluster, namespace, name, (candidate, None, 0), count=2)

    assert set(final) & set(back), "the replacement pod is not among the final replicas"
    advanced = events(cluster, namespace, name, "StepAdvanced")
    assert [e for e in advanced if candidate in e["message"]]
    promoted = events(cluster, namespace, name, "Promoted")[-1]
    assert datetime.fromisoformat((promoted.get("lastTimestamp") or promoted["metadata"]["creationTimestamp"]).replace("Z", "+00:00")) >= deleted_at
    assert st["rolloutPercent"] == 100 and condition(st, "Degraded")["status"] == "False"
    assert traffic.failures == [], f"{len(traffic.failures)} queries failed even after a retry, e.g. {traffic.failures[:3]}"
    check_routing(traffic)
    print(f"\nretried on another pod: {len(traffic.retries)} ({sorted({f.error[:60] for f in traffic.retries})[:3]})")


def test_manual_abort_rolls_back_the_candidate_and_manual_promote_makes_the_next_one_current_at_once(cluster, data, namespace):
    _, _, queries = data
    name = "manual"
    stable = create_index(cluster, namespace, name, replicas=2, steps=HOLD, analysis=LAX)
    with Traffic(cluster, namespace, f"{name}-serving", queries, threads=2, fixed_keys=FIXED_KEYS) as traffic:
        patch_spec(cluster, namespace, name, {"parameters": {"efSearch": 96}})
        aborted = wait_candidate(cluster, namespace, name, (stable,))
        wait_replicas(cluster, namespace, name, (stable, aborted, 10), count=2)
        value = annotate(cluster, namespace, name, "abort-requested-at")
        event = wait_event(cluster, namespace, name, "RolledBack", f"candidate {aborted} rolled back: aborted manually", timeout=60)
        assert value in event["message"]
        st = wait_status(cluster, namespace, name, "Degraded RolledBack", lambda s: condition(s, "Degraded").get("reason") == "RolledBack", 60)
        assert st["currentVersion"] == stable and not st.get("candidateVersion") and st["rolledBackVersion"] == aborted
        assert "aborted manually" in st["rollbackReason"] and st["lastHandledAbort"] == value
        wait_replicas(cluster, namespace, name, (stable, None, 0), count=2)

        annotate(cluster, namespace, name, "rebuild-requested-at")
        candidate = wait_candidate(cluster, namespace, name, (stable, aborted))
        wait_replicas(cluster, namespace, name, (stable, candidate, 10), count=2)
        started = time.monotonic()
        value = annotate(cluster, namespace, name, "promote-requested-at")
        event = wait_event(cluster, namespace, name, "Promoted", f"candidate {candidate} promoted to 100% manually", timeout=60)
        promoted_in = time.monotonic() - started
        st = wait_status(cluster, namespace, name, "Ready on the promoted version",
                         lambda s: ready(s) and s.get("currentVersion") == candidate and not s.get("candidateVersion"), 90)
        wait_replicas(cluster, namespace, name, (candidate, None, 0), count=2)

    assert value in event["message"] and promoted_in < 30, f"promotion took {promoted_in:.0f}s despite a 10m pause"
    assert st["lastGoodVersion"] == candidate and st["lastHandledPromote"] == value and st["rolloutPercent"] == 100
    assert condition(st, "Degraded")["status"] == "False"
    assert not [e for e in events(cluster, namespace, name, "Promoted") if aborted in e["message"]]
    assert traffic.failures == [], f"{len(traffic.failures)} failed queries, e.g. {traffic.failures[:3]}"
    by_shape = check_routing(traffic)
    assert (stable, aborted, 50) not in by_shape and (stable, candidate, 50) not in by_shape
