"""Control-plane scale: one operator with N (default 1,000) FaissIndexes in steady state.

Runs against the local stack (``make bench-scale-control-plane`` starts and stops it).
No builder pod runs for the N indexes: before they are applied, a version for each
index's build key and a serving pointer are published in S3 with the project's own store
code (a small valid manifest, its listed files), so the operator *adopts* them
(``faiss_operator.adoption``) instead of building. Serving is disabled for these indexes
(the bench measures the control plane, not N serving pods).

The operator runs as a local process (``bench/scale_operator_process.py``: the real entry
point with request counting on its HTTP clients), namespace-scoped to a fresh namespace,
so each run sees only its own N indexes. Figures:

- adoption: time from the first apply until all N indexes report a current version, and
  builder Jobs created (must be 0);
- at idle, over ``--idle-seconds`` after a settle period: operator RSS (current and peak),
  CPU as % of one core, API-server requests/s and S3 requests/s made by the operator;
- spec change on one index -> its builder Job seen by a watch: p50/p99 over ``--changes``.

``--label`` names the run (e.g. ``before`` with ``--operator-tree`` pointing at a checkout
of an older commit, ``after`` for this tree); results merge into
``bench/results/scale-control-plane.{json,md}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client, config, watch

from hack.localstack import Cluster
from indexops_api import constants as c
from indexops_api.layout import build_key, index_prefix, manifest_key, pointer_key, version_id
from indexops_api.manifest import FileEntry, Manifest, Measurements, SourceFingerprint, Timings
from indexops_api.pointer import ServingPointer
from indexops_api.spec import FaissIndexSpec
from indexops_store import ArtifactStore, make_client

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BUCKET, PREFIX = "faiss-scale-indexes", "scale"
FILES = {"index.faiss": b"bench placeholder index\n", "ids.npy": b"bench placeholder ids\n"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def index_spec(endpoint: str, ef_search: int = 64) -> dict:
    return {
        "horizon": "6h", "dimension": 64, "metric": "L2", "indexType": "HNSW",
        "parameters": {"m": 32, "efConstruction": 200, "efSearch": ef_search},
        "source": {"s3": {"bucket": "faiss-scale-embeddings", "key": "emb/{horizon}/vectors.npy"}},
        "storage": {"bucket": BUCKET, "prefix": PREFIX, "endpoint": endpoint},
        "validation": {"minRecall": 0.9, "k": 10},
        "serving": {"enabled": False},
    }


def publish(store: ArtifactStore, ns: str, name: str, raw_spec: dict) -> None:
    """One published version of the spec's build key and a pointer to it, as a build would leave them."""
    spec = FaissIndexSpec.model_validate(raw_spec)
    key = build_key(spec)
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    version = version_id(created, key)
    where = (spec.storage.prefix, ns, name, spec.horizon)
    folder = f"{index_prefix(*where)}/versions/{version}"
    for file, body in FILES.items():
        store.put_bytes(f"{folder}/{file}", body)
    manifest = Manifest(
        index=name, namespace=ns, horizon=spec.horizon, version=version, build_key=key, created_at=created.isoformat(),
        index_type=spec.index_type, metric=spec.metric, dimension=spec.dimension, vectors=1000,
        parameters={"m": 32, "efConstruction": 200}, search_parameters={"efSearch": 64},
        files=[FileEntry(name=f, size=len(b), sha256=hashlib.sha256(b).hexdigest()) for f, b in FILES.items()],
        index_file="index.faiss", ids_file="ids.npy", size_bytes=sum(len(b) for b in FILES.values()),
        source=SourceFingerprint(uri="s3://faiss-scale-embeddings/emb/6h/vectors.npy", count=1000),
        measurements=Measurements(recall_at_k=0.97, k=10, queries=100, latency_p50_ms=0.1, latency_p95_ms=0.2, latency_p99_ms=0.3),
        timings=Timings(load_seconds=0, train_seconds=0, add_seconds=0, validate_seconds=0, total_seconds=0),
        faiss_version="bench", builder_version="bench",
    )
    store.put_bytes(manifest_key(*where, version), json.dumps(manifest.model_dump(mode="json", by_alias=True)).encode())
    pointer = ServingPointer(generation=1, stable_version=version, updated_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"))
    store.write_pointer(pointer_key(*where), pointer, etag=None)


class OperatorProcess:
    def __init__(self, cluster: Cluster, namespace: str, tree: Path, workdir: Path):
        self.counts = workdir / "counts.json"
        env = {**os.environ, **cluster.env, "KUBECONFIG": cluster.env["KUBECONFIG"],
               "PYTHONPATH": str(tree), "FAISS_BENCH_COUNTS": str(self.counts),
               "FAISS_OPERATOR_LEADER_ELECTION": "false", "FAISS_OPERATOR_NAMESPACE": namespace,
               "FAISS_OPERATOR_PORT": "18480", "POD_IP": "127.0.0.1", "FAISS_S3_ENDPOINT_URL": cluster.s3_endpoint}
        self.log = open(workdir / "operator.log", "w")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "scale_operator_process.py"), "--namespace", namespace],
                                     env=env, cwd=tree, stdout=self.log, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def memory_mb(self) -> tuple[float, float]:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines() if ":" in line)
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024

    def requests(self) -> dict[str, int]:
        try:
            return json.loads(self.counts.read_text())["requests"]
        except (OSError, ValueError):
            return {}

    def reconcile_passes(self) -> tuple[float, float]:
        """(passes, seconds spent in passes) so far, from the operator's own /metrics."""
        import urllib.request  # noqa: PLC0415

        try:
            text = urllib.request.urlopen("http://127.0.0.1:18481/metrics", timeout=10).read().decode()
        except OSError:
            return float("nan"), float("nan")
        total = {"count": 0.0, "sum": 0.0}
        for line in text.splitlines():
            for kind in total:
                if line.startswith(f"faiss_operator_reconcile_seconds_{kind}{{"):
                    total[kind] += float(line.rsplit(" ", 1)[1])
        return total["count"], total["sum"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def split(counts: dict[str, int], s3_hostport: str) -> dict[str, int]:
    out = {"api": 0, "s3": 0}
    for key, n in counts.items():
        out["s3" if key.split(" ")[0] == s3_hostport else "api"] += n
    return out


def by_kind(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(args: argparse.Namespace, result: dict) -> None:
    """Fills ``result`` stage by stage, so a run cut short still reports what it measured."""
    cluster = Cluster.from_stack()
    os.environ.update({k: v for k, v in cluster.env.items() if k.startswith("AWS_")})  # moto's fake credentials
    config.load_kube_config(cluster.env["KUBECONFIG"])
    core, custom, batch = client.CoreV1Api(), client.CustomObjectsApi(), client.BatchV1Api()
    cluster.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/faissindexes.faiss.indexops.io", "--timeout=60s")
    ns = f"scale-cp-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": ns}})
    cluster.ensure_bucket(BUCKET)
    store = ArtifactStore(make_client(cluster.s3_endpoint), BUCKET)
    endpoint = cluster.s3_endpoint
    s3_hostport = endpoint.split("//", 1)[1].rstrip("/")
    names = [f"idx-{i:04d}" for i in range(args.indexes)]

    t = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: publish(store, ns, n, index_spec(endpoint)), names))
    publish_s = time.monotonic() - t
    print(f"published {len(names)} versions in {publish_s:.1f}s", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="scale-cp-"))
    op = OperatorProcess(cluster, ns, Path(args.operator_tree).resolve(), workdir)
    result.update({"indexes": args.indexes, "operator_tree": str(args.operator_tree), "namespace": ns})
    try:
        time.sleep(3)
        t = time.monotonic()

        def create(name: str) -> None:
            body = {"apiVersion": f"{c.GROUP}/{c.VERSION}", "kind": "FaissIndex", "metadata": {"name": name},
                    "spec": index_spec(endpoint)}
            custom.create_namespaced_custom_object(c.GROUP, c.VERSION, ns, c.PLURAL, body)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))
        applied_s = time.monotonic() - t
        print(f"applied {len(names)} FaissIndexes in {applied_s:.1f}s", flush=True)
        while True:
            items = custom.list_namespaced_custom_object(c.GROUP, c.VERSION, ns, c.PLURAL)["items"]
            adopted = sum(1 for i in items if (i.get("status") or {}).get("currentVersion"))
            if adopted == len(names) or time.monotonic() - t > args.adopt_timeout:
                break
            time.sleep(3)
        adopt_s = time.monotonic() - t
        jobs = len(batch.list_namespaced_job(ns).items)
        print(f"{adopted}/{len(names)} adopted after {adopt_s:.1f}s; builder Jobs: {jobs}", flush=True)
        result["adoption"] = {"publish_seconds": round(publish_s, 1), "apply_seconds": round(applied_s, 1),
                              "all_serving_seconds": round(adopt_s, 1), "adopted": adopted, "builder_jobs": jobs,
                              "rss_mb_after": round(op.memory_mb()[0], 1)}

        time.sleep(args.settle_seconds)
        c0, r0, p0, w0 = op.cpu_seconds(), op.requests(), op.reconcile_passes(), time.monotonic()
        time.sleep(args.idle_seconds)
        c1, r1, p1, w1 = op.cpu_seconds(), op.requests(), op.reconcile_passes(), time.monotonic()
        window = w1 - w0
        rss, peak = op.memory_mb()
        delta = by_kind(r0, r1)
        per = split(delta, s3_hostport)
        result["idle"] = {"window_seconds": round(window, 1), "cpu_percent_of_core": round(100 * (c1 - c0) / window, 2),
                          "rss_mb": round(rss, 1), "peak_rss_mb": round(peak, 1),
                          "api_requests_per_second": round(per["api"] / window, 3),
                          "s3_requests_per_second": round(per["s3"] / window, 3),
                          "reconcile_passes_per_second": round((p1[0] - p0[0]) / window, 3),
                          "cpu_ms_per_pass": round(1000 * (c1 - c0) / (p1[0] - p0[0]), 1) if p1[0] > p0[0] else None,
                          "requests_by_endpoint_and_method": delta}
        print(f"idle: {json.dumps(result['idle'])}", flush=True)
        result["spec_change_to_job"] = spec_changes(custom, batch, ns, names, endpoint, args.changes)
        print(f"spec change -> Job: {json.dumps(result['spec_change_to_job'])}", flush=True)
    finally:
        op.stop()
    result["operator_log"] = str(workdir / "operator.log")


def spec_changes(custom, batch, ns: str, names: list[str], endpoint: str, changes: int) -> dict:
    """Patch one index's build-relevant spec at a time; time until a watch sees its new Job."""
    seen: queue.Queue = queue.Queue()
    w = watch.Watch()

    def watch_jobs() -> None:
        for ev in w.stream(batch.list_namespaced_job, ns, timeout_seconds=600):
            if ev["type"] == "ADDED":
                seen.put((time.monotonic(), ev["object"].metadata.labels.get(c.LABEL_INDEX), ev["object"].metadata.name))

    threading.Thread(target=watch_jobs, daemon=True).start()
    time.sleep(2)
    while not seen.empty():
        seen.get()
    latencies: list[float] = []
    stride = max(1, len(names) // changes)
    for i in range(changes):
        name = names[(i * stride) % len(names)]
        sent = time.monotonic()
        custom.patch_namespaced_custom_object(c.GROUP, c.VERSION, ns, c.PLURAL, name,
                                              {"spec": {"parameters": {"efSearch": 100 + i}}})
        deadline = sent + 60
        while time.monotonic() < deadline:
            try:
                at, index, job = seen.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if index == name:
                latencies.append(at - sent)
                batch.delete_namespaced_job(job, ns, propagation_policy="Background")  # no builder needs to run
                break
        time.sleep(1)
    w.stop()
    if not latencies:
        return {"changes": changes, "observed": 0}
    return {"changes": changes, "observed": len(latencies), "p50_seconds": round(statistics.median(latencies), 3),
            "p99_seconds": round(percentile(latencies, 0.99), 3), "max_seconds": round(max(latencies), 3)}


def write_results(label: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "scale-control-plane.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[label] = {**result, "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (RESULTS / "scale-control-plane.md").write_text(render(data))


def render(data: dict) -> str:
    rows = [("indexes", lambda r: r["indexes"]),
            ("builder Jobs started by adoption", lambda r: r["adoption"]["builder_jobs"]),
            ("indexes adopted (current version) by then", lambda r: r["adoption"]["adopted"]),
            ("apply -> all N serving, or timeout (s)", lambda r: r["adoption"]["all_serving_seconds"]),
            ("operator RSS at idle (MB)", lambda r: r["idle"]["rss_mb"]),
            ("operator peak RSS (MB)", lambda r: r["idle"]["peak_rss_mb"]),
            ("idle CPU (% of a core)", lambda r: r["idle"]["cpu_percent_of_core"]),
            ("idle API-server requests/s", lambda r: r["idle"]["api_requests_per_second"]),
            ("idle S3 requests/s", lambda r: r["idle"]["s3_requests_per_second"]),
            ("idle reconcile passes/s", lambda r: r["idle"]["reconcile_passes_per_second"]),
            ("operator CPU per idle pass (ms)", lambda r: r["idle"]["cpu_ms_per_pass"]),
            ("idle window (s)", lambda r: r["idle"]["window_seconds"]),
            ("spec change -> Job p50 (s)", lambda r: r["spec_change_to_job"].get("p50_seconds")),
            ("spec change -> Job p99 (s)", lambda r: r["spec_change_to_job"].get("p99_seconds")),
            ("spec changes observed", lambda r: f'{r["spec_change_to_job"]["observed"]}/{r["spec_change_to_job"]["changes"]}')]
    labels = sorted(data, key=lambda k: (k != "before", k))
    lines = ["# Control-plane scale: one operator, many FaissIndexes at steady state", "",
             "Produced by `make bench-scale-control-plane` (`bench/scale_control_plane.py`). Goals: operator "
             "<= 250 MB RSS and <= 3% of a core idle at 1,000 indexes; spec change -> Job created p99 <= 2 s.", "",
             "| figure | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for title, get in rows:
        cells = []
        for label in labels:
            try:
                cells.append(str(get(data[label])))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "Runs:"] + [f"- `{k}`: measured {data[k].get('measured_at')}, operator code from `{data[k].get('operator_tree')}`"
                              for k in labels]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--indexes", type=int, default=1000)
    p.add_argument("--idle-seconds", type=float, default=60)
    p.add_argument("--settle-seconds", type=float, default=30)
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--adopt-timeout", type=float, default=420)
    p.add_argument("--label", default="after")
    p.add_argument("--operator-tree", default=str(REPO), help="checkout whose faiss_operator package runs (default: this tree)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still stops the operator and writes results
    result: dict = {}
    try:
        run(args, result)
    finally:
        if "adoption" in result:
            write_results(args.label, result)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
