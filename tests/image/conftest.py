"""Fixtures for the image tests: the image `make image` built, mounted read-only as a rootfs.

`make test-image` builds the image (hack/image/build.sh) and runs these tests; FAISS_IMAGE
names another one. A missing image is a failure that says how to build it, never a skip.
The builder/server tests need only a local S3 (moto on loopback, started here); the operator
test needs the local stack (`make test-image` starts it).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox import Rootfs  # tests/image/sandbox.py (pytest puts this folder on sys.path)

IMAGE = os.environ.get("FAISS_IMAGE", "localhost/faiss-index-operator:dev")
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _buildah(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def image_config() -> dict:
    """The OCI config of the image under test (User, Env, Cmd)."""
    try:
        raw = _buildah("inspect", "--type", "image", IMAGE)
    except (RuntimeError, FileNotFoundError) as exc:
        pytest.fail(f"image {IMAGE} not found ({exc}); build it with `make image`")
    return json.loads(raw)["OCIv1"]["config"]


@pytest.fixture(scope="session")
def rootfs(image_config: dict) -> Iterator[Rootfs]:
    """A working container of the image, mounted; removed at the end (the image stays)."""
    name = f"faiss-image-test-{uuid.uuid4().hex[:8]}"
    _buildah("from", "--pull-never", "--name", name, IMAGE)
    try:
        path = Path(_buildah("mount", name))
        env = dict(item.split("=", 1) for item in image_config.get("Env", []))
        yield Rootfs(path=path, user=image_config["User"], env=env)
    finally:
        subprocess.run(["buildah", "umount", name], capture_output=True, timeout=60)
        subprocess.run(["buildah", "rm", name], capture_output=True, timeout=60)


@pytest.fixture
def scratch(tmp_path: Path, rootfs: Rootfs) -> Path:
    from sandbox import scratch_dir

    uid, gid = (int(x) for x in rootfs.user.split(":"))
    return scratch_dir(tmp_path, uid, gid)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback (the same server the integration tests use)."""
    from moto.server import ThreadedMotoServer
    from tests.integration.s3_harness import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    patch = pytest.MonkeyPatch()
    for key, value in FAKE_AWS.items():
        patch.setenv(key, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    patch.undo()
