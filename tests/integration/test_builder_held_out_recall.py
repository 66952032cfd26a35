"""The builder's recall is what queries the index has never seen get, and tuning reaches its target on them.

Data with real structure (clustered, 48-dimensional) and an HNSW graph built cheaply on
purpose: there, measuring with query rows the index already contains (leave-one-out, the
builder's old scheme) over-states recall, because the search walks into the query's own
node, whose links are its nearest neighbours. ``UNSEEN`` queries come from the same
distribution but are never in the source; they are what serving will actually see.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from s3_harness import Buckets, build_request, clustered, put_npy, run_builder

from exact import brute_force_topk, capture_measured_indexes, held_out_recall, leave_one_out_recall, overlap, search_ids
from indexops_api.manifest import Manifest

pytestmark = pytest.mark.integration

N, UNSEEN, DIM, K, QUERIES = 20_000, 2_000, 48, 10, 400
HNSW = {"m": 16, "efConstruction": 40, "efSearch": 16}
TARGET = 0.955


@pytest.fixture(autouse=True, scope="module")
def one_thread(one_faiss_thread: None) -> None:
    """Every test here runs FAISS single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source rows, unseen queries, exact top-K of the unseen queries among all source rows)."""
    both = clustered(N + UNSEEN, DIM, seed=3, clusters=32)
    source, unseen = both[:N], both[N:]
    return source, unseen, brute_force_topk(source, unseen, K, "L2")


def _published(s3: Any, buckets: Buckets, prefix: str, tmp: Path) -> tuple[Manifest, Any, np.ndarray, np.ndarray]:
    manifest = Manifest.model_validate(json.loads(s3.get_object(Bucket=buckets.artifacts, Key=f"{prefix}/manifest.json")["Body"].read()))
    for name in (manifest.index_file, manifest.ids_file, "validation-queries.npy"):
        s3.download_file(buckets.artifacts, f"{prefix}/{name}", str(tmp / name))
    return (manifest, faiss.read_index(str(tmp / manifest.index_file)), np.load(tmp / manifest.ids_file),
            np.load(tmp / "validation-queries.npy"))


def _build(s3: Any, s3_endpoint: str, buckets: Buckets, tmp: Path, source: np.ndarray, **spec: Any) -> str:
    put_npy(s3, buckets.source, "6h/vectors.npy", source)
    request = build_request(buckets=buckets, endpoint=s3_endpoint, dimension=DIM, indexType="HNSW", parameters=HNSW,
                            validation={"queries": QUERIES, "k": K}, **spec)
    result = run_builder(request, tmp)
    assert (result.exit_code, result.termination) == (0, "")
    return result.prefix


def test_recall_is_measured_on_queries_not_in_the_index_and_matches_what_unseen_queries_get(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    vectors: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    source, unseen, unseen_truth = vectors
    measured = capture_measured_indexes(monkeypatch)

    prefix = _build(s3, s3_endpoint, buckets, tmp_path, source)

    manifest, published, ids, rows = _published(s3, buckets, prefix, tmp_path)
    recall, search = manifest.measurements.recall_at_k, manifest.search_parameters
    assert len(rows) == manifest.measurements.queries == QUERIES and search == {"efSearch": 16}
    # The index the builder measured did not contain the query rows; the published one contains every row.
    assert measured[-1].ntotal == N - QUERIES and published.ntotal == N
    found = search_ids(measured[-1], source[rows], K, ids, search, "L2")
    assert not np.isin(found, rows).any()
    # Exact neighbours by numpy over the other rows: the builder's figure, to float precision.
    assert recall == pytest.approx(held_out_recall(found, source, rows, np.arange(N), K, "L2"), abs=1e-9)
    # Queries that were never in the source see the same recall on the published index ...
    unseen_recall = overlap(search_ids(published, unseen, K, ids, search, "L2"), unseen_truth, K)
    assert recall == pytest.approx(unseen_recall, abs=0.02), (recall, unseen_recall)
    # ... while leave-one-out on the same rows of the published index over-states it.
    optimistic = leave_one_out_recall(search_ids(published, source[rows], K + 1, ids, search, "L2"), source, rows, K, "L2")
    assert optimistic > unseen_recall + 0.03, (optimistic, unseen_recall)


def test_tuning_reaches_the_target_on_queries_the_index_has_never_seen(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, vectors: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    source, unseen, unseen_truth = vectors

    prefix = _build(s3, s3_endpoint, buckets, tmp_path, source, tuning={"targetRecall": TARGET})

    manifest, published, ids, rows = _published(s3, buckets, prefix, tmp_path)
    tuning = manifest.tuning
    assert tuning is not None and tuning.reached and manifest.search_parameters == tuning.chosen
    chosen = tuning.chosen["efSearch"]

    def unseen_recall(search: dict[str, int]) -> float:
        return overlap(search_ids(published, unseen, K, ids, search, "L2"), unseen_truth, K)

    def leave_one_out(search: dict[str, int]) -> float:
        return leave_one_out_recall(search_ids(published, source[rows], K + 1, ids, search, "L2"), source, rows, K, "L2")

    # Leave-one-out would have stopped at a cheaper efSearch that unseen queries find below the target ...
    cheaper = [p.parameters for p in tuning.sweep if p.parameters["efSearch"] < chosen]
    fooled = next(p for p in cheaper if leave_one_out(p) >= TARGET)
    assert unseen_recall(fooled) < TARGET, fooled
    # ... the held-out sweep goes on until the target is reached for them too.
    reached = unseen_recall(manifest.search_parameters)
    assert reached >= TARGET, (tuning.chosen, reached)
    assert manifest.measurements.recall_at_k == pytest.approx(reached, abs=0.02)
