"""Search a FaissIndex's serving replicas, retrying an idempotent search on another replica.

A killed serving pod keeps its endpoint until the EndpointSlice controller removes it (a
few seconds), so a client that picks one pod address per request fails every request
sent there in the meantime (17 of 1,092 in the chaos run). A search has no side effect,
so it is safe to send again: on a connection error, a timeout or a 502/503/504 the next
replica is tried, within ``attempts`` and a total ``deadline``. A 4xx is the caller's
fault and is returned as is. ``faissctl query`` and the chaos suite's query loop use it;
the sharded fan-out can use the same policy per shard.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

SEARCH_PATH = "/v1/search"
RETRYABLE_STATUS = frozenset({502, 503, 504})

Post = Callable[[str, bytes, float], tuple[int, bytes]]  # (url, body, timeout) -> (status, body); raises OSError


@dataclass
class Answer:
    status: int
    body: bytes
    url: str  # the replica that answered
    tried: list[str] = field(default_factory=list)  # "<url>: <why>" of every replica that did not


class NoReplicaAnswered(ConnectionError):
    """Every attempt failed; ``str()`` lists each replica and why."""


class ReplicaSearch:
    def __init__(self, urls: Sequence[str], post: Post, *, timeout: float = 5.0, attempts: int = 3, deadline: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        if not urls:
            raise ValueError("no serving replica to search")
        self.urls = [u.rstrip("/") for u in urls]
        self.post, self.timeout, self.attempts, self.deadline, self.clock = post, timeout, attempts, deadline, clock
        self._next = itertools.cycle(range(len(self.urls)))
        self._lock = threading.Lock()

    def search(self, body: bytes) -> Answer:
        """POST ``body`` to one replica; on a retryable failure to the next one (each at most once)."""
        with self._lock:
            start = next(self._next)
        order = [self.urls[(start + i) % len(self.urls)] for i in range(len(self.urls))]
        ends = self.clock() + self.deadline
        tried: list[str] = []
        for url in order[: self.attempts]:
            left = ends - self.clock()
            if left <= 0:
                tried.append(f"{url}: not tried, {self.deadline:.0f}s deadline passed")
                break
            try:
                status, answer = self.post(url + SEARCH_PATH, body, min(self.timeout, left))
            except OSError as exc:  # refused, reset, timed out: the replica is going away
                tried.append(f"{url}: {exc}")
                continue
            if status in RETRYABLE_STATUS:
                tried.append(f"{url}: HTTP {status}")
                continue
            return Answer(status, answer, url, tried)
        raise NoReplicaAnswered("no serving replica answered: " + "; ".join(tried))
