"""The HTTP face of ``IndexRuntime`` (aiohttp): search, health, readiness, metrics, status.

The event loop only parses and answers; FAISS searches run in a thread pool (FAISS
releases the GIL), so one slow batch never blocks health checks. Errors are JSON
``{"error": "..."}`` with a status a client can act on: 400 fix your query, 413 split
your batch, 503 retry elsewhere (no index loaded yet, or shutting down).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from index_serving.config import ServingConfig
from index_serving.errors import BadRequest, NoIndexLoaded
from index_serving.metrics import NO_VERSION
from index_serving.request import MAX_K, MAX_VECTORS, parse_search_request
from index_serving.runtime import IndexRuntime

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", IndexRuntime)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
STATE = web.AppKey("state", dict)
MAX_BODY_BYTES = 32 * 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Routing and size errors as JSON too (404, 405, 413)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason if exc.status != 413 else f"body larger than {MAX_BODY_BYTES} bytes")


async def search(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    metrics = runtime.metrics
    try:
        parsed = parse_search_request(await request.read(), max_vectors=MAX_VECTORS, max_k=MAX_K)
    except BadRequest as exc:
        metrics.requests.labels(version=NO_VERSION, code="400").inc()
        return _error(400, str(exc))
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(request.app[EXECUTOR], runtime.search, parsed.vectors, parsed.k, parsed.key)
    except NoIndexLoaded as exc:
        metrics.requests.labels(version=NO_VERSION, code="503").inc()
        return _error(503, str(exc))
    except BadRequest as exc:
        metrics.requests.labels(version=runtime.snapshot.stable.version if runtime.ready else NO_VERSION, code="400").inc()  # type: ignore[union-attr]
        return _error(400, str(exc))
    except Exception as exc:
        log.exception("search failed")
        metrics.requests.labels(version=NO_VERSION, code="500").inc()
        return _error(500, f"search failed: {type(exc).__name__}: {exc}")
    metrics.requests.labels(version=result.version, code="200").inc()
    return web.json_response(
        {"version": result.version, "role": result.role, "ids": result.ids, "distances": result.distances}
    )


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


def make_app(runtime: IndexRuntime, executor: ThreadPoolExecutor) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    app[EXECUTOR] = executor
    app[STATE] = {"draining": False}
    app.router.add_post("/v1/search", search)
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
    executor = ThreadPoolExecutor(config.search_threads, thread_name_prefix="faiss-search")
    app = make_app(runtime, executor)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.shutdown_seconds)
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
