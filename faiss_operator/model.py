"""Types that flow through one reconcile: what was observed and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from indexops_api.manifest import Manifest
from indexops_api.pointer import ServingPointer
from indexops_api.spec import FaissIndexSpec
from indexops_api.status import EventReason, FaissIndexStatus

JobState = Literal["Running", "Succeeded", "Failed"]


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


@dataclass(frozen=True)
class ServingObservation:
    exists: bool
    desired_replicas: int = 0
    ready_replicas: int = 0


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
    job: JobObservation | None = None
    manifest: Manifest | None = None
    manifest_error: str | None = None
    pointer: ServingPointer | None = None
    pointer_etag: str | None = None
    storage_error: str | None = None
    serving: ServingObservation | None = None


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


@dataclass(frozen=True)
class Plan:
    status: FaissIndexStatus
    create_job: JobToCreate | None = None
    write_pointer: ServingPointer | None = None
    ensure_serving: bool = False
    events: list[Event] = field(default_factory=list)
