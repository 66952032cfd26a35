"""The README's "working shell" block, run as a newcomer would after `make demo`.

A fresh login shell knows nothing of the stack: without the README's lines `kubectl` talks to
localhost:8080 and `faissctl` is not on PATH. The block is taken from README.md itself (so
the test fails when the docs drift from what works) and run by bash with a minimal
environment from the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def readme_shell_block() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("### A working shell after `make demo`", 1)[1]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block is not None, "README: the working-shell section has no console block"
    return [line[2:].split("  #", 1)[0].strip() for line in block.group(1).splitlines() if line.startswith("$ ")]


def bare_shell(script: str) -> subprocess.CompletedProcess:
    """bash with only a system PATH and HOME: what a new terminal has."""
    system_path = os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if Path(p).is_dir())
    kubectl_dir = str(Path(shutil.which("kubectl") or "/usr/bin/kubectl").parent)
    env = {"PATH": f"{system_path}{os.pathsep}{kubectl_dir}", "HOME": os.environ.get("HOME", "/root")}
    if "FAISS_STACK_DIR" in os.environ:  # a stack started elsewhere than .stack/: point the block there
        script = script.replace("source .stack/env", f"source {os.environ['FAISS_STACK_DIR']}/env")
    return subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_without_the_readme_lines_a_new_shell_cannot_reach_the_stack(stack_env: dict[str, str]) -> None:
    proc = bare_shell("kubectl get faissindex -A --request-timeout=5s; command -v faissctl")
    assert proc.returncode != 0
    assert "faissctl" not in proc.stdout, "faissctl should only be found through the venv"


def test_the_readme_shell_block_gives_working_kubectl_and_faissctl(stack_env: dict[str, str]) -> None:
    lines = readme_shell_block()
    setup = [line for line in lines if line.startswith(("source ", "export "))]
    assert len(setup) == 2, lines
    script = " && ".join(setup + ["kubectl get namespace default -o name", "faissctl --help"])
    proc = bare_shell(script)
    assert proc.returncode == 0, f"{script}\n{proc.stdout}\n{proc.stderr}"
    assert "namespace/default" in proc.stdout
    assert "status" in proc.stdout and "versions" in proc.stdout, "faissctl --help lists its commands"
