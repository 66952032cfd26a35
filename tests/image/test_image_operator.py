"""The operator, run from the image's root filesystem with the chart's environment, reconciles.

The chart is rendered with helm and everything but the operator Deployment is applied, so the
operator's ServiceAccount, ClusterRole and bindings are the chart's own. The operator then runs
from the image (uid 65532, read-only root, only /tmp writable) with exactly the environment the
chart's Deployment declares, the downward-API and Secret references resolved as the kubelet
would, and that ServiceAccount's token projected where in-cluster configuration reads it. It
reconciles one FaissIndex to Ready; the builder Job and the serving pods it creates run on the
stack's node agent.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from sandbox import Rootfs, stop

ROOT = Path(__file__).resolve().parents[2]

from hack.localstack import CHART, CREDENTIALS_SECRET, Cluster, sample_embeddings  # noqa: E402

POD_IP = "127.0.1.16"  # outside the node agent's 127.0.0.N pod addresses


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    try:
        return Cluster.from_stack()
    except RuntimeError as exc:
        pytest.fail(f"{exc} (`make test-image` starts it)")


@pytest.fixture(scope="module")
def chart(cluster: Cluster) -> Iterator[tuple[str, dict]]:
    """The chart applied without its Deployment: (operator namespace, the Deployment it would run)."""
    release = f"img-{uuid.uuid4().hex[:6]}"
    namespace = f"{release}-system"
    cluster.ensure_credentials_secret(namespace)
    rendered = cluster.helm("template", release, str(CHART), "--namespace", namespace,
                            "--set", f"storage.credentialsSecret={CREDENTIALS_SECRET}", "--set", "replicaCount=1",
                            "--set", f"storage.endpoint={cluster.s3_endpoint}",  # the one S3 the operator may use (storage.allowed: [])
                            "--set", "resyncSeconds=10").stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    others = [d for d in docs if d["kind"] != "Deployment" and "helm.sh/hook" not in d["metadata"].get("annotations", {})]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in others))
    cluster.wait_for("the FaissIndex CRD", lambda: cluster.kubectl(
        "wait", "--for=condition=Established", "crd/faissindexes.faiss.indexops.io", "--timeout=5s", check=False).returncode == 0, 60)
    try:
        yield namespace, deployment
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        for d in others:
            if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                cluster.kubectl("delete", d["kind"].lower(), d["metadata"]["name"], check=False)


def pod_env(cluster: Cluster, namespace: str, container: dict, pod_name: str) -> dict[str, str]:
    """The container's env as the kubelet would set it (literal values, fieldRefs, envFrom Secrets)."""
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace, "status.podIP": POD_IP}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        secret = cluster.get_json("secret", source["secretRef"]["name"], "-n", namespace)
        env.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            raise AssertionError(f"the test does not resolve {item}")
    return env


def service_account_dir(cluster: Cluster, namespace: str, account: str, parent: Path) -> tuple[Path, str, str]:
    """A projected token of the chart's ServiceAccount, the API server's CA, and host/port."""
    kubeconfig = yaml.safe_load(Path(cluster.env["KUBECONFIG"]).read_text())
    server = kubeconfig["clusters"][0]["cluster"]
    directory = parent / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text(cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip())
    (directory / "ca.crt").write_bytes(base64.b64decode(server["certificate-authority-data"]))
    (directory / "namespace").write_text(namespace)
    for path in directory.iterdir():
        path.chmod(0o644)
    url = urlparse(server["server"])
    return directory, url.hostname or "", str(url.port or 443)


def test_the_operator_from_the_image_reconciles_a_faissindex_to_ready(cluster, chart, rootfs: Rootfs, scratch: Path, tmp_path):
    namespace, deployment = chart
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "operator")
    env = pod_env(cluster, namespace, container, pod_name="operator-from-image")
    sa_dir, host, port = service_account_dir(cluster, namespace, pod["serviceAccountName"], tmp_path)
    env.update({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port})
    assert container.get("securityContext", {}).get("readOnlyRootFilesystem") is True

    with cluster.temporary_namespace("img-index") as index_ns:
        vectors, ids = sample_embeddings(2000, 64)
        cluster.upload_embeddings("image-test/6h/vectors.npy", vectors, ids, "image-test/6h/ids.npy")
        log = tmp_path / "operator.log"
        operator = rootfs.start(container["command"] + container.get("args", []), scratch, log, env=env, service_account=sa_dir)
        try:
            cluster.kubectl("apply", "-n", index_ns, "-f", "-", input=cluster.sample_manifest(**{
                "metadata.name": "from-image", "spec.source.s3.key": "image-test/{horizon}/vectors.npy",
                "spec.source.s3.idsKey": "image-test/{horizon}/ids.npy"}))

            def ready() -> bool:
                assert operator.poll() is None, "the operator from the image exited"
                cond = cluster.condition("faissindex/from-image", index_ns, "Ready")
                return bool(cond and cond["status"] == "True")

            cluster.wait_for("FaissIndex Ready, reconciled by the operator from the image", ready, timeout=420, interval=2)
            status = cluster.get_json("faissindex/from-image", "-n", index_ns)["status"]
        finally:
            logs = stop(operator, log)
            cluster.kubectl("delete", "faissindex", "from-image", "-n", index_ns, "--wait=false", check=False)

    assert status["observedGeneration"] == 1 and status["currentVersion"], json.dumps(status)[:2000]
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert records, f"the operator wrote no JSON log lines:\n{logs[-3000:]}"
    assert env["AWS_SECRET_ACCESS_KEY"] not in logs
