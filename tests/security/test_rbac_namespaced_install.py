"""Issue 10 item 5, on the real API server: a namespaced install works in its namespace and its
account can touch no other.

The operator is installed by helm with ``watchNamespace`` (Roles there, no ClusterRole) and
runs under that RBAC; an index in the watched namespace becomes Ready, one in another
namespace is never touched, and the API server's own authorizer (``kubectl auth can-i``)
answers for the operator's ServiceAccount. The default (cluster-wide) install is restored
afterwards.
"""

from __future__ import annotations

import uuid

import pytest
from security_stack import OPERATOR_ACCOUNT, Cluster, helpers, localstack

pytestmark = [pytest.mark.e2e, pytest.mark.e2e_serial]  # changes the shared operator release: runs alone
DIM = 16


@pytest.fixture(scope="module")
def namespaced() -> tuple[Cluster, str, str]:
    cluster = Cluster.from_stack()
    watched, other = f"sec-ns-a-{uuid.uuid4().hex[:5]}", f"sec-ns-b-{uuid.uuid4().hex[:5]}"
    for ns in (watched, other):
        cluster.ensure_credentials_secret(ns)
    cluster.install_operator("--set", f"watchNamespace={watched}")
    yield cluster, watched, other
    cluster.install_operator()  # back to the default: every namespace, through a ClusterRole
    for ns in (watched, other):
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def can_i(cluster: Cluster, verb: str, resource: str, namespace: str | None) -> bool:
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    done = cluster.kubectl("auth", "can-i", verb, resource, "--as", OPERATOR_ACCOUNT, *where, check=False)
    return done.stdout.strip() == "yes"


def test_a_namespaced_install_reconciles_its_namespace_and_cannot_touch_another(namespaced):
    cluster, watched, other = namespaced
    vectors, ids = localstack.sample_embeddings(1000, DIM, seed=5)
    key = f"sec-rbac/{uuid.uuid4().hex[:6]}/{{horizon}}/vectors.npy"
    cluster.upload_embeddings(key.replace("{horizon}", "6h"), vectors)
    doc = helpers.index_doc(cluster, "scoped", DIM, helpers.s3_source(key), serving={"replicas": 1})
    for ns in (watched, other):
        helpers.apply_doc(cluster, ns, doc)

    helpers.wait_index_ready(cluster, watched, "scoped", timeout=240)

    assert helpers.index_status(cluster, other, "scoped") == {}  # never seen by the operator
    assert cluster.get_json("jobs", "-n", other)["items"] == []
    for verb, resource in (("create", "jobs"), ("patch", "deployments"), ("patch", "faissindexes.faiss.indexops.io")):
        assert can_i(cluster, verb, resource, watched), f"{verb} {resource} in {watched}"
        assert not can_i(cluster, verb, resource, other), f"{verb} {resource} in {other}"
    assert not can_i(cluster, "list", "faissindexes.faiss.indexops.io", None)
    assert not can_i(cluster, "get", "secrets", watched)
    assert not [r for r in cluster.get_json("clusterroles")["items"] if r["metadata"]["name"] == localstack.RELEASE]
