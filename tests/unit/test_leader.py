"""Leader election: the pure Lease decision as a table, the elector against an in-memory Lease."""

from __future__ import annotations

import subprocess
import threading
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from faiss_operator.config import OperatorConfig
from faiss_operator.leader import (
    Action,
    LeaderElector,
    LeaseConflict,
    LeaseRecord,
    Observed,
    Timings,
    decide_lease,
    new_identity,
)
from faiss_operator.permissions import LEADER_ELECTION, REQUIRED

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
D = 15
CHART = Path(__file__).resolve().parents[2] / "charts" / "faiss-operator"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def held(holder: str | None, seen: float = 0, duration: int | None = D, transitions: int = 3) -> Observed:
    return Observed(LeaseRecord(holder, duration, at(-100), at(seen), transitions), seen_at=at(seen))


# (case, observed lease, now in seconds after T0, expected action, expected holder to write, transitions written)
TABLE = [
    ("no lease yet: create it and lead", None, 0, Action.ACQUIRE, "me", 0),
    ("I hold it: renew", held("me"), 5, Action.RENEW, "me", 3),
    ("I hold it, even past my own expiry: renew (the write's resourceVersion decides)", held("me"), 60, Action.RENEW, "me", 3),
    ("another holder renewed recently: stand by", held("other"), 5, Action.STAND_BY, None, None),
    ("another holder, just before its duration ends: stand by", held("other"), D - 0.001, Action.STAND_BY, None, None),
    ("another holder, not renewed for the whole duration: take over", held("other"), D, Action.ACQUIRE, "me", 4),
    ("released (holder empty): take over at once", held(None, duration=1), 0.1, Action.ACQUIRE, "me", 4),
    ("released (holder empty string): take over at once", held("", duration=1), 0.1, Action.ACQUIRE, "me", 4),
    ("the holder's own longer duration is honoured", held("other", duration=60), 30, Action.STAND_BY, None, None),
    ("a lease without a duration expires after mine", held("other", duration=None), D, Action.ACQUIRE, "me", 4),
]


@pytest.mark.parametrize("case, observed, now, action, writes_holder, transitions", TABLE, ids=[row[0] for row in TABLE])
def test_the_lease_decision(case, observed, now, action, writes_holder, transitions):
    decision = decide_lease(observed, "me", at(now), D)
    assert decision.action is action
    if writes_holder is None:
        assert decision.write is None and decision.holder == observed.record.holder
    else:
        assert decision.write.holder == writes_holder
        assert decision.write.transitions == transitions
        assert decision.write.renew_time == at(now) and decision.write.duration_seconds == D


def test_expiry_counts_from_when_this_process_first_saw_the_record_not_the_holders_clock():
    # The holder's renewTime claims an hour ago (its clock is behind), but we saw this
    # version of the record only 5 s ago: it is not expired.
    skewed = Observed(LeaseRecord("other", D, at(-3600), at(-3600), 1), seen_at=at(-5))
    decision = decide_lease(skewed, "me", at(0), D)
    assert decision.action is Action.STAND_BY and decision.expires_at == at(D - 5)


def test_taking_over_resets_the_acquire_time_and_renewing_keeps_it():
    taken = decide_lease(held("other"), "me", at(D), D).write
    assert taken.acquire_time == at(D)
    renewed = decide_lease(held("me"), "me", at(5), D).write
    assert renewed.acquire_time == at(-100)


def test_timings_leave_a_third_of_the_lease_between_the_leader_giving_up_and_a_takeover():
    t = Timings(15)
    assert (t.renew_interval, t.renew_deadline, t.retry_interval) == (5, 10, 3)
    assert t.lease_duration - t.renew_deadline == 5
    assert Timings(3).retry_interval == 1
    with pytest.raises(ValueError):
        Timings(2)


def test_identities_are_the_pod_name_plus_a_random_suffix():
    a, b = new_identity("faiss-operator-abc"), new_identity("faiss-operator-abc")
    assert a.startswith("faiss-operator-abc_") and b.startswith("faiss-operator-abc_") and a != b


def test_election_settings_come_from_the_environment_with_safe_defaults():
    default = OperatorConfig.from_env({"POD_NAME": "op-1"})
    assert default.leader_election is True and default.lease_duration_seconds == 15 and default.pod_name == "op-1"
    env = {
        "FAISS_OPERATOR_LEADER_ELECTION": "false", "FAISS_OPERATOR_LEASE_NAME": "x-leader",
        "FAISS_OPERATOR_LEASE_DURATION_SECONDS": "8", "POD_NAMESPACE": "faiss-system",
    }
    config = OperatorConfig.from_env(env)
    assert (config.leader_election, config.lease_name, config.lease_namespace, config.lease_duration_seconds) == (
        False, "x-leader", "faiss-system", 8)
    with pytest.raises(ValueError):
        OperatorConfig.from_env({"FAISS_OPERATOR_LEADER_ELECTION": "maybe"})


# -- the elector against an in-memory Lease with resourceVersion semantics -------------


class MemoryLease:
    """One Lease; writes with a stale resourceVersion conflict, like the API server's."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.fail = False
        self.lock = threading.Lock()

    def get(self):
        if self.fail:
            raise ConnectionError("API server unreachable")
        with self.lock:
            return None if self.record is None else (self.record, str(self.version))

    def create(self, record):
        with self.lock:
            if self.record is not None:
                raise LeaseConflict("already exists")
            self.record, self.version = record, self.version + 1
            return str(self.version)

    def update(self, record, resource_version):
        if self.fail:
            raise ConnectionError("API server unreachable")
        with self.lock:
            if resource_version != str(self.version):
                raise LeaseConflict("stale resourceVersion")
            self.record, self.version = record, self.version + 1
            return str(self.version)


class FakeClock:
    """Time that moves only when the elector waits: each wait jumps to its deadline (or to the
    next scheduled event, which may set the awaited event), so no test sleeps or races a thread."""

    def __init__(self) -> None:
        self.t = 0.0
        self.scheduled: list[tuple[float, object]] = []

    def now(self) -> datetime:
        return at(self.t)

    def monotonic(self) -> float:
        return self.t

    def at(self, seconds: float, action) -> None:
        self.scheduled.append((seconds, action))
        self.scheduled.sort(key=lambda item: item[0])

    def wait(self, event: threading.Event, seconds: float) -> bool:
        deadline = self.t + seconds
        while not event.is_set() and self.scheduled and self.scheduled[0][0] <= deadline:
            when, action = self.scheduled.pop(0)
            self.t = max(self.t, when)
            action()
        if not event.is_set():
            self.t = deadline
        return event.is_set()


def elector(lease: MemoryLease, identity: str, clock: FakeClock) -> LeaderElector:
    return LeaderElector(lease, identity, Timings(3), clock)  # D = 3: renew 1 s, deadline 2 s, poll 1 s


def test_of_two_candidates_exactly_one_leads_and_the_other_waits_for_it():
    lease, clock = MemoryLease(), FakeClock()
    first, second = elector(lease, "a", clock), elector(lease, "b", clock)
    assert first.acquire(threading.Event())
    give_up = threading.Event()
    clock.at(2.9, give_up.set)  # just before the 3 s lease could expire
    assert second.acquire(give_up) is False
    assert lease.record.holder == "a" and clock.t == 2.9


def test_a_released_lease_is_taken_by_the_waiting_candidate_at_its_next_poll():
    lease, clock = MemoryLease(), FakeClock()
    leader, follower = elector(lease, "a", clock), elector(lease, "b", clock)
    assert leader.acquire(threading.Event())
    clock.at(0.2, leader.release)
    assert follower.acquire(threading.Event())
    assert clock.t == 1.0  # the first poll after the release (retry interval 1 s), not the 3 s expiry
    assert lease.record.holder == "b" and lease.record.transitions == 1


def test_a_follower_takes_over_a_lease_not_renewed_for_its_duration_on_its_own_clock():
    lease, clock = MemoryLease(), FakeClock()
    assert elector(lease, "a", clock).acquire(threading.Event())  # and then never renews
    clock.t = 0.5
    assert elector(lease, "b", clock).acquire(threading.Event())
    assert clock.t == 3.5  # first seen at 0.5 s, polled every second, expired D = 3 s later
    assert lease.record.holder == "b" and lease.record.acquire_time == at(3.5)


def test_a_candidate_that_loses_the_write_race_does_not_lead():
    lease, clock = MemoryLease(), FakeClock()
    loser = elector(lease, "b", clock)
    original_create = lease.create

    def someone_else_first(record):
        original_create(replace(record, holder="a"))
        return original_create(record)  # now conflicts

    lease.create = someone_else_first
    give_up = threading.Event()
    clock.at(2.5, give_up.set)
    assert loser.acquire(give_up) is False and lease.record.holder == "a"


def test_a_leader_that_cannot_renew_gives_up_before_anyone_may_take_over():
    lease, clock = MemoryLease(), FakeClock()
    leader = elector(lease, "a", clock)
    assert leader.acquire(threading.Event())
    lost: list[tuple[str, float]] = []
    lease.fail = True
    leader.keep_renewing(lambda reason: lost.append((reason, clock.t)))
    [(reason, after)] = lost
    assert "could not renew" in reason and "API server unreachable" in reason
    assert after == 2.0  # the renew deadline 2D/3, a third of the lease before a follower may take over at 3 s


def test_a_leader_whose_lease_was_taken_gives_up_at_its_next_renewal():
    lease, clock = MemoryLease(), FakeClock()
    leader = elector(lease, "a", clock)
    assert leader.acquire(threading.Event())
    lease.update(replace(lease.record, holder="intruder"), str(lease.version))
    lost: list[tuple[str, float]] = []
    leader.keep_renewing(lambda reason: lost.append((reason, clock.t)))
    [(reason, after)] = lost
    assert "no longer mine" in reason and "intruder holds the lease" in reason
    assert after == 1.0  # the first renewal, D/3


def test_a_leader_keeps_renewing_while_the_api_answers_and_empties_the_holder_on_release():
    lease, clock = MemoryLease(), FakeClock()
    leader = elector(lease, "a", clock)
    assert leader.acquire(threading.Event())
    before = lease.version
    lost: list[str] = []
    clock.at(3.5, leader.release)  # past the lease duration: only renewals kept it
    leader.keep_renewing(lost.append)
    assert lost == [] and lease.version == before + 3 + 1  # renewed at 1, 2, 3 s, then released
    assert lease.record.holder is None and lease.record.duration_seconds == 1
    assert lease.record.renew_time == at(3.5)


def test_the_renewer_thread_runs_the_same_loop_on_the_system_clock():
    lease = MemoryLease()
    leader = LeaderElector(lease, "a", Timings(3))
    assert leader.acquire(threading.Event())
    leader.start_renewing(lambda reason: None)
    leader.release()
    leader._renewer.join(5)
    assert not leader._renewer.is_alive() and lease.record.holder is None


# -- the chart grants exactly these Lease calls, only in the release namespace ----------


def test_the_chart_grants_lease_access_by_a_namespaced_role_not_the_cluster_role(helm):
    done = subprocess.run([helm, "template", "rel", str(CHART), "-n", "faiss-system",
                           "--show-only", "templates/rbac-leader-election.yaml"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    role = next(d for d in docs if d["kind"] == "Role")
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "faiss-system"  # .Release.Namespace
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    granted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] |= set(rule["verbs"])
        if set(rule["verbs"]) & {"get", "update"}:
            assert rule.get("resourceNames") == [f"{role['metadata']['name'].removesuffix('-leader-election')}-leader"], (
                "get/update must be limited to the one Lease")
    assert {k: frozenset(v) for k, v in granted.items()} == LEADER_ELECTION
    assert not set(LEADER_ELECTION) & set(REQUIRED)
    off = subprocess.run([helm, "template", "rel", str(CHART), "-n", "faiss-system", "--set", "leaderElection.enabled=false", "--set", "replicaCount=1",
                          "--show-only", "templates/rbac-leader-election.yaml"], capture_output=True, text=True, timeout=120)
    assert off.returncode != 0 and "could not find template" in off.stderr  # nothing rendered when election is off
