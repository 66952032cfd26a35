"""spec.autoShards against a real S3 API: the train stage picks the count, the slices and manifest follow it.

Stages run through the builder's process entry point as the operator's Jobs run them; the
slice count is read from the train stage's plan, as the operator does (``faiss_operator.shard_plan``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from s3_harness import Buckets, build_request, clustered, put_npy, run_stage

from faiss_operator.shard_plan import shards_of
from indexops_api.layout import version_prefix
from indexops_api.manifest import Manifest
from indexops_api.shards import auto_shard_count

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_faiss_thread")]

N, DIM = 16_000, 32


def _auto_build(s3: Any, buckets: Buckets, endpoint: str, tmp_path: Path, **spec: Any) -> tuple[int, Manifest]:
    put_npy(s3, buckets.source, "6h/vectors.npy", clustered(N, DIM, seed=9))
    request = build_request(buckets=buckets, endpoint=endpoint, dimension=DIM, autoShards=True,
                            validation={"queries": 40, "k": 10}, **spec)
    s = request["spec"]
    prefix = version_prefix("faiss-indexes", request["namespace"], request["index"], s["horizon"], request["version"])
    assert run_stage(request, tmp_path, "train") == (0, "")
    plan = json.loads(s3.get_object(Bucket=buckets.artifacts, Key=f"{prefix}/shard-plan.json")["Body"].read())
    shards = shards_of(plan)
    for shard in range(shards):
        assert run_stage(request, tmp_path, "shard", shard) == (0, "")
    assert run_stage(request, tmp_path, "finalize") == (0, "")
    body = s3.get_object(Bucket=buckets.artifacts, Key=f"{prefix}/manifest.json")["Body"].read()
    return shards, Manifest.model_validate(json.loads(body))


def test_a_serving_limit_too_small_for_the_index_twice_splits_it_into_the_count_the_rule_gives(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
) -> None:
    shards, manifest = _auto_build(s3, buckets, s3_endpoint, tmp_path, indexType="Flat", shardMerge="Never",
                                   serving={"resources": {"limits": {"memory": "161Mi"}}})
    expected, reason = auto_shard_count(N * (DIM * 4 + 8), N, 161 * 2**20)  # Flat: the vectors, plus the ids
    assert shards == expected > 1
    assert manifest.sharding is not None
    assert (manifest.sharding.shards, manifest.sharding.auto_reason) == (expected, reason)
    assert len(manifest.sharding.shard_files) == expected and sum(s.rows for s in manifest.sharding.slices) == N
    assert manifest.measurements.recall_at_k == pytest.approx(1.0)


def test_an_hnsw_index_that_fits_gets_one_shard_published_as_one_ordinary_index(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
) -> None:
    shards, manifest = _auto_build(s3, buckets, s3_endpoint, tmp_path, indexType="HNSW",
                                   parameters={"m": 16, "efConstruction": 80, "efSearch": 128})  # far above the 0.9 asserted below
    assert shards == 1
    assert manifest.sharding is not None and manifest.sharding.merged and manifest.sharding.shards == 1
    assert manifest.sharding.auto_reason is not None and "1 shard(s)" in manifest.sharding.auto_reason
    assert (manifest.index_file, manifest.ids_file, manifest.vectors) == ("index.faiss", "ids.npy", N)
    assert manifest.measurements.recall_at_k > 0.9
    assert np.isfinite(manifest.measurements.latency_p99_ms)
