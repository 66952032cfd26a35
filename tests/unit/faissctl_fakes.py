"""Fakes for the faissctl unit tests: a cluster, a store and a clock behind faissctl's interfaces."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from click.testing import CliRunner, Result

from faissctl.app import App, StorageLocation
from faissctl.cli import cli
from faissctl.errors import CtlError, not_found
from faissctl.kube import KubeOptions
from indexops_api.manifest import CheckResult, FileEntry, Manifest, Measurements, SourceFingerprint, Timings
from indexops_store.s3 import StorageError, VersionListing

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone.utc)
V1, V2, V3, V4 = ("20261120T000000Z-aaaaaaaa", "20261120T060000Z-bbbbbbbb", "20261121T000000Z-cccccccc",
                  "20261121T060000Z-dddddddd")
SHA = "0" * 64


def index(name: str = "weather", namespace: str = "default", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = {
        "horizon": "6h", "dimension": 8, "indexType": "HNSW",
        "source": {"s3": {"bucket": "emb", "key": "e.npy"}},
        "storage": {"bucket": "idx", "prefix": "faiss-indexes", "endpoint": "http://s3.local:9000"},
        "validation": {"minRecall": 0.9, "k": 10},
    }
    body.update(spec)
    return {
        "apiVersion": "faiss.indexops.io/v1alpha1", "kind": "FaissIndex",
        "metadata": {"name": name, "namespace": namespace, "generation": 2, "creationTimestamp": "2026-11-20T00:00:00Z",
                     "annotations": {}},
        "spec": body, "status": status if status is not None else {},
    }


def serving_status(**overrides: Any) -> dict[str, Any]:
    st = {
        "observedGeneration": 2, "phase": "Serving", "currentVersion": V3, "lastGoodVersion": V3,
        "servingSince": "2026-11-21T00:05:00Z", "recall": 0.9935, "p99LatencyMs": 0.412, "vectors": 4000,
        "sizeBytes": 1_258_291, "rolloutPercent": 100, "buildCount": 3, "consecutiveFailures": 0,
        "nextScheduledBuild": "2026-11-21T18:00:00Z", "storedVersions": 3,
        "lastBuild": {"job": "weather-build-cccccccc-3", "version": V3, "buildKey": "c" * 64, "result": "Succeeded",
                      "number": 3, "trigger": "Schedule", "startTime": "2026-11-21T00:00:00Z",
                      "completionTime": "2026-11-21T00:04:10Z"},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Serving", "message": f"version {V3} serving on 1 replica(s)",
             "lastTransitionTime": "2026-11-21T00:05:00Z"},
            {"type": "Progressing", "status": "False", "reason": "Idle", "message": "nothing to build or roll out",
             "lastTransitionTime": "2026-11-21T00:05:00Z"},
            {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "",
             "lastTransitionTime": "2026-11-21T00:05:00Z"},
            {"type": "Stalled", "status": "False", "reason": "AsExpected", "message": "",
             "lastTransitionTime": "2026-11-20T00:05:00Z"},
        ],
    }
    st.update(overrides)
    return st


@dataclass
class FakeKube:
    """``faissctl.kube.Kube`` in memory; ``patches`` records every merge patch."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    namespace: str = "default"
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail: CtlError | None = None
    on_get: Any = None  # called with the object before each get (to move a status along)
    endpoints: list[str] = field(default_factory=list)
    proxied: list[bytes] = field(default_factory=list)

    def add(self, obj: dict[str, Any]) -> "FakeKube":
        self.objects[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return self

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def get_index(self, namespace: str, name: str) -> dict[str, Any]:
        self._check()
        if (namespace, name) not in self.objects:
            raise not_found(f"get faissindex {name}: FaissIndex {name!r} not found in namespace {namespace!r}")
        obj = self.objects[(namespace, name)]
        if self.on_get is not None:
            self.on_get(obj)
        return copy.deepcopy(obj)

    def list_indexes(self, namespace: str | None) -> list[dict[str, Any]]:
        self._check()
        return [copy.deepcopy(o) for (ns, _), o in self.objects.items() if namespace is None or ns == namespace]

    def patch_index(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._check()
        self.patches.append((namespace, name, patch))
        obj = self.objects[(namespace, name)]
        _merge(obj, patch)
        return copy.deepcopy(obj)

    def list_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return list(self.events)

    def service_endpoints(self, namespace: str, service: str, port_name: str) -> list[str]:
        return list(self.endpoints)

    def proxy_post(self, namespace: str, service: str, port_name: str, path: str, body: bytes) -> tuple[int, bytes]:
        self.proxied.append(body)
        return 200, b'{"version": "%s", "role": "stable", "ids": [[1]], "distances": [[0.0]]}' % V3.encode()


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            child = target.setdefault(key, {})
            _merge(child, value)
        else:
            target[key] = value


def manifest(version: str, recall: float = 0.97, vectors: int = 4000, p99: float = 0.4, checks_pass: bool = True) -> Manifest:
    return Manifest(
        index="weather", namespace="default", horizon="6h", version=version, build_key="k" * 64,
        created_at=f"{version[:4]}-{version[4:6]}-{version[6:8]}T{version[9:11]}:{version[11:13]}:{version[13:15]}Z",
        index_type="HNSW", metric="L2", dimension=8, vectors=vectors, parameters={"m": 32}, search_parameters={"efSearch": 64},
        files=[FileEntry(name="index.faiss", size=1000, sha256=SHA), FileEntry(name="ids.npy", size=200, sha256=SHA)],
        index_file="index.faiss", ids_file="ids.npy", size_bytes=1200,
        source=SourceFingerprint(uri="s3://emb/e.npy", count=vectors),
        measurements=Measurements(recall_at_k=recall, k=10, queries=200, latency_p50_ms=0.1, latency_p95_ms=0.2, latency_p99_ms=p99),
        timings=Timings(load_seconds=0, train_seconds=0, add_seconds=1, validate_seconds=1, total_seconds=2),
        faiss_version="1.9.0", builder_version="0.1.0",
        checks=[CheckResult(name="ids-unique", passed=checks_pass, detail="" if checks_pass else "2 duplicate ids")],
    )


@dataclass
class FakeStore:
    """``faissctl.app.Store``: listings and manifests by version."""

    manifests: dict[str, Manifest | str] = field(default_factory=dict)  # str: the read fails with that message
    incomplete: list[str] = field(default_factory=list)
    bucket: str = "idx"
    opened: list[StorageLocation] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)

    def list_versions(self, index_prefix: str) -> dict[str, VersionListing]:
        self.prefixes.append(index_prefix)
        out = {v: VersionListing(v, {"manifest.json": 300, "index.faiss": 1000, "ids.npy": 200}, NOW - timedelta(hours=1))
               for v in self.manifests}
        out.update({v: VersionListing(v, {"index.faiss": 1000}, NOW) for v in self.incomplete})
        return dict(sorted(out.items()))

    def read_manifest(self, key: str) -> Manifest:
        version = key.split("/")[-2]
        m = self.manifests[version]
        if isinstance(m, str):
            raise StorageError(m)
        return m


@dataclass
class Clock:
    now: datetime = NOW
    slept: float = 0.0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += timedelta(seconds=seconds)


def make_app(kube: FakeKube | None = None, store: FakeStore | None = None, clock: Clock | None = None,
             http_post: Any = None) -> App:
    kube = kube if kube is not None else FakeKube()
    store = store if store is not None else FakeStore()
    clock = clock or Clock()
    connected: list[KubeOptions] = []

    def connect(options: KubeOptions) -> FakeKube:
        connected.append(options)
        return kube

    def open_store(location: StorageLocation) -> FakeStore:
        store.opened.append(location)
        return store

    return App(connect=connect, open_store=open_store, now=clock, sleep=clock.sleep,
               http_post=http_post or (lambda url, body, timeout: (500, b"{}")))


def invoke(app: App, *args: str, input: str | None = None) -> Result:
    """Run faissctl in process; stdout and stderr separately (``result.stdout`` / ``result.stderr``)."""
    return CliRunner().invoke(cli, list(args), obj=app, input=input, catch_exceptions=False)
