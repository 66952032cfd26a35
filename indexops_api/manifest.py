"""``manifest.json``: the commit marker of an immutable index version.

The builder writes it last; a version without a manifest does not exist. It records
what was built and everything measured, whether or not the gates will pass: the
builder measures, the operator decides.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from indexops_api.base import ApiModel
from indexops_api.spec import IndexType, Metric

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class FileEntry(ApiModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._\-]+$")]
    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)]


class SourceFingerprint(ApiModel):
    uri: str
    count: Annotated[int, Field(ge=0)]
    etag: str | None = None
    last_modified: str | None = None
    watermark: str | None = None  # newest timestamp / object time seen, for drift checks
    content_hash: str | None = None  # sha256 of the vectors when cheap to compute
    # A time-windowed database source: the database time the window was measured from, so a
    # drift check can count the same window instead of a window that slid since.
    window_anchor: str | None = None


class Measurements(ApiModel):
    recall_at_k: Annotated[float, Field(ge=0.0, le=1.0)]
    k: Annotated[int, Field(ge=1)]
    queries: Annotated[int, Field(ge=1)]
    latency_p50_ms: Annotated[float, Field(ge=0.0)]
    latency_p95_ms: Annotated[float, Field(ge=0.0)]
    latency_p99_ms: Annotated[float, Field(ge=0.0)]
    batch_latency_ms_per_query: Annotated[float | None, Field(default=None, ge=0.0)] = None
    memory_bytes: Annotated[
        int | None,
        Field(default=None, ge=0, description="Serving memory of the loaded version: FAISS's own accounting of the "
              "index's arrays plus the ids array (see ``memory``), not the file size."),
    ] = None
    recall_lower_bound: Annotated[
        float | None,
        Field(default=None, ge=0.0, le=1.0, description="One-sided lower confidence bound on recall_at_k "
              "(bootstrap over the held-out queries) at recall_confidence."),
    ] = None
    recall_confidence: Annotated[float | None, Field(default=None, gt=0.0, lt=1.0)] = None


class MemoryBreakdown(ApiModel):
    """Where a loaded version's bytes go (FAISS's own arrays, counted after the build)."""

    codes: Annotated[int, Field(ge=0, description="Vectors or their codes as the index searches them (flat, PQ, SQ).")] = 0
    graph: Annotated[int, Field(ge=0, description="HNSW links, offsets and levels.")] = 0
    refine: Annotated[int, Field(ge=0, description="Re-ranking codes or vectors (IndexRefine).")] = 0
    ids: Annotated[int, Field(ge=0, description="IVF list ids plus the ids.npy array serving maps positions with.")] = 0
    other: Annotated[int, Field(ge=0, description="Centroids, codebooks, rotations, scalar-quantizer ranges.")] = 0
    total: Annotated[int, Field(ge=0)] = 0
    bytes_per_vector: Annotated[float, Field(ge=0.0)] = 0.0


class CheckResult(ApiModel):
    """One structural or functional check the builder ran (recorded whether it passed or not)."""

    name: str
    passed: bool
    detail: str = ""


class AutoChoice(ApiModel):
    """Why ``indexType: Auto`` picked what it did."""

    index_type: IndexType
    factory: str
    reason: str


class TuningPoint(ApiModel):
    parameters: dict[str, int]
    recall: float
    latency_p99_ms: float
    recall_lower_bound: float | None = None


class TuningResult(ApiModel):
    target_recall: float
    k: int
    reached: bool
    chosen: dict[str, int]
    sweep: list[TuningPoint]
    # "recallLowerBound": the chosen point's lower confidence bound reaches the target, not only its mean
    criterion: str = "recall"
    confidence: float | None = None


class Timings(ApiModel):
    load_seconds: float
    train_seconds: float
    add_seconds: float
    validate_seconds: float
    total_seconds: float


SHARD_RULE = "splitmix64(id) mod shards"  # manifests written before slices were row ranges


class SliceRows(ApiModel):
    """Which source rows one slice added, and how many source bytes its pod fetched for them."""

    shard: Annotated[int, Field(ge=0)]
    first_row: Annotated[int, Field(ge=0)]
    rows: Annotated[int, Field(ge=0)]
    source_bytes: Annotated[int, Field(ge=0)] = 0


class ShardFile(ApiModel):
    """One shard of a sharded version: its index and ids files (both also listed in ``files``)."""

    shard: Annotated[int, Field(ge=0)]
    index_file: str
    ids_file: str
    vectors: Annotated[int, Field(ge=0)]


class Sharding(ApiModel):
    """How a sharded version was built and what serving must load.

    ``rule`` says how source rows were assigned to slices: ``contiguous row ranges in source
    order`` (``slices`` lists each slice's first row and row count; every slice pod read
    only those rows) or, in manifests written before that, ``splitmix64(id) mod shards``. ``trainedStateSha256`` is the digest of the trained empty
    index every slice started from; the finalize step refuses shards whose trained state
    differs. ``merged``: the slices were merged into ``indexFile`` (one index, served as
    usual); otherwise ``shardFiles`` lists every shard and only shard-aware serving (the
    fan-out) may serve the version, all shards or none.
    """

    shards: Annotated[int, Field(ge=1)]
    rule: str = SHARD_RULE
    trained_state_sha256: Annotated[str, Field(pattern=SHA256_PATTERN)]
    merged: bool
    shard_files: list[ShardFile] = []
    slices: list[SliceRows] = []
    auto_reason: str | None = None  # autoShards: why the train stage chose this shard count


class Manifest(ApiModel):
    schema_version: int = 1
    index: str
    namespace: str
    horizon: str
    version: str
    build_key: str
    created_at: str
    index_type: IndexType
    metric: Metric
    dimension: Annotated[int, Field(ge=1)]
    vectors: Annotated[int, Field(ge=0)]
    parameters: dict[str, int]
    search_parameters: dict[str, int]
    files: list[FileEntry]
    index_file: str
    ids_file: str
    size_bytes: Annotated[int, Field(ge=0)]
    source: SourceFingerprint
    measurements: Measurements
    timings: Timings
    faiss_version: str
    builder_version: str
    factory: str | None = None
    checks: list[CheckResult] = []
    auto: AutoChoice | None = None
    tuning: TuningResult | None = None
    memory_estimate_bytes: Annotated[int | None, Field(default=None, ge=0)] = None
    memory: MemoryBreakdown | None = None
    warnings: Annotated[
        list[str],
        Field(max_length=50, description="Parameter sanity and FAISS warnings the build saw (e.g. nlist too "
              "large for the training rows); the version may still pass its gates."),
    ] = []
    sharding: Sharding | None = None
