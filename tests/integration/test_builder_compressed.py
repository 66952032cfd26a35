"""Compressed types pass the default gate on real sentence embeddings, and their recall claim holds.

The fixture is 2,000 all-MiniLM-L6-v2 embeddings of Python stdlib sentences (see
``data/README.md``): real neural structure, where PQ distances alone rank too poorly for
recall@10 >= 0.9. With their default SQ8 re-ranking, IVFPQ and OPQ+HNSW must pass the
default gate (``minRecall: 0.9``), and the recall the builder claims must agree within 0.02
with an independent numpy computation on rows the source never contained (``UNSEEN``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from s3_harness import Buckets, build_request, put_npy, run_builder

from exact import brute_force_topk, overlap, search_ids
from indexops_api.gates import gate_failures
from indexops_api.manifest import Manifest
from indexops_api.spec import FaissIndexSpec

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent / "data" / "minilm-stdlib-2000x384.npy"
SOURCE, K = 1_600, 10


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_faiss_thread: None) -> None:
    """Every test here runs FAISS single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def embeddings() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source rows, unseen rows, exact top-K of the unseen rows among the source by numpy)."""
    matrix = np.load(FIXTURE).astype(np.float32)
    source, unseen = matrix[:SOURCE], matrix[SOURCE:]
    return source, unseen, brute_force_topk(source, unseen, K, "Cosine")


def _build(s3: Any, endpoint: str, buckets: Buckets, tmp: Path, source: np.ndarray,
           **spec: Any) -> tuple[Manifest, Any, np.ndarray, dict[str, Any]]:
    put_npy(s3, buckets.source, "6h/vectors.npy", source)
    request = build_request(buckets=buckets, endpoint=endpoint, dimension=source.shape[1], metric="Cosine",
                            validation={"k": K}, **spec)
    result = run_builder(request, tmp)
    assert (result.exit_code, result.termination) == (0, "")
    manifest = Manifest.model_validate(json.loads(
        s3.get_object(Bucket=buckets.artifacts, Key=f"{result.prefix}/manifest.json")["Body"].read()))
    for name in (manifest.index_file, manifest.ids_file):
        s3.download_file(buckets.artifacts, f"{result.prefix}/{name}", str(tmp / name))
    return manifest, faiss.read_index(str(tmp / manifest.index_file)), np.load(tmp / manifest.ids_file), request


@pytest.mark.parametrize("index_type", ["IVFPQ", "OPQ+HNSW"])
def test_each_compressed_type_passes_the_default_gate_and_its_claim_matches_numpy_on_unseen_rows(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, index_type: str,
    embeddings: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    source, unseen, truth = embeddings
    manifest, published, ids, request = _build(s3, s3_endpoint, buckets, tmp_path, source, indexType=index_type)

    assert manifest.factory is not None and manifest.factory.endswith(",Refine(SQ8)")
    assert gate_failures(manifest, FaissIndexSpec.model_validate(request["spec"]), manifest.version) == []
    claim, bound = manifest.measurements.recall_at_k, manifest.measurements.recall_lower_bound
    assert claim >= 0.9 and bound is not None and bound <= claim
    independent = overlap(search_ids(published, unseen, K, ids, manifest.search_parameters, "Cosine"), truth, K)
    assert abs(claim - independent) <= 0.02, (claim, independent)
    # Where the bytes go: PQ codes, SQ8 re-ranking codes (one byte per dimension), ids.
    memory = manifest.memory
    assert memory is not None and memory.refine == SOURCE * source.shape[1]
    assert memory.codes > 0 and memory.ids >= 8 * SOURCE and memory.total == manifest.measurements.memory_bytes
    assert (memory.graph > 0) == (index_type == "OPQ+HNSW")


@pytest.mark.parametrize(("index_type", "factory_start"), [("HNSW", "HNSW32_SQ8"), ("IVF", "IVF25,SQ8")])
def test_sq8_encoded_hnsw_and_ivf_pass_the_default_gate_and_their_claim_matches_numpy_on_unseen_rows(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, index_type: str, factory_start: str,
    embeddings: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    source, unseen, truth = embeddings
    manifest, published, ids, request = _build(s3, s3_endpoint, buckets, tmp_path, source, indexType=index_type,
                                               parameters={"encoding": "SQ8"})

    assert manifest.factory == factory_start
    assert gate_failures(manifest, FaissIndexSpec.model_validate(request["spec"]), manifest.version) == []
    assert manifest.warnings == []  # the default nlist (1600 // 64 = 25) leaves 56 training rows per list
    claim = manifest.measurements.recall_at_k
    assert claim >= 0.9
    independent = overlap(search_ids(published, unseen, K, ids, manifest.search_parameters, "Cosine"), truth, K)
    assert abs(claim - independent) <= 0.02, (claim, independent)
    # Where the bytes go: one byte per dimension of SQ8 codes, the graph (HNSW) or list ids (IVF), ids.npy.
    memory = manifest.memory
    assert memory is not None and memory.codes == SOURCE * source.shape[1] and memory.refine == 0
    assert (memory.graph > 0) == (index_type == "HNSW")
    assert memory.ids == 8 * SOURCE * (2 if index_type == "IVF" else 1)
    assert memory.total == manifest.measurements.memory_bytes


def test_tuning_sweeps_the_re_rank_depth_and_picks_a_setting_whose_lower_bound_reaches_the_target(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
    embeddings: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    source, unseen, truth = embeddings
    manifest, published, ids, _ = _build(s3, s3_endpoint, buckets, tmp_path, source, indexType="IVFPQ",
                                         tuning={"targetRecall": 0.95})

    tuning = manifest.tuning
    assert tuning is not None and tuning.reached and tuning.criterion == "recallLowerBound"
    assert {p.parameters.get("k_factor_rf") for p in tuning.sweep} >= {1, 2, 4}
    chosen = next(p for p in tuning.sweep if p.parameters == tuning.chosen)
    assert chosen.recall_lower_bound is not None and chosen.recall_lower_bound >= 0.95
    assert manifest.search_parameters == {**manifest.search_parameters, **tuning.chosen}
    independent = overlap(search_ids(published, unseen, K, ids, manifest.search_parameters, "Cosine"), truth, K)
    assert independent >= 0.95 - 0.02 and abs(manifest.measurements.recall_at_k - independent) <= 0.02


def test_an_nlist_too_large_for_the_rows_is_a_recorded_warning_not_a_silent_log_line(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
    embeddings: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    source, _, _ = embeddings
    manifest, _, _, _ = _build(s3, s3_endpoint, buckets, tmp_path, source, indexType="IVF", parameters={"nlist": 200})

    assert any(w.startswith("nlist=200 is too large for 1400 training vectors") for w in manifest.warnings), manifest.warnings
    assert any("use nlist <= 35" in w for w in manifest.warnings)
