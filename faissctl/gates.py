"""Would a stored version pass the index's gates? Pure.

Used by ``pin --previous`` (never roll back to a version the operator would have rejected)
and by ``build`` (report whether a local build would be accepted). It mirrors the gates
the operator applies to a manifest (``faiss_operator.gates``, which faissctl must not
import) for the fields that do not depend on what is serving: structure, recorded checks,
dimension, minVectors, minRecall and maxP99LatencyMs.
"""

from __future__ import annotations

from typing import Any

from indexops_api.manifest import Manifest

DEFAULT_MIN_RECALL = 0.9
DEFAULT_MIN_VECTORS = 1


def gate_problems(manifest: Manifest, spec: dict[str, Any]) -> list[str]:
    """Why ``manifest`` would not serve under ``spec`` (camelCase dict); empty when it passes."""
    validation = spec.get("validation") or {}
    problems: list[str] = []
    dimension = spec.get("dimension")
    if dimension is not None and manifest.dimension != dimension:
        problems.append(f"dimension {manifest.dimension} != spec.dimension {dimension}")
    names = {f.name for f in manifest.files}
    problems += [f"manifest does not list its file {n!r}" for n in (manifest.index_file, manifest.ids_file) if n not in names]
    problems += [f"check {c.name} failed: {c.detail}" for c in manifest.checks if not c.passed]
    min_vectors = validation.get("minVectors", DEFAULT_MIN_VECTORS)
    if manifest.vectors < min_vectors:
        problems.append(f"{manifest.vectors} vectors < minVectors {min_vectors}")
    m = manifest.measurements
    max_p99 = validation.get("maxP99LatencyMs")
    if max_p99 is not None and m.latency_p99_ms > max_p99:
        problems.append(f"p99 latency {m.latency_p99_ms:.3f}ms > maxP99LatencyMs {max_p99:g}")
    min_recall = validation.get("minRecall", DEFAULT_MIN_RECALL)
    if m.recall_at_k < min_recall:
        problems.append(f"recall@{m.k} {m.recall_at_k:.4f} < minRecall {min_recall:.4f}")
    return problems
