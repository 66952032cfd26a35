"""`faissctl validate`: every problem of every FaissIndex document, with its path, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faissctl_fakes import invoke, make_app

from faissctl.validate import only_index, validate_text

REPO = Path(__file__).resolve().parents[2]
GOOD = """
apiVersion: faiss.indexops.io/v1alpha1
kind: FaissIndex
metadata: {name: weather-6h}
spec:
  horizon: 6h
  dimension: 64
  source: {s3: {bucket: emb, key: v.npy}}
  storage: {bucket: idx}
"""


def _problems(text: str) -> list[str]:
    return [str(p) for r in validate_text(text, "f.yaml") for p in r.problems]


def test_the_committed_sample_is_valid() -> None:
    [result] = validate_text((REPO / "config/samples/faissindex-hnsw-6h.yaml").read_text(), "sample")
    assert result.valid and result.name == "weather-analogs-6h"


@pytest.mark.parametrize(
    ("replace", "line", "expected"),
    [
        ("  horizon: 6h", "  horizon: 6 hours", "spec.horizon: String should match pattern '^[1-9][0-9]*(m|h|d)$' (got '6 hours')"),
        ("  dimension: 64", "  dimension: 0", "spec.dimension: Input should be greater than or equal to 1 (got 0)"),
        (None, "  indexType: Annoy", "spec.indexType: Input should be 'Flat', 'IVF', 'IVFPQ', 'HNSW', 'OPQ+HNSW' or 'Auto' (got 'Annoy')"),
        (None, "  metrics: L2", "spec.metrics: unknown field (misspelled, or not supported by this API version)"),
        (None, "  parameters: {nlist: 64, efSearch: 0}", "spec.parameters.efSearch: Input should be greater than or equal to 1 (got 0)"),
        (None, "  parameters: {nlist: 64}", "spec.parameters.nlist: does not apply to indexType HNSW"),
        (None, "  rollout: {pinnedVersion: latest}", "spec.rollout.pinnedVersion: String should match pattern"),
        (None, "  schedule: every day", "spec.schedule: String should match pattern"),
        (None, "  validation: {minRecall: 1.5}", "spec.validation.minRecall: Input should be less than or equal to 1 (got 1.5)"),
    ],
)
def test_each_spec_problem_is_reported_at_its_path(replace: str | None, line: str, expected: str) -> None:
    text = GOOD.replace(replace, line) if replace else GOOD + line + "\n"
    assert any(p.startswith(expected) for p in _problems(text)), _problems(text)


def test_a_missing_source_and_a_source_with_two_members_are_reported() -> None:
    assert "spec.source: required field is missing" in _problems(GOOD.replace("  source: {s3: {bucket: emb, key: v.npy}}\n", ""))
    two = GOOD.replace("{s3: {bucket: emb, key: v.npy}}", "{s3: {bucket: emb, key: v.npy}, file: {path: v.npy}}")
    assert _problems(two) == ["spec.source: source must set exactly one of s3, postgres or file"]


def test_api_version_kind_and_metadata_name_are_checked() -> None:
    text = GOOD.replace("v1alpha1", "v1").replace("name: weather-6h", "name: Weather_6h")
    assert _problems(text) == [
        "apiVersion: must be faiss.indexops.io/v1alpha1, got 'faiss.indexops.io/v1'",
        "metadata.name: must be a DNS label (lowercase letters, digits, '-') of at most 63 characters, got 'Weather_6h'",
    ]
    assert _problems(GOOD.replace("metadata: {name: weather-6h}", "metadata: {}")) == ["metadata.name: required field is missing"]
    assert _problems(GOOD.replace("kind: FaissIndex", "kind: FaissIndx")) == ["kind: must be FaissIndex, got 'FaissIndx'"]


def test_multi_document_files_and_lists_are_numbered_and_other_kinds_skipped() -> None:
    text = GOOD + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n" + json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "faiss.indexops.io/v1alpha1", "kind": "FaissIndex",
                                                        "metadata": {"name": "x"}, "spec": {"horizon": "6h"}}]})
    results = validate_text(text, "f.yaml")
    assert [(r.document, r.kind, r.skipped, r.valid) for r in results] == [
        (0, "FaissIndex", False, True), (1, "Secret", True, True), (2, "FaissIndex", False, False)]
    assert {str(p) for p in results[2].problems} >= {"spec.dimension: required field is missing", "spec.storage: required field is missing"}
    assert only_index(results, None) == (None, "2 FaissIndex documents in the file; choose one with --name (weather-6h, x)")
    assert only_index(results, "x") == (2, "")


def test_broken_yaml_reports_the_line() -> None:
    assert _problems("kind: FaissIndex\nspec: [unclosed\n") == [
        "not valid YAML/JSON at line 3, column 1: expected ',' or ']', but got '<stream end>'"]
    assert _problems("") == ["no documents in the file"]
    assert _problems("- a\n- b\n") == ["document is a list, not a Kubernetes object"]


def test_the_command_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("dimension: 64", "dimension: -1") + "  factory: 'HNSW 32'\n")
    result = invoke(make_app(), "validate", str(good), str(bad))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{good}[0] weather-6h: valid"
    assert lines[1].startswith(f"{bad}[0] weather-6h: spec.dimension: Input should be greater than or equal to 1")
    assert lines[2].startswith(f"{bad}[0] weather-6h: spec.factory: String should match pattern")
    assert lines[-1] == "2 FaissIndex document(s) checked, 1 with problems"


def test_the_command_reads_stdin_exits_0_when_valid_and_emits_json() -> None:
    result = invoke(make_app(), "validate", "-", "-o", "json", input=GOOD)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["valid"] is True and data["documents"][0]["name"] == "weather-6h"


def test_a_missing_file_is_a_usage_error() -> None:
    result = invoke(make_app(), "validate", "/nonexistent/x.yaml")
    assert result.exit_code == 1 and "cannot read /nonexistent/x.yaml" in result.stdout
    assert invoke(make_app(), "validate").exit_code == 2
