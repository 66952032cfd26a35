"""The stateless fan-out in front of shard pods: one version per query, all shards or none.

It follows the same serving pointer as every serving pod but loads nothing. A query is
routed to stable or candidate by the same consistent hash as unsharded serving
(``routing.goes_to_candidate``), sent to every shard **naming that version**, and the
answers are merged the way FAISS's ``IndexShards`` merges them
(``indexops_api.shards.merge_topk``). The answer reports its version.

Version consistency, during a hot swap or a canary:

* A version becomes usable here only when every shard reports it loaded (``/v1/status``
  of each shard Service, polled every ``poll_seconds``). Until then the fan-out keeps
  routing to the version it served before; shard pods keep that previous stable loaded
  (``index_serving.shards``) precisely so this works.
* Each shard request names the version; a shard replica that has not loaded it answers
  409 and is retried (the Service picks another replica). A shard answer is therefore
  always of the version asked for: a merge never mixes versions.
* If a shard cannot answer for the version after the retries, a candidate query falls
  back to stable (counted as a fallback); a stable query fails with 503. A partial merge
  is never returned.
* A version any shard refuses (missing or corrupt shard file, wrong shard count) is
  reported under ``failures`` in ``/v1/status``, exactly as an unsharded replica reports
  a refusal, so the operator's refusal and rollback logic treats the sharded version as
  one version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web
from pydantic import ValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from index_serving.analysis import AnalysisWindow
from index_serving.errors import BadRequest
from index_serving.metrics import NO_VERSION, ServingMetrics
from index_serving.request import MAX_K, MAX_VECTORS, parse_search_request
from index_serving.routing import goes_to_candidate, request_key
from index_serving.shards import SHARD_SEARCH_PATH
from indexops_api.constants import MANIFEST_FILE
from indexops_api.manifest import Manifest
from indexops_api.pointer import ServingPointer
from indexops_api.replica import (
    MAX_FAILURES, FanoutStatus, LoadedVersionReport, LoadFailure, RolloutWindow, ShardEndpoint, ShardStatus,
)
from indexops_api.shards import merge_topk
from indexops_api.spec import Metric
from indexops_store.s3 import ArtifactStore, StorageError

log = logging.getLogger(__name__)

ENV_MODE = "FAISS_SERVING_MODE"  # "fanout" runs this module instead of a loading server
ENV_SHARD_URLS = "FAISS_SHARD_URLS"  # comma-separated base URLs, shard 0 first
RETRIES = 4
RETRY_PAUSE_SECONDS = 0.05


class ShardsUnavailable(RuntimeError):
    """Some shard could not answer for the routed version."""


@dataclass(frozen=True)
class Target:
    """A version every shard has loaded, with what the merge needs from its manifest."""

    version: str
    larger_is_better: bool
    dimension: int


@dataclass(frozen=True)
class FanSnapshot:
    stable: Target | None = None
    candidate: Target | None = None
    candidate_percent: int = 0
    pointer: ServingPointer | None = None
    window: AnalysisWindow | None = field(default=None, compare=False)


def usable(version: str, statuses: list[ShardStatus | None]) -> bool:
    """Pure: every shard answered its status and lists ``version`` as loaded."""
    return bool(statuses) and all(s is not None and version in s.loaded for s in statuses)


def refusals(statuses: list[ShardStatus | None]) -> dict[str, tuple[str, str]]:
    """Pure: version -> (reason, message) for every version some shard refuses."""
    found: dict[str, tuple[str, str]] = {}
    for shard, status in enumerate(statuses):
        for failure in status.failures if status is not None else []:
            found.setdefault(failure.version, (failure.reason, f"shard {shard}: {failure.message}"))
    return found


def merge_answers(answers: list[dict[str, Any]], k: int, larger_is_better: bool) -> tuple[list[list[int]], list[list[float]]]:
    """Merge per-shard JSON answers (rows may be shorter than k) into the top-k of all shards."""
    rows = len(answers[0]["ids"])
    dists, ids = [], []
    for answer in answers:
        d = np.full((rows, k), np.nan)
        i = np.full((rows, k), -1, dtype=np.int64)
        for r, (row_ids, row_d) in enumerate(zip(answer["ids"], answer["distances"])):
            i[r, :len(row_ids)] = row_ids[:k]
            d[r, :len(row_d)] = row_d[:k]
        dists.append(d)
        ids.append(i)
    merged_d, merged_i = merge_topk(dists, ids, k, larger_is_better=larger_is_better)
    out_ids, out_d = [], []
    for row_i, row_d in zip(merged_i, merged_d):
        keep = row_i >= 0
        out_ids.append(row_i[keep].tolist())
        out_d.append(row_d[keep].tolist())
    return out_ids, out_d


class FanOut:
    def __init__(self, store: ArtifactStore, pointer_key: str, versions_prefix: str, shard_urls: list[str], *,
                 poll_seconds: float = 1.0, timeout_seconds: float = 10.0, metrics: ServingMetrics | None = None,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        if not shard_urls:
            raise ValueError("a fan-out needs at least one shard URL")
        self.store, self.pointer_key = store, pointer_key
        self.versions_prefix = versions_prefix.rstrip("/")
        self.shard_urls = [u.rstrip("/") for u in shard_urls]
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds
        self.metrics = metrics or ServingMetrics()
        self._wall_clock = wall_clock
        self._snapshot = FanSnapshot()
        self._manifests: dict[str, Manifest | str] = {}
        self._statuses: list[ShardStatus | None] = []
        self._status_errors: list[str | None] = []
        self._failures: dict[str, tuple[str, str]] = {}
        self._applied_generation: int | None = None
        self._pointer_error: str | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def ready(self) -> bool:
        return self._snapshot.stable is not None

    @property
    def snapshot(self) -> FanSnapshot:
        return self._snapshot

    # -- following the pointer and the shards ---------------------------------------------

    async def refresh(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            pointer, _ = await loop.run_in_executor(None, self.store.read_pointer, self.pointer_key)
            self._pointer_error = None
        except StorageError as exc:
            self._pointer_error = str(exc)
            self.metrics.pointer_errors.inc()
            return False
        results = await asyncio.gather(*(self._get_status(u) for u in self.shard_urls))
        self._statuses = [s for s, _ in results]
        self._status_errors = [e for _, e in results]
        if pointer is None:
            return False
        self.metrics.pointer_generation.set(pointer.generation)
        wanted = [pointer.stable_version]
        if pointer.candidate_version and pointer.candidate_percent > 0:
            wanted.append(pointer.candidate_version)
        failures = refusals(self._statuses)
        targets: dict[str, Target] = {}
        for version in wanted:
            manifest = await self._manifest(version)
            if isinstance(manifest, str):
                failures.setdefault(version, ("manifest", manifest))
                continue
            problem = _fanout_problem(manifest, len(self.shard_urls))
            if problem is not None:
                failures[version] = ("layout", problem)
            elif usable(version, self._statuses):
                targets[version] = Target(version, manifest.metric is not Metric.L2, manifest.dimension)
        self._failures = {v: f for v, f in failures.items() if v in wanted}
        current = self._snapshot
        stable = targets.get(pointer.stable_version) or current.stable
        candidate = targets.get(pointer.candidate_version) if len(wanted) > 1 else None
        if candidate is not None and stable is not None and candidate.version == stable.version:
            candidate = None
        window = current.window
        if all(v in targets for v in wanted):
            self._applied_generation = pointer.generation
            self.metrics.applied_generation.set(pointer.generation)
            if window is None or window.generation != pointer.generation:
                window = AnalysisWindow.open(pointer, self._wall_clock())
        new = FanSnapshot(stable, candidate, pointer.candidate_percent if candidate else 0, pointer, window)
        changed = (new.stable, new.candidate, new.candidate_percent) != (current.stable, current.candidate,
                                                                        current.candidate_percent)
        self._snapshot = new  # one reference: a query uses exactly one snapshot
        if changed:
            self.metrics.swaps.inc()
            log.info("fan-out switched", extra={"stable": stable.version if stable else None,
                                                "candidate": candidate.version if candidate else None,
                                                "generation": pointer.generation})
        return changed

    async def _get_status(self, url: str) -> tuple[ShardStatus | None, str | None]:
        assert self._session is not None
        try:
            async with self._session.get(f"{url}/v1/status", timeout=aiohttp.ClientTimeout(total=2.0)) as resp:
                if resp.status != 200:
                    return None, f"status {resp.status}"
                return ShardStatus.model_validate(await resp.json()), None
        except ValidationError as exc:
            first = exc.errors()[0]
            return None, f"not a shard status report: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _manifest(self, version: str) -> Manifest | str:
        cached = self._manifests.get(version)
        if isinstance(cached, Manifest):
            return cached
        key = f"{self.versions_prefix}/{version}/{MANIFEST_FILE}"
        try:
            found: Manifest | str = await asyncio.get_running_loop().run_in_executor(None, self.store.read_manifest, key)
        except StorageError as exc:
            found = str(exc)
        if len(self._manifests) > 16:
            self._manifests.clear()
        self._manifests[version] = found
        return found

    # -- searching ----------------------------------------------------------------------

    async def search(self, vectors: np.ndarray, k: int, key: str | None) -> dict[str, Any]:
        snap = self._snapshot  # one read: the whole query uses one snapshot
        if snap.stable is None:
            raise ShardsUnavailable("no version is loaded on every shard yet")
        key = request_key(key)
        target, role, fallback = snap.stable, "stable", False
        if snap.candidate is not None and goes_to_candidate(key, snap.candidate_percent):
            target, role = snap.candidate, "candidate"
        if vectors.shape[1] != target.dimension:
            raise BadRequest(f"vectors have dimension {vectors.shape[1]}, the index has {target.dimension}")
        body = {"vectors": vectors.tolist(), "k": k}
        started = time.perf_counter()
        try:
            answers = await self._all_shards(target.version, body)
        except ShardsUnavailable:
            if role != "candidate":
                self._record(snap, target.version, None, error=True)
                raise
            self.metrics.fallbacks.inc()
            self._record(snap, target.version, None, error=True, fallback=True)
            target, role, fallback = snap.stable, "stable", True
            answers = await self._all_shards(target.version, body)
        ids, distances = merge_answers(answers, k, target.larger_is_better)
        seconds = time.perf_counter() - started
        self._record(snap, target.version, seconds)
        return {"version": target.version, "role": role, "ids": ids, "distances": distances,
                **({"fallback": True} if fallback else {})}

    def _record(self, snap: FanSnapshot, version: str, seconds: float | None, *, error: bool = False,
                fallback: bool = False) -> None:
        if seconds is not None:
            self.metrics.latency.labels(version=version).observe(seconds)
        if snap.window is not None:
            snap.window.record_request(version, seconds=seconds, error=error, fallback=fallback)

    async def _all_shards(self, version: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        payload = {**body, "version": version}
        return list(await asyncio.gather(*(self._one_shard(i, url, version, payload)
                                           for i, url in enumerate(self.shard_urls))))

    async def _one_shard(self, shard: int, url: str, version: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        last = ""
        for attempt in range(RETRIES):
            try:
                async with self._session.post(f"{url}{SHARD_SEARCH_PATH}", json=payload,
                                              timeout=aiohttp.ClientTimeout(total=self.timeout_seconds)) as resp:
                    answer = await resp.json()
                    if resp.status == 200 and answer.get("version") == version:
                        return answer
                    if resp.status == 400:
                        raise BadRequest(str(answer.get("error", "bad request")))
                    last = f"HTTP {resp.status}: {answer.get('error', '')}"
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(RETRY_PAUSE_SECONDS * (attempt + 1))
        raise ShardsUnavailable(f"shard {shard} did not answer for version {version}: {last}")

    # -- lifecycle and status -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:  # a bug must not freeze the served version
                log.exception("fan-out refresh failed unexpectedly")
            try:
                await asyncio.wait_for(stop.wait(), self.poll_seconds)
            except asyncio.TimeoutError:
                pass

    def status(self) -> dict[str, Any]:
        """The ``/v1/status`` document: the replica report the operator parses, plus each shard's state."""
        snap = self._snapshot
        versions = []
        if snap.stable:
            versions.append(LoadedVersionReport(version=snap.stable.version, role="stable"))
        if snap.candidate:
            versions.append(LoadedVersionReport(version=snap.candidate.version, role="candidate"))
        statuses = self._statuses or [None] * len(self.shard_urls)
        errors = self._status_errors or [None] * len(self.shard_urls)
        return FanoutStatus(
            ready=snap.stable is not None,
            pointer=snap.pointer.to_wire() if snap.pointer else None,
            pointer_generation=snap.pointer.generation if snap.pointer else None,
            applied_generation=self._applied_generation, pointer_error=self._pointer_error,
            candidate_percent=snap.candidate_percent, versions=versions,
            failures=[LoadFailure(version=v, reason=r, message=m, attempts=1, retry_in_seconds=self.poll_seconds)
                      for v, (r, m) in list(self._failures.items())[-MAX_FAILURES:]],
            rollout=RolloutWindow.model_validate(snap.window.to_wire()) if snap.window is not None else None,
            shards=[ShardEndpoint(url=url, loaded=s.loaded if s is not None else None, error=e)
                    for url, s, e in zip(self.shard_urls, statuses, errors)],
        ).to_json_dict()


def _fanout_problem(manifest: Manifest, shards: int) -> str | None:
    sharding = manifest.sharding
    if sharding is None or sharding.merged:
        return "version is not sharded; the fan-out serves only sharded versions"
    if sharding.shards != shards:
        return f"version has {sharding.shards} shards, the fan-out has {shards} shard endpoints"
    return None


def make_app(fanout: FanOut, state: dict[str, Any]) -> web.Application:
    async def search(request: web.Request) -> web.Response:
        try:
            parsed = parse_search_request(await request.read(), max_vectors=MAX_VECTORS, max_k=MAX_K)
            result = await fanout.search(parsed.vectors, parsed.k, parsed.key)
        except BadRequest as exc:
            fanout.metrics.requests.labels(version=NO_VERSION, code="400").inc()
            return web.json_response({"error": str(exc)}, status=400)
        except ShardsUnavailable as exc:
            fanout.metrics.requests.labels(version=NO_VERSION, code="503").inc()
            return web.json_response({"error": str(exc)}, status=503)
        fanout.metrics.requests.labels(version=result["version"], code="200").inc()
        return web.json_response(result)

    async def status(request: web.Request) -> web.Response:
        return web.json_response({**fanout.status(), "draining": state["draining"]})

    async def readyz(request: web.Request) -> web.Response:
        if state["draining"] or not fanout.ready:
            return web.json_response({"error": "shutting down" if state["draining"] else
                                      "no version is loaded on every shard yet"}, status=503)
        return web.json_response({"status": "ready", "version": fanout.snapshot.stable.version})  # type: ignore[union-attr]

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(fanout.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_post("/v1/search", search)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve_fanout(fanout: FanOut, host: str, port: int, stop: asyncio.Event, *, drain_seconds: float = 5.0,
                       on_listening: Callable[[str, int], None] | None = None) -> None:
    """Listen until ``stop``; then fail readiness and keep answering for ``drain_seconds``."""
    state = {"draining": False}
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        fanout._session = session
        runner = web.AppRunner(make_app(fanout, state), access_log=None)
        await runner.setup()
        poller = None
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            log.info("fan-out listening", extra={"host": bound_host, "port": bound_port, "shards": fanout.shard_urls})
            poller = asyncio.create_task(fanout.run(stop))
            if on_listening is not None:
                on_listening(bound_host, bound_port)
            await stop.wait()
            state["draining"] = True
            await asyncio.sleep(drain_seconds)
        finally:
            if poller is not None:
                await poller
            await runner.cleanup()
