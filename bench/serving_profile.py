"""Where a single-vector request's time goes: py-spy on a real ``faiss-index-server`` under load.

Publishes one version (as ``serving_bench.py`` does), starts one server, drives it with
closed-loop clients (JSON or binary, N clients): first without a profiler, to account the
CPU time per request of the server process (/proc) and of the load generator (getrusage),
then under ``py-spy record --nonblocking`` (idle threads excluded) for the duration. The
folded stacks are summarised two ways: share of samples per top-level phase (the event
loop's HTTP handling, FAISS search, the rest of the search thread) and the functions with
the most samples at the leaf. Written to ``bench/results/serving-profile.{txt,json}``.

    python bench/serving_profile.py --quick --clients 1 --format binary

Needs ``py-spy`` (``uv pip install py-spy``); a measuring tool, not a dependency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from serving_harness import ROOT, VENV_BIN, K, Moto, Server, fake_aws_env, publish, say, write_pointer
from serving_load import BINARY, JSON, binary_url, encode_binary_bodies, encode_bodies, http_load, summarize

PHASES = (  # first match wins, tested against the whole folded stack
    ("faiss search (C++)", ("faiss::", "IndexHNSW", "hnsw", "search_arrays")),
    ("batching + runtime (search thread)", ("search_many", "_search_group", "runtime.py")),
    ("JSON/binary parse", ("request.py",)),
    ("answer encoding", ("_encode_json", "_encode_binary", "orjson")),
    ("metrics", ("prometheus_client", "analysis.py")),
    ("aiohttp + event loop", ("aiohttp", "asyncio", "uvloop", "web_protocol", "_run_once")),
)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def classify(stack: str) -> str:
    for name, needles in PHASES:
        if any(n in stack for n in needles):
            return name
    return "other"


def main(argv: list[str] | None = None) -> int:
    import data

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--format", choices=("json", "binary"), default="binary")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    n = args.n or (20_000 if args.quick else 100_000)
    spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    dataset = data.load(n, args.dim, 1000, progress=say)
    fake_aws_env()
    with tempfile.TemporaryDirectory(prefix="serving-profile-") as tmp:
        work = Path(tmp)
        np.save(work / "base.npy", dataset.base)
        moto = Moto(work / "moto.log")
        try:
            version = publish(work / "base.npy", args.dim, 64, moto.endpoint, work)
            server = Server("server", moto.endpoint, work, 2.0)
            try:
                server.wait_listening()
                write_pointer(moto.endpoint, version["version"])
                server.wait_serving(version["version"])
                url = f"{server.url}/v1/search"
                if args.format == "binary":
                    bodies, headers, url = encode_binary_bodies(dataset.queries, 1), BINARY, binary_url(url, K, args.dim)
                else:
                    bodies, headers = encode_bodies(dataset.queries, 1, K), JSON
                asyncio.run(http_load(url, bodies, args.clients, duration=1.0, headers=headers))
                folded = work / "folded.txt"
                # CPU accounting first, without the profiler: server CPU and client CPU per request.
                cpu0, own0, t0 = cpu_seconds(server.pid), own_cpu_seconds(), time.perf_counter()
                plain = summarize(asyncio.run(http_load(url, bodies, args.clients, duration=args.seconds, headers=headers)))
                wall = time.perf_counter() - t0
                server_cpu, client_cpu = cpu_seconds(server.pid) - cpu0, own_cpu_seconds() - own0
                rec = subprocess.Popen([spy, "record", "--pid", str(server.pid), "--duration", str(int(args.seconds)),
                                        "--rate", "250", "--nonblocking", "--format", "raw", "--output", str(folded)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(1.0)
                load = summarize(asyncio.run(http_load(url, bodies, args.clients, duration=args.seconds - 2, headers=headers)))
                _, err = rec.communicate(timeout=120)
                if rec.returncode != 0 or not folded.exists():
                    raise RuntimeError(f"py-spy failed: {err[-2000:]}")
            finally:
                server.stop()
        finally:
            moto.stop()
        phases: Counter[str] = Counter()
        leaves: Counter[str] = Counter()
        total = 0
        for line in folded.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            c = int(count)
            total += c
            phases[classify(stack)] += c
            leaves[stack.split(";")[-1][:140]] += c
    per = plain["requests"] or 1
    accounting = {"requests": plain["requests"], "qps": plain["qps"], "wall_ms_per_request": wall * 1000 / per * args.clients,
                  "server_cpu_ms_per_request": server_cpu * 1000 / per, "client_cpu_ms_per_request": client_cpu * 1000 / per,
                  "p50_ms": plain["p50_ms"]}
    out = {"n": n, "dim": args.dim, "clients": args.clients, "format": args.format, "seconds": args.seconds,
           "cpu_accounting": accounting, "load_while_profiled": load, "samples": total,
           "phases": {k: round(v / total, 4) for k, v in phases.most_common()},
           "top_leaves": [(k, round(v / total, 4)) for k, v in leaves.most_common(25)]}
    args.results.mkdir(parents=True, exist_ok=True)
    name = f"serving-profile-{args.format}-c{args.clients}"
    (args.results / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [f"# py-spy: faiss-index-server, {args.format} single-vector requests, {args.clients} client(s), {n:,} x {args.dim}",
             "", f"Without the profiler: {accounting['requests']:,} requests, {accounting['qps']:.0f} req/s, p50 "
             f"{accounting['p50_ms']:.2f} ms; per request: wall {accounting['wall_ms_per_request']:.3f} ms x clients, "
             f"server CPU {accounting['server_cpu_ms_per_request']:.3f} ms, client (load generator) CPU "
             f"{accounting['client_cpu_ms_per_request']:.3f} ms (from /proc and getrusage).", "",
             f"With py-spy (--nonblocking, 250 Hz): {load['requests']:,} requests, {load['qps']:.0f} req/s; {total:,} samples "
             "of server threads with work.", "", "| phase | share of samples |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in out["phases"].items()]
    lines += ["", "| leaf frame | share |", "|---|---|"] + [f"| `{k}` | {v:.1%} |" for k, v in out["top_leaves"]]
    (args.results / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
