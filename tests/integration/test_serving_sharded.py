"""Sharded serving against a real S3 API: four shard servers and a fan-out, over real HTTP.

Versions are built by the sharded builder (all stages in one process), the pointer is
written the way the operator writes it, and every answer names its version, so a merge of
two versions would show up as ids of one version in an answer reporting the other.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from s3_harness import Buckets, build_request, clustered, http, put_npy, run_builder, wait_for

from index_serving.config import ServingConfig
from index_serving.fanout import FanOut, serve_fanout
from index_serving.server import serve
from index_serving.shards import ShardRuntime
from indexops_api.layout import pointer_key
from indexops_api.pointer import ServingPointer
from indexops_store.s3 import ArtifactStore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_faiss_thread")]

INDEX, SHARDS, N, DIM, K = "sharded", 4, 2000, 16, 10
HNSW = {"indexType": "HNSW", "parameters": {"m": 16, "efConstruction": 100, "efSearch": 128}}
OFFSET = {"v1": 0, "v2": 1_000_000, "v3": 2_000_000}
VERSION = {"v1": "20260101T000000Z-000000a1", "v2": "20260101T000100Z-000000a2", "v3": "20260101T000200Z-000000a3",
           "one": "20260101T000300Z-000000a4"}


@dataclass
class Stack:
    fanout_url: str
    shard_urls: list[str]
    runtimes: list[ShardRuntime]
    data: np.ndarray


def _publish(s3: Any, endpoint: str, buckets: Buckets, tmp_path: Path, name: str, data: np.ndarray,
             shards: int = SHARDS) -> None:
    ids = np.arange(len(data), dtype=np.int64) + OFFSET.get(name, 0)
    put_npy(s3, buckets.source, f"{name}/vectors.npy", data)
    put_npy(s3, buckets.source, f"{name}/ids.npy", ids)
    request = build_request(buckets=buckets, endpoint=endpoint, index=INDEX, version=VERSION[name],
                            source_key=f"{name}/vectors.npy", ids_key=f"{name}/ids.npy", dimension=DIM,
                            shards=shards, validation={"queries": 50, "k": K}, **HNSW)
    result = run_builder(request, tmp_path)
    assert result.exit_code == 0, result.termination


def _point(s3: Any, buckets: Buckets, stable: str, candidate: str | None = None, percent: int = 0) -> None:
    store = ArtifactStore(s3, buckets.artifacts)
    key = pointer_key("faiss-indexes", "team-a", INDEX, "6h")
    current, etag = store.read_pointer(key)
    store.write_pointer(key, ServingPointer(
        generation=(current.generation + 1) if current else 1, stable_version=stable, candidate_version=candidate,
        candidate_percent=percent, updated_at=datetime.now(timezone.utc).isoformat()), etag=etag)


@contextmanager
def _in_thread(make_coro: Any) -> Iterator[dict[str, Any]]:
    loop, stop, bound, failure = asyncio.new_event_loop(), asyncio.Event(), {}, []

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(make_coro(stop, lambda h, p: bound.update(host=h, port=p)))
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    wait_for(lambda: bound or failure, what="listener")
    if failure:
        raise failure[0]
    try:
        yield bound
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


@pytest.fixture
def stack(s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path) -> Iterator[Stack]:
    data = clustered(N, DIM, seed=5)
    _publish(s3, s3_endpoint, buckets, tmp_path, "v1", data)
    _point(s3, buckets, VERSION["v1"])
    key = pointer_key("faiss-indexes", "team-a", INDEX, "6h")
    base = ServingConfig(pointer_bucket=buckets.artifacts, pointer_key=key, endpoint=s3_endpoint, host="127.0.0.1",
                         port=0, poll_seconds=0.2, search_threads=2, drain_seconds=0.0)
    with _shards(s3, base, buckets, tmp_path) as (urls, runtimes):
        fan = FanOut(ArtifactStore(s3, buckets.artifacts), key, base.versions_prefix, urls, poll_seconds=0.2)
        with _in_thread(lambda stop, cb: serve_fanout(fan, "127.0.0.1", 0, stop, drain_seconds=0.0,
                                                      on_listening=cb)) as bound:
            url = f"http://{bound['host']}:{bound['port']}"
            wait_for(lambda: http("GET", f"{url}/readyz")[0] == 200, timeout=60, what="fan-out ready")
            yield Stack(url, urls, runtimes, data)


@contextmanager
def _shards(s3: Any, base: ServingConfig, buckets: Buckets, tmp_path: Path) -> Iterator[tuple[list[str], list[Any]]]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        urls, runtimes = [], []
        for shard in range(SHARDS):
            config = base.with_overrides(cache_dir=tmp_path / f"cache-{shard}")
            runtime = ShardRuntime(ArtifactStore(s3, buckets.artifacts), config.pointer_key, config.cache_dir,
                                   versions_prefix=config.versions_prefix, poll_seconds=0.2, shard=shard, shards=SHARDS)
            bound = stack.enter_context(_in_thread(
                lambda stop, cb, c=config, r=runtime: serve(c, r, stop, on_listening=cb)))
            urls.append(f"http://{bound['host']}:{bound['port']}")
            runtimes.append(runtime)
        yield urls, runtimes


def _exact(data: np.ndarray, queries: np.ndarray, offset: int) -> np.ndarray:
    d = ((queries[:, None, :].astype(np.float64) - data[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :K] + offset


def _recall(found: list[list[int]], exact: np.ndarray) -> float:
    return sum(len(set(f) & set(e.tolist())) for f, e in zip(found, exact)) / (K * len(exact))


def _search(url: str, queries: np.ndarray, key: str | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"vectors": queries.tolist(), "k": K}
    if key:
        body["key"] = key
    return http("POST", f"{url}/v1/search", body)


def test_the_fan_out_serves_the_whole_sharded_index_with_the_recall_of_an_unsharded_build(
    stack: Stack, s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
) -> None:
    import faiss

    queries = clustered(100, DIM, seed=99)
    status, answer = _search(stack.fanout_url, queries)
    assert status == 200 and answer["version"] == VERSION["v1"]
    exact = _exact(stack.data, queries, 0)
    sharded = _recall(answer["ids"], exact)
    _publish(s3, s3_endpoint, buckets, tmp_path, "one", stack.data, shards=1)
    local = tmp_path / "one.faiss"
    prefix = f"faiss-indexes/team-a/{INDEX}/6h/versions/{VERSION['one']}"
    s3.download_file(buckets.artifacts, f"{prefix}/index.faiss", str(local))
    index = faiss.read_index(str(local))
    faiss.ParameterSpace().set_index_parameter(index, "efSearch", 128)
    _, positions = index.search(queries, K)
    order = np.load(_fetch(s3, buckets, f"{prefix}/ids.npy", tmp_path / "one-ids.npy"))
    unsharded = _recall([order[row].tolist() for row in positions], exact)
    assert abs(sharded - unsharded) <= 0.01 and sharded >= 0.95
    for url in stack.shard_urls:  # a shard pod never answers a plain query with a partial result
        assert _search(url, queries[:1])[0] == 400


def _fetch(s3: Any, buckets: Buckets, key: str, path: Path) -> Path:
    s3.download_file(buckets.artifacts, key, str(path))
    return path


def _loop(url: str, queries: np.ndarray, stop: threading.Event, seen: list[tuple[int, str, bool]]) -> None:
    i = 0
    while not stop.is_set():
        status, answer = _search(url, queries[i % len(queries)][None, :], key=f"user-{i}")
        if status != 200:
            seen.append((status, str(answer), False))
        else:
            version = answer["version"]
            offset = next(OFFSET[n] for n, v in VERSION.items() if v == version)
            consistent = all(offset <= x < offset + N for row in answer["ids"] for x in row)
            seen.append((status, version, consistent))
        i += 1


def test_a_hot_swap_and_a_rollback_fail_no_query_and_never_merge_two_versions(
    stack: Stack, s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
) -> None:
    _publish(s3, s3_endpoint, buckets, tmp_path, "v2", clustered(N, DIM, seed=6))
    queries = clustered(50, DIM, seed=98)
    seen: list[tuple[int, str, bool]] = []
    stop = threading.Event()
    clients = [threading.Thread(target=_loop, args=(stack.fanout_url, queries, stop, seen)) for _ in range(3)]
    for c in clients:
        c.start()
    try:
        time.sleep(0.5)
        _point(s3, buckets, VERSION["v2"])
        wait_for(lambda: any(v == VERSION["v2"] for _, v, _ in seen[-5:]), timeout=60, what="swap to v2")
        time.sleep(0.5)
        _point(s3, buckets, VERSION["v1"])  # rollback
        wait_for(lambda: len(seen) > 20 and all(v == VERSION["v1"] for _, v, _ in seen[-10:]), timeout=60,
                 what="rollback to v1")
    finally:
        stop.set()
        for c in clients:
            c.join(30)
    failed = [s for s in seen if s[0] != 200]
    mixed = [s for s in seen if s[0] == 200 and not s[2]]
    versions = {v for s, v, _ in seen if s == 200}
    assert (failed, mixed) == ([], [])
    assert versions == {VERSION["v1"], VERSION["v2"]}


def test_a_sharded_canary_routes_each_key_to_one_whole_version(
    stack: Stack, s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
) -> None:
    _publish(s3, s3_endpoint, buckets, tmp_path, "v2", clustered(N, DIM, seed=6))
    _point(s3, buckets, VERSION["v1"], VERSION["v2"], 50)
    wait_for(lambda: http("GET", f"{stack.fanout_url}/v1/status")[1]["candidatePercent"] == 50, timeout=60,
             what="canary applied")
    queries = clustered(40, DIM, seed=97)
    first = {}
    for i, q in enumerate(queries):
        for _ in range(2):
            status, answer = _search(stack.fanout_url, q[None, :], key=f"key-{i}")
            assert status == 200
            offset = OFFSET["v2"] if answer["version"] == VERSION["v2"] else 0
            assert all(offset <= x < offset + N for x in answer["ids"][0])
            assert first.setdefault(i, answer["version"]) == answer["version"]  # one key, one version
    assert set(first.values()) == {VERSION["v1"], VERSION["v2"]}


def test_a_version_with_a_missing_shard_file_is_refused_and_never_half_served(
    stack: Stack, s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
) -> None:
    _publish(s3, s3_endpoint, buckets, tmp_path, "v3", clustered(N, DIM, seed=7))
    s3.delete_object(Bucket=buckets.artifacts,
                     Key=f"faiss-indexes/team-a/{INDEX}/6h/versions/{VERSION['v3']}/shard-002.faiss")
    _point(s3, buckets, VERSION["v3"])

    def refused() -> dict[str, Any] | None:
        body = http("GET", f"{stack.fanout_url}/v1/status")[1]
        return next((f for f in body["failures"] if f["version"] == VERSION["v3"]), None)

    failure = wait_for(refused, timeout=60, what="fan-out reports the refusal")
    assert failure["reason"] == "download" and failure["message"].startswith("shard 2:")
    wait_for(lambda: VERSION["v3"] in stack.runtimes[0].loaded(), timeout=60, what="an intact shard loads v3")
    queries = clustered(20, DIM, seed=96)
    for q in queries:
        status, answer = _search(stack.fanout_url, q[None, :])
        assert (status, answer["version"]) == (200, VERSION["v1"])  # the old version keeps serving, whole


def test_merged_ivf_shards_are_served_by_an_ordinary_server_and_unmerged_ones_are_refused_by_it(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
) -> None:
    from s3_harness import running_server

    data = clustered(N, DIM, seed=8)
    ids = np.arange(N, dtype=np.int64)
    put_npy(s3, buckets.source, "m/vectors.npy", data)
    put_npy(s3, buckets.source, "m/ids.npy", ids)
    versions = {"20260101T000400Z-000000b1": "Auto", "20260101T000500Z-000000b2": "Never"}
    for version, merge in versions.items():
        request = build_request(buckets=buckets, endpoint=s3_endpoint, index=INDEX, version=version,
                                source_key="m/vectors.npy", ids_key="m/ids.npy", dimension=DIM, shards=2,
                                shardMerge=merge, indexType="IVF", parameters={"nlist": 16, "nprobe": 16},
                                validation={"queries": 50, "k": K})
        assert run_builder(request, tmp_path).exit_code == 0
    merged, unmerged = versions
    _point(s3, buckets, merged)
    config = ServingConfig(pointer_bucket=buckets.artifacts, pointer_key=pointer_key("faiss-indexes", "team-a", INDEX, "6h"),
                           endpoint=s3_endpoint, host="127.0.0.1", port=0, poll_seconds=0.2, cache_dir=tmp_path / "c",
                           search_threads=2, drain_seconds=0.0)
    with running_server(config) as server:
        wait_for(lambda: server.runtime.ready, timeout=60, what="merged version loaded")
        queries = clustered(30, DIM, seed=91)
        status, answer = _search(server.url, queries)
        assert (status, answer["version"]) == (200, merged)
        assert _recall(answer["ids"], _exact(data, queries, 0)) == 1.0  # nprobe = nlist: exact, over both slices
        _point(s3, buckets, unmerged)
        failure = wait_for(lambda: next((f for f in http("GET", f"{server.url}/v1/status")[1]["failures"]
                                         if f["version"] == unmerged), None), timeout=60, what="refusal")
        assert failure["reason"] == "layout"
        assert _search(server.url, queries[:1])[1]["version"] == merged  # the merged version keeps serving
