"""Support for the progressive-rollout e2e tests (test_rollout.py): traffic, replicas, index state.

``Traffic`` plays the clients of a FaissIndex while a rollout runs: several threads send
``POST /v1/search`` straight to the serving pods (no kube-proxy here: the Service's ready
endpoints, refreshed every second), each with a routing ``key`` — a fresh random one, or
one of a few fixed keys — and record which version answered. A monitor thread polls
every pod's ``GET /v1/status`` in the meantime, so each answer can be attributed to the
exact state its pod was in (stable, candidate, candidate percent, applied pointer
generation): an answer counts for a state only when the pod was seen in that state both
before the request started and after it finished. A pod's state only moves forward (the
pointer generation only grows), so such an answer was served in that state; answers
that straddle a swap are left out instead of guessed.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from hack.localstack import INDEX_BUCKET, Cluster, search
from tests.e2e.helpers import index_status as status

K = 10
GROUP = "faiss.indexops.io"


def route_bucket(key: str) -> int:
    """The routing contract of serving: ``int(sha256(key)) % 100``; the candidate gets buckets < percent."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100


def keys_in_buckets(lo: int, hi: int, count: int, prefix: str = "user") -> list[str]:
    """``count`` stable key names whose bucket is in ``lo..hi-1``."""
    found = [f"{prefix}-{i}" for i in range(10000) if lo <= route_bucket(f"{prefix}-{i}") < hi]
    return found[:count]


@dataclass(frozen=True)
class Answer:
    started: float
    finished: float
    url: str
    key: str
    fixed: bool
    row: int  # the query is queries[row]
    version: str
    role: str
    ids: tuple[int, ...]
    retried: bool = False


@dataclass(frozen=True)
class Failure:
    at: float
    url: str
    key: str
    error: str


@dataclass(frozen=True)
class PodState:
    """What one replica serves: its live snapshot and the pointer generation it fully applied."""

    stable: str | None
    candidate: str | None
    percent: int
    generation: int | None

    def expected(self, key: str) -> str | None:
        return self.candidate if self.candidate and route_bucket(key) < self.percent else self.stable

    @property
    def shape(self) -> tuple[str | None, str | None, int]:
        return self.stable, self.candidate, self.percent


def get_json(url: str, timeout: float = 3.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def replica_status(url: str) -> dict[str, Any]:
    return get_json(f"{url}/v1/status")


def pod_state(body: dict[str, Any]) -> PodState:
    roles = {v["role"]: v["version"] for v in body.get("versions") or []}
    return PodState(roles.get("stable"), roles.get("candidate"), int(body.get("candidatePercent") or 0),
                    body.get("appliedGeneration"))


def metric_value(url: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` on ``url``/metrics whose labels include ``labels``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=3) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


class Traffic:
    """Continuous search traffic against a FaissIndex's serving pods, plus a replica monitor."""

    def __init__(self, cluster: Cluster, namespace: str, service: str, queries: np.ndarray, *, threads: int = 4,
                 fixed_keys: tuple[str, ...] = (), fixed_share: float = 0.2, retry: bool = False,
                 pause: float = 0.005, seed: int = 0):
        self.cluster, self.namespace, self.service = cluster, namespace, service
        self.queries = queries
        self.threads, self.fixed_keys, self.fixed_share = threads, fixed_keys, fixed_share
        self.retry, self.pause, self.seed = retry, pause, seed
        self.answers: list[Answer] = []
        self.failures: list[Failure] = []
        self.retries: list[Failure] = []  # first attempts that failed and were retried on another pod
        self.samples: dict[str, list[tuple[float, float, PodState | None]]] = defaultdict(list)  # url -> (asked, answered, state)
        self.urls: list[str] = []
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    # -- running ---------------------------------------------------------------------------

    def __enter__(self) -> "Traffic":
        self.urls = self.cluster.wait_for("serving endpoints", lambda: self.cluster.service_pod_urls(self.service, self.namespace), 120)
        self._spawn(self._refresh_endpoints)
        self._spawn(self._monitor)
        self.cluster.wait_for("a first status of every pod", lambda: all(self.samples.get(u) for u in self.urls), 30, interval=0.2)
        for i in range(self.threads):
            self._spawn(self._work, self.seed * 1000 + i)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(15)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._workers.append(t)

    def _refresh_endpoints(self) -> None:
        while not self._stop.wait(1.0):
            try:
                urls = self.cluster.service_pod_urls(self.service, self.namespace)
            except Exception:  # noqa: BLE001 - keep the last known endpoints
                continue
            if urls:
                self.urls = urls

    def _monitor(self) -> None:
        while not self._stop.is_set():
            for url in list(self.urls):
                asked = time.monotonic()
                try:
                    state: PodState | None = pod_state(replica_status(url))
                except Exception:  # noqa: BLE001 - a pod going away has no state
                    state = None
                self.samples[url].append((asked, time.monotonic(), state))
            self._stop.wait(0.25)

    def _work(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stop.is_set():
            fixed = bool(self.fixed_keys) and rng.random() < self.fixed_share
            key = rng.choice(self.fixed_keys) if fixed else uuid.uuid4().hex
            row = rng.randrange(len(self.queries))
            urls = list(self.urls)
            url = rng.choice(urls)
            started = time.monotonic()
            try:
                self._record(started, url, key, fixed, row, search(url, self.queries[row:row + 1], k=K, key=key), False)
            except Exception as exc:  # noqa: BLE001 - every failure is what the tests count
                first = Failure(time.monotonic(), url, key, _describe(exc))
                others = [u for u in self.urls if u != url]
                if not (self.retry and others and _retryable(exc)):
                    self.failures.append(first)
                else:
                    self.retries.append(first)
                    again = rng.choice(others)
                    started = time.monotonic()
                    try:
                        self._record(started, again, key, fixed, row, search(again, self.queries[row:row + 1], k=K, key=key), True)
                    except Exception as exc2:  # noqa: BLE001
                        self.failures.append(Failure(time.monotonic(), again, key, _describe(exc2)))
            self._stop.wait(self.pause)

    def _record(self, started: float, url: str, key: str, fixed: bool, row: int, body: dict, retried: bool) -> None:
        self.answers.append(Answer(started, time.monotonic(), url, key, fixed, row, body["version"], body.get("role", ""),
                                   tuple(body["ids"][0]), retried))

    # -- reading what happened --------------------------------------------------------------

    def state_of(self, answer: Answer) -> PodState | None:
        """The state the answering pod was in for the whole request, or None if it may have changed."""
        samples = self.samples.get(answer.url) or []
        answered = [s[1] for s in samples]
        i = bisect.bisect_right(answered, answer.started) - 1  # last status answered before the request started
        if i < 0:
            return None
        before = samples[i][2]
        after = next((s[2] for s in samples[i + 1:] if s[0] >= answer.finished), None)  # first one asked after it ended
        return before if before is not None and before == after else None

    def by_state(self) -> tuple[dict[PodState, list[Answer]], int]:
        """Answers grouped by the state that served them, and how many could not be attributed."""
        groups: dict[PodState, list[Answer]] = defaultdict(list)
        unattributed = 0
        for a in list(self.answers):
            state = self.state_of(a)
            if state is None:
                unattributed += 1
            else:
                groups[state].append(a)
        return groups, unattributed

    def states_seen(self) -> list[tuple[float, str, PodState]]:
        """(first seen, pod url, state) for every distinct state of every pod, in time order."""
        seen: dict[tuple[str, PodState], float] = {}
        for url, samples in list(self.samples.items()):
            for _, answered, state in list(samples):
                if state is not None and (url, state) not in seen:
                    seen[(url, state)] = answered
        return sorted((t, url, s) for (url, s), t in seen.items())

    def wait_answers(self, what: str, predicate, timeout: float = 60) -> None:
        """Wait until ``predicate(answers)`` holds for the answers so far."""
        self.cluster.wait_for(what, lambda: predicate(list(self.answers)), timeout, interval=0.5)


def _retryable(exc: Exception) -> bool:
    """What a client retries on another replica: 503 (draining, no index) and connection errors."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 503
    return isinstance(exc, OSError)  # URLError, connection refused/reset, timeouts


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        try:
            return f"HTTP {exc.code}: {exc.read().decode()[:200]}"
        except Exception:  # noqa: BLE001
            return f"HTTP {exc.code}"
    return f"{type(exc).__name__}: {exc}"


# -- the FaissIndex through kubectl ---------------------------------------------------------


def patch_spec(cluster: Cluster, ns: str, name: str, spec: dict) -> None:
    cluster.kubectl("patch", "faissindex", name, "-n", ns, "--type", "merge", "-p", json.dumps({"spec": spec}))


def annotate(cluster: Cluster, ns: str, name: str, annotation: str) -> str:
    value = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cluster.kubectl("annotate", "faissindex", name, "-n", ns, "--overwrite", f"{GROUP}/{annotation}={value}")
    return value


def condition(st: dict, ctype: str) -> dict:
    return next((c for c in st.get("conditions", []) if c["type"] == ctype), {})


def ready(st: dict) -> bool:
    return condition(st, "Ready").get("status") == "True"


def wait_status(cluster: Cluster, ns: str, name: str, what: str, predicate, timeout: float = 240) -> dict:
    def check():
        st = status(cluster, ns, name)
        return st if predicate(st) else None

    return cluster.wait_for(f"{ns}/{name}: {what}", check, timeout, interval=1)


def wait_candidate(cluster: Cluster, ns: str, name: str, not_in: tuple[str, ...], timeout: float = 300) -> str:
    st = wait_status(cluster, ns, name, "a new candidate", lambda s: s.get("candidateVersion") not in (None, *not_in), timeout)
    return st["candidateVersion"]


def events(cluster: Cluster, ns: str, name: str, reason: str | None = None) -> list[dict]:
    items = cluster.events(ns, name)
    items = [e for e in items if e["involvedObject"].get("kind") == "FaissIndex" and reason in (None, e["reason"])]
    return sorted(items, key=lambda e: e.get("firstTimestamp") or e["metadata"]["creationTimestamp"])


def wait_event(cluster: Cluster, ns: str, name: str, reason: str, contains: str = "", timeout: float = 240) -> dict:
    found = cluster.wait_for(f"{ns}/{name}: Event {reason} {contains!r}",
                             lambda: [e for e in events(cluster, ns, name, reason) if contains in e["message"]], timeout)
    return found[0]


def serving_pods(cluster: Cluster, ns: str, name: str) -> list[dict]:
    items = cluster.get_json("pods", "-n", ns, "-l", f"{GROUP}/index={name},app.kubernetes.io/component=serving")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def replica_states(cluster: Cluster, ns: str, name: str) -> dict[str, PodState]:
    """pod name -> what it serves, for every running serving pod (each must answer)."""
    pods = [p for p in serving_pods(cluster, ns, name) if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
    return {p["metadata"]["name"]: pod_state(replica_status(pod_url(p))) for p in pods}


def pod_url(pod: dict) -> str:
    return f"http://{pod['status']['podIP']}:8080"


def wait_replicas(cluster: Cluster, ns: str, name: str, shape: tuple, count: int, timeout: float = 120) -> dict[str, PodState]:
    """Wait until exactly ``count`` replicas serve ``shape`` (stable, candidate, candidate percent)."""

    def check():
        states = replica_states(cluster, ns, name)
        return states if len(states) == count and all(s.shape == shape for s in states.values()) else None

    return cluster.wait_for(f"{count} replicas serving {shape}", check, timeout, interval=1)


def read_pointer(cluster: Cluster, ns: str, name: str) -> dict:
    body = cluster.s3().get_object(Bucket=INDEX_BUCKET, Key=f"faiss-indexes/{ns}/{name}/6h/pointer.json")["Body"].read()
    return json.loads(body)
