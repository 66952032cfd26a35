"""Download and verify a version's files, optionally in a low-priority child process.

A hot swap must not steal the CPU that answers queries. Downloading a few hundred MB
with boto3 is Python work on several transfer threads, and hashing it is CPU work; done
in the serving process, both compete with the event loop for the GIL and for the cores,
which is what made p99 during a swap 7.7x the steady p99. So while a version serves, the
server runs this step in a long-lived worker process (``python -m index_serving.fetch
--serve``, started with the runtime so its imports are paid before a swap needs it) at a
lower CPU priority
(``nice`` 10 by default, ``FAISS_FETCH_NICE``; a per-process setting: lowering the
priority of a thread would lower the whole server's): the kernel then gives the child
about a tenth of the CPU share of the server's threads when both want the cores, and
all of what the server leaves idle; the child holds no lock the server needs. Not 19:
on a node where many processes compete in one cgroup, nice 19 can starve a load for
minutes. The serving process only maps the
verified file and warms it up.

The first version (nothing serves yet, nothing to protect) and embedders that turn the
worker off (``subprocess_fetch=False``) run the same ``fetch_verified`` in process. Either
way nothing is renamed into the cache until its size and sha256 match the manifest.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
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


def _nice() -> int:
    try:
        return min(19, max(0, int(os.environ.get(ENV_FETCH_NICE, FETCH_NICE))))
    except ValueError:
        return FETCH_NICE


class FetchWorker:
    """One long-lived child (``python -m index_serving.fetch``) that fetches jobs sent on its stdin.

    Started once (``start``, ahead of need: importing boto3 costs seconds of CPU at low
    priority), restarted if it dies. One job at a time; the caller (the pointer poller)
    is the only user. A job that outlives ``timeout`` kills the child.
    """

    def __init__(self, store: ArtifactStore):
        self.store = store
        self._proc: subprocess.Popen[str] | None = None
        self._warm_answer_pending = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._ensure()

    def _job(self, files: list[dict[str, Any]], directory: Path | None) -> str:
        meta = self.store.client.meta
        return json.dumps({"endpoint": meta.endpoint_url, "region": meta.region_name, "bucket": self.store.bucket,
                           "directory": str(directory or ""), "files": files}) + "\n"

    def _ensure(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-m", "index_serving.fetch", "--serve", str(_nice())],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          text=True, bufsize=1)
            # A job with no files: the child builds its S3 client (seconds of CPU loading
            # botocore's models) at normal priority, and lowers its priority only after it.
            assert self._proc.stdin is not None
            self._proc.stdin.write(self._job([], None))
            self._proc.stdin.flush()
            self._warm_answer_pending = True
        return self._proc

    def fetch(self, files: list[dict[str, Any]], directory: Path, timeout: float = FETCH_TIMEOUT_SECONDS) -> None:
        """``fetch_verified`` each of ``files`` in the child; raises ``FetchFailed``."""
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                if self._warm_answer_pending:  # the warm-up's answer comes first
                    ready, _, _ = select.select([proc.stdout], [], [], timeout)
                    if ready:
                        proc.stdout.readline()
                    self._warm_answer_pending = False
                proc.stdin.write(self._job(files, directory))
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], timeout)
                line = proc.stdout.readline() if ready else None
            except (BrokenPipeError, OSError) as exc:
                self._kill()
                raise FetchFailed("download", f"fetch process failed: {exc}") from None
            if line is None:
                self._kill()
                raise FetchFailed("download", f"fetching did not finish within {timeout:.0f}s")
        try:
            answer = json.loads(line)
        except ValueError:
            answer = {}
        if answer.get("ok"):
            return
        if answer.get("reason"):
            raise FetchFailed(answer["reason"], answer.get("message", ""))
        with self._lock:
            self._kill()
        raise FetchFailed("download", "fetch process exited without an answer")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None and self._proc.stdin is not None:
                self._proc.stdin.close()  # EOF: the child exits
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            self._kill()


def _job(job: dict[str, Any], clients: dict[tuple[str, str], Any]) -> dict[str, Any]:
    where = (job["endpoint"], job["region"])
    if where not in clients:
        clients[where] = make_client(*where)
    store = ArtifactStore(clients[where], job["bucket"])
    directory = Path(job["directory"])
    try:
        for f in job["files"]:
            fetch_verified(store, f["key"], f["name"], int(f["size"]), f["sha256"], directory)
    except FetchFailed as exc:
        return {"ok": False, "reason": exc.reason, "message": str(exc)}
    except Exception as exc:  # an unexpected error is an answer too, never a dead worker
        return {"ok": False, "reason": "download", "message": f"{type(exc).__name__}: {exc}"}
    return {"ok": True}


def _serve(nice: int) -> None:
    clients: dict[tuple[str, str], Any] = {}
    lowered = False
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_job(json.loads(line), clients)), flush=True)
        if not lowered:  # after the first (warm-up) job: the client exists, the imports are done
            lowered = True
            try:
                os.nice(nice)
            except OSError:
                pass  # not allowed to lower priority: still correct, only less polite


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    _serve(int(sys.argv[2]) if len(sys.argv) > 2 else FETCH_NICE)
