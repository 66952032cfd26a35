"""``faiss-index-server``: the serving process run by the operator's Deployment.

Configuration comes from the environment the operator sets; flags override it for
local runs. SIGTERM (and Ctrl-C) start a graceful drain: /readyz turns 503, the
listener closes, in-flight searches finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import click

from index_serving import fanout, logs, sharded_mode
from index_serving.config import (
    ENV_CACHE_DIR, ENV_POLL_SECONDS, ENV_PORT, ENV_SEARCH_THREADS, ServingConfig,
)
from index_serving.errors import ConfigError
from index_serving.runtime import IndexRuntime
from index_serving.server import serve
from indexops_api.constants import ENV_POD_IP, ENV_POINTER_BUCKET, ENV_POINTER_KEY, ENV_S3_ENDPOINT


async def _run(config: ServingConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if os.environ.get(fanout.ENV_MODE) == "fanout":  # scale-out: merge shard pods' answers (docs/scale-out.md)
        await fanout.serve_fanout(sharded_mode.fanout_from_config(config, os.environ), config.host, config.port, stop,
                                  drain_seconds=config.drain_seconds)
        return
    runtime = sharded_mode.shard_runtime_from_config(config, os.environ) or IndexRuntime.from_config(config)
    await serve(config, runtime, stop)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--pointer-bucket", help=f"Bucket of the serving pointer [env {ENV_POINTER_BUCKET}].")
@click.option("--pointer-key", help=f"Key of the serving pointer, e.g. <prefix>/<ns>/<name>/<horizon>/pointer.json [env {ENV_POINTER_KEY}].")
@click.option("--s3-endpoint", "endpoint", help=f"S3-compatible endpoint URL [env {ENV_S3_ENDPOINT}; AWS when unset].")
@click.option("--region", help="S3 region [env AWS_DEFAULT_REGION].")
@click.option("--host", help=f"Bind address [env {ENV_POD_IP}, else 0.0.0.0].")
@click.option("--port", type=int, help=f"HTTP port [env {ENV_PORT}, else 8080].")
@click.option("--poll-seconds", type=float, help=f"Pointer poll interval [env {ENV_POLL_SECONDS}, else 2].")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
              help=f"Where versions are downloaded [env {ENV_CACHE_DIR}, else /tmp/faiss-cache].")
@click.option("--search-threads", type=int, help=f"Search thread pool size [env {ENV_SEARCH_THREADS}, else 4].")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def main(log_level: str, **flags: object) -> None:
    """Serve kNN search over the FAISS version(s) named by a serving pointer.

    Endpoints: POST /v1/search, GET /healthz, /readyz, /metrics, /v1/status.
    """
    logs.configure(log_level)
    try:
        config = ServingConfig.from_env(**flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    _fast_event_loop()
    asyncio.run(_run(config))
    sys.exit(0)


def _fast_event_loop() -> None:
    """uvloop (libuv) when installed: a cheaper event loop per request; asyncio's own otherwise."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
