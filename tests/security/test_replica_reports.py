"""Issue 10 item 4: serving pods' ``/v1/status`` answers are bounded, typed and only counted from
pods the operator's own Deployment owns.

Real parts: the operator's ``replicas.ask`` against a hostile HTTP server on loopback
(``hostile_s3.py``: its ``huge`` and ``drip`` paths), serving's own ``AnalysisWindow`` and the
shared ``ReplicaStatus`` model, and Kubernetes client objects for the ownership check.

Memory: peak RSS growth of this process while asking a pod that answers 200 MB; bound
asserted 32 MiB (cap 256 KiB), against ~400 MiB when the answer is read whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hostile_s3 import HostileS3
from kubernetes.client import V1ObjectMeta, V1OwnerReference, V1Pod, V1PodStatus, V1ReplicaSet

from indexops_api.pointer import ServingPointer
from indexops_api.replica import LoadFailure, ReplicaStatus, RolloutWindow
from index_serving.analysis import AnalysisWindow
from faiss_operator.replicas import TIMEOUT_SECONDS, ask, owned_pods, parse_report

DEPLOYMENT_UID = "dep-uid-of-the-operators-deployment"


@pytest.fixture
def pod_server() -> Iterator[HostileS3]:
    server = HostileS3().start()
    yield server
    server.stop()


def peak_rss_growth(fn) -> tuple[int, object]:
    def vm(field: str) -> int:
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
        return int(line.split()[1]) * 1024

    Path("/proc/self/clear_refs").write_text("5")
    before = vm("VmRSS:")
    result = fn()
    return vm("VmHWM:") - before, result


@pytest.mark.parametrize("path", ["huge/v1-status", "huge-unsized/v1-status"])
def test_a_200_mb_status_answer_is_refused_unread_and_operator_memory_stays_bounded(pod_server, path):
    growth, report = peak_rss_growth(lambda: ask("pod-a", f"{pod_server.url}/{path}"))

    assert report.error is not None and "cap" in report.error
    assert growth < 32 * 1024 * 1024, f"peak RSS rose by {growth / 2**20:.0f} MiB"


def test_a_status_answer_dripping_one_byte_per_second_is_abandoned_at_the_total_deadline(pod_server):
    started = time.monotonic()
    report = ask("pod-a", f"{pod_server.url}/drip/v1-status")

    assert report.error is not None and "no complete answer within" in report.error
    assert time.monotonic() - started < TIMEOUT_SECONDS + 2  # not the 1,000 s the drip would take


def test_a_report_built_by_serving_is_read_back_by_the_operator_with_the_same_numbers():
    pointer = ServingPointer(generation=7, stable_version="v1", candidate_version="v2", candidate_percent=10, updated_at="t")
    window = AnalysisWindow.open(pointer, datetime(2026, 12, 7, tzinfo=timezone.utc))
    window.record_request("v1", seconds=0.004)
    window.record_request("v2", seconds=0.02, error=True)
    window.record_shadow("v2", queries=3, overlap=2.5, k=10)
    produced = ReplicaStatus(
        ready=True, rollout=RolloutWindow.model_validate(window.to_wire()),
        failures=[LoadFailure(version="v0", reason="checksum", message="sha256 mismatch")],
    ).to_json_dict()

    report = parse_report("pod-a", json.dumps(produced).encode())

    assert report.error is None
    assert (report.generation, report.stable, report.candidate) == (7, "v1", "v2")
    assert report.versions["v2"].errors == 1 and report.versions["v2"].shadow_queries == 3
    assert report.versions["v1"].latency_counts[-1] == 1
    assert report.refused == {"v0": "checksum: sha256 mismatch"}


@pytest.mark.parametrize("body", [
    {"rollout": {"generation": -1, "stableVersion": "v1"}},
    {"rollout": {"generation": 1, "stableVersion": "v1", "versions": {f"v{i}": {} for i in range(1000)}}},
    {"rollout": None, "failures": [{"version": "x" * 10_000}]},
    {"rollout": None, "failures": [{"version": f"v{i}"} for i in range(10_000)]},
    ["not", "an", "object"],
])
def test_a_report_outside_the_models_bounds_is_an_error_not_a_partial_truth(body):
    report = parse_report("pod-a", json.dumps(body).encode())
    assert report.error is not None and report.error.startswith("not a serving status report")
    assert report.refused == {} and report.versions == {}


def _owned(kind: str, uid: str) -> list[V1OwnerReference]:
    return [V1OwnerReference(api_version="apps/v1", kind=kind, name="x", uid=uid, controller=True)]


def _pod(name: str, owners: list[V1OwnerReference] | None) -> V1Pod:
    labels = {"faiss.indexops.io/index": "analogs", "faiss.indexops.io/component": "serving"}
    return V1Pod(metadata=V1ObjectMeta(name=name, labels=labels, owner_references=owners),
                 status=V1PodStatus(phase="Running", pod_ip="127.0.0.9"))


def test_only_pods_of_the_operators_deployment_report_however_they_are_labelled():
    ours = V1ReplicaSet(metadata=V1ObjectMeta(name="serving-analogs-abc", uid="rs-ours", owner_references=_owned("Deployment", DEPLOYMENT_UID)))
    theirs = V1ReplicaSet(metadata=V1ObjectMeta(name="copycat", uid="rs-theirs", owner_references=_owned("Deployment", "dep-of-a-tenant")))
    orphan_rs = V1ReplicaSet(metadata=V1ObjectMeta(name="orphan", uid="rs-orphan"))
    pods = [
        _pod("serving-analogs-abc-1", _owned("ReplicaSet", "rs-ours")),
        _pod("copycat-1", _owned("ReplicaSet", "rs-theirs")),       # same labels, another Deployment
        _pod("bare", None),                                           # same labels, no owner at all
        _pod("orphan-1", _owned("ReplicaSet", "rs-orphan")),         # a ReplicaSet nobody controls
        _pod("claims-the-deployment", _owned("Deployment", DEPLOYMENT_UID)),  # skips the ReplicaSet
    ]

    counted = owned_pods(pods, [ours, theirs, orphan_rs], DEPLOYMENT_UID)

    assert [p.metadata.name for p in counted] == ["serving-analogs-abc-1"]
