"""Running one container as a local process, for the dev/test node agent.

Test/dev infrastructure only. Images are ignored: the container's command/args run
from the project venv. Each process gets a private mount namespace (`unshare
--mount --propagation private`) in which every volumeMount is bind-mounted at its
real mountPath and a per-container file covers the termination-message path, so
in-cluster clients (kubernetes, kopf) find their token and CA exactly where a real
kubelet puts them (pod_init.py does the mounting, safe against a volume mounted over
the checkout, e.g. an emptyDir at /tmp). The namespace vanishes with the process; the
host is untouched apart from empty mount points.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.stack.agent_volumes import Mount

Obj = dict[str, Any]
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Paths the pod's own processes need (project venv and sources, stack state, the Python
# install). A volume mounted over an ancestor of one of them (an emptyDir at /tmp while
# the checkout lives under /tmp) would hide it, so they are re-exposed after mounting.
REPO_ROOT = Path(__file__).resolve().parents[2]
POD_INIT = Path(__file__).resolve().parent / "pod_init.py"


def _protected_paths(state_dir: str | None) -> list[Path]:
    candidates = [REPO_ROOT, Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()]
    if state_dir:
        candidates.append(Path(state_dir).resolve())
    unique: list[Path] = []
    for path in sorted(set(candidates), key=lambda p: len(p.parts)):
        if not any(path == u or u in path.parents for u in unique):
            unique.append(path)
    return unique


def _hidden_by(target: str, path: Path) -> bool:
    t = Path(target)
    return t == path or t in path.parents


def _init_plan(mounts: list[Mount], workdir: str, protected: list[Path]) -> str:
    """The plan pod_init.py executes inside the new mount namespace (see its docstring)."""
    expose = [str(p) for p in protected if any(_hidden_by(m.target, p) for m in mounts)]
    return json.dumps({
        "mounts": [[str(m.source), m.target, m.source.is_dir(), m.read_only] for m in mounts],
        "expose": expose,
        "workdir": workdir,
    })


@dataclass
class Container:
    """Runtime state of one container of a pod, rendered as a kubelet would."""

    spec: Obj
    pod_dir: Path
    init: bool = False
    proc: subprocess.Popen[bytes] | None = None
    restart_count: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    container_id: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = ""
    next_start: float = 0.0  # monotonic time before which a restart must wait (back-off)
    launches: int = 0
    started_mono: float = 0.0
    crash_streak: int = 0
    _pending_exit: bool = False  # a start error counts as an exit for restart logic

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def log_path(self) -> Path:
        return self.pod_dir / f"{self.name}.log"

    @property
    def term_file(self) -> Path:
        return self.pod_dir / "termination" / self.name

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def set_waiting(self, reason: str, message: str = "") -> None:
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        self.ready = False

    def launch(self, argv: list[str], env: dict[str, str], mounts: list[Mount], workdir: str,
               base_mark: dict[str, str]) -> bool:
        """Start the process; on a start error record a terminated state and return False."""
        self.env, self.workdir = env, workdir
        if not argv:
            self._start_error("container has no command: the dev node agent ignores images "
                              "and runs only command/args from the project venv")
            return False
        if "/" not in argv[0] and shutil.which(argv[0], path=env.get("PATH")) is None:
            self._start_error(f'exec: "{argv[0]}": executable file not found in $PATH')
            return False
        self.term_file.parent.mkdir(parents=True, exist_ok=True)
        self.term_file.write_bytes(b"")
        term_target = self.spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        all_mounts = mounts + [Mount(self.term_file, term_target, False)]
        protected = _protected_paths(next(iter(base_mark.values()), None))
        plan = _init_plan(all_mounts, workdir, protected)
        full_env = {**env, **base_mark}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab" if self.launches else "wb") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", sys.executable, "-S",
                 str(POD_INIT), plan, "--", *argv],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                cwd="/", start_new_session=True)
        self.launches += 1
        self.started_mono = time.monotonic()
        self.container_id = f"localprocess://{self.proc.pid}"
        self.state = {"running": {"startedAt": now_iso()}}
        self.ready = False
        self.started = "startupProbe" not in self.spec
        return True

    def _start_error(self, message: str) -> None:
        self.launches += 1
        self.started_mono = time.monotonic()
        self._pending_exit = True
        self.proc = None
        ts = now_iso()
        self.state = {"terminated": {"exitCode": 128, "reason": "StartError",
                                     "message": message, "startedAt": ts, "finishedAt": ts}}
        self.ready = self.started = False

    def collect_exit(self) -> bool:
        """If the process has exited, record the terminated state; True if it just did."""
        if self._pending_exit:
            self._pending_exit = False
            return True
        if self.proc is None or "running" not in self.state:
            return False
        code = self.proc.poll()
        if code is None:
            return False
        if code < 0:  # killed by a signal: runtimes report 128+signal
            code = 128 - code
        term: Obj = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                     "startedAt": self.state["running"]["startedAt"], "finishedAt": now_iso(),
                     "containerID": self.container_id}
        message = self._termination_message(code)
        if message:
            term["message"] = message
        self.state = {"terminated": term}
        self.ready = self.started = False
        return True

    def collect_killed_exit(self, timeout: float = 5.0) -> None:
        """After a kill: record a terminated state, as a kubelet always does for a killed container.

        ``collect_exit`` can miss a process that is still exiting, or whose status another thread
        is collecting at that moment (``Popen.poll`` then answers None). A pod deleted with its
        container still "running" would never reach a terminal phase, and a Job with a
        ``podFailurePolicy`` never replaces such a pod. So wait for the exit (bounded), and if the
        status still cannot be read, record the kill (exit 137).
        """
        if self.collect_exit() or self.proc is None or "running" not in self.state:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if not self.collect_exit() and "running" in self.state:
            self.state = {"terminated": {"exitCode": 137, "reason": "Error", "message": "killed by the node agent",
                                         "startedAt": self.state["running"]["startedAt"], "finishedAt": now_iso(),
                                         "containerID": self.container_id}}
            self.ready = self.started = False

    def _termination_message(self, code: int) -> str:
        try:
            msg = self.term_file.read_bytes()[:MAX_TERMINATION_MESSAGE].decode(errors="replace")
        except OSError:
            msg = ""
        if not msg and code != 0 and \
                self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            try:
                lines = self.log_path.read_bytes()[-MAX_TERMINATION_MESSAGE:].splitlines()[-80:]
                msg = b"\n".join(lines).decode(errors="replace")[-2048:]
            except OSError:
                msg = ""
        return msg

    def prepare_restart(self) -> None:
        """Move the current terminated state to lastState before a restart."""
        if "terminated" in self.state:
            self.last_state = {"terminated": self.state["terminated"]}
            self.restart_count += 1

    @property
    def exit_code(self) -> int | None:
        term = self.state.get("terminated")
        return None if term is None else int(term["exitCode"])

    def status(self) -> Obj:
        image = str(self.spec.get("image", ""))
        out: Obj = {"name": self.name, "image": image, "imageID": f"local-venv://{image}",
                    "ready": self.ready, "restartCount": self.restart_count,
                    "started": self.started if "running" in self.state else False,
                    "state": self.state, "lastState": self.last_state}
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def build_bind_shim(lib_dir: Path) -> Path | None:
    """Compile bindshim.c (0.0.0.0 binds -> the pod IP) once; None if no C compiler."""
    src = Path(__file__).resolve().parent / "bindshim.c"
    out = lib_dir / "faiss-bindshim.so"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    lib_dir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(src), "-ldl"],
                         capture_output=True, text=True)
    return out if res.returncode == 0 else None


def exec_in(container: Container, argv: list[str], timeout: float) -> tuple[int, str]:
    """Run argv in the container's mount namespace and env (exec probes)."""
    if not container.running or container.proc is None:
        return 1, "container not running"
    cmd = ["nsenter", f"--target={container.proc.pid}", "--mount", "--", "/bin/sh", "-c",
           'cd "$0" 2>/dev/null; shift; exec "$@"', container.workdir or "/", "x", *argv]
    try:
        res = subprocess.run(cmd, env=container.env, capture_output=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 1, f"command timed out after {timeout}s"
    except OSError as e:
        return 1, str(e)
    return res.returncode, (res.stdout + res.stderr).decode(errors="replace")[-1024:]


def process_group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
