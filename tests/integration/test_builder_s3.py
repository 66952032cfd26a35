"""The builder against a real S3 API: what it publishes, how it fails, how it retries."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from s3_harness import Buckets, build_request, clustered, put_npy, run_builder

from indexops_api.manifest import Manifest
from indexops_store.s3 import ArtifactStore, sha256_file
from exact import capture_measured_indexes, held_out_recall, in_source_order, search_ids

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _manifest(s3: Any, bucket: str, prefix: str) -> Manifest:
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read()
    return Manifest.model_validate(json.loads(body))


def _download(s3: Any, bucket: str, key: str, path: Path) -> Path:
    s3.download_file(bucket, key, str(path))
    return path




@pytest.mark.parametrize(
    ("index_type", "metric", "n", "dim", "parameters"),
    [
        ("Flat", "L2", 3000, 32, {}),
        # parameters deliberately weak so recall < 1 and the comparison means something
        ("IVF", "InnerProduct", 3000, 32, {"nlist": 64, "nprobe": 2}),
        ("HNSW", "Cosine", 1500, 16, {"m": 4, "efConstruction": 16, "efSearch": 10}),
    ],
)
def test_builder_publishes_index_ids_and_manifest_last_with_correct_digests_and_a_reproducible_recall(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path,
    index_type: str, metric: str, n: int, dim: int, parameters: dict[str, int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    measured = capture_measured_indexes(monkeypatch)
    data = clustered(n, dim, seed=7)
    ids = np.arange(n, dtype=np.int64) * 3 + 1000
    put_npy(s3, buckets.source, "6h/vectors.npy", data)
    put_npy(s3, buckets.source, "6h/ids.npy", ids)
    request = build_request(
        buckets=buckets, endpoint=s3_endpoint, ids_key="{horizon}/ids.npy", dimension=dim, metric=metric,
        indexType=index_type, parameters=parameters, validation={"queries": 60, "k": 10},
    )

    result = run_builder(request, tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=buckets.artifacts)["Contents"]}
    assert set(listed) == {f"{result.prefix}/{f.name}" for f in manifest.files} | {f"{result.prefix}/manifest.json"}
    # manifest.json is the commit marker: nothing was written after it
    newest_file = max(listed[f"{result.prefix}/{f.name}"]["LastModified"] for f in manifest.files)
    assert listed[f"{result.prefix}/manifest.json"]["LastModified"] >= newest_file
    for entry in manifest.files:
        local = _download(s3, buckets.artifacts, f"{result.prefix}/{entry.name}", tmp_path / entry.name)
        assert (local.stat().st_size, sha256_file(local)) == (entry.size, entry.sha256)
    assert manifest.size_bytes == sum(f.size for f in manifest.files)
    assert (manifest.vectors, manifest.dimension, manifest.index_type.value, manifest.metric.value) == (n, dim, index_type, metric)
    assert manifest.source.count == n and manifest.source.uri == f"s3://{buckets.source}/6h/vectors.npy"
    assert manifest.source.etag and manifest.source.last_modified
    assert manifest.faiss_version == faiss.__version__
    rows = np.load(tmp_path / "validation-queries.npy")
    assert len(rows) == manifest.measurements.queries == 60
    # ids.npy maps index positions to ids: the rows kept for building in source order, then the
    # held-out validation rows, appended after measuring.
    published_ids = np.load(tmp_path / manifest.ids_file)
    kept = np.setdiff1d(np.arange(n), rows)
    np.testing.assert_array_equal(published_ids, np.concatenate([ids[kept], ids[rows]]))

    # Recompute recall independently: exact neighbours by numpy over the rows that are not
    # queries, approximate ones by the index as measured with the published search parameters.
    index = faiss.read_index(str(tmp_path / manifest.index_file))
    assert index.ntotal == n and measured[-1].ntotal == n - 60
    k = manifest.measurements.k
    found = search_ids(measured[-1], data[rows], k, published_ids, manifest.search_parameters, metric)
    recall = held_out_recall(found, data, rows, ids, k, metric)
    assert manifest.measurements.recall_at_k == pytest.approx(recall, abs=1e-9)
    assert recall == 1.0 if index_type == "Flat" else 0.3 < recall < 1.0
    m = manifest.measurements
    assert 0 < m.latency_p50_ms <= m.latency_p95_ms <= m.latency_p99_ms


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


GOOD = clustered(400, 32, seed=1)


def _with_nan() -> np.ndarray:
    bad = GOOD.copy()
    bad[17, 3] = np.nan
    bad[200, 0] = np.inf
    return bad


BAD_INPUTS: dict[str, tuple[dict[str, bytes], dict[str, Any], str, str]] = {
    # name: (source objects, request overrides, expected code, expected message fragment)
    "nan": ({"6h/vectors.npy": _npy_bytes(_with_nan())}, {}, "InvalidVectors", "2 of 400 vectors contain NaN or Inf (first at row 17"),
    "wrong-dimension": ({"6h/vectors.npy": _npy_bytes(GOOD[:, :16])}, {}, "DimensionMismatch", "dimension 16 but spec.dimension is 32"),
    "missing-object": ({}, {}, "SourceNotFound", "6h/vectors.npy does not exist"),
    "missing-source-bucket": ({"6h/vectors.npy": _npy_bytes(GOOD)}, {"source_bucket": "no-such-bucket"}, "SourceNotFound",
                              "source bucket 'no-such-bucket' does not exist"),
    "missing-storage-bucket": ({"6h/vectors.npy": _npy_bytes(GOOD)}, {"storage_bucket": "no-such-artifacts"}, "StorageError",
                               "bucket 'no-such-artifacts' does not exist"),
    "not-npy": ({"6h/vectors.npy": b"id,x,y\n1,0.5,0.25\n"}, {}, "SourceInvalid", "is not a .npy file"),
    "truncated-npy": ({"6h/vectors.npy": _npy_bytes(GOOD)[:20000]}, {}, "SourceInvalid", "is truncated"),
    "duplicate-ids": ({"6h/vectors.npy": _npy_bytes(GOOD), "6h/ids.npy": _npy_bytes(np.r_[np.arange(399), 5].astype(np.int64))},
                      {"ids_key": "6h/ids.npy"}, "InvalidIds", "1 rows repeat an earlier id (first: id 5 at row 399)"),
    "too-few-for-ivf": ({"6h/vectors.npy": _npy_bytes(GOOD)}, {"indexType": "IVF", "parameters": {"nlist": 1000}},
                        "TooFewVectors", "needs at least 1000 to train"),
    "integer-dtype": ({"6h/vectors.npy": _npy_bytes(GOOD.astype(np.int32))}, {}, "SourceInvalid", "dtype int32 is not a float type"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_each_bad_input_fails_with_its_code_exit_1_and_no_manifest(
    case: str, s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    objects, overrides, code, fragment = BAD_INPUTS[case]
    for key, body in objects.items():
        s3.put_object(Bucket=buckets.source, Key=key, Body=body)
    overrides = dict(overrides)
    source_bucket = overrides.pop("source_bucket", buckets.source)
    storage_bucket = overrides.pop("storage_bucket", buckets.artifacts)
    request = build_request(buckets=Buckets(source_bucket, storage_bucket), endpoint=s3_endpoint, **overrides)

    result = run_builder(request, tmp_path)

    assert result.exit_code == 1
    assert result.termination.startswith(f"{code}: "), result.termination
    assert fragment in result.termination
    assert "\n" not in result.termination and len(result.termination.encode()) <= 4096
    assert s3.list_objects_v2(Bucket=buckets.artifacts).get("KeyCount", 0) == 0


def _record_downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys of whole-object downloads (``ArtifactStore.download_file``), which still happen."""
    downloads: list[str] = []
    original = ArtifactStore.download_file

    def recording(store: ArtifactStore, key: str, path: Path) -> None:
        downloads.append(key)
        original(store, key, path)

    monkeypatch.setattr(ArtifactStore, "download_file", recording)
    return downloads


@pytest.mark.parametrize(
    ("body", "overrides", "expected"),
    [
        (GOOD, {"build": {"maxMemory": "64Mi"}}, "InsufficientMemory: needs ~0.2"),
        (GOOD[:, :16], {}, "DimensionMismatch: "),
        (_npy_bytes(GOOD)[:20000], {}, "SourceInvalid: "),
    ],
    ids=["memory", "dimension", "truncated"],
)
def test_a_single_npy_object_is_checked_from_its_header_before_it_is_downloaded(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    body: np.ndarray | bytes, overrides: dict[str, Any], expected: str,
) -> None:
    s3.put_object(Bucket=buckets.source, Key="6h/vectors.npy", Body=body if isinstance(body, bytes) else _npy_bytes(body))
    downloads = _record_downloads(monkeypatch)

    result = run_builder(build_request(buckets=buckets, endpoint=s3_endpoint, **overrides), tmp_path)

    assert result.exit_code == 1 and result.termination.startswith(expected), result.termination
    assert downloads == []
    assert s3.list_objects_v2(Bucket=buckets.artifacts).get("KeyCount", 0) == 0


def test_a_single_npy_object_that_fits_is_downloaded_once_after_its_header_was_read(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    put_npy(s3, buckets.source, "6h/vectors.npy", GOOD)
    downloads = _record_downloads(monkeypatch)

    result = run_builder(build_request(buckets=buckets, endpoint=s3_endpoint, build={"maxMemory": "1Gi"}), tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    assert downloads == ["6h/vectors.npy"]
    assert _manifest(s3, buckets.artifacts, result.prefix).vectors == len(GOOD)


def test_a_retried_build_of_the_same_version_exits_0_without_rewriting_anything(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    put_npy(s3, buckets.source, "6h/vectors.npy", GOOD)
    request = build_request(buckets=buckets, endpoint=s3_endpoint)
    assert run_builder(request, tmp_path).exit_code == 0
    before = {o["Key"]: (o["ETag"], o["LastModified"]) for o in s3.list_objects_v2(Bucket=buckets.artifacts)["Contents"]}

    again = run_builder(request, tmp_path)

    assert (again.exit_code, again.termination) == (0, "")
    after = {o["Key"]: (o["ETag"], o["LastModified"]) for o in s3.list_objects_v2(Bucket=buckets.artifacts)["Contents"]}
    assert after == before


def test_a_different_build_claiming_an_existing_version_is_refused(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    put_npy(s3, buckets.source, "6h/vectors.npy", GOOD)
    assert run_builder(build_request(buckets=buckets, endpoint=s3_endpoint, build_key="a" * 64), tmp_path).exit_code == 0
    store = ArtifactStore(s3, buckets.artifacts)

    other = run_builder(build_request(buckets=buckets, endpoint=s3_endpoint, build_key="b" * 64), tmp_path)

    assert other.exit_code == 1
    assert other.termination.startswith("VersionConflict: ")
    assert store.read_manifest(f"{other.prefix}/manifest.json").build_key == "a" * 64


def test_the_console_entry_point_reads_the_env_request_and_reports_through_exit_code_and_termination_log(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    put_npy(s3, buckets.source, "6h/vectors.npy", GOOD)
    termination = tmp_path / "termination-log"
    env = {**os.environ, "TERMINATION_MESSAGE_PATH": str(termination), "PYTHONPATH": str(REPO)}
    good = build_request(buckets=buckets, endpoint=s3_endpoint)
    bad = build_request(buckets=buckets, endpoint=s3_endpoint, version="20260101T000000Z-00000002", dimension=8)

    ok = subprocess.run([sys.executable, "-m", "index_builder"], env={**env, "FAISS_BUILD_REQUEST": json.dumps(good)},
                        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    failed = subprocess.run([sys.executable, "-m", "index_builder"], env={**env, "FAISS_BUILD_REQUEST": json.dumps(bad)},
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)

    assert ok.returncode == 0, ok.stderr
    assert failed.returncode == 1
    assert termination.read_text().startswith("DimensionMismatch: ")
    logged = [json.loads(line) for line in failed.stderr.splitlines() if line.startswith("{")]
    assert any(r.get("code") == "DimensionMismatch" and r["level"] == "ERROR" for r in logged)
    stages = {r["stage"] for r in map(json.loads, filter(lambda s: s.startswith("{"), ok.stderr.splitlines())) if "seconds" in r and "stage" in r}
    assert {"preflight", "load", "train", "add", "validate", "publish"} <= stages


def test_a_local_float64_file_source_is_converted_to_float32_and_fingerprinted_by_path(
    s3: Any, s3_endpoint: str, buckets: Buckets, tmp_path: Path
) -> None:
    data = clustered(500, 32, seed=4).astype(np.float64)
    np.save(tmp_path / "vectors-6h.npy", data)
    request = build_request(buckets=buckets, endpoint=s3_endpoint,
                            source={"file": {"path": str(tmp_path / "vectors-{horizon}.npy")}})

    result = run_builder(request, tmp_path)

    assert (result.exit_code, result.termination) == (0, "")
    manifest = _manifest(s3, buckets.artifacts, result.prefix)
    assert manifest.source.uri == str(tmp_path / "vectors-6h.npy")
    assert manifest.source.etag is None and manifest.source.last_modified
    index = faiss.read_index(str(_download(s3, buckets.artifacts, f"{result.prefix}/index.faiss", tmp_path / "i.faiss")))
    rows = np.load(_download(s3, buckets.artifacts, f"{result.prefix}/validation-queries.npy", tmp_path / "q.npy"))
    stored = in_source_order(index.reconstruct_n(0, index.ntotal), rows)
    assert stored.dtype == np.float32 and np.array_equal(stored, data.astype(np.float32))


def test_a_missing_local_file_is_source_not_found(s3_endpoint: str, buckets: Buckets, tmp_path: Path) -> None:
    request = build_request(buckets=buckets, endpoint=s3_endpoint, source={"file": {"path": str(tmp_path / "nope.npy")}})
    result = run_builder(request, tmp_path)
    assert result.exit_code == 1
    assert result.termination == f"SourceNotFound: source file {tmp_path / 'nope.npy'} does not exist or is not a regular file"
