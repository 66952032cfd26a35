"""Helpers shared by ``make demo`` and the e2e tests to drive the local stack.

Dev/test infrastructure: installs the chart with helm, seeds sample embeddings into the
stack's S3, applies FaissIndex objects with kubectl and queries serving pods. The local
stack has no kube-proxy: a Service is reached either through its EndpointSlices' pod IPs
(each harness pod has its own 127.S.x.N) or through the node agent's Service proxy
(``Cluster.service_url``; pods themselves use the Service names, see
hack/stack/svcnet.py).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexops_api import constants as api_constants

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "faiss-operator"
SAMPLE = ROOT / "config" / "samples" / "faissindex-hnsw-6h.yaml"
OPERATOR_NAMESPACE = "faiss-system"
RELEASE = "faiss-operator"
CREDENTIALS_SECRET = "faiss-s3-credentials"
EMBEDDINGS_BUCKET = "faiss-demo-embeddings"
INDEX_BUCKET = "faiss-demo-indexes"
# Every namespace the demo and the e2e tests create runs the API server's own Pod Security
# admission at "restricted": a pod spec of the chart or the operator that loosens its
# securityContext is refused by the real thing, not by a test's reading of the YAML.
POD_SECURITY_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def stack_dir() -> Path:
    return Path(os.environ.get("FAISS_STACK_DIR", ROOT / ".stack"))


def stack_env() -> dict[str, str]:
    """The environment the stack wrote (KUBECONFIG, S3_ENDPOINT_URL, credentials, HELM)."""
    env_file = stack_dir() / "env"
    if not env_file.exists():
        raise RuntimeError(f"{env_file} missing: start the stack with `make stack-up`")
    env: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip().strip("'\"")
    return env


@dataclass
class Cluster:
    env: dict[str, str]
    _client: Any = field(default=None, repr=False, compare=False)
    _client_pid: int = field(default=0, repr=False, compare=False)

    @classmethod
    def from_stack(cls) -> "Cluster":
        return cls({**os.environ, **stack_env()})

    @property
    def s3_endpoint(self) -> str:
        return self.env["S3_ENDPOINT_URL"]

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), input=input, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run("kubectl", *args, input=input, check=check, timeout=timeout)

    def get_json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def api_get(self, path: str, **query: str) -> dict[str, Any]:
        """GET one API path in process, as JSON (``query``: e.g. ``labelSelector``). The e2e
        waits poll every second or so, and a kubectl process per poll cost about 0.1
        CPU-second on a CPU-bound 2-core run."""
        from kubernetes.client import ApiException

        try:
            resp = self._api_client().call_api(
                path, "GET", query_params=[(k, v) for k, v in query.items() if v], header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _return_http_data_only=True, _preload_content=False, _request_timeout=30)
        except ApiException as exc:
            raise RuntimeError(f"GET {path}: HTTP {exc.status} {exc.reason}") from exc
        return json.loads(resp.data)

    def faiss_index(self, namespace: str, name: str) -> dict[str, Any]:
        """The FaissIndex object, read in process."""
        g = api_constants
        return self.api_get(f"/apis/{g.GROUP}/{g.VERSION}/namespaces/{namespace}/{g.PLURAL}/{name}")

    def events(self, namespace: str, involved: str) -> list[dict[str, Any]]:
        """The Events of one object (by name) in a namespace, read in process."""
        return self.api_get(f"/api/v1/namespaces/{namespace}/events", fieldSelector=f"involvedObject.name={involved}")["items"]

    def _api_client(self):
        """One API client per Cluster and process, from the stack's kubeconfig."""
        if self._client is None or self._client_pid != os.getpid():
            from kubernetes import config

            self._client, self._client_pid = config.new_client_from_config(config_file=self.env["KUBECONFIG"]), os.getpid()
        return self._client

    def helm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.run(self.env.get("HELM", "helm"), *args, timeout=timeout)

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env.get("AWS_DEFAULT_REGION", "us-east-1"),
        )

    # -- set-up steps -------------------------------------------------------------

    def ensure_namespace(self, namespace: str) -> None:
        """Create ``namespace`` (or update it) with Pod Security ``restricted`` enforced."""
        doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": POD_SECURITY_LABELS}}
        self.kubectl("apply", "-f", "-", input=json.dumps(doc))

    def ensure_credentials_secret(self, namespace: str) -> None:
        self.ensure_namespace(namespace)
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": CREDENTIALS_SECRET, "namespace": namespace},
            "stringData": {
                "AWS_ACCESS_KEY_ID": self.env["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": self.env["AWS_SECRET_ACCESS_KEY"],
            },
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    @contextmanager
    def temporary_namespace(self, prefix: str) -> Iterator[str]:
        """A fresh namespace ``<prefix>-<random>`` with the S3 credentials Secret, deleted afterwards."""
        ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.ensure_namespace(ns)
        self.wait_for("default ServiceAccount",
                      lambda: self.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 60)
        self.ensure_credentials_secret(ns)
        try:
            yield ns
        finally:
            self.kubectl("delete", "namespace", ns, "--wait=false", check=False)

    def install_operator(self, *extra: str) -> None:
        """``helm upgrade --install`` the chart; the operator then runs under its RBAC.

        The stack's S3 is the operator's one granted endpoint (``storage.endpoint``, the
        chart's default single-endpoint grant); ``extra`` may add ``storage.allowed``.
        """
        self.ensure_credentials_secret(OPERATOR_NAMESPACE)
        # One helm operation on the release at a time: parallel e2e workers (pytest-xdist) each
        # install the same default release, and helm refuses a second concurrent upgrade.
        with open(stack_dir() / "helm-release.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.helm(
                "upgrade", "--install", RELEASE, str(CHART),
                "--namespace", OPERATOR_NAMESPACE,
                "--set", f"storage.credentialsSecret={CREDENTIALS_SECRET}",
                "--set", f"storage.endpoint={self.s3_endpoint}",
                "--set", "resyncSeconds=10",
                "--wait", "--timeout", "180s",
                *extra,
            )

    def ensure_bucket(self, bucket: str) -> None:
        client = self.s3()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            try:
                client.create_bucket(Bucket=bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass  # another e2e worker created it between the listing and here

    def upload_embeddings(self, key: str, vectors: np.ndarray, ids: np.ndarray | None = None, ids_key: str | None = None) -> None:
        self.ensure_bucket(EMBEDDINGS_BUCKET)
        self.ensure_bucket(INDEX_BUCKET)
        client = self.s3()
        for obj_key, array in ((key, vectors), (ids_key, ids)):
            if obj_key is None or array is None:
                continue
            buf = io.BytesIO()
            np.save(buf, array)
            client.put_object(Bucket=EMBEDDINGS_BUCKET, Key=obj_key, Body=buf.getvalue())

    def sample_manifest(self, **overrides: Any) -> str:
        """The committed sample, pointed at this stack's S3, with optional spec overrides."""
        import yaml

        doc = yaml.safe_load(SAMPLE.read_text())
        doc["spec"]["storage"]["endpoint"] = self.s3_endpoint
        for dotted, value in overrides.items():
            target = doc
            *parents, leaf = dotted.split(".")
            for p in parents:
                target = target.setdefault(p, {})
            target[leaf] = value
        return yaml.safe_dump(doc, sort_keys=False)

    # -- reading state ------------------------------------------------------------

    def condition(self, kind_name: str, namespace: str, ctype: str) -> dict[str, Any] | None:
        obj = self.get_json(kind_name, "-n", namespace)
        return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), None)

    def wait_for(self, what: str, predicate, timeout: float, interval: float = 1.0, progress=None):
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
                last_error = None
            except Exception as exc:  # keep polling; report the last problem on timeout
                last_error = exc
            if progress is not None:
                progress()
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))

    def service_ip(self, namespace: str, name: str, timeout: float = 30) -> str:
        """The stack-local IP the node agent's Service proxy gives ``name`` (see hack/stack/svcnet.py)."""
        table = stack_dir() / "svcnet" / "services.json"

        def lookup() -> str | None:
            return json.loads(table.read_text())["services"].get(f"{namespace}/{name}") if table.exists() else None

        return self.wait_for(f"a Service IP for {namespace}/{name}", lookup, timeout, interval=0.5)

    def service_url(self, namespace: str, name: str, port: int = 80) -> str:
        """``http://<service IP>:<port>``: from the host, the way a pod reaches ``<name>.<namespace>.svc``."""
        return f"http://{self.service_ip(namespace, name)}:{port}"

    def service_pod_urls(self, service: str, namespace: str) -> list[str]:
        """Ready endpoints of a Service, from its EndpointSlices (no kube-proxy here)."""
        slices = self.api_get(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                              labelSelector=f"kubernetes.io/service-name={service}")
        urls = []
        for item in slices.get("items", []):
            port = next((p["port"] for p in item.get("ports") or [] if p.get("name") == "http"), None)
            for ep in item.get("endpoints") or []:
                if ep.get("conditions", {}).get("ready") and port:
                    urls += [f"http://{addr}:{port}" for addr in ep["addresses"]]
        return urls


def sample_embeddings(n: int, dim: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Clustered float32 vectors (not uniform noise) and distinct int64 ids."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, size=(max(8, n // 500), dim)).astype(np.float32)
    assign = rng.integers(0, len(centers), size=n)
    vectors = (centers[assign] + rng.normal(0, 1, size=(n, dim))).astype(np.float32)
    ids = (np.arange(n, dtype=np.int64) * 7 + 1000)
    return vectors, ids


def search(url: str, vectors: np.ndarray, k: int = 10, key: str | None = None, timeout: float = 10) -> dict[str, Any]:
    body: dict[str, Any] = {"vectors": vectors.tolist(), "k": k}
    if key is not None:
        body["key"] = key
    req = urllib.request.Request(
        f"{url}/v1/search", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())
