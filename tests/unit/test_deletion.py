"""The finalizer's decision: artifacts are deleted only once no builder Job can still write them."""

from __future__ import annotations

from typing import Any

import pytest

from faiss_operator.deletion import DeletionPlan, decide_deletion

from factories import spec

WHERE = "s3://idx/faiss-indexes/ns/idx/6h/"


def builder(name: str, status: dict[str, Any], deleting: bool = False, backoff_limit: int = 3) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-21T12:00:00Z"
    return {"metadata": meta, "spec": {"backoffLimit": backoff_limit}, "status": status}


def done(kind: str) -> dict[str, Any]:
    return {"conditions": [{"type": kind, "status": "True"}]}


def delete_spec():
    return spec(**{"storage.deletionPolicy": "Delete"})


def test_a_job_retrying_its_pod_with_backoff_limit_above_zero_is_stopped_before_artifacts_are_deleted():
    retrying = builder("idx-b-1", {"failed": 1, "active": 1})  # its first pod failed; the retry still uploads
    plan = decide_deletion(delete_spec(), None, "ns", "idx", [retrying])
    assert (plan.action, plan.stop_jobs) == ("stop-builders", ("idx-b-1",))


def test_a_job_marked_to_fail_but_whose_pods_still_run_is_stopped_too():
    target = builder("idx-b-1", {"failed": 1, "active": 1, **{"conditions": [{"type": "FailureTarget", "status": "True"}]}})
    assert decide_deletion(delete_spec(), None, "ns", "idx", [target]).action == "stop-builders"


def test_a_builder_already_being_deleted_is_waited_for_but_not_deleted_again():
    plan = decide_deletion(delete_spec(), None, "ns", "idx", [builder("idx-b-1", {"active": 1}, deleting=True)])
    assert (plan.action, plan.stop_jobs) == ("stop-builders", ())


@pytest.mark.parametrize("kind", ["Complete", "Failed"])
def test_finished_builders_do_not_hold_the_deletion(kind):
    plan = decide_deletion(delete_spec(), None, "ns", "idx", [builder("idx-b-1", {"failed": 4, **done(kind)})])
    assert plan == DeletionPlan("delete", f"deletionPolicy Delete: removing {WHERE}", WHERE, "faiss-indexes/ns/idx/6h")


def test_retain_keeps_the_artifacts_whatever_runs():
    plan = decide_deletion(spec(), None, "ns", "idx", [builder("idx-b-1", {"active": 1})])
    assert (plan.action, plan.message) == ("retain", f"deletionPolicy Retain: artifacts kept at {WHERE}")


def test_an_invalid_spec_on_deletion_retains_the_artifacts_and_says_why():
    plan = decide_deletion(None, "spec.dimension: missing", "ns", "idx", [])
    assert (plan.action, plan.message) == ("invalid", "invalid spec on deletion, artifacts retained: spec.dimension: missing")
