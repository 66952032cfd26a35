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


class EventReason(str, Enum):
    BUILD_STARTED = "BuildStarted"
    BUILD_SUCCEEDED = "BuildSucceeded"
    BUILD_FAILED = "BuildFailed"
    VALIDATION_FAILED = "ValidationFailed"
    CANARY_STARTED = "CanaryStarted"
    PROMOTED = "Promoted"
    INVALID_SPEC = "InvalidSpec"
    STORAGE_ERROR = "StorageError"


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


class LastBuild(ApiModel):
    job: str
    version: str
    build_key: str
    result: BuildResult
    reason: str | None = None
    message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None


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
    consecutive_failures: int = 0

    def condition(self, ctype: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == ctype), None)
