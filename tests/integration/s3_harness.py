"""Helpers shared by the integration tests: S3 data, builder runs, a threaded HTTP server.

Kept out of conftest.py so test modules can import them by name.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Buckets:
    source: str
    artifacts: str


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def put_npy(s3: Any, bucket: str, key: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def clustered(n: int, dim: int, seed: int, clusters: int = 16) -> np.ndarray:
    """Embedding-like data: points around a few centres (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)) * 4
    return (centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def build_request(
    *, buckets: Buckets, endpoint: str, index: str = "demo", version: str = "20260101T000000Z-00000001",
    build_key: str | None = None, source_key: str = "{horizon}/vectors.npy", ids_key: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "horizon": "6h",
        "dimension": 32,
        "metric": "L2",
        "indexType": "Flat",
        "source": {"s3": {"bucket": buckets.source, "key": source_key, **({"idsKey": ids_key} if ids_key else {})}},
        "storage": {"bucket": buckets.artifacts, "prefix": "faiss-indexes", "endpoint": endpoint},
        "validation": {"queries": 50, "k": 10},
    }
    body.update(spec)
    return {"index": index, "namespace": "team-a", "version": version,
            "buildKey": build_key or uuid.uuid5(uuid.NAMESPACE_URL, version).hex * 2, "spec": body}


@dataclass(frozen=True)
class BuildResult:
    exit_code: int
    termination: str
    prefix: str


def run_builder(request: dict[str, Any], tmp_path: Path, stage: str | None = None,
                index: int | None = None) -> BuildResult:
    """The builder's process logic in-process (same code path as the CLI minus click).

    ``stage``/``index``: one stage of a sharded build, with the environment an Indexed Job
    gives its pods (``FAISS_BUILD_STAGE``, ``JOB_COMPLETION_INDEX``).
    """
    from index_builder.cli import execute
    from indexops_api.layout import version_prefix

    termination = tmp_path / f"termination-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "FAISS_BUILD_REQUEST": json.dumps(request), "TERMINATION_MESSAGE_PATH": str(termination)}
    if stage is not None:
        env["FAISS_BUILD_STAGE"] = stage
    if index is not None:
        env["JOB_COMPLETION_INDEX"] = str(index)
    code = execute(None, None, env)
    spec = request["spec"]
    prefix = version_prefix(spec["storage"].get("prefix", "faiss-indexes"), request["namespace"], request["index"],
                            spec["horizon"], request["version"])
    return BuildResult(code, termination.read_text() if termination.exists() else "", prefix)


def run_stage(request: dict[str, Any], tmp_path: Path, stage: str, index: int | None = None) -> tuple[int, str]:
    """One stage of a sharded build (train, shard N, finalize): its exit code and termination message."""
    result = run_builder(request, tmp_path, stage, index)
    return result.exit_code, result.termination


# -- serving helpers ---------------------------------------------------------------------------


def http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, ctype = resp.read(), resp.status, resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raw, status, ctype = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in ctype else raw.decode())


@dataclass
class RunningServer:
    url: str
    runtime: Any


@contextmanager
def running_server(config: Any) -> Iterator[RunningServer]:
    """``index_serving.server.serve`` in a thread with its own event loop."""
    from index_serving.runtime import IndexRuntime
    from index_serving.server import serve

    runtime = IndexRuntime.from_config(config)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    bound: dict[str, Any] = {}
    failure: list[BaseException] = []

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve(config, runtime, stop, on_listening=lambda h, p: bound.update(host=h, port=p)))
        except BaseException as exc:  # surfaced by the wait below
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="test-server", daemon=True)
    thread.start()
    wait_for(lambda: bound or failure, what="server to listen")
    if failure:
        raise failure[0]
    try:
        yield RunningServer(f"http://{bound['host']}:{bound['port']}", runtime)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "server did not stop"


# -- Parquet and PostgreSQL source helpers ---------------------------------------------------------


def put_parquet(s3: Any, bucket: str, key: str, table: Any, row_group_size: int | None = None) -> None:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def vector_table(vectors: np.ndarray, ids: np.ndarray | None = None, *, column: str = "embedding",
                 id_column: str = "id", fixed: bool = False) -> Any:
    """An Arrow table with a list<float32> (or fixed_size_list) vector column and optional ids."""
    import pyarrow as pa

    flat = pa.array(vectors.astype(np.float32).ravel())
    if fixed:
        column_array = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    else:
        offsets = pa.array(np.arange(0, vectors.size + 1, vectors.shape[1], dtype=np.int32))
        column_array = pa.ListArray.from_arrays(offsets, flat)
    data = {column: column_array}
    if ids is not None:
        data = {id_column: pa.array(ids), **data}
    return pa.table(data)


def pg_execute(dsn: str, statement: str, rows: list[tuple[Any, ...]] | None = None) -> None:
    """Run one statement (``executemany`` when rows are given) and commit."""
    import psycopg

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        if rows is None:
            cur.execute(statement)
        else:
            cur.executemany(statement, rows)
