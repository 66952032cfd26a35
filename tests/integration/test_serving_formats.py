"""JSON and binary requests to the real server return the same neighbours (one search path)."""

from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from s3_harness import Buckets, clustered, http, running_server, wait_for
from test_serving_s3 import DIM, config, publish, point_to

pytestmark = pytest.mark.integration


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_raw_npy_and_json_bodies_get_the_same_answer_in_json_and_in_binary(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", clustered(1000, DIM, seed=3), np.arange(1000, dtype=np.int64) * 7)
    point_to(s3, buckets, "v1")
    queries = clustered(3, DIM, seed=11)
    npy = io.BytesIO()
    np.save(npy, queries)

    with running_server(config(s3_endpoint, buckets, tmp_path)) as server:
        wait_for(lambda: http("GET", f"{server.url}/readyz")[0] == 200, what="readiness")
        url = f"{server.url}/v1/search"
        _, _, as_json = post(url, json.dumps({"vectors": queries.tolist(), "k": 4}).encode(), {"Content-Type": "application/json"})
        _, _, raw_json = post(f"{url}?k=4", queries.astype("<f4").tobytes(),
                              {"Content-Type": "application/octet-stream", "X-Dimension": str(DIM)})
        code, headers, binary = post(f"{url}?k=4&d={DIM}", npy.getvalue(),
                                     {"Content-Type": "application/x-npy", "Accept": "application/octet-stream"})

    expected = json.loads(as_json)
    assert json.loads(raw_json) == expected
    assert code == 200 and (headers["X-Faiss-Version"], headers["X-Faiss-Rows"], headers["X-Faiss-K"]) == ("v1", "3", "4")
    ids = np.frombuffer(binary, "<i8", 12).reshape(3, 4)
    distances = np.frombuffer(binary, "<f4", 12, offset=96).reshape(3, 4)
    assert ids.tolist() == expected["ids"]
    assert np.allclose(distances, expected["distances"])
