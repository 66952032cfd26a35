"""Which scale-out role a serving process plays, from the environment the operator sets.

``FAISS_SHARD`` / ``FAISS_SHARDS`` make a shard pod (``index_serving.shards``);
``FAISS_SERVING_MODE=fanout`` with ``FAISS_SHARD_URLS`` makes a fan-out
(``index_serving.fanout``); neither is the ordinary single-index server.
"""

from __future__ import annotations

from collections.abc import Mapping

from index_serving.config import ServingConfig
from index_serving.errors import ConfigError
from index_serving.fanout import ENV_SHARD_URLS, FanOut
from index_serving.shards import ENV_SHARD, ENV_SHARDS, ShardRuntime
from indexops_store.s3 import ArtifactStore, make_client


def shard_runtime_from_config(config: ServingConfig, env: Mapping[str, str]) -> ShardRuntime | None:
    shard, shards = env.get(ENV_SHARD, ""), env.get(ENV_SHARDS, "")
    if not shard and not shards:
        return None
    if not (shard.isdigit() and shards.isdigit() and 0 <= int(shard) < int(shards)):
        raise ConfigError(f"{ENV_SHARD}={shard!r} and {ENV_SHARDS}={shards!r} must be 0 <= shard < shards")
    store = ArtifactStore(make_client(config.endpoint, config.region), config.pointer_bucket)
    return ShardRuntime(store, config.pointer_key, config.cache_dir, versions_prefix=config.versions_prefix,
                        poll_seconds=config.poll_seconds, memory_headroom_factor=config.memory_headroom_factor,
                        shard=int(shard), shards=int(shards))


def fanout_from_config(config: ServingConfig, env: Mapping[str, str]) -> FanOut:
    urls = [u.strip() for u in (env.get(ENV_SHARD_URLS) or "").split(",") if u.strip()]
    if not urls:
        raise ConfigError(f"fan-out mode needs {ENV_SHARD_URLS} (comma-separated shard base URLs, shard 0 first)")
    store = ArtifactStore(make_client(config.endpoint, config.region), config.pointer_bucket)
    return FanOut(store, config.pointer_key, config.versions_prefix, urls, poll_seconds=min(config.poll_seconds, 1.0))
