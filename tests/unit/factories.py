"""Builders of observations and manifests for the pure operator tests."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from indexops_api.layout import build_key, job_name, version_id
from indexops_api.manifest import FileEntry, Manifest, Measurements, SourceFingerprint, Timings
from indexops_api.pointer import ServingPointer
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import BuildResult, FaissIndexStatus, LastBuild
from faiss_operator.model import JobObservation, Observation, ServingObservation

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
    return Observation(
        name="idx", namespace="ns", uid="uid-1", generation=3, now=NOW,
        spec=s, spec_error=None if s is not None else fields.pop("spec_error", "bad"),
        status=status or FaissIndexStatus(), **fields,
    )


def pointer(stable: str, generation: int = 1, candidate: str | None = None, percent: int = 0) -> ServingPointer:
    return ServingPointer(generation=generation, stable_version=stable, candidate_version=candidate, candidate_percent=percent, updated_at="t")
