"""Two local stacks on one host, and a restart right after a stop (issue 17 item 8).

Every checkout's default stack used pod IPs 127.0.0.N, so two stacks handed out the same
addresses and an operator crash-looped on "Address already in use"; and `stack up` failed
while a stopped kube-apiserver still held its port. Real sockets, real flocks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hack.stack.components import Component, Ctx
from hack.stack.node_agent import IpPool, listening_on
from hack.stack.stack import StackError, wait_for_predecessor
from hack.stack.stackconf import MARK_ENV, StackPaths


def test_two_checkouts_default_stacks_claim_different_pod_ip_ranges(tmp_path):
    locks = tmp_path / "locks"
    first, held_a = IpPool.claim(Path("/work/wt-a/.stack"), locks)
    second, held_b = IpPool.claim(Path("/work/wt-b/.stack"), locks)
    same_dir_again, held_c = IpPool.claim(Path("/work/wt-a/.stack"), locks)  # e.g. a stale agent still runs
    assert len({first, second, same_dir_again}) == 3
    assert all(16 <= o <= 215 for o in (first, second, same_dir_again))
    held_a.close()
    reclaimed, held_d = IpPool.claim(Path("/work/wt-a/.stack"), locks)
    assert reclaimed == first  # released when its agent exits
    for h in (held_b, held_c, held_d):
        h.close()


def test_an_address_something_already_listens_on_is_not_handed_to_a_pod():
    # 127.250.0.x: outside every stack's range (16..215), so a running stack's pods cannot be there.
    with socket.socket() as taken:
        taken.bind(("127.250.0.1", 0))
        taken.listen()
        assert listening_on("127.250.0.1") and not listening_on("127.250.0.2")
        assert IpPool(250).allocate("pod-1") == "127.250.0.2"


def _ctx(tmp_path: Path, port: int) -> Ctx:
    return Ctx(StackPaths(tmp_path / "stack"), {"apiserver": port})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_restart_waits_until_the_previous_instance_released_its_port(tmp_path):
    port = _free_port()
    old = socket.socket()
    old.bind(("127.0.0.1", port))
    old.listen()
    released = threading.Event()

    def shut_down() -> None:  # the old API server finishes shutting down
        old.close()
        released.set()

    threading.Timer(1.5, shut_down).start()
    comp = Component("kube-apiserver", lambda c: ["/nonexistent/kube-apiserver"], lambda c, p: None, 10, True, ports=("apiserver",))
    wait_for_predecessor(comp, _ctx(tmp_path, port), timeout=20)
    assert released.is_set(), "returned while the old instance still held the port"
    with socket.socket() as new:
        new.bind(("127.0.0.1", port))  # the restarted component can take its port


def test_a_restart_waits_for_the_old_process_of_the_same_binary_and_says_so_when_it_never_exits(tmp_path):
    ctx = _ctx(tmp_path, _free_port())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               env={**os.environ, MARK_ENV: ctx.paths.mark})
    try:
        comp = Component("kube-apiserver", lambda c: [sys.executable], lambda c, p: None, 10, True, ports=("apiserver",))
        with pytest.raises(StackError, match=rf"still shutting down after 1s \(pids \[{sleeper.pid}\]"):
            wait_for_predecessor(comp, ctx, timeout=1)
    finally:
        sleeper.kill()
        sleeper.wait()
