"""What a serving replica reports on ``GET /v1/status``: produced by ``index_serving``, parsed by the operator.

One model on both ends, so a field renamed on one side fails the other's tests instead of
silently reading as zero. The operator reads these reports from pods in tenants'
namespaces, so every collection and string is bounded: a report that does not fit is
rejected whole (the operator then treats that pod as unreachable) rather than trusted in
part. Unknown keys are ignored so that a newer serving image can add fields.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from indexops_api.base import ApiModel

MAX_VERSIONS = 8  # versions in one report (stable, candidate and a few being loaded or refused)
MAX_BUCKETS = 64
MAX_FAILURES = 32
Version = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=4096)]
Count = Annotated[int, Field(ge=0)]


class _Report(ApiModel):
    model_config = ConfigDict(extra="ignore")


class LatencyHistogram(_Report):
    """Cumulative counts of answered requests per upper bound (ms), as Prometheus keeps them."""

    le: Annotated[list[float], Field(max_length=MAX_BUCKETS)] = []
    counts: Annotated[list[Count], Field(max_length=MAX_BUCKETS)] = []
    count: Count = 0
    sum_ms: Annotated[float, Field(ge=0)] = 0.0


class ShadowStats(_Report):
    queries: Count = 0
    overlap_sum: Annotated[float, Field(ge=0)] = 0.0
    k: Count = 0
    errors: Count = 0


class VersionWindow(_Report):
    """One version's numbers since the replica applied the current pointer generation."""

    role: Annotated[str, Field(max_length=16)] = ""
    requests: Count = 0
    errors: Count = 0
    fallbacks: Count = 0
    latency_ms: LatencyHistogram = LatencyHistogram()
    shadow: ShadowStats = ShadowStats()


class RolloutWindow(_Report):
    generation: Count
    since: Annotated[str, Field(max_length=64)] = ""
    stable_version: Version
    candidate_version: Version | None = None
    candidate_percent: Annotated[int, Field(ge=0, le=100)] = 0
    shadow_percent: Annotated[int, Field(ge=0, le=100)] = 0
    versions: Annotated[dict[Version, VersionWindow], Field(max_length=MAX_VERSIONS)] = {}


class LoadFailure(_Report):
    """A version this replica will not serve (checksum, load, memory, ...), and when it retries."""

    version: Version
    reason: Annotated[str, Field(max_length=64)] = "load"
    message: Text = ""
    attempts: Count = 0
    retry_in_seconds: Annotated[float, Field(ge=0)] = 0.0


class ReplicaStatus(_Report):
    """The whole ``/v1/status`` document."""

    enabled: bool = True
    ready: bool = False
    pointer: dict[str, Any] | None = None
    pointer_generation: Count | None = None
    applied_generation: Count | None = None
    pointer_error: Text | None = None
    candidate_percent: Annotated[int, Field(ge=0, le=100)] = 0
    versions: Annotated[list[dict[str, Any]], Field(max_length=MAX_VERSIONS)] = []
    failures: Annotated[list[LoadFailure], Field(max_length=MAX_FAILURES)] = []
    rollout: RolloutWindow | None = None
    shadow_queue: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    fallback_configured: bool = False
    draining: bool = False

    def to_json_dict(self) -> dict[str, Any]:
        """The wire form with every key present (``null`` where unknown), as serving has always answered."""
        return self.model_dump(mode="json", by_alias=True)
