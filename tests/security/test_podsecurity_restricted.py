"""Issue 10 item 7: Pod Security ``restricted`` is enforced by the real API server on every
namespace the e2e suite uses, and every pod the chart and the operator create passes it.

The namespaces come from the same helpers the e2e tests use (``Cluster.install_operator``,
``Cluster.temporary_namespace``, ``helpers.lifecycle_namespace``). The pods are checked by
the API server's own Pod Security admission with a server-side dry run, so a loosened
securityContext in ``faiss_operator/objects.py`` or the chart is refused here, in the same
way a real cluster would refuse it.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from security_stack import OPERATOR_NAMESPACE, Cluster, helpers, localstack

from indexops_api.spec import FaissIndexSpec
from faiss_operator.config import OperatorConfig
from faiss_operator.model import JobToCreate
from faiss_operator.objects import build_deployment, build_job

pytestmark = pytest.mark.e2e
ENFORCE = "pod-security.kubernetes.io/enforce"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    return c


def labels(cluster: Cluster, ns: str) -> dict[str, str]:
    return cluster.get_json("namespace", ns)["metadata"].get("labels", {})


def dry_run_pod(cluster: Cluster, ns: str, name: str, pod_spec: dict) -> subprocess.CompletedProcess:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": pod_spec}
    return cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)


def test_every_namespace_the_e2e_suite_uses_enforces_restricted(cluster):
    assert labels(cluster, OPERATOR_NAMESPACE)[ENFORCE] == "restricted"
    with cluster.temporary_namespace("sec-ps") as ns:
        assert labels(cluster, ns)[ENFORCE] == "restricted"
    lifecycle = helpers.lifecycle_namespace(cluster, "sec-ps-lc")
    ns = next(lifecycle)
    try:
        assert labels(cluster, ns)[ENFORCE] == "restricted"
    finally:
        next(lifecycle, None)


def test_the_api_server_refuses_a_pod_that_breaks_restricted_there(cluster):
    with cluster.temporary_namespace("sec-ps") as ns:
        loose = {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]}
        done = dry_run_pod(cluster, ns, "loose", loose)
        assert done.returncode != 0 and 'violates PodSecurity "restricted:latest"' in done.stderr


def test_the_operators_builder_and_serving_pods_pass_restricted(cluster):
    spec = FaissIndexSpec.model_validate(yaml.safe_load(cluster.sample_manifest())["spec"])
    config = OperatorConfig.from_env({})
    with cluster.temporary_namespace("sec-ps") as ns:
        job = build_job(index="idx", namespace=ns, uid="u", spec=spec, config=config,
                        job=JobToCreate(name="idx-build-1", version="v1", build_key="k" * 16, number=1, trigger="Spec"))
        deployment = build_deployment(index="idx", namespace=ns, uid="u", spec=spec, config=config)
        for name, template in (("builder", job["spec"]["template"]), ("serving", deployment["spec"]["template"])):
            done = dry_run_pod(cluster, ns, name, template["spec"])
            assert done.returncode == 0, f"{name}: {done.stderr}"


def test_the_charts_operator_and_test_pods_pass_restricted(cluster):
    rendered = cluster.helm("template", localstack.RELEASE, str(localstack.CHART), "-n", OPERATOR_NAMESPACE).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}
    pods.update({d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Pod"})
    assert len(pods) >= 2
    for name, pod_spec in pods.items():
        done = dry_run_pod(cluster, OPERATOR_NAMESPACE, f"dry-{name}"[:63], pod_spec)
        assert done.returncode == 0, f"{name}: {done.stderr}"
