"""The FaissIndex status: written only by the operator, recomputed from observations.

Conditions are a list keyed by ``type``; reasons come from fixed sets so dashboards,
alerts and ArgoCD health checks can rely on them.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from indexops_api.base import ApiModel


class ConditionType(str, Enum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    STALLED = "Stalled"


class Reason(str, Enum):
    """Every reason a condition or Event may carry."""

    SERVING = "Serving"
    NO_VERSION = "NoVersionYet"
    SERVING_UNAVAILABLE = "ServingUnavailable"
    SERVING_DISABLED = "ServingDisabled"
    BUILDING = "Building"
    ROLLING_OUT = "RollingOut"
    IDLE = "Idle"
    AS_EXPECTED = "AsExpected"
    BUILD_FAILED = "BuildFailed"
    VALIDATION_FAILED = "ValidationFailed"
    MANIFEST_INVALID = "ManifestInvalid"
    INVALID_SPEC = "InvalidSpec"
    STORAGE_ERROR = "StorageError"
    WAITING_FOR_RETRY = "WaitingForRetry"
    TOO_MANY_FAILURES = "TooManyFailures"
    SOURCE_DRIFT = "SourceDrift"
    SYNC_FAILED = "SyncFailed"
    ARTIFACTS_MISSING = "ArtifactsMissing"
    PINNED = "Pinned"
    PINNED_VERSION_MISSING = "PinnedVersionMissing"
    SUSPENDED = "Suspended"
    ROLLED_BACK = "RolledBack"
    WAITING_FOR_SAMPLES = "WaitingForSamples"
    REPLICAS_CONVERGING = "ReplicasConverging"
    STORAGE_NOT_ALLOWED = "StorageNotAllowed"
    DISRUPTED = "Disrupted"
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    CONFIGURATION_ERROR = "ConfigurationError"


class EventReason(str, Enum):
    BUILD_STARTED = "BuildStarted"
    BUILD_SUCCEEDED = "BuildSucceeded"
    BUILD_FAILED = "BuildFailed"
    VALIDATION_FAILED = "ValidationFailed"
    CANARY_STARTED = "CanaryStarted"
    PROMOTED = "Promoted"
    INVALID_SPEC = "InvalidSpec"
    STORAGE_ERROR = "StorageError"
    BUILD_SCHEDULED = "BuildScheduled"
    SCHEDULE_MISSED = "ScheduleMissed"
    REBUILD_REQUESTED = "RebuildRequested"
    BUILD_REPLACED = "BuildReplaced"
    RETRY_SCHEDULED = "RetryScheduled"
    STALLED = "Stalled"
    RECOVERED = "Recovered"
    SOURCE_DRIFT = "SourceDrift"
    SYNC_FAILED = "SyncFailed"
    ARTIFACTS_MISSING = "ArtifactsMissing"
    VERSIONS_PRUNED = "VersionsPruned"
    PINNED = "Pinned"
    UNPINNED = "Unpinned"
    PINNED_VERSION_MISSING = "PinnedVersionMissing"
    ARTIFACTS_DELETED = "ArtifactsDeleted"
    ARTIFACTS_RETAINED = "ArtifactsRetained"
    ROLLED_BACK = "RolledBack"
    STEP_ADVANCED = "StepAdvanced"
    BUILD_WARNING = "BuildWarning"
    STORAGE_NOT_ALLOWED = "StorageNotAllowed"
    ADOPTED = "Adopted"  # status rebuilt from the pointer and manifests in storage


class Trigger(str, Enum):
    """Why a build was started."""

    SPEC = "Spec"
    SCHEDULE = "Schedule"
    MANUAL = "Manual"
    DRIFT = "Drift"
    ARTIFACTS_MISSING = "ArtifactsMissing"
    RETRY = "Retry"


class Condition(ApiModel):
    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: Reason
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class BuildResult(str, Enum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    VALIDATION_FAILED = "ValidationFailed"
    ROLLED_BACK = "RolledBack"  # passed the gates, then taken out of a canary: never promoted again


class LastBuild(ApiModel):
    job: str
    version: str
    build_key: str
    result: BuildResult
    number: int | None = None
    trigger: Trigger | None = None
    reason: str | None = None
    message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    warnings: Annotated[
        list[str], Field(max_length=20, description="Warnings the builder recorded in the manifest (parameter sanity, FAISS).")
    ] = []


class ReplicaVersions(ApiModel):
    """Which versions one serving pod has loaded, as it reported them (``/v1/status``)."""

    pod: str
    stable: str | None = None
    candidate: str | None = None
    error: str | None = None  # could not be asked (timeout, NetworkPolicy, ...)


MAX_REPLICAS_SHOWN = 20


class StepAnalysis(ApiModel):
    """What the serving replicas measured for the candidate in the current rollout step."""

    step: int
    percent: int
    replicas: int = 0  # replicas whose numbers are counted (on the current pointer generation)
    requests: int = 0
    errors: int = 0
    error_rate: float | None = None
    p99_ms: float | None = None
    stable_p99_ms: float | None = None
    shadow_queries: int = 0
    overlap: float | None = None
    verdict: str = ""


class FaissIndexStatus(ApiModel):
    # Status is read back from the API server, which may hold fields written by newer
    # operator versions: ignore what we do not know instead of failing.
    model_config = ApiModel.model_config | ConfigDict(extra="ignore")

    observed_generation: Annotated[int | None, Field(description="The metadata.generation this status describes.")] = None
    phase: Annotated[str | None, Field(description="One word for kubectl get, derived from the conditions.")] = None
    conditions: Annotated[list[Condition], Field(description="Ready, Progressing, Degraded, Stalled (reasons from a fixed set).")] = []
    current_version: Annotated[str | None, Field(description="The version serving (100% without a candidate).")] = None
    candidate_version: Annotated[str | None, Field(description="The validated version in a canary / rollout step.")] = None
    last_good_version: Annotated[str | None, Field(description="The newest version promoted through normal rollout; unpinning returns to it.")] = None
    promoted_version: Annotated[
        str | None,
        Field(description="The version that last passed the gates and became current: by rollout, or by a pin (the pinned version while a pin serves). What faissctl shows as last good."),
    ] = None
    rollout_percent: Annotated[int | None, Field(description="Share of queries the candidate receives (100 without a candidate).")] = None
    index_type: Annotated[str | None, Field(description="Index type of the serving version (differs from spec.indexType after a pin across a migration, or while a new type rolls out).")] = None
    recall: Annotated[float | None, Field(description="recall@k the builder measured for the serving version, against exact search on held-out queries that were never added to the index.")] = None
    recall_lower_bound: Annotated[
        float | None, Field(description="95% lower confidence bound on that recall (bootstrap over the held-out queries).")
    ] = None
    recall_queries: Annotated[int | None, Field(description="How many held-out queries the recall was measured on.")] = None
    p99_latency_ms: Annotated[float | None, Field(description="p99 of single-query search latency, measured by the builder in its own process (no network, no batching); serving pods report their own latencies in /metrics.")] = None
    vectors: Annotated[int | None, Field(description="Vectors in the serving version.")] = None
    size_bytes: Annotated[int | None, Field(description="Size of the serving version's files.")] = None
    shards: Annotated[
        int | None,
        Field(description="Shards the serving version is served as (shard Deployments behind a fan-out); 1 or unset: one index."),
    ] = None
    shards_reason: Annotated[
        str | None,
        Field(description="spec.autoShards: why the serving version has this many shards (vectors, memory per vector, serving memory limit)."),
    ] = None
    serving_since: Annotated[str | None, Field(description="When the serving version became current.")] = None
    last_build: Annotated[LastBuild | None, Field(description="The newest build: Job, version, number, trigger, times, result, reason.")] = None
    history: Annotated[list[LastBuild], Field(description="Finished builds before lastBuild, newest first (at most 10).")] = []
    build_count: Annotated[int, Field(description="Builds started; numbers Job names so a restarted operator derives the same one.")] = 0
    consecutive_failures: Annotated[int, Field(description="Failed or rejected builds in a row; Stalled at build.maxConsecutiveFailures.")] = 0
    next_retry_time: Annotated[str | None, Field(description="When a failed build is retried.")] = None
    last_schedule_time: Annotated[str | None, Field(description="The last cron fire time handled (built or skipped).")] = None
    next_scheduled_build: Annotated[str | None, Field(description="The next cron fire time (empty when suspended or unscheduled).")] = None
    last_handled_rebuild: Annotated[str | None, Field(description="The last value of the rebuild-requested-at annotation acted on.")] = None
    last_sync_time: Annotated[str | None, Field(description="When the drift check last ran.")] = None
    drift: Annotated[str | None, Field(description="What the last drift check found different (empty when in sync).")] = None
    pinned_version: Annotated[str | None, Field(description="The version serving because spec.rollout.pinnedVersion names it.")] = None
    stored_versions: Annotated[int | None, Field(description="Versions in storage after retention.")] = None
    last_handled_promote: Annotated[str | None, Field(description="The last value of the promote-requested-at annotation acted on.")] = None
    last_handled_abort: Annotated[str | None, Field(description="The last value of the abort-requested-at annotation acted on.")] = None
    rolled_back_version: Annotated[str | None, Field(description="The last candidate taken out of rotation.")] = None
    rollback_reason: Annotated[str | None, Field(description="Why it was rolled back (the measured numbers or a manual abort).")] = None
    rollout_step: Annotated[int | None, Field(description="Index into spec.rollout.steps while a stepped rollout runs.")] = None
    step_started_at: Annotated[str | None, Field(description="When the current rollout step began.")] = None
    analysis: Annotated[StepAnalysis | None, Field(description="What the serving replicas measured for the candidate in the current rollout step.")] = None
    serving_replicas: Annotated[list[ReplicaVersions], Field(description=f"Which versions each serving pod reported loaded on the last check (at most {MAX_REPLICAS_SHOWN} pods).", max_length=MAX_REPLICAS_SHOWN)] = []

    def condition(self, ctype: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == ctype), None)
