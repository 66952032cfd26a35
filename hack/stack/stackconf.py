"""Where the local dev/test stack keeps its state, and which ports it uses.

Test/dev infrastructure only (see shared/design/LOCAL_CLUSTER.md): nothing here is
part of the operator. Every other stack module asks this one for paths so that the
layout of `${FAISS_STACK_DIR:-<repo>/.stack}` is defined in exactly one place, and
so that a second `up` finds the ports the first one chose.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The venv that runs this code is the venv pods run from (images are ignored).
VENV_BIN = Path(sys.executable).parent
TOOLS_BIN = Path(
    os.environ.get("FAISS_TOOLS_DIR", str(Path.home() / ".cache/faiss-index-operator/tools"))
) / "bin"
NODE_NAME = "faiss-local-node"
# Every process the stack starts carries this variable (value: the state dir), so
# `down` can find stragglers that left their process group.
MARK_ENV = "FAISS_STACK_MARK"
# Fixed, obviously fake credentials: moto accepts anything.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "faiss-local-test",
    "AWS_SECRET_ACCESS_KEY": "faiss-local-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclass(frozen=True)
class StackPaths:
    """Layout of the state directory."""

    root: Path

    @classmethod
    def from_env(cls) -> "StackPaths":
        """State dir from FAISS_STACK_DIR, defaulting to <repo>/.stack."""
        return cls(Path(os.environ.get("FAISS_STACK_DIR", str(REPO_ROOT / ".stack"))).resolve())

    @property
    def mark(self) -> str:
        return str(self.root)

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd-data"

    @property
    def pods(self) -> Path:
        return self.root / "pods"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def ensure(self) -> None:
        for d in (self.root, self.certs, self.logs, self.run, self.etcd_data, self.pods):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.certs, 0o700)


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (binds, then releases it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(avoid: set[int] | None = None) -> int:
    """A port the kernel considers free on 127.0.0.1 (not in `avoid`)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in (avoid or set()):
            return port


def choose_ports(paths: StackPaths) -> dict[str, int]:
    """Ports of this stack: read from ports.json, or chosen once and saved there.

    The API server prefers 6443 and S3 prefers 9000 (override with
    FAISS_STACK_APISERVER_PORT / FAISS_STACK_S3_PORT) so URLs are predictable, but
    fall back to a free port when the preferred one is taken.
    """
    if paths.ports_file.exists():
        return {k: int(v) for k, v in json.loads(paths.ports_file.read_text()).items()}
    ports: dict[str, int] = {}
    for key, env, default in (("apiserver", "FAISS_STACK_APISERVER_PORT", 6443),
                              ("s3", "FAISS_STACK_S3_PORT", 9000)):
        wanted = int(os.environ.get(env, default))
        ports[key] = wanted if port_is_free(wanted) and wanted not in ports.values() \
            else free_port(set(ports.values()))
    ports["etcd_client"] = free_port(set(ports.values()))
    ports["etcd_peer"] = free_port(set(ports.values()))
    paths.ports_file.write_text(json.dumps(ports, indent=2) + "\n")
    return ports


def base_env(paths: StackPaths) -> dict[str, str]:
    """Environment for every component: ours minus proxies, plus the stack mark.

    Proxy variables are dropped so nothing can route loopback traffic elsewhere.
    """
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.0/8,localhost"
    env[MARK_ENV] = paths.mark
    return env


def env_file_values(paths: StackPaths, ports: dict[str, int]) -> dict[str, str]:
    """KEY=value pairs published in `${STATE}/env` for shells, tests and make."""
    return {
        "FAISS_STACK_DIR": str(paths.root),
        "KUBECONFIG": str(paths.kubeconfig),
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        **AWS_ENV,
        "FAISS_TOOLS_BIN": str(TOOLS_BIN),
        "HELM": str(TOOLS_BIN / "helm"),
    }


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` atomically with ``mode``, and only when its content changes.

    Every ``stack up`` rewrites the env file and kubeconfig, and under pytest-xdist each worker
    runs ``stack up`` while the others read them: a plain rewrite (truncate, then write) lets a
    reader see an empty file, and its kubectl/helm then talks to localhost:8080.
    """
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a killed run: O_EXCL below creates the file afresh
    # Created with ``mode`` (fchmod: whatever the umask), so a kubeconfig is never readable by
    # others, not even while it is written under its temporary name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_env_file(paths: StackPaths, ports: dict[str, int]) -> None:
    lines = [f"export {k}={shlex.quote(v)}" for k, v in env_file_values(paths, ports).items()]
    write_if_changed(paths.env_file, "\n".join(lines) + "\n")


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the `export KEY=value` lines written by write_env_file."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            out[key] = shlex.split(value)[0] if value else ""
    return out
