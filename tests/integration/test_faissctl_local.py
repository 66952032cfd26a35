"""`faissctl validate` and `faissctl build` on real files, and `versions` against a real S3 API.

`build` runs the real builder pipeline (faiss) into a folder; the result is checked the way
serving would check it (sha256 of every file, the index answers with the source's ids), then
uploaded to S3 so `versions` reads it through the real ArtifactStore.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from s3_harness import Buckets, clustered

from faissctl.app import App
from faissctl.cli import cli
from indexops_api.manifest import Manifest
from indexops_store.s3 import sha256_file

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
N, DIM = 2000, 16


def _manifest(folder: Path, **spec: Any) -> Path:
    body = {
        "horizon": "6h", "dimension": DIM, "indexType": "HNSW",
        "source": {"file": {"path": "vectors.npy", "idsPath": "ids.npy"}},
        "storage": {"bucket": "unused"},
        "validation": {"minRecall": 0.9, "k": 10, "queries": 100},
        **spec,
    }
    path = folder / "index.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "faiss.indexops.io/v1alpha1", "kind": "FaissIndex",
                                    "metadata": {"name": "local-demo"}, "spec": body}))
    return path


@pytest.fixture
def data(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    vectors, ids = clustered(N, DIM, seed=5), np.arange(N, dtype=np.int64) * 3 + 7
    np.save(tmp_path / "vectors.npy", vectors)
    np.save(tmp_path / "ids.npy", ids)
    return vectors, ids


def _run(*args: str, app: App | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), obj=app or App(), catch_exceptions=False)


def test_validate_checks_the_committed_samples_and_the_chart_crd_is_not_mistaken_for_an_index() -> None:
    proc = subprocess.run([sys.executable, "-m", "faissctl", "validate", *map(str, sorted((REPO / "config/samples").glob("*.yaml"))),
                           str(REPO / "crds" / next(p.name for p in (REPO / "crds").iterdir()))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "weather-analogs-6h: valid" in proc.stdout and "skipped (CustomResourceDefinition is not a FaissIndex)" in proc.stdout


def test_validate_exits_1_and_lists_every_problem_of_a_real_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config/samples/faissindex-hnsw-6h.yaml").read_text()
                   .replace("dimension: 64", "dimension: 0").replace("efSearch: 64", "efSearch: 64\n    nlist: 10"))
    proc = subprocess.run([sys.executable, "-m", "faissctl", "validate", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "spec.dimension: Input should be greater than or equal to 1 (got 0)" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_build_writes_a_verifiable_version_folder_and_prints_its_measurements(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, ids = data
    out = tmp_path / "out"
    result = _run("build", "--spec", str(_manifest(tmp_path)), "--out", str(out))
    assert result.exit_code == 0, result.output
    [folder] = list(out.iterdir())
    manifest = Manifest.model_validate(json.loads((folder / "manifest.json").read_text()))
    assert manifest.version == folder.name and manifest.namespace == "local" and manifest.vectors == N
    for entry in manifest.files:
        assert sha256_file(folder / entry.name) == entry.sha256
    assert f"Version:       {manifest.version}" in result.stdout
    assert f"Recall:        {manifest.measurements.recall_at_k:.4f} (recall@10 on 100 held-out queries)" in result.stdout
    assert "Latency:       p50 " in result.stdout and "Gates:         pass" in result.stdout
    index = faiss.read_index(str(folder / manifest.index_file))
    positions = np.load(folder / manifest.ids_file)
    _, found = index.search(vectors[:5], 1)
    assert positions[found[:, 0]].tolist() == ids[:5].tolist(), "each vector finds itself, under the source's ids"


def test_build_json_reports_a_gate_failure_and_exits_1(tmp_path: Path, data: Any) -> None:
    spec = _manifest(tmp_path, parameters={"m": 4, "efConstruction": 8, "efSearch": 1}, validation={"minRecall": 0.999, "k": 10, "queries": 100})
    result = _run("build", "--spec", str(spec), "--out", str(tmp_path / "out"), "-o", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["passesGates"] is False
    assert any(p.startswith("recall@10 ") and "< minRecall 0.9990" in p for p in report["gateProblems"]), report["gateProblems"]
    assert (Path(report["path"]) / "manifest.json").exists(), "the version is still written for inspection"


def test_build_refuses_non_file_sources_and_bad_vectors_without_writing_anything(tmp_path: Path, data: Any) -> None:
    s3 = _manifest(tmp_path, source={"s3": {"bucket": "emb", "key": "v.npy"}})
    result = _run("build", "--spec", str(s3), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "faissctl build reads local files only" in result.stderr
    broken = np.load(tmp_path / "vectors.npy")
    broken[17, 3] = np.nan
    np.save(tmp_path / "vectors.npy", broken)
    result = _run("build", "--spec", str(_manifest(tmp_path)), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "Error: build failed: InvalidVectors: " in result.stderr and "row 17" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_versions_reads_a_built_version_back_from_real_s3(tmp_path: Path, data: Any, s3: Any, s3_endpoint: str, buckets: Buckets) -> None:
    out = tmp_path / "out"
    assert _run("build", "--spec", str(_manifest(tmp_path)), "--out", str(out)).exit_code == 0
    [folder] = list(out.iterdir())
    prefix = f"faiss-indexes/default/local-demo/6h/versions/{folder.name}"
    for path in sorted(folder.iterdir(), key=lambda p: p.name == "manifest.json"):
        s3.upload_file(str(path), buckets.artifacts, f"{prefix}/{path.name}")
    obj = {"metadata": {"name": "local-demo", "namespace": "default"},
           "spec": {"horizon": "6h", "dimension": DIM, "storage": {"bucket": buckets.artifacts, "endpoint": s3_endpoint}},
           "status": {"currentVersion": folder.name, "lastGoodVersion": folder.name}}

    class OneIndex:
        namespace = "default"

        def get_index(self, namespace: str, name: str) -> dict[str, Any]:
            return obj

    result = _run("versions", "local-demo", "-o", "json", app=App(connect=lambda options: OneIndex()))  # type: ignore[arg-type,return-value]
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["versions"]
    assert row["version"] == folder.name and row["marks"] == ["serving", "last-good"] and row["vectors"] == N
    assert row["complete"] and row["recall"] >= 0.9
