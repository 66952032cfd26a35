"""Parameter defaults and clamping are pure functions of the spec and the data size."""

from __future__ import annotations

import pytest

from index_builder.params import (
    ResolvedParameters,
    default_nlist,
    default_nprobe,
    min_vectors_to_train,
    resolve,
    train_sample_size,
)
from indexops_api.spec import IndexParameters, IndexType


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
        (1_000, 25),  # 4*sqrt(1000)=126, but only 1000//39=25 lists can be trained well
        (100_000, 1265),  # round(4*316.2)
        (1_000_000, 4000),
        (100_000_000, 40000),
    ],
)
def test_ivf_nlist_defaults_to_4_sqrt_n_clamped_to_39_points_per_list(n: int, nlist: int) -> None:
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
