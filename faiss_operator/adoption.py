"""Adoption: rebuild a lost status from what storage holds. Pure.

Status is the operator's memory. After a cluster is lost and the FaissIndexes are
re-applied from Git (or restored from a backup, which drops status), or after a delete
with ``deletionPolicy: Retain`` and a re-apply, the index's prefix in S3 still holds the
serving pointer and the published versions. Without adoption the first pass would see an
empty status, start a build and serve nothing until it finished.

Adoption runs once, on a pass whose status is empty (no build ever recorded, nothing
serving), from a bounded read (``adoption_reads``): the pointer and at most a few
manifests. It restores:

- ``currentVersion`` / ``lastGoodVersion`` from the pointer's stable version (it passed
  its gates when it was promoted), with its measurements, when its manifest and every
  file the manifest lists are still stored and it matches the spec's dimension and metric;
- the canary (``candidateVersion``) from the pointer's candidate, under the same checks;
- ``lastBuild`` from the newest version built for the spec's *current* build key (or its
  running Job), so ``triggers`` starts a build only when no version exists for the key
  (the spec changed) or a drift check later finds the source changed. The serving version
  counts when it is of the key; otherwise the newest version of the key (a spec reverted in
  Git) is gated on the next pass like a finished build. A newer build of the serving key
  that the pointer never took (rejected, or rolled back) is not promoted again;
- the request annotations as handled, so a rebuild/promote/abort annotation kept in Git
  is not acted on again.

The pointer is left as it is (``desired_pointer`` finds it already says what status
says), so serving replicas never see a new generation because of adoption.

Not recoverable from storage: build history, failure counts, a rolled-back verdict (a
version rolled back and not deleted may be canaried again) and a stepped rollout's
progress (a candidate restarts at the first step).
"""

from __future__ import annotations

from indexops_api.layout import job_name
from indexops_api.manifest import Manifest
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, EventReason, FaissIndexStatus, LastBuild
from faiss_operator.model import Event, Observation
from faiss_operator.promotion import serving_fields

ADOPTED_REASON = "Adopted"


def status_lost(status: FaissIndexStatus) -> bool:
    """Nothing recorded: a new FaissIndex, or one whose status was dropped."""
    return status.last_build is None and status.current_version is None and status.build_count == 0 and not status.history


def must_wait_for_storage(obs: Observation, status: FaissIndexStatus) -> bool:
    """An empty status and storage that did not answer: whether a version exists is unknown.

    Starting a build now could rebuild what is already published; the next pass (storage
    errors retry with backoff) adopts or builds once storage answers.
    """
    return obs.storage_error is not None and status_lost(status)


def usable(obs: Observation, spec: FaissIndexSpec, version: str | None) -> Manifest | None:
    """The manifest of ``version`` when it can serve this spec: complete in storage, same shape."""
    if version is None or obs.adoptable is None or obs.versions is None:
        return None
    m = obs.adoptable.get(version)
    stored = obs.versions.get(version)
    if m is None or m.version != version or stored is None or not stored.complete:
        return None
    if any(f.name not in stored.files for f in m.files):
        return None
    if m.dimension != spec.dimension or m.metric != spec.metric:
        return None
    return m


def adopt(obs: Observation, spec: FaissIndexSpec, status: FaissIndexStatus, key: str) -> tuple[FaissIndexStatus, list[Event]]:
    if obs.adoptable is None or obs.storage_error is not None or not status_lost(status):
        return status, []
    if obs.pointer is None and not any(s.complete for s in (obs.versions or {}).values()):
        return status, []  # nothing published: a new index, built as usual
    updates: dict = {
        "last_handled_rebuild": obs.rebuild_request,
        "last_handled_promote": obs.promote_request,
        "last_handled_abort": obs.abort_request,
    }
    said: list[str] = []
    pointer = obs.pointer
    stable = usable(obs, spec, pointer.stable_version if pointer else None)
    if stable is not None:
        assert pointer is not None
        updates.update(serving_fields(obs, stable))
        updates.update(last_good_version=stable.version, promoted_version=stable.version, serving_since=pointer.updated_at, drift=None)
        if spec.rollout.pinned_version == stable.version:
            updates["pinned_version"] = stable.version
        said.append(f"version {stable.version} serves (pointer generation {pointer.generation})")
        candidate = usable(obs, spec, pointer.candidate_version)
        if candidate is not None and spec.rollout.pinned_version is None:
            updates.update(candidate_version=candidate.version)
            said.append(f"candidate {candidate.version} at {pointer.candidate_percent}%")
    elif pointer is not None:
        said.append(f"the pointer's version {pointer.stable_version} cannot serve this spec (missing files or another shape)")

    complete = [v for v, s in (obs.versions or {}).items() if s.complete]
    running = sorted((j for j in obs.jobs if j.state == "Running" and j.build_key == key), key=lambda j: j.number or 0)
    number = max([len(complete)] + [j.number or 0 for j in obs.jobs])
    if running:
        job = running[-1]
        updates["last_build"] = LastBuild(job=job.name, version=job.version, build_key=key, result=BuildResult.RUNNING,
                                          number=job.number, start_time=job.start_time)
        said.append(f"its Job {job.name} is still building {job.version}")
    else:
        built = _built_for_key(obs, spec, key, updates)
        if built is not None:
            updates["last_build"] = LastBuild(job=job_name(obs.name, key, number), version=built.version, build_key=key,
                                              result=BuildResult.SUCCEEDED, number=number, reason=ADOPTED_REASON,
                                              message="recorded from its manifest when status was rebuilt from storage",
                                              start_time=built.created_at, completion_time=built.created_at)
            serving = built.version in (updates.get("current_version"), updates.get("candidate_version"))
            said.append(f"version {built.version} is the build of the current spec" + ("" if serving else " (to be validated)"))
        else:
            said.append("no version exists for the current spec: a build starts")
    updates["build_count"] = number
    message = "status rebuilt from storage: " + "; ".join(said)
    return status.updated(**updates), [Event("Normal", EventReason.ADOPTED, message)]


def _built_for_key(obs: Observation, spec: FaissIndexSpec, key: str, updates: dict) -> Manifest | None:
    """The version that is the build of the current spec: the serving one first, else the newest."""
    for field in ("candidate_version", "current_version"):
        m = usable(obs, spec, updates.get(field))
        if m is not None and m.build_key == key:
            return m
    built = [m for v, m in (obs.adoptable or {}).items() if m.build_key == key and usable(obs, spec, v) is not None]
    return max(built, key=lambda m: m.version, default=None)
