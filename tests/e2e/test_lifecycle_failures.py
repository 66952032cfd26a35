"""When builds fail and when the source changes: retry backoff, Stalled and recovery, drift checks.

The drift test reads a real PostgreSQL table, so the operator must read the DSN Secret for the
drift probe. Rather than changing the shared release, the module applies the chart's own grant
for one namespace beside it: ``rbac.readSourceSecrets=true`` rendered with ``watchNamespace`` set
to the module's namespace (a Role and RoleBinding there, deleted with the namespace), so the
module runs beside the others. Both tests' indexes are applied up front
(module fixture ``indexes``) so their first builds overlap, and the failing index stalls while
the drift test runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
import pytest
from helpers import (
    apply_doc,
    builder_jobs,
    builds,
    cond,
    event_time,
    holds_for,
    index_doc,
    index_events,
    index_status,
    job_trigger,
    lifecycle_namespace,
    request_rebuild,
    s3_source,
    stamp,
    utc,
    wait_index_ready,
    wait_status,
    wait_sync_passes,
)
from hack.localstack import CHART, OPERATOR_NAMESPACE, RELEASE, Cluster, sample_embeddings

pytestmark = pytest.mark.e2e

DIM = 16
MISSING_KEY = f"lifecycle-failures/{uuid.uuid4().hex[:8]}/{{horizon}}/vectors.npy"  # uploaded by the test, late
PG_ROWS, PG_DIM, ADDED = 400, 8, 50
QUIET = 30  # seconds without a new Job after Stalled (3 resync periods of the operator)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    c.ensure_bucket("faiss-demo-embeddings")
    c.ensure_bucket("faiss-demo-indexes")
    return c


def grant_secret_reads(cluster: Cluster, ns: str) -> None:
    """The chart's Secret grant for one namespace (its Role and RoleBinding), applied beside the release."""
    rendered = cluster.helm("template", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE,
                            "--set", "rbac.readSourceSecrets=true", "--set", f"watchNamespace={ns}",
                            "--show-only", "templates/rbac-source-secrets.yaml").stdout
    cluster.kubectl("apply", "-f", "-", input=rendered)
    account = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"
    assert cluster.kubectl("auth", "can-i", "get", "secrets", "-n", ns, "--as", account).stdout.strip() == "yes"


@dataclass
class Indexes:
    ns: str
    tables: dict[str, str]  # index name -> its PostgreSQL table


def make_table(dsn: str, seed: int) -> str:
    rng = np.random.default_rng(seed)
    table = f"drift_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding float4[] NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(i, rng.normal(size=PG_DIM).tolist()) for i in range(PG_ROWS)])
    return table


def add_rows(dsn: str, table: str, start: int, count: int) -> None:
    rng = np.random.default_rng(start)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(i, rng.normal(size=PG_DIM).tolist()) for i in range(start, start + count)])


@pytest.fixture(scope="module")
def indexes(cluster: Cluster, postgres_dsn: str):
    namespaces = lifecycle_namespace(cluster, "lc-fail")
    ns = next(namespaces)
    grant_secret_reads(cluster, ns)
    cluster.kubectl("create", "secret", "generic", "pg", "-n", ns, f"--from-literal=dsn={postgres_dsn}")
    build = {"retryBackoffSeconds": 1, "maxConsecutiveFailures": 2}
    apply_doc(cluster, ns, index_doc(cluster, "stall", DIM, s3_source(MISSING_KEY), build=build))
    tables = {}
    for seed, (name, policy) in enumerate((("drift-rebuild", "Rebuild"), ("drift-report", "Report"))):
        tables[name] = make_table(postgres_dsn, seed)
        source = {"postgres": {"dsnSecret": {"name": "pg"}, "table": tables[name], "batchSize": 500}}
        apply_doc(cluster, ns, index_doc(cluster, name, PG_DIM, source, sync={"interval": "10s", "policy": policy}))
    yield Indexes(ns, tables)
    next(namespaces, None)


def now() -> datetime:
    return datetime.now(timezone.utc)


def test_rows_added_to_a_postgres_source_rebuild_under_policy_rebuild_and_are_only_reported_under_report(cluster, indexes, postgres_dsn):
    ns = indexes.ns
    start = now()
    for name in ("drift-rebuild", "drift-report"):
        st = wait_index_ready(cluster, ns, name)
        assert st["vectors"] == PG_ROWS
    for name in ("drift-rebuild", "drift-report"):
        st = wait_sync_passes(cluster, ns, name, after=start, passes=1)
        assert st.get("drift") is None and cond(st, "Degraded")["status"] == "False", st  # no drift from an unchanged table
    changed = now() - timedelta(seconds=1)
    for name in ("drift-rebuild", "drift-report"):
        add_rows(postgres_dsn, indexes.tables[name], PG_ROWS, ADDED)
    expected = f"row count {PG_ROWS} → {PG_ROWS + ADDED}"

    reported = lambda st: cond(st, "Degraded").get("reason") == "SourceDrift"  # noqa: E731
    st = wait_status(cluster, ns, "drift-report", "Degraded SourceDrift", reported, 120)
    detected = utc(cond(st, "Degraded")["lastTransitionTime"])
    assert expected in cond(st, "Degraded")["message"] and expected in st["drift"]
    assert cond(st, "Ready")["status"] == "True"

    drift_build = lambda st: (st.get("lastBuild") or {}).get("trigger") == "Drift"  # noqa: E731
    wait_status(cluster, ns, "drift-rebuild", "a Drift build", drift_build, 120)
    st = wait_status(cluster, ns, "drift-rebuild", f"{PG_ROWS + ADDED} vectors serving",
                     lambda st: st.get("vectors") == PG_ROWS + ADDED and cond(st, "Ready").get("status") == "True", 240)
    assert st["lastBuild"]["result"] == "Succeeded" and st["buildCount"] == 2 and st.get("drift") is None
    events = index_events(cluster, ns, "drift-rebuild", "SourceDrift")
    assert len(events) == 1 and expected in events[0]["message"] and "rebuilding" in events[0]["message"], events
    assert event_time(events[0]) >= changed
    st = wait_sync_passes(cluster, ns, "drift-rebuild", after=now(), passes=1)
    assert st.get("drift") is None and st["buildCount"] == 2, st  # the new version matches the table

    # Report only: still no build, checks keep running (buildCount only grows, so 1 means none since).
    st = wait_sync_passes(cluster, ns, "drift-report", after=max(now(), detected + timedelta(seconds=QUIET)), passes=1)
    assert st["buildCount"] == 1 and st["vectors"] == PG_ROWS and reported(st)
    assert [job_trigger(j) for j in builder_jobs(cluster, ns, "drift-report")] == ["Spec"]
    events = index_events(cluster, ns, "drift-report", "SourceDrift")
    assert len(events) == 1 and "reporting only" in events[0]["message"], events


def test_failed_builds_retry_with_backoff_then_stall_until_a_rebuild_request_recovers_the_index(cluster, indexes):
    ns, name = indexes.ns, "stall"
    st = wait_status(cluster, ns, name, "Stalled", lambda st: cond(st, "Stalled").get("status") == "True", 240)
    assert cond(st, "Stalled")["reason"] == "TooManyFailures" and st["phase"] == "Stalled"
    assert "does not exist" in cond(st, "Stalled")["message"], cond(st, "Stalled")
    assert st["consecutiveFailures"] == 2 and st["buildCount"] == 2
    assert [(b["trigger"], b["result"]) for b in builds(st)] == [("Retry", "Failed"), ("Spec", "Failed")], builds(st)
    assert cond(st, "Ready")["status"] == "False" and cond(st, "Degraded")["status"] == "True"

    failed = index_events(cluster, ns, name, "BuildFailed")
    retry = index_events(cluster, ns, name, "RetryScheduled")
    started = index_events(cluster, ns, name, "BuildStarted")
    assert len(failed) == 2 and len(retry) == 1 and len(index_events(cluster, ns, name, "Stalled")) == 1
    assert "(1/2)" in retry[0]["message"], retry[0]["message"]
    assert event_time(failed[0]) <= event_time(retry[0]) <= event_time(started[-1]) <= event_time(failed[1])
    assert "(Retry)" in started[-1]["message"]

    # No further build while Stalled: buildCount only grows, so 2 now means none since it stalled.
    stalled_for = (now() - utc(cond(st, "Stalled")["lastTransitionTime"])).total_seconds()
    holds_for("no further builder Job while Stalled", lambda: len(builder_jobs(cluster, ns, name)) == 2, max(0.0, QUIET - stalled_for))
    assert index_status(cluster, ns, name)["buildCount"] == 2

    vectors, _ = sample_embeddings(1200, DIM, seed=9)
    cluster.upload_embeddings(MISSING_KEY.format(horizon="6h"), vectors)
    request_rebuild(cluster, ns, name, stamp(now()))
    st = wait_index_ready(cluster, ns, name)
    assert cond(st, "Stalled")["status"] == "False" and st["consecutiveFailures"] == 0
    assert cond(st, "Degraded")["status"] == "False" and st["phase"] == "Serving"
    assert (st["lastBuild"]["trigger"], st["lastBuild"]["result"], st["vectors"]) == ("Manual", "Succeeded", 1200)
    assert len(index_events(cluster, ns, name, "Recovered")) == 1
    assert [job_trigger(j) for j in builder_jobs(cluster, ns, name)] == ["Spec", "Retry", "Manual"]
