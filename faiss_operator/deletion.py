"""The finalizer's decision when a FaissIndex is deleted: keep, wait for builders, or delete. Pure.

``storage.deletionPolicy: Delete`` removes the index's artifacts, but only once no builder
can still write: a builder uploading while the prefix is deleted would leave files behind
it. "Still running" is ``jobstate``'s one definition (no terminal ``Complete``/``Failed``
condition), so a Job retrying its pod (``backoffLimit > 0``, ``status.failed`` already 1)
is stopped and waited for like any other. Jobs and serving objects go by owner references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from indexops_api.layout import index_prefix
from indexops_api.spec import FaissIndexSpec
from faiss_operator.jobstate import is_finished

STOP_WAIT_SECONDS = 5  # look again this soon while builder Jobs are being stopped


@dataclass(frozen=True)
class DeletionPlan:
    action: Literal["invalid", "retain", "stop-builders", "delete"]
    message: str
    where: str = ""  # s3://bucket/prefix/ of the index's artifacts
    prefix: str = ""
    stop_jobs: tuple[str, ...] = ()  # unfinished builder Jobs to delete now (those not already being deleted)


def decide_deletion(spec: FaissIndexSpec | None, spec_error: str | None, namespace: str, name: str,
                    builder_jobs: list[dict[str, Any]]) -> DeletionPlan:
    """What the finalizer does for this pass; ``builder_jobs`` as the API server serialises them."""
    if spec is None:
        return DeletionPlan("invalid", f"invalid spec on deletion, artifacts retained: {spec_error}")
    prefix = index_prefix(spec.storage.prefix, namespace, name, spec.horizon)
    where = f"s3://{spec.storage.bucket}/{prefix}/"
    if spec.storage.deletion_policy != "Delete":
        return DeletionPlan("retain", f"deletionPolicy Retain: artifacts kept at {where}", where, prefix)
    unfinished = [j for j in builder_jobs if not is_finished(j)]
    if unfinished:
        stop = tuple(j["metadata"]["name"] for j in unfinished if not j["metadata"].get("deletionTimestamp"))
        return DeletionPlan("stop-builders", "waiting for running builder Jobs to stop before deleting artifacts",
                            where, prefix, stop)
    return DeletionPlan("delete", f"deletionPolicy Delete: removing {where}", where, prefix)
