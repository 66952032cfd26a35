"""Shared fixtures for e2e tests: the local dev stack (hack/stack) must be up.

The session fixture runs `python -m hack.stack.stack up`, which is idempotent (a no-op when
the stack is already healthy), and never tears it down: `make test` /
`make stack-down` does that, so a developer can keep one stack across runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from hack.stack.stackconf import read_env_file

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """`python -m hack.stack.stack up`, then the stack's env-file values (KUBECONFIG, S3_ENDPOINT_URL, ...)."""
    subprocess.run([sys.executable, "-m", "hack.stack.stack", "up"], check=True, timeout=3600, cwd=REPO_ROOT)
    state = Path(os.environ.get("FAISS_STACK_DIR", str(REPO_ROOT / ".stack")))
    return read_env_file(state / "env")


@pytest.fixture(scope="session")
def kubeconfig(stack_env: dict[str, str]) -> str:
    return stack_env["KUBECONFIG"]


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[client.ApiClient]:
    """Admin client for the local stack (the official Python client)."""
    api = config.new_client_from_config(config_file=kubeconfig)
    yield api
    api.close()
