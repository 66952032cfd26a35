"""The chart against the real local API server: every ci/ render passes a server-side dry
run, `helm test` passes, and the four-horizon values bring four FaissIndexes to Ready.

The four-horizon install is ``helm upgrade`` of the same release the other e2e modules
use (one operator per cluster); the module puts the default install back when it ends.
Builder and serving pods run under the chart's token-less ServiceAccounts there.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from hack.localstack import CHART, INDEX_BUCKET, OPERATOR_NAMESPACE, RELEASE, Cluster, sample_embeddings

pytestmark = [pytest.mark.e2e, pytest.mark.e2e_serial]  # changes the shared operator release: runs alone

CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
FOUR_HORIZONS = CHART / "ci" / "four-horizons-values.yaml"
HORIZONS = ("6h", "12h", "24h", "48h")
TEST_POD = f"{RELEASE}-test"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()  # the CRD must exist before a release that has FaissIndexes
    return c


def served_kinds(cluster: Cluster) -> set[str]:
    """group/Kind of every kind the API server serves (kubectl api-resources)."""
    out = cluster.kubectl("api-resources", "--no-headers", "-o", "wide").stdout
    kinds = set()
    for line in out.splitlines():
        cols = line.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS...; APIVERSION is the first with no '[' that
        # parses as group/version or version, NAMESPACED is true/false right after it.
        i = next(i for i, c in enumerate(cols) if c in ("true", "false"))
        api_version, kind = cols[i - 1], cols[i + 1]
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        kinds.add(f"{group}/{kind}")
    return kinds


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_every_ci_render_passes_a_server_side_dry_run(cluster, values):
    rendered = cluster.helm("template", "dryrun", str(CHART), "-n", OPERATOR_NAMESPACE, "-f", str(values),
                            "--skip-tests").stdout  # the test pod needs its account to exist: run for real below
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    served = served_kinds(cluster)

    def group_kind(d: dict) -> str:
        api_version = d["apiVersion"]
        return f"{api_version.rsplit('/', 1)[0] if '/' in api_version else ''}/{d['kind']}"

    # Monitoring kinds come from the Prometheus Operator's CRDs, which this cluster does not have.
    unserved = {group_kind(d) for d in docs if group_kind(d) not in served}
    assert {g.split("/")[0] for g in unserved} <= {"monitoring.coreos.com"}, unserved
    checked = [d for d in docs if group_kind(d) in served]
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(checked), check=False)
    assert proc.returncode == 0, proc.stderr
    assert len([line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]) == len(checked), proc.stdout


def test_the_server_rejects_what_the_chart_would_never_render(cluster):
    """The dry run really validates: a broken object from the same render is refused."""
    rendered = cluster.helm("template", "dryrun", str(CHART), "-n", OPERATOR_NAMESPACE, "--skip-tests",
                            "--show-only", "templates/poddisruptionbudget.yaml").stdout
    pdb = yaml.safe_load(rendered)
    pdb["spec"]["minAvailable"] = "one"
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pdb), check=False)
    assert proc.returncode != 0 and "minAvailable" in proc.stderr


# -- four horizons from one block of defaults ---------------------------------------------


@pytest.fixture(scope="module")
def four_horizons(cluster: Cluster):
    vectors, ids = sample_embeddings(2000, 32, seed=31)
    for horizon in HORIZONS:  # creates both buckets on a fresh stack
        cluster.upload_embeddings(f"chart/{horizon}/vectors.npy", vectors, ids, f"chart/{horizon}/ids.npy")
    # Versions retained by an earlier run on the same stack would be adopted, not built: no builder pod.
    s3 = cluster.s3()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=INDEX_BUCKET, Prefix=f"faiss-indexes/{OPERATOR_NAMESPACE}/analogs-"):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=INDEX_BUCKET, Key=obj["Key"])
    values = ("-f", str(FOUR_HORIZONS), "--set", f"faissIndexDefaults.storage.endpoint={cluster.s3_endpoint}",
              "--set", "tests.timeoutSeconds=8")  # the failing helm test retries this long before it reports
    # First the operator with the new builder/serving accounts, then the indexes: in a single
    # upgrade the old leader may still create the first builder Jobs with its old settings.
    cluster.install_operator(*values, "--set-json", "faissIndexes=[]")
    cluster.install_operator(*values)
    yield cluster
    cluster.kubectl("delete", "pod", TEST_POD, "-n", OPERATOR_NAMESPACE, "--ignore-not-found", check=False)
    cluster.install_operator()  # back to the default release: helm deletes the four FaissIndexes


def ready(cluster: Cluster, name: str) -> dict | None:
    st = cluster.faiss_index(OPERATOR_NAMESPACE, name).get("status", {})
    cond = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), {})
    degraded = next((c for c in st.get("conditions", []) if c["type"] == "Degraded"), {})
    if degraded.get("status") == "True" and not st.get("currentVersion"):
        raise AssertionError(f"{name} failed: {degraded.get('reason')}: {degraded.get('message')}")
    return st if cond.get("status") == "True" and st.get("currentVersion") else None


def test_the_four_horizon_values_bring_four_indexes_to_ready(four_horizons):
    cluster = four_horizons
    names = [f"analogs-{h}" for h in HORIZONS]
    listed = cluster.get_json("faissindexes", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == sorted(names)
    statuses = {}
    for name in names:
        statuses[name] = cluster.wait_for(f"{name} Ready", lambda name=name: ready(cluster, name), timeout=600, interval=2)
    assert all(st["recall"] >= 0.9 for st in statuses.values())
    spec48 = cluster.get_json("faissindex/analogs-48h", "-n", OPERATOR_NAMESPACE)["spec"]
    assert spec48["parameters"]["efSearch"] == 96 and spec48["parameters"]["m"] == 16
    assert spec48["storage"]["endpoint"] == cluster.s3_endpoint


def test_builder_and_serving_pods_run_under_the_charts_accounts_without_a_token(four_horizons):
    cluster = four_horizons
    for component, account in (("builder", f"{RELEASE}-builder"), ("serving", f"{RELEASE}-serving")):
        sa = cluster.get_json(f"serviceaccount/{account}", "-n", OPERATOR_NAMESPACE)
        assert sa["automountServiceAccountToken"] is False
        pods = cluster.get_json("pods", "-n", OPERATOR_NAMESPACE, "-l",
                                f"faiss.indexops.io/index=analogs-6h,app.kubernetes.io/component={component}")["items"]
        assert pods, f"no {component} pod of analogs-6h"
        for pod in pods:
            assert pod["spec"]["serviceAccountName"] == account
            assert pod["spec"]["automountServiceAccountToken"] is False
            assert not [v for v in pod["spec"].get("volumes", []) if "projected" in v and any(
                "serviceAccountToken" in s for s in v["projected"].get("sources", []))]
    sa = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}-serving"
    assert cluster.kubectl("auth", "can-i", "--list", "--as", sa, "-n", OPERATOR_NAMESPACE, check=False).stdout.count("faissindexes") == 0


def test_helm_test_checks_every_operator_replica_and_finds_one_leader(four_horizons):
    cluster = four_horizons
    proc = cluster.run(cluster.env.get("HELM", "helm"), "test", RELEASE, "-n", OPERATOR_NAMESPACE, "--logs", "--timeout", "180s",
                       check=False, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS: the operator is healthy" in proc.stdout
    assert proc.stdout.count(": /healthz 200, leader") == 1
    assert proc.stdout.count(": /healthz 200, standby") == 1  # two replicas by default
    assert proc.stdout.count("POD LOGS:") == 1
    assert cluster.get_json(f"pod/{TEST_POD}", "-n", OPERATOR_NAMESPACE)["status"]["phase"] == "Succeeded"  # kept for --logs


def test_helm_test_fails_when_no_replica_leads(four_horizons):
    """The check is real: with the operator scaled to zero it reports the missing replicas."""
    cluster = four_horizons
    deployment = f"deployment/{RELEASE}"
    cluster.kubectl("scale", deployment, "-n", OPERATOR_NAMESPACE, "--replicas=0")
    try:
        cluster.wait_for("no operator pods", lambda: not cluster.get_json(
            "pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/name=faiss-operator")["items"], 120)
        proc = subprocess.run([cluster.env.get("HELM", "helm"), "test", RELEASE, "-n", OPERATOR_NAMESPACE, "--logs", "--timeout", "120s"],
                              capture_output=True, text=True, env=cluster.env, timeout=200)
        assert proc.returncode != 0
        assert "no ready endpoint behind Service" in proc.stdout + proc.stderr
    finally:
        cluster.kubectl("delete", "pod", TEST_POD, "-n", OPERATOR_NAMESPACE, "--ignore-not-found", check=False)
        cluster.kubectl("scale", deployment, "-n", OPERATOR_NAMESPACE, "--replicas=2")
        cluster.kubectl("rollout", "status", deployment, "-n", OPERATOR_NAMESPACE, "--timeout=180s", check=False, timeout=200)
