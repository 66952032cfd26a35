"""Parameters that cannot work well for the data become recorded warnings that say what to change."""

from __future__ import annotations

from index_builder.params import resolve
from index_builder.sanity import check, merge
from indexops_api.spec import Encoding, IndexParameters, IndexType, Refine


def _check(index_type: IndexType, user: IndexParameters, *, kept: int, training_rows: int, k: int = 10) -> list[str]:
    return check(index_type, resolve(index_type, user, kept, 64), user, kept=kept, training_rows=training_rows, k=k)


def test_an_nlist_too_large_for_the_training_rows_warns_with_the_nlist_that_would_fit() -> None:
    [warning] = _check(IndexType.IVF, IndexParameters(nlist=1024), kept=10_000, training_rows=10_000)
    assert warning.startswith("nlist=1024 is too large for 10000 training vectors")
    assert "at least 39936" in warning and "use nlist <= 256" in warning


def test_default_parameters_on_enough_rows_raise_no_warning() -> None:
    assert _check(IndexType.IVF, IndexParameters(), kept=100_000, training_rows=100_000) == []
    assert _check(IndexType.HNSW, IndexParameters(), kept=100, training_rows=0) == []


def test_pq_codebooks_trained_on_too_few_rows_warn() -> None:
    warnings = _check(IndexType.IVFPQ, IndexParameters(nlist=8), kept=2_000, training_rows=2_000)
    assert any("PQ codebooks" in w and "9984" in w for w in warnings)


def test_an_nprobe_above_nlist_and_a_refine_on_a_full_vector_type_are_reported() -> None:
    assert any("nprobe=64 is larger than nlist=16" in w
               for w in _check(IndexType.IVF, IndexParameters(nlist=16, nprobe=64), kept=100_000, training_rows=4096))
    assert any("has no effect on indexType HNSW" in w
               for w in _check(IndexType.HNSW, IndexParameters(refine=Refine.SQ8), kept=1000, training_rows=0))


def test_an_encoding_on_a_type_that_cannot_use_it_is_reported() -> None:
    assert any("parameters.encoding=SQ8 has no effect on indexType IVFPQ" in w
               for w in _check(IndexType.IVFPQ, IndexParameters(encoding=Encoding.SQ8), kept=100_000, training_rows=65_536))
    assert _check(IndexType.HNSW, IndexParameters(encoding=Encoding.SQ8), kept=1000, training_rows=1000) == []


def test_faiss_lines_are_deduplicated_and_dropped_when_a_rule_already_explains_them() -> None:
    line = "WARNING clustering 2000 points to 256 centroids: please provide at least 9984 training points"
    assert merge([], [line, line, "WARNING other"]) == [f"FAISS: {line}", "FAISS: WARNING other"]
    assert merge(["PQ codebooks (...) are trained on 2000 vectors"], [line]) == ["PQ codebooks (...) are trained on 2000 vectors"]
