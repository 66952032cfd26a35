"""Integration fixtures: a real S3 API (moto's server on 127.0.0.1) and fresh buckets per test,
and a real PostgreSQL (``hack/postgres/pg.sh``, started once per session on 127.0.0.1).

Fake credentials are set for the whole session so boto3 never looks for real ones,
and nothing is ever sent anywhere but 127.0.0.1. Helpers live in ``s3_harness.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.s3_harness import Buckets, free_port

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "FAISS_S3_ENDPOINT_URL")


@pytest.fixture(scope="session")
def fake_aws_env() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    for name, value in FAKE_AWS_ENV.items():
        patch.setenv(name, value)
    for name in UNSET_AWS_ENV:
        patch.delenv(name, raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def s3_endpoint(fake_aws_env: None) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    from indexops_store.s3 import make_client

    return make_client(s3_endpoint)


@pytest.fixture
def buckets(s3: Any) -> Buckets:
    suffix = uuid.uuid4().hex[:10]
    made = Buckets(source=f"src-{suffix}", artifacts=f"art-{suffix}")
    s3.create_bucket(Bucket=made.source)
    s3.create_bucket(Bucket=made.artifacts)
    return made




# -- PostgreSQL ---------------------------------------------------------------------------------





@pytest.fixture(scope="module")
def one_faiss_thread() -> Iterator[None]:
    """Two shared cores: OpenMP spinning makes FAISS slower, not faster; one thread is also deterministic."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
