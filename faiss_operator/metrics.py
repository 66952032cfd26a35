"""Prometheus metrics of the operator (served on the operator's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from indexops_api.status import ConditionType, FaissIndexStatus

_L = ("namespace", "name")
BUILDS_STARTED = Counter("faiss_operator_builds_started_total", "Builder Jobs created", _L)
BUILDS_FINISHED = Counter("faiss_operator_builds_finished_total", "Builds finished by result", _L + ("result",))
RECONCILE_SECONDS = Histogram("faiss_operator_reconcile_seconds", "Duration of one reconcile pass", _L)
RECONCILE_ERRORS = Counter("faiss_operator_reconcile_errors_total", "Reconcile passes that raised", _L)
READY = Gauge("faiss_operator_index_ready", "1 when the index is Ready", _L)
RECALL = Gauge("faiss_operator_serving_recall", "Measured recall@k of the serving version", _L)
CONSECUTIVE_FAILURES = Gauge("faiss_operator_consecutive_failures", "Consecutive failed builds", _L)
SERVING_VERSION = Gauge("faiss_operator_serving_version_info", "Serving version (value 1)", _L + ("version",))

_serving_label: dict[tuple[str, str], str] = {}
_RESULT_OF_EVENT = {"BuildSucceeded": "succeeded", "BuildFailed": "failed", "ValidationFailed": "validation_failed"}


def record(status: FaissIndexStatus, namespace: str, name: str, event_reasons: list[str]) -> None:
    for reason in event_reasons:
        if reason in _RESULT_OF_EVENT:
            BUILDS_FINISHED.labels(namespace, name, _RESULT_OF_EVENT[reason]).inc()
    ready = status.condition(ConditionType.READY)
    READY.labels(namespace, name).set(1 if ready is not None and ready.status == "True" else 0)
    CONSECUTIVE_FAILURES.labels(namespace, name).set(status.consecutive_failures)
    if status.recall is not None:
        RECALL.labels(namespace, name).set(status.recall)
    previous = _serving_label.get((namespace, name))
    if previous is not None and previous != status.current_version:
        SERVING_VERSION.remove(namespace, name, previous)
    if status.current_version:
        SERVING_VERSION.labels(namespace, name, status.current_version).set(1)
        _serving_label[(namespace, name)] = status.current_version
