"""Leader election on a ``coordination.k8s.io/v1`` Lease, the way client-go does it.

Why: with two or more operator replicas exactly one may reconcile, or two replicas could
race on status writes and pointer updates. The replica holding the Lease runs kopf; the
others wait, ready to take over when the holder stops renewing.

Two parts:

- ``decide_lease`` is pure: (observed Lease, my identity, now, lease duration) -> acquire /
  renew / stand by, and the record to write. Table-tested.
- ``LeaderElector`` is the thin I/O around it: read, create or update the Lease with
  optimistic concurrency (``resourceVersion``; a 409 means someone else wrote first), and
  renew in a background thread. It talks to an injected ``LeaseApi`` so it imports no
  Kubernetes client; ``KubeLeaseApi`` adapts ``kubernetes.client.CoordinationV1Api``.

Timings, D = lease duration (client-go's defaults are D=15s, renew deadline 10s, retry 2s):

- the leader renews every D/3; when it has not renewed for 2D/3 it gives up (the caller
  exits the process), so it stops acting at least D/3 before anyone may take over;
- a follower polls every D/5 (at least 1 s) and takes the Lease when it is released (holder
  empty) or when the record has not changed for D on the follower's own clock, counted from
  when it first saw that record (as client-go does, so clock skew between nodes is harmless);
- on clean shutdown the leader empties the holder, so a follower takes over at its next poll.

Every reading of time and every wait goes through an injected ``Clock`` (``SystemClock`` in
the operator), so tests drive the timings with a fake clock instead of sleeping.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Protocol

log = logging.getLogger(__name__)


# -- the pure decision -------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a Lease: who holds it, for how long, since when."""

    holder: str | None
    duration_seconds: int | None = None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Observed:
    """A Lease record and when *this* process first saw that version of it (local clock)."""

    record: LeaseRecord
    seen_at: datetime


class Action(str, Enum):
    ACQUIRE = "acquire"
    RENEW = "renew"
    STAND_BY = "stand-by"


@dataclass(frozen=True)
class Decision:
    action: Action
    write: LeaseRecord | None = None  # the record to create/update (None: stand by)
    holder: str | None = None  # the current holder when standing by
    expires_at: datetime | None = None  # when standing by: when the holder's claim runs out
    reason: str = ""


def decide_lease(observed: Observed | None, me: str, now: datetime, duration_seconds: int) -> Decision:
    """What this candidate does with the Lease it just read (None: there is no Lease)."""
    if observed is None:
        return Decision(Action.ACQUIRE, LeaseRecord(me, duration_seconds, now, now, 0), reason="no lease exists")
    record = observed.record
    if record.holder == me:
        renewed = replace(record, duration_seconds=duration_seconds, renew_time=now)
        return Decision(Action.RENEW, renewed, holder=me, reason="I hold the lease")
    taken = LeaseRecord(me, duration_seconds, now, now, record.transitions + 1)
    if not record.holder:
        return Decision(Action.ACQUIRE, taken, reason="the lease was released")
    held_for = record.duration_seconds if record.duration_seconds and record.duration_seconds > 0 else duration_seconds
    expires_at = observed.seen_at + timedelta(seconds=held_for)
    if now >= expires_at:
        return Decision(Action.ACQUIRE, taken, reason=f"{record.holder} did not renew within {held_for}s")
    return Decision(Action.STAND_BY, holder=record.holder, expires_at=expires_at, reason=f"{record.holder} holds the lease")


@dataclass(frozen=True)
class Timings:
    """Every election interval, derived from the lease duration so they cannot contradict."""

    lease_duration: int

    def __post_init__(self) -> None:
        if self.lease_duration < 3:
            raise ValueError(f"lease duration must be at least 3s, got {self.lease_duration}")

    @property
    def renew_interval(self) -> float:
        return self.lease_duration / 3

    @property
    def renew_deadline(self) -> float:
        return self.lease_duration * 2 / 3

    @property
    def retry_interval(self) -> float:
        return max(1.0, self.lease_duration / 5)


def new_identity(pod_name: str) -> str:
    """Pod name plus a random suffix: a restarted container never mistakes an old claim for its own."""
    return f"{pod_name}_{secrets.token_hex(4)}"


# -- the thin I/O ------------------------------------------------------------------------


class LeaseConflict(Exception):
    """Someone else created or updated the Lease since we read it."""


class LeaseApi(Protocol):
    def get(self) -> tuple[LeaseRecord, str] | None: ...  # (record, resourceVersion)

    def create(self, record: LeaseRecord) -> str: ...  # raises LeaseConflict

    def update(self, record: LeaseRecord, resource_version: str) -> str: ...  # raises LeaseConflict


def _micro_time(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class KubeLeaseApi:
    """``LeaseApi`` over ``kubernetes.client.CoordinationV1Api`` (raw JSON, no model classes)."""

    def __init__(self, coordination: Any, namespace: str, name: str, request_timeout: float) -> None:
        self._api, self.namespace, self.name, self._timeout = coordination, namespace, name, request_timeout

    def _call(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self._timeout)
        except Exception as exc:
            if getattr(exc, "status", None) == 409:
                raise LeaseConflict(str(getattr(exc, "reason", exc))) from exc
            raise
        return json.loads(resp.data)

    def _body(self, record: LeaseRecord, resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        spec = {
            "holderIdentity": record.holder or None,
            "leaseDurationSeconds": record.duration_seconds,
            "acquireTime": _micro_time(record.acquire_time),
            "renewTime": _micro_time(record.renew_time),
            "leaseTransitions": record.transitions,
        }
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {k: v for k, v in spec.items() if v is not None}}

    def get(self) -> tuple[LeaseRecord, str] | None:
        try:
            lease = self._call(self._api.read_namespaced_lease, self.name, self.namespace)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        spec = lease.get("spec") or {}
        record = LeaseRecord(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=spec.get("leaseDurationSeconds"),
            acquire_time=_parse_time(spec.get("acquireTime")),
            renew_time=_parse_time(spec.get("renewTime")),
            transitions=spec.get("leaseTransitions") or 0,
        )
        return record, lease["metadata"]["resourceVersion"]

    def create(self, record: LeaseRecord) -> str:
        created = self._call(self._api.create_namespaced_lease, self.namespace, self._body(record, None))
        return created["metadata"]["resourceVersion"]

    def update(self, record: LeaseRecord, resource_version: str) -> str:
        body = self._body(record, resource_version)
        updated = self._call(self._api.replace_namespaced_lease, self.name, self.namespace, body)
        return updated["metadata"]["resourceVersion"]


class Clock(Protocol):
    def now(self) -> datetime: ...  # wall time, written into the Lease

    def monotonic(self) -> float: ...  # seconds, for intervals (the renew deadline)

    def wait(self, event: threading.Event, seconds: float) -> bool: ...  # up to ``seconds``; True if ``event`` is set


class SystemClock:
    """The real clock: UTC wall time, ``time.monotonic``, ``Event.wait``."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(seconds)


class LeaderElector:
    """Acquire the Lease (blocking), keep renewing it in a thread, release it on shutdown."""

    def __init__(self, api: LeaseApi, identity: str, timings: Timings, clock: Clock | None = None) -> None:
        self.api, self.identity, self.timings = api, identity, timings
        self.clock: Clock = clock or SystemClock()
        self._seen: tuple[str, datetime] | None = None  # (resourceVersion, first seen at)
        self._lock = threading.Lock()
        self._stop_renewing = threading.Event()
        self._renewer: threading.Thread | None = None
        self._last_renewed = 0.0  # clock.monotonic() before the last successful write

    def _round(self) -> tuple[Decision, bool]:
        """Read, decide, write if the decision says so. Returns (decision, whether we now lead)."""
        now = self.clock.now()
        got = self.api.get()
        observed = None
        if got is not None:
            record, rv = got
            if self._seen is None or self._seen[0] != rv:
                self._seen = (rv, now)
            observed = Observed(record, self._seen[1])
        decision = decide_lease(observed, self.identity, now, self.timings.lease_duration)
        if decision.write is None:
            return decision, False
        started = self.clock.monotonic()
        try:
            rv = self.api.update(decision.write, got[1]) if got is not None else self.api.create(decision.write)
        except LeaseConflict:
            return decision, False
        self._seen = (rv, now)
        self._last_renewed = started
        return decision, True

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process holds the Lease (True) or ``stop`` is set (False)."""
        waiting_for: str | None = None
        last_logged = 0.0
        while not stop.is_set():
            try:
                decision, leading = self._round()
                if leading:
                    log.info("acquired leadership of lease %s as %s (%s)", self._where(), self.identity, decision.reason)
                    return True
                holder = decision.holder or "(lease changed while acquiring)"
                if holder != waiting_for or self.clock.monotonic() - last_logged > 60:
                    log.info("waiting for leader %s (lease %s; standing by, taking over if it stops renewing for %ss)",
                             holder, self._where(), self.timings.lease_duration)
                    waiting_for, last_logged = holder, self.clock.monotonic()
            except Exception as exc:  # the API may be briefly unreachable; keep trying
                log.warning("leader election: cannot read or write lease %s: %s", self._where(), exc)
            self.clock.wait(stop, self.timings.retry_interval)
        return False

    def start_renewing(self, on_lost: Callable[[str], None]) -> None:
        """Renew every D/3 in a daemon thread; call ``on_lost(reason)`` once if leadership is lost."""
        self._renewer = threading.Thread(target=self.keep_renewing, args=(on_lost,), name="lease-renewer", daemon=True)
        self._renewer.start()

    def keep_renewing(self, on_lost: Callable[[str], None]) -> None:
        """Renew every D/3 until ``release()`` or until leadership is lost (then ``on_lost(reason)``)."""
        delay = self.timings.renew_interval
        while not self.clock.wait(self._stop_renewing, delay):
            with self._lock:
                if self._stop_renewing.is_set():
                    return
                problem = ""
                try:
                    decision, renewed = self._round()
                    if renewed and decision.action is Action.RENEW:
                        delay = self.timings.renew_interval
                        continue
                    if decision.action is not Action.RENEW:
                        on_lost(f"lease {self._where()} is no longer mine ({decision.reason})")
                        return
                    problem = "conflict: the lease changed since it was read"
                except Exception as exc:
                    problem = str(exc)
                since = self.clock.monotonic() - self._last_renewed
                if since >= self.timings.renew_deadline:
                    on_lost(f"could not renew lease {self._where()} for {since:.1f}s "
                            f"(renew deadline {self.timings.renew_deadline:.1f}s): {problem}")
                    return
                log.warning("leader election: renewing lease %s failed, retrying: %s", self._where(), problem)
                delay = min(self.timings.retry_interval, self.timings.renew_deadline - since)

    def release(self) -> None:
        """Stop renewing and empty the holder so a follower takes over at its next poll."""
        self._stop_renewing.set()
        with self._lock:
            try:
                got = self.api.get()
                if got is None or got[0].holder != self.identity:
                    return
                now = self.clock.now()
                released = replace(got[0], holder=None, duration_seconds=1, acquire_time=now, renew_time=now)
                self.api.update(released, got[1])
                log.info("released leadership of lease %s", self._where())
            except Exception as exc:  # the follower then takes over when the lease expires
                log.warning("leader election: could not release lease %s: %s", self._where(), exc)

    def _where(self) -> str:
        namespace, name = getattr(self.api, "namespace", ""), getattr(self.api, "name", "")
        return f"{namespace}/{name}" if name else "(lease)"
