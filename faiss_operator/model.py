"""Types that flow through one reconcile: what was observed and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from indexops_api.manifest import Manifest, SourceFingerprint
from indexops_api.pointer import ServingPointer
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import EventReason, FaissIndexStatus, Reason
from faiss_operator.jobstate import JobState


@dataclass(frozen=True)
class JobObservation:
    """The builder Job for the desired build key, as found on the API server."""

    name: str
    version: str
    build_key: str
    state: JobState
    start_time: str | None = None
    completion_time: str | None = None
    message: str = ""
    number: int | None = None
    trigger: str | None = None
    disrupted: bool = False  # failed because its pod was taken away (evicted, deleted): retried, not counted
    terminating: bool = False  # being deleted (foreground: until its pods are gone)
    suspended: bool = False  # created suspended: waits for an older builder's pods to be gone
    uid: str = ""
    stage: str | None = None  # sharded builds: "train" (the tracked Job), "shards", "finalize"
    parent: str | None = None  # sharded builds: the train Job a stage Job belongs to
    next_stage: str | None = None  # sharded builds: the stage Job to create next (faiss_operator.sharding)


@dataclass(frozen=True)
class ServingObservation:
    exists: bool
    desired_replicas: int = 0
    ready_replicas: int = 0
    uid: str = ""  # only pods of this Deployment's ReplicaSets report (replicas.py)


@dataclass(frozen=True)
class VersionStats:
    """One replica's numbers for one version since it applied the current pointer generation."""

    role: str
    requests: int = 0
    errors: int = 0
    latency_le_ms: tuple[float, ...] = ()
    latency_counts: tuple[int, ...] = ()  # cumulative, one per bound
    shadow_queries: int = 0
    shadow_overlap_sum: float = 0.0


@dataclass(frozen=True)
class ReplicaReport:
    """What one serving pod's /v1/status said (``error`` when it could not be asked)."""

    pod: str
    generation: int | None = None
    stable: str | None = None
    candidate: str | None = None
    versions: dict[str, VersionStats] = field(default_factory=dict)
    error: str | None = None
    refused: dict[str, str] = field(default_factory=dict)  # version -> why this replica will not load it


@dataclass(frozen=True)
class StoredVersion:
    """A version directory found in storage; ``complete`` when its manifest is there."""

    complete: bool
    files: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SyncObservation:
    """The serving version's recorded source fingerprint next to a fresh probe of the source."""

    recorded: SourceFingerprint | None = None
    probed: SourceFingerprint | None = None
    error: str | None = None


@dataclass(frozen=True)
class Observation:
    name: str
    namespace: str
    uid: str
    generation: int
    now: datetime
    spec: FaissIndexSpec | None
    spec_error: str | None
    status: FaissIndexStatus
    jobs: tuple[JobObservation, ...] = ()
    created: datetime | None = None
    rebuild_request: str | None = None
    promote_request: str | None = None
    abort_request: str | None = None
    manifest: Manifest | None = None
    manifest_error: str | None = None
    pointer: ServingPointer | None = None
    pointer_etag: str | None = None
    storage_error: str | None = None
    storage_unavailable: bool = False  # the endpoint did not answer in time or refused the connection
    serving: ServingObservation | None = None
    versions: dict[str, StoredVersion] | None = None  # None: not listed (storage error)
    sync: SyncObservation | None = None  # set when a drift check ran on this pass
    pinned_manifest: Manifest | None = None
    pinned_error: str | None = None
    replicas: tuple[ReplicaReport, ...] | None = None  # None: not asked (serving disabled / nothing serves)
    spec_error_reason: Reason = Reason.INVALID_SPEC  # or StorageNotAllowed: the spec is valid but names storage not granted
    adoptable: dict[str, Manifest] | None = None  # manifests read to rebuild a lost status (adoption); None: not read

    def job_named(self, name: str | None) -> JobObservation | None:
        return next((j for j in self.jobs if j.name == name), None)


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: EventReason
    message: str


@dataclass(frozen=True)
class JobToCreate:
    name: str
    version: str
    build_key: str
    number: int
    trigger: str
    suspended: bool = False  # another builder Job of the index is still alive: start no pod yet


@dataclass(frozen=True)
class StageToCreate:
    """The next Job of a sharded build (``shards``: the Indexed Job, ``finalize``), owned by its train Job."""

    stage: str
    parent: str
    parent_uid: str
    version: str
    build_key: str
    number: int
    trigger: str


@dataclass(frozen=True)
class Requeue:
    """When the next pass looks, decided with the plan (``pacing.requeue_for``; seconds: ``pacing.wait_seconds``)."""

    kind: Literal["pointer", "busy", "idle"] = "idle"  # a pointer was written / a build or candidate or storage error / idle
    timer: float | None = None  # idle: seconds until something time-based is due; None: only the safety-net resync


@dataclass(frozen=True)
class Plan:
    status: FaissIndexStatus
    create_job: JobToCreate | None = None
    write_pointer: ServingPointer | None = None
    ensure_serving: bool = False
    delete_jobs: list[str] = field(default_factory=list)
    resume_job: str | None = None  # the tracked Job was created suspended and nothing overlaps it any more
    prune_versions: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    create_stage: "StageToCreate | None" = None  # sharded builds: the next stage Job of the tracked build
    requeue: Requeue = Requeue()  # when the next pass looks
