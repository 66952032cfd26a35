"""Pure: the three Jobs of a sharded build seen as one build, and which one to create next.

A spec with ``shards > 1`` is built by a chain of Jobs (``docs/scale-out.md``): the
tracked Job (named like any build, so status, history, Replace and retention work
unchanged) trains once; then an Indexed Job adds one slice per pod (the Job controller
schedules them and retries a failed slice alone, ``backoffLimitPerIndex``); then a
finalize Job measures the whole index and commits the manifest. The stage Jobs are owned
by the train Job, so deleting it (retention, Replace, the FaissIndex) removes them too.

``combine`` folds a train Job and its stage Jobs into one ``JobObservation`` whose state is
the build's: Failed as soon as any stage failed, Succeeded only when finalize succeeded,
Running otherwise, with ``next_stage`` naming the Job to create when the previous stage
finished. ``decide`` then treats a sharded build exactly like a one-Job build.
"""

from __future__ import annotations

from dataclasses import replace

from faiss_operator.model import JobObservation, Observation, StageToCreate
from indexops_api.status import BuildResult, FaissIndexStatus

TRAIN, SHARDS, FINALIZE = "train", "shards", "finalize"
STAGE_ORDER = (SHARDS, FINALIZE)


def stage_job_name(parent: str, stage: str) -> str:
    """``<train job>-shards`` / ``-finalize``; train Job names leave room (layout.job_name truncates to 63)."""
    suffix = {SHARDS: "s", FINALIZE: "f"}[stage]
    return f"{parent[:61].rstrip('-')}-{suffix}"


def combine(jobs: tuple[JobObservation, ...]) -> tuple[JobObservation, ...]:
    """Each train Job with its stage Jobs folded in; stage Jobs are not listed on their own."""
    stages: dict[str, dict[str, JobObservation]] = {}
    for job in jobs:
        if job.parent and job.stage in STAGE_ORDER:
            stages.setdefault(job.parent, {})[job.stage] = job
    out = []
    for job in jobs:
        if job.parent and job.stage in STAGE_ORDER:
            continue
        out.append(fold(job, stages.get(job.name, {})) if job.stage == TRAIN else job)
    return tuple(out)


def fold(train: JobObservation, stages: dict[str, JobObservation]) -> JobObservation:
    chain = [train] + [stages[s] for s in STAGE_ORDER if s in stages]
    failed = next((j for j in chain if j.state == "Failed"), None)
    if failed is not None:
        where = {TRAIN: "train", SHARDS: "slice", FINALIZE: "finalize"}[failed.stage or TRAIN]
        message = f"{where} stage (Job {failed.name}): {failed.message}" if failed.message else f"{where} stage failed"
        return replace(train, state="Failed", message=message, completion_time=failed.completion_time, next_stage=None)
    final = stages.get(FINALIZE)
    if final is not None and final.state == "Succeeded":
        return replace(train, state="Succeeded", completion_time=final.completion_time, next_stage=None)
    last = chain[-1]
    upcoming = None
    if last.state == "Succeeded":
        done = len(chain) - 1  # stages after train that exist
        upcoming = STAGE_ORDER[done] if done < len(STAGE_ORDER) else None
    return replace(train, state="Running", completion_time=None, next_stage=upcoming)


def next_stage(obs: Observation, status: FaissIndexStatus) -> StageToCreate | None:
    """The stage Job the tracked build needs now (idempotent: a name already created is adopted)."""
    last = status.last_build
    if last is None or last.result != BuildResult.RUNNING:
        return None
    job = obs.job_named(last.job)
    if job is None or job.state != "Running" or job.next_stage is None or not job.uid:
        return None
    return StageToCreate(stage=job.next_stage, parent=job.name, parent_uid=job.uid, version=job.version,
                         build_key=job.build_key, number=job.number or last.number or 0,
                         trigger=job.trigger or (last.trigger.value if last.trigger else "Spec"))
