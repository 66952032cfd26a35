"""Deleting the shard Deployments/Services of shard numbers the serving layout no longer has.

After a re-shard (``spec.shards`` 4 -> 2, or back to 1) the new layout's objects are
applied by ``execute``; the old shard objects keep running until the new layout serves
(every replica of the serving Deployment ready and reporting the current version, see
``shard_objects.new_layout_serves``), so that a rollback to the old version would still
find them while the switch is in progress. Then the objects of shard numbers >= the
serving shard count (all of them when it is 1) are deleted. Owner references already
delete everything with the FaissIndex; this is for the index that lives on.
"""

from __future__ import annotations

import logging

from faiss_operator import shard_objects
from faiss_operator.kube import clients, is_not_found
from faiss_operator.model import Observation
from faiss_operator.shard_objects import LABEL_SHARD

log = logging.getLogger(__name__)

# (namespace, name) -> the serving shard count last found without stale objects: later passes
# skip the two LIST calls until that count changes (an operator restart lists once per index).
_clean: dict[tuple[str, str], int] = {}


def ready_to_prune(obs: Observation, served: int) -> bool:
    serving = obs.serving
    if serving is None or not serving.exists or obs.replicas is None:
        return False
    return shard_objects.new_layout_serves(
        desired=serving.desired_replicas, ready=serving.ready_replicas, current=obs.status.current_version,
        reports=tuple((r.stable, r.error) for r in obs.replicas))


def prune_stale_shards(obs: Observation, served: int) -> list[str]:
    """Delete stale shard objects once the serving layout serves; the names deleted."""
    key = (obs.namespace, obs.name)
    if _clean.get(key) == served or not ready_to_prune(obs, served):
        return []
    api, selector = clients(), shard_objects.shard_selector(obs.name)
    deleted = []
    for kind, lister, deleter in (
        ("Deployment", api.apps.list_namespaced_deployment, api.apps.delete_namespaced_deployment),
        ("Service", api.core.list_namespaced_service, api.core.delete_namespaced_service),
    ):
        items = lister(obs.namespace, label_selector=selector).items
        existing = [(i.metadata.name, (i.metadata.labels or {}).get(LABEL_SHARD)) for i in items]
        for name in shard_objects.stale_shards(existing, served):
            try:
                deleter(name, obs.namespace)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
            deleted.append(f"{kind}/{name}")
    _clean[key] = served
    if deleted:
        log.info("%s/%s: deleted shard objects the serving layout (%d shard(s)) no longer has: %s",
                 obs.namespace, obs.name, served, ", ".join(deleted))
    return deleted


def forget(namespace: str, name: str) -> None:
    """The FaissIndex is gone (its objects go with it by owner reference)."""
    _clean.pop((namespace, name), None)
