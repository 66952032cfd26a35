"""Fixtures shared by integration and e2e tests: a real PostgreSQL on loopback."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_SCRIPT = Path(__file__).resolve().parents[1] / "hack" / "postgres" / "pg.sh"


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
