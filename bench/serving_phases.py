"""The three serving measurements, each against a baseline taken in the same run.

1. ``throughput``: QPS and p50/p99 of ``POST /v1/search`` vs raw FAISS searching the very
   same index file in this process; single-vector and batch requests; 1..N clients.
2. ``hot_swap``: a query loop keeps running while the pointer is rewritten to the other
   version; latency in each swap window vs the steady windows between swaps, failed
   requests, and the server's RSS (sampled from /proc) against the index size on disk.
3. ``propagation``: several replicas on one pointer; time from the pointer write until
   each replica's ``/v1/status`` reports the new stable version.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import numpy as np
from serving_harness import K, Server, memory_of, say, stable_of, write_pointer
from serving_load import (
    BINARY,
    JSON,
    Samples,
    binary_url,
    cdf,
    encode_binary_bodies,
    encode_bodies,
    http_answers,
    http_load,
    raw_load,
    summarize,
)


def load_raw(version: dict):
    """The published index file read by FAISS in this process, with the manifest's search parameters."""
    import faiss

    index = faiss.read_index(version["index_path"])
    space = faiss.ParameterSpace()
    for name, value in version["manifest"]["searchParameters"].items():
        space.set_index_parameter(index, name, value)
    return index, np.load(version["ids_path"])


# The HTTP variants measured against raw FAISS in every throughput cell. "json" on the
# default server is the previous benchmark's HTTP column (same method, same bodies).
VARIANTS = ("json", "binary", "json_unbatched", "binary_unbatched")


def throughput(servers: dict[str, Server], version: dict, queries: np.ndarray, args) -> dict:
    """``servers``: "batched" (the default configuration) and "unbatched" (``FAISS_BATCH_MAX=1``)."""
    index, ids = load_raw(version)
    server = servers["batched"]
    url = f"{server.url}/v1/search"
    check = queries[: args.check_queries]
    http_ids = http_answers(url, check, K)
    raw_ids = ids[index.search(check, K)[1]]
    same = float(np.mean([len(set(h) & set(r.tolist())) / K for h, r in zip(http_ids, raw_ids)]))
    say(f"throughput: HTTP answers equal raw FAISS top-{K} on {same:.1%} of {len(check)} queries")
    dim = queries.shape[1]
    cells = []
    for mode, per_request in (("single", 1), ("batch", args.batch)):
        json_bodies = encode_bodies(queries, per_request, K)
        bin_bodies = encode_binary_bodies(queries, per_request)
        batches = [queries[i:i + per_request] for i in range(0, len(queries) // per_request * per_request, per_request)]
        search = lambda b: index.search(b, K)  # noqa: E731
        # Batch requests never go through the batcher: the unbatched server would measure the same path.
        variants = VARIANTS if per_request == 1 else VARIANTS[:2]
        plans = {v: (f"{servers['unbatched' if v.endswith('unbatched') else 'batched'].url}/v1/search",
                     bin_bodies if v.startswith("binary") else json_bodies,
                     BINARY if v.startswith("binary") else JSON) for v in variants}
        for clients in args.concurrency:
            # Interleaved rounds (raw slice, then each HTTP variant's slice, ...): background
            # load on this shared machine then hits every side of a ratio alike.
            raw_load(search, batches, clients, args.warmup_seconds)
            for v, (u, bodies, headers) in plans.items():
                target = binary_url(u, K, dim) if headers is BINARY else u
                asyncio.run(http_load(target, bodies, clients, duration=args.warmup_seconds, headers=headers))
            raw_s, http_s = Samples(), {v: Samples() for v in variants}
            for _ in range(args.rounds):
                raw_s.merge(raw_load(search, batches, clients, args.cell_seconds / args.rounds))
                for v, (u, bodies, headers) in plans.items():
                    target = binary_url(u, K, dim) if headers is BINARY else u
                    http_s[v].merge(asyncio.run(http_load(target, bodies, clients, duration=args.cell_seconds / args.rounds,
                                                          headers=headers)))
            raw = summarize(raw_s, per_request)
            summaries = {v: summarize(http_s[v], per_request) for v in variants}
            http = summaries["json"]
            cell = {"mode": mode, "vectors_per_request": per_request, "clients": clients, "http": http, "raw": raw,
                    "variants": summaries,
                    "ratio_qps": {v: summaries[v]["qps"] / raw["qps"] for v in variants},
                    "ratio_qps_http_over_raw": http["qps"] / raw["qps"],
                    "ratio_p50_http_over_raw": http["p50_ms"] / raw["p50_ms"],
                    "ratio_p99_http_over_raw": http["p99_ms"] / raw["p99_ms"]}
            cells.append(cell)
            say(f"throughput {mode}x{per_request} c={clients}: raw {raw['qps']:.0f} req/s | " + ", ".join(
                f"{v} {summaries[v]['qps']:.0f} ({cell['ratio_qps'][v]:.2f}x, p99 {summaries[v]['p99_ms']:.1f} ms, "
                f"failed {summaries[v]['failed']})" for v in variants))
    return {"same_answers_fraction": same, "check_queries": len(check), "cells": cells, "variants": list(VARIANTS),
            "search_parameters": version["manifest"]["searchParameters"],
            "servers": {name: srv.extra_env for name, srv in servers.items()}}


class RssSampler(threading.Thread):
    """Polls a process's RSS from /proc every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, origin: float, interval: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.origin, self.interval = pid, origin, interval
        self.samples: list[tuple[float, int, int, int]] = []  # (t, rss, anon, file)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            m = memory_of(self.pid)
            if m:
                self.samples.append((time.perf_counter() - self.origin, m.get("VmRSS", 0), m.get("RssAnon", 0), m.get("RssFile", 0)))
            self._halt.wait(self.interval)

    def stop(self) -> list[tuple[float, int, int, int]]:
        self._halt.set()
        self.join()
        return self.samples


def hot_swap(server: Server, versions: list[dict], endpoint: str, queries: np.ndarray, args,
             empty_rss: int | None = None) -> dict:
    """Swap back and forth ``args.swaps`` times under a steady query loop (server starts on versions[0])."""
    import aiohttp

    bodies = encode_bodies(queries, 1, K)
    origin = time.perf_counter()
    sampler = RssSampler(server.pid, origin)
    sampler.start()
    swaps: list[dict] = []

    async def drive():
        stop = asyncio.Event()
        load = asyncio.create_task(http_load(f"{server.url}/v1/search", bodies, args.swap_clients, stop=stop, origin=origin))
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            for i in range(args.swaps):
                await asyncio.sleep(args.steady_seconds)
                target = versions[(i + 1) % 2]["version"]
                generation, write_seconds = await loop.run_in_executor(None, write_pointer, endpoint, target)
                written = time.perf_counter() - origin
                while True:
                    async with session.get(f"{server.url}/v1/status") as resp:
                        status = await resp.json()
                    if stable_of(status)[0] == target:
                        break
                    await asyncio.sleep(0.02)
                served = time.perf_counter() - origin
                loaded = next(v for v in status["versions"] if v["version"] == target)
                swaps.append({"to": target, "generation": generation, "pointer_write_seconds": write_seconds,
                              "written_at": written, "serving_at": served, "write_to_serving_seconds": served - written,
                              "load_seconds": loaded.get("loadSeconds"), "warmup_seconds": loaded.get("warmupSeconds"),
                              "read_mode": loaded.get("readMode")})
                say(f"swap {i + 1}: pointer -> {target}; served after {served - written:.2f}s "
                    f"(load {loaded.get('loadSeconds')}s, read mode {loaded.get('readMode')})")
            await asyncio.sleep(args.steady_seconds)
        stop.set()
        return await load

    samples = asyncio.run(drive())
    memory = sampler.stop()
    return windows(samples, memory, swaps, versions[0]["index_file_bytes"], versions[0]["manifest"].get("sizeBytes"), args,
                   empty_rss)


def windows(samples, memory, swaps: list[dict], index_bytes: int, size_bytes: int | None, args,
            empty_rss: int | None = None) -> dict:
    """Split the run into steady and swap windows; latency, failures and RSS per window."""
    tail, settle = args.swap_tail_seconds, args.settle_seconds
    spans, steady_spans = [], []
    previous_end = settle  # the first second of the loop is connection set-up
    for s in swaps:
        steady_spans.append((previous_end, s["written_at"]))
        spans.append((s["written_at"], s["serving_at"] + tail))
        previous_end = s["serving_at"] + tail + settle
    in_any = lambda spans_: lambda t: any(a <= t < b for a, b in spans_)  # noqa: E731
    steady, swap = samples.select(in_any(steady_spans)), samples.select(in_any(spans))
    t_mem = np.array([m[0] for m in memory])
    rss = np.array([m[1] for m in memory])
    per_swap = []
    for s, (a, b), (sa, _) in zip(swaps, spans, steady_spans):
        before = rss[(t_mem >= sa) & (t_mem < a)]
        during = (t_mem >= a) & (t_mem < b + 2.0)  # + 2 s: the old version's memory is released after the swap
        after = rss[(t_mem >= b + 2.0) & (t_mem < b + 2.0 + settle)]
        peak = int(rss[during].max()) if during.any() else None
        steady_rss = int(np.median(before)) if len(before) else None
        idx = int(np.argmax(np.where(during, rss, -1))) if during.any() else None
        per_swap.append(s | {
            "requests_in_window": len(samples.select(lambda t, a=a, b=b: a <= t < b).ms),
            "rss_steady_bytes": steady_rss, "rss_peak_bytes": peak,
            "rss_after_bytes": int(np.median(after)) if len(after) else None,
            "rss_anon_at_peak_bytes": int(memory[idx][2]) if idx is not None else None,
            "rss_file_at_peak_bytes": int(memory[idx][3]) if idx is not None else None,
            "peak_over_index_file": peak / index_bytes if peak else None,
            "steady_over_index_file": steady_rss / index_bytes if steady_rss else None,
            "extra_during_swap_over_index_file": (peak - steady_rss) / index_bytes if peak and steady_rss else None,
            # Memory the versions take: RSS above the same process with no version loaded.
            "versions_peak_over_index_file": (peak - empty_rss) / index_bytes if peak and empty_rss else None,
            "versions_steady_over_index_file": (steady_rss - empty_rss) / index_bytes if steady_rss and empty_rss else None,
        })
    step = max(1, len(memory) // 1500)
    span = lambda spans_: sum(b - a for a, b in spans_)  # noqa: E731
    steady_summary, swap_summary = summarize(steady, wall=span(steady_spans)), summarize(swap, wall=span(spans))
    return {
        "clients": args.swap_clients, "swaps": per_swap, "tail_seconds": tail, "settle_seconds": settle,
        "steady": steady_summary, "swap": swap_summary,
        "ratio_p99_swap_over_steady": swap_summary["p99_ms"] / steady_summary["p99_ms"] if steady.ms and swap.ms else None,
        "failed_total": int(sum(1 for st in samples.status if st != 200)), "requests_total": len(samples.ms),
        "errors": dict(samples.errors),
        "answered_by": dict(Counter(v or "-" for v in samples.version)),
        "cdf_steady_ms": cdf(steady.ms), "cdf_swap_ms": cdf(swap.ms),
        "index_file_bytes": index_bytes, "version_size_bytes": size_bytes, "rss_without_index_bytes": empty_rss,
        "rss_timeline": [(round(m[0], 3), m[1], m[2], m[3]) for m in memory[::step]],
        "latency_timeline": _timeline(samples),
        "windows": {"steady": steady_spans, "swap": spans},
    }


def _timeline(samples, bucket: float = 0.25) -> list[tuple[float, float, float]]:
    """(bucket start, p50, max) of latency per ``bucket`` seconds, for the swap plot."""
    if not samples.start:
        return []
    start, ms = np.array(samples.start), np.array(samples.ms)
    out = []
    for b in np.arange(0, start.max() + bucket, bucket):
        sel = ms[(start >= b) & (start < b + bucket)]
        if len(sel):
            out.append((round(float(b), 3), float(np.median(sel)), float(sel.max())))
    return out


def propagation(endpoint: str, versions: list[dict], current: str, work, args) -> dict:
    """``args.replicas`` fresh replicas on one pointer; per trial, pointer write -> each serves the new version.

    Trials alternate: "notify" trials POST /v1/refresh to every replica right after the
    write (what the operator does, faiss_operator/notify.py); "poll" trials rely on the
    replicas' pointer poll alone (the fallback, and the previous benchmark's method).
    """
    replicas = [Server(f"replica-{i}", endpoint, work, args.poll_seconds) for i in range(args.replicas)]
    try:
        for r in replicas:
            r.wait_serving(current)
        say(f"propagation: {len(replicas)} replicas serving {current}")
        trials = []
        for trial in range(2 * args.trials):
            notify = trial % 2 == 0
            target = next(v["version"] for v in versions if v["version"] != current)
            time.sleep(args.settle_seconds)
            seen: dict[str, dict] = {}

            generation_box: list[int] = []
            written_box: list[float] = []
            watchers = [threading.Thread(target=_watch, args=(r, target, generation_box, written_box, seen), daemon=True)
                        for r in replicas]
            for w in watchers:
                w.start()
            generation, write_seconds = write_pointer(endpoint, target)
            generation_box.append(generation)
            written_box.append(time.perf_counter())
            acks = [r.notify() for r in replicas] if notify else []
            for w in watchers:
                w.join()
            times = [seen[r.name]["seconds"] for r in replicas if r.name in seen]
            trials.append({"to": target, "generation": generation, "pointer_write_seconds": write_seconds,
                           "mode": "notify" if notify else "poll", "notify_status": acks,
                           "replicas": seen, "max_seconds": max(times) if len(times) == len(replicas) else None,
                           "missing": [r.name for r in replicas if r.name not in seen]})
            say(f"propagation trial {trial + 1} ({trials[-1]['mode']}): " + ", ".join(f"{n} {v['seconds']:.2f}s" for n, v in seen.items())
                + f"; max {trials[-1]['max_seconds']}")
            current = target
        return {"replicas": len(replicas), "poll_seconds": args.poll_seconds, "trials": trials,
                "status_poll_interval_seconds": 0.02, "pointer_now": current}
    finally:
        for r in replicas:
            r.stop()


def _watch(replica: Server, target: str, generation_box: list[int], written_box: list[float], seen: dict) -> None:
    """Poll one replica's status from the pointer write until it serves ``target`` (records into ``seen``)."""
    while not written_box:
        time.sleep(0.001)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            status = replica.status()
        except OSError:
            status = {}
        stable, applied = stable_of(status)
        if stable == target and (applied is None or applied >= generation_box[0]):
            t = time.perf_counter() - written_box[0]
            entry = next(v for v in status["versions"] if v["version"] == target)
            seen[replica.name] = {"seconds": t, "load_seconds": entry.get("loadSeconds"),
                                  "warmup_seconds": entry.get("warmupSeconds")}
            return
        time.sleep(0.02)
