"""Small helpers shared by the e2e tests."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(what: str, fn: Callable[[], T | None], timeout: float = 90) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# -- FaissIndex lifecycle helpers (tests/e2e/test_lifecycle_*.py) ---------------------------
# Everything below reads state through kubectl and S3 only, the way a person would check.

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

from hack.localstack import EMBEDDINGS_BUCKET, INDEX_BUCKET, Cluster  # noqa: E402

GROUP = "faiss.indexops.io"
LABEL_INDEX = f"{GROUP}/index"
ANNOTATION_TRIGGER = f"{GROUP}/trigger"
ANNOTATION_BUILD_NUMBER = f"{GROUP}/build-number"
ANNOTATION_REBUILD = f"{GROUP}/rebuild-requested-at"
STORAGE_PREFIX = "faiss-indexes"  # the sample's spec.storage.prefix


def utc(ts: str) -> datetime:
    """A Kubernetes / status timestamp (``2026-01-02T03:04:05Z``) as an aware datetime."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_minute(after: datetime, margin: float = 0) -> datetime:
    """The first minute boundary at least ``margin`` seconds after ``after``."""
    base = (after + timedelta(seconds=margin)).replace(second=0, microsecond=0)
    return base if base >= after + timedelta(seconds=margin) else base + timedelta(minutes=1)


def lifecycle_namespace(cluster: Cluster, prefix: str) -> Iterator[str]:
    """Body of a namespace fixture: a fresh namespace with the S3 credentials Secret; deleted after."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.ensure_namespace(ns)  # Pod Security "restricted" enforced
    cluster.wait_for("default ServiceAccount", lambda: cluster.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 60)
    cluster.ensure_credentials_secret(ns)
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _merge(target: dict, updates: dict) -> dict:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
    return target


def index_doc(cluster: Cluster, name: str, dimension: int, source: dict, **spec: Any) -> dict:
    """The committed sample as a small Flat index over ``source``, without a schedule; ``spec`` is merged in."""
    doc = yaml.safe_load(cluster.sample_manifest(**{"spec.dimension": dimension}))
    doc["metadata"]["name"] = name
    doc["spec"].pop("schedule", None)
    doc["spec"].update({"indexType": "Flat", "parameters": {}, "source": source})
    _merge(doc["spec"], spec)
    return doc


def s3_source(key: str, ids_key: str | None = None) -> dict:
    s3: dict[str, Any] = {"bucket": EMBEDDINGS_BUCKET, "key": key}
    if ids_key:
        s3["idsKey"] = ids_key
    return {"s3": s3}


def apply_doc(cluster: Cluster, ns: str, doc: dict) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc))


def patch_spec(cluster: Cluster, ns: str, name: str, spec: dict) -> None:
    import json  # noqa: PLC0415

    cluster.kubectl("patch", "faissindex", name, "-n", ns, "--type", "merge", "-p", json.dumps({"spec": spec}))


def request_rebuild(cluster: Cluster, ns: str, name: str, value: str) -> None:
    cluster.kubectl("annotate", "faissindex", name, "-n", ns, "--overwrite", f"{ANNOTATION_REBUILD}={value}")


def index_object(cluster: Cluster, ns: str, name: str) -> dict:
    return cluster.faiss_index(ns, name)


def index_status(cluster: Cluster, ns: str, name: str) -> dict:
    return index_object(cluster, ns, name).get("status", {})


def cond(st: dict, ctype: str) -> dict:
    return next((c for c in st.get("conditions", []) if c["type"] == ctype), {})


def builds(st: dict) -> list[dict]:
    """Every build status remembers, newest first: lastBuild, then history."""
    return ([st["lastBuild"]] if st.get("lastBuild") else []) + list(st.get("history", []))


def wait_status(cluster: Cluster, ns: str, name: str, what: str, predicate, timeout: float = 240) -> dict:
    """Poll the FaissIndex status until ``predicate(status)`` holds; returns that status."""
    def check():
        st = index_status(cluster, ns, name)
        return st if predicate(st) else None

    return cluster.wait_for(f"{ns}/{name}: {what}", check, timeout, interval=1)


def wait_index_ready(cluster: Cluster, ns: str, name: str, version_not: str | None = None, timeout: float = 300) -> dict:
    def ready(st):
        last = st.get("lastBuild") or {}
        return (cond(st, "Ready").get("status") == "True" and st.get("currentVersion") not in (None, version_not)
                and last.get("result") != "Running")

    return wait_status(cluster, ns, name, "Ready", ready, timeout)


def wait_build_done(cluster: Cluster, ns: str, name: str, number: int, timeout: float = 240) -> dict:
    """Wait until build ``number`` has a result other than Running; returns that build's status entry."""
    def done(st):
        entry = next((b for b in builds(st) if b.get("number") == number), None)
        return entry is not None and entry["result"] != "Running"

    st = wait_status(cluster, ns, name, f"build {number} finished", done, timeout)
    return next(b for b in builds(st) if b.get("number") == number)


def index_events(cluster: Cluster, ns: str, name: str, reason: str | None = None) -> list[dict]:
    items = cluster.events(ns, name)
    items = [e for e in items if e.get("involvedObject", {}).get("kind") == "FaissIndex"]
    if reason is not None:
        items = [e for e in items if e["reason"] == reason]
    return sorted(items, key=lambda e: (e.get("firstTimestamp") or e.get("eventTime") or e["metadata"]["creationTimestamp"]))


def builder_jobs(cluster: Cluster, ns: str, name: str) -> list[dict]:
    """The index's builder Jobs (by label), oldest build first."""
    items = cluster.get_json("jobs", "-n", ns, "-l", f"{LABEL_INDEX}={name}")["items"]
    return sorted(items, key=lambda j: int(j["metadata"]["annotations"].get(ANNOTATION_BUILD_NUMBER, "0")))


def job_trigger(job: dict) -> str | None:
    return job["metadata"]["annotations"].get(ANNOTATION_TRIGGER)


def wait_sync_passes(cluster: Cluster, ns: str, name: str, after: datetime, passes: int = 2, timeout: float = 120) -> dict:
    """Wait until the operator's drift check (``spec.sync``) ran ``passes`` times after ``after``.

    A heartbeat: each check stamps ``status.lastSyncTime`` on a full reconcile pass, so seeing
    it move proves the operator looked at the index again (e.g. and still started no build).
    """
    seen: set[str] = set()

    def check():
        st = index_status(cluster, ns, name)
        ts = st.get("lastSyncTime")
        if ts and utc(ts) > after:
            seen.add(ts)
        return st if len(seen) >= passes else None

    return cluster.wait_for(f"{ns}/{name}: {passes} drift checks after {stamp(after)}", check, timeout, interval=1)


def index_prefix(ns: str, name: str, horizon: str = "6h") -> str:
    return f"{STORAGE_PREFIX}/{ns}/{name}/{horizon}"


def s3_keys(cluster: Cluster, prefix: str, bucket: str = INDEX_BUCKET) -> list[str]:
    keys: list[str] = []
    for page in cluster.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def s3_versions(cluster: Cluster, ns: str, name: str) -> set[str]:
    """Version folders stored for the index (``.../versions/<version>/...``)."""
    root = index_prefix(ns, name) + "/versions/"
    return {k[len(root):].split("/", 1)[0] for k in s3_keys(cluster, root)}


def holds_for(what: str, predicate: Callable[[], bool], seconds: float, interval: float = 1) -> None:
    """Observe ``predicate`` for ``seconds``; fail as soon as it is false (a window for "nothing happens")."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), f"no longer true: {what}"
        time.sleep(interval)
    assert predicate(), f"no longer true: {what}"


def event_time(event: dict) -> datetime:
    return utc(event.get("lastTimestamp") or event.get("firstTimestamp") or event["metadata"]["creationTimestamp"])
