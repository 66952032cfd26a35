"""The FaissIndex spec: what a user declares with ``kubectl apply``.

Field names are the product contract (see ARCHITECTURE.md). Validation lives here in two
forms that must agree: JSON-schema constraints and CEL rules exported into the CRD (so the
API server rejects bad specs at apply time) and pydantic validators (so ``faissctl
validate`` and the operator reject the same specs offline).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from indexops_api.base import ApiModel
from indexops_api.source_spec import SQL_IDENTIFIER, FileSource, PostgresSource, S3Source, SecretKeyRef, Source, TimeWindow
from indexops_api.spec_ops import (
    QUANTITY_PATTERN,
    Build,
    ConcurrencyPolicy,
    DriftPolicy,
    Resources,
    Rollout,
    SecretRef,
    Serving,
    Storage,
    Sync,
)

__all__ = [  # re-exported: the spec's parts live in spec_ops and source_spec to keep modules small
    "Build", "ConcurrencyPolicy", "DriftPolicy", "QUANTITY_PATTERN", "Resources", "Rollout", "SecretRef", "Serving",
    "Storage", "Sync", "SQL_IDENTIFIER", "FileSource", "PostgresSource", "S3Source", "SecretKeyRef", "Source", "TimeWindow",
]

HORIZON_PATTERN = r"^[1-9][0-9]*(m|h|d)$"
# Five cron fields or a macro; the operator double-checks with a real cron parser.
# The shapes of IANA zone names (Area/Location[/Sub], Title words like Japan, upper-case ones
# like UTC or EST5EDT): rejects junk such as NaN, null or numbers at admission. Whether the
# zone exists is checked by ``_zone_exists`` (the operator refuses it as InvalidSpec).
TIME_ZONE_PATTERN = r"^([A-Z][a-z]+(_[A-Z][a-z]+)*|[A-Z][A-Z0-9+-]*[A-Z0-9]|[A-Z][A-Za-z_-]*(/[A-Za-z0-9_+-]+){1,2}|GB-Eire)$"
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"


class Metric(str, Enum):
    L2 = "L2"
    INNER_PRODUCT = "InnerProduct"
    COSINE = "Cosine"


class ShardMerge(str, Enum):
    """What the finalize step of a sharded build does with the shards."""

    AUTO = "Auto"  # merge IVF-family shards into one index when it fits the serving memory; keep N shards otherwise
    NEVER = "Never"  # always serve N shards behind the fan-out


MAX_SHARDS = 64


class IndexType(str, Enum):
    FLAT = "Flat"
    IVF = "IVF"
    IVFPQ = "IVFPQ"
    HNSW = "HNSW"
    OPQ_HNSW = "OPQ+HNSW"
    AUTO = "Auto"


class Refine(str, Enum):
    """Re-ranking of a compressed index's shortlist (FAISS IndexRefine): none, 8-bit scalar codes, or exact vectors."""

    NONE = "None"
    SQ8 = "SQ8"
    FLAT = "Flat"


class Encoding(str, Enum):
    """How HNSW and IVF store the vectors they search: float32, 8-/4-bit scalar codes, or float16."""

    FLAT = "Flat"
    SQ8 = "SQ8"
    SQ4 = "SQ4"
    FP16 = "FP16"


class IndexParameters(ApiModel):
    """Build- and search-time parameters; unset fields take the per-type defaults."""

    m: Annotated[int | None, Field(default=None, ge=4, le=128, description="HNSW: neighbours per node.")] = None
    ef_construction: Annotated[
        int | None, Field(default=None, ge=8, le=4096, description="HNSW: build-time beam width.")
    ] = None
    ef_search: Annotated[int | None, Field(default=None, ge=1, le=4096, description="HNSW: search-time beam width.")] = None
    nlist: Annotated[
        int | None, Field(default=None, ge=1, le=1048576, description="IVF: number of inverted lists (default ~4*sqrt(n)).")
    ] = None
    nprobe: Annotated[int | None, Field(default=None, ge=1, le=65536, description="IVF: lists probed per query.")] = None
    n_subquantizers: Annotated[
        int | None,
        Field(default=None, ge=1, le=256, description="IVFPQ, OPQ+HNSW: PQ sub-quantizers (bytes per code at 8 bits; divides dimension)."),
    ] = None
    m_pq: Annotated[
        int | None, Field(default=None, ge=4, le=16, description="IVFPQ, OPQ+HNSW: bits per PQ sub-quantizer code.")
    ] = None
    m_hnsw: Annotated[int | None, Field(default=None, ge=4, le=128, description="OPQ+HNSW: HNSW neighbours per node.")] = None
    refine: Annotated[
        Refine | None,
        Field(default=None, description="IVFPQ, OPQ+HNSW: re-rank a shortlist of k*kFactor candidates with SQ8 codes "
              "(default, +d bytes/vector) or exact vectors (Flat, +4d bytes/vector); None keeps PQ distances only."),
    ] = None
    encoding: Annotated[
        Encoding | None,
        Field(default=None, description="HNSW, IVF: how the index stores vectors: Flat (float32, 4d bytes/vector, "
              "default), SQ8 (d bytes), SQ4 (d/2 bytes) or FP16 (2d bytes); scalar codes trade a little recall "
              "for memory (FAISS IndexHNSWSQ / IndexIVFScalarQuantizer)."),
    ] = None
    k_factor: Annotated[
        int | None,
        Field(default=None, ge=1, le=256, description="Re-rank depth: the compressed index returns k*kFactor candidates "
              "to re-rank (default 8; tuned with spec.tuning)."),
    ] = None


class Validation(ApiModel):
    """Gates a new version must pass before it may serve."""

    min_recall: Annotated[
        float,
        Field(ge=0.0, le=1.0, description="Minimum recall@k against exact search on held-out queries."),
    ] = 0.9
    k: Annotated[int, Field(ge=1, le=1000, description="k used for recall@k.")] = 10
    queries: Annotated[
        int, Field(ge=10, le=100000, description="Number of held-out query vectors sampled from the source.")
    ] = 200
    min_vectors: Annotated[int, Field(ge=1, description="Minimum number of vectors in a new version.")] = 1
    max_p99_latency_ms: Annotated[
        float | None, Field(default=None, gt=0, description="Maximum single-query p99 latency measured by the builder.")
    ] = None
    max_vector_count_change_percent: Annotated[
        float | None,
        Field(default=None, ge=0, le=10000, description="Maximum change of the vector count vs the serving version, in percent."),
    ] = None


class Tuning(ApiModel):
    """Pick search-time parameters (efSearch / nprobe) reaching a recall at the lowest latency."""

    target_recall: Annotated[float, Field(gt=0.0, le=1.0, description="Target recall@k on held-out queries.")]
    k: Annotated[int | None, Field(default=None, ge=1, le=1000, description="k for the target; validation.k when unset.")] = None


class FaissIndexSpec(ApiModel):
    """Desired state of one FAISS index for one horizon."""

    horizon: Annotated[
        str,
        Field(pattern=HORIZON_PATTERN, max_length=8, description="Forecast horizon / data partition, e.g. 6h, 24h, 2d."),
    ]
    dimension: Annotated[int, Field(ge=1, le=65536, description="Vector dimension.")]
    metric: Annotated[Metric, Field(description="Distance metric.")] = Metric.L2
    index_type: Annotated[IndexType, Field(description="FAISS index family.")] = IndexType.HNSW
    parameters: IndexParameters = IndexParameters()
    factory: Annotated[
        str | None,
        Field(
            default=None,
            pattern=r"^[A-Za-z0-9_,.+x\-]+$",
            max_length=256,
            description="Raw FAISS index_factory string for experts; replaces indexType's construction (search parameters still apply).",
        ),
    ] = None
    tuning: Tuning | None = None
    source: Source
    storage: Storage
    validation: Validation = Validation()
    rollout: Rollout = Rollout()
    schedule: Annotated[
        str | None,
        Field(default=None, pattern=CRON_PATTERN, max_length=128, description="Cron schedule of rebuilds (CronJob syntax)."),
    ] = None
    time_zone: Annotated[
        str | None,
        Field(default=None, max_length=64, pattern=TIME_ZONE_PATTERN,
              description="IANA time zone of the schedule, e.g. Europe/Berlin; UTC when unset."),
    ] = None
    suspend: Annotated[
        bool, Field(description="Stop scheduled and drift-triggered builds; spec changes and manual rebuilds still build.")
    ] = False
    starting_deadline_seconds: Annotated[
        int | None,
        Field(default=None, ge=1, description="A scheduled run that cannot start within this many seconds is skipped."),
    ] = None
    concurrency_policy: Annotated[
        ConcurrencyPolicy,
        Field(description="A scheduled run while a build runs: Forbid waits for it, Replace stops it and starts anew."),
    ] = ConcurrencyPolicy.FORBID
    sync: Annotated[Sync | None, Field(default=None, description="Drift check against the source of truth.")] = None
    build: Build = Build()
    serving: Serving = Serving()
    shards: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_SHARDS,
            description="Build the index as this many disjoint slices (an Indexed Job, one pod per slice) and serve "
            "them behind a fan-out; 1 builds and serves one index. See docs/scale-out.md.",
        ),
    ] = 1
    auto_shards: Annotated[
        bool,
        Field(description="Pick the shard count at build time from the serving memory limit: the fewest shards "
              "whose index part, twice over (a swap holds two versions), fits one serving pod beside its fixed "
              "overhead. The train stage decides from the real vector count and the type's memory per vector; the "
              "manifest and status.shardsReason record the count and why. Excludes shards > 1."),
    ] = False
    shard_merge: Annotated[
        ShardMerge,
        Field(description="Sharded builds: Auto merges IVF/IVFPQ/Flat shards into one index when it fits the "
              "serving memory limit, Never always keeps the shards."),
    ] = ShardMerge.AUTO

    @property
    def sharded(self) -> bool:
        """Built by the sharded Job chain (train, slices, finalize): a fixed count > 1, or autoShards."""
        return self.shards > 1 or self.auto_shards

    @field_validator("schedule")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None and not (_looks_like_cron(value) and croniter.is_valid(value)):
            raise ValueError(f"schedule {value!r} is not a 5-field cron expression or @macro")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timeZone {value!r} is not a known IANA time zone") from None
        return value

    @model_validator(mode="after")
    def _parameters_fit_type(self) -> "FaissIndexSpec":
        problems = parameter_problems(self.index_type, self.parameters)
        nsq = self.parameters.n_subquantizers
        if nsq is not None and self.dimension % nsq:
            problems.append(f"parameters.nSubquantizers {nsq} must divide dimension {self.dimension}")
        problems += shard_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def shard_problems(spec: "FaissIndexSpec") -> list[str]:
    """Sharded builds need a concrete index type and no tuning sweep (mirrors the CEL rule)."""
    if spec.auto_shards and spec.shards > 1:
        return ["set shards or autoShards, not both"]
    if not spec.sharded:
        return []
    problems = []
    if spec.index_type is IndexType.AUTO and not spec.factory:
        problems.append("shards > 1 needs a concrete indexType (or a factory), not Auto")
    if spec.tuning is not None:
        problems.append("shards > 1 cannot be combined with tuning (search parameters are tuned per whole index)")
    return problems


_ALL_PARAMS = ("m", "ef_construction", "ef_search", "nlist", "nprobe", "n_subquantizers", "m_pq", "m_hnsw")
_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z?]+$")


def _looks_like_cron(value: str) -> bool:
    if value.startswith("@"):
        return re.match(CRON_PATTERN, value) is not None
    fields = value.split()
    return len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)


def parameter_problems(index_type: IndexType, params: IndexParameters) -> list[str]:
    """Parameters that make no sense for the index type (mirrors the CEL rules)."""
    allowed = _ALLOWED[index_type.value]
    return [
        f"parameters.{IndexParameters.model_fields[name].alias} does not apply to indexType {index_type.value}"
        for name in _ALL_PARAMS
        if getattr(params, name) is not None and name not in allowed
    ]


# CEL mirror of parameter_problems, attached to the spec schema by crd.py.
_ALLOWED: dict[str, tuple[str, ...]] = {
    "Flat": (),
    "IVF": ("nlist", "nprobe"),
    "IVFPQ": ("nlist", "nprobe", "n_subquantizers", "m_pq"),
    "HNSW": ("m", "ef_construction", "ef_search"),
    "OPQ+HNSW": ("n_subquantizers", "m_pq", "m_hnsw", "ef_construction", "ef_search"),
    "Auto": (),
}


def _cel_forbid(index_type: str) -> dict[str, str]:
    names = [IndexParameters.model_fields[n].alias for n in _ALL_PARAMS if n not in _ALLOWED[index_type]]
    absent = " && ".join(f"!has(self.parameters.{n})" for n in names)
    return {
        "rule": f"self.indexType != '{index_type}' || !has(self.parameters) || ({absent})",
        "message": f"parameters {', '.join(names)} do not apply to indexType {index_type}",
    }


SPEC_CEL_RULES = [_cel_forbid(t) for t in _ALLOWED] + [
    {
        "rule": "!has(self.autoShards) || !self.autoShards || !has(self.shards) || self.shards == 1",
        "message": "set shards or autoShards, not both",
    },
    {
        "rule": "((!has(self.shards) || self.shards == 1) && (!has(self.autoShards) || !self.autoShards)) || has(self.factory) || !has(self.indexType) || self.indexType != 'Auto'",
        "message": "shards > 1 needs a concrete indexType (or a factory), not Auto",
    },
    {
        "rule": "((!has(self.shards) || self.shards == 1) && (!has(self.autoShards) || !self.autoShards)) || !has(self.tuning)",
        "message": "shards > 1 cannot be combined with tuning",
    },
    {
        "rule": "!has(self.parameters) || !has(self.parameters.nSubquantizers) || self.dimension % self.parameters.nSubquantizers == 0",
        "message": "parameters.nSubquantizers must divide dimension",
    }
]
