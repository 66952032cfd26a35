"""Every index type, a raw factory string and Auto build end-to-end against a real S3 API.

Recall is re-derived independently on the rows ``validation-queries.npy`` names: numpy
brute force over every *other* source row for the exact neighbours; for the approximate
ones, the index as the builder measured it (those rows not yet added), searched with the
published search parameters, its positions mapped to ids through the published ``ids.npy``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from s3_harness import Buckets, build_request, clustered, put_npy, run_builder

from index_serving.loader import VersionLoader, search_parameters_of
from indexops_api.manifest import Manifest
from indexops_store.s3 import ArtifactStore, make_client
from exact import capture_measured_indexes, held_out_recall, search_ids

pytestmark = pytest.mark.integration

N, DIM = 2000, 16


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_faiss_thread: None) -> None:
    """Every test here runs FAISS single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(N, DIM, seed=11, clusters=24)


def _manifest(s3: Any, bucket: str, prefix: str) -> Manifest:
    return Manifest.model_validate(json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read()))




def _download(s3: Any, bucket: str, prefix: str, manifest: Manifest, tmp: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """The published index, ids.npy and validation-queries.npy."""
    for name in (manifest.index_file, manifest.ids_file, "validation-queries.npy"):
        s3.download_file(bucket, f"{prefix}/{name}", str(tmp / name))
    return (faiss.read_index(str(tmp / manifest.index_file)), np.load(tmp / manifest.ids_file),
            np.load(tmp / "validation-queries.npy"))


def _independent_recall(measured_index: Any, manifest: Manifest, published_ids: np.ndarray, rows: np.ndarray,
                        data: np.ndarray) -> float:
    k, metric = manifest.measurements.k, manifest.metric.value
    found = search_ids(measured_index, data[rows], k, published_ids, manifest.search_parameters, metric)
    assert not np.isin(found, rows).any()  # a held-out row can never be its own (or anyone's) neighbour
    return held_out_recall(found, data, rows, np.arange(len(data)), k, metric)


CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (spec overrides, metric, expected factory string)
    "Flat": ({"indexType": "Flat"}, "L2", "Flat"),
    "IVF": ({"indexType": "IVF", "parameters": {"nlist": 32, "nprobe": 2}}, "InnerProduct", "IVF32,Flat"),
    "IVFPQ": ({"indexType": "IVFPQ", "parameters": {"nlist": 16, "nprobe": 4}}, "L2", "IVF16,PQ8x8,Refine(SQ8)"),
    "HNSW": ({"indexType": "HNSW", "parameters": {"m": 8, "efConstruction": 32, "efSearch": 16}}, "Cosine", "HNSW8,Flat"),
    "OPQ+HNSW": ({"indexType": "OPQ+HNSW", "parameters": {"nSubquantizers": 4, "efSearch": 32}}, "L2",
                 "OPQ4_16,HNSW16_PQ4x8,Refine(SQ8)"),
    "factory": ({"indexType": "IVF", "factory": "IVF16,SQ8", "parameters": {"nprobe": 3}}, "L2", "IVF16,SQ8"),
    "Auto": ({"indexType": "Auto", "build": {"maxMemory": "4Gi"}}, "L2", "HNSW32,Flat"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_index_type_builds_and_its_recorded_recall_matches_numpy_brute_force(
    case: str, s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, data: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overrides, metric, factory = CASES[case]
    put_npy(s3, buckets.source, "6h/vectors.npy", data)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, dimension=DIM, metric=metric,
                            validation={"queries": 80, "k": 10}, **overrides)
    measured = capture_measured_indexes(monkeypatch)

    result = run_builder(request, tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    assert manifest.factory == factory and manifest.index_type.value == overrides["indexType"]
    published, published_ids, rows = _download(s3, buckets.artifacts, result.prefix, manifest, tmp_path)
    assert len(rows) == manifest.measurements.queries == 80
    assert measured[-1].ntotal == N - 80 and published.ntotal == N  # measured without the query rows, published with
    np.testing.assert_array_equal(published_ids[N - 80:], rows)  # appended last, after measuring
    np.testing.assert_array_equal(np.sort(published_ids), np.arange(N))
    assert manifest.measurements.recall_at_k == pytest.approx(
        _independent_recall(measured[-1], manifest, published_ids, rows, data), abs=1e-9)
    names = {c.name for c in manifest.checks}
    assert {"ntotalMatchesVectors", "dimensionMatchesSpec", "idsMatchNtotal", "filesNotEmpty", "queriesHeldOut",
            "searchReturnsK", "noDuplicateIds", "distancesMonotonic"} <= names
    assert all(c.passed for c in manifest.checks), manifest.checks
    m = manifest.measurements
    assert m.batch_latency_ms_per_query is not None and m.batch_latency_ms_per_query > 0
    index_entry = next(f for f in manifest.files if f.name == manifest.index_file)
    # Serving memory by FAISS's own accounting (plus the ids array), not the file size
    assert manifest.memory is not None and m.memory_bytes == manifest.memory.total > 0
    assert manifest.memory.ids >= 8 * N and index_entry.size > 0
    assert manifest.memory_estimate_bytes is not None and manifest.memory_estimate_bytes > m.memory_bytes
    if case == "Auto":
        assert manifest.auto is not None and manifest.auto.index_type.value == "HNSW"
        assert manifest.auto.factory == factory and "memory budget 4.00 GiB" in manifest.auto.reason
        assert manifest.parameters == {"m": 32, "efConstruction": 200}
    else:
        assert manifest.auto is None
    if case == "factory":
        assert manifest.search_parameters == {"nprobe": 3} and manifest.parameters == {}
    if case in ("IVFPQ", "OPQ+HNSW", "IVF", "HNSW"):
        assert 0.2 < m.recall_at_k < 1.0  # approximate: the comparison is not trivially 1 == 1


def test_tuning_reaches_a_reachable_target_records_the_sweep_and_serves_the_chosen_value(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, data: np.ndarray
) -> None:
    put_npy(s3, buckets.source, "6h/vectors.npy", data)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, dimension=DIM, indexType="IVF",
                            parameters={"nlist": 32, "nprobe": 1}, tuning={"targetRecall": 0.9},
                            validation={"queries": 80, "k": 10})

    result = run_builder(request, tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    tuning = manifest.tuning
    assert tuning is not None and tuning.reached and tuning.target_recall == 0.9 and tuning.k == 10
    swept = [p.parameters["nprobe"] for p in tuning.sweep]
    assert swept == sorted(swept) and swept[0] == 1 and len(swept) >= 2
    assert tuning.chosen in [p.parameters for p in tuning.sweep if p.recall >= 0.9]
    assert manifest.search_parameters == tuning.chosen
    assert manifest.measurements.recall_at_k >= 0.9
    chosen_point = next(p for p in tuning.sweep if p.parameters == tuning.chosen)
    assert manifest.measurements.recall_at_k == pytest.approx(chosen_point.recall)


def test_a_bad_factory_string_fails_with_faiss_reason_before_training_and_publishes_nothing(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, data: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    put_npy(s3, buckets.source, "6h/vectors.npy", data)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, dimension=DIM, factory="IVF16,PQ7")

    with caplog.at_level("INFO"):
        result = run_builder(request, tmp_path)

    assert result.exit_code == 1
    assert result.termination.startswith("FactoryInvalid: factory 'IVF16,PQ7' for dimension 16: "), result.termination
    assert "multiple of" in result.termination and "Error in" not in result.termination
    assert not any(getattr(r, "stage", None) == "train" for r in caplog.records)
    assert s3.list_objects_v2(Bucket=buckets.artifacts).get("KeyCount", 0) == 0


def test_preflight_rejects_a_memory_limit_below_the_estimate_before_building(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, data: np.ndarray
) -> None:
    put_npy(s3, buckets.source, "6h/vectors.npy", data)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, dimension=DIM, indexType="HNSW",
                            build={"resources": {"limits": {"memory": "64Mi"}}})

    result = run_builder(request, tmp_path)

    assert result.exit_code == 1
    assert result.termination.startswith("InsufficientMemory: needs ~0.2"), result.termination
    assert "GiB, limit 0.06 GiB (build.resources.limits.memory)" in result.termination
    assert s3.list_objects_v2(Bucket=buckets.artifacts).get("KeyCount", 0) == 0


@pytest.mark.parametrize(
    ("index_type", "parameters", "expected"),
    [
        ("IVFPQ", {"nlist": 16, "nprobe": 5}, {"nprobe": 5, "k_factor_rf": 8}),
        ("OPQ+HNSW", {"nSubquantizers": 4, "efSearch": 48, "kFactor": 4}, {"efSearch": 48, "k_factor_rf": 4}),
    ],
)
def test_serving_loads_pq_versions_with_their_recorded_search_parameters(
    s3_endpoint: str, s3: Any, buckets: Buckets, tmp_path: Path, data: np.ndarray,
    index_type: str, parameters: dict[str, int], expected: dict[str, int],
) -> None:
    put_npy(s3, buckets.source, "6h/vectors.npy", data)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, dimension=DIM, indexType=index_type,
                            parameters=parameters)
    result = run_builder(request, tmp_path)
    assert result.exit_code == 0, result.termination
    versions_prefix, version = result.prefix.rsplit("/", 1)

    loader = VersionLoader(ArtifactStore(make_client(s3_endpoint), buckets.artifacts), versions_prefix, tmp_path / "cache")
    loaded = loader.load(version)

    assert loaded.manifest.search_parameters == expected
    assert search_parameters_of(loaded.index) == expected
    ids, _ = loaded.search(data[:3], 5)
    assert [row[0] for row in ids] == [0, 1, 2]
