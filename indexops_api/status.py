"""The FaissIndex status: written only by the operator, recomputed from observations.

Conditions are a list keyed by ``type``; reasons come from fixed sets so dashboards,
alerts and ArgoCD health checks can rely on them.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import ConfigDict

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

    observed_generation: int | None = None
    phase: str | None = None
    conditions: list[Condition] = []
    current_version: str | None = None
    candidate_version: str | None = None
    last_good_version: str | None = None
    rollout_percent: int | None = None
    recall: float | None = None
    p99_latency_ms: float | None = None
    vectors: int | None = None
    size_bytes: int | None = None
    serving_since: str | None = None
    last_build: LastBuild | None = None
    history: list[LastBuild] = []  # finished builds, newest first, bounded
    build_count: int = 0  # builds started; numbers Job names so a restart re-derives the same one
    consecutive_failures: int = 0
    next_retry_time: str | None = None
    last_schedule_time: str | None = None
    next_scheduled_build: str | None = None
    last_handled_rebuild: str | None = None  # value of the rebuild-requested-at annotation
    last_sync_time: str | None = None
    drift: str | None = None  # what the last sync found different, None when in sync
    pinned_version: str | None = None
    stored_versions: int | None = None
    last_handled_promote: str | None = None  # value of the promote-requested-at annotation
    last_handled_abort: str | None = None  # value of the abort-requested-at annotation
    rolled_back_version: str | None = None
    rollback_reason: str | None = None
    rollout_step: int | None = None  # index into spec.rollout.steps while a stepped rollout runs
    step_started_at: str | None = None
    analysis: StepAnalysis | None = None
    replicas_on_versions: str | None = None  # e.g. "2/2 replicas serve the expected versions"

    def condition(self, ctype: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == ctype), None)
