"""Peers at matched recall: FAISS HNSW vs hnswlib vs Chroma vs Milvus Lite on the same data.

Every peer builds an HNSW graph with the same shape (M=32 links, efConstruction=200, L2)
from the same base vectors, in its own fresh process (``--worker NAME JOB``), so its build
time and memory are its own. Then the search-time ``ef`` is swept (FAISS ``efSearch``,
hnswlib ``set_ef``, Chroma's ``hnsw.ef_search`` via ``collection.modify``, Milvus Lite's
``search_params={"ef": ...}``) and at each point we measure, on held-out queries that no
index contains:

* recall@10 against exact search (``IndexFlatL2`` ground truth computed once, here);
* batch throughput: all queries in one call (each library's own threading);
* single-query QPS and p50/p99: one query per call, one client, in a loop.

Peers are compared at their smallest ef whose recall reaches the common target (0.95 by
default), so a faster peer cannot win by being less accurate. A peer whose package does
not import is recorded as "not installable: <reason>", never a failed benchmark.

Memory: ``index_rss_bytes`` is the process's RSS once the index is built and the input
array freed, minus its RSS after importing the library (interpreter + library code);
``peak_rss_bytes`` is ``VmHWM`` (includes the input array and any build-time buffers).
Chroma and Milvus Lite run embedded (Chroma's ``PersistentClient`` on a temporary directory;
Milvus Lite, which since 3.x is pure Python around FAISS HNSW segments, behind its
in-process gRPC server), so their numbers include what a caller of those APIs pays on top
of the graph search. Chroma applies a modified ``ef_search`` only when the collection is
loaded again, so each of its sweep points reopens the persisted collection.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K = 10
M, EF_CONSTRUCTION = 32, 200
PEERS = ("faiss", "hnswlib", "chromadb", "milvus-lite")


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------- adapters
# Each returns (build(base) -> None, set_ef(ef) -> None, search(queries) -> int ids (nq, K), version).


def _faiss():
    import faiss

    state: dict = {}

    def build(base):
        index = faiss.IndexHNSWFlat(base.shape[1], M)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        index.add(base)
        state["index"] = index

    def set_ef(ef):
        state["index"].hnsw.efSearch = ef

    def search(q):
        return state["index"].search(q, K)[1]

    return build, set_ef, search, faiss.__version__


def _hnswlib():
    import hnswlib

    state: dict = {}

    def build(base):
        index = hnswlib.Index(space="l2", dim=base.shape[1])
        index.init_index(max_elements=len(base), ef_construction=EF_CONSTRUCTION, M=M)
        index.add_items(base, np.arange(len(base)), num_threads=-1)
        state["index"] = index

    def set_ef(ef):
        state["index"].set_ef(ef)

    def search(q):
        return state["index"].knn_query(q, k=K, num_threads=-1 if len(q) > 1 else 1)[0].astype(np.int64)

    from importlib.metadata import version

    return build, set_ef, search, version("hnswlib")


def _chromadb():
    import chromadb
    from chromadb.api.client import SharedSystemClient
    from chromadb.config import Settings

    path = tempfile.mkdtemp(prefix="chroma-")
    connect = lambda: chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))  # noqa: E731
    state: dict = {"client": connect()}

    def build(base):
        client = state["client"]
        col = client.create_collection("bench", embedding_function=None, configuration={
            "hnsw": {"space": "l2", "max_neighbors": M, "ef_construction": EF_CONSTRUCTION}})
        step = client.get_max_batch_size()
        for i in range(0, len(base), step):
            col.add(ids=[str(j) for j in range(i, min(i + step, len(base)))], embeddings=base[i:i + step])
        state["col"] = col

    def set_ef(ef):
        # ef_search is mutable, but a loaded index keeps the value it was loaded with (checked with
        # chromadb 1.5.9: modify() alone leaves recall unchanged), so reopen the persisted collection.
        state["col"].modify(configuration={"hnsw": {"ef_search": ef}})
        SharedSystemClient.clear_system_cache()
        state["client"] = connect()
        state["col"] = state["client"].get_collection("bench")

    def search(q):
        found = state["col"].query(query_embeddings=q, n_results=K, include=[])["ids"]
        return np.array([[int(i) for i in row] + [-1] * (K - len(row)) for row in found], dtype=np.int64)

    return build, set_ef, search, chromadb.__version__


def _milvus_lite():
    import milvus_lite
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(Path(tempfile.mkdtemp(prefix="milvus-lite-")) / "bench.db"))
    state: dict = {"ef": 64}

    def build(base):
        # The documented Milvus flow: insert, flush, then create the index (built for every segment).
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=base.shape[1])
        client.create_collection("bench", schema=schema)
        for i in range(0, len(base), 5000):
            client.insert("bench", [{"id": j, "vector": base[j]} for j in range(i, min(i + 5000, len(base)))])
        client.flush("bench")
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type="HNSW", metric_type="L2",
                         params={"M": M, "efConstruction": EF_CONSTRUCTION})
        client.create_index("bench", params)
        client.load_collection("bench")

    def set_ef(ef):
        state["ef"] = ef

    def search(q):
        res = client.search("bench", data=q.tolist(), limit=K, search_params={"metric_type": "L2", "params": {"ef": state["ef"]}})
        return np.array([[h["id"] for h in row] + [-1] * (K - len(row)) for row in res], dtype=np.int64)

    return build, set_ef, search, getattr(milvus_lite, "__version__", "?")


ADAPTERS = {"faiss": _faiss, "hnswlib": _hnswlib, "chromadb": _chromadb, "milvus-lite": _milvus_lite}


def worker(name: str, job: dict) -> dict:
    try:
        build, set_ef, search, version = ADAPTERS[name]()
    except ImportError as exc:
        return {"error": f"not installable: {type(exc).__name__}: {exc}"}
    rss_imported = _status("VmRSS")
    base = np.load(job["base"])
    queries, truth = np.load(job["queries"]), np.load(job["truth"])
    t0 = time.perf_counter()
    build(base)
    build_seconds = time.perf_counter() - t0
    del base
    gc.collect()
    rss_index = _status("VmRSS")
    sweep = []
    single = queries[: job["single_queries"]]
    for ef in job["efs"]:
        set_ef(ef)
        search(queries[:20])  # warm caches after the parameter change
        t = time.perf_counter()
        found = search(queries)
        batch_seconds = time.perf_counter() - t
        hits = sum(len(set(f[f >= 0].tolist()) & set(g.tolist())) for f, g in zip(found, truth[:, :K]))
        lat = []
        for q in single:
            t = time.perf_counter()
            search(q[None, :])
            lat.append((time.perf_counter() - t) * 1000)
        p50, p99 = np.percentile(lat, [50, 99])
        sweep.append({"ef": ef, "recall_at_10": hits / (K * len(queries)), "batch_qps": len(queries) / batch_seconds,
                      "single_qps": len(lat) / (sum(lat) / 1000), "single_p50_ms": float(p50), "single_p99_ms": float(p99)})
    return {"version": version, "build_seconds": build_seconds, "rss_after_import_bytes": rss_imported,
            "index_rss_bytes": rss_index - rss_imported, "peak_rss_bytes": _status("VmHWM"), "sweep": sweep}


def matched(sweep: list[dict], target: float) -> dict | None:
    """The cheapest sweep point reaching ``target`` recall, else the most accurate one (flagged)."""
    if not sweep:
        return None
    reached = [p for p in sweep if p["recall_at_10"] >= target]
    if reached:
        return min(reached, key=lambda p: p["ef"]) | {"reached_target": True}
    return max(sweep, key=lambda p: p["recall_at_10"]) | {"reached_target": False}


def run_peers(paths: dict[str, Path], efs: list[int], single_queries: int, target: float, work: Path,
              names: list[str], say=print) -> list[dict]:
    """Each peer in its own process; a crash or a missing package becomes that peer's ``error``."""
    rows = []
    for name in names:
        job = {**{k: str(v) for k, v in paths.items()}, "efs": efs, "single_queries": single_queries}
        job_path, out_path = work / f"peer-{name}.json", work / f"peer-{name}-out.json"
        job_path.write_text(json.dumps(job))
        say(f"peer {name}: build M={M} efConstruction={EF_CONSTRUCTION}, sweep ef {efs[0]}..{efs[-1]}")
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--worker", name, str(job_path), str(out_path)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not out_path.exists():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            row = {"error": f"worker exited {done.returncode}: {tail[:300]}"}
        else:
            row = json.loads(out_path.read_text())
        row |= {"peer": name, "process_seconds": time.perf_counter() - t0}
        if "sweep" in row:
            row["matched"] = matched(row["sweep"], target)
            m = row["matched"]
            say(f"peer {name}: build {row['build_seconds']:.1f}s; at ef={m['ef']} recall {m['recall_at_10']:.3f}, "
                f"{m['single_qps']:.0f} single-query QPS, {m['batch_qps']:.0f} batch QPS")
        else:
            say(f"peer {name}: {row['error']}")
        rows.append(row)
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        result = worker(sys.argv[2], json.loads(Path(sys.argv[3]).read_text()))
        Path(sys.argv[4]).write_text(json.dumps(result))
        sys.exit(0)
    sys.exit("usage: serving_peers.py --worker NAME JOB.json OUT.json (run by serving_bench.py)")
