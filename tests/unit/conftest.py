"""Fixtures shared by the unit tests that run a pinned tool (helm, kube-score, ...).

The tools are built (or found in the cache) by hack/build-tools.sh, exactly as CI does
with `make tools`, so a test never depends on a binary installed by hand.

Every test that uses one of these fixtures (directly or through another fixture) is marked
``tools``: that is the tools tier (`make test-tools`, or `pytest tests/unit -m tools`);
`make test-unit` runs the rest (`-m "not tools"`: pure, no Go toolchain, no subprocess tool).
`make test` runs both.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL_FIXTURES = frozenset({"helm", "kube_score", "promtool", "luatest"})


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TOOL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.tools)


def go_tool(name: str) -> str:
    """Path of the pinned tool ``name`` (the last line hack/build-tools.sh prints)."""
    if shutil.which("go") is None:
        pytest.fail(f"the Go toolchain is needed to build {name} (see README: Python 3.11, Go and kubectl)")
    done = subprocess.run(["bash", str(ROOT / "hack" / "build-tools.sh"), name], capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, f"building {name} failed:\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def helm() -> str:
    return go_tool("helm")


@pytest.fixture(scope="session")
def kube_score() -> str:
    return go_tool("kube-score")


@pytest.fixture(scope="session")
def promtool() -> str:
    return go_tool("promtool")


@pytest.fixture(scope="session")
def luatest() -> str:
    return go_tool("luatest")
