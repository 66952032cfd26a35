"""Download and verify a version's files, optionally in a low-priority child process.

A hot swap must not steal the CPU that answers queries. Downloading a few hundred MB
with boto3 is Python work on several transfer threads, and hashing it is CPU work; done
in the serving process, both compete with the event loop for the GIL and for the cores,
which is what made p99 during a swap 7.7x the steady p99. So the server runs this step
in a child process (``python -m index_serving.fetch``) at a lower CPU priority
(``nice`` 10 by default, ``FAISS_FETCH_NICE``; a per-process setting: lowering the
priority of a thread would lower the whole server's): the kernel then gives the child
about a tenth of the CPU share of the server's threads when both want the cores, and
all of what the server leaves idle; the child holds no lock the server needs. Not 19:
on a node where many processes compete in one cgroup, nice 19 can starve a load for
minutes. The serving process only maps the
verified file and warms it up.

The same ``fetch_verified`` runs in process for embedders and tests (``VersionLoader``
with ``subprocess_fetch=False``). Either way nothing is renamed into the cache until its
size and sha256 match the manifest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from indexops_store.s3 import ArtifactStore, StorageError, make_client, sha256_file

ENV_FETCH_NICE = "FAISS_FETCH_NICE"
FETCH_NICE = 10
FETCH_TIMEOUT_SECONDS = 3600.0


class FetchFailed(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def fetch_verified(store: ArtifactStore, key: str, name: str, size: int, sha256: str, directory: Path) -> None:
    """``directory/name`` equal to the object ``key`` by size and sha256 (a matching cached file is kept)."""
    path = directory / name
    if path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256:
        return
    partial = directory / f".{name}.part"
    try:
        store.download_file(key, partial)
    except StorageError as exc:
        partial.unlink(missing_ok=True)
        raise FetchFailed("download", str(exc)) from exc
    got = partial.stat().st_size
    if got != size:
        partial.unlink(missing_ok=True)
        raise FetchFailed("checksum", f"{name} has {got} bytes, manifest says {size}")
    digest = sha256_file(partial)
    if digest != sha256:
        partial.unlink(missing_ok=True)
        raise FetchFailed("checksum", f"{name} sha256 {digest[:16]}... does not match manifest {sha256[:16]}...")
    os.replace(partial, path)


def fetch_in_child(store: ArtifactStore, files: list[dict[str, Any]], directory: Path,
                   timeout: float = FETCH_TIMEOUT_SECONDS) -> None:
    """Run ``fetch_verified`` for each of ``files`` in a lower-priority child; raises ``FetchFailed``."""
    meta = store.client.meta
    try:
        nice = min(19, max(0, int(os.environ.get(ENV_FETCH_NICE, FETCH_NICE))))
    except ValueError:
        nice = FETCH_NICE
    job = {"endpoint": meta.endpoint_url, "region": meta.region_name, "bucket": store.bucket,
           "directory": str(directory), "files": files, "nice": nice}
    try:
        done = subprocess.run([sys.executable, "-m", "index_serving.fetch"], input=json.dumps(job), text=True,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FetchFailed("download", f"fetching did not finish within {timeout:.0f}s") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if done.returncode == 0 and answer.get("ok"):
        return
    if answer.get("reason"):
        raise FetchFailed(answer["reason"], answer.get("message", ""))
    raise FetchFailed("download", f"fetch process exited {done.returncode}: {done.stderr.strip()[-500:]}")


def _child(job: dict[str, Any]) -> dict[str, Any]:
    try:
        os.nice(int(job.get("nice", FETCH_NICE)))
    except OSError:
        pass  # not allowed to lower priority further: still correct, only less polite
    store = ArtifactStore(make_client(job["endpoint"], job["region"]), job["bucket"])
    directory = Path(job["directory"])
    try:
        for f in job["files"]:
            fetch_verified(store, f["key"], f["name"], int(f["size"]), f["sha256"], directory)
    except FetchFailed as exc:
        return {"ok": False, "reason": exc.reason, "message": str(exc)}
    return {"ok": True}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.stdin.read()))), flush=True)
