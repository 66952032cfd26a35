"""Fixtures shared by integration and e2e tests: a real PostgreSQL on loopback.

Also the rule that plain ``pytest`` (no paths, no ``-m``) never starts the local stack: it
collects the ``testpaths`` (unit, integration, security) and deselects the tests marked
``e2e``. A run asks for the stack by naming those tests: ``-m e2e`` (as ``make test-e2e``
and ``make test`` do), or a path such as ``tests/e2e/test_chart.py`` or ``tests/chaos``.

Under pytest-xdist, modules take a shared or exclusive module lock (``release_share``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_SCRIPT = ROOT / "hack" / "postgres" / "pg.sh"
_DESELECTED = pytest.StashKey[int]()
STACK_HINT = "need the local stack; ask with `-m e2e`, a path under tests/e2e or tests/chaos, or `make test-e2e`"


def stack_was_asked_for(config: pytest.Config) -> bool:
    """Only a run with explicit paths or a marker expression may start the stack."""
    return config.args_source is not pytest.Config.ArgsSource.TESTPATHS or bool(config.option.markexpr)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if stack_was_asked_for(config):
        return
    stack_tests = [item for item in items if item.get_closest_marker("e2e")]
    if stack_tests:
        config.hook.pytest_deselected(items=stack_tests)
        items[:] = [item for item in items if not item.get_closest_marker("e2e")]
        config.stash[_DESELECTED] = len(stack_tests)


def pytest_report_header(config: pytest.Config) -> str | None:
    return None if stack_was_asked_for(config) else f"plain run: tests marked e2e are deselected (they {STACK_HINT})"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if config.stash.get(_DESELECTED, 0):
        terminalreporter.write_line(f"{config.stash[_DESELECTED]} tests marked e2e deselected: they {STACK_HINT}")


@contextmanager
def _module_lock(path: Path, exclusive: bool) -> Iterator[None]:
    """A read/write lock between pytest-xdist workers, writers first.

    Readers (modules that may run side by side) hold ``path`` shared, a writer (a module that
    must run alone) holds it exclusively. A turnstile lock beside it, taken briefly by readers
    and held by a waiting writer, keeps new readers from starving the writer.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".turnstile"), "w") as turnstile, open(path, "w") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        yield


@pytest.fixture(scope="module", autouse=True)
def module_share(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Test modules run side by side on pytest-xdist workers; some must run alone.

    - e2e modules share the stack's one operator release (each in its own namespaces); a module
      marked ``e2e_serial`` changes that release (helm values, replicas, killed pods) or watches
      the whole operator, so it waits for every other e2e module and has the stack alone. The
      lock lives in the stack's directory, so it holds across pytest runs on one stack.
      `make test` runs those in a pass of their own without ``-n``; the lock keeps ``-n N`` safe too.
    - other modules marked ``alone`` (wall-clock latency bounds) run while no other module of the
      same xdist run does (lock in the run's temp dir); without xdist there is nothing to share.
      `make test` runs them first, before the stack starts and before anything runs beside them.
    """
    e2e = request.node.get_closest_marker("e2e") is not None
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if e2e:
        path = Path(os.environ.get("FAISS_STACK_DIR", str(ROOT / ".stack"))) / "e2e-release.lock"
        exclusive = request.node.get_closest_marker("e2e_serial") is not None
    elif run:  # the workers' base temp dirs (popen-gwN) share this run's parent, which pytest prunes
        path = tmp_path_factory.getbasetemp().parent / "module.lock"
        exclusive = request.node.get_closest_marker("alone") is not None
    else:
        yield
        return
    with _module_lock(path, exclusive):
        yield


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
