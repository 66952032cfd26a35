"""``make bench``: the serving path, each measurement against a baseline from the same run.

On one data set (``bench/data.py``: LSA embeddings of real text, 100k x 384 by default),
two versions of one HNSW index are published the way production publishes them (the
``faiss-index-builder`` console script, uploading to a moto S3 server on 127.0.0.1), and
real ``faiss-index-server`` processes serve them by following the serving pointer:

1. QPS and p50/p99 over HTTP vs raw FAISS on the same index file in process (ratio);
   single-vector and batch requests; 1 and several concurrent clients; JSON and binary
   bodies; dynamic batching on (the default) and off (a second server, same slices).
2. p99 while the pointer is rewritten to the other version (hot swap) vs steady state,
   and failed requests; the low-priority fetch worker (default) vs fetching in the
   serving process (the previous loader, a second server in the same run).
3. Time from the pointer write until every one of several replicas serves the new
   version, with the operator's ``POST /v1/refresh`` notification and with polling alone.
4. Peak RSS of the serving process during a swap vs the index size on disk.
5. Peers at matched recall: FAISS HNSW vs hnswlib, Chroma, Milvus Lite (``serving_peers.py``).

Results: ``bench/results/serving.{json,md,png}`` (``serving_report.py``). Benchmarks
measure; nothing here asserts on a timing. ``--quick`` runs everything at 20k vectors with
short windows (a smoke run of a few minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from serving_harness import (
    ROOT,
    K,
    Moto,
    Server,
    fake_aws_env,
    memory_of,
    publish,
    say,
    write_pointer,
)

RESULTS = ROOT / "bench" / "results"
FULL_EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
QUICK_EFS = [10, 16, 32, 64, 128, 256]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20k vectors, short windows, fewer sweep points (smoke run)")
    p.add_argument("--n", type=int, default=None, help="base vectors (default 100000; 20000 with --quick)")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=1000, help="held-out queries")
    p.add_argument("--ef-search", type=int, default=64, help="efSearch of the published versions")
    p.add_argument("--batch", type=int, default=32, help="vectors per batch request")
    p.add_argument("--concurrency", type=_ints, default=[1, 4, 16], help="client counts, e.g. 1,4,16")
    p.add_argument("--cell-seconds", type=float, default=8.0, help="measured seconds per throughput cell")
    p.add_argument("--warmup-seconds", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=4, help="interleaved HTTP/raw slices per throughput cell")
    p.add_argument("--check-queries", type=int, default=200, help="queries compared HTTP vs raw for equal answers")
    p.add_argument("--swaps", type=int, default=3)
    p.add_argument("--swap-clients", type=int, default=4)
    p.add_argument("--steady-seconds", type=float, default=8.0, help="steady load before each swap")
    p.add_argument("--swap-tail-seconds", type=float, default=1.0, help="added to a swap window after the new version serves")
    p.add_argument("--settle-seconds", type=float, default=1.0)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--trials", type=int, default=3, help="propagation trials of each kind (notify, poll)")
    p.add_argument("--poll-seconds", type=float, default=2.0, help="FAISS_POLL_SECONDS of the replicas (server default 2)")
    p.add_argument("--peers", default="faiss,hnswlib,chromadb,milvus-lite", help="comma-separated; empty to skip")
    p.add_argument("--efs", type=_ints, default=None, help="ef sweep for the peers")
    p.add_argument("--single-queries", type=int, default=200, help="single-query calls per sweep point")
    p.add_argument("--target-recall", type=float, default=0.95)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.n = args.n or 20_000
        args.cell_seconds, args.warmup_seconds, args.check_queries, args.rounds = 2.0, 0.5, 50, 2
        args.swaps, args.steady_seconds, args.trials, args.replicas = 2, 3.0, 2, 2
        args.single_queries = 100
        args.efs = args.efs or QUICK_EFS
    args.n = args.n or 100_000
    args.efs = args.efs or FULL_EFS
    return args


def code_state() -> dict:
    """The serving code is edited concurrently: record the checkout and what was uncommitted."""
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {"head": git("rev-parse", "HEAD"),
            "uncommitted_changes": git("status", "--porcelain", "--", "index_serving", "index_builder",
                                       "indexops_api", "indexops_store").splitlines()}


def main(argv: list[str] | None = None) -> int:
    import logging

    import aiohttp
    import data
    import faiss
    import serving_report
    from serving_peers import run_peers
    from serving_phases import hot_swap, propagation, throughput

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    args = parse_args(argv)
    started = time.perf_counter()
    load: dict[str, float] = {"start": os.getloadavg()[0]}
    code = code_state()
    dataset = data.load(args.n, args.dim, args.queries, progress=say)
    fake_aws_env()
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        work = Path(tmp)
        paths = {name: work / f"{name}.npy" for name in ("base", "queries", "truth")}
        np.save(paths["base"], dataset.base)
        np.save(paths["queries"], dataset.queries)
        flat = faiss.IndexFlatL2(args.dim)
        flat.add(dataset.base)
        np.save(paths["truth"], flat.search(dataset.queries, K)[1])
        del flat
        moto = Moto(work / "moto.log")
        try:
            versions = []
            for i in (1, 2):
                say(f"publish version {i}: faiss-index-builder, {args.n}x{args.dim} HNSW32 efSearch={args.ef_search}")
                versions.append(publish(paths["base"], args.dim, args.ef_search, moto.endpoint, work))
                say(f"version {versions[-1]['version']}: {versions[-1]['builder_seconds']:.1f}s, index file "
                    f"{versions[-1]['index_file_bytes']:,} bytes")
            load["published"] = os.getloadavg()[0]
            server = Server("server", moto.endpoint, work, args.poll_seconds)
            unbatched = Server("server-unbatched", moto.endpoint, work, args.poll_seconds, env={"FAISS_BATCH_MAX": "1"})
            try:
                # RSS with no version loaded (no pointer yet: interpreter, FAISS, aiohttp, one poll done),
                # the base that the index memory of section 4 is measured from.
                server.wait_listening()
                unbatched.wait_listening()
                time.sleep(args.poll_seconds + 0.5)
                empty_rss = memory_of(server.pid).get("VmRSS")
                write_pointer(moto.endpoint, versions[0]["version"])
                server.wait_serving(versions[0]["version"])
                unbatched.wait_serving(versions[0]["version"])
                say(f"server on {server.url} serving {versions[0]['version']}")
                tp = throughput({"batched": server, "unbatched": unbatched}, versions[0], dataset.queries, args)
                unbatched.stop()
                load["throughput"] = os.getloadavg()[0]
                swap = hot_swap(server, versions, moto.endpoint, dataset.queries, args, empty_rss)
                load["hot_swap"] = os.getloadavg()[0]
            finally:
                server.stop()
                unbatched.stop()
            # Baseline of section 2, same run: the previous loader (download and sha256 in the
            # serving process, at the serving priority).
            now = versions[args.swaps % 2]["version"]
            order = versions if now == versions[0]["version"] else versions[::-1]
            baseline = Server("server-inprocess-fetch", moto.endpoint, work, args.poll_seconds,
                              env={"FAISS_FETCH_SUBPROCESS": "false"})
            try:
                baseline.wait_serving(now)
                swap_baseline = hot_swap(baseline, order, moto.endpoint, dataset.queries, args, None)
                load["hot_swap_baseline"] = os.getloadavg()[0]
            finally:
                baseline.stop()
            current = order[args.swaps % 2]["version"]
            prop = propagation(moto.endpoint, versions, current, work, args)
            load["propagation"] = os.getloadavg()[0]
        finally:
            moto.stop()
        names = [p for p in args.peers.split(",") if p]
        peers = run_peers(paths, args.efs, args.single_queries, args.target_recall, work, names, say)
        load["peers"] = os.getloadavg()[0]
    result = {
        "n": args.n, "dim": args.dim, "queries": args.queries, "k": K, "quick": args.quick, "ef_search": args.ef_search,
        "poll_seconds": args.poll_seconds, "cell_seconds": args.cell_seconds, "warmup_seconds": args.warmup_seconds, "rounds": args.rounds,
        "target_recall": args.target_recall, "efs": args.efs, "single_queries": args.single_queries,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "faiss": faiss.__version__, "numpy": np.__version__, "aiohttp": aiohttp.__version__},
        "load_average": load, "data": dataset.provenance,
        "code": code | {"changed_during_run": code_state() != code},
        "versions": [{k: v for k, v in ver.items() if not k.endswith("_path")} for ver in versions],
        "throughput": tp, "hot_swap": swap, "hot_swap_baseline": swap_baseline, "propagation": prop, "peers": peers,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    serving_report.write(result, args.results)
    say(f"done in {result['bench_seconds']:.0f}s -> {args.results}/serving.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
