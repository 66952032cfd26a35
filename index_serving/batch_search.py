"""Answering several requests with one FAISS call per (version, k): what dynamic batching calls.

Each request keeps its own routing key, checks, metrics, analysis-window count and
shadow sampling, exactly as ``IndexRuntime.search`` would give it; only the FAISS call is
shared. Requests routed to a canary's candidate (a small share) are answered one by one
through ``search``, so the candidate's fallback rules stay in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from index_serving.request import as_queries, check_queries
from index_serving.routing import goes_to_shadow, request_key
from index_serving.shadow import ShadowJob
from index_serving.snapshot import SearchResult, Snapshot

if TYPE_CHECKING:
    from index_serving.runtime import IndexRuntime

Request = tuple[np.ndarray, int, str | None]


def search_many(runtime: "IndexRuntime", requests: Sequence[Request]) -> list[SearchResult | Exception]:
    """One FAISS call per (version, k) among the requests routed to stable.

    The answer for request i is ``out[i]``: its ``SearchResult``, or the exception
    ``IndexRuntime.search`` would have raised for it alone.
    """
    snap = runtime.snapshot
    out: list[SearchResult | Exception | None] = [None] * len(requests)
    groups: dict[tuple[int, bool], list[tuple[int, np.ndarray, str]]] = {}
    for i, (vectors, k, key) in enumerate(requests):
        if not runtime.enabled or snap.stable is None:
            out[i] = _attempt(runtime.search, vectors, k, key)
            continue
        try:
            queries = as_queries(vectors, k)
            routed = request_key(key)
            target, role, fallback = runtime._route(snap, routed)
            if role == "candidate":
                out[i] = runtime.search(vectors, k, key)
                continue
            check_queries(queries, dimension=target.dimension, cosine=target.cosine)
        except Exception as exc:
            out[i] = exc
            continue
        groups.setdefault((k, fallback), []).append((i, queries, routed))
    for (k, fallback), members in groups.items():
        _search_group(runtime, snap, k, fallback, members, out)
    return out  # type: ignore[return-value]


def _search_group(runtime: "IndexRuntime", snap: Snapshot, k: int, fallback: bool,
                  members: list[tuple[int, np.ndarray, str]], out: list[Any]) -> None:
    assert snap.stable is not None
    stacked = members[0][1] if len(members) == 1 else np.concatenate([q for _, q, _ in members])
    started = time.perf_counter()
    try:
        ids, distances = snap.stable.search_arrays(stacked, k)
    except Exception as exc:
        for i, queries, _ in members:
            runtime._failed(snap, snap.stable, exc, fallback=runtime.fallback is not None)
            out[i] = runtime._use_fallback(queries, k, "error") if runtime.fallback is not None else exc
        return
    seconds = time.perf_counter() - started
    runtime._record(snap, snap.stable.version, seconds, stacked.shape[0], requests=len(members))
    whole = SearchResult(snap.stable.version, "stable", ids, distances, fallback)
    row = 0
    for i, queries, routed in members:
        result = out[i] = whole.rows(row, row + queries.shape[0])
        row += queries.shape[0]
        if not fallback and snap.candidate is not None and goes_to_shadow(routed, snap.shadow_percent) and snap.window:
            runtime.shadow.submit(ShadowJob(snap.window, snap.candidate, queries.copy(), k, result.ids))


def _attempt(search: Callable[..., SearchResult], *args: Any) -> SearchResult | Exception:
    try:
        return search(*args)
    except Exception as exc:
        return exc
