"""Serving configuration: environment first (set by the operator), flags override.

The operator configures serving pods only through environment variables (pointer
location, endpoint, pod IP), so ``from_env`` is the primary constructor and the CLI
passes its flags as overrides. The bind address defaults to the pod IP because the
local test harness runs every pod on one host with its own 127.0.0.N.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from index_serving.errors import ConfigError
from index_serving.memory import DEFAULT_HEADROOM_FACTOR
from index_serving.shadow import DEFAULT_CAPACITY
from indexops_api import constants as c
from indexops_api.constants import ENV_POD_IP, ENV_POINTER_BUCKET, ENV_POINTER_KEY, ENV_S3_ENDPOINT

ENV_PORT = c.ENV_SERVING_PORT
ENV_POLL_SECONDS = c.ENV_POLL_SECONDS
ENV_CACHE_DIR = c.ENV_CACHE_DIR
ENV_SEARCH_THREADS = c.ENV_SEARCH_THREADS
ENV_REGION = "AWS_DEFAULT_REGION"
# Serving-only knobs (embedders set them; the operator does not need to).
ENV_ENABLED = "FAISS_SERVING_ENABLED"  # false: no polling or loading, every search uses the fallback
ENV_SHADOW_QUEUE = "FAISS_SHADOW_QUEUE"
ENV_MEMORY_HEADROOM = "FAISS_MEMORY_HEADROOM_FACTOR"
# After SIGTERM: keep answering this long while /readyz fails, so endpoints drop the pod first.
ENV_DRAIN_SECONDS = "FAISS_DRAIN_SECONDS"
# The data plane (docs/serving.md): dynamic batching of single-vector requests, and the limits
# that keep a hostile client from holding sockets or memory.
ENV_BATCH_MAX = "FAISS_BATCH_MAX"  # most single-vector requests per FAISS call; 1 turns batching off
ENV_BATCH_WINDOW_MS = "FAISS_BATCH_WINDOW_MS"  # wait this long for more requests before a search (0: never wait)
ENV_BATCH_INFLIGHT = "FAISS_BATCH_INFLIGHT"  # batches searched at once; requests arriving meanwhile form the next
ENV_INLINE_SEARCH_MS = "FAISS_INLINE_SEARCH_MS"  # idle + single vector + version's p50 below this: search on the loop
ENV_HEADER_TIMEOUT = "FAISS_HEADER_TIMEOUT_SECONDS"  # a connection idle or mid-headers this long is closed
ENV_BODY_TIMEOUT = "FAISS_BODY_TIMEOUT_SECONDS"  # a body not fully received this long after its headers: 408
ENV_INFLIGHT_BYTES = "FAISS_MAX_INFLIGHT_BYTES"  # request bodies held at once, summed; beyond: 503 before reading
ENV_FETCH_SUBPROCESS = "FAISS_FETCH_SUBPROCESS"  # download+verify new versions in a low-priority child (FAISS_FETCH_NICE)
_FALSE = ("0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ServingConfig:
    pointer_bucket: str
    pointer_key: str
    endpoint: str | None = None
    region: str | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    poll_seconds: float = 2.0
    cache_dir: Path = Path("/tmp/faiss-cache")
    search_threads: int = 4
    shutdown_seconds: float = 20.0
    drain_seconds: float = 5.0
    enabled: bool = True
    shadow_queue_size: int = DEFAULT_CAPACITY
    memory_headroom_factor: float = DEFAULT_HEADROOM_FACTOR
    batch_max: int = 32
    batch_window_ms: float = 0.0
    batch_inflight: int = 2
    inline_search_ms: float = 1.0
    header_timeout_seconds: float = 15.0
    body_timeout_seconds: float = 30.0
    max_inflight_bytes: int = 64 * 1024 * 1024
    fetch_subprocess: bool = True

    @property
    def versions_prefix(self) -> str:
        """Versions live next to the pointer: ``<index prefix>/versions``."""
        parent = posixpath.dirname(self.pointer_key)
        return f"{parent}/versions" if parent else "versions"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "ServingConfig":
        """Read the environment, then apply non-None ``overrides`` (CLI flags)."""
        env = os.environ if env is None else env
        given = {k: v for k, v in overrides.items() if v is not None}
        values: dict[str, Any] = {
            "pointer_bucket": env.get(ENV_POINTER_BUCKET) or None,
            "pointer_key": env.get(ENV_POINTER_KEY) or None,
            "endpoint": env.get(ENV_S3_ENDPOINT) or None,
            "region": env.get(ENV_REGION) or None,
            "host": env.get(ENV_POD_IP) or "0.0.0.0",
            "port": _number(env, ENV_PORT, int, 8080),
            "poll_seconds": _number(env, ENV_POLL_SECONDS, float, 2.0),
            "cache_dir": Path(env.get(ENV_CACHE_DIR) or "/tmp/faiss-cache"),
            "search_threads": _number(env, ENV_SEARCH_THREADS, int, 4),
            "enabled": _flag(env, ENV_ENABLED, True),
            "shadow_queue_size": _number(env, ENV_SHADOW_QUEUE, int, DEFAULT_CAPACITY),
            "memory_headroom_factor": _number(env, ENV_MEMORY_HEADROOM, float, DEFAULT_HEADROOM_FACTOR),
            "drain_seconds": _number(env, ENV_DRAIN_SECONDS, float, 5.0),
            "batch_max": _number(env, ENV_BATCH_MAX, int, 32),
            "batch_window_ms": _number(env, ENV_BATCH_WINDOW_MS, float, 0.0),
            "batch_inflight": _number(env, ENV_BATCH_INFLIGHT, int, 2),
            "inline_search_ms": _number(env, ENV_INLINE_SEARCH_MS, float, 1.0),
            "header_timeout_seconds": _number(env, ENV_HEADER_TIMEOUT, float, 15.0),
            "body_timeout_seconds": _number(env, ENV_BODY_TIMEOUT, float, 30.0),
            "max_inflight_bytes": _number(env, ENV_INFLIGHT_BYTES, int, 64 * 1024 * 1024),
            "fetch_subprocess": _flag(env, ENV_FETCH_SUBPROCESS, True),
        }
        values.update(given)
        missing = [name for name, var in (("pointer_bucket", ENV_POINTER_BUCKET), ("pointer_key", ENV_POINTER_KEY))
                   if not values[name]]
        if missing:
            names = {"pointer_bucket": f"{ENV_POINTER_BUCKET} / --pointer-bucket", "pointer_key": f"{ENV_POINTER_KEY} / --pointer-key"}
            raise ConfigError("missing serving configuration: " + ", ".join(names[m] for m in missing))
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        if not 0 <= self.port < 65536:  # 0 = any free port (tests, local runs)
            raise ConfigError(f"port {self.port} is outside 0..65535")
        if self.poll_seconds <= 0:
            raise ConfigError(f"poll interval must be positive, got {self.poll_seconds}")
        if self.search_threads < 1:
            raise ConfigError(f"search threads must be >= 1, got {self.search_threads}")
        if self.shadow_queue_size < 1:
            raise ConfigError(f"shadow queue size must be >= 1, got {self.shadow_queue_size}")
        if self.batch_max < 1 or self.batch_inflight < 1 or not 0 <= self.batch_window_ms <= 100:
            raise ConfigError(f"batching needs max >= 1, in-flight >= 1 and a window of 0..100 ms, got "
                              f"{self.batch_max}, {self.batch_inflight}, {self.batch_window_ms}")
        if not 0 <= self.inline_search_ms <= 10:
            raise ConfigError(f"inline search threshold must be 0..10 ms (0 turns it off), got {self.inline_search_ms}")
        if self.header_timeout_seconds <= 0 or self.body_timeout_seconds <= 0:
            raise ConfigError("header and body timeouts must be positive")
        if self.max_inflight_bytes < 1024 * 1024:
            raise ConfigError(f"max in-flight bytes must be at least 1 MiB, got {self.max_inflight_bytes}")
        if self.memory_headroom_factor < 0:
            raise ConfigError(f"memory headroom factor must be >= 0 (0 disables the check), got {self.memory_headroom_factor}")

    def with_overrides(self, **overrides: Any) -> "ServingConfig":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _number(env: Mapping[str, str], name: str, kind: type, default: Any) -> Any:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from exc


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise ConfigError(f"{name}={env[name]!r} is not a boolean (true/false)")
