"""Operational parts of the FaissIndex spec: rollout, retention, sync, build, serving, storage.

These decide *how* an index is run, not *what* is built (except where ``layout.BUILD_FIELDS``
says so), so most of them can change without a rebuild.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from indexops_api.base import ApiModel
from indexops_api.rollout_plan import RolloutPlan, plan_of

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"
# At most six digits (999999d is ~2,700 years): a duration always fits a datetime offset
# from now, so no spec can raise OverflowError inside the operator.
DURATION_PATTERN = r"^[1-9][0-9]{0,5}(s|m|h|d)$"
# sync.interval: at least 10 seconds (every pass is a LIST or a count(*) on the operator's
# shared probe threads), written in m/h/d, or in seconds from 10s. 10s, not 1m, because the
# e2e suites use drift checks as a fast heartbeat; production indexes want 5m or more.
SYNC_INTERVAL_PATTERN = r"^([1-9][0-9]{0,5}(m|h|d)|[1-9][0-9]{1,5}s)$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
# A Kubernetes resource quantity (resource.Quantity's grammar, no sign): 500m, 2, 1.5Gi, 1e3.
K8S_QUANTITY_PATTERN = r"^([0-9]{1,18}(\.[0-9]{0,9})?|\.[0-9]{1,9})(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]{1,3}))?$"
# http(s) only, no user:password@ (credentials belong in the Secret), no query or fragment.
ENDPOINT_PATTERN = r"^https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~\-/]*)?$"
# An OCI image reference: [registry[:port]/]repository[:tag][@sha256:digest].
IMAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-/:]*(@sha256:[0-9a-f]{64})?$"
ENDPOINT_MAX_LENGTH = 256
VERSION_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"

_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_SECONDS = 999_999 * 86400


def duration_seconds(value: str) -> int:
    """``"90s"``, ``"5m"``, ``"2h"``, ``"1d"`` -> seconds; ``ValueError`` for anything else.

    Capped at ``MAX_DURATION_SECONDS`` so a stored object written before the bound existed
    still cannot overflow a datetime.
    """
    if not value or value[-1] not in _DURATION_SECONDS or not value[:-1].isdigit() or len(value) > 16:
        raise ValueError(f"{value[:32]!r} is not a duration like 5m")
    return min(int(value[:-1]) * _DURATION_SECONDS[value[-1]], MAX_DURATION_SECONDS)


class RolloutStep(ApiModel):
    percent: Annotated[int, Field(ge=0, le=99, description="Share of queries the candidate receives in this step (0: shadow only).")]
    pause: Annotated[
        str, Field(pattern=DURATION_PATTERN, description="Minimum time in this step before its analysis may advance it, e.g. 5m.")
    ]


class RolloutAnalysis(ApiModel):
    """Online gates of each rollout step, measured by the serving replicas on live traffic."""

    min_samples: Annotated[
        int, Field(ge=1, description="Candidate requests a step needs before it can pass (low traffic never counts as success).")
    ] = 100
    max_error_rate: Annotated[float, Field(ge=0.0, le=1.0, description="Largest share of candidate searches that may fail.")] = 0.01
    max_latency_ratio: Annotated[
        float, Field(gt=0.0, description="Largest candidate p99 / stable p99 (checked once both have minSamples requests).")
    ] = 2.0
    min_overlap: Annotated[
        float, Field(ge=0.0, le=1.0, description="Smallest mean overlap@k of candidate vs stable on shadowed queries.")
    ] = 0.8
    min_shadow_samples: Annotated[int, Field(ge=0, description="Shadowed queries a step needs before it can pass.")] = 20
    shadow_percent: Annotated[
        int, Field(ge=0, le=100, description="Share of stable-routed queries also run on the candidate and compared.")
    ] = 10


class Rollout(ApiModel):
    percent: Annotated[
        int,
        Field(ge=0, le=100, description="Share of queries sent to the newest validated version; 100 promotes at once. Ignored when steps are set."),
    ] = 100
    steps: Annotated[
        list[RolloutStep],
        Field(max_length=10, description="Progressive rollout, e.g. 10% for 5m then 50% for 10m, then 100%; each step gated by analysis."),
    ] = []
    analysis: RolloutAnalysis = RolloutAnalysis()
    keep_versions: Annotated[
        int,
        Field(
            ge=1,
            le=1000,
            description="Versions kept in storage; older ones are pruned, never the serving, candidate, last-good or pinned one.",
        ),
    ] = 5
    pinned_version: Annotated[
        str | None,
        Field(
            default=None,
            pattern=VERSION_ID_PATTERN,
            description="Serve exactly this existing version (declarative rollback); unset to resume normal promotion.",
        ),
    ] = None

    @property
    def plan(self) -> RolloutPlan:
        """``percent`` or ``steps`` as one plan of steps (``indexops_api.rollout_plan``); derived, never stored."""
        return plan_of(self.percent, self.steps, self.analysis.shadow_percent)


class ConcurrencyPolicy(str, Enum):
    FORBID = "Forbid"
    REPLACE = "Replace"


class DriftPolicy(str, Enum):
    REBUILD = "Rebuild"
    REPORT = "Report"


class Sync(ApiModel):
    """Drift check: compare the source's cheap fingerprint with the serving version's manifest."""

    interval: Annotated[
        str,
        Field(
            pattern=SYNC_INTERVAL_PATTERN,
            max_length=8,
            description="How often the source fingerprint is checked, e.g. 5m; at least 10s.",
        ),
    ] = "10m"
    policy: Annotated[
        DriftPolicy, Field(description="Rebuild on drift, or only report it (condition + Event).")
    ] = DriftPolicy.REBUILD


class SecretRef(ApiModel):
    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=253, description="Secret in the FaissIndex's namespace.")]


class Storage(ApiModel):
    """Where versions and the serving pointer are written."""

    bucket: Annotated[str, Field(pattern=BUCKET_PATTERN, description="Artifact bucket.")]
    prefix: Annotated[
        str,
        Field(pattern=r"^[A-Za-z0-9._\-/]*$", max_length=512, description="Key prefix under the bucket."),
    ] = "faiss-indexes"
    endpoint: Annotated[
        str | None,
        Field(
            default=None,
            pattern=ENDPOINT_PATTERN,
            max_length=ENDPOINT_MAX_LENGTH,
            description="S3-compatible endpoint URL (http:// or https://, no credentials); AWS when unset.",
        ),
    ] = None
    region: Annotated[
        str | None, Field(default=None, pattern=r"^[a-z0-9\-]+$", max_length=64, description="S3 region.")
    ] = None
    credentials_secret: Annotated[
        SecretRef | None,
        Field(
            default=None,
            description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; ambient credentials when unset.",
        ),
    ] = None
    deletion_policy: Annotated[
        Literal["Retain", "Delete"],
        Field(description="When the FaissIndex is deleted: Retain keeps every artifact, Delete removes the index's prefix."),
    ] = "Retain"


Quantity = Annotated[str, Field(pattern=K8S_QUANTITY_PATTERN, max_length=32)]
# Resource names are checked by the model (the operator reports InvalidSpec), not by a CEL
# rule: map keys have no length bound in a structural schema, so any CEL over them exceeds
# the API server's cost budget. Values (the quantities) are checked by the API server.
_RESOURCE_NAME = re.compile(r"^(cpu|memory|ephemeral-storage|hugepages-.+|[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
ResourceList = Annotated[dict[str, Quantity], Field(max_length=8)]


class Resources(ApiModel):
    """A container resources block: Kubernetes quantities (500m, 2Gi) per resource name."""

    requests: ResourceList | None = None
    limits: ResourceList | None = None

    @field_validator("requests", "limits")
    @classmethod
    def _resource_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in value or {}:
            if not _RESOURCE_NAME.match(name):
                raise ValueError(f"{name[:64]!r} is not a resource name (cpu, memory, ephemeral-storage, "
                                 "hugepages-<size>, vendor/name)")
        return value


class Build(ApiModel):
    image: Annotated[
        str | None,
        Field(default=None, pattern=IMAGE_PATTERN, max_length=512,
              description="Builder image; the operator's default when unset. The chart's allowedImages may restrict it."),
    ] = None
    resources: Resources | None = None
    active_deadline_seconds: Annotated[int, Field(ge=30, le=604800, description="Build timeout.")] = 3600
    backoff_limit: Annotated[int, Field(ge=0, le=10, description="Pod retries inside one build Job.")] = 0
    max_memory: Annotated[
        str | None,
        Field(default=None, pattern=QUANTITY_PATTERN, description="Memory budget of the build (Auto and preflight); resources.limits.memory when unset."),
    ] = None
    max_consecutive_failures: Annotated[
        int,
        Field(ge=1, le=100, description="Failed builds in a row before the index is Stalled (no more automatic retries)."),
    ] = 3
    retry_backoff_seconds: Annotated[
        int,
        Field(ge=1, le=86400, description="Cooldown after the first failed build; doubles after each further failure."),
    ] = 60
    max_retry_backoff_seconds: Annotated[
        int, Field(ge=1, le=604800, description="Upper bound of the cooldown between failed builds.")
    ] = 3600


class Serving(ApiModel):
    enabled: Annotated[bool, Field(description="Whether the operator runs a serving Deployment + Service.")] = True
    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    port: Annotated[int, Field(ge=1024, le=65535)] = 8080
    image: Annotated[
        str | None,
        Field(default=None, pattern=IMAGE_PATTERN, max_length=512,
              description="Serving image; the operator's default when unset. The chart's allowedImages may restrict it."),
    ] = None
    resources: Resources | None = None
