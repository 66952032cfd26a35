"""Chaos suite fixtures: the local stack (as for e2e), the operator installed by helm, sample data.

`make chaos` runs every scenario; `make test` runs those marked ``chaos_quick`` (≤ 3 min
together on the dev machine). Each scenario gets its own namespace.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.localstack import EMBEDDINGS_BUCKET, INDEX_BUCKET, Cluster, sample_embeddings
from scenario import DIM, SLOW, SMALL  # tests/chaos/scenario.py (pytest puts this folder on sys.path)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stack_up() -> None:
    """`python -m hack.stack.stack up` is idempotent: a no-op when the stack is healthy (as tests/e2e/conftest.py)."""
    subprocess.run([sys.executable, "-m", "hack.stack.stack", "up"], check=True, timeout=3600, cwd=ROOT)


@pytest.fixture(scope="session")
def cluster(stack_up: None) -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    c.ensure_bucket(EMBEDDINGS_BUCKET)
    c.ensure_bucket(INDEX_BUCKET)
    for key, ids_key, n in (SMALL, SLOW):
        vectors, ids = sample_embeddings(n, DIM, seed=n)
        c.upload_embeddings(key.format(horizon="6h"), vectors, ids, ids_key.format(horizon="6h"))
    return c


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    with cluster.temporary_namespace("chaos") as ns:
        yield ns
