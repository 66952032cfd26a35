"""kopf handlers: one reconcile loop per FaissIndex, woken by events.

Each FaissIndex gets a daemon that runs observe -> decide -> execute, then sleeps until
something relevant happens (its own change, its Job or serving Deployment changing) or
the resync interval passes. Waking is in-memory and cheap; correctness never depends on
it because every pass is level-based.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

import kopf
from kubernetes.client.rest import ApiException

from indexops_api import constants as c
from indexops_api.status import EventReason
from faiss_operator import metrics, shard_cleanup
from faiss_operator.config import OperatorConfig
from faiss_operator.decide import decide
from faiss_operator.execute import execute
from faiss_operator.deletion import STOP_WAIT_SECONDS, decide_deletion
from faiss_operator.kube import api_error_summary, clients, is_conflict, is_namespace_terminating, is_not_found, to_dict
from faiss_operator.artifacts import StorageNotAllowed, bounded, store_for
from faiss_operator.observe import observe, parse_spec
from faiss_operator.pacing import ResyncSlots, wait_seconds
from indexops_store import StorageError

CONFIG = OperatorConfig.from_env()
_SLOTS = ResyncSlots(CONFIG.idle_passes_per_second)
_wakeups: defaultdict[tuple[str, str], asyncio.Event] = defaultdict(asyncio.Event)
log = logging.getLogger(__name__)


def wake(namespace: str | None, name: str | None) -> None:
    """Wake the index's loop; events for indexes without one (e.g. a deleted index's Jobs) add nothing."""
    event = _wakeups.get((namespace, name)) if namespace and name else None
    if event is not None:
        event.set()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # kopf's own bookkeeping goes to annotations, never status: the operator is the single
    # writer of a strictly-typed status, and ArgoCD ignores annotations we list in docs.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=c.GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = f"{c.GROUP}/finalizer"
    # Stalled watches reconnect (https://github.com/nolar/kopf/issues/585).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # No CRD scanning: the resources are known; this saves a cluster-wide CRD permission.
    settings.scanning.disabled = True
    settings.posting.reporting_component = "faiss-operator"
    settings.posting.level = logging.WARNING + 100  # only our explicit kopf.event() calls


def _fetch(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return clients().custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, name)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def reconcile_once(namespace: str, name: str) -> tuple[float, bool]:
    """One observe -> decide -> execute pass; returns (seconds until the next pass, paced by the shared budget)."""
    body = _fetch(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return CONFIG.resync_seconds, False
    started = time.monotonic()
    obs = observe(body, config=CONFIG)
    metrics.record_storage(namespace, name, obs.storage_error, obs.storage_unavailable)
    plan = decide(obs)
    execute(plan, obs, body, CONFIG)
    metrics.RECONCILE_SECONDS.labels(namespace, name).observe(time.monotonic() - started)
    return wait_seconds(plan.requeue, poll_seconds=CONFIG.poll_seconds_while_building, resync_seconds=CONFIG.resync_seconds,
                        indexes=len(_wakeups), idle_passes_per_second=CONFIG.idle_passes_per_second)


def failure_log(exc: Exception, namespace: str, backoff: float) -> tuple[int, str, bool]:
    """How a failed reconcile pass is logged: (level, message, with a traceback).

    A refusal because the namespace is being deleted is expected (the index goes next) and
    takes one info line, a conflict with another writer one warning line; anything else
    is unexpected and keeps its traceback (API errors without the HTTP headers).
    """
    retry = f"retrying in {backoff:.0f}s"
    if is_namespace_terminating(exc):
        return logging.INFO, f"namespace {namespace} is being deleted; nothing new can be created there, {retry}", False
    if is_conflict(exc):  # another writer (e.g. a leader handing over) changed the object first
        return logging.WARNING, f"reconcile raced another writer, {retry}: {api_error_summary(exc)}", False
    detail = api_error_summary(exc) if isinstance(exc, ApiException) else str(exc)
    return logging.ERROR, f"reconcile failed, {retry}: {detail}", True


async def _sleep(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when woken by an event."""
    try:
        await asyncio.wait_for(event.wait(), timeout=max(seconds, 0.0))
        return True
    except asyncio.TimeoutError:
        return False


@kopf.daemon(c.GROUP, c.VERSION, c.PLURAL, cancellation_timeout=10)
async def index_loop(name: str, namespace: str, stopped: kopf.DaemonStopped, logger: logging.Logger, **_: Any) -> None:
    event = _wakeups[(namespace, name)]
    backoff = 1.0
    while not stopped:
        event.clear()
        paced = False
        try:
            delay, paced = await asyncio.to_thread(reconcile_once, namespace, name)
            backoff = 1.0
        except StorageError as exc:
            logger.warning(f"storage error, retrying: {exc}")
            metrics.RECONCILE_ERRORS.labels(namespace, name).inc()
            delay, backoff = backoff, min(backoff * 2, 60)
        except Exception as exc:  # keep the loop alive; the next pass recomputes everything
            level, message, trace = failure_log(exc, namespace, backoff)
            logger.log(level, message, exc_info=trace)
            if level > logging.INFO:
                metrics.RECONCILE_ERRORS.labels(namespace, name).inc()
            delay, backoff = backoff, min(backoff * 2, 60)
        woken = await _sleep(event, delay)
        if not woken and paced and not stopped:  # a safety-net resync waits for its slot in the shared budget
            await _sleep(event, _SLOTS.take(time.monotonic()) - time.monotonic())
    _wakeups.pop((namespace, name), None)


@kopf.on.delete(c.GROUP, c.VERSION, c.PLURAL)
def index_deleted(name: str, namespace: str, body: kopf.Body, spec: dict[str, Any], logger: logging.Logger, **_: Any) -> None:
    """The finalizer's work: apply ``storage.deletionPolicy`` as ``deletion.decide_deletion`` says."""
    wake(namespace, name)  # stop the loop promptly
    metrics.forget(namespace, name)  # its per-index series would otherwise outlive it
    shard_cleanup.forget(namespace, name)  # and its record of a clean shard layout
    parsed, error = parse_spec(dict(spec))
    selector = f"{c.LABEL_INDEX}={name},{c.LABEL_COMPONENT}=builder"
    jobs = [to_dict(j) for j in clients().batch.list_namespaced_job(namespace, label_selector=selector).items] if parsed else []
    plan = decide_deletion(parsed, error, namespace, name, jobs)
    if plan.action == "invalid":
        logger.warning(plan.message)
        return
    if plan.action == "retain":
        kopf.event(body, type="Normal", reason=EventReason.ARTIFACTS_RETAINED.value, message=plan.message)
        return
    if plan.action == "stop-builders":  # one still uploading would otherwise leave files behind the delete
        for job in plan.stop_jobs:
            try:
                clients().batch.delete_namespaced_job(job, namespace, propagation_policy="Foreground")
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        raise kopf.TemporaryError(plan.message, delay=STOP_WAIT_SECONDS)
    assert parsed is not None
    where = plan.where
    try:
        store = store_for(parsed, namespace, name, CONFIG)
        deleted = bounded(f"deleting {where}", store.delete_prefix, plan.prefix, deadline=120, key=(namespace, name, "delete"))
    except StorageNotAllowed as exc:  # never granted (or no longer): nothing of it may be touched
        kopf.event(body, type="Warning", reason=EventReason.ARTIFACTS_RETAINED.value, message=f"artifacts at {where} retained: {exc}")
        return
    except StorageError as exc:  # keep the finalizer and retry: Delete means delete
        kopf.event(body, type="Warning", reason=EventReason.ARTIFACTS_DELETED.value, message=f"deleting {where} failed, retrying: {exc}")
        raise kopf.TemporaryError(f"deleting {where}: {exc}", delay=15) from exc
    kopf.event(body, type="Normal", reason=EventReason.ARTIFACTS_DELETED.value, message=f"deletionPolicy Delete: removed {deleted} object(s) under {where}")
    logger.info(f"deleted {deleted} objects under {where}")


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL)
def index_changed(name: str, namespace: str, **_: Any) -> None:
    wake(namespace, name)


_OWNED = {c.LABEL_PART_OF: c.PART_OF, c.LABEL_INDEX: kopf.PRESENT}


@kopf.on.event("batch", "v1", "jobs", labels=_OWNED)
def job_changed(namespace: str, labels: dict[str, str], **_: Any) -> None:
    wake(namespace, labels.get(c.LABEL_INDEX))


@kopf.on.event("apps", "v1", "deployments", labels=_OWNED)
def deployment_changed(namespace: str, labels: dict[str, str], **_: Any) -> None:
    wake(namespace, labels.get(c.LABEL_INDEX))
