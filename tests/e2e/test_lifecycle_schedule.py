"""What starts a build besides a spec change: the cron schedule, suspend, concurrency policy,
the rebuild annotation, and what must not start one (labels and annotations set by other tools).

Every index of the module is applied up front (module fixture ``indexes``) so their first
builds overlap, and the schedule tests share one minute boundary: four indexes cross it
together, so the module waits for one boundary, not four. Two of them must still be
building at the boundary. Their source is a PostgreSQL query that sleeps (``pg_sleep``) before
returning its rows, so the build lasts at least 2 x PAUSE seconds (the builder runs the query
twice: ``count(*)``, then the rows) however busy the machine is; the fixture applies them
LEAD seconds before the boundary and the tests check that the build really did span it.

Negative checks ("no build started") wait for a heartbeat, not a sleep: the indexes have
``spec.sync`` with a 5 s interval, and every drift check stamps ``status.lastSyncTime``, so
two new stamps prove the operator looked at the index twice more and still did nothing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
import pytest
from helpers import (
    ANNOTATION_REBUILD,
    apply_doc,
    builder_jobs,
    builds,
    cond,
    index_doc,
    index_events,
    index_object,
    job_trigger,
    lifecycle_namespace,
    next_minute,
    patch_spec,
    request_rebuild,
    s3_source,
    stamp,
    utc,
    wait_build_done,
    wait_index_ready,
    wait_status,
    wait_sync_passes,
)
from hack.localstack import Cluster, sample_embeddings

pytestmark = pytest.mark.e2e

N, DIM = 1500, 16
KEY, IDS_KEY = "lifecycle-schedule/{horizon}/vectors.npy", "lifecycle-schedule/{horizon}/ids.npy"
PG_ROWS, PG_DIM = 300, 8
PAUSE = 20  # seconds the slow query sleeps, per execution
LEAD = 15  # the slow indexes are applied this long before the boundary
HEARTBEAT = {"sync": {"interval": "10s"}}  # the API server refuses less than 10s


def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    vectors, ids = sample_embeddings(N, DIM, seed=5)
    c.upload_embeddings(KEY.format(horizon="6h"), vectors, ids, IDS_KEY.format(horizon="6h"))
    return c


def small(cluster: Cluster, name: str, **spec) -> dict:
    return index_doc(cluster, name, DIM, s3_source(KEY, IDS_KEY), **spec)


@pytest.fixture(scope="module")
def slow_source(postgres_dsn: str) -> dict:
    rng = np.random.default_rng(3)
    table = f"slow_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding float4[] NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(i, rng.normal(size=PG_DIM).tolist()) for i in range(PG_ROWS)])
    query = f"WITH pause AS MATERIALIZED (SELECT pg_sleep({PAUSE})) SELECT t.id, t.embedding FROM {table} t, pause"
    return {"postgres": {"dsnSecret": {"name": "pg"}, "query": query, "batchSize": 500}}


@dataclass
class Indexes:
    ns: str
    at: datetime  # the minute boundary the schedule tests' indexes cross


@pytest.fixture(scope="module")
def indexes(cluster: Cluster, slow_source: dict, postgres_dsn: str):
    """Every index of the module, in one namespace, applied up front so their first builds overlap.

    ``every-minute`` and ``suspended`` (schedule ``* * * * *``), ``manual`` and ``argo`` first;
    ``forbid`` and ``replace`` (schedule: the boundary's minute) LEAD seconds before the
    boundary, so their first build is still running when it passes.
    """
    namespaces = lifecycle_namespace(cluster, "lc-sched")
    ns = next(namespaces)
    cluster.kubectl("create", "secret", "generic", "pg", "-n", ns, f"--from-literal=dsn={postgres_dsn}")
    for name in ("manual", "argo"):
        apply_doc(cluster, ns, small(cluster, name, **HEARTBEAT))
    for name, suspend in (("every-minute", False), ("suspended", True)):
        apply_doc(cluster, ns, small(cluster, name, schedule="* * * * *", suspend=suspend, **HEARTBEAT))
    for name in ("every-minute", "suspended"):  # the operator is up and acting before the clock matters
        wait_status(cluster, ns, name, "first build started", lambda st: st.get("lastBuild"), 300)
    at = next_minute(now(), margin=LEAD + 5)
    time.sleep(max(0.0, (at - timedelta(seconds=LEAD) - now()).total_seconds()))  # a wall-clock moment, not a condition
    for name, policy in (("forbid", "Forbid"), ("replace", "Replace")):
        doc = index_doc(cluster, name, PG_DIM, slow_source, schedule=f"{at.minute} * * * *", concurrencyPolicy=policy)
        apply_doc(cluster, ns, doc)
    for name in ("forbid", "replace"):
        wait_status(cluster, ns, name, "Spec build started", lambda st: st.get("lastBuild"), 120)
    yield Indexes(ns, at)
    next(namespaces, None)


def fire_times(cluster: Cluster, ns: str, name: str) -> list[str]:
    """The fire time named by each BuildScheduled Event ("scheduled build of <time> (<cron>)")."""
    return [e["message"].split("scheduled build of ", 1)[1].split(" ", 1)[0] for e in index_events(cluster, ns, name, "BuildScheduled")]


def stop_and_count_schedule_builds(cluster: Cluster, ns: str, name: str) -> tuple[dict, list[str]]:
    """Suspend the index, wait until it is idle, and return its status and BuildScheduled fire times."""
    patch_spec(cluster, ns, name, {"suspend": True})
    idle = lambda st: cond(st, "Progressing").get("reason") == "Suspended"  # noqa: E731
    st = wait_status(cluster, ns, name, "idle and Suspended", idle, 240)
    times = cluster.wait_for("one BuildScheduled Event per Schedule build", lambda: (
        t if len(t := fire_times(cluster, ns, name)) == sum(b.get("trigger") == "Schedule" for b in builds(st)) else None), 30)
    return st, times


def spec_build_started_before(cluster: Cluster, ns: str, name: str, at: datetime) -> None:
    """Precondition of the concurrency tests: the slow index's first build started before the boundary."""
    st = wait_status(cluster, ns, name, "its Spec build", lambda st: any(b.get("trigger") == "Spec" for b in builds(st)), 60)
    spec = next(b for b in builds(st) if b.get("trigger") == "Spec")
    assert utc(spec["startTime"]) < at, f"precondition: the Spec build must start before the boundary {stamp(at)}: {spec}"


def test_a_suspended_schedule_starts_no_build_across_a_minute_boundary_and_unsuspending_runs_the_missed_time_once(cluster, indexes):
    ns, at = indexes.ns, indexes.at
    # The operator did handle the boundary: the same schedule, unsuspended, fired.
    wait_status(cluster, ns, "every-minute", "the boundary's Schedule build", lambda st: st.get("lastScheduleTime") == stamp(at), 180)
    st = wait_sync_passes(cluster, ns, "suspended", after=at + timedelta(seconds=1), passes=2)
    st = wait_status(cluster, ns, "suspended", "idle", lambda st: cond(st, "Progressing").get("status") == "False", 120)
    assert st["buildCount"] == 1 and st.get("lastScheduleTime") is None
    assert not st.get("nextScheduledBuild")
    assert cond(st, "Progressing")["reason"] == "Suspended", cond(st, "Progressing")
    assert [job_trigger(j) for j in builder_jobs(cluster, ns, "suspended")] == ["Spec"]
    assert index_events(cluster, ns, "suspended", "BuildScheduled") == []

    unsuspended = now()
    patch_spec(cluster, ns, "suspended", {"suspend": False})
    st = wait_status(cluster, ns, "suspended", "the missed run", lambda st: st.get("lastScheduleTime"), 120)
    missed = utc(st["lastScheduleTime"])
    assert at <= missed <= unsuspended + timedelta(seconds=60) and missed.second == 0
    assert st["lastBuild"]["trigger"] == "Schedule" and st["lastBuild"]["number"] == 2
    assert utc(st["nextScheduledBuild"]) > missed
    done = wait_build_done(cluster, ns, "suspended", 2)
    assert done["result"] == "Succeeded", done
    wait_sync_passes(cluster, ns, "suspended", after=utc(done["completionTime"]), passes=2)

    st, times = stop_and_count_schedule_builds(cluster, ns, "suspended")
    assert times.count(stamp(missed)) == 1, times
    assert len(times) == len(set(times)), f"a fire time started more than one build: {times}"
    assert all(utc(t) >= missed for t in times), f"a fire time from the suspended period ran: {times}"


def test_an_every_minute_schedule_starts_one_schedule_build_per_fire_time_and_reports_the_next(cluster, indexes):
    ns, at, name = indexes.ns, indexes.at, "every-minute"
    st = wait_status(cluster, ns, name, "a Schedule build", lambda st: any(b.get("trigger") == "Schedule" for b in builds(st)), 180)
    first = min((b for b in builds(st) if b.get("trigger") == "Schedule"), key=lambda b: b["number"])
    assert first["number"] == 2, builds(st)  # the second build of the index
    created = utc(index_object(cluster, ns, name)["metadata"]["creationTimestamp"])  # whole seconds
    first_boundary = next_minute(created, margin=1)
    assert utc(first["startTime"]) >= first_boundary
    done = wait_build_done(cluster, ns, name, first["number"])
    assert done["result"] == "Succeeded", done
    st = wait_index_ready(cluster, ns, name)
    last_fire, upcoming = utc(st["lastScheduleTime"]), utc(st["nextScheduledBuild"])
    assert last_fire >= at and last_fire.second == 0
    assert upcoming > last_fire and upcoming.second == 0 and upcoming - now() <= timedelta(seconds=70)
    jobs = [j for j in builder_jobs(cluster, ns, name) if job_trigger(j) == "Schedule"]  # the newest few are kept
    assert jobs and all(utc(j["metadata"]["creationTimestamp"]) >= first_boundary for j in jobs)
    assert index_object(cluster, ns, name)["metadata"]["generation"] == 1  # the operator never wrote spec

    st, times = stop_and_count_schedule_builds(cluster, ns, name)
    assert stamp(at) in times, times
    assert len(times) == len(set(times)), f"a fire time started more than one build: {times}"
    assert not st.get("nextScheduledBuild")
    assert {b["trigger"] for b in builds(st)} == {"Spec", "Schedule"}, builds(st)


def test_forbid_starts_the_scheduled_build_only_after_the_running_one_finished(cluster, indexes):
    ns, at, name = indexes.ns, indexes.at, "forbid"
    spec_build_started_before(cluster, ns, name, at)
    schedule = lambda st: (st.get("lastBuild") or {}).get("trigger") == "Schedule"  # noqa: E731
    st = wait_status(cluster, ns, name, "the Schedule build", schedule, 4 * PAUSE + 120)
    assert [(b["trigger"], b["result"]) for b in st["history"]] == [("Spec", "Succeeded")], st["history"]
    jobs = {job_trigger(j): j for j in builder_jobs(cluster, ns, name)}
    assert set(jobs) == {"Spec", "Schedule"}, list(jobs)
    spec_job, scheduled = jobs["Spec"], jobs["Schedule"]
    finished = utc(spec_job["status"]["completionTime"])
    assert utc(spec_job["metadata"]["creationTimestamp"]) < at < finished, (
        f"precondition: the Spec build must span the boundary {stamp(at)}: {spec_job['status']}")
    assert utc(scheduled["metadata"]["creationTimestamp"]) >= finished
    assert st["lastScheduleTime"] == stamp(at)
    assert index_events(cluster, ns, name, "BuildReplaced") == []


def test_replace_stops_the_running_build_and_runs_the_scheduled_one(cluster, indexes):
    ns, at, name = indexes.ns, indexes.at, "replace"
    spec_build_started_before(cluster, ns, name, at)
    schedule = lambda st: (st.get("lastBuild") or {}).get("trigger") == "Schedule"  # noqa: E731
    st = wait_status(cluster, ns, name, "the Schedule build", schedule, 120)
    replaced = st["history"][0]
    assert (replaced["trigger"], replaced["result"], replaced["reason"]) == ("Spec", "Failed", "Replaced"), replaced
    events = index_events(cluster, ns, name, "BuildReplaced")
    assert len(events) == 1 and replaced["job"] in events[0]["message"], events
    assert st["lastScheduleTime"] == stamp(at)
    cluster.wait_for("the replaced Job deleted", lambda: replaced["job"] not in [j["metadata"]["name"] for j in builder_jobs(cluster, ns, name)], 60)

    done = wait_build_done(cluster, ns, name, st["lastBuild"]["number"], timeout=4 * PAUSE + 120)
    assert done["result"] == "Succeeded", done
    st = wait_index_ready(cluster, ns, name)
    assert st["currentVersion"] == done["version"] and st["consecutiveFailures"] == 0
    assert [job_trigger(j) for j in builder_jobs(cluster, ns, name)] == ["Schedule"]


def test_a_new_rebuild_annotation_value_starts_exactly_one_manual_build_and_the_same_value_again_none(cluster, indexes):
    ns = indexes.ns
    first = wait_index_ready(cluster, ns, "manual")["currentVersion"]

    value = stamp(now())
    request_rebuild(cluster, ns, "manual", value)
    st = wait_status(cluster, ns, "manual", "the request handled", lambda st: st.get("lastHandledRebuild") == value, 120)
    assert (st["lastBuild"]["trigger"], st["lastBuild"]["number"]) == ("Manual", 2)
    assert wait_build_done(cluster, ns, "manual", 2)["result"] == "Succeeded"
    second = wait_index_ready(cluster, ns, "manual", version_not=first)["currentVersion"]

    doc = small(cluster, "manual", **HEARTBEAT)
    doc["metadata"]["annotations"] = {ANNOTATION_REBUILD: value}  # what a GitOps tool re-applies
    apply_doc(cluster, ns, doc)
    request_rebuild(cluster, ns, "manual", value)
    st = wait_sync_passes(cluster, ns, "manual", after=now() + timedelta(seconds=1), passes=2)
    assert st["buildCount"] == 2 and st["currentVersion"] == second and st["lastHandledRebuild"] == value
    assert [job_trigger(j) for j in builder_jobs(cluster, ns, "manual")] == ["Spec", "Manual"]
    assert len(index_events(cluster, ns, "manual", "RebuildRequested")) == 1


def test_label_and_annotation_changes_by_other_tools_start_no_build_and_the_operator_never_writes_spec(cluster, indexes):
    ns = indexes.ns
    wait_index_ready(cluster, ns, "argo")
    before = index_object(cluster, ns, "argo")

    cluster.kubectl("label", "faissindex", "argo", "-n", ns, "app.kubernetes.io/instance=weather")
    cluster.kubectl("annotate", "faissindex", "argo", "-n", ns, "argocd.argoproj.io/tracking-id=weather:faiss.indexops.io/FaissIndex:x/argo")
    cluster.kubectl("label", "faissindex", "argo", "-n", ns, "--overwrite", "app.kubernetes.io/instance=weather-2")
    st = wait_sync_passes(cluster, ns, "argo", after=now() + timedelta(seconds=1), passes=2)
    assert st["buildCount"] == 1 and [job_trigger(j) for j in builder_jobs(cluster, ns, "argo")] == ["Spec"]
    assert len(index_events(cluster, ns, "argo", "BuildStarted")) == 1

    after = cluster.get_json("faissindex/argo", "-n", ns, "--show-managed-fields")
    assert after["metadata"]["generation"] == before["metadata"]["generation"] == 1
    assert after["spec"] == before["spec"] and st["observedGeneration"] == 1
    spec_writers = {f["manager"] for f in after["metadata"]["managedFields"] if "f:spec" in (f.get("fieldsV1") or {})}
    assert spec_writers == {"kubectl-client-side-apply"}, after["metadata"]["managedFields"]
