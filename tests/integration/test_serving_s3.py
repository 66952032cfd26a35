"""The serving runtime and HTTP server against a real S3 API and real builder output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from s3_harness import Buckets, build_request, clustered, free_port, http, put_npy, run_builder, running_server, wait_for

from index_serving.config import ServingConfig
from index_serving.routing import goes_to_candidate
from indexops_api.layout import pointer_key
from indexops_api.pointer import ServingPointer
from indexops_store.s3 import ArtifactStore

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INDEX = "analogs"
DIM = 16


def publish(s3: Any, endpoint: str, buckets: Buckets, tmp_path: Path, version: str, data: np.ndarray,
            ids: np.ndarray | None = None, metric: str = "L2") -> None:
    put_npy(s3, buckets.source, f"{version}/vectors.npy", data)
    extra: dict[str, Any] = {}
    if ids is not None:
        put_npy(s3, buckets.source, f"{version}/ids.npy", ids)
        extra["ids_key"] = f"{version}/ids.npy"
    request = build_request(buckets=buckets, endpoint=endpoint, index=INDEX, version=version,
                            source_key=f"{version}/vectors.npy", dimension=data.shape[1], metric=metric, **extra)
    result = run_builder(request, tmp_path)
    assert result.exit_code == 0, result.termination


def point_to(s3: Any, buckets: Buckets, stable: str, candidate: str | None = None, percent: int = 0,
             shadow: int = 0) -> None:
    store = ArtifactStore(s3, buckets.artifacts)
    key = pointer_key("faiss-indexes", "team-a", INDEX, "6h")
    current, etag = store.read_pointer(key)
    store.write_pointer(
        key,
        ServingPointer(generation=(current.generation + 1) if current else 1, stable_version=stable,
                       candidate_version=candidate, candidate_percent=percent, shadow_percent=shadow,
                       updated_at=datetime.now(timezone.utc).isoformat()),
        etag=etag,
    )


def config(s3_endpoint: str, buckets: Buckets, tmp_path: Path) -> ServingConfig:
    return ServingConfig(
        pointer_bucket=buckets.artifacts, pointer_key=pointer_key("faiss-indexes", "team-a", INDEX, "6h"),
        endpoint=s3_endpoint, host="127.0.0.1", port=0, poll_seconds=0.2, cache_dir=tmp_path / "cache",
        search_threads=2,
    )


def exact_ids(data: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, metric: str) -> list[list[int]]:
    x, q = data.astype(np.float64), queries.astype(np.float64)
    if metric == "Cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        order = np.argsort(-(q @ x.T), axis=1)
    else:
        order = np.argsort(((q[:, None, :] - x[None, :, :]) ** 2).sum(axis=2), axis=1)
    return ids[order[:, :k]].tolist()


def metric_value(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


@pytest.mark.parametrize("metric", ["L2", "Cosine"])
def test_server_loads_the_pointed_version_and_answers_the_exact_neighbours(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, metric: str
) -> None:
    data = clustered(2000, DIM, seed=3)
    ids = np.arange(2000, dtype=np.int64)[::-1] * 10 + 5  # not row numbers: the mapping must be applied
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", data, ids, metric=metric)
    point_to(s3, buckets, "v1")
    queries = clustered(5, DIM, seed=99)

    with running_server(config(s3_endpoint, buckets, tmp_path)) as server:
        wait_for(lambda: http("GET", f"{server.url}/readyz")[0] == 200, what="readiness")
        status, body = http("POST", f"{server.url}/v1/search", {"vectors": queries.tolist(), "k": 7})

    assert status == 200, body
    assert body["version"] == "v1"
    assert body["ids"] == exact_ids(data, ids, queries, 7, metric)
    assert np.array(body["distances"]).shape == (5, 7)


def test_readyz_is_503_before_any_index_and_200_once_the_stable_version_is_loaded(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", clustered(500, DIM, seed=1))

    with running_server(config(s3_endpoint, buckets, tmp_path)) as server:
        assert http("GET", f"{server.url}/healthz")[0] == 200
        assert http("GET", f"{server.url}/readyz")[0] == 503
        status, body = http("POST", f"{server.url}/v1/search", {"vectors": [[0.0] * DIM]})
        assert (status, "error" in body) == (503, True)

        point_to(s3, buckets, "v1")

        wait_for(lambda: http("GET", f"{server.url}/readyz")[0] == 200, what="readiness after the pointer appears")
        assert http("GET", f"{server.url}/readyz")[1]["version"] == "v1"


def test_a_pointer_change_swaps_versions_under_a_query_loop_with_zero_failed_queries(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", clustered(1500, DIM, seed=1))
    publish(s3, s3_endpoint, buckets, tmp_path, "v2", clustered(2500, DIM, seed=2))
    point_to(s3, buckets, "v1")
    query = {"vectors": clustered(3, DIM, seed=5).tolist(), "k": 5}
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()

    with running_server(config(s3_endpoint, buckets, tmp_path)) as server:
        wait_for(lambda: http("GET", f"{server.url}/readyz")[0] == 200, what="readiness")

        def loop() -> None:
            while not stop.is_set():
                status, body = http("POST", f"{server.url}/v1/search", query)
                answers.append((status, body.get("version") if isinstance(body, dict) else None))

        clients = [threading.Thread(target=loop) for _ in range(2)]
        for c in clients:
            c.start()
        wait_for(lambda: len(answers) >= 20, what="queries on v1")
        point_to(s3, buckets, "v2")
        wait_for(lambda: sum(v == "v2" for _, v in answers[-20:]) == 20, what="20 queries in a row on v2")
        stop.set()
        for c in clients:
            c.join(10)
        metrics = http("GET", f"{server.url}/metrics")[1]
        status = http("GET", f"{server.url}/v1/status")[1]

    assert [a for a in answers if a[0] != 200] == []
    assert {v for _, v in answers} == {"v1", "v2"}
    assert metric_value(metrics, "faiss_serving_swaps_total") == 2  # nothing -> v1 -> v2
    assert [v["version"] for v in status["versions"]] == ["v2"]
    assert status["appliedGeneration"] == 2
    assert not (tmp_path / "cache" / "v1").exists(), "the unreferenced version is dropped"


def test_a_version_with_one_flipped_byte_is_refused_and_the_old_version_keeps_serving(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", clustered(800, DIM, seed=1))
    publish(s3, s3_endpoint, buckets, tmp_path, "v2", clustered(800, DIM, seed=2))
    key = f"faiss-indexes/team-a/{INDEX}/6h/versions/v2/index.faiss"
    body = bytearray(s3.get_object(Bucket=buckets.artifacts, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(Bucket=buckets.artifacts, Key=key, Body=bytes(body))
    point_to(s3, buckets, "v1")

    with running_server(config(s3_endpoint, buckets, tmp_path)) as server:
        wait_for(lambda: http("GET", f"{server.url}/readyz")[0] == 200, what="readiness on v1")
        point_to(s3, buckets, "v2")
        status = wait_for(lambda: (s := http("GET", f"{server.url}/v1/status")[1])["failures"] and s,
                          what="the v2 load failure")
        answer = http("POST", f"{server.url}/v1/search", {"vectors": [[0.5] * DIM], "k": 3})
        metrics = http("GET", f"{server.url}/metrics")[1]

    assert status["failures"][0]["version"] == "v2"
    assert status["failures"][0]["reason"] == "checksum"
    assert "sha256" in status["failures"][0]["message"]
    assert [v["version"] for v in status["versions"]] == ["v1"]
    assert status["pointerGeneration"] == 2 and status["appliedGeneration"] == 1
    assert answer[0] == 200 and answer[1]["version"] == "v1"
    assert metric_value(metrics, 'faiss_serving_load_failures_total{reason="checksum",version="v2"}') >= 1
    assert not (tmp_path / "cache" / "v2" / "index.faiss").exists()


def test_during_a_canary_each_key_is_answered_by_the_version_its_hash_routes_to(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", clustered(500, DIM, seed=1))
    publish(s3, s3_endpoint, buckets, tmp_path, "v2", clustered(500, DIM, seed=2))
    point_to(s3, buckets, "v1", candidate="v2", percent=30)
    keys = [f"user-{i}" for i in range(60)]

    with running_server(config(s3_endpoint, buckets, tmp_path)) as server:
        wait_for(lambda: len(http("GET", f"{server.url}/v1/status")[1]["versions"]) == 2, what="both versions loaded")
        answered = {key: http("POST", f"{server.url}/v1/search", {"vectors": [[0.1] * DIM], "key": key})[1]["version"]
                    for key in keys}

    assert answered == {key: "v2" if goes_to_candidate(key, 30) else "v1" for key in keys}
    assert set(answered.values()) == {"v1", "v2"}


def test_status_reports_each_step_s_analysis_window_with_shadow_overlap_and_restarts_it_on_a_step_change(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    data = clustered(600, DIM, seed=1)
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", data)
    publish(s3, s3_endpoint, buckets, tmp_path, "v2", data)  # same vectors: exact search agrees fully
    point_to(s3, buckets, "v1", candidate="v2", percent=30, shadow=100)
    keys = [f"user-{i}" for i in range(40)]
    to_candidate = sum(goes_to_candidate(key, 30) for key in keys)
    queries = clustered(2, DIM, seed=7).tolist()

    def rollout() -> dict[str, Any]:
        return http("GET", f"{server.url}/v1/status")[1]["rollout"]

    with running_server(config(s3_endpoint, buckets, tmp_path)) as server:
        wait_for(lambda: len(http("GET", f"{server.url}/v1/status")[1]["versions"]) == 2, what="both versions loaded")
        for key in keys:
            assert http("POST", f"{server.url}/v1/search", {"vectors": queries, "k": 5, "key": key})[0] == 200
        first = wait_for(lambda: (r := rollout())["versions"]["v2"]["shadow"]["queries"] == 2 * (40 - to_candidate) and r,
                         what="every stable-routed query shadowed")
        status = http("GET", f"{server.url}/v1/status")[1]

        point_to(s3, buckets, "v1", candidate="v2", percent=60, shadow=100)
        second = wait_for(lambda: (r := rollout())["generation"] == 2 and r, what="the step change applied")

    assert status["appliedGeneration"] == first["generation"] == 1
    assert (first["stableVersion"], first["candidateVersion"], first["candidatePercent"], first["shadowPercent"]) == (
        "v1", "v2", 30, 100)
    stable, candidate = first["versions"]["v1"], first["versions"]["v2"]
    assert (stable["role"], stable["requests"], stable["errors"]) == ("stable", 40 - to_candidate, 0)
    assert (candidate["role"], candidate["requests"], candidate["fallbacks"]) == ("candidate", to_candidate, 0)
    assert candidate["latencyMs"]["count"] == to_candidate and len(candidate["latencyMs"]["counts"]) == 13
    assert candidate["latencyMs"]["counts"][-1] == to_candidate  # every search well under 5 s
    assert candidate["shadow"] == {"queries": 2 * (40 - to_candidate), "overlapSum": 2.0 * (40 - to_candidate), "k": 5,
                                   "errors": 0}
    assert status["shadowQueue"]["dropped"] == 0
    assert second["candidatePercent"] == 60
    assert [v["requests"] for v in second["versions"].values()] == [0, 0]
    assert second["since"] >= first["since"]


def test_the_server_process_binds_the_pod_ip_and_on_sigterm_drains_then_exits_0(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", clustered(300, DIM, seed=1))
    point_to(s3, buckets, "v1")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "POD_IP": "127.0.0.1", "FAISS_SERVING_PORT": str(port),
           "FAISS_POINTER_BUCKET": buckets.artifacts, "FAISS_POINTER_KEY": pointer_key("faiss-indexes", "team-a", INDEX, "6h"),
           "FAISS_S3_ENDPOINT_URL": s3_endpoint, "FAISS_POLL_SECONDS": "0.2", "FAISS_CACHE_DIR": str(tmp_path / "cache"),
           "FAISS_DRAIN_SECONDS": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "index_serving"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def ready() -> bool:
            try:
                return http("GET", f"http://127.0.0.1:{port}/readyz", timeout=1)[0] == 200
            except OSError:
                return proc.poll() is not None  # stop waiting if it died
        wait_for(ready, timeout=60, what="the server process to become ready")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        # the drain period: not ready any more, but searches are still answered
        wait_for(lambda: http("GET", f"http://127.0.0.1:{port}/readyz", timeout=1)[0] == 503, timeout=5,
                 what="readiness to fail after SIGTERM")
        code, body = http("POST", f"http://127.0.0.1:{port}/v1/search", {"vectors": [[0.1] * DIM], "k": 3}, timeout=5)
        assert code == 200 and body["version"] == "v1"
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    messages = [json.loads(line)["message"] for line in stderr.splitlines() if line.startswith("{")]
    assert "version loaded" in messages and "stopped" in messages
