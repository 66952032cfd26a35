"""The processes the serving benchmark drives: S3 (moto), the builder, serving replicas.

Everything is a real process on 127.0.0.1, because what is measured is the product's own
processes. moto runs as its own ``moto_server`` process rather than moto's in-process
thread: during a hot swap a replica downloads a few hundred MB from S3, and serving those
bytes from a thread of the benchmark process would take the GIL from the load generator
and show up as client latency that the server never caused.

A version is published the way the operator's build Job publishes it: the
``faiss-index-builder`` console script with a file source and the moto endpoint; the
pointer is written with ``ArtifactStore.write_pointer`` (conditional on the ETag read),
exactly the write the operator makes on a promotion.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BUCKET = "bench-serving"
NAMESPACE = "bench"
INDEX = "serving"
HORIZON = "6h"
PREFIX = "faiss-indexes"  # storage.prefix of the spec; the pointer and versions live under it
K = 10


def say(message: str) -> None:
    print(f"[serving] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 2.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def fake_aws_env() -> None:
    """Credentials boto3 accepts without looking anywhere else; nothing leaves 127.0.0.1."""
    for var, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(var, value)


class Moto:
    """``moto_server`` in its own process, with the benchmark's bucket created."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w")
        self.proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # answering at all is enough
            except OSError as exc:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"moto_server did not start; see {log}") from exc
                time.sleep(0.2)
        from indexops_store import make_client

        make_client(self.endpoint).create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self._log.close()


def store(endpoint: str):
    from indexops_store import ArtifactStore, make_client

    return ArtifactStore(make_client(endpoint), BUCKET)


def pointer_key() -> str:
    from indexops_api.layout import pointer_key as key

    return key(PREFIX, NAMESPACE, INDEX, HORIZON)


def publish(data: Path, dim: int, ef_search: int, endpoint: str, work: Path) -> dict:
    """One ``faiss-index-builder`` run: HNSW32 (efConstruction 200) of ``data``, uploaded to moto.

    Returns the version id, the manifest (wire form), the builder's wall time and the local
    paths of the downloaded index and ids files (the raw-faiss baseline reads those bytes).
    """
    from indexops_api.build_request import BuildRequest
    from indexops_api.layout import build_key, version_id, version_prefix
    from indexops_api.spec import FaissIndexSpec

    spec = FaissIndexSpec.model_validate({
        "horizon": HORIZON, "dimension": dim, "indexType": "HNSW",
        "parameters": {"m": 32, "efConstruction": 200, "efSearch": ef_search},
        "source": {"file": {"path": str(data)}},
        "storage": {"bucket": BUCKET, "endpoint": endpoint, "prefix": PREFIX},
        "validation": {"k": K, "minRecall": 0.0},
    })
    key = build_key(spec)
    version = version_id(datetime.now(timezone.utc), key)
    while store(endpoint).exists(f"{version_prefix(PREFIX, NAMESPACE, INDEX, HORIZON, version)}/manifest.json"):
        time.sleep(1)  # version ids have one-second resolution; two builds of one spec need two
        version = version_id(datetime.now(timezone.utc), key)
    request = BuildRequest(index=INDEX, namespace=NAMESPACE, version=version, build_key=key, spec=spec)
    env = {**os.environ, "FAISS_BUILD_REQUEST": json.dumps(request.to_wire()),
           "TERMINATION_MESSAGE_PATH": str(work / f"term-{version}")}
    t0 = time.perf_counter()
    done = subprocess.run([str(VENV_BIN / "faiss-index-builder"), "--log-level", "WARNING", "--workdir", str(work)],
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"builder exited {done.returncode}: {done.stderr[-2000:]}")
    artifacts = store(endpoint)
    prefix = version_prefix(spec.storage.prefix, NAMESPACE, INDEX, HORIZON, version)
    manifest = artifacts.read_manifest(f"{prefix}/manifest.json")
    wire = manifest.to_wire() if hasattr(manifest, "to_wire") else manifest.model_dump(by_alias=True, mode="json")
    local = work / "artifacts" / version
    local.mkdir(parents=True, exist_ok=True)
    for name in (manifest.index_file, manifest.ids_file):
        artifacts.download_file(f"{prefix}/{name}", local / name)
    return {"version": version, "manifest": wire, "builder_seconds": seconds,
            "index_path": str(local / manifest.index_file), "ids_path": str(local / manifest.ids_file),
            "index_file_bytes": (local / manifest.index_file).stat().st_size}


def write_pointer(endpoint: str, stable: str) -> tuple[int, float]:
    """Promote ``stable`` with the operator's conditional write; (generation, seconds the write took)."""
    from indexops_api.pointer import ServingPointer

    artifacts, key = store(endpoint), pointer_key()
    current, etag = artifacts.read_pointer(key)
    generation = current.generation + 1 if current else 1
    t0 = time.perf_counter()
    artifacts.write_pointer(key, ServingPointer(generation=generation, stable_version=stable,
                                                updated_at=datetime.now(timezone.utc).isoformat()), etag=etag)
    return generation, time.perf_counter() - t0


def stable_of(status: dict) -> tuple[str | None, int | None]:
    """(stable version, applied generation) from ``/v1/status``; tolerant of added blocks."""
    stable = next((v.get("version") for v in status.get("versions") or [] if v.get("role") == "stable"), None)
    return stable, status.get("appliedGeneration")


class Server:
    """One ``faiss-index-server`` replica on 127.0.0.1 following the benchmark's pointer."""

    def __init__(self, name: str, endpoint: str, work: Path, poll_seconds: float, search_threads: int | None = None,
                 env: dict[str, str] | None = None):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"{name}.log"
        extra = env or {}
        env = {**os.environ, "FAISS_POINTER_BUCKET": BUCKET, "FAISS_POINTER_KEY": pointer_key(),
               "FAISS_S3_ENDPOINT_URL": endpoint, "POD_IP": "127.0.0.1", "FAISS_SERVING_PORT": str(self.port),
               "FAISS_CACHE_DIR": str(work / f"cache-{name}"), "FAISS_POLL_SECONDS": str(poll_seconds)}
        if search_threads:
            env["FAISS_SEARCH_THREADS"] = str(search_threads)
        self.extra_env = dict(extra)
        env.update(extra)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(VENV_BIN / "faiss-index-server"), "--log-level", "WARNING"], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> dict:
        return get_json(f"{self.url}/v1/status")[1]

    def notify(self) -> int:
        """``POST /v1/refresh``: what the operator does after a pointer write (faiss_operator/notify.py)."""
        req = urllib.request.Request(f"{self.url}/v1/refresh", data=b"", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=1.0) as resp:
                return resp.status
        except (urllib.error.URLError, OSError):
            return 0

    def wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}; log tail:\n{self.log_tail()}")
            try:
                if get_json(f"{self.url}/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not listening within {timeout}s; log tail:\n{self.log_tail()}")

    def wait_serving(self, version: str, timeout: float = 300) -> dict:
        """Block until ``/v1/status`` reports ``version`` as stable; the status then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}; log tail:\n{self.log_tail()}")
            try:
                status = self.status()
                if stable_of(status)[0] == version:
                    return status
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not serve {version} within {timeout}s; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS / RssAnon / RssFile / VmHWM of a process, in bytes (empty once it exited)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out
