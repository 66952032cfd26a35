"""The builder benchmark's measured child processes: raw FAISS and autofaiss builds.

``builder_bench.py`` runs each in a fresh process (``python builder_workers.py --worker KIND
JOB.json``; autofaiss's in its own venv, so this file imports only the stdlib and numpy at the
top) and reads its wall time, peak RSS (VmHWM) and CPU seconds (wait4 rusage).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K = 10


def score(index, queries: np.ndarray, truth: np.ndarray, ids: np.ndarray | None = None) -> dict:
    """recall@K on the held-out queries (batch search) and single-query latency percentiles.

    ``ids`` maps index positions to row ids (a published version's ids.npy: the builder adds
    its held-out validation rows last, so positions are not row numbers).
    """
    _, found = index.search(queries, K)
    if ids is not None:
        found = np.where(found >= 0, ids[np.clip(found, 0, None)], -1)
    hits = sum(len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth[:, :K]))
    for q in queries[:5]:
        index.search(q[None, :], K)
    seconds = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q[None, :], K)
        seconds.append(time.perf_counter() - t0)
    p50, p99 = np.percentile(np.array(seconds) * 1000, [50, 99])
    return {"recall_at_10": hits / (K * len(queries)), "p50_ms": float(p50), "p99_ms": float(p99)}


def worker_raw(job: dict) -> dict:
    import faiss

    base = np.load(job["base"], mmap_mode="r")
    metric = faiss.METRIC_L2 if job["metric"] == "L2" else faiss.METRIC_INNER_PRODUCT
    t0, c0 = time.perf_counter(), time.process_time()
    index = faiss.index_factory(base.shape[1], job["factory"], metric)
    if "efConstruction" in job.get("build_parameters", {}):
        _set_ef_construction(faiss, index, job["build_parameters"]["efConstruction"])
    _no_polysemous_training(faiss, index)
    index.train(base)
    trained = time.perf_counter() - t0
    index.add(base)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    space = faiss.ParameterSpace()
    for name, value in job.get("search_parameters", {}).items():
        space.set_index_parameter(index, name, value)
    out = {"train_seconds": trained, "seconds": seconds, "cpu_seconds": cpu, "factory": job["factory"]}
    return out | score(index, np.load(job["queries"]), np.load(job["truth"]))


def _set_ef_construction(faiss, index, value: int) -> None:
    """efConstruction on the HNSW level of an index, whatever wraps it (PreTransform, ...)."""
    node = faiss.downcast_index(index)
    while node is not None:
        if hasattr(node, "hnsw"):
            node.hnsw.efConstruction = value
            return
        node = faiss.downcast_index(node.index) if hasattr(node, "index") else None


def _no_polysemous_training(faiss, index) -> None:
    """Switch off PQ polysemous training, as the builder does (it only serves Hamming-filtered search).

    Left on, it dominates a raw IVFPQ build (570 s of a 11k-row build in the previous run), which
    would compare the builder with a slower raw build than anyone would run.
    """
    stack = [index]
    while stack:
        node = faiss.downcast_index(stack.pop())
        if hasattr(node, "do_polysemous_training"):
            node.do_polysemous_training = False
        for attr in ("index", "base_index", "storage"):
            child = getattr(node, attr, None)
            if child is not None and isinstance(child, faiss.Index):
                stack.append(child)


def worker_autofaiss(job: dict) -> dict:
    import logging

    from autofaiss import build_index

    base = np.load(job["base"])
    t0 = time.perf_counter()
    index, info = build_index(
        embeddings=base, save_on_disk=False, metric_type="l2", min_nearest_neighbors_to_retrieve=K,
        max_index_memory_usage=job["max_memory"], current_memory_available=job["memory_available"],
        max_index_query_time_ms=job["max_query_ms"], nb_cores=os.cpu_count(), verbose=logging.WARNING,
    )
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "factory": (info or {}).get("index_key"), "info": info}
    return out | score(index, np.load(job["queries"]), np.load(job["truth"]))


def run_measured(argv: list[str], env: dict | None = None) -> tuple[int, float, int, str]:
    """(exit code, wall seconds, peak RSS bytes, stderr tail) of one child process.

    Peak RSS is the child's own ``VmHWM`` (high-water mark of its post-exec address space),
    polled from /proc until it exits. ``ru_maxrss`` from ``wait4``/``RUSAGE_CHILDREN`` is
    useless here: Linux folds the forking parent's RSS into it, so every child would report
    this (large) orchestrating process.
    """
    with tempfile.TemporaryFile("w+") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stderr=stderr, text=True)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # this child's own rusage, unlike RUSAGE_CHILDREN
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            peak = max(peak, _vm_hwm(proc.pid))
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        LAST_CPU_SECONDS[0] = usage.ru_utime + usage.ru_stime
        stderr.seek(0)
        err = stderr.read()
    if err.strip():
        sys.stderr.write(err[-4000:])
    return proc.returncode, seconds, peak, err[-2000:]


LAST_CPU_SECONDS = [0.0]  # user+system CPU of the last run_measured child (robust to other load on the machine)


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_worker(kind: str, job: dict, work: Path, python: str = sys.executable) -> dict:
    job_path, out_path = work / f"{kind}-job.json", work / f"{kind}-out.json"
    job_path.write_text(json.dumps(job | {"out": str(out_path)}))
    env = {**os.environ, "TQDM_DISABLE": "1"}  # autofaiss progress bars
    code, wall, rss, err = run_measured([python, __file__, "--worker", kind, str(job_path)], env)
    if code != 0:
        return {"error": f"{kind} worker exited {code}: {err.strip().splitlines()[-1] if err.strip() else ''}"}
    return json.loads(out_path.read_text()) | {"process_seconds": wall, "peak_rss_bytes": rss,
                                               "process_cpu_seconds": LAST_CPU_SECONDS[0]}


if __name__ == "__main__":
    kind, job_file = sys.argv[sys.argv.index("--worker") + 1], sys.argv[sys.argv.index("--worker") + 2]
    job = json.loads(Path(job_file).read_text())
    out = worker_raw(job) if kind == "raw" else worker_autofaiss(job)
    Path(job["out"]).write_text(json.dumps(out, default=str))
