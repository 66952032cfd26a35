"""Prometheus metrics of the operator (served on the operator's /metrics)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from indexops_api.status import ConditionType, FaissIndexStatus
from faiss_operator.conditions import parse_time

_L = ("namespace", "name")
BUILDS_STARTED = Counter("faiss_operator_builds_started_total", "Builder Jobs created", _L)
BUILDS_FINISHED = Counter("faiss_operator_builds_finished_total", "Builds finished by result", _L + ("result",))
RECONCILE_SECONDS = Histogram("faiss_operator_reconcile_seconds", "Duration of one reconcile pass", _L)
RECONCILE_ERRORS = Counter("faiss_operator_reconcile_errors_total", "Reconcile passes that raised", _L)
READY = Gauge("faiss_operator_index_ready", "1 when the index is Ready", _L)
RECALL = Gauge("faiss_operator_serving_recall", "Measured recall@k of the serving version", _L)
CONSECUTIVE_FAILURES = Gauge("faiss_operator_consecutive_failures", "Consecutive failed builds", _L)
BUILD_SECONDS = Histogram(
    "faiss_operator_build_duration_seconds", "Wall time of finished builds (Job start to end)", _L + ("result",),
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
)
LAST_SUCCESS = Gauge("faiss_operator_last_successful_build_timestamp_seconds", "Unix time of the last successful build", _L)
STALLED = Gauge("faiss_operator_index_stalled", "1 when automatic builds stopped after repeated failures", _L)
NEXT_BUILD = Gauge("faiss_operator_next_scheduled_build_timestamp_seconds", "Unix time of the next scheduled build (0: none)", _L)
SERVING_VERSION = Gauge("faiss_operator_serving_version_info", "Serving version (value 1)", _L + ("version",))
ROLLBACKS = Counter("faiss_operator_rollbacks_total", "Versions rolled back (failed online analysis, refused by every serving replica, or aborted)", _L)

STORAGE_UNAVAILABLE = Gauge("faiss_operator_storage_unavailable", "1 while the index's storage does not answer within its deadline", _L)
STORAGE_ERRORS = Counter("faiss_operator_storage_errors_total", "Reconcile passes whose storage reads failed, by kind", _L + ("kind",))
ROLLOUT_PERCENT = Gauge("faiss_operator_rollout_percent", "Share of queries the candidate receives (100: no candidate)", _L)
_serving_label: dict[tuple[str, str], str] = {}
_recall_seen: set[tuple[str, str]] = set()
LAST_SUCCESS_SEEDED: dict[tuple[str, str], bool] = {}
_RESULT_OF_EVENT = {"BuildSucceeded": "succeeded", "BuildFailed": "failed", "ValidationFailed": "validation_failed"}


def _epoch(value: str | None) -> float | None:
    moment = parse_time(value)
    return moment.timestamp() if moment else None


def record_storage(namespace: str, name: str, error: str | None, unavailable: bool) -> None:
    """Exported at 0 from the first pass so an alert on the gauge needs no absent() guard."""
    STORAGE_UNAVAILABLE.labels(namespace, name).set(1 if unavailable else 0)
    if error is not None:
        STORAGE_ERRORS.labels(namespace, name, "unavailable" if unavailable else "error").inc()


def record(status: FaissIndexStatus, namespace: str, name: str, event_reasons: list[str]) -> None:
    last = status.last_build
    for reason in event_reasons:
        if reason in _RESULT_OF_EVENT:
            result = _RESULT_OF_EVENT[reason]
            BUILDS_FINISHED.labels(namespace, name, result).inc()
            start, end = (_epoch(last.start_time), _epoch(last.completion_time)) if last else (None, None)
            if start is not None and end is not None and reason != "ValidationFailed":
                BUILD_SECONDS.labels(namespace, name, result).observe(max(end - start, 0.0))
            if result == "succeeded":
                LAST_SUCCESS.labels(namespace, name).set(end or time.time())
    # Exported at 0 from the first pass, so increase() also counts the first rollback.
    ROLLBACKS.labels(namespace, name).inc(event_reasons.count("RolledBack"))
    ready = status.condition(ConditionType.READY)
    READY.labels(namespace, name).set(1 if ready is not None and ready.status == "True" else 0)
    stalled = status.condition(ConditionType.STALLED)
    STALLED.labels(namespace, name).set(1 if stalled is not None and stalled.status == "True" else 0)
    NEXT_BUILD.labels(namespace, name).set(_epoch(status.next_scheduled_build) or 0)
    CONSECUTIVE_FAILURES.labels(namespace, name).set(status.consecutive_failures)
    if status.recall is not None:
        RECALL.labels(namespace, name).set(status.recall)
        _recall_seen.add((namespace, name))
    elif (namespace, name) in _recall_seen:  # e.g. a refused version was rolled back: recall unknown
        RECALL.remove(namespace, name)
        _recall_seen.discard((namespace, name))
    ROLLOUT_PERCENT.labels(namespace, name).set(status.rollout_percent or 0)
    if not LAST_SUCCESS_SEEDED.get((namespace, name)):
        # After an operator restart the gauge is empty until the next success: seed it from
        # the newest successful build in status so the staleness alert keeps working.
        done = [b for b in ([status.last_build] if status.last_build else []) + status.history
                if b.result.value == "Succeeded" and b.completion_time]
        if done:
            LAST_SUCCESS.labels(namespace, name).set(_epoch(done[0].completion_time) or 0)
        LAST_SUCCESS_SEEDED[(namespace, name)] = True
    previous = _serving_label.get((namespace, name))
    if previous is not None and previous != status.current_version:
        SERVING_VERSION.remove(namespace, name, previous)
    if status.current_version:
        SERVING_VERSION.labels(namespace, name, status.current_version).set(1)
        _serving_label[(namespace, name)] = status.current_version


_PER_INDEX = (BUILDS_STARTED, RECONCILE_SECONDS, RECONCILE_ERRORS, READY, RECALL, CONSECUTIVE_FAILURES, LAST_SUCCESS,
              STALLED, NEXT_BUILD, ROLLBACKS, ROLLOUT_PERCENT)
_PER_INDEX_AND_MORE = (BUILDS_FINISHED, BUILD_SECONDS, SERVING_VERSION)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted index's series: with churn, per-index labels would otherwise grow without bound."""
    for metric in _PER_INDEX:
        try:
            metric.remove(namespace, name)
        except KeyError:
            pass
    for metric in _PER_INDEX_AND_MORE:
        for labels in [k for k in list(metric._metrics) if k[:2] == (namespace, name)]:  # noqa: SLF001 (no public iterator)
            metric.remove(*labels)
    for memo in (_serving_label, LAST_SUCCESS_SEEDED):
        memo.pop((namespace, name), None)
    _recall_seen.discard((namespace, name))
