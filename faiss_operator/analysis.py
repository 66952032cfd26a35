"""Online analysis of a rollout step from the serving replicas' reports. Pure.

Each replica counts per version since it applied the current pointer generation; only
replicas on that generation are summed, so numbers from a previous step never leak into
this one. Latency p99 comes from the merged cumulative histograms (the upper bound of the
bucket holding the 99th percentile).
"""

from __future__ import annotations

from collections.abc import Iterable

from indexops_api.spec_ops import RolloutAnalysis
from indexops_api.status import StepAnalysis
from faiss_operator.model import ReplicaReport, VersionStats


def _p99(stats: list[VersionStats]) -> float | None:
    if not stats or not stats[0].latency_le_ms:
        return None
    bounds = stats[0].latency_le_ms
    merged = [0] * len(bounds)
    for s in stats:
        if s.latency_le_ms != bounds:
            continue  # a replica with other buckets cannot be merged; skip it
        merged = [a + b for a, b in zip(merged, s.latency_counts)]
    total = sum(s.requests - s.errors for s in stats if s.latency_le_ms == bounds)
    if total <= 0:
        return None
    want = 0.99 * total
    return next((b for b, c in zip(bounds, merged) if c >= want), float("inf"))


def measure(reports: Iterable[ReplicaReport], generation: int, candidate: str, stable: str, step: int, percent: int) -> StepAnalysis:
    current = [r for r in reports if r.error is None and r.generation == generation]
    cand = [r.versions[candidate] for r in current if candidate in r.versions]
    stab = [r.versions[stable] for r in current if stable in r.versions]
    requests, errors = sum(s.requests for s in cand), sum(s.errors for s in cand)
    shadow = sum(s.shadow_queries for s in cand)
    overlap_sum = sum(s.shadow_overlap_sum for s in cand)
    return StepAnalysis(
        step=step,
        percent=percent,
        replicas=len(current),
        requests=requests,
        errors=errors,
        error_rate=round(errors / requests, 6) if requests else None,
        p99_ms=_p99(cand),
        stable_p99_ms=_p99(stab),
        shadow_queries=shadow,
        overlap=round(overlap_sum / shadow, 6) if shadow else None,
    )


def failures(a: StepAnalysis, gates: RolloutAnalysis, stable_requests: int) -> list[str]:
    """Gates the candidate has failed so far (evaluated as soon as there is enough data)."""
    out: list[str] = []
    if a.requests >= gates.min_samples and a.error_rate is not None and a.error_rate > gates.max_error_rate:
        out.append(f"error rate {a.error_rate:.4f} > maxErrorRate {gates.max_error_rate:g} ({a.errors}/{a.requests})")
    if (a.requests >= gates.min_samples and stable_requests >= gates.min_samples and a.p99_ms and a.stable_p99_ms
            and a.p99_ms / a.stable_p99_ms > gates.max_latency_ratio):
        out.append(f"p99 {a.p99_ms:g}ms is {a.p99_ms / a.stable_p99_ms:.2f}x stable {a.stable_p99_ms:g}ms > maxLatencyRatio {gates.max_latency_ratio:g}")
    if gates.min_shadow_samples and a.shadow_queries >= gates.min_shadow_samples and a.overlap is not None and a.overlap < gates.min_overlap:
        out.append(f"overlap@k {a.overlap:.4f} < minOverlap {gates.min_overlap:g} on {a.shadow_queries} shadowed queries")
    return out


def missing_samples(a: StepAnalysis, gates: RolloutAnalysis, percent: int) -> list[str]:
    """What the step still lacks before it may pass (low traffic never counts as success)."""
    out = []
    if percent > 0 and a.requests < gates.min_samples:
        out.append(f"{a.requests}/{gates.min_samples} candidate requests")
    if gates.min_shadow_samples and gates.shadow_percent and a.shadow_queries < gates.min_shadow_samples:
        out.append(f"{a.shadow_queries}/{gates.min_shadow_samples} shadowed queries")
    return out


def stable_requests(reports: Iterable[ReplicaReport], generation: int, stable: str) -> int:
    return sum(r.versions[stable].requests for r in reports if r.error is None and r.generation == generation and stable in r.versions)
