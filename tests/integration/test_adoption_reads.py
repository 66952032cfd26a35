"""Adoption's reads on a real S3 API (moto's server): what a re-applied index finds in storage.

Versions are published the way a build leaves them (files, then ``manifest.json``, then the
pointer); the operator's own observe code reads them back and ``decide`` rebuilds status.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from indexops_api.layout import build_key, index_prefix, manifest_key, pointer_key, version_id
from indexops_api.manifest import FileEntry, Manifest, Measurements, SourceFingerprint, Timings
from indexops_api.pointer import ServingPointer
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import FaissIndexStatus
from indexops_store import ArtifactStore
from faiss_operator.adoption_reads import MAX_MANIFESTS, read_adoptable
from faiss_operator.artifacts import Artifacts
from faiss_operator.decide import decide
from faiss_operator.model import Observation

pytestmark = pytest.mark.integration

NS, NAME = "team-a", "adopt"
FILES = {"index.faiss": b"index bytes", "ids.npy": b"ids bytes"}


def _spec(bucket: str, endpoint: str, ef: int = 64) -> FaissIndexSpec:
    return FaissIndexSpec.model_validate({
        "horizon": "6h", "dimension": 8, "indexType": "HNSW", "parameters": {"efSearch": ef},
        "source": {"s3": {"bucket": "emb", "key": "e/{horizon}.npy"}},
        "storage": {"bucket": bucket, "endpoint": endpoint}, "validation": {"minRecall": 0.9, "k": 10},
    })


class CountingClient:
    """The real client; ``get_object`` calls are counted."""

    def __init__(self, inner: Any):
        self.inner, self.gets = inner, 0

    def get_object(self, **kw: Any) -> Any:
        self.gets += 1
        return self.inner.get_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _publish(store: ArtifactStore, spec: FaissIndexSpec, at: datetime) -> str:
    key = build_key(spec)
    version = version_id(at, key)
    where = (spec.storage.prefix, NS, NAME, spec.horizon)
    for file, body in FILES.items():
        store.put_bytes(f"{index_prefix(*where)}/versions/{version}/{file}", body)
    m = Manifest(index=NAME, namespace=NS, horizon="6h", version=version, build_key=key, created_at=at.isoformat(),
                 index_type="HNSW", metric="L2", dimension=8, vectors=500, parameters={"m": 32}, search_parameters={"efSearch": 64},
                 files=[FileEntry(name=f, size=len(b), sha256=hashlib.sha256(b).hexdigest()) for f, b in FILES.items()],
                 index_file="index.faiss", ids_file="ids.npy", size_bytes=20, source=SourceFingerprint(uri="s3://emb/e/6h.npy", count=500),
                 measurements=Measurements(recall_at_k=0.96, k=10, queries=50, latency_p50_ms=0.1, latency_p95_ms=0.2, latency_p99_ms=0.3),
                 timings=Timings(load_seconds=0, train_seconds=0, add_seconds=0, validate_seconds=0, total_seconds=1),
                 faiss_version="t", builder_version="t")
    store.put_bytes(manifest_key(*where, version), json.dumps(m.model_dump(mode="json", by_alias=True)).encode())
    return version


def test_a_reapplied_index_reads_a_bounded_set_of_manifests_and_serves_its_pointer_version_without_a_build(s3, s3_endpoint, buckets):
    spec = _spec(buckets.artifacts, s3_endpoint)
    counting = CountingClient(s3)
    store = ArtifactStore(counting, buckets.artifacts)
    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    old_spec = _spec(buckets.artifacts, s3_endpoint, ef=32)
    older = [_publish(store, old_spec, start + timedelta(hours=h)) for h in range(12)]  # history of another build key
    serving = _publish(store, spec, start + timedelta(days=1))
    at = Artifacts(store, spec, NS, NAME)
    store.write_pointer(at.pointer, ServingPointer(generation=5, stable_version=serving, updated_at="2026-10-02T00:00:00Z"), etag=None)

    pointer, etag = store.read_pointer(at.pointer)
    versions = at.versions()
    assert len(versions) == 13 and all(v.complete for v in versions.values())
    counting.gets = 0
    adoptable = read_adoptable(at, pointer, versions, build_key(spec))
    assert set(adoptable) == {serving} and counting.gets <= MAX_MANIFESTS and not set(older) & set(adoptable)

    obs = Observation(name=NAME, namespace=NS, uid="u", generation=1, now=datetime.now(timezone.utc), spec=spec, spec_error=None,
                      status=FaissIndexStatus(), pointer=pointer, pointer_etag=etag, versions=versions, adoptable=adoptable)
    plan = decide(obs)
    assert plan.status.current_version == serving and plan.status.recall == 0.96 and plan.create_job is None
    assert plan.write_pointer is None  # serving replicas see no new pointer generation
    kept = set(versions) - set(plan.prune_versions)  # retention applies as declared, and never to what serves
    assert serving in kept and len(kept) == spec.rollout.keep_versions
