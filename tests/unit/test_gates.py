"""Validation gates: each failure is reported with the measured numbers."""

from __future__ import annotations

from indexops_api.manifest import CheckResult
from indexops_api.gates import gate_failures

from factories import manifest, spec


def test_a_manifest_meeting_every_gate_passes():
    assert gate_failures(manifest("v1", "k"), spec(), "v1") == []


def test_p99_latency_above_the_gate_fails_with_both_numbers():
    failures = gate_failures(manifest("v1", "k"), spec(**{"validation.maxP99LatencyMs": 0.1}), "v1")
    assert failures == ["p99 latency 0.300ms > maxP99LatencyMs 0.1"]


def test_a_vector_count_change_beyond_the_limit_fails_against_the_serving_version():
    s = spec(**{"validation.maxVectorCountChangePercent": 10})
    assert gate_failures(manifest("v1", "k", vectors=1050), s, "v1", serving_vectors=1000) == []
    failures = gate_failures(manifest("v1", "k", vectors=500), s, "v1", serving_vectors=1000)
    assert failures == ["vector count changed 50.0% (1000 -> 500) > maxVectorCountChangePercent 10"]
    assert gate_failures(manifest("v1", "k", vectors=500), s, "v1", serving_vectors=None) == []


def test_a_failed_builder_check_blocks_promotion():
    m = manifest("v1", "k").model_copy(update={"checks": [CheckResult(name="distancesMonotonic", passed=False, detail="row 3")]})
    assert gate_failures(m, spec(), "v1") == ["check distancesMonotonic failed: row 3"]


def test_too_few_vectors_and_a_wrong_version_are_both_reported():
    failures = gate_failures(manifest("v2", "k", vectors=5), spec(**{"validation.minVectors": 10}), "v1")
    assert "manifest is for version v2, expected v1" in failures
    assert "5 vectors < minVectors 10" in failures
