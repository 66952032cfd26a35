"""The builder and the server, run from the image's root filesystem, do their whole job.

Both run as uid 65532 on a read-only root with only /tmp writable, against moto's S3 on
loopback: the builder publishes a small index (manifest last), the test points the serving
pointer at it as the operator would, and the server downloads, verifies and loads it and
answers a query with the exact nearest neighbours.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tests.integration.s3_harness import Buckets, build_request, clustered, free_port, http, put_npy, wait_for
from sandbox import Rootfs, stop

DIM, N, K = 32, 400, 5
INDEX, NAMESPACE, HORIZON, PREFIX = "image-demo", "team-a", "6h", "faiss-indexes"
VERSION = "20260101T000000Z-0000beef"


def test_the_builder_publishes_and_the_server_loads_it_and_answers_a_query(rootfs: Rootfs, scratch: Path, s3_endpoint: str):
    from indexops_api.layout import pointer_key
    from indexops_api.pointer import ServingPointer
    from indexops_store.s3 import ArtifactStore, make_client

    s3 = make_client(s3_endpoint)
    suffix = uuid.uuid4().hex[:8]
    buckets = Buckets(source=f"src-{suffix}", artifacts=f"art-{suffix}")
    s3.create_bucket(Bucket=buckets.source)
    s3.create_bucket(Bucket=buckets.artifacts)
    data, ids = clustered(N, DIM, seed=3), np.arange(1000, 1000 + N, dtype=np.int64)
    put_npy(s3, buckets.source, "6h/vectors.npy", data)
    put_npy(s3, buckets.source, "6h/ids.npy", ids)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, index=INDEX, version=VERSION, dimension=DIM,
                            ids_key="{horizon}/ids.npy", indexType="HNSW")
    aws = _fake_aws()

    built = rootfs.run(["faiss-index-builder"], scratch, timeout=600, env={
        **aws, "FAISS_BUILD_REQUEST": json.dumps(request), "TERMINATION_MESSAGE_PATH": "/tmp/termination-log",
        "OMP_NUM_THREADS": "1"})

    assert built.returncode == 0, (scratch / "termination-log").read_text() if (scratch / "termination-log").exists() else built.stderr[-3000:]
    store = ArtifactStore(s3, buckets.artifacts)
    key = pointer_key(PREFIX, NAMESPACE, INDEX, HORIZON)
    manifest = store.read_manifest(f"{PREFIX}/{NAMESPACE}/{INDEX}/{HORIZON}/versions/{VERSION}/manifest.json")
    assert manifest.vectors == N
    store.write_pointer(key, ServingPointer(generation=1, stable_version=VERSION, updated_at=datetime.now(timezone.utc).isoformat()),
                        etag=None)

    port = free_port()
    log = scratch.parent / "server.log"
    server = rootfs.start(["faiss-index-server"], scratch, log, env={
        **aws, "POD_IP": "127.0.0.1", "FAISS_SERVING_PORT": str(port), "FAISS_POINTER_BUCKET": buckets.artifacts,
        "FAISS_POINTER_KEY": key, "FAISS_S3_ENDPOINT_URL": s3_endpoint, "FAISS_POLL_SECONDS": "0.5",
        "FAISS_CACHE_DIR": "/tmp/cache", "OMP_NUM_THREADS": "1"})
    try:
        def ready() -> bool:
            if server.poll() is not None:
                return True  # died: stop waiting, the assertion below says why
            try:
                return http("GET", f"http://127.0.0.1:{port}/readyz", timeout=1)[0] == 200
            except OSError:
                return False
        wait_for(ready, timeout=120, interval=0.5, what="the server from the image to load the version")
        assert server.poll() is None, stop(server, log)[-3000:]
        queries = data[:3] + 0.01
        code, body = http("POST", f"http://127.0.0.1:{port}/v1/search", {"vectors": queries.tolist(), "k": K})
    finally:
        stderr = stop(server, log)

    assert code == 200, (body, stderr[-3000:])
    assert body["version"] == VERSION
    exact = ids[np.argsort(((queries[:, None, :] - data[None, :, :]) ** 2).sum(axis=2), axis=1)[:, :K]]
    assert [row[0] for row in body["ids"]] == exact[:, 0].tolist()
    assert (scratch / "cache").is_dir(), "the server cached the version somewhere other than /tmp"


def _fake_aws() -> dict[str, str]:
    from conftest import FAKE_AWS

    return dict(FAKE_AWS)
