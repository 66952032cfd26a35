"""What a builder Job's state is and why it failed, from the Job and pods the API server returns.

Issue 17 items 2 and 3: a builder that wrote no termination message is described by what
Kubernetes recorded (signal, OOMKilled, disruption, deletion), never by a log line; a
disruption is flagged so ``decide`` does not count it; and "finished" means the terminal
condition, so a Job retrying its pod (``status.failed`` already 1) is still running.
"""

from __future__ import annotations

from typing import Any

import pytest

from faiss_operator.jobstate import is_finished, job_failure, job_state, pod_failure

LOG_LINE = '{"level": "INFO", "logger": "index_builder", "message": "loading", "stage": "load"}'


def job(*conditions: str, reason: str = "BackoffLimitExceeded", deadline: int | None = None, **status: Any) -> dict:
    conds = [{"type": t, "status": "True", "reason": reason if t == "Failed" else None, "message": "Job has reached the specified backoff limit"}
             for t in conditions]
    return {"metadata": {"name": "idx-build-1"}, "spec": {"activeDeadlineSeconds": deadline}, "status": {"conditions": conds, **status}}


def pod(exit_code: int | None = None, reason: str = "Error", message: str = "", signal: int | None = None, deleted: bool = False,
        disruption: str | None = None, created: str = "2026-11-21T12:00:00Z", limit: str | None = "4Gi", name: str = "idx-build-1-abcde") -> dict:
    term = None if exit_code is None else {"exitCode": exit_code, "reason": reason, "message": message or None, "signal": signal}
    conditions = [{"type": "Ready", "status": "False"}]
    if disruption:
        conditions.append({"type": "DisruptionTarget", "status": "True", "reason": disruption, "message": "Eviction API: evicting"})
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if deleted:
        meta["deletionTimestamp"] = "2026-11-21T12:01:00Z"
    resources = {"limits": {"memory": limit}} if limit else {}
    state = {"terminated": term} if term else {"running": {}}
    return {"metadata": meta, "spec": {"containers": [{"name": "builder", "resources": resources}]},
            "status": {"conditions": conditions, "containerStatuses": [{"name": "builder", "state": state}]}}


@pytest.mark.parametrize(
    ("conditions", "status", "state"),
    [
        pytest.param((), {"active": 1}, "Running", id="an active Job runs"),
        pytest.param((), {"failed": 1, "active": 1}, "Running", id="a Job retrying its pod (failed=1) still runs"),
        pytest.param(("FailureTarget",), {"failed": 1}, "Running", id="FailureTarget without Failed: pods may still terminate"),
        pytest.param(("SuccessCriteriaMet",), {"succeeded": 1}, "Running", id="SuccessCriteriaMet without Complete still runs"),
        pytest.param(("SuccessCriteriaMet", "Complete"), {"succeeded": 1}, "Succeeded", id="Complete is success"),
        pytest.param(("FailureTarget", "Failed"), {"failed": 1}, "Failed", id="Failed is failure"),
    ],
)
def test_a_job_is_finished_only_with_its_terminal_condition(conditions, status, state):
    j = job(*conditions, **status)
    assert job_state(j) == state
    assert is_finished(j) == (state != "Running")


@pytest.mark.parametrize(
    ("the_pod", "expected", "disrupted"),
    [
        pytest.param(pod(1, message="SourceUnavailable: s3://emb/e.npy does not exist"),
                     "SourceUnavailable: s3://emb/e.npy does not exist", False, id="the builder's own message wins"),
        pytest.param(pod(137, message=LOG_LINE), "builder killed by SIGKILL (exit 137, Error) without writing a termination message",
                     False, id="SIGKILL with a log line as message says killed by SIGKILL (exit 137)"),
        pytest.param(pod(137, signal=9), "builder killed by SIGKILL (exit 137, Error)", False, id="the signal field names the signal"),
        pytest.param(pod(137, reason="OOMKilled"), "OOMKilled: the builder exceeded its memory limit (4Gi) (exit 137)", False,
                     id="OOMKilled names the memory limit"),
        pytest.param(pod(2), "builder exited with code 2 (Error) without writing a termination message", False, id="a plain exit code"),
        pytest.param(pod(143, deleted=True), "was deleted while it ran (SIGTERM, exit 143)", True, id="a deleted pod is a disruption"),
        pytest.param(pod(137, disruption="EvictionByEvictionAPI"), "was disrupted (EvictionByEvictionAPI: Eviction API: evicting)", True,
                     id="an evicted pod (DisruptionTarget) is a disruption"),
        pytest.param(pod(None, deleted=True), "was deleted before it finished", True, id="deleted before any exit status"),
        pytest.param(pod(1, message="BuildError: interrupted", deleted=True), "was deleted while it ran: BuildError: interrupted", True,
                     id="a deleted pod stays a disruption even when the builder wrote a message"),
    ],
)
def test_a_failed_builder_pod_is_described_by_what_kubernetes_recorded(the_pod, expected, disrupted):
    failure = pod_failure(the_pod)
    assert failure is not None and expected in failure.message
    assert "{" not in failure.message  # never a JSON log line
    assert failure.disrupted is disrupted


def test_a_running_pod_has_no_failure():
    assert pod_failure(pod(None)) is None


def test_a_failed_job_without_pods_lost_them_to_a_disruption():
    failure = job_failure(job("Failed"), [])
    assert failure.disrupted and "pod is gone" in failure.message


def test_the_newest_failed_pod_explains_the_job():
    old = pod(1, message="SourceUnavailable: old", created="2026-11-21T11:00:00Z", name="a")
    new = pod(137, reason="OOMKilled", created="2026-11-21T12:00:00Z", name="b")
    assert job_failure(job("Failed"), [old, new]).message.startswith("OOMKilled")


def test_a_deadline_is_never_a_disruption_even_though_the_job_deleted_its_pod():
    failure = job_failure(job("Failed", reason="DeadlineExceeded", deadline=600), [pod(143, deleted=True)])
    assert failure.message.startswith("build exceeded activeDeadlineSeconds (600s)")
    assert not failure.disrupted
