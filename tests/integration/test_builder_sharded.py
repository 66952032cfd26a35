"""Sharded builds against a real S3 API: train once, one slice per stage run, finalize.

Each stage runs through the builder's process entry point with the environment an Indexed
Job gives its pods (``FAISS_BUILD_STAGE``, ``JOB_COMPLETION_INDEX``), in the order the
operator's Jobs run them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from s3_harness import Buckets, build_request, clustered, put_npy, run_builder, run_stage

from indexops_api.manifest import Manifest
from indexops_api.shards import merge_topk
from indexops_store.s3 import sha256_file

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_faiss_thread")]

N, DIM = 2400, 16


def _prefix(request: dict[str, Any]) -> str:
    from indexops_api.layout import version_prefix

    spec = request["spec"]
    return version_prefix("faiss-indexes", request["namespace"], request["index"], spec["horizon"], request["version"])


def _build(s3: Any, buckets: Buckets, endpoint: str, tmp_path: Path, *, shards: int, version: str,
           build_key: str | None = None, **spec: Any) -> tuple[dict[str, Any], Manifest | None]:
    request = build_request(buckets=buckets, endpoint=endpoint, ids_key="{horizon}/ids.npy", dimension=DIM,
                            version=version, build_key=build_key, shards=shards, validation={"queries": 60, "k": 10}, **spec)
    assert run_stage(request, tmp_path, "train") == (0, "")
    for shard in range(shards):
        assert run_stage(request, tmp_path, "shard", shard) == (0, "")
    code, message = run_stage(request, tmp_path, "finalize")
    assert (code, message) == (0, "")
    body = s3.get_object(Bucket=buckets.artifacts, Key=f"{_prefix(request)}/manifest.json")["Body"].read()
    return request, Manifest.model_validate(json.loads(body))


@pytest.fixture
def source(s3: Any, buckets: Buckets) -> tuple[np.ndarray, np.ndarray]:
    data = clustered(N, DIM, seed=11)
    ids = np.arange(N, dtype=np.int64) * 7 + 100
    put_npy(s3, buckets.source, "6h/vectors.npy", data)
    put_npy(s3, buckets.source, "6h/ids.npy", ids)
    return data, ids


def test_a_four_shard_hnsw_build_lists_every_shard_with_its_sha256_and_each_slice_holds_its_row_range(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, source: tuple[np.ndarray, np.ndarray],
) -> None:
    data, ids = source
    request, manifest = _build(s3, buckets, s3_endpoint, tmp_path, shards=4, version="20260101T000000Z-0000000a",
                               indexType="HNSW", parameters={"m": 8, "efConstruction": 40, "efSearch": 32})
    assert manifest is not None and manifest.sharding is not None
    sharding = manifest.sharding
    assert (sharding.shards, sharding.merged, manifest.vectors) == (4, False, N)
    assert sharding.rule == "contiguous row ranges in source order"
    assert [(r.shard, r.first_row, r.rows) for r in sharding.slices] == [(0, 0, 600), (1, 600, 600), (2, 1200, 600), (3, 1800, 600)]
    listed = {f.name: f for f in manifest.files}
    every_id: list[np.ndarray] = []
    for entry in sharding.shard_files:
        for name in (entry.index_file, entry.ids_file):
            local = tmp_path / name
            s3.download_file(buckets.artifacts, f"{_prefix(request)}/{name}", str(local))
            assert (local.stat().st_size, sha256_file(local)) == (listed[name].size, listed[name].sha256)
        shard_ids = np.load(tmp_path / entry.ids_file)
        first = sharding.slices[entry.shard].first_row
        assert sorted(shard_ids.tolist()) == sorted(ids[first:first + 600].tolist())  # exactly its row range
        assert faiss.read_index(str(tmp_path / entry.index_file)).ntotal == entry.vectors == len(shard_ids)
        every_id.append(shard_ids)
    assert sorted(np.concatenate(every_id).tolist()) == sorted(ids.tolist())  # disjoint and complete
    assert len(sharding.trained_state_sha256) == 64
    assert manifest.measurements.recall_at_k > 0.8


def test_sharded_recall_is_measured_on_the_whole_index_and_matches_an_exact_merge_of_the_shards(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, source: tuple[np.ndarray, np.ndarray],
) -> None:
    data, ids = source
    # Flat shards are exact: the merged fan-out answer must equal exact search over all vectors.
    request, manifest = _build(s3, buckets, s3_endpoint, tmp_path, shards=3, version="20260101T000000Z-0000000b",
                               indexType="Flat", shardMerge="Never")
    assert manifest is not None and manifest.sharding is not None and not manifest.sharding.merged
    assert manifest.measurements.recall_at_k == pytest.approx(1.0)
    rows = np.load(_download(s3, buckets, request, "validation-queries.npy", tmp_path))
    queries = data[rows]
    answers_d, answers_i = [], []
    for entry in manifest.sharding.shard_files:
        index = faiss.read_index(str(_download(s3, buckets, request, entry.index_file, tmp_path)))
        shard_ids = np.load(_download(s3, buckets, request, entry.ids_file, tmp_path))
        d, pos = index.search(queries, 11)
        answers_d.append(d)
        answers_i.append(np.where(pos >= 0, shard_ids[np.maximum(pos, 0)], -1))
    _, merged = merge_topk(answers_d, answers_i, 11, larger_is_better=False)
    assert (merged[:, 0] == ids[rows]).all()  # the query row itself is in the finished index, found first


def test_ivf_shards_are_merged_into_one_index_when_they_fit_and_recall_equals_the_fan_out(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, source: tuple[np.ndarray, np.ndarray],
) -> None:
    params = {"nlist": 32, "nprobe": 4}
    key = "ab" * 32  # one build key: the same seeds, held-out rows and training sample
    _, fanned = _build(s3, buckets, s3_endpoint, tmp_path, shards=4, version="20260101T000000Z-0000000c",
                       build_key=key, indexType="IVF", parameters=params, shardMerge="Never")
    request, merged = _build(s3, buckets, s3_endpoint, tmp_path, shards=4, version="20260101T000000Z-0000000d",
                             build_key=key, indexType="IVF", parameters=params)
    assert fanned is not None and merged is not None and merged.sharding is not None
    assert merged.sharding.merged and merged.index_file == "index.faiss"
    for entry in merged.files:  # every listed file is in storage, as listed
        local = _download(s3, buckets, request, entry.name, tmp_path)
        assert (local.stat().st_size, sha256_file(local)) == (entry.size, entry.sha256)
    assert merged.sharding.trained_state_sha256 == fanned.sharding.trained_state_sha256  # same seed, same training
    index = faiss.read_index(str(_download(s3, buckets, request, "index.faiss", tmp_path)))
    assert index.ntotal == N == merged.vectors
    assert merged.measurements.recall_at_k == pytest.approx(fanned.measurements.recall_at_k, abs=1e-9)


def test_finalize_refuses_to_publish_while_a_slice_is_missing(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, source: tuple[np.ndarray, np.ndarray],
) -> None:
    request = build_request(buckets=buckets, endpoint=s3_endpoint, ids_key="{horizon}/ids.npy", dimension=DIM,
                            version="20260101T000000Z-0000000e", shards=3, indexType="Flat",
                            validation={"queries": 60, "k": 10})
    assert run_stage(request, tmp_path, "train") == (0, "")
    for shard in (0, 2):
        assert run_stage(request, tmp_path, "shard", shard) == (0, "")
    code, message = run_stage(request, tmp_path, "finalize")
    assert code == 1 and message.startswith("BuildError:") and "slice 1" in message
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=buckets.artifacts).get("Contents", [])]
    assert not any(k.endswith("manifest.json") for k in keys)  # all shards or nothing
    # the missing slice retried alone completes the version
    assert run_stage(request, tmp_path, "shard", 1) == (0, "")
    assert run_stage(request, tmp_path, "finalize") == (0, "")


def _download(s3: Any, buckets: Buckets, request: dict[str, Any], name: str, tmp_path: Path) -> Path:
    local = tmp_path / name
    s3.download_file(buckets.artifacts, f"{_prefix(request)}/{name}", str(local))
    return local


def test_a_sharded_ivf_build_holds_out_the_same_queries_and_trains_the_same_index_as_the_unsharded_build(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, source: tuple[np.ndarray, np.ndarray],
) -> None:
    from indexops_api.layout import build_key
    from indexops_api.spec import FaissIndexSpec

    params = {"nlist": 32, "nprobe": 1}  # one list probed: recall well below 1, so equal figures mean equal answers
    whole = build_request(buckets=buckets, endpoint=s3_endpoint, ids_key="{horizon}/ids.npy", dimension=DIM,
                          version="20260101T000000Z-0000000f", indexType="IVF", parameters=params,
                          validation={"queries": 60, "k": 10})
    whole["buildKey"] = build_key(FaissIndexSpec.model_validate(whole["spec"]))  # as the operator keys it
    built = run_builder(whole, tmp_path)
    assert built.exit_code == 0, built.termination
    one = Manifest.model_validate(json.loads(
        s3.get_object(Bucket=buckets.artifacts, Key=f"{built.prefix}/manifest.json")["Body"].read()))
    _, sharded = _build(s3, buckets, s3_endpoint, tmp_path, shards=4, version="20260101T000000Z-00000010",
                        indexType="IVF", parameters=params, shardMerge="Never")
    assert sharded is not None and sharded.sharding is not None and not sharded.sharding.merged
    assert one.measurements.recall_at_k < 0.99
    assert sharded.measurements.recall_at_k == pytest.approx(one.measurements.recall_at_k, abs=1e-9)
