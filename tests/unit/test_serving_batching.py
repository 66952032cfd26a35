"""Dynamic batching: concurrent single-vector requests share FAISS calls and get their own answers."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from test_serving_runtime import DIM, Clock, MemoryStore

from index_serving.batching import MicroBatcher
from index_serving.errors import BadRequest
from index_serving.runtime import IndexRuntime


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[IndexRuntime, np.ndarray]:
    store = MemoryStore()
    data = store.publish("v1", seed=1)
    store.point(1, "v1")
    runtime = IndexRuntime(store, "p/ns/idx/6h/pointer.json", tmp_path, clock=Clock())  # type: ignore[arg-type]
    runtime.refresh()
    return runtime, data


def test_search_many_answers_each_request_as_search_would_in_one_call_per_k(loaded: tuple[IndexRuntime, np.ndarray]) -> None:
    runtime, data = loaded
    requests = [(data[i:i + 1], 3, f"user-{i}") for i in range(5)] + [(data[7:9], 2, None)]
    many = runtime.search_many(requests)
    for (vectors, k, key), got in zip(requests, many):
        alone = runtime.search(vectors, k, key)
        assert (got.version, got.role, got.ids, got.distances) == (alone.version, alone.role, alone.ids, alone.distances)
    window = runtime.status()["rollout"]["versions"]["v1"]
    assert window["requests"] == 12  # 6 batched + 6 alone: every request counted, not every call


def test_a_bad_request_in_a_batch_fails_alone(loaded: tuple[IndexRuntime, np.ndarray]) -> None:
    runtime, data = loaded
    out = runtime.search_many([(data[:1], 3, None), (np.zeros((1, DIM + 1)), 3, None), (data[1:2], 3, None)])
    assert isinstance(out[1], BadRequest)
    assert out[0].ids[0][0] == 1000 and out[2].ids[0][0] == 1001


def test_requests_arriving_while_the_pool_is_busy_form_one_batch(loaded: tuple[IndexRuntime, np.ndarray]) -> None:
    runtime, data = loaded
    gate = threading.Event()
    calls: list[int] = []

    def slow_search_many(items):  # the first call blocks until every other request has queued
        calls.append(len(items))
        if len(calls) == 1:
            gate.wait(5)
        return runtime.search_many(items)

    async def main() -> list:
        with ThreadPoolExecutor(2) as pool:
            batcher = MicroBatcher(slow_search_many, pool, max_batch=32, max_inflight=1)
            first = asyncio.create_task(batcher.search(data[:1], 1, None))
            await asyncio.sleep(0.05)
            rest = [asyncio.create_task(batcher.search(data[i:i + 1], 1, None)) for i in range(1, 9)]
            await asyncio.sleep(0.05)
            gate.set()
            return await asyncio.gather(first, *rest)

    results = asyncio.run(main())
    assert calls == [1, 8]
    assert [r.ids[0][0] for r in results] == [1000 + i for i in range(9)]


def test_a_window_holds_the_first_request_for_company_up_to_max_batch(loaded: tuple[IndexRuntime, np.ndarray]) -> None:
    runtime, data = loaded
    calls: list[int] = []

    def counting(items):
        calls.append(len(items))
        return runtime.search_many(items)

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            batcher = MicroBatcher(counting, pool, max_batch=4, window_ms=50, max_inflight=1)
            await asyncio.gather(*(batcher.search(data[i:i + 1], 1, None) for i in range(6)))

    asyncio.run(main())
    assert calls == [4, 2]
