"""The control plane fails: the API server restarted mid-build, the operator killed mid-build.

Both converge without a human: the running Job is adopted (never a second Job for the same
build), its version is published and served, and serving answers all along (it needs
neither the API server nor the operator). `python -m hack.stack.stack up` restarts the killed API server
and, since issue 17 item 8, waits for the old process and its port instead of failing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from chaos import (ROOT, QueryLoop, assert_every_failure_is_readable, assert_no_lost_build, assert_no_wrong_version,
                   running_builder, stack_pid, wait_converged)
from tests.e2e.helpers import builder_jobs
from scenario import DIM, operator_pods, serving_index, start_slow_build

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

CONVERGE_SECONDS = 420


def test_an_api_server_restarted_mid_build_loses_no_build(cluster, namespace):
    name = "apiserver-restart"
    serving_index(cluster, namespace, name)
    with QueryLoop(cluster, namespace, name, DIM) as loop:
        loop.wait_answers(20)
        start_slow_build(cluster, namespace, name)
        running_builder(cluster, namespace, name)
        os.kill(stack_pid("kube-apiserver"), signal.SIGKILL)
        down = time.monotonic()
        answered = sum(loop.tally.answers.values())
        time.sleep(10)  # the API server stays down a while; serving must keep answering
        up = subprocess.run([sys.executable, "-m", "hack.stack.stack", "up"], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        assert sum(loop.tally.answers.values()) > answered, "serving stopped answering while the API server was down"
        st = wait_converged(cluster, namespace, name, CONVERGE_SECONDS)
    numbers = [j["metadata"]["annotations"]["faiss.indexops.io/build-number"] for j in builder_jobs(cluster, namespace, name)]
    assert len(numbers) == len(set(numbers)), f"a build ran twice: {numbers}"
    assert st["lastBuild"]["result"] == "Succeeded"
    assert_no_wrong_version(loop.tally)
    assert_no_lost_build(cluster, namespace, name)
    assert_every_failure_is_readable(cluster, namespace, name)
    print(f"API server killed: back and converged in {time.monotonic() - down:.1f}s; {loop.tally}")


def test_an_operator_killed_mid_build_adopts_its_job_after_restart(cluster, namespace):
    name = "operator-killed"
    serving_index(cluster, namespace, name)
    with QueryLoop(cluster, namespace, name, DIM) as loop:
        loop.wait_answers(20)
        start_slow_build(cluster, namespace, name)
        running_builder(cluster, namespace, name)
        jobs_before = [j["metadata"]["name"] for j in builder_jobs(cluster, namespace, name)]
        for pod in operator_pods(cluster):
            pid = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("localprocess://"))
            os.killpg(pid, signal.SIGKILL)
        st = wait_converged(cluster, namespace, name, CONVERGE_SECONDS)
    jobs_after = [j["metadata"]["name"] for j in builder_jobs(cluster, namespace, name)]
    assert jobs_after == jobs_before, f"the running Job was not adopted: {jobs_before} -> {jobs_after}"
    assert st["lastBuild"]["job"] == jobs_before[-1] and st["lastBuild"]["result"] == "Succeeded"
    assert_no_wrong_version(loop.tally)
    assert_no_lost_build(cluster, namespace, name)
    assert_every_failure_is_readable(cluster, namespace, name)
