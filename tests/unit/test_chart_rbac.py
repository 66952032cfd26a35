"""The chart grants the operator exactly the API calls its code makes, nothing more, and
only in the watched namespaces when some are set (``helm template``, both shapes)."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import yaml

from faiss_operator.permissions import REQUIRED, SOURCE_SECRETS

CHART = Path(__file__).resolve().parents[2] / "charts" / "faiss-operator"
RELEASE_NS = "faiss-system"


def render(helm: str, *args: str) -> list[dict]:
    done = subprocess.run([helm, "template", "rel", str(CHART), "-n", RELEASE_NS, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def rbac(docs: list[dict]) -> list[dict]:
    kinds = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    return [d for d in docs if d["kind"] in kinds and not d["metadata"]["name"].endswith(("-leader-election", "-test"))]


def granted(rules: list[dict]) -> dict[tuple[str, str], frozenset[str]]:
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in rules:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out[(group, resource)] |= set(rule["verbs"])
    return {k: frozenset(v) for k, v in out.items()}


def grants_by_namespace(docs: list[dict]) -> dict[str | None, dict[tuple[str, str], frozenset[str]]]:
    """What the operator's ServiceAccount may do, per namespace (None = cluster-wide), through bindings."""
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out: dict[str | None, dict] = defaultdict(dict)
    for b in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "rel-faiss-operator", "namespace": RELEASE_NS}]
        ns = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
        ref = b["roleRef"]
        role = roles[(ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"])]
        for key, verbs in granted(role["rules"]).items():
            out[ns][key] = out[ns].get(key, frozenset()) | verbs
    return dict(out)


def test_by_default_one_cluster_role_grants_exactly_the_operators_required_permissions(helm):
    docs = rbac(render(helm))
    assert sorted(d["kind"] for d in docs) == ["ClusterRole", "ClusterRoleBinding"]
    assert grants_by_namespace(docs) == {None: REQUIRED}


def test_reading_source_secrets_is_a_separate_optional_role_with_get_only(helm):
    assert not any("secrets" in str(d) for d in rbac(render(helm)))
    docs = rbac(render(helm, "--set", "rbac.readSourceSecrets=true"))
    secrets = [d for d in docs if d["metadata"]["name"].endswith("-source-secrets")]
    assert sorted(d["kind"] for d in secrets) == ["ClusterRole", "ClusterRoleBinding"]
    assert granted(next(d for d in secrets if d["kind"] == "ClusterRole")["rules"]) == SOURCE_SECRETS


def test_the_main_role_never_reads_secrets_or_uses_wildcards(helm):
    for role in (d for d in rbac(render(helm, "--set", "watchNamespace=a")) + rbac(render(helm)) if d["kind"].endswith("Role")):
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"]
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


def test_with_watched_namespaces_the_operator_gets_roles_in_exactly_those_and_nothing_cluster_wide(helm):
    docs = render(helm, "--set", "watchNamespace=team-a", "--set-json", 'watchNamespaces=["team-b","team-a"]',
                  "--set", "rbac.readSourceSecrets=true")
    bound = grants_by_namespace(rbac(docs))
    assert not [d for d in docs if d["kind"].startswith("Cluster") and d["kind"] != "CustomResourceDefinition"]
    assert set(bound) == {"team-a", "team-b"}
    for ns in ("team-a", "team-b"):
        assert bound[ns] == {**REQUIRED, **SOURCE_SECRETS}
    # The operator is told to watch exactly those namespaces.
    env = {e["name"]: e.get("value") for d in docs if d["kind"] == "Deployment" for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FAISS_OPERATOR_NAMESPACES"] == "team-a,team-b"
    # The leader-election Lease stays in the release namespace, as a Role.
    leader = [d for d in docs if d["metadata"]["name"].endswith("-leader-election")]
    assert {(d["kind"], d["metadata"]["namespace"]) for d in leader} == {("Role", RELEASE_NS), ("RoleBinding", RELEASE_NS)}


def test_without_watched_namespaces_the_operator_watches_every_namespace(helm):
    docs = render(helm)
    env = {e["name"]: e.get("value") for d in docs if d["kind"] == "Deployment" for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FAISS_OPERATOR_NAMESPACES"] == ""


def test_the_operator_reads_its_watched_namespaces_from_the_charts_variable_and_the_old_single_one():
    from faiss_operator.config import OperatorConfig

    assert OperatorConfig.from_env({"FAISS_OPERATOR_NAMESPACES": "team-a,team-b"}).namespaces == ("team-a", "team-b")
    assert OperatorConfig.from_env({"FAISS_OPERATOR_NAMESPACE": "x", "FAISS_OPERATOR_NAMESPACES": "x, y"}).namespaces == ("x", "y")
    assert OperatorConfig.from_env({}).namespaces == ()


def test_storage_grants_reach_the_operator_as_json_and_their_secrets_are_mounted_read_only(helm):
    allowed = [{"endpoint": "https://minio.internal:9000", "buckets": ["{namespace}-indexes"], "credentialsSecret": "minio-ops"},
               {"endpoint": "", "buckets": ["shared-*"]}]
    docs = render(helm, "--set-json", f"storage.allowed={json.dumps(allowed)}", "--set", "storage.endpoint=https://s3.internal")
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert json.loads(env["FAISS_OPERATOR_STORAGE_ALLOWED"]) == allowed
    assert env["FAISS_OPERATOR_STORAGE_ENDPOINT"] == "https://s3.internal"
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["s3-minio-ops"] == {"name": "s3-minio-ops", "mountPath": "/var/run/faiss-operator/s3/minio-ops", "readOnly": True}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["s3-minio-ops"]["secret"]["secretName"] == "minio-ops"
    # The default: no grant list (the operator allows storage.endpoint only), no extra mounts.
    pod = next(d for d in render(helm) if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert "FAISS_OPERATOR_STORAGE_ALLOWED" not in {e["name"] for e in pod["containers"][0]["env"]}
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]


def test_a_grant_with_an_unknown_key_or_a_bad_endpoint_is_refused_by_the_chart_schema(helm):
    for bad in ([{"endpoint": "ftp://x"}], [{"endpoint": "http://x", "bucket": "typo"}]):
        done = subprocess.run([helm, "template", "rel", str(CHART), "--set-json", f"storage.allowed={json.dumps(bad)}"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and "/storage/allowed/0" in done.stderr
