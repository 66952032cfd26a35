"""``make bench``: walking-skeleton benchmarks, each against a baseline in the same run.

1. Build: raw faiss HNSW train+add on the same vectors vs the builder's end-to-end run
   (load, validate, build, measure recall, upload to a real S3 server, manifest) -> ratio.
2. Serve: raw in-process faiss single-query search vs ``POST /v1/search`` on the
   ``faiss-index-server`` process that loaded the published version -> latency ratio.

Data: clustered Gaussian vectors (seeded). Results go to ``bench/results/skeleton.{json,md}``.
Numbers are for this machine and this run only; compare ratios, not absolute values.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import faiss
import numpy as np

from indexops_api.build_request import BuildRequest
from indexops_api.layout import build_key, pointer_key, version_id
from indexops_api.pointer import ServingPointer
from indexops_api.spec import FaissIndexSpec
from indexops_store import ArtifactStore, make_client

from hack.localstack import sample_embeddings

ROOT = Path(__file__).resolve().parents[1]

N = int(os.environ.get("BENCH_N", "50000"))
DIM = int(os.environ.get("BENCH_DIM", "64"))
QUERIES = int(os.environ.get("BENCH_QUERIES", "500"))
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    arr = np.array(samples_ms)
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)), "mean_ms": float(arr.mean())}


def bench_build(vectors: np.ndarray, path: Path, endpoint: str) -> tuple[dict, BuildRequest]:
    t0 = time.perf_counter()
    raw = faiss.IndexHNSWFlat(DIM, 32)
    raw.hnsw.efConstruction = 200
    raw.add(vectors)
    raw_seconds = time.perf_counter() - t0

    spec = FaissIndexSpec.model_validate({
        "horizon": "6h", "dimension": DIM, "indexType": "HNSW",
        "parameters": {"m": 32, "efConstruction": 200, "efSearch": 64},
        "source": {"file": {"path": str(path)}},
        "storage": {"bucket": "bench-indexes", "endpoint": endpoint},
    })
    key = build_key(spec)
    from datetime import datetime, timezone

    request = BuildRequest(index="bench", namespace="bench", version=version_id(datetime.now(timezone.utc), key), build_key=key, spec=spec)
    env = {**os.environ, "FAISS_BUILD_REQUEST": json.dumps(request.to_wire()), "TERMINATION_MESSAGE_PATH": str(path.parent / "term")}
    t0 = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "faiss-index-builder"), "--log-level", "WARNING"], env=env, check=True)
    builder_seconds = time.perf_counter() - t0
    return {
        "raw_faiss_add_seconds": raw_seconds,
        "builder_end_to_end_seconds": builder_seconds,
        "ratio_builder_over_raw": builder_seconds / raw_seconds,
    }, request


def bench_serve(vectors: np.ndarray, request: BuildRequest, endpoint: str, workdir: Path) -> dict:
    spec = request.spec
    store = ArtifactStore(make_client(endpoint), spec.storage.bucket)
    key = pointer_key(spec.storage.prefix, request.namespace, request.index, spec.horizon)
    store.write_pointer(key, ServingPointer(generation=1, stable_version=request.version, updated_at="bench"), etag=None)
    port = free_port()
    env = {**os.environ, "FAISS_POINTER_BUCKET": spec.storage.bucket, "FAISS_POINTER_KEY": key,
           "FAISS_S3_ENDPOINT_URL": endpoint, "POD_IP": "127.0.0.1", "FAISS_SERVING_PORT": str(port),
           "FAISS_CACHE_DIR": str(workdir / "cache"), "FAISS_POLL_SECONDS": "1"}
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "faiss-index-server"), "--log-level", "WARNING"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/readyz", timeout=1).status == 200:
                    break
            except Exception:
                time.sleep(0.2)
        rng = np.random.default_rng(3)
        queries = vectors[rng.integers(0, len(vectors), QUERIES)] + np.float32(0.01)

        raw = faiss.IndexHNSWFlat(DIM, 32)
        raw.hnsw.efConstruction = 200
        raw.add(vectors)
        raw.hnsw.efSearch = 64
        raw_ms = []
        for q in queries:
            t0 = time.perf_counter()
            raw.search(q[None, :], 10)
            raw_ms.append((time.perf_counter() - t0) * 1000)

        http_ms = []
        for q in queries:
            body = json.dumps({"vectors": [q.tolist()], "k": 10}).encode()
            req = urllib.request.Request(f"{url}/v1/search", data=body, headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
            http_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        server.terminate()
        server.wait(15)
    raw_p, http_p = percentiles(raw_ms), percentiles(http_ms)
    return {
        "raw_faiss_in_process": raw_p,
        "http_single_query": http_p,
        "ratio_http_over_raw_p50": http_p["p50_ms"] / raw_p["p50_ms"],
        "ratio_http_over_raw_p99": http_p["p99_ms"] / raw_p["p99_ms"],
    }


def main() -> int:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    make_client(endpoint).create_bucket(Bucket="bench-indexes")
    vectors, _ = sample_embeddings(N, DIM, seed=5)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            path = work / "vectors.npy"
            np.save(path, vectors)
            print(f"[bench] build: {N}x{DIM} HNSW(m=32, efConstruction=200)", flush=True)
            build, request = bench_build(vectors, path, endpoint)
            print(f"[bench] serve: {QUERIES} single-query searches, HTTP vs in-process", flush=True)
            serve = bench_serve(vectors, request, endpoint, work)
    finally:
        moto.stop()
    result = {"n": N, "dim": DIM, "queries": QUERIES, "faiss": faiss.__version__, "cores": os.cpu_count(), "build": build, "serve": serve}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "skeleton.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# Walking-skeleton benchmark ({N}x{DIM}, {os.cpu_count()} cores, faiss {faiss.__version__})",
        "",
        "| measure | baseline | product | ratio |",
        "|---|---|---|---|",
        f"| HNSW build | raw faiss add {build['raw_faiss_add_seconds']:.2f}s | builder end-to-end {build['builder_end_to_end_seconds']:.2f}s | {build['ratio_builder_over_raw']:.2f}x |",
        f"| single-query p50 | in-process {serve['raw_faiss_in_process']['p50_ms']:.3f}ms | HTTP {serve['http_single_query']['p50_ms']:.3f}ms | {serve['ratio_http_over_raw_p50']:.1f}x |",
        f"| single-query p99 | in-process {serve['raw_faiss_in_process']['p99_ms']:.3f}ms | HTTP {serve['http_single_query']['p99_ms']:.3f}ms | {serve['ratio_http_over_raw_p99']:.1f}x |",
        "",
        "The builder's time includes loading and validating the source, measuring recall against exact",
        "search on held-out queries, latency sampling, uploading to S3 and writing the manifest.",
        "HTTP latency is one request per new connection (urllib, no keep-alive) plus JSON encoding:",
        "it is the cost a naive client sees, not the server's search time.",
    ]
    (RESULTS / "skeleton.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
