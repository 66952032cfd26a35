"""The HTTP face of ``IndexRuntime`` (aiohttp): search, health, readiness, metrics, status, refresh.

The event loop only admits, parses and answers; FAISS searches run in a thread pool
(FAISS releases the GIL), so one slow batch never blocks health checks. Errors are JSON
``{"error": "..."}`` with a status a client can act on: 400 fix your query, 408 send
the body faster, 411 say how long the body is, 413 split your batch, 503 retry
elsewhere (no index loaded yet, too many bytes in flight, or shutting down). No error
ever carries a traceback.

Two wire formats (docs/serving.md): JSON (the default, ``{"vectors": [[...]], "k": 10}``)
and binary (``Content-Type: application/octet-stream``: raw little-endian float32 rows,
width in ``X-Dimension`` or ``?d=``; or ``application/x-npy``), with ``k`` and ``key`` in
the query string. ``Accept: application/octet-stream`` asks for a binary answer: int64
ids then float32 distances, each (rows x k), row-major, -1 for a missing result.

Before a body is read its declared size is checked against the index dimension and
reserved in the in-flight byte budget (``guard.py``); headers must arrive within the
header timeout (aiohttp's idle-connection timer, which also runs while a request's
headers are incomplete) and the body within the body timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from index_serving import guard
from index_serving.batching import MicroBatcher
from index_serving.config import ServingConfig
from index_serving.errors import BadRequest, NoIndexLoaded
from index_serving.metrics import NO_VERSION
from index_serving.request import (
    BINARY_TYPES, MAX_K, MAX_VECTORS, check_body_size, parse_binary_request, parse_query_params,
    parse_search_request,
)
from index_serving.runtime import IndexRuntime
from index_serving.snapshot import SearchResult

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", IndexRuntime)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
STATE = web.AppKey("state", dict)
BATCHER = web.AppKey("batcher", MicroBatcher)
BUDGET = web.AppKey("budget", guard.ByteBudget)
CONFIG = web.AppKey("config", ServingConfig)
MAX_BODY_BYTES = 32 * 1024 * 1024
OFFLOAD_BODY_BYTES = 256 * 1024  # parse larger bodies in the pool, not on the event loop
OFFLOAD_ANSWER_VALUES = 16_384  # encode answers with more rows x k values in the pool
BINARY_ANSWER = "application/octet-stream"


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json",
                        headers=headers or None)


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Routing and size errors as JSON too (404, 405, 413), and never a traceback (500)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason if exc.status != 413 else f"body larger than {MAX_BODY_BYTES} bytes")
    except Exception as exc:
        log.exception("request failed", extra={"path": request.path})
        return _error(500, f"internal error ({type(exc).__name__})")


def _count(request: web.Request, version: str, code: int) -> None:
    """The request counter through cached label children (cheap per request)."""
    children: dict[tuple[str, int], Any] = request.app[STATE]["counters"]
    child = children.get((version, code))
    if child is None:
        child = children[(version, code)] = request.app[RUNTIME].metrics.requests.labels(version=version, code=str(code))
    child.inc()


def _fast_enough_inline(runtime: IndexRuntime, threshold_ms: float) -> bool:
    versions = runtime.snapshot.versions().values()
    return threshold_ms > 0 and bool(versions) and all(
        lv.manifest.measurements.latency_p50_ms <= threshold_ms for lv in versions)


def _dimension(runtime: IndexRuntime) -> int | None:
    """The width every loaded version expects, or None when unknown or not unique."""
    widths = {lv.dimension for lv in runtime.snapshot.versions().values()}
    if not widths and runtime.fallback is not None:  # answered by the embedder's fallback set
        return getattr(runtime.fallback, "dimension", None)
    return widths.pop() if len(widths) == 1 else None


async def search(request: web.Request) -> web.StreamResponse:
    runtime, config = request.app[RUNTIME], request.app[CONFIG]
    declared_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    binary = declared_type in BINARY_TYPES
    length = request.content_length
    if length is None and request.body_exists:
        _count(request, NO_VERSION, 411)
        return _error(411, "send the body with a Content-Length (chunked bodies are not accepted)")
    if length is not None and length > MAX_BODY_BYTES:
        _count(request, NO_VERSION, 413)
        return _error(413, f"body larger than {MAX_BODY_BYTES} bytes", Connection="close")
    if not runtime.ready and runtime.fallback is None:  # answered before a byte of the body is read
        _count(request, NO_VERSION, 503)
        return _error(503, "no index version is loaded yet" if runtime.enabled else "serving is disabled")
    dimension = _dimension(runtime)
    try:
        width = request.headers.get("X-Dimension")
        params = {**request.query, **({"d": width} if width is not None else {})}
        k, key, declared_width = parse_query_params(params, MAX_K) if binary else (0, None, None)
        check_body_size(declared_type if binary else "application/json", length, dimension=dimension,
                        declared_width=declared_width, max_vectors=MAX_VECTORS)
    except BadRequest as exc:
        _count(request, NO_VERSION, 400)
        return _error(400, str(exc))
    size = length or 0
    budget = request.app[BUDGET]
    if not budget.try_take(size):
        _count(request, NO_VERSION, 503)
        return _error(503, f"too many request bytes in flight (limit {budget.limit}); retry shortly", **{"Retry-After": "1"})
    try:
        try:
            async with asyncio.timeout(config.body_timeout_seconds):  # no extra task, unlike wait_for
                body = await request.read()
        except TimeoutError:
            _count(request, NO_VERSION, 408)
            response = _error(408, f"body not received within {config.body_timeout_seconds:g}s")
            response.force_close()
            return response
        loop = asyncio.get_running_loop()
        if binary:
            parse = lambda: parse_binary_request(body, declared_type, k=k, key=key,  # noqa: E731
                                                 declared_width=declared_width, dimension=dimension)
        else:
            parse = lambda: parse_search_request(body, max_vectors=MAX_VECTORS, max_k=MAX_K, dimension=dimension)  # noqa: E731
        try:
            parsed = await loop.run_in_executor(request.app[EXECUTOR], parse) if len(body) > OFFLOAD_BODY_BYTES else parse()
        except BadRequest as exc:
            _count(request, NO_VERSION, 400)
            return _error(400, str(exc))
        del body
        return await _answer(request, parsed.vectors, parsed.k, parsed.key)
    finally:
        budget.give_back(size)
        if size >= guard.TRIM_AFTER_BYTES or request.get("large_answer"):
            _schedule_trim(request.app)


def _schedule_trim(app: web.Application) -> None:
    """One heap trim shortly after a large request (the answer's buffers are free by then)."""
    state = app[STATE]
    if state["trim_pending"]:
        return
    state["trim_pending"] = True
    loop = asyncio.get_running_loop()

    def run() -> None:
        state["trim_pending"] = False
        loop.run_in_executor(app[EXECUTOR], guard.trim_heap)

    loop.call_later(guard.TRIM_DELAY_SECONDS, run)


async def _answer(request: web.Request, vectors: Any, k: int, key: str | None) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    loop = asyncio.get_running_loop()
    batcher = request.app.get(BATCHER)
    try:
        if batcher is not None and vectors.shape[0] == 1:
            if batcher.idle and _fast_enough_inline(runtime, request.app[CONFIG].inline_search_ms):
                # A lone single-vector query on a fast index: searching it here costs less than
                # the two thread hand-offs (each a scheduling delay on a busy node), and blocks
                # the loop no longer than the builder-measured p50 single-query latency.
                result = runtime.search(vectors, k, key)
            else:
                result = await batcher.search(vectors, k, key)
        else:
            result = await loop.run_in_executor(request.app[EXECUTOR], runtime.search, vectors, k, key)
    except NoIndexLoaded as exc:
        _count(request, NO_VERSION, 503)
        return _error(503, str(exc))
    except BadRequest as exc:
        _count(request, NO_VERSION, 400)
        return _error(400, str(exc))
    except Exception as exc:
        log.exception("search failed")
        _count(request, NO_VERSION, 500)
        return _error(500, f"search failed: {type(exc).__name__}")
    _count(request, result.version, 200)
    binary = BINARY_ANSWER in request.headers.get("Accept", "")
    encode = _encode_binary if binary else _encode_json
    if result.id_matrix.size > OFFLOAD_ANSWER_VALUES:
        request["large_answer"] = True
        return await loop.run_in_executor(request.app[EXECUTOR], encode, result)
    return encode(result)


def _encode_json(result: SearchResult) -> web.Response:
    if result.complete:  # orjson writes the numpy arrays directly
        body = orjson.dumps({"version": result.version, "role": result.role, "ids": result.id_matrix,
                             "distances": result.distance_matrix}, option=orjson.OPT_SERIALIZE_NUMPY)
    else:
        body = orjson.dumps({"version": result.version, "role": result.role, "ids": result.ids,
                             "distances": result.distances})
    return web.Response(body=body, content_type="application/json")


def _encode_binary(result: SearchResult) -> web.Response:
    ids = result.id_matrix.astype("<i8", copy=False)
    distances = result.distance_matrix.astype("<f4", copy=False)
    rows, k = ids.shape
    return web.Response(body=ids.tobytes() + distances.tobytes(), content_type=BINARY_ANSWER,
                        headers={"X-Faiss-Version": result.version, "X-Faiss-Role": result.role,
                                 "X-Faiss-Rows": str(rows), "X-Faiss-K": str(k)})


async def refresh(request: web.Request) -> web.Response:
    """Read the pointer now (the operator calls this after writing it); rate-bounded, carries nothing."""
    request.app[RUNTIME].request_refresh()
    return web.Response(body=b'{"status":"refresh requested"}', status=202, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if request.app[STATE]["draining"]:
        return _error(503, "shutting down")
    if not runtime.ready:
        return _error(503, "no stable index version loaded yet")
    return web.json_response({"status": "ready", "version": runtime.snapshot.stable.version})  # type: ignore[union-attr]


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[RUNTIME].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    body: dict[str, Any] = request.app[RUNTIME].status()
    body["draining"] = request.app[STATE]["draining"]
    return web.json_response(body)


def make_app(runtime: IndexRuntime, executor: ThreadPoolExecutor, config: ServingConfig | None = None) -> web.Application:
    config = config or ServingConfig("unused", "unused")
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    app[EXECUTOR] = executor
    app[CONFIG] = config
    app[STATE] = {"draining": False, "counters": {}, "trim_pending": False}
    app[BUDGET] = guard.ByteBudget(config.max_inflight_bytes)
    if config.batch_max > 1:
        app[BATCHER] = MicroBatcher(runtime.search_many, executor, max_batch=config.batch_max,
                                    window_ms=config.batch_window_ms, max_inflight=config.batch_inflight)
    app.router.add_post("/v1/search", search)
    app.router.add_post("/v1/refresh", refresh)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    if hasattr(runtime, "add_routes"):  # a shard runtime adds the fan-out's endpoint (index_serving.shards)
        runtime.add_routes(app, executor)
    return app


async def serve(
    config: ServingConfig,
    runtime: IndexRuntime,
    stop: asyncio.Event,
    on_listening: Callable[[str, int], None] | None = None,
) -> None:
    """Listen until ``stop`` is set, then drain: readiness fails, in-flight requests finish."""
    guard.fix_mmap_threshold()
    executor = ThreadPoolExecutor(config.search_threads, thread_name_prefix="faiss-search")
    app = make_app(runtime, executor, config)
    # keepalive_timeout: aiohttp arms it when a connection opens and re-arms it after each
    # answer, and closes a connection still waiting for a complete request when it fires:
    # it is the header read timeout (slow-loris) as well as the idle timeout.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.shutdown_seconds,
                           keepalive_timeout=config.header_timeout_seconds)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        log.info("listening", extra={"host": host, "port": port, "pointer": f"s3://{config.pointer_bucket}/{config.pointer_key}"})
        runtime.start()
        if on_listening is not None:
            on_listening(host, port)
        await stop.wait()
        # Readiness fails at once, but searches are still answered for drain_seconds: the
        # endpoints controller needs a moment to take this pod out of the Service, and a
        # client that picked it just before must not see a refused connection.
        app[STATE]["draining"] = True
        log.info("shutting down: not ready, still answering for the drain period", extra={"seconds": config.drain_seconds})
        await asyncio.sleep(config.drain_seconds)
    finally:
        runtime.stop()
        await runner.cleanup()
        executor.shutdown(wait=True)
        log.info("stopped")
