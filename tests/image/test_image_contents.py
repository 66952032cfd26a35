"""What is inside the image, checked from its own root filesystem.

The image installs requirements-runtime.lock (the runtime subset of the tests' lock, same
pins) and the project, and nothing else: no pytest, moto, linters or even pip. Every console
script starts as the image's numeric user on a read-only root where only /tmp is writable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sandbox import Rootfs

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ("faiss-operator", "faiss-index-builder", "faiss-index-server", "faissctl", "kubectl-faiss")
LIST_PACKAGES = ("import importlib.metadata as m, json; "
                 "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
WHO_AND_WHERE = """
import errno, json, os
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w"):
            pass
        return True
    except OSError as exc:
        assert exc.errno in (errno.EROFS, errno.EACCES), exc
        return False
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                  "writable": {p: writable(p) for p in ("/", "/opt/venv", "/etc", "/home", "/var", "/tmp")}}))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", path.read_text(), flags=re.M)
    return {canonical(name): version for name, version in pins}


def test_the_image_holds_exactly_the_runtime_lock_and_the_project(rootfs: Rootfs, scratch: Path):
    done = rootfs.run(["python", "-c", LIST_PACKAGES], scratch)
    assert done.returncode == 0, done.stderr
    installed = {canonical(name): version for name, version in json.loads(done.stdout).items()}
    project = installed.pop("faiss-index-operator", None)
    assert project is not None, "the project itself is not installed"
    assert installed == locked(ROOT / "requirements-runtime.lock"), {
        "not in the runtime lock": sorted(set(installed) - set(locked(ROOT / "requirements-runtime.lock"))),
        "missing": sorted(set(locked(ROOT / "requirements-runtime.lock")) - set(installed)),
    }


def test_the_image_runs_as_its_numeric_non_root_user_with_only_tmp_writable(rootfs: Rootfs, scratch: Path):
    done = rootfs.run(["python", "-c", WHO_AND_WHERE], scratch)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    uid, gid = (int(x) for x in rootfs.user.split(":"))
    assert (seen["uid"], seen["gid"]) == (uid, gid) == (65532, 65532)
    assert set(seen["groups"]) <= {gid}
    assert seen["writable"] == {"/": False, "/opt/venv": False, "/etc": False, "/home": False, "/var": False, "/tmp": True}


def test_every_console_script_starts_from_the_image_s_root(rootfs: Rootfs, scratch: Path):
    for script in SCRIPTS:
        done = rootfs.run([script, "--help"], scratch, timeout=120)
        assert done.returncode == 0, f"{script}: {done.stderr[-2000:]}"
        assert "Usage:" in done.stdout, f"{script}: {done.stdout[:500]}"
    leftovers = sorted(p.name for p in scratch.iterdir())
    assert leftovers == [], f"starting the programs wrote {leftovers} to /tmp"
