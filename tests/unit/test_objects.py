"""Pure manifests the operator creates: ownership, security, wiring."""

from __future__ import annotations

import json

from indexops_api.build_request import BuildRequest
from indexops_api.layout import build_key, job_name, version_id
from faiss_operator.config import OperatorConfig
from faiss_operator.model import JobToCreate
from faiss_operator.objects import build_deployment, build_job, build_service

from factories import NOW, spec

CONFIG = OperatorConfig(image="example/faiss:1")


def _job():
    s = spec(**{"storage.credentialsSecret": {"name": "creds"}})
    key = build_key(s)
    return s, build_job(index="idx", namespace="ns", uid="u1", spec=s, job=JobToCreate(job_name("idx", key), version_id(NOW, key), key, 1, "Spec"), config=CONFIG)


def test_the_builder_job_is_owned_by_its_index_and_carries_the_build_request():
    s, job = _job()
    owner = job["metadata"]["ownerReferences"][0]
    assert owner["uid"] == "u1" and owner["controller"] is True and owner["kind"] == "FaissIndex"
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    request = BuildRequest.model_validate(json.loads(env["FAISS_BUILD_REQUEST"]))
    assert request.spec == s and request.version == job["metadata"]["annotations"]["faiss.indexops.io/version"]
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert container["command"] == ["faiss-index-builder"]


def test_operator_pods_run_non_root_with_a_read_only_root_filesystem():
    s, job = _job()
    dep = build_deployment(index="idx", namespace="ns", uid="u1", spec=s, config=CONFIG)
    for pod in (job["spec"]["template"]["spec"], dep["spec"]["template"]["spec"]):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_serving_service_selects_exactly_the_serving_pods():
    s = spec()
    dep = build_deployment(index="idx", namespace="ns", uid="u1", spec=s, config=CONFIG)
    svc = build_service(index="idx", namespace="ns", uid="u1", spec=s)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in svc["spec"]["selector"].items())
    assert dep["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FAISS_POINTER_KEY"]["value"] == "faiss-indexes/ns/idx/6h/pointer.json"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_a_postgres_source_passes_the_dsn_to_the_builder_from_its_secret_only():
    s = spec(**{"source": {"postgres": {"dsnSecret": {"name": "pg", "key": "url"}, "table": "embeddings"}}})
    key = build_key(s)
    job = build_job(index="idx", namespace="ns", uid="u1", spec=s, job=JobToCreate(job_name("idx", key), version_id(NOW, key), key, 1, "Spec"), config=CONFIG)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FAISS_POSTGRES_DSN"]["valueFrom"] == {"secretKeyRef": {"name": "pg", "key": "url"}}
    request = json.loads(env["FAISS_BUILD_REQUEST"]["value"])
    assert request["spec"]["source"]["postgres"]["dsnSecret"] == {"name": "pg", "key": "url"}
