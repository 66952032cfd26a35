"""Closed-loop load: N clients, each sends a request, waits for the answer, sends the next.

Two generators of the same shape, so their numbers divide cleanly into ratios:

* ``http_load``: aiohttp clients on keep-alive connections to ``POST /v1/search``. Bodies
  are JSON-encoded before the clock starts: encoding is the client's cost, not the server's.
* ``raw_load``: N Python threads calling ``index.search`` on the same index file in this
  process (FAISS releases the GIL) -- search alone, without HTTP, JSON, validation, the
  thread-pool hop and the runtime's routing and bookkeeping.

Every request is one sample (start time, latency, HTTP status, version that answered);
QPS is completed requests over the wall time from the first start to the last answer.
Client and server share this machine's cores, so HTTP numbers include the client's CPU.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

JSON = {"Content-Type": "application/json"}
BINARY = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
CDF_POINTS = [*range(0, 100), 99.5, 99.9, 100]


@dataclass
class Samples:
    start: list[float] = field(default_factory=list)  # seconds since the run's origin
    ms: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)  # HTTP status; 0 = no answer (connection error, timeout)
    version: list[str | None] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    wall: float = 0.0  # seconds the generator ran (summed over merged runs); 0 = unknown

    def add(self, start: float, ms: float, status: int, version: str | None = None) -> None:
        self.start.append(start)
        self.ms.append(ms)
        self.status.append(status)
        self.version.append(version)

    def merge(self, other: "Samples") -> "Samples":
        for i in range(len(other.start)):
            self.add(other.start[i], other.ms[i], other.status[i], other.version[i])
        self.errors.update(other.errors)
        self.wall += other.wall
        return self

    def select(self, keep: Callable[[float], bool]) -> "Samples":
        out = Samples()
        for i, s in enumerate(self.start):
            if keep(s):
                out.add(s, self.ms[i], self.status[i], self.version[i])
        return out


def encode_bodies(queries: np.ndarray, per_request: int, k: int) -> list[bytes]:
    """``POST /v1/search`` bodies of ``per_request`` vectors each, cycling through ``queries``."""
    rows = len(queries) // per_request * per_request or len(queries)
    return [json.dumps({"vectors": queries[i:i + per_request].tolist(), "k": k}).encode()
            for i in range(0, rows, per_request)]


def encode_binary_bodies(queries: np.ndarray, per_request: int) -> list[bytes]:
    """The same requests as ``encode_bodies`` as raw little-endian float32 rows (k and d in the URL)."""
    rows = len(queries) // per_request * per_request or len(queries)
    return [queries[i:i + per_request].astype("<f4").tobytes() for i in range(0, rows, per_request)]


def binary_url(url: str, k: int, dim: int) -> str:
    return f"{url}?k={k}&d={dim}"


async def http_load(url: str, bodies: Sequence[bytes], concurrency: int, duration: float | None = None,
                    stop: asyncio.Event | None = None, origin: float | None = None,
                    headers: dict[str, str] | None = None) -> Samples:
    """``concurrency`` clients posting ``bodies`` in turn until ``duration`` passes or ``stop`` is set.

    ``headers`` = ``BINARY`` sends raw float32 bodies and reads the binary answer (the
    answering version comes from its ``X-Faiss-Version`` header instead of the JSON).
    """
    headers = headers or JSON
    binary = headers.get("Accept") == BINARY["Accept"]
    import aiohttp

    origin = time.perf_counter() if origin is None else origin
    end = time.perf_counter() + duration if duration else float("inf")
    out, turn = Samples(), itertools.count()
    began = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def client() -> None:
            while time.perf_counter() < end and not (stop is not None and stop.is_set()):
                body = bodies[next(turn) % len(bodies)]
                t = time.perf_counter()
                version = None
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        payload = await resp.read()
                        status = resp.status
                        answered_by = resp.headers.get("X-Faiss-Version")
                    if status == 200:
                        version = answered_by if binary else json.loads(payload).get("version")
                    else:
                        out.errors[f"HTTP {status}: {payload[:120].decode(errors='replace')}"] += 1
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    status = 0
                    out.errors[type(exc).__name__] += 1
                out.add(t - origin, (time.perf_counter() - t) * 1000, status, version)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    out.wall = time.perf_counter() - began
    return out


def http_answers(url: str, queries: np.ndarray, k: int) -> list[list[int]]:
    """Top-k ids from the server for each query, one request each (for the same-answers check)."""
    import urllib.request

    ids = []
    for q in queries:
        body = json.dumps({"vectors": [q.tolist()], "k": k}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=JSON), timeout=30) as resp:
            ids.append(json.loads(resp.read())["ids"][0])
    return ids


def raw_load(search: Callable[[np.ndarray], object], batches: Sequence[np.ndarray], concurrency: int,
             duration: float) -> Samples:
    """``concurrency`` threads calling ``search(batch)`` in turn for ``duration`` seconds."""
    turn = itertools.count()
    per_thread = [Samples() for _ in range(concurrency)]
    ready = threading.Barrier(concurrency + 1)
    origin = [0.0]

    def worker(out: Samples) -> None:
        ready.wait()
        end = origin[0] + duration
        while time.perf_counter() < end:
            batch = batches[next(turn) % len(batches)]
            t = time.perf_counter()
            search(batch)
            out.add(t - origin[0], (time.perf_counter() - t) * 1000, 200)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in per_thread]
    for t in threads:
        t.start()
    origin[0] = time.perf_counter()
    ready.wait()
    for t in threads:
        t.join()
    merged = Samples()
    for s in per_thread:
        merged.merge(s)
    merged.wall = time.perf_counter() - origin[0]
    return merged


def summarize(samples: Samples, per_request: int = 1, wall: float | None = None) -> dict:
    """Throughput and latency of one run (or merged runs); failed = requests not answered 200."""
    if not samples.ms:
        return {"requests": 0, "failed": 0}
    ms = np.array(samples.ms)
    wall = wall or samples.wall or float((np.array(samples.start) + ms / 1000).max() - min(samples.start))
    ok = np.array(samples.status) == 200
    p50, p99, p999 = np.percentile(ms, [50, 99, 99.9])
    return {
        "requests": len(ms), "failed": int((~ok).sum()), "wall_seconds": round(wall, 3),
        "qps": len(ms) / wall if wall > 0 else None, "vectors_per_second": len(ms) * per_request / wall if wall > 0 else None,
        "p50_ms": float(p50), "p99_ms": float(p99), "p999_ms": float(p999),
        "mean_ms": float(ms.mean()), "max_ms": float(ms.max()),
        "errors": dict(samples.errors),
    }


def cdf(ms: Sequence[float]) -> list[float]:
    """Latency at each of ``CDF_POINTS`` percentiles (enough to redraw a CDF from the JSON)."""
    return [float(x) for x in np.percentile(np.array(ms), CDF_POINTS)] if len(ms) else []
