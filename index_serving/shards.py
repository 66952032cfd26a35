"""Shard-aware serving: a pod that loads one shard of each sharded version it is asked for.

A sharded version (``manifest.sharding`` with ``merged: false``) is served by N groups of
shard pods (``FAISS_SHARD`` = this pod's slice, ``FAISS_SHARDS`` = N) behind a stateless
fan-out (``index_serving.fanout``). The shard pod follows the same pointer as any serving
pod, with three differences that make version consistency possible:

* It loads only its own shard's files (sha256-verified like every file), and refuses a
  version whose manifest is not sharded, was built with another shard count, or whose
  shard file is missing or corrupt: that version then never becomes *loaded* here, so
  the fan-out never routes to it (never half-served).
* It answers ``POST /v1/shard/search`` only for the **explicit** version the fan-out
  names, and answers 409 when that version is not loaded. A fan-out therefore never
  merges answers of different versions: each shard answer is of the version asked for,
  or none.
* It keeps the previous stable version loaded after a swap (one version back), so a
  fan-out that has not yet seen every shard load the new version keeps answering with
  the old one on every shard until it switches.

Plain ``/v1/search`` is refused on a shard pod: one shard's answer is not the index's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from index_serving.errors import BadRequest, VersionRejected
from index_serving.loader import LoadedVersion, VersionLoader, apply_search_parameters, is_safe_name, warm_up
from index_serving.request import MAX_K, MAX_VECTORS, as_queries, check_queries, parse_search_request
from index_serving.runtime import IndexRuntime
from indexops_api.manifest import Manifest
from indexops_api.pointer import ServingPointer
from indexops_api.replica import ShardStatus

log = logging.getLogger(__name__)

ENV_SHARD = "FAISS_SHARD"
ENV_SHARDS = "FAISS_SHARDS"
SHARD_SEARCH_PATH = "/v1/shard/search"


class VersionNotLoaded(LookupError):
    """The fan-out asked for a version this shard pod has not loaded (or has dropped)."""


def shard_problem(manifest: Manifest, shard: int, shards: int) -> str | None:
    """Why this shard pod cannot serve ``manifest`` (pure), or None."""
    sharding = manifest.sharding
    if sharding is None or sharding.merged:
        return "version is not sharded; it is served by ordinary serving pods, not shard pods"
    if sharding.shards != shards:
        return f"version has {sharding.shards} shards, this pod serves shard {shard} of {shards}"
    entry = next((f for f in sharding.shard_files if f.shard == shard), None)
    if entry is None:
        return f"manifest lists no file for shard {shard}"
    listed = {f.name for f in manifest.files}
    for name in (entry.index_file, entry.ids_file):
        if name not in listed or not is_safe_name(name):
            return f"shard {shard} file {name!r} is not a listed, safe file of the version"
    return None


class ShardLoader(VersionLoader):
    """``VersionLoader`` for one shard: downloads and verifies only this shard's two files."""

    def __init__(self, *args: Any, shard: int, shards: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.shard, self.shards = shard, shards

    def load(self, version: str, admit: Any = None, low_priority: bool = False) -> LoadedVersion:
        started = time.perf_counter()
        if not is_safe_name(version):
            raise VersionRejected(version, "invalid", f"version id {version!r} is not a safe name")
        manifest = self._manifest(version)
        problem = shard_problem(manifest, self.shard, self.shards)
        if problem is not None:  # another serving topology (shard count) is a layout mismatch, not a broken version
            layout = manifest.sharding is None or manifest.sharding.merged or manifest.sharding.shards != self.shards
            raise VersionRejected(version, "layout" if layout else "shard", problem)
        assert manifest.sharding is not None
        entry = next(f for f in manifest.sharding.shard_files if f.shard == self.shard)
        files = {f.name: f for f in manifest.files}
        size = files[entry.index_file].size + files[entry.ids_file].size
        if admit is not None:
            admit(manifest.updated(size_bytes=size))  # the memory check is for this shard only
        directory = self.directory(version)
        directory.mkdir(parents=True, exist_ok=True)
        mine = manifest.updated(files=[files[entry.index_file], files[entry.ids_file]])
        self._fetch_all(version, mine, directory, low_priority)  # this shard's two files, verified
        index, mode = self._read_index(version, directory / entry.index_file)
        ids = self._read_ids(version, directory / entry.ids_file)
        if index.d != manifest.dimension or index.ntotal != entry.vectors or ids.shape[0] != index.ntotal:
            raise VersionRejected(version, "load", f"shard {self.shard} holds {index.ntotal} vectors of dimension "
                                  f"{index.d}, ids {ids.shape[0]}; manifest says {entry.vectors} x {manifest.dimension}")
        apply_search_parameters(version, index, manifest.search_parameters)
        loaded = warm_up(LoadedVersion(version, manifest, index, ids, directory, mode, time.perf_counter() - started))
        log.info("shard loaded", extra={"version": version, "shard": self.shard, "shards": self.shards,
                                        "vectors": index.ntotal, "readMode": mode})
        return loaded


class ShardRuntime(IndexRuntime):
    """An ``IndexRuntime`` that serves one shard by explicit version and keeps one previous stable."""

    def __init__(self, *args: Any, shard: int, shards: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.shard, self.shards = shard, shards
        plain = self.loader  # same store, cache, low-priority fetching and cache-repair counting; this shard's files only
        self.loader = ShardLoader(plain.store, plain.versions_prefix, plain.cache_dir, subprocess_fetch=plain.worker is not None,
                                  shard=shard, shards=shards)
        self.loader.on_cache_repair = plain.on_cache_repair
        self._previous: LoadedVersion | None = None
        self._outgoing: LoadedVersion | None = None

    def _apply(self, pointer: ServingPointer) -> bool:
        before = self._snapshot.stable
        self._outgoing = before  # kept on disk by _drop_unreferenced during this apply
        try:
            changed = super()._apply(pointer)
        finally:
            self._outgoing = None
        after = self._snapshot
        if before is not None and after.stable is not None and before.version != after.stable.version:
            self._previous = before
            log.info("previous stable kept for fan-outs that have not switched",
                     extra={"previous": before.version, "stable": after.stable.version, "shard": self.shard})
        if self._previous is not None and self._previous.version in after.versions():
            self._previous = None
        return changed

    def _drop_unreferenced(self, keep: set[str]) -> None:
        extra = {v.version for v in (self._previous, self._outgoing) if v is not None}
        super()._drop_unreferenced(keep | extra)

    def loaded(self) -> dict[str, LoadedVersion]:
        found = dict(self._snapshot.versions())
        if self._previous is not None:
            found.setdefault(self._previous.version, self._previous)
        return found

    def search(self, vectors: Any, k: int, key: str | None = None) -> Any:
        raise BadRequest(f"this pod serves shard {self.shard} of {self.shards}; send queries to the fan-out")

    def search_shard(self, version: str, vectors: Any, k: int) -> tuple[list[list[int]], list[list[float]]]:
        target = self.loaded().get(version)
        if target is None:
            raise VersionNotLoaded(version)
        queries = as_queries(vectors, k)
        check_queries(queries, dimension=target.dimension, cosine=target.cosine)
        started = time.perf_counter()
        ids, distances = target.search(queries, k)
        seconds = time.perf_counter() - started
        self.metrics.latency.labels(version=version).observe(seconds)
        self.metrics.queries.labels(version=version).inc(queries.shape[0])
        return ids, distances

    def status(self) -> dict[str, Any]:
        """The replica report plus this shard's place and the versions it can answer for (``ShardStatus``)."""
        return ShardStatus.model_validate({
            **super().status(), "shard": self.shard, "shards": self.shards, "loaded": sorted(self.loaded()),
            "previousVersion": self._previous.version if self._previous else None,
        }).to_json_dict()

    def add_routes(self, app: web.Application, executor: Any) -> None:
        """Called by ``server.make_app``: the fan-out's search endpoint."""

        async def shard_search(request: web.Request) -> web.Response:
            raw = await request.read()
            try:
                body = _json_object(raw)
                version = body.pop("version", None)
                if not isinstance(version, str) or not is_safe_name(version):
                    raise BadRequest("version (the version the fan-out serves) is required")
                parsed = parse_search_request(_dumps(body), max_vectors=MAX_VECTORS, max_k=MAX_K)
            except BadRequest as exc:
                return web.json_response({"error": str(exc)}, status=400)
            loop = asyncio.get_running_loop()
            try:
                ids, distances = await loop.run_in_executor(executor, self.search_shard, version, parsed.vectors, parsed.k)
            except VersionNotLoaded:
                return web.json_response({"error": f"version {version} is not loaded on shard {self.shard}",
                                          "loaded": sorted(self.loaded())}, status=409)
            except BadRequest as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response({"version": version, "shard": self.shard, "ids": ids, "distances": distances})

        app.router.add_post(SHARD_SEARCH_PATH, shard_search)


def _json_object(raw: bytes) -> dict[str, Any]:
    import json

    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _dumps(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body).encode()
