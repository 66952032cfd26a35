"""``make bench``: every index type built by the builder vs raw faiss vs autofaiss, one run.

For each index type the spec declares (Flat, IVF, HNSW, IVFPQ, OPQ+HNSW, Auto):

1. **builder**: the ``faiss-index-builder`` console script, end to end, with a file source
   and storage on a moto S3 server on 127.0.0.1 (load, checks, train, add, its own
   recall/latency measurement, upload, manifest). Its manifest gives the resolved
   parameters, the factory, sizeBytes, timings and its own recall and p99.
2. **raw faiss**: the same factory string the manifest records, built directly
   (``index_factory`` -> ``train`` -> ``add``) in a fresh process; ratio builder/raw.
3. Both indexes are scored the same way here: recall@10 against exact search
   (``IndexFlat``) on held-out queries that neither index contains, and the p99 of
   single-query searches with the manifest's search parameters.

A type the installed builder cannot build (it exits 1 with e.g. "unsupported indexType")
is reported as skipped with the builder's message, and no raw number is invented for it.
**autofaiss** (``autofaiss.build_index``, same data, same memory budget, 10 results) runs
in its own virtualenv, because autofaiss pins ``numpy<2`` and the project is on numpy 2 /
faiss-cpu 1.15; the venv is made with uv on first use (``AUTOFAISS_PINS``) and cached.

Every build runs in its own process so peak RSS (its ``VmHWM``, polled from /proc) is per
build; it includes the interpreter, faiss and the memory-mapped pages of the data.
Numbers are for this machine and this run only. Nothing here asserts on timings.
Data: ``bench/data.py`` (LSA embeddings of real text; see its docstring).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from builder_workers import K, LAST_CPU_SECONDS, run_measured, run_worker, score

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
TYPES = ["HNSW", "HNSW/SQ8", "IVF/SQ8", "IVF", "Auto", "Flat", "IVFPQ", "OPQ+HNSW"]

BUCKET = "bench-indexes"
AUTOFAISS_VENV = Path.home() / ".cache" / "faiss-index-operator" / "bench" / "autofaiss-venv"
# autofaiss 2.18 requires numpy<2; pyarrow>=16 (pulled by embedding-reader) requires numpy>=2.
AUTOFAISS_PINS = ["autofaiss==2.18.0", "faiss-cpu==1.15.1", "numpy==1.26.4", "pyarrow==15.0.2"]

def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)

# --------------------------------------------------------------------------- workers
# Run as `python builder_bench.py --worker raw|autofaiss JOB.json` in a fresh process (the
# autofaiss one under another interpreter), so they import only numpy and faiss.

# --------------------------------------------------------------------------- builder

def split_type(name: str) -> tuple[str, str | None]:
    """``"HNSW/SQ8"`` -> (``"HNSW"``, ``"SQ8"``): an index type and its ``parameters.encoding``, if any."""
    index_type, _, encoding = name.partition("/")
    return index_type, encoding or None

def run_builder(type_name: str, n: int, dim: int, data: Path, endpoint: str, work: Path, args) -> dict:
    """One end-to-end builder run; the manifest's numbers plus wall time and peak RSS."""
    index_type, encoding = split_type(type_name)
    from indexops_api.build_request import BuildRequest
    from indexops_api.layout import build_key, version_prefix
    from indexops_api.spec import FaissIndexSpec
    from indexops_store import ArtifactStore, make_client

    raw_spec = {
        "horizon": "6h", "dimension": dim, "indexType": index_type,
        "source": {"file": {"path": str(data)}},
        "storage": {"bucket": BUCKET, "endpoint": endpoint},
        "validation": {"k": K, "minRecall": 0.0},
        "build": {"maxMemory": args.max_memory},
    }
    if index_type != "Flat":
        raw_spec["tuning"] = {"targetRecall": args.target_recall}
    if encoding:
        raw_spec["parameters"] = {"encoding": encoding}
    spec = FaissIndexSpec.model_validate(raw_spec)
    key = build_key(spec)
    name = "bench-" + type_name.lower().replace("+", "-").replace("/", "-")
    request = BuildRequest(index=name, namespace="bench", version=version_id_now(key), build_key=key, spec=spec)
    term = work / f"term-{name}"
    env = {**os.environ, "FAISS_BUILD_REQUEST": json.dumps(request.to_wire()), "TERMINATION_MESSAGE_PATH": str(term)}
    code, wall, rss, err = run_measured([str(VENV_BIN / "faiss-index-builder"), "--log-level", "WARNING", "--workdir", str(work)], env)
    if code != 0:
        message = term.read_text() if term.exists() else err.strip().splitlines()[-1:]
        return {"error": f"builder exited {code}: {message}"}
    store = ArtifactStore(make_client(endpoint), BUCKET)
    prefix = version_prefix(spec.storage.prefix, request.namespace, request.index, spec.horizon, request.version)
    manifest = store.read_manifest(f"{prefix}/manifest.json")
    local = work / f"{name}.faiss"
    store.download_file(f"{prefix}/{manifest.index_file}", local)
    ids_local = work / f"{name}.ids.npy"
    store.download_file(f"{prefix}/{manifest.ids_file}", ids_local)
    wire = manifest.to_wire() if hasattr(manifest, "to_wire") else manifest.model_dump(by_alias=True, mode="json")
    return {"seconds": wall, "cpu_seconds": LAST_CPU_SECONDS[0], "peak_rss_bytes": rss, "manifest": wire, "index_path": str(local), "ids_path": str(ids_local)}

def version_id_now(key: str) -> str:
    from datetime import datetime, timezone

    from indexops_api.layout import version_id

    return version_id(datetime.now(timezone.utc), key)

def factory_of(manifest: dict) -> str | None:
    """The factory string the builder used: recorded, or derived for the original three types."""
    if manifest.get("factory"):
        return manifest["factory"]
    if (manifest.get("auto") or {}).get("factory"):
        return manifest["auto"]["factory"]
    p, t = manifest["parameters"], manifest["indexType"]
    return {"Flat": "Flat", "HNSW": f"HNSW{p.get('m')},Flat", "IVF": f"IVF{p.get('nlist')},Flat"}.get(t)

def _vm_rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0

def score_artifact(path: str, ids_path: str, search: dict, queries: np.ndarray, truth: np.ndarray) -> dict:
    import gc

    import faiss

    gc.collect()
    before = _vm_rss()
    index = faiss.read_index(path)
    ids = np.load(ids_path)
    loaded = _vm_rss() - before  # what a serving process gains by loading the version (index + ids)
    space = faiss.ParameterSpace()
    for name, value in search.items():
        space.set_index_parameter(index, name, value)
    return score(index, queries, truth, ids=ids) | {"rss_delta_bytes": loaded}

# --------------------------------------------------------------------------- main

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def ensure_autofaiss(skip: bool) -> tuple[str | None, str]:
    """(python of the autofaiss venv, note); made with uv from PyPI on first use."""
    if skip:
        return None, "skipped: --no-autofaiss"
    python = AUTOFAISS_VENV / "bin" / "python"
    if not python.exists():
        say(f"autofaiss: creating {AUTOFAISS_VENV} ({' '.join(AUTOFAISS_PINS)})")
        try:
            subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(AUTOFAISS_VENV)], check=True)
            subprocess.run(["uv", "pip", "install", "-q", "--python", str(python), *AUTOFAISS_PINS], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            return None, f"skipped: could not create the autofaiss venv ({exc})"
    probe = subprocess.run([str(python), "-c", "import autofaiss, faiss, numpy; print(faiss.__version__, numpy.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return None, f"skipped: autofaiss does not import ({probe.stderr.strip().splitlines()[-1:]})"
    return str(python), f"separate venv {AUTOFAISS_VENV} (faiss, numpy {probe.stdout.strip()}): autofaiss pins numpy<2"

def builder_code() -> dict:
    """Which index_builder the console script ran (the tree is edited concurrently): path, commit, dirty."""
    import index_builder

    path = Path(index_builder.__file__).resolve().parent
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {"path": str(path), "head": git("rev-parse", "HEAD"), "pythonpath": os.environ.get("PYTHONPATH"),
            "uncommitted_changes": git("status", "--porcelain", "--", "index_builder", "indexops_api").splitlines()}

def main() -> int:
    parser = argparse.ArgumentParser(description="Builder benchmark: each index type, builder vs raw faiss vs autofaiss.")
    parser.add_argument("--n", type=int, default=200_000, help="base vectors (default 200000)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries")
    parser.add_argument("--quick", action="store_true", help="20000 vectors (development)")
    parser.add_argument("--types", default=",".join(TYPES), help="comma-separated index types")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--max-memory", default="4Gi", help="build.maxMemory of the builder; autofaiss's max index memory")
    parser.add_argument("--no-autofaiss", action="store_true")
    parser.add_argument("--dataset", choices=["lsa", "minilm"], default="lsa",
                        help="lsa: bench/data.py; minilm: all-MiniLM-L6-v2 sentence embeddings (bench/neural_data.py)")
    args = parser.parse_args()
    if args.quick:
        args.n = 20_000
    return run(args)

def stem_of(args) -> str:
    return f"builder-{args.dataset}" if args.dataset != "lsa" else ("builder-quick-20k" if args.quick else "builder")

def result_of(args, dataset, rows: list, skipped: list, started: float, code: dict, report, autofaiss: dict) -> dict:
    import faiss

    return {
        "n": args.n, "dim": args.dim, "queries": args.queries, "k": K, "target_recall": args.target_recall,
        "max_memory": args.max_memory, "metric": "L2 (vectors are unit-norm, so the ranking equals cosine)",
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "faiss": faiss.__version__, "numpy": np.__version__, "cpu": platform.processor() or platform.machine()},
        "data": dataset.provenance, "types": rows, "skipped": skipped, "autofaiss": autofaiss,
        "bench_seconds": round(time.perf_counter() - started, 1),
        "builder_code": code,
        "previous": report.previous_summary(_previous_path(args)),
    }

def _previous_path(args) -> Path:
    """The run this one replaces: saved aside by the first partial write, else the results file itself."""
    aside = RESULTS / f"{stem_of(args)}.previous.json"
    return aside if aside.exists() else RESULTS / f"{stem_of(args)}.json"

def write_partial(args, dataset, rows: list, skipped: list, started: float, code: dict, report) -> None:
    """Results so far, written after every type: a run cut short still leaves its finished rows."""
    result = result_of(args, dataset, rows, skipped, started, code, report, {"note": "not run yet (partial results)"})
    stem = stem_of(args)
    previous = RESULTS / f"{stem}.json"
    if previous.exists() and not (RESULTS / f"{stem}.previous.json").exists():
        (RESULTS / f"{stem}.previous.json").write_text(previous.read_text())  # keep the baseline for before/after
    result["partial"] = True
    report.write(result, RESULTS, stem)

def run(args) -> int:
    import logging

    import faiss
    from moto.server import ThreadedMotoServer

    import data  # bench/data.py: run as a script, this folder is sys.path[0]
    import report
    from indexops_api.spec import IndexType
    from indexops_store import make_client

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    started = time.perf_counter()
    code = builder_code()
    if args.dataset == "minilm":
        import neural_data

        base, held, provenance = neural_data.load(args.n, args.queries, progress=say)
        dataset = data.Dataset(base, held, provenance | {"dataset": "minilm"})
        args.dim = base.shape[1]
    else:
        dataset = data.load(args.n, args.dim, args.queries, progress=say)
    declared = {t.value for t in IndexType}
    autofaiss_python, autofaiss_note = ensure_autofaiss(args.no_autofaiss)
    for var, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"), ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(var, value)
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    make_client(endpoint).create_bucket(Bucket=BUCKET)
    rows, skipped = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="builder-bench-") as tmp:
            work = Path(tmp)
            paths = {name: work / f"{name}.npy" for name in ("base", "queries", "truth")}
            np.save(paths["base"], dataset.base)
            np.save(paths["queries"], dataset.queries)
            say(f"exact ground truth for {len(dataset.queries)} held-out queries over {args.n}x{args.dim}")
            flat = faiss.IndexFlatL2(args.dim)
            flat.add(dataset.base)
            truth = flat.search(dataset.queries, K)[1]
            del flat
            np.save(paths["truth"], truth)
            job_files = {name: str(path) for name, path in paths.items()}
            for index_type in [t for t in args.types.split(",") if t]:
                if split_type(index_type)[0] not in declared:
                    skipped.append({"type": index_type, "why": "not in indexops_api.spec.IndexType"})
                    say(f"{index_type}: skipped (not declared by the spec)")
                    continue
                say(f"{index_type}: builder end to end (file source, moto S3)")
                built = run_builder(index_type, args.n, args.dim, paths["base"], endpoint, work, args)
                if "error" in built:
                    skipped.append({"type": index_type, "why": built["error"]})
                    say(f"{index_type}: skipped: {built['error']}")
                    continue
                manifest = built["manifest"]
                search = manifest["searchParameters"]
                built |= {"held_out": score_artifact(built.pop("index_path"), built.pop("ids_path"), search, dataset.queries, truth)}
                factory = factory_of(manifest)
                say(f"{index_type}: {built['seconds']:.1f}s; raw faiss {factory} {search}")
                raw = (run_worker("raw", {**job_files, "factory": factory, "metric": "L2", "search_parameters": search,
                                          "build_parameters": {k: v for k, v in manifest["parameters"].items() if k == "efConstruction"}}, work)
                       if factory else {"error": "no factory string in the manifest"})
                rows.append({"type": index_type, "factory": factory, "builder": built, "raw": raw})
                say(f"{index_type}: raw {raw.get('seconds', float('nan')):.1f}s, recall {raw.get('recall_at_10', float('nan')):.3f}")
                write_partial(args, dataset, rows, skipped, started, code, report)
            autofaiss = {"note": autofaiss_note}
            if autofaiss_python:
                say("autofaiss build_index (same data, same memory budget)")
                autofaiss |= run_worker("autofaiss", {**job_files, "max_memory": args.max_memory.replace("i", ""),
                                                      "memory_available": "16G", "max_query_ms": 10}, work, autofaiss_python)
    finally:
        moto.stop()
    result = result_of(args, dataset, rows, skipped, started, code, report, autofaiss)
    report.write(result, RESULTS, stem_of(args))
    (RESULTS / f"{stem_of(args)}.previous.json").unlink(missing_ok=True)
    say(f"done in {result['bench_seconds']:.0f}s -> {RESULTS}/{stem_of(args)}.{{json,md,png}}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
