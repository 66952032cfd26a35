"""`python -m hack.stack.stack up|down|status|env` (from the repo root) — the local dev/test Kubernetes stack.

Test/dev infrastructure only (see shared/design/LOCAL_CLUSTER.md). There is no
Docker here, so the stack is a real etcd + kube-apiserver + kube-controller-manager
built from Go modules, moto's S3 server, and node_agent.py playing the kubelet for
one Node, all as local processes. State lives in ${FAISS_STACK_DIR:-<repo>/.stack};
`source .stack/env` gives KUBECONFIG, S3_ENDPOINT_URL and friends.

`up` is idempotent: healthy components are left alone, dead ones are restarted with
the same ports, certificates and etcd data. `down` stops everything, pods included.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hack.stack import procs
from hack.stack.components import (BUILD_SCRIPT, COMPONENTS, REQUIRED_TOOLS, STOP_ORDER,
                                   Component, Ctx)
from hack.stack.pki import ensure_pki, write_kubeconfig
from hack.stack.stackconf import (REPO_ROOT, TOOLS_BIN, StackPaths, base_env, choose_ports,
                                  port_is_free, write_env_file)


def say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


class StackError(Exception):
    """A component did not come up; the message says which and why."""


def ensure_tools() -> None:
    """Build the control-plane binaries with hack/build-tools.sh if any is missing."""
    missing = [t for t in REQUIRED_TOOLS if not (TOOLS_BIN / t).exists()]
    if not missing:
        return
    TOOLS_BIN.parent.mkdir(parents=True, exist_ok=True)
    with open(TOOLS_BIN.parent / ".stack-build.lock", "w") as lock:
        say(f"missing tools {missing}: waiting for the build lock")
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((TOOLS_BIN / t).exists() for t in REQUIRED_TOOLS):
            return
        say(f"building tools with {BUILD_SCRIPT} all (cold build: 10-30 min; "
            "progress below)")
        started = time.monotonic()
        rc = subprocess.call(["bash", str(BUILD_SCRIPT), "all"])
        if rc != 0:
            raise StackError(f"hack/build-tools.sh all failed with exit code {rc}")
        say(f"tools built in {time.monotonic() - started:.0f}s")


PREDECESSOR_WAIT_SECONDS = 90.0


def wait_for_predecessor(comp: Component, ctx: Ctx, timeout: float = PREDECESSOR_WAIT_SECONDS) -> None:
    """Wait until an earlier instance of comp (stopped, still shutting down) is gone and its ports are free.

    Restarting a component right after `down` (or after it was killed) used to fail: the
    old kube-apiserver was still draining and held its port, and the new one exited with
    "address already in use".
    """
    binary = comp.argv(ctx)[0]
    deadline, said = time.monotonic() + timeout, False
    while True:
        old = [p for p in procs.marked_pids(ctx.paths.mark) if procs.cmdline_of(p)[:1] == [binary]]
        busy = [ctx.ports[k] for k in comp.ports if not port_is_free(ctx.ports[k])]
        if not old and not busy:
            return
        if time.monotonic() > deadline:
            raise StackError(f"{comp.name}: an earlier instance is still shutting down after {timeout:.0f}s "
                             f"(pids {old}, ports in use {busy}); `make stack-down` stops it")
        if not said:
            say(f"{comp.name}: waiting for the previous instance to exit (pids {old}, ports in use {busy})")
            said = True
        time.sleep(0.5)


def start(comp: Component, ctx: Ctx) -> tuple[int, bool]:
    """Start comp unless its recorded pid is alive; returns (pid, started_now)."""
    pid = procs.read_pid(ctx.paths.pidfile(comp.name))
    if procs.alive(pid, ctx.paths.mark):
        assert pid is not None
        return pid, False
    wait_for_predecessor(comp, ctx)
    proc = procs.spawn(comp.argv(ctx), ctx.paths.log(comp.name), base_env(ctx.paths),
                       cwd=REPO_ROOT if comp.in_repo else ctx.paths.root)
    ctx.paths.pidfile(comp.name).write_text(f"{proc.pid}\n")
    say(f"{comp.name}: started (pid {proc.pid}, log {ctx.paths.log(comp.name)})")
    return proc.pid, True


def wait_ready(comp: Component, ctx: Ctx, pid: int) -> None:
    deadline = time.monotonic() + comp.timeout
    reason: str | None = "not checked"
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            raise StackError(f"{comp.name} exited during startup")
        reason = comp.ready(ctx, pid)
        if reason is None:
            return
        time.sleep(0.3)
    raise StackError(f"{comp.name} not healthy after {comp.timeout:.0f}s: {reason}")


def up(paths: StackPaths) -> int:
    t0 = time.monotonic()
    ensure_tools()
    paths.ensure()
    if ensure_pki(paths.certs):
        say(f"generated CA, serving/admin certs and service-account key in {paths.certs}")
    ports = choose_ports(paths)
    ctx = Ctx(paths, ports)
    write_kubeconfig(paths.kubeconfig, paths.certs, ctx.server)
    write_env_file(paths, ports)
    started_any = False
    pending: list[tuple[Component, int]] = []
    current: Component | None = None
    try:
        for comp in COMPONENTS:
            current = comp
            pid, started = start(comp, ctx)
            started_any |= started
            if not started and comp.ready(ctx, pid) is None:
                say(f"{comp.name}: already running (pid {pid})")
                continue
            pending.append((comp, pid))
            if comp.wait_before_next:
                for c, p in pending:
                    current = c
                    wait_ready(c, ctx, p)
                    say(f"{c.name}: healthy")
                pending.clear()
        for c, p in pending:
            current = c
            wait_ready(c, ctx, p)
            say(f"{c.name}: healthy")
    except StackError as e:
        assert current is not None
        say(f"FAILED: {e}")
        say(f"last 30 lines of {paths.log(current.name)}:")
        print(procs.tail(paths.log(current.name), 30), flush=True)
        say("the stack is partially up; `make stack-down` stops it, `up` retries")
        return 1
    if started_any:
        say(f"up in {time.monotonic() - t0:.1f}s: API https://127.0.0.1:{ports['apiserver']}, "
            f"S3 http://127.0.0.1:{ports['s3']}")
    else:
        say("already up")
    say(f"use it with: source {paths.env_file}")
    return 0


def down(paths: StackPaths, keep_logs: bool) -> int:
    if not paths.root.exists():
        say(f"nothing to stop ({paths.root} does not exist)")
        return 0
    by_name = {c.name: c for c in COMPONENTS}
    for name in STOP_ORDER:
        pid = procs.read_pid(paths.pidfile(name))
        if procs.alive(pid, paths.mark):
            assert pid is not None
            say(f"{name}: stopping pid {pid}")
            procs.stop_groups([pid], by_name[name].stop_grace)
        paths.pidfile(name).unlink(missing_ok=True)
    leftovers = procs.marked_pids(paths.mark)
    if leftovers:
        say(f"killing {len(leftovers)} leftover stack process(es): {leftovers}")
        procs.stop_groups(leftovers, 3)
        procs.kill_pids(procs.marked_pids(paths.mark))
    still = procs.marked_pids(paths.mark)
    if still:
        say(f"WARNING: processes still alive: {still}")
    _remove_state(paths, keep_logs)
    say("down" + (f" (logs kept in {paths.root})" if keep_logs else ""))
    return 1 if still else 0


def _remove_state(paths: StackPaths, keep_logs: bool) -> None:
    if not keep_logs:
        shutil.rmtree(paths.root, ignore_errors=True)
        return
    for child in paths.root.iterdir():
        if child.name == "logs":
            continue
        if child.name == "pods" and child.is_dir():
            for pod_dir in child.iterdir():
                for item in pod_dir.iterdir():
                    if not item.name.endswith(".log"):
                        _rm(item)
            continue
        _rm(child)


def _rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def status(paths: StackPaths) -> int:
    if not paths.ports_file.exists():
        say(f"down (no state in {paths.root})")
        return 3
    ctx = Ctx(paths, choose_ports(paths))
    healthy = True
    for comp in COMPONENTS:
        pid = procs.read_pid(paths.pidfile(comp.name))
        if not procs.alive(pid, paths.mark):
            state = "not running"
        else:
            reason = comp.ready(ctx, pid)
            state = "healthy" if reason is None else f"running, unhealthy: {reason}"
        healthy &= state == "healthy"
        print(f"{comp.name:<24} pid={pid or '-':<8} {state}")
    print(f"{'ports':<24} {ctx.ports}")
    print(f"{'env file':<24} {paths.env_file}")
    return 0 if healthy else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start (or repair) the stack; idempotent")
    d = sub.add_parser("down", help="stop everything and remove the state dir")
    d.add_argument("--keep-logs", action="store_true", help="keep component and pod logs")
    sub.add_parser("status", help="show each component's pid and health")
    sub.add_parser("env", help="print the env file (eval \"$(python -m hack.stack.stack env)\")")
    args = parser.parse_args(argv)
    paths = StackPaths.from_env()
    if args.cmd in ("up", "down"):
        # One `up`/`down` at a time per state dir (parallel test sessions share it).
        key = hashlib.sha1(paths.mark.encode()).hexdigest()[:12]
        with open(Path(tempfile.gettempdir()) / f"faiss-stack-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return up(paths) if args.cmd == "up" else down(paths, args.keep_logs)
    if args.cmd == "env":
        if not paths.env_file.exists():
            say("not up")
            return 3
        print(paths.env_file.read_text(), end="")
        return 0
    return status(paths)


if __name__ == "__main__":
    sys.exit(main())
