"""What a serving replica reports on ``GET /v1/status``: produced by ``index_serving``, parsed by the operator.

One model on both ends, so a field renamed on one side fails the other's tests instead of
silently reading as zero. The operator reads these reports from pods in tenants'
namespaces, so every collection and string is bounded: a report that does not fit is
rejected whole (the operator then treats that pod as unreachable) rather than trusted in
part. Unknown keys are ignored so that a newer serving image can add fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

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


class LoadedVersionReport(_Report):
    """One version a replica holds in memory, with what its manifest says and how loading went."""

    version: Version
    role: Annotated[str, Field(max_length=16)] = ""
    index_type: Annotated[str, Field(max_length=32)] = ""
    metric: Annotated[str, Field(max_length=32)] = ""
    dimension: Count = 0
    vectors: Count = 0
    size_bytes: Count = 0
    search_parameters: Annotated[dict[Annotated[str, Field(max_length=64)], Any], Field(max_length=32)] = {}
    recall_at_k: Annotated[float, Field(ge=0, le=1)] | None = None
    k: Count | None = None
    loaded_at: Annotated[str, Field(max_length=64)] = ""
    load_seconds: Annotated[float, Field(ge=0)] = 0.0
    warmup_seconds: Annotated[float, Field(ge=0)] = 0.0
    read_mode: Annotated[str, Field(max_length=16)] = ""


class ShadowQueue(_Report):
    """The replica's queue of shadow searches (candidate answers compared off the request path)."""

    capacity: Count = 0
    queued: Count = 0
    dropped: Count = 0
    completed: Count = 0
    running: bool = False


class MemoryReading(_Report):
    available_bytes: Count
    source: Annotated[str, Field(max_length=16)] = ""


class ShardEndpoint(_Report):
    """What the fan-out last heard from one shard endpoint."""

    url: Annotated[str, Field(max_length=512)]
    loaded: Annotated[list[Version], Field(max_length=MAX_VERSIONS)] | None = None
    error: Text | None = None


class ReplicaStatus(_Report):
    """The whole ``/v1/status`` document of an unsharded replica (and the part every mode shares)."""

    enabled: bool = True
    ready: bool = False
    pointer: dict[str, Any] | None = None  # the stored pointer as read (indexops_api.pointer.ServingPointer's wire form)
    pointer_generation: Count | None = None
    applied_generation: Count | None = None
    pointer_error: Text | None = None
    candidate_percent: Annotated[int, Field(ge=0, le=100)] = 0
    versions: Annotated[list[LoadedVersionReport], Field(max_length=MAX_VERSIONS)] = []
    failures: Annotated[list[LoadFailure], Field(max_length=MAX_FAILURES)] = []
    rollout: RolloutWindow | None = None
    shadow_queue: ShadowQueue | None = None
    memory: MemoryReading | None = None
    fallback_configured: bool = False
    draining: bool = False

    def to_json_dict(self) -> dict[str, Any]:
        """The wire form with every key present (``null`` where unknown), as serving has always answered."""
        return self.model_dump(mode="json", by_alias=True)


class ShardStatus(ReplicaStatus):
    """A shard pod's ``/v1/status``: the replica report plus which versions it can answer for."""

    shard: Count
    shards: Annotated[int, Field(ge=1)]
    loaded: Annotated[list[Version], Field(max_length=MAX_VERSIONS)] = []
    previous_version: Version | None = None


class FanoutStatus(ReplicaStatus):
    """The fan-out's ``/v1/status``: the replica report (what the operator reads) plus each shard's state."""

    mode: Literal["fanout"] = "fanout"
    shards: Annotated[list[ShardEndpoint], Field(max_length=256)] = []
