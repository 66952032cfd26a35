"""Least privilege for the pods the operator creates: builder and serving pods get no token.

Only the operator's account is bound to RBAC. Builder Jobs and serving Deployments run in
each FaissIndex's namespace under the account the chart names (the namespace's ``default``
unless builder/serving.serviceAccount say otherwise), always with
automountServiceAccountToken false. The chart passes the names to the operator through its
environment; these tests follow them from ``helm template`` through OperatorConfig to the
pod specs that objects.py builds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from faiss_operator.config import OperatorConfig
from faiss_operator.model import JobToCreate
from faiss_operator.objects import build_deployment, build_job
from indexops_api.layout import build_key, job_name, version_id

from factories import NOW, spec

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "faiss-operator"


def render(helm: str, *args: str) -> list[dict]:
    done = subprocess.run([helm, "template", "rel", str(CHART), "-n", "faiss-system", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def operator_env(docs: list[dict]) -> dict[str, str]:
    dep = next(d for d in docs if d["kind"] == "Deployment")
    return {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}


def pods_built_with(config: OperatorConfig) -> tuple[dict, dict]:
    s = spec()
    key = build_key(s)
    job = build_job(index="idx", namespace="ns", uid="u1", spec=s, config=config,
                    job=JobToCreate(job_name("idx", key), version_id(NOW, key), key, 1, "Spec"))
    dep = build_deployment(index="idx", namespace="ns", uid="u1", spec=s, config=config)
    return job["spec"]["template"]["spec"], dep["spec"]["template"]["spec"]


def accounts(docs: list[dict]) -> dict[tuple[str, str], dict]:
    """The release's ServiceAccounts but the `helm test` pod's (tests.enabled)."""
    return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs
            if d["kind"] == "ServiceAccount" and d["metadata"]["labels"]["app.kubernetes.io/component"] != "test"}


def test_by_default_builder_and_serving_pods_use_the_namespaces_default_account_without_its_token(helm):
    docs = render(helm)
    env = operator_env(docs)
    assert env["FAISS_OPERATOR_BUILDER_SERVICE_ACCOUNT"] == env["FAISS_OPERATOR_SERVING_SERVICE_ACCOUNT"] == "default"
    assert set(accounts(docs)) == {("faiss-system", "rel-faiss-operator")}  # the operator's only
    for pod in pods_built_with(OperatorConfig.from_env(env)):
        assert pod["serviceAccountName"] == "default"
        assert pod["automountServiceAccountToken"] is False


def test_without_the_chart_the_operator_defaults_to_the_default_account():
    config = OperatorConfig.from_env({})
    assert (config.builder_service_account, config.serving_service_account) == ("default", "default")
    builder, serving = pods_built_with(OperatorConfig(builder_service_account="b", serving_service_account="s"))
    assert builder["serviceAccountName"] == "b" and serving["serviceAccountName"] == "s"


def test_created_accounts_exist_in_every_namespace_the_chart_knows_and_have_no_token(helm):
    docs = render(helm, "--set", "builder.serviceAccount.create=true", "--set", "serving.serviceAccount.create=true",
                  "--set-json", 'serving.serviceAccount.annotations={"iam.example/role":"reader"}',
                  "--set-json", 'workloadNamespaces=["team-a"]',
                  "--set-json", 'faissIndexDefaults={"dimension":8,"source":{"s3":{"bucket":"b","key":"k"}},"storage":{"bucket":"i"}}',
                  "--set-json", 'faissIndexes=[{"name":"a","horizon":"6h"},{"name":"b","horizon":"6h","namespace":"team-b"},{"name":"c","horizon":"6h","namespace":"team-a"}]')
    env = operator_env(docs)
    assert env["FAISS_OPERATOR_BUILDER_SERVICE_ACCOUNT"] == "rel-faiss-operator-builder"
    assert env["FAISS_OPERATOR_SERVING_SERVICE_ACCOUNT"] == "rel-faiss-operator-serving"
    found = accounts(docs)
    for name in ("rel-faiss-operator-builder", "rel-faiss-operator-serving"):
        for ns in ("faiss-system", "team-a", "team-b"):
            sa = found.pop((ns, name))
            assert sa["automountServiceAccountToken"] is False
            assert sa["metadata"]["labels"]["app.kubernetes.io/component"] in ("builder", "serving")
        assert found[("faiss-system", "rel-faiss-operator")]
    assert accounts(docs)[("team-b", "rel-faiss-operator-serving")]["metadata"]["annotations"] == {"iam.example/role": "reader"}
    assert "annotations" not in accounts(docs)[("team-b", "rel-faiss-operator-builder")]["metadata"]
    builder, serving = pods_built_with(OperatorConfig.from_env(env))
    assert builder["serviceAccountName"] == "rel-faiss-operator-builder" and builder["automountServiceAccountToken"] is False
    assert serving["serviceAccountName"] == "rel-faiss-operator-serving" and serving["automountServiceAccountToken"] is False


def test_a_named_account_is_used_as_is_and_created_only_when_asked(helm):
    docs = render(helm, "--set", "builder.serviceAccount.name=team-builder")
    assert operator_env(docs)["FAISS_OPERATOR_BUILDER_SERVICE_ACCOUNT"] == "team-builder"
    assert not [k for k in accounts(docs) if k[1] == "team-builder"]  # exists already in the index namespaces
    docs = render(helm, "--set", "builder.serviceAccount.name=team-builder", "--set", "builder.serviceAccount.create=true")
    assert accounts(docs)[("faiss-system", "team-builder")]["automountServiceAccountToken"] is False


def test_no_role_or_binding_names_a_builder_or_serving_account(helm):
    docs = render(helm, "--set", "builder.serviceAccount.create=true", "--set", "serving.serviceAccount.create=true",
                  "--set", "rbac.readSourceSecrets=true")
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings
    subjects = {s["name"] for b in bindings for s in b["subjects"]}
    assert subjects == {"rel-faiss-operator", "rel-faiss-operator-test"}  # the operator, and the helm test pod
    test_binding = next(b for b in bindings if b["metadata"]["name"] == "rel-faiss-operator-test")
    assert test_binding["kind"] == "RoleBinding" and test_binding["roleRef"]["kind"] == "Role"


def test_the_helm_test_account_gives_its_token_only_to_the_test_pod(helm):
    docs = render(helm)
    sa = next(d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "rel-faiss-operator-test")
    assert sa["automountServiceAccountToken"] is False
    pods = [d for d in docs if d["kind"] == "Pod"]
    assert [p["spec"]["serviceAccountName"] for p in pods] == ["rel-faiss-operator-test"]
    assert pods[0]["spec"]["automountServiceAccountToken"] is True
    assert not [d for d in render(helm, "--set", "tests.enabled=false") if d["metadata"]["name"] == "rel-faiss-operator-test"]
