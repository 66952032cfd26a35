"""Integration fixtures: a real S3 API (moto's server on 127.0.0.1) and fresh buckets per test,
and a real PostgreSQL (``hack/postgres/pg.sh``, started once per session on 127.0.0.1).

Fake credentials are set for the whole session so boto3 never looks for real ones,
and nothing is ever sent anywhere but 127.0.0.1. Helpers live in ``s3_harness.py``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from s3_harness import Buckets, free_port

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

PG_SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "postgres" / "pg.sh"


@pytest.fixture(scope="session")
def postgres_env() -> Iterator[dict[str, str]]:
    """A real PostgreSQL on 127.0.0.1 (``hack/postgres/pg.sh``), stopped and removed at the end.

    The directory is made under /tmp (not pytest's 0700 basetemp) because as root the
    server runs as an unprivileged user that must reach it.
    """
    directory = tempfile.mkdtemp(prefix="faiss-pg-")
    started = subprocess.run(["bash", str(PG_SCRIPT), "start", directory], capture_output=True, text=True, timeout=900)
    try:
        if started.returncode != 0:
            pytest.fail(f"pg.sh start failed ({started.returncode}):\n{started.stderr[-3000:]}")
        env = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        yield env
    finally:
        subprocess.run(["bash", str(PG_SCRIPT), "stop", directory], capture_output=True, timeout=120)
        leftover = Path(directory, "data", "postmaster.pid").exists()
        shutil.rmtree(directory, ignore_errors=True)
        assert not leftover, "PostgreSQL did not stop"


@pytest.fixture(scope="session")
def postgres_dsn(postgres_env: dict[str, str]) -> str:
    return postgres_env["FAISS_POSTGRES_DSN"]
