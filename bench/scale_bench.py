"""Scale-out benchmark: one index of 1,000,000 x 64 vectors built and served as 1, 2 and 4 shards.

Everything measured is the product's own processes on 127.0.0.1, run the way the
operator runs them (see docs/scale-out.md):

* **Build.** shards=1 is one ordinary ``faiss-index-builder`` run (the unsharded pod).
  shards=N is the sharded flow: one ``train`` process, N ``shard`` processes (what the
  Indexed Job's pods run, ``JOB_COMPLETION_INDEX`` set) run at most ``--parallel`` at a
  time (the machine's cores), and one ``finalize`` process. Peak RSS of every process
  is its kernel high-water mark (VmHWM, sampled while it runs); wall time is train start to
  manifest committed. ``shardMerge: Never`` so the fan-out is what serves.
* **Serve.** shards=1: one ``faiss-index-server``. shards=N: N shard servers
  (``FAISS_SHARD``) and one fan-out (``FAISS_SERVING_MODE=fanout``). Peak RSS per server
  process (VmHWM), recall@10 of the HTTP answers for held-out queries (not in the index)
  against exact search over all vectors, and QPS / p50 / p99 of single-vector requests
  from ``--clients`` concurrent clients for ``--seconds``.

Data: a mixture of 4,096 overlapping Gaussian clusters with random scales in 64 dimensions
(structure like real embeddings: IVF lists are unbalanced, neighbours are not uniform, and
many true neighbours sit in other lists, so recall@10 is well below 1), seeded. The
index is IVF-Flat, nlist 1024, nprobe 32 (HNSW over 1M on this 2-core machine would take
most of the run per configuration; the per-shard memory law is the same).

    python bench/scale_bench.py            # 1,000,000 vectors (about an hour on a loaded 2-core machine)
    python bench/scale_bench.py --quick    # 100,000 vectors, a few minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from serving_harness import VENV_BIN, Moto, fake_aws_env, free_port, get_json, memory_of
from serving_load import encode_bodies, http_load, summarize

RESULTS = Path(__file__).resolve().parent / "results"
BUCKET, NAMESPACE, HORIZON, PREFIX, K = "bench-serving", "bench", "6h", "faiss-indexes", 10


def say(message: str) -> None:
    print(f"[scale] {time.strftime('%H:%M:%S')} {message}", flush=True)


def make_data(n: int, dim: int, queries: int, path: Path, seed: int = 3) -> np.ndarray:
    """Clustered vectors written to ``path`` (.npy) in chunks; returns the held-out queries."""
    rng = np.random.default_rng(seed)
    # Overlapping clusters: many true neighbours lie in other IVF lists, so recall@10 < 1.
    centers = rng.standard_normal((4096, dim)).astype(np.float32)
    scales = rng.uniform(0.5, 1.0, size=4096).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    step = 100_000
    for start in range(0, n, step):
        rows = min(step, n - start)
        which = rng.integers(0, 4096, size=rows)
        out[start:start + rows] = centers[which] + rng.standard_normal((rows, dim)).astype(np.float32) * scales[which, None]
    out.flush()
    del out
    which = rng.integers(0, 4096, size=queries)
    return (centers[which] + rng.standard_normal((queries, dim)).astype(np.float32) * scales[which, None]).astype(np.float32)


def ground_truth(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatL2(data.shape[1])
    for start in range(0, data.shape[0], 200_000):
        index.add(np.ascontiguousarray(data[start:start + 200_000]))
    return index.search(queries, K)[1]


def spec_for(data: Path, dim: int, shards: int, endpoint: str, nlist: int) -> dict:
    return {"horizon": HORIZON, "dimension": dim, "indexType": "IVF", "parameters": {"nlist": nlist, "nprobe": 32},
            "source": {"file": {"path": str(data)}}, "shards": shards, "shardMerge": "Never",
            "storage": {"bucket": BUCKET, "endpoint": endpoint, "prefix": PREFIX},
            "validation": {"k": K, "minRecall": 0.0, "queries": 500}}


def peak_rss(pid: int) -> int:
    """VmHWM of a running process (bytes); 0 once it is gone.

    Not ``wait4``'s ``ru_maxrss``: on Linux a child's maxrss starts from the RSS of the
    process that forked it (the benchmark itself, holding the data), which would hide the
    builder's own peak. VmHWM belongs to the address space created at exec.
    """
    return memory_of(pid).get("VmHWM", 0)


class Child:
    """A builder process whose VmHWM is sampled until it exits."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.out = open(log, "a")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(args, env=env, stdout=self.out, stderr=subprocess.STDOUT)
        self.peak = 0

    def poll(self) -> dict | None:
        self.peak = max(self.peak, peak_rss(self.proc.pid))
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if not pid:
            return None
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.out.close()
        if self.proc.returncode != 0:
            raise RuntimeError(f"{self.proc.args} exited {self.proc.returncode}; see {self.out.name}")
        return {"seconds": time.perf_counter() - self.t0, "peak_rss_bytes": self.peak,
                "cpu_seconds": usage.ru_utime + usage.ru_stime}


def run_process(args: list[str], env: dict[str, str], log: Path) -> dict:
    """Run to completion; wall seconds, peak RSS (sampled VmHWM) and CPU seconds."""
    child = Child(args, env, log)
    while (done := child.poll()) is None:
        time.sleep(0.05)
    return done


def build(index: str, spec: dict, work: Path, parallel: int) -> dict:
    from indexops_api.build_request import BuildRequest
    from indexops_api.layout import build_key, version_id
    from indexops_api.spec import FaissIndexSpec

    parsed = FaissIndexSpec.model_validate(spec)
    key = build_key(parsed)
    version = version_id(datetime.now(timezone.utc), key)
    request = BuildRequest(index=index, namespace=NAMESPACE, version=version, build_key=key, spec=parsed)
    env = {**os.environ, "FAISS_BUILD_REQUEST": json.dumps(request.to_wire()),
           "TERMINATION_MESSAGE_PATH": str(work / f"term-{index}")}
    cmd = [str(VENV_BIN / "faiss-index-builder"), "--log-level", "WARNING", "--workdir", str(work)]
    log = work / f"build-{index}.log"
    t0 = time.perf_counter()
    if parsed.shards == 1:
        pods = {"unsharded": run_process(cmd, env, log)}
    else:
        pods = {"train": run_process(cmd, {**env, "FAISS_BUILD_STAGE": "train"}, log)}
        pending = list(range(parsed.shards))
        running: dict[int, Child] = {}
        while pending or running:
            while pending and len(running) < parallel:
                shard = pending.pop(0)
                running[shard] = Child(cmd, {**env, "FAISS_BUILD_STAGE": "shard", "JOB_COMPLETION_INDEX": str(shard)}, log)
            for shard, child in list(running.items()):
                done = child.poll()
                if done is not None:
                    pods[f"shard-{shard}"] = done
                    del running[shard]
            time.sleep(0.05)
        pods["finalize"] = run_process(cmd, {**env, "FAISS_BUILD_STAGE": "finalize"}, log)
    wall = time.perf_counter() - t0
    return {"version": version, "wall_seconds": wall, "pods": pods}


class Proc:
    """A serving process (plain server, shard server or fan-out) on its own port."""

    def __init__(self, name: str, index: str, endpoint: str, work: Path, extra: dict[str, str]):
        from indexops_api.layout import pointer_key

        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "FAISS_POINTER_BUCKET": BUCKET, "FAISS_POINTER_KEY": pointer_key(PREFIX, NAMESPACE, index, HORIZON),
               "FAISS_S3_ENDPOINT_URL": endpoint, "POD_IP": "127.0.0.1", "FAISS_SERVING_PORT": str(self.port),
               "FAISS_CACHE_DIR": str(work / f"cache-{name}"), "FAISS_POLL_SECONDS": "1", "FAISS_DRAIN_SECONDS": "0",
               "FAISS_MEMORY_HEADROOM_FACTOR": "0", **extra}
        self.log = open(work / f"{name}.log", "w")
        self.proc = subprocess.Popen([str(VENV_BIN / "faiss-index-server"), "--log-level", "WARNING"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}")
            try:
                if get_json(f"{self.url}/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready within {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def point(endpoint: str, index: str, version: str) -> None:
    from indexops_api.layout import pointer_key
    from indexops_api.pointer import ServingPointer
    from indexops_store import ArtifactStore, make_client

    store = ArtifactStore(make_client(endpoint), BUCKET)
    store.write_pointer(pointer_key(PREFIX, NAMESPACE, index, HORIZON),
                        ServingPointer(generation=1, stable_version=version, updated_at=datetime.now(timezone.utc).isoformat()),
                        etag=None)


def serve_and_measure(index: str, shards: int, version: str, endpoint: str, work: Path, queries: np.ndarray,
                      truth: np.ndarray, clients: int, seconds: float) -> dict:
    point(endpoint, index, version)
    procs: list[Proc] = []
    try:
        if shards == 1:
            front = Proc(f"{index}-server", index, endpoint, work, {})
            procs.append(front)
        else:
            for shard in range(shards):
                procs.append(Proc(f"{index}-shard-{shard}", index, endpoint, work,
                                  {"FAISS_SHARD": str(shard), "FAISS_SHARDS": str(shards)}))
            for p in procs:
                p.wait_ready()
            front = Proc(f"{index}-fanout", index, endpoint, work,
                         {"FAISS_SERVING_MODE": "fanout", "FAISS_SHARD_URLS": ",".join(p.url for p in procs)})
            procs.append(front)
        front.wait_ready()
        found = []
        import urllib.request
        for start in range(0, len(queries), 100):
            body = json.dumps({"vectors": queries[start:start + 100].tolist(), "k": K}).encode()
            req = urllib.request.Request(f"{front.url}/v1/search", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as resp:
                found += json.loads(resp.read())["ids"]
        recall = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth)) / (K * len(truth))
        bodies = encode_bodies(queries, 1, K)
        asyncio.run(http_load(f"{front.url}/v1/search", bodies, clients, duration=3))  # warm-up
        load = summarize(asyncio.run(http_load(f"{front.url}/v1/search", bodies, clients, duration=seconds)))
        memory = {p.name: memory_of(p.proc.pid).get("VmHWM", 0) for p in procs}
    finally:
        for p in procs:
            p.stop()
    return {"recall_at_10": recall, "load": load, "peak_rss_bytes": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 vectors instead of 1,000,000")
    parser.add_argument("--vectors", type=int)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--parallel", type=int, default=2, help="slice pods run at once (the machine's cores)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    n = args.vectors or (100_000 if args.quick else 1_000_000)
    nlist = 1024 if n >= 500_000 else 256
    shard_counts = [int(s) for s in args.shards.split(",")]
    fake_aws_env()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="faiss-scale-") as tmp:
        work = Path(tmp)
        say(f"generating {n} x {args.dim} clustered vectors")
        data_path = work / "vectors.npy"
        queries = make_data(n, args.dim, 1000, data_path)
        data = np.load(data_path, mmap_mode="r")
        t0 = time.perf_counter()
        truth = ground_truth(data, queries)
        say(f"exact ground truth of 1000 held-out queries in {time.perf_counter() - t0:.1f}s")
        moto = Moto(work / "moto.log")
        runs = []
        try:
            for shards in shard_counts:
                index = f"scale-s{shards}"
                say(f"building {shards} shard(s)")
                built = build(index, spec_for(data_path, args.dim, shards, moto.endpoint, nlist), work, args.parallel)
                say(f"built {built['version']} in {built['wall_seconds']:.1f}s; serving")
                served = serve_and_measure(index, shards, built["version"], moto.endpoint, work, queries, truth,
                                           args.clients, args.seconds)
                say(f"{shards} shard(s): recall@10 {served['recall_at_10']:.4f}, QPS {served['load'].get('qps', 0):.0f}, "
                    f"p99 {served['load'].get('p99_ms', 0):.1f} ms")
                runs.append({"shards": shards, "build": built, "serve": served})
        finally:
            moto.stop()
    result = {
        "vectors": n, "dimension": args.dim, "index": f"IVF{nlist},Flat nprobe=32", "queries": 1000, "k": K,
        "clients": args.clients, "seconds": args.seconds, "parallel_slice_pods": args.parallel, "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg()},
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(), "total_seconds": time.time() - started,
        "self_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    from scale_report import write_reports

    stem = "scale" if not args.quick else "scale-quick"
    write_reports(result, args.out, stem)
    say(f"wrote {args.out / stem}.{{json,md,png}}")


if __name__ == "__main__":
    main()
