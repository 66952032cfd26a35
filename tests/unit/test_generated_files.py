"""Generated files (CRD in crds/ and in the chart) match the pydantic models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crd_files_match_what_make_generate_would_write():
    proc = subprocess.run([sys.executable, str(ROOT / "hack" / "generate.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _crd() -> dict:
    return yaml.safe_load((ROOT / "crds" / "faiss.indexops.io_faissindexes.yaml").read_text())


def test_the_crd_schema_is_structural_with_no_refs_or_anyof():
    text = (ROOT / "crds" / "faiss.indexops.io_faissindexes.yaml").read_text()
    for forbidden in ("$ref", "anyOf", "$defs", "title:"):
        assert forbidden not in text


def test_the_crd_has_status_subresource_short_names_and_the_required_printer_columns():
    version = _crd()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert set(_crd()["spec"]["names"]["shortNames"]) >= {"fi"}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    for required in ("Horizon", "Type", "Version", "Canary%", "Recall", "Ready", "Age"):
        assert required in columns


def test_the_spec_schema_constrains_horizon_type_dimension_and_carries_cel_rules():
    spec = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert props["horizon"]["pattern"] == "^[1-9][0-9]*(m|h|d)$"
    assert props["indexType"]["enum"] == ["Flat", "IVF", "IVFPQ", "HNSW", "OPQ+HNSW", "Auto"]
    assert props["dimension"]["minimum"] == 1
    assert props["rollout"]["properties"]["percent"]["maximum"] == 100
    assert set(spec["required"]) == {"horizon", "dimension", "source", "storage"}
    assert spec["x-kubernetes-validations"]
    assert props["source"]["x-kubernetes-validations"][0]["rule"].endswith("== 1")


def test_exclusive_bounds_use_the_openapi_v3_boolean_form_kubernetes_expects():
    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("exclusiveMinimum", "exclusiveMaximum"):
                    assert value is True
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(_crd())
    spec = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["validation"]["properties"]["maxP99LatencyMs"]["minimum"] == 0
