"""A small query load against a serving endpoint: QPS and latency per served version.

Each request carries a fresh random ``key``, so during a canary the server's consistent
hash splits the load between stable and candidate as it would split real users, and the
answers say which version served them. ``run`` takes the transport as a function, so it
is the same loop for a pod URL, the API server's service proxy, or a unit test's fake.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

Post = Callable[[bytes], tuple[int, bytes]]  # request body -> (HTTP status, response body)


def http_post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    """POST JSON; HTTP errors are returned as (status, body), connection errors raise ``OSError``."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise ConnectionError(f"{url}: {exc.reason}") from exc


def query_bodies(dimension: int, count: int, k: int, batch: int, seed: int = 0) -> list[bytes]:
    """``count`` search bodies of ``batch`` random vectors each, each with its own routing key."""
    import numpy as np  # noqa: PLC0415 - only bench needs it; keeps `faissctl --help` quick

    rng = np.random.default_rng(seed)
    return [
        json.dumps({"vectors": rng.normal(size=(batch, dimension)).astype(np.float32).round(5).tolist(),
                    "k": k, "key": uuid.UUID(int=int(rng.integers(0, 2**63)), version=4).hex}).encode()
        for _ in range(count)
    ]


@dataclass(frozen=True)
class Sample:
    seconds: float
    version: str | None  # None when the request failed
    role: str | None
    error: str | None = None


def _one(post: Post, body: bytes, clock: Callable[[], float]) -> Sample:
    start = clock()
    try:
        status, raw = post(body)
    except OSError as exc:
        return Sample(clock() - start, None, None, str(exc))
    elapsed = clock() - start
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        answer = {}
    if status != 200:
        # the server's {"error": ...}, or a Kubernetes Status from the API server's proxy
        detail = answer.get("error") or answer.get("message") or raw[:200].decode(errors="replace")
        return Sample(elapsed, None, None, f"HTTP {status}: {detail}")
    return Sample(elapsed, answer.get("version"), answer.get("role"))


def run(post: Post, bodies: list[bytes], concurrency: int, clock: Callable[[], float] = time.perf_counter) -> tuple[list[Sample], float]:
    """Send every body with ``concurrency`` workers; returns the samples and the wall time."""
    start = clock()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        samples = list(pool.map(lambda b: _one(post, b, clock), bodies))
    return samples, clock() - start


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(samples: list[Sample], wall_seconds: float) -> list[dict]:
    """One row per served version (stable first), then one for failed requests if any."""
    rows = []
    by_version: dict[str, list[Sample]] = {}
    for s in samples:
        if s.version is not None:
            by_version.setdefault(s.version, []).append(s)
    order = sorted(by_version, key=lambda v: (by_version[v][0].role != "stable", v))
    for version in order:
        group = by_version[version]
        latencies = [s.seconds * 1000 for s in group]
        rows.append({"version": version, "role": group[0].role, "requests": len(group),
                     "qps": len(group) / wall_seconds if wall_seconds > 0 else None,
                     "p50Ms": percentile(latencies, 50), "p99Ms": percentile(latencies, 99), "errors": 0})
    failed = [s for s in samples if s.version is None]
    if failed:
        rows.append({"version": None, "role": None, "requests": len(failed), "qps": None,
                     "p50Ms": percentile([s.seconds * 1000 for s in failed], 50), "p99Ms": None,
                     "errors": len(failed), "firstError": failed[0].error})
    return rows
