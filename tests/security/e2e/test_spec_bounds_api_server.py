"""The API server itself refuses unbounded FaissIndex fields, with a message naming the field.

Server-side dry-run apply (``kubectl apply --dry-run=server``): the real validation, nothing
stored. Each case used to be accepted.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from support import readable

from hack.localstack import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.security]

BASE: dict[str, Any] = {
    "horizon": "6h", "dimension": 8,
    "source": {"s3": {"bucket": "faiss-demo-embeddings", "key": "x.npy"}},
    "storage": {"bucket": "faiss-demo-indexes"},
}

UNBOUNDED = {
    "sync.interval 1s": ({"sync": {"interval": "1s"}}, "spec.sync.interval"),
    "a 10-digit duration": ({"sync": {"interval": "9999999999d"}}, "spec.sync.interval"),
    "a 10-digit rollout pause": ({"rollout": {"steps": [{"percent": 10, "pause": "9999999999d"}]}}, "pause"),
    "an ftp source endpoint": ({"source": {"s3": {"bucket": "b-1", "key": "k", "endpoint": "ftp://x"}}}, "spec.source.s3.endpoint"),
    "a storage endpoint with credentials": ({"storage": {"bucket": "b-1", "endpoint": "http://k:s@x"}}, "spec.storage.endpoint"),
    "a 300-character endpoint": ({"storage": {"bucket": "b-1", "endpoint": "http://" + "a" * 300}}, "spec.storage.endpoint"),
    "memory: lots": ({"build": {"resources": {"limits": {"memory": "lots"}}}}, "spec.build.resources.limits"),
    "an image with a shell command": ({"build": {"image": "x; rm -rf /"}}, "spec.build.image"),
}


@pytest.fixture(scope="module")
def cluster(stack_env: dict[str, str]) -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()  # the chart carries the CRD generated from the models
    return c


@pytest.mark.parametrize(("change", "field"), list(UNBOUNDED.values()), ids=list(UNBOUNDED))
def test_the_api_server_refuses_an_unbounded_field_naming_it(cluster: Cluster, change: dict, field: str) -> None:
    doc = {"apiVersion": "faiss.indexops.io/v1alpha1", "kind": "FaissIndex",
           "metadata": {"name": f"bounds-{uuid.uuid4().hex[:6]}", "namespace": "default"}, "spec": {**BASE, **change}}
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False)
    assert result.returncode != 0, "accepted"
    assert field in result.stderr and readable(result.stderr), result.stderr


def test_the_api_server_accepts_the_bounded_forms(cluster: Cluster) -> None:
    spec = {**BASE, "sync": {"interval": "10s"}, "storage": {"bucket": "b-1", "endpoint": "http://127.0.0.1:9000"},
            "build": {"resources": {"requests": {"cpu": "500m", "memory": "1.5Gi"}, "limits": {"nvidia.com/gpu": "1"}}}}
    doc = {"apiVersion": "faiss.indexops.io/v1alpha1", "kind": "FaissIndex",
           "metadata": {"name": f"bounds-{uuid.uuid4().hex[:6]}", "namespace": "default"}, "spec": spec}
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False)
    assert result.returncode == 0, result.stderr
