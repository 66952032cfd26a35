"""Validation gates: the builder measures, the operator decides.

Each gate returns a readable failure or nothing; together they decide whether a built
version may serve. Pure and table-tested.
"""

from __future__ import annotations

from indexops_api.manifest import Manifest
from indexops_api.spec import FaissIndexSpec


def gate_failures(
    manifest: Manifest,
    spec: FaissIndexSpec,
    expected_version: str,
    serving_vectors: int | None = None,
    *,
    same_type: bool = True,
) -> list[str]:
    """Every reason ``manifest`` must not serve under ``spec`` (empty list = passes).

    ``serving_vectors`` is the vector count of the version serving now, for the
    count-change gate (None when nothing serves yet). ``same_type=False`` is the rule for a
    rollback target (``pinnedVersion``): a version of another index type may serve when pinned
    (rolling back a migration is what a pin is for), so that check is left out.
    """
    failures: list[str] = []
    gates = spec.validation
    if manifest.version != expected_version:
        failures.append(f"manifest is for version {manifest.version}, expected {expected_version}")
    if manifest.dimension != spec.dimension:
        failures.append(f"dimension {manifest.dimension} != spec.dimension {spec.dimension}")
    if same_type and manifest.index_type != spec.index_type:
        failures.append(f"indexType {manifest.index_type.value} != spec.indexType {spec.index_type.value}")
    if manifest.vectors < gates.min_vectors:
        failures.append(f"{manifest.vectors} vectors < minVectors {gates.min_vectors}")
    names = {f.name for f in manifest.files}
    for required in (manifest.index_file, manifest.ids_file):
        if required not in names:
            failures.append(f"manifest does not list its file {required!r}")
    for check in manifest.checks:
        if not check.passed:
            failures.append(f"check {check.name} failed: {check.detail}")
    p99, max_p99 = manifest.measurements.latency_p99_ms, gates.max_p99_latency_ms
    if max_p99 is not None and p99 > max_p99:
        failures.append(f"p99 latency {p99:.3f}ms > maxP99LatencyMs {max_p99:g}")
    max_change = gates.max_vector_count_change_percent
    if max_change is not None and serving_vectors:
        change = abs(manifest.vectors - serving_vectors) / serving_vectors * 100
        if change > max_change:
            failures.append(
                f"vector count changed {change:.1f}% ({serving_vectors} -> {manifest.vectors}) > maxVectorCountChangePercent {max_change:g}"
            )
    recall = manifest.measurements.recall_at_k
    if recall < gates.min_recall:
        failures.append(
            f"recall@{manifest.measurements.k} {recall:.4f} < minRecall {gates.min_recall:.4f}"
            f" (measured on {manifest.measurements.queries} held-out queries)"
        )
    return failures
