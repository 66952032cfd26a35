"""Dynamic batching: single-vector requests that arrive together share one FAISS call.

As inference servers do (Triton's dynamic batcher, TF-Serving's batching layer): each
FAISS call has a fixed cost (the thread-pool hop, the Python around the call, FAISS's
own per-call set-up and OpenMP fork), so N concurrent single-vector queries searched as
one (N, d) matrix cost far less than N calls. Requests queue on the event loop; a batch
of up to ``max_batch`` is sent to the search pool as soon as fewer than ``max_inflight``
batches are running. With ``window_ms`` = 0 (the default) nothing ever waits for
company: a lone request is searched at once, and requests that arrive while the pool is
busy form the next batch by themselves, so batches grow exactly as fast as load does.
A window > 0 holds the first request of a batch up to that long for more to arrive
(more throughput at a fixed latency cost; measured in bench/results/serving.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

Item = tuple[np.ndarray, int, str | None]
SearchMany = Callable[[Sequence[Item]], list[Any]]


class MicroBatcher:
    def __init__(self, search_many: SearchMany, executor: Executor, *, max_batch: int = 32, window_ms: float = 0.0,
                 max_inflight: int = 2):
        self._search_many = search_many
        self._executor = executor
        self.max_batch = max_batch
        self.window = window_ms / 1000.0
        self.max_inflight = max_inflight
        self._queue: deque[tuple[Item, asyncio.Future[Any]]] = deque()
        self._inflight = 0
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0  # observability for tests and the benchmark
        self.batched_requests = 0

    @property
    def idle(self) -> bool:
        """No batch running and none waiting: a request now would be a batch of one."""
        return self._inflight == 0 and not self._queue

    async def search(self, vectors: np.ndarray, k: int, key: str | None) -> Any:
        """The ``SearchResult`` for this request (or the exception its search raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(((vectors, k, key), future))
        self._kick(loop)
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and self._inflight < self.max_inflight:
            if self.window > 0 and len(self._queue) < self.max_batch:
                if self._timer is None:
                    self._timer = loop.call_later(self.window, self._window_closed, loop)
                return
            self._dispatch(loop)

    def _window_closed(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._queue and self._inflight < self.max_inflight:
            self._dispatch(loop)
        self._kick(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        taken = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        taken = [(item, fut) for item, fut in taken if not fut.cancelled()]  # client gone: not searched
        if not taken:
            return
        self._inflight += 1
        self.batches += 1
        self.batched_requests += len(taken)
        task = loop.run_in_executor(self._executor, self._search_many, [item for item, _ in taken])
        task.add_done_callback(lambda done: self._finished(loop, done, taken))

    def _finished(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[Any],
                  taken: list[tuple[Item, asyncio.Future[Any]]]) -> None:
        self._inflight -= 1
        error = done.exception()
        results = done.result() if error is None else [error] * len(taken)
        for (_, future), result in zip(taken, results):
            if not future.done():
                future.set_result(result)
        self._kick(loop)
