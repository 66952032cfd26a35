"""``make demo``: from a running local stack to a served query, step by step.

Installs the operator with helm (it runs under the chart's RBAC), seeds sample
embeddings into S3, applies the sample FaissIndex, waits for Ready, queries the serving
Service and prints ``kubectl get`` / ``kubectl describe``. Every step says what it does
and, if it fails, exactly what failed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from hack.localstack import OPERATOR_NAMESPACE, RELEASE, Cluster, sample_embeddings, search

NAME, NAMESPACE, DIM, N = "weather-analogs-6h", "default", 64, 20000
_T0 = time.monotonic()


def step(message: str) -> None:
    print(f"[demo +{time.monotonic() - _T0:5.1f}s] {message}", flush=True)


def main() -> int:
    cluster = Cluster.from_stack()
    step("installing the operator: helm upgrade --install faiss-operator charts/faiss-operator -n faiss-system")
    cluster.install_operator()
    step(f"uploading {N} sample embeddings (dim {DIM}) to s3://faiss-demo-embeddings/embeddings/6h/")
    vectors, ids = sample_embeddings(N, DIM)
    cluster.upload_embeddings("embeddings/6h/vectors.npy", vectors, ids, "embeddings/6h/ids.npy")
    cluster.ensure_credentials_secret(NAMESPACE)
    step("kubectl apply -f config/samples/faissindex-hnsw-6h.yaml")
    print(cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=cluster.sample_manifest()).stdout.strip())

    seen: list[str] = []

    def progress() -> None:
        obj = cluster.get_json(f"faissindex/{NAME}", "-n", NAMESPACE)
        phase = obj.get("status", {}).get("phase") or "Pending"
        if not seen or seen[-1] != phase:
            seen.append(phase)
            step(f"phase: {phase}")

    def ready() -> bool:
        cond = cluster.condition(f"faissindex/{NAME}", NAMESPACE, "Ready")
        degraded = cluster.condition(f"faissindex/{NAME}", NAMESPACE, "Degraded")
        if degraded and degraded["status"] == "True" and not cluster.get_json(f"faissindex/{NAME}", "-n", NAMESPACE)["status"].get("currentVersion"):
            raise SystemExit(f"build failed: {degraded['reason']}: {degraded['message']}")
        return bool(cond and cond["status"] == "True")

    step("waiting for Ready=True (builder Job -> manifest -> validation -> pointer -> serving pods)")
    cluster.wait_for("FaissIndex Ready", ready, timeout=600, interval=2, progress=progress)
    urls = cluster.wait_for("serving endpoints", lambda: cluster.service_pod_urls(f"{NAME}-serving", NAMESPACE), timeout=60)
    query = vectors[:1] + np.float32(0.01)
    step(f"POST {urls[0]}/v1/search (the {NAME}-serving Service's endpoint) with one query, k=5")
    answer = search(urls[0], query, k=5)
    print(f"  served by version {answer['version']}")
    print(f"  ids:       {answer['ids'][0]}")
    print(f"  distances: {[round(d, 3) for d in answer['distances'][0]]}")
    step(f"operator leader: pod {leader_pod(cluster)} (holder of Lease {OPERATOR_NAMESPACE}/{RELEASE}-leader; the other replica stands by)")
    step("kubectl get faissindex -o wide")
    print(cluster.kubectl("get", "faissindex", "-n", NAMESPACE, "-o", "wide").stdout)
    step(f"kubectl describe faissindex {NAME}")
    print(cluster.kubectl("describe", "faissindex", NAME, "-n", NAMESPACE).stdout)
    step(f"faissctl status {NAME} (also `kubectl faiss status`)")
    print(cluster.run(str(Path(sys.executable).parent / "faissctl"), "status", NAME, "-n", NAMESPACE).stdout)
    step("done: the index serves. Get a shell that talks to it:")
    print(shell_hint())
    return 0


def shell_hint() -> str:
    """The exact commands for a working shell (kubectl and faissctl against this stack)."""
    root = Path(__file__).resolve().parents[1]
    stack = Path(os.environ.get("FAISS_STACK_DIR", root / ".stack"))
    return "\n".join((
        f"  source {stack / 'env'}                 # KUBECONFIG, S3_ENDPOINT_URL, AWS_* of the local stack",
        f"  export PATH={Path(sys.executable).parent}:$PATH   # faissctl, kubectl-faiss, faiss-index-builder",
        f"  kubectl get faissindex -n {NAMESPACE} -o wide && faissctl status {NAME} -n {NAMESPACE}",
        f"  logs: {stack / 'logs'} (control plane), {stack / 'pods'}/<namespace>_<pod>/<container>.log (pods)",
        "  make stack-down keeps the logs; make clean removes them",
    ))


def leader_pod(cluster: Cluster) -> str | None:
    """The operator pod that acts: the Lease holder's identity is "<pod name>_<suffix>".

    ``kubectl logs deploy/...`` picks any replica, and with two the standby's log only
    says it is waiting for the Lease.
    """
    proc = cluster.kubectl("get", "lease", f"{RELEASE}-leader", "-n", OPERATOR_NAMESPACE,
                           "-o", "jsonpath={.spec.holderIdentity}", check=False)
    holder = proc.stdout.strip() if proc.returncode == 0 else ""
    return holder.rsplit("_", 1)[0] if "_" in holder else None


def diagnose() -> None:
    """What a person would look at next, printed when a step fails."""
    try:
        cluster = Cluster.from_stack()
    except RuntimeError:
        return
    leader = leader_pod(cluster)
    for title, args in (
        ("pods", ("get", "pods", "-A", "-o", "wide")),
        ("FaissIndex status", ("get", "faissindex", NAME, "-n", NAMESPACE, "-o", "jsonpath={.status}")),
        (f"operator leader {leader} log (last 20 lines)", ("logs", "-n", OPERATOR_NAMESPACE, leader, "--tail=20")) if leader
        else ("operator Lease (no leader holds it)", ("get", "lease", "-n", OPERATOR_NAMESPACE, "-o", "wide")),
    ):
        proc = cluster.kubectl(*args, check=False)
        print(f"--- {title}\n{(proc.stdout or proc.stderr).strip()}", file=sys.stderr)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (RuntimeError, TimeoutError) as exc:
        print(f"[demo] FAILED: {exc}", file=sys.stderr)
        diagnose()
        raise SystemExit(1)
