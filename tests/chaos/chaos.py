"""What every chaos scenario shares: a bounded query loop, fault injectors, and the four checks.

Each scenario injects one fault into the real local stack while ``QueryLoop`` searches the
index's serving pods (through ``faissctl.search_client``, which retries an idempotent
search on another replica), then asserts the four promises of issue 17:

1. 0 wrong-version answers: every answer came from a version the operator promoted
   (seen as ``currentVersion`` or ``candidateVersion`` by the status monitor);
2. 0 lost builds: the newest version published for the spec's build key serves or is the
   candidate (``assert_no_lost_build``);
3. convergence within a stated time (each scenario's ``CONVERGE_SECONDS``);
4. a readable reason for every failure: every failed build in status and every
   ``BuildFailed`` Event has a message that is not a JSON log line.

Faults are injected as an operator of the product meets them: processes are SIGKILLed or
SIGSTOPped through the dev node agent's ``localprocess://PID`` container ids and the
stack's pid files; pods are deleted or evicted through the API.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from faissctl.bench import http_post  # the chaos query loops post like faissctl does
from faissctl.search_client import NoReplicaAnswered, ReplicaSearch
from hack.localstack import INDEX_BUCKET, Cluster, stack_dir
from hack.stack.stackconf import StackPaths
from tests.e2e.helpers import builds, cond, index_events, index_status, s3_keys

ROOT = Path(__file__).resolve().parents[2]

GROUP = "faiss.indexops.io"
STORAGE_PREFIX = "faiss-indexes"




# -- the query loop ---------------------------------------------------------------------------


@dataclass
class Tally:
    answers: dict[str, int] = field(default_factory=dict)  # version -> answers
    failures: list[str] = field(default_factory=list)  # why each failed query failed
    retried: int = 0
    promoted: set[str] = field(default_factory=set)  # every currentVersion / candidateVersion seen

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)

    def wrong(self) -> dict[str, int]:
        return {v: n for v, n in self.answers.items() if v not in self.promoted}


class QueryLoop:
    """Searches the index's serving pods from two threads until stopped; monitors status for promoted versions.

    Bounded: at most ``max_queries`` queries and ``max_seconds`` seconds.
    """

    def __init__(self, cluster: Cluster, ns: str, name: str, dimension: int, *, max_seconds: float = 600,
                 max_queries: int = 200_000, threads: int = 2):
        self.cluster, self.ns, self.name, self.dim = cluster, ns, name, dimension
        self.max_seconds, self.max_queries, self.threads = max_seconds, max_queries, threads
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._urls: list[str] = []
        self._workers: list[threading.Thread] = []

    def __enter__(self) -> "QueryLoop":
        self._observe()
        self._spawn(self._monitor)
        for seed in range(self.threads):
            self._spawn(self._query, seed)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)
        self._observe()

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._workers.append(t)

    def _observe(self) -> None:
        try:
            st = index_status(self.cluster, self.ns, self.name)
            urls = self.cluster.service_pod_urls(f"{self.name}-serving", self.ns)
        except Exception:  # the API server may be down: keep the last view
            return
        # promoted: seen serving or as the candidate, or a build that passed its gates (status
        # history: a version current for less than a monitor tick is still recorded there)
        passed = {b.get("version") for b in builds(st) if b.get("result") == "Succeeded"}
        with self._lock:
            self.tally.promoted |= {v for v in (st.get("currentVersion"), st.get("candidateVersion"), st.get("lastGoodVersion"))
                                    if v} | {v for v in passed if v}
            if urls:
                self._urls = urls

    def _monitor(self) -> None:
        while not self._stop.wait(0.5):
            self._observe()

    def _query(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < self.max_seconds:
            with self._lock:
                urls, done = list(self._urls), self.tally.total
            if done >= self.max_queries:
                return
            if not urls:
                time.sleep(0.2)
                continue
            body = json.dumps({"vectors": [rng.normal(size=self.dim).round(4).tolist()], "k": 5,
                               "key": f"q{rng.integers(1 << 30)}"}).encode()
            try:
                answer = ReplicaSearch(urls, http_post, timeout=3, attempts=3, deadline=8).search(body)
            except NoReplicaAnswered as exc:
                self._record(None, str(exc), False)
                continue
            if answer.status != 200:
                self._record(None, f"HTTP {answer.status}: {answer.body[:200]!r}", bool(answer.tried))
                continue
            self._record(json.loads(answer.body)["version"], None, bool(answer.tried))
            time.sleep(0.02)

    def _record(self, version: str | None, failure: str | None, retried: bool) -> None:
        with self._lock:
            if version is not None:
                self.tally.answers[version] = self.tally.answers.get(version, 0) + 1
            else:
                self.tally.failures.append(failure or "?")
            self.tally.retried += retried

    def wait_answers(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sum(self.tally.answers.values()) >= count:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the query loop got fewer than {count} answers in {timeout}s: {self.tally}")


# -- the four checks ---------------------------------------------------------------------------


def assert_no_wrong_version(tally: Tally, allowed_failures: int = 0) -> None:
    assert tally.answers, f"the query loop got no answer at all: {tally.failures[:3]}"
    assert tally.wrong() == {}, f"answers from versions never promoted: {tally.wrong()} (promoted: {sorted(tally.promoted)})"
    assert len(tally.failures) <= allowed_failures, (
        f"{len(tally.failures)} of {tally.total} queries failed (allowed {allowed_failures}); first: {tally.failures[:3]}")


def published_versions(cluster: Cluster, ns: str, name: str, horizon: str = "6h") -> dict[str, dict]:
    """Versions with a manifest in storage, and the manifest."""
    root = f"{STORAGE_PREFIX}/{ns}/{name}/{horizon}/versions/"
    s3 = cluster.s3()
    found = {}
    for key in s3_keys(cluster, root):
        if key.endswith("/manifest.json"):
            found[key[len(root):].split("/", 1)[0]] = json.loads(s3.get_object(Bucket=INDEX_BUCKET, Key=key)["Body"].read())
    return found


def assert_no_lost_build(cluster: Cluster, ns: str, name: str) -> dict:
    """The newest published version of the current build key serves or is the candidate."""
    st = index_status(cluster, ns, name)
    key = (st.get("lastBuild") or {}).get("buildKey")
    mine = sorted(v for v, m in published_versions(cluster, ns, name).items() if m.get("buildKey") == key)
    assert mine, f"nothing published for build key {key}: {st.get('lastBuild')}"
    assert mine[-1] in (st.get("currentVersion"), st.get("candidateVersion")), (
        f"published {mine[-1]} is neither serving ({st.get('currentVersion')}) nor the candidate ({st.get('candidateVersion')}); "
        f"builds: {[(b.get('number'), b.get('result'), b.get('reason'), b.get('message')) for b in builds(st)]}")
    return st


def readable(message: str | None) -> bool:
    return bool(message) and "{" not in message and '"level"' not in message


def assert_every_failure_is_readable(cluster: Cluster, ns: str, name: str) -> None:
    st = index_status(cluster, ns, name)
    for b in builds(st):
        if b.get("result") in ("Failed", "ValidationFailed"):
            assert readable(b.get("message")), f"build {b.get('number')} failed without a readable reason: {b}"
    for c in st.get("conditions", []):
        if c["status"] == "True" and c["type"] in ("Degraded", "Stalled"):
            assert readable(c.get("message")), f"{c['type']} without a readable reason: {c}"
    for e in index_events(cluster, ns, name, "BuildFailed"):
        assert readable(e.get("message")), f"BuildFailed Event without a readable reason: {e['message']}"


def wait_converged(cluster: Cluster, ns: str, name: str, seconds: float, what: str = "Ready with nothing building") -> dict:
    """Ready=True, no build running and no Degraded condition, within ``seconds`` (the stated bound)."""
    def done():
        st = index_status(cluster, ns, name)
        last = st.get("lastBuild") or {}
        ok = (cond(st, "Ready").get("status") == "True" and last.get("result") not in (None, "Running")
              and cond(st, "Degraded").get("status") != "True")
        return st if ok else None

    return cluster.wait_for(f"{ns}/{name} converged ({what})", done, seconds, interval=1)


# -- fault injectors ------------------------------------------------------------------------------


def pod_pid(pod: dict) -> int | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        cid = cs.get("containerID") or ""
        if cid.startswith("localprocess://") and "running" in (cs.get("state") or {}):
            return int(cid.removeprefix("localprocess://"))
    return None


def builder_pods(cluster: Cluster, ns: str, name: str) -> list[dict]:
    return cluster.get_json("pods", "-n", ns, "-l", f"{GROUP}/index={name},app.kubernetes.io/component=builder")["items"]


def running_builder(cluster: Cluster, ns: str, name: str, timeout: float = 120) -> tuple[dict, int]:
    def find():
        for pod in builder_pods(cluster, ns, name):
            pid = pod_pid(pod)
            if pid and not pod["metadata"].get("deletionTimestamp"):
                return pod, pid
        return None

    return cluster.wait_for(f"a running builder pod of {ns}/{name}", find, timeout, interval=0.3)


def stack_pid(component: str) -> int:
    """The pid of a stack component (moto-s3, kube-apiserver, ...) from the stack's pid files."""
    return int(StackPaths(stack_dir()).pidfile(component).read_text().split()[0])


@contextmanager
def stopped(pid: int, what: str) -> Iterator[None]:
    """SIGSTOP ``pid`` for the block (a hung process: connections accepted, nothing answered)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def evict(cluster: Cluster, ns: str, pod: str) -> None:
    """The Eviction API, as a node drain uses it (sets the DisruptionTarget condition)."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": ns}}
    cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction", "-f", "-", input=json.dumps(body))


def metric(url: str, metric_name: str, **labels: str) -> float | None:
    """One sample of ``metric_name`` with these labels from a /metrics page (None: not exported)."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(metric_name + ("{" if labels else " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def kill_after_commit(cluster: Cluster, ns: str, name: str, pid: int, version_prefix: str, timeout: float = 180) -> bool:
    """SIGKILL the builder right after it wrote ``manifest.json`` (True) or report it exited first (False).

    The builder is paused (SIGSTOP) while storage is checked, so when the manifest is seen
    the process cannot have exited yet: the kill lands between the commit and the exit.
    """
    s3 = cluster.s3()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        listing = s3.list_objects_v2(Bucket=INDEX_BUCKET, Prefix=version_prefix)
        if any(o["Key"].endswith("/manifest.json") for o in listing.get("Contents", [])):
            os.killpg(os.getpgid(pid), signal.SIGKILL) if _has_group(pid) else os.kill(pid, signal.SIGKILL)
            return True
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.03)
    raise AssertionError(f"builder {pid} did not publish within {timeout}s")


def _has_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def job_of(pod: dict) -> str:
    return pod["metadata"]["labels"]["job-name"]


def describe(st: dict) -> str:
    return "; ".join(f"{c['type']}={c['status']} {c.get('reason')}: {c.get('message', '')[:160]}" for c in st.get("conditions", []))


def manifests_under(cluster: Cluster, prefix: str) -> list[str]:
    return [k for k in s3_keys(cluster, prefix) if k.endswith("manifest.json")]


def any_overlap(samples: list[tuple[float, list[str]]]) -> list[tuple[float, list[str]]]:
    return [(t, pods) for t, pods in samples if len(pods) > 1]


def running_builder_pods(cluster: Cluster, ns: str, name: str) -> list[str]:
    """Builder pods whose process is alive (running, or terminating but not yet exited)."""
    return [p["metadata"]["name"] for p in builder_pods(cluster, ns, name) if pod_pid(p)]


