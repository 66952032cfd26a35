"""Parameter defaults and clamping are pure functions of the spec and the data size."""

from __future__ import annotations

import pytest

from index_builder.params import (
    ResolvedParameters,
    default_ivfpq_subquantizers,
    default_nlist,
    default_nprobe,
    default_opq_subquantizers,
    factory_string,
    min_vectors_to_train,
    resolve,
    train_sample_size,
    training_rows,
)
from indexops_api.spec import Encoding, IndexParameters, IndexType, Refine


def test_flat_has_no_build_or_search_parameters() -> None:
    assert resolve(IndexType.FLAT, IndexParameters(), 10_000) == ResolvedParameters({}, {})


def test_hnsw_defaults_are_m32_efconstruction200_efsearch64() -> None:
    resolved = resolve(IndexType.HNSW, IndexParameters(), 10_000)
    assert resolved.build == {"m": 32, "efConstruction": 200}
    assert resolved.search == {"efSearch": 64}


def test_hnsw_user_values_override_each_default_independently() -> None:
    resolved = resolve(IndexType.HNSW, IndexParameters(ef_search=128), 10_000)
    assert resolved.build == {"m": 32, "efConstruction": 200}
    assert resolved.search == {"efSearch": 128}


@pytest.mark.parametrize(
    ("n", "nlist"),
    [
        (1, 1),  # clamp: at least one list
        (10, 1),
        (1_000, 15),  # 4*sqrt(1000)=126, but only 1000//64=15 lists keep 64 rows each
        (20_000, 312),  # 4*sqrt(20000)=566 > 20000//64
        (100_000, 1265),  # round(4*316.2)
        (1_000_000, 4000),
        (100_000_000, 40000),
    ],
)
def test_ivf_nlist_defaults_to_4_sqrt_n_clamped_to_64_rows_per_list(n: int, nlist: int) -> None:
    assert default_nlist(n) == nlist
    assert resolve(IndexType.IVF, IndexParameters(), n).build == {"nlist": nlist}


@pytest.mark.parametrize(("nlist", "nprobe"), [(1, 1), (5, 5), (25, 10), (100, 20), (1024, 64), (4000, 126), (65536, 512)])
def test_ivf_nprobe_defaults_to_2_sqrt_nlist_at_least_8_at_most_nlist(nlist: int, nprobe: int) -> None:
    assert default_nprobe(nlist) == nprobe


def test_ivf_user_nprobe_above_nlist_is_clamped_to_nlist() -> None:
    resolved = resolve(IndexType.IVF, IndexParameters(nlist=16, nprobe=64), 10_000)
    assert resolved.build == {"nlist": 16} and resolved.search == {"nprobe": 16}


def test_ivf_user_nlist_is_kept_even_when_larger_than_the_data_so_the_check_can_name_it() -> None:
    resolved = resolve(IndexType.IVF, IndexParameters(nlist=500), 100)
    assert resolved.build["nlist"] == 500
    assert min_vectors_to_train(IndexType.IVF, resolved) == 500


def test_ivf_trains_on_at_most_256_points_per_list() -> None:
    assert train_sample_size(1_000_000, 100) == 25_600
    assert train_sample_size(5_000, 100) == 5_000


def test_types_without_training_need_only_one_vector() -> None:
    assert min_vectors_to_train(IndexType.FLAT, resolve(IndexType.FLAT, IndexParameters(), 1)) == 1
    assert min_vectors_to_train(IndexType.HNSW, resolve(IndexType.HNSW, IndexParameters(), 1)) == 1


# -- product-quantized types and factory strings ---------------------------------------------


@pytest.mark.parametrize(("dimension", "nsq"), [(1, 1), (2, 1), (16, 8), (32, 16), (100, 50), (128, 64), (768, 64), (97, 1)])
def test_ivfpq_subquantizers_default_to_the_largest_divisor_keeping_two_dims_each_and_at_most_64(dimension: int, nsq: int) -> None:
    assert default_ivfpq_subquantizers(dimension) == nsq


def test_ivfpq_defaults_take_nlist_and_nprobe_from_ivf_8_bit_codes_and_sq8_re_ranking() -> None:
    resolved = resolve(IndexType.IVFPQ, IndexParameters(), 100_000, 64)
    assert resolved.build == {"nlist": 1265, "nSubquantizers": 32, "mPq": 8}
    assert resolved.search == {"nprobe": 70, "k_factor_rf": 8}
    assert resolved.refine is Refine.SQ8


def test_refine_none_keeps_the_plain_pq_index_without_a_re_rank_depth() -> None:
    resolved = resolve(IndexType.IVFPQ, IndexParameters(refine=Refine.NONE, k_factor=4), 100_000, 64)
    assert resolved.search == {"nprobe": 70} and resolved.refine is Refine.NONE


def test_types_with_full_vectors_never_re_rank() -> None:
    for index_type in (IndexType.HNSW, IndexType.IVF, IndexType.FLAT):
        resolved = resolve(index_type, IndexParameters(refine=Refine.FLAT, k_factor=4), 10_000, 64)
        assert resolved.refine is Refine.NONE and "k_factor_rf" not in resolved.search


@pytest.mark.parametrize(("dimension", "nsq"), [(64, 32), (32, 32), (16, 16), (48, 24), (40, 40), (96, 32), (30, 30), (60, 30)])
def test_opq_hnsw_subquantizers_default_to_32_or_the_nearest_divisor(dimension: int, nsq: int) -> None:
    assert default_opq_subquantizers(dimension) == nsq


def test_opq_hnsw_defaults_are_the_migration_guide_values() -> None:
    resolved = resolve(IndexType.OPQ_HNSW, IndexParameters(), 10_000, 64)
    assert resolved.build == {"nSubquantizers": 32, "mPq": 8, "mHnsw": 16, "efConstruction": 200}
    assert resolved.search == {"efSearch": 64, "k_factor_rf": 8}


def test_user_pq_parameters_override_the_defaults() -> None:
    resolved = resolve(IndexType.IVFPQ, IndexParameters(nlist=32, nprobe=4, n_subquantizers=4, m_pq=6, k_factor=3,
                                                        refine=Refine.FLAT), 5_000, 64)
    assert resolved.build == {"nlist": 32, "nSubquantizers": 4, "mPq": 6}
    assert resolved.search == {"nprobe": 4, "k_factor_rf": 3} and resolved.refine is Refine.FLAT


@pytest.mark.parametrize(
    ("index_type", "parameters", "factory"),
    [
        (IndexType.FLAT, IndexParameters(), "Flat"),
        (IndexType.HNSW, IndexParameters(m=16), "HNSW16,Flat"),
        (IndexType.IVF, IndexParameters(nlist=64), "IVF64,Flat"),
        (IndexType.IVFPQ, IndexParameters(nlist=64), "IVF64,PQ16x8,Refine(SQ8)"),
        (IndexType.IVFPQ, IndexParameters(nlist=64, refine=Refine.NONE), "IVF64,PQ16x8"),
        (IndexType.OPQ_HNSW, IndexParameters(), "OPQ32_32,HNSW16_PQ32x8,Refine(SQ8)"),
        (IndexType.OPQ_HNSW, IndexParameters(n_subquantizers=8, m_pq=4, m_hnsw=24, refine=Refine.FLAT),
         "OPQ8_32,HNSW24_PQ8x4,RFlat"),
    ],
)
def test_each_type_has_a_faiss_factory_string(index_type: IndexType, parameters: IndexParameters, factory: str) -> None:
    assert factory_string(index_type, resolve(index_type, parameters, 10_000, 32), 32) == factory


def test_pq_types_need_one_training_vector_per_centroid() -> None:
    assert min_vectors_to_train(IndexType.IVFPQ, resolve(IndexType.IVFPQ, IndexParameters(nlist=16), 1000, 32)) == 256
    assert min_vectors_to_train(IndexType.IVFPQ, resolve(IndexType.IVFPQ, IndexParameters(nlist=512), 1000, 32)) == 512
    assert min_vectors_to_train(IndexType.IVFPQ, resolve(IndexType.IVFPQ, IndexParameters(m_pq=10), 9000, 32)) == 1024
    # OPQ trains its rotation with an internal 8-bit PQ whatever mPq is
    assert min_vectors_to_train(IndexType.OPQ_HNSW, resolve(IndexType.OPQ_HNSW, IndexParameters(m_pq=4), 1000, 32)) == 256


def test_pq_training_samples_256_per_list_or_39_per_pq_centroid_capped_at_n() -> None:
    assert training_rows(IndexType.IVFPQ, resolve(IndexType.IVFPQ, IndexParameters(nlist=100), 10**6, 32), 10**6) == 25_600
    assert training_rows(IndexType.IVFPQ, resolve(IndexType.IVFPQ, IndexParameters(nlist=10), 10**6, 32), 10**6) == 9_984
    assert training_rows(IndexType.OPQ_HNSW, resolve(IndexType.OPQ_HNSW, IndexParameters(), 3_000, 32), 3_000) == 3_000
    assert training_rows(IndexType.HNSW, resolve(IndexType.HNSW, IndexParameters(), 3_000, 32), 3_000) == 0


def test_without_the_dimension_pq_types_still_resolve_what_counting_needs() -> None:
    resolved = resolve(IndexType.IVFPQ, IndexParameters(nlist=300), 1000)
    assert "nSubquantizers" not in resolved.build and min_vectors_to_train(IndexType.IVFPQ, resolved) == 300


def test_auto_resolves_to_nothing_until_the_budget_is_known() -> None:
    assert resolve(IndexType.AUTO, IndexParameters(), 10_000, 32) == ResolvedParameters()


@pytest.mark.parametrize("n", [2_000, 5_000, 10_000, 24_000, 41_000, 100_000, 1_000_000])
@pytest.mark.parametrize("index_type", [IndexType.IVF, IndexType.IVFPQ])
def test_default_nlist_never_trips_the_builders_own_nlist_warning(n: int, index_type: IndexType) -> None:
    from index_builder import sanity

    held_out = 200  # validation.queries default: held out of training, the default must leave room for them
    kept = n - held_out
    resolved = resolve(index_type, IndexParameters(), n, 384)
    rows = training_rows(index_type, resolved, kept)
    warnings = sanity.check(index_type, resolved, IndexParameters(), kept=kept, training_rows=rows, k=10)
    # IVFPQ below ~10k rows also warns, rightly, that 256-centroid PQ codebooks want 9,984 rows: not about nlist
    assert [w for w in warnings if index_type is IndexType.IVF or w.startswith("nlist=")] == []


@pytest.mark.parametrize(("encoding", "hnsw", "ivf"), [
    (Encoding.FLAT, "HNSW32,Flat", "IVF1265,Flat"), (Encoding.SQ8, "HNSW32_SQ8", "IVF1265,SQ8"),
    (Encoding.SQ4, "HNSW32_SQ4", "IVF1265,SQ4"), (Encoding.FP16, "HNSW32_SQfp16", "IVF1265,SQfp16"),
])
def test_encoding_picks_the_scalar_quantizer_of_hnsw_and_ivf(encoding: Encoding, hnsw: str, ivf: str) -> None:
    user = IndexParameters(encoding=encoding)
    assert factory_string(IndexType.HNSW, resolve(IndexType.HNSW, user, 100_000), 384) == hnsw
    assert factory_string(IndexType.IVF, resolve(IndexType.IVF, user, 100_000), 384) == ivf


def test_hnsw_over_sq8_trains_its_ranges_on_a_capped_sample_and_hnsw_flat_needs_no_training() -> None:
    sq8 = resolve(IndexType.HNSW, IndexParameters(encoding=Encoding.SQ8), 1_000_000)
    assert training_rows(IndexType.HNSW, sq8, 1_000_000) == 65_536 and training_rows(IndexType.HNSW, sq8, 500) == 500
    assert training_rows(IndexType.HNSW, resolve(IndexType.HNSW, IndexParameters(), 1_000_000), 1_000_000) == 0
