"""Builders of observations and manifests for the pure operator tests."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

from indexops_api.layout import build_key, job_name, version_id
from indexops_api.manifest import FileEntry, Manifest, Measurements, SourceFingerprint, Timings
from indexops_api.pointer import ServingPointer
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import ConditionType, BuildResult, FaissIndexStatus, LastBuild, Trigger
from faiss_operator.conditions import timestamp
from faiss_operator.model import JobObservation, JobToCreate, Observation, Plan, ServingObservation, StoredVersion

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone.utc)
SHA = "0" * 64


def spec(**overrides: Any) -> FaissIndexSpec:
    raw: dict[str, Any] = {
        "horizon": "6h",
        "dimension": 8,
        "indexType": "HNSW",
        "source": {"s3": {"bucket": "emb", "key": "e/{horizon}.npy"}},
        "storage": {"bucket": "idx", "endpoint": "http://127.0.0.1:9000"},
        "validation": {"minRecall": 0.9, "k": 10},
    }
    for dotted, value in overrides.items():
        target = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return FaissIndexSpec.model_validate(raw)


def manifest(version: str, key: str, recall: float = 0.97, vectors: int = 1000) -> Manifest:
    return Manifest(
        index="idx", namespace="ns", horizon="6h", version=version, build_key=key, created_at="t",
        index_type="HNSW", metric="L2", dimension=8, vectors=vectors, parameters={"m": 32},
        search_parameters={"efSearch": 64},
        files=[FileEntry(name="index.faiss", size=10, sha256=SHA), FileEntry(name="ids.npy", size=10, sha256=SHA)],
        index_file="index.faiss", ids_file="ids.npy", size_bytes=20,
        source=SourceFingerprint(uri="s3://emb/e/6h.npy", count=vectors),
        measurements=Measurements(recall_at_k=recall, k=10, queries=200, latency_p50_ms=0.1, latency_p95_ms=0.2, latency_p99_ms=0.3),
        timings=Timings(load_seconds=0, train_seconds=0, add_seconds=1, validate_seconds=1, total_seconds=2),
        faiss_version="1.15.1", builder_version="0.1.0",
    )


def running(s: FaissIndexSpec, at: datetime = NOW, number: int = 1) -> LastBuild:
    key = build_key(s)
    return LastBuild(job=job_name("idx", key, number), version=version_id(at, key), build_key=key,
                     result=BuildResult.RUNNING, number=number, start_time="2026-11-21T11:59:00Z")


def job(s: FaissIndexSpec, state: str, message: str = "", at: datetime = NOW, number: int = 1) -> JobObservation:
    key = build_key(s)
    return JobObservation(name=job_name("idx", key, number), version=version_id(at, key), build_key=key, state=state,
                          message=message, number=number, completion_time=None if state == "Running" else "2026-11-21T12:00:00Z")


def status_running(s: FaissIndexSpec, **fields: Any) -> FaissIndexStatus:
    """Status while build number 1 of ``s`` runs (what the operator wrote when it created the Job)."""
    return FaissIndexStatus(last_build=running(s), build_count=1, observed_generation=3, **fields)


def observation(s: FaissIndexSpec | None, status: FaissIndexStatus | None = None, **fields: Any) -> Observation:
    fields.setdefault("serving", ServingObservation(exists=True, desired_replicas=1, ready_replicas=1))
    if "job" in fields:
        one = fields.pop("job")
        fields["jobs"] = (one,) if one is not None else ()
    fields.setdefault("generation", 3)
    fields.setdefault("now", NOW)
    return Observation(
        name="idx", namespace="ns", uid="uid-1",
        spec=s, spec_error=None if s is not None else fields.pop("spec_error", "bad"),
        status=status or FaissIndexStatus(), **fields,
    )


def pointer(stable: str, generation: int = 1, candidate: str | None = None, percent: int = 0) -> ServingPointer:
    return ServingPointer(generation=generation, stable_version=stable, candidate_version=candidate, candidate_percent=percent, updated_at="t")


# --- lifecycle builders: a serving index, finished builds, storage listings, the next pass ---


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def version(s: FaissIndexSpec, at: datetime) -> str:
    """The id of the version of ``s`` built at ``at``."""
    return version_id(at, build_key(s))


def finished(s: FaissIndexSpec, result: BuildResult = BuildResult.SUCCEEDED, number: int = 1, at: datetime = NOW - timedelta(days=1),
             message: str | None = None, trigger: Trigger | None = None) -> LastBuild:
    key = build_key(s)
    return LastBuild(job=job_name("idx", key, number), version=version_id(at, key), build_key=key, result=result, number=number,
                     trigger=trigger, message=message, start_time="2026-11-20T11:00:00Z", completion_time="2026-11-20T11:30:00Z")


def serving(s: FaissIndexSpec, at: datetime = NOW - timedelta(days=1), number: int = 1, **fields: Any) -> FaissIndexStatus:
    """Steady state: build ``number`` of ``s`` (made at ``at``) succeeded and serves 100%."""
    v = version(s, at)
    base: dict[str, Any] = dict(current_version=v, last_good_version=v, rollout_percent=100, vectors=1000,
                                last_build=finished(s, number=number, at=at), build_count=number, observed_generation=3)
    return FaissIndexStatus(**{**base, **fields})


def building(s: FaissIndexSpec, number: int = 2, **fields: Any) -> FaissIndexStatus:
    """A serving index while build ``number`` of ``s`` (the version made at NOW) runs."""
    return serving(s, last_build=running(s, number=number), build_count=number, **fields)


def stored(*complete: str, incomplete: tuple[str, ...] = ()) -> dict[str, StoredVersion]:
    """A storage listing: versions with a manifest, and ``incomplete`` ones without."""
    listing = {v: StoredVersion(complete=True, files=frozenset({"manifest.json", "index.faiss"})) for v in complete}
    listing.update({v: StoredVersion(complete=False, files=frozenset({"index.faiss"})) for v in incomplete})
    return listing


def job_of(create: JobToCreate, state: str = "Running", message: str = "", start_time: str | None = None) -> JobObservation:
    """The Job a plan created, as the next pass lists it."""
    return JobObservation(name=create.name, version=create.version, build_key=create.build_key, state=state, message=message,
                          number=create.number, trigger=create.trigger, start_time=start_time,
                          completion_time=None if state == "Running" else "2026-11-21T12:30:00Z")


def next_pass(obs: Observation, plan: Plan, **changes: Any) -> Observation:
    """The observation after ``plan`` was executed: its status written, its Job created, deleted Jobs gone."""
    jobs = [j for j in obs.jobs if j.name not in plan.delete_jobs]
    if plan.create_job is not None and obs.job_named(plan.create_job.name) is None:
        jobs.append(job_of(plan.create_job, start_time=timestamp(obs.now)))
    base: dict[str, Any] = {"status": plan.status, "jobs": tuple(jobs)}
    if "job" in changes:
        one = changes.pop("job")
        changes["jobs"] = (one,) if one is not None else ()
    return dataclasses.replace(obs, **{**base, **changes})


def stalled(s: FaissIndexSpec) -> FaissIndexStatus:
    """The status right after build 3 of ``s`` failed for the third time in a row (Stalled)."""
    from faiss_operator.decide import decide

    plan = decide(observation(s, building(s, 3, consecutive_failures=2), job=job(s, "Failed", "OOMKilled", number=3)))
    assert plan.status.condition(ConditionType.STALLED).status == "True"
    return plan.status
