"""A corrupt cached file is repaired by a fresh download, and that repair is logged and counted.

Issue 17 item 6: serving used to repair a corrupt cache silently, so a disk that corrupts
files never showed. Real builder output on a real S3 API; the cache is corrupted on disk.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from s3_harness import clustered
from test_serving_s3 import INDEX, config, publish

from index_serving.runtime import IndexRuntime
from indexops_store.s3 import ArtifactStore

pytestmark = pytest.mark.integration


def test_a_corrupt_cached_index_file_is_downloaded_again_logged_and_counted(s3_endpoint, s3, buckets, tmp_path, caplog):
    publish(s3, s3_endpoint, buckets, tmp_path, "v1", clustered(300, 16, seed=1))
    cfg = config(s3_endpoint, buckets, tmp_path)
    runtime = IndexRuntime(ArtifactStore(s3, buckets.artifacts), cfg.pointer_key, cfg.cache_dir)
    first = runtime.loader.load("v1")
    cached = first.directory / first.manifest.index_file
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="index_serving.loader"):
        again = runtime.loader.load("v1")

    assert again.index.ntotal == first.index.ntotal
    assert [r.message for r in caplog.records] == ["cached file is corrupt, downloading it again"]
    assert caplog.records[0].file == first.manifest.index_file
    assert runtime.metrics.cache_repairs.labels(version="v1")._value.get() == 1
    assert np.array_equal(again.ids, first.ids)
