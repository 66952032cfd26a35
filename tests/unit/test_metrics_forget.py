"""A deleted index's metric series go with it, so label churn cannot grow the operator's memory."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from indexops_api.status import FaissIndexStatus
from faiss_operator import metrics


def _series(name: str) -> int:
    return generate_latest(REGISTRY).decode().count(f'name="{name}"')


def test_forgetting_a_deleted_index_removes_every_series_labelled_with_it_and_keeps_the_others():
    for index in ("gone", "kept"):
        metrics.record(FaissIndexStatus(current_version="v1", recall=0.9), "forget-ns", index, ["BuildSucceeded"])
        metrics.RECONCILE_SECONDS.labels("forget-ns", index).observe(0.01)
    kept = _series("kept")
    assert _series("gone") == kept > 0
    metrics.forget("forget-ns", "gone")
    assert _series("gone") == 0 and _series("kept") == kept
    metrics.forget("forget-ns", "gone")  # idempotent: a retried delete handler forgets again
