"""A FaissIndex over a real PostgreSQL table, built through the operator.

Proves the whole credentials path: the DSN lives only in a Secret in the index's
namespace, the operator wires it into the builder Job as an env var (it cannot read
Secrets itself), the builder streams the rows with a server-side cursor, and serving
answers with the table's ids.
"""

from __future__ import annotations

import uuid

import numpy as np
import psycopg
import pytest
import yaml

from hack.localstack import Cluster, search

pytestmark = pytest.mark.e2e

ROWS, DIM = 1500, 16


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    c.ensure_bucket("faiss-demo-indexes")
    return c


@pytest.fixture(scope="module")
def table(postgres_dsn: str) -> tuple[str, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    vectors = rng.normal(size=(ROWS, DIM)).astype(np.float32)
    ids = np.arange(ROWS, dtype=np.int64) * 3 + 500
    name = f"vecs_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id bigint PRIMARY KEY, embedding float4[] NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {name} VALUES (%s, %s)", [(int(i), v.tolist()) for i, v in zip(ids, vectors)])
    return name, vectors, ids


def test_an_index_over_a_postgres_table_builds_with_the_dsn_from_a_secret_and_serves_its_ids(cluster, table, postgres_dsn):
    name, vectors, ids = table
    ns = f"e2e-pg-{uuid.uuid4().hex[:6]}"
    cluster.ensure_namespace(ns)  # Pod Security "restricted" enforced
    try:
        cluster.ensure_credentials_secret(ns)
        cluster.kubectl("create", "secret", "generic", "pg", "-n", ns, f"--from-literal=dsn={postgres_dsn}")
        doc = yaml.safe_load(cluster.sample_manifest())
        doc["metadata"]["name"] = "pg-index"
        doc["spec"].update({"dimension": DIM, "indexType": "Flat", "parameters": {}})
        doc["spec"]["source"] = {"postgres": {"dsnSecret": {"name": "pg"}, "table": name, "batchSize": 500}}
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc))

        def ready():
            st = cluster.get_json("faissindex/pg-index", "-n", ns).get("status", {})
            cond = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), {})
            degraded = next((c for c in st.get("conditions", []) if c["type"] == "Degraded"), {})
            assert degraded.get("status") != "True", degraded
            return st if cond.get("status") == "True" else None

        st = cluster.wait_for("pg-index Ready", ready, 300)
        assert st["vectors"] == ROWS and st["recall"] == 1.0
        job = cluster.get_json("job", st["lastBuild"]["job"], "-n", ns)
        env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["FAISS_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "pg", "key": "dsn"}
        assert postgres_dsn not in yaml.safe_dump(job)

        url = cluster.wait_for("serving endpoint", lambda: (cluster.service_pod_urls("pg-index-serving", ns) or [None])[0], 120)
        answer = search(url, vectors[7:8], k=3)
        assert answer["ids"][0][0] == int(ids[7])
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
