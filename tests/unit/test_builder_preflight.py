"""Preflight memory estimates and limits are pure functions of the spec and the data size."""

from __future__ import annotations

from typing import Any

import pytest

from index_builder import preflight
from index_builder.params import resolve
from index_builder.preflight import InsufficientMemory, estimate_typed, index_bytes, memory_budget, parse_quantity, plan
from indexops_api.spec import Encoding, FaissIndexSpec, IndexParameters, IndexType

GiB = 2**30


def _spec(**overrides: Any) -> FaissIndexSpec:
    body: dict[str, Any] = {
        "horizon": "6h", "dimension": 64, "indexType": "HNSW",
        "source": {"file": {"path": "/data/x.npy"}}, "storage": {"bucket": "artifacts"},
    }
    body.update(overrides)
    return FaissIndexSpec.model_validate(body)


@pytest.mark.parametrize(("text", "nbytes"), [("8Gi", 8 * GiB), ("512Mi", 512 * 2**20), ("1.5Gi", int(1.5 * GiB)),
                                               ("2G", 2 * 10**9), ("1000", 1000), ("64Ki", 65536)])
def test_memory_quantities_parse_like_kubernetes(text: str, nbytes: int) -> None:
    assert parse_quantity(text) == nbytes


def test_the_budget_is_max_memory_then_the_memory_limit_then_unlimited() -> None:
    limits = {"resources": {"limits": {"memory": "4Gi"}}}
    assert memory_budget(_spec(build={"maxMemory": "2Gi", **limits})) == 2 * GiB
    assert memory_budget(_spec(build=limits)) == 4 * GiB
    assert memory_budget(_spec()) is None


def test_flat_index_memory_is_four_bytes_per_component() -> None:
    assert index_bytes(IndexType.FLAT, {}, 1_000_000, 128) == 512_000_000


def test_hnsw_memory_adds_two_m_int32_links_per_vector_on_top_of_the_vectors() -> None:
    small = index_bytes(IndexType.HNSW, {"m": 8}, 1_000_000, 128)
    large = index_bytes(IndexType.HNSW, {"m": 32}, 1_000_000, 128)
    assert 512_000_000 + 64_000_000 < small < large
    assert large - small == pytest.approx(1_000_000 * 2 * 24 * 4 * 1.1, rel=1e-6)


def test_scalar_encodings_store_one_byte_half_a_byte_or_two_bytes_per_component() -> None:
    n, d = 1_000_000, 128
    for index_type, build in ((IndexType.HNSW, {"m": 32}), (IndexType.IVF, {"nlist": 4000})):
        flat = index_bytes(index_type, build, n, d)
        assert flat - index_bytes(index_type, build, n, d, Encoding.SQ8) == n * 3 * d
        assert flat - index_bytes(index_type, build, n, d, Encoding.SQ4) == n * (4 * d - d // 2)
        assert flat - index_bytes(index_type, build, n, d, Encoding.FP16) == n * 2 * d


def test_pq_codes_are_far_smaller_than_flat_vectors() -> None:
    n, d = 10_000_000, 128
    ivfpq = resolve(IndexType.IVFPQ, IndexParameters(n_subquantizers=16), n, d)
    assert index_bytes(IndexType.IVFPQ, ivfpq.build, n, d) < index_bytes(IndexType.FLAT, {}, n, d) / 10
    opq = resolve(IndexType.OPQ_HNSW, IndexParameters(), n, d)
    assert index_bytes(IndexType.OPQ_HNSW, opq.build, n, d) < index_bytes(IndexType.HNSW, {"m": 32}, n, d) / 2


def test_the_estimate_counts_the_training_sample_batches_queries_and_runtime() -> None:
    resolved = resolve(IndexType.IVF, IndexParameters(nlist=1000), 1_000_000, 128)
    estimate = estimate_typed(IndexType.IVF, resolved, n=1_000_000, dimension=128, queries=1000, k=10)
    assert estimate.training == 2 * 256_000 * 128 * 4
    assert estimate.total == estimate.index + estimate.training + estimate.batches + estimate.queries + preflight.BASELINE_BYTES


def test_a_build_above_the_limit_fails_before_loading_naming_estimate_and_limit() -> None:
    spec = _spec(build={"maxMemory": "1Gi"})
    with pytest.raises(InsufficientMemory) as caught:
        plan(spec, 5_000_000)
    message = caught.value.termination_message()
    assert message.startswith("InsufficientMemory: needs ~")
    assert "GiB, limit 1.00 GiB (build.maxMemory)" in message and "'HNSW32,Flat'" in message


def test_a_build_within_the_limit_records_its_estimate() -> None:
    built = plan(_spec(build={"resources": {"limits": {"memory": "8Gi"}}}), 1_000_000)
    assert built.factory == "HNSW32,Flat" and built.budget == 8 * GiB
    assert 256_000_000 + 300 * 2**20 < built.estimate.total < 8 * GiB


def test_a_raw_factory_is_planned_from_its_string() -> None:
    built = plan(_spec(factory="IVF64,PQ8x8"), 100_000)
    assert (built.index_type, built.factory, built.auto) == (None, "IVF64,PQ8x8", None)


def test_auto_is_resolved_by_the_plan_and_explained() -> None:
    built = plan(_spec(indexType="Auto", build={"maxMemory": "16Gi"}), 50_000)
    assert built.index_type is IndexType.HNSW and built.auto is not None
    assert built.auto.index_type is IndexType.HNSW and built.auto.factory == built.factory == "HNSW32,Flat"
