"""Retrying an idempotent search on another serving replica (issue 17 item 6)."""

from __future__ import annotations

import pytest

from faissctl.search_client import NoReplicaAnswered, ReplicaSearch

A, B, C = "http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"


class Replicas:
    """Each URL answers as told: an int status, or an exception to raise."""

    def __init__(self, **behaviour):
        self.behaviour, self.calls = behaviour, []

    def __call__(self, url: str, body: bytes, timeout: float):
        host = url.split("//")[1].split(":")[0]
        self.calls.append(host)
        outcome = self.behaviour[host]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome, b'{"results": []}'


def hosts(*urls):
    return {u.split("//")[1].split(":")[0]: None for u in urls}


def test_a_killed_replica_s_refused_connection_is_retried_on_the_next_one():
    post = Replicas(**{"10.0.0.1": ConnectionRefusedError("refused"), "10.0.0.2": 200, "10.0.0.3": 200})
    answer = ReplicaSearch([A, B, C], post).search(b"{}")
    assert (answer.status, answer.url) == (200, B)
    assert answer.tried == [f"{A}: refused"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_replica_that_is_not_ready_is_skipped(status):
    post = Replicas(**{"10.0.0.1": status, "10.0.0.2": 200, "10.0.0.3": 200})
    assert ReplicaSearch([A, B, C], post).search(b"{}").url == B


def test_a_client_error_is_returned_not_retried():
    post = Replicas(**{"10.0.0.1": 400, "10.0.0.2": 200, "10.0.0.3": 200})
    answer = ReplicaSearch([A, B, C], post).search(b"{}")
    assert answer.status == 400 and post.calls == ["10.0.0.1"]


def test_requests_are_spread_round_robin():
    post = Replicas(**{"10.0.0.1": 200, "10.0.0.2": 200, "10.0.0.3": 200})
    client = ReplicaSearch([A, B, C], post)
    assert [client.search(b"{}").url for _ in range(4)] == [A, B, C, A]


def test_when_no_replica_answers_the_error_names_each_and_why():
    post = Replicas(**{"10.0.0.1": TimeoutError("timed out"), "10.0.0.2": 503, "10.0.0.3": ConnectionResetError("reset")})
    with pytest.raises(NoReplicaAnswered) as info:
        ReplicaSearch([A, B, C], post).search(b"{}")
    assert str(info.value) == f"no serving replica answered: {A}: timed out; {B}: HTTP 503; {C}: reset"


def test_attempts_bound_the_retries():
    post = Replicas(**{"10.0.0.1": 503, "10.0.0.2": 503, "10.0.0.3": 200})
    with pytest.raises(NoReplicaAnswered):
        ReplicaSearch([A, B, C], post, attempts=2).search(b"{}")
    assert post.calls == ["10.0.0.1", "10.0.0.2"]


def test_the_total_deadline_stops_retrying():
    now = [0.0]

    def slow(url, body, timeout):
        now[0] += 6.0
        raise TimeoutError("timed out")

    with pytest.raises(NoReplicaAnswered, match="deadline passed"):
        ReplicaSearch([A, B, C], slow, deadline=10.0, clock=lambda: now[0]).search(b"{}")


def test_faissctl_query_answers_from_the_next_replica_when_the_first_was_killed():
    from faissctl_fakes import V3, FakeKube, index, invoke, make_app, serving_status

    kube = FakeKube(endpoints=[A, B]).add(index(status=serving_status()))
    sent: list[str] = []

    def post(url, body, timeout):
        sent.append(url)
        if url.startswith(A):
            raise ConnectionRefusedError("connection refused")
        return 200, b'{"version": "%s", "role": "stable", "ids": [[7, 3]], "distances": [[0.0, 1.5]]}' % V3.encode()

    result = invoke(make_app(kube, http_post=post), "query", "weather", "--vector", "0.1,0.2", "-k", "2")
    assert result.exit_code == 0, result.stderr
    assert sent == [A + "/v1/search", B + "/v1/search"]
    assert f"answered by {B}: version {V3} (stable)" in result.stdout and "7\t0" in result.stdout
    assert f"retried on another replica: {A}: connection refused" in result.stderr
