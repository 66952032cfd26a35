"""Which stored versions to prune. Pure.

Keeps the newest ``keep`` complete versions plus every protected one (serving, candidate,
last-good, pinned, and any version a running build is writing). Incomplete versions (no
manifest: a build that failed mid-upload) are pruned unless a running build owns them.
Version ids sort by creation time, so "newest" is a string sort.

Only folders named like a version id are ever pruned. Another index's storage prefix can
lie under this one's ``versions/`` (a tenant sets ``storage.prefix`` freely, e.g.
``<this index>/6h/versions``): its folder there has no manifest, and "incomplete, so prune"
would have deleted another tenant's artifacts. Namespaces are lower-case DNS labels, so a
folder created that way can never look like a version id (``...T...Z-...``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from indexops_api.layout import is_version_id
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import FaissIndexStatus
from faiss_operator.model import Observation, StoredVersion


def versions_to_prune(versions: Mapping[str, StoredVersion], keep: int, protected: Iterable[str | None]) -> list[str]:
    guard = {v for v in protected if v}
    ours = {v: info for v, info in versions.items() if is_version_id(v)}
    complete = sorted((v for v, info in ours.items() if info.complete), reverse=True)
    kept = set(complete[:keep]) | guard
    return sorted(v for v in ours if v not in kept)


def versions_to_delete(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus) -> list[str]:
    """Versions this pass prunes: beyond ``keepVersions``, never a protected one, nothing after a partial read."""
    if obs.versions is None or obs.storage_error is not None:  # a partial read must not delete (or report deleting) anything
        return []
    last = status.last_build
    protected = [status.current_version, status.candidate_version, status.last_good_version, status.pinned_version,
                 spec.rollout.pinned_version, last.version if last else None]
    protected += [j.version for j in obs.jobs if j.state == "Running"]
    return versions_to_prune(obs.versions, spec.rollout.keep_versions, protected)
