"""The dev node agent always reports a killed container as terminated (hack/stack/agent_runtime.py).

A pod deleted while its container still reads "running" never reaches a terminal phase, and
a Job with a podFailurePolicy (as the operator's builder Jobs have) never replaces such a pod:
the sharded e2e's killed slice then waits forever.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from hack.stack.agent_runtime import Container


def _running(tmp_path: Path) -> Container:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return Container(spec={"name": "builder"}, pod_dir=tmp_path, proc=proc,
                     state={"running": {"startedAt": "2026-12-07T00:00:00Z"}})


def test_a_killed_container_is_recorded_with_its_exit_code(tmp_path: Path) -> None:
    c = _running(tmp_path)
    c.proc.terminate()
    c.collect_killed_exit(timeout=10)
    assert c.state["terminated"]["exitCode"] == 128 + 15


def test_a_killed_container_whose_exit_status_another_thread_holds_is_still_reported_terminated(tmp_path: Path) -> None:
    c = _running(tmp_path)
    held, release = threading.Event(), threading.Event()

    def other_waiter() -> None:  # another thread inside Popen.wait/poll: this thread's poll answers None
        with c.proc._waitpid_lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=other_waiter)
    t.start()
    held.wait(5)
    try:
        c.proc.kill()
        assert c.collect_exit() is False  # what the agent used to publish: still "running"
        c.collect_killed_exit(timeout=0.5)
        assert c.state["terminated"]["exitCode"] == 137 and "running" not in c.state
    finally:
        release.set()
        t.join()
        c.proc.wait(10)
