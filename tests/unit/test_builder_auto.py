"""indexType Auto picks the family and parameters from size, dimension, memory and target recall."""

from __future__ import annotations

import pytest

from index_builder.auto import choose, pq_subquantizers
from index_builder.preflight import parse_quantity
from indexops_api.spec import Encoding, IndexType, Refine


def _choose(n: int, dimension: int, budget: str | None, target: float = 0.9):
    return choose(n=n, dimension=dimension, budget=parse_quantity(budget) if budget else None,
                  target_recall=target, queries=200, k=10)


def test_small_sources_get_exact_flat_search() -> None:
    decision = _choose(500, 64, None)
    assert decision.index_type is IndexType.FLAT and decision.factory == "Flat"
    assert "below 1000 vectors" in decision.reason


def test_a_near_perfect_recall_target_gets_flat_when_it_fits() -> None:
    assert _choose(50_000, 64, "8Gi", target=0.999).index_type is IndexType.FLAT
    assert _choose(50_000, 64, "8Gi", target=0.95).index_type is IndexType.HNSW


def test_hnsw_m32_when_vectors_and_graph_fit() -> None:
    decision = _choose(1_000_000, 128, "8Gi")
    assert (decision.index_type, decision.factory) == (IndexType.HNSW, "HNSW32,Flat")
    assert decision.resolved.search == {"efSearch": 64}
    assert "1000000 vectors x 128 dims, memory budget 8.00 GiB, target recall 0.9: HNSW" in decision.reason


def test_unlimited_memory_always_fits_hnsw() -> None:
    assert _choose(100_000_000, 128, None).factory == "HNSW32,Flat"


def test_a_tighter_budget_shrinks_hnsw_m_before_leaving_hnsw() -> None:
    # 1M x 128: vectors 512 MB; m=32 adds ~280 MB of links, m=8 ~70 MB
    decision = _choose(1_000_000, 128, "1Gi")
    assert decision.index_type is IndexType.HNSW and decision.resolved.build["m"] < 32


def test_ivfpq_at_a_scale_where_no_graph_fits_but_pq_codes_and_ids_do() -> None:
    # 100M x 128: OPQ+HNSW's graph alone is ~14 GB; IVFPQ needs ~12 GiB (mostly its training sample)
    decision = _choose(100_000_000, 128, "13Gi")
    assert decision.index_type is IndexType.IVFPQ, decision.reason
    assert decision.factory == f"IVF40000,PQ{decision.resolved.build['nSubquantizers']}x8"


def test_hnsw_over_sq8_codes_when_full_vectors_do_not_fit_but_scalar_codes_and_a_graph_do() -> None:
    # 10M x 128: HNSW8 over float32 needs ~5.9 GiB; over SQ8 codes m=32 ~4.4, m=16 ~3.1, m=8 ~2.4
    decisions = {budget: _choose(10_000_000, 128, budget) for budget in ("5Gi", "4Gi", "2.5Gi")}
    assert [d.factory for d in decisions.values()] == ["HNSW32_SQ8", "HNSW16_SQ8", "HNSW8_SQ8"]
    assert all(d.resolved.encoding is Encoding.SQ8 and "HNSW over SQ8" in d.reason for d in decisions.values())
    assert all(d.estimate_bytes <= parse_quantity(b) for b, d in decisions.items())


def test_product_quantization_when_not_even_scalar_codes_fit_with_the_largest_code_that_fits() -> None:
    roomy = _choose(10_000_000, 128, "2.2Gi")
    tight = _choose(10_000_000, 128, "1.9Gi")
    assert roomy.index_type in (IndexType.OPQ_HNSW, IndexType.IVFPQ) and tight.index_type in (IndexType.OPQ_HNSW, IndexType.IVFPQ)
    assert roomy.resolved.build["nSubquantizers"] > tight.resolved.build["nSubquantizers"]
    assert "full vectors do not fit" in tight.reason
    assert roomy.estimate_bytes <= parse_quantity("2.2Gi") and tight.estimate_bytes <= parse_quantity("1.9Gi")


def test_opq_hnsw_is_preferred_over_ivfpq_when_its_graph_fits() -> None:
    decision = _choose(10_000_000, 128, "2.2Gi")
    assert decision.index_type is IndexType.OPQ_HNSW, decision.reason
    assert decision.factory.startswith("OPQ") and "_PQ" in decision.factory


def test_when_nothing_fits_auto_says_so_and_picks_the_smallest_ivfpq() -> None:
    decision = _choose(100_000_000, 128, "512Mi")
    assert decision.index_type is IndexType.IVFPQ and "nothing fits" in decision.reason
    assert decision.resolved.build["nSubquantizers"] == 1


@pytest.mark.parametrize(("dimension", "sizes"), [(16, [8, 4, 2, 1]), (12, [6, 4, 3, 2, 1]), (1, [1])])
def test_pq_code_sizes_are_divisors_of_the_dimension_largest_first(dimension: int, sizes: list[int]) -> None:
    assert pq_subquantizers(dimension) == sizes


def test_when_scalar_codes_and_a_graph_fit_auto_prefers_them_over_pq_with_sq8_re_ranking() -> None:
    # PQ + SQ8 re-ranking stores the same d-byte SQ8 codes plus PQ codes and a graph or ids
    decision = _choose(1_000_000, 128, "0.75Gi")
    assert decision.factory == "HNSW16_SQ8", decision.reason
    assert "128-byte scalar codes with a graph" in decision.reason


def test_bare_pq_is_the_rung_below_when_even_sq8_codes_do_not_fit() -> None:
    decision = _choose(100_000_000, 128, "13Gi")
    assert decision.resolved.refine is Refine.NONE and "no room for SQ8 re-ranking codes" in decision.reason
