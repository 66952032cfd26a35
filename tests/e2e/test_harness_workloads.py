"""The dev stack's node agent runs Jobs and Deployments like a kubelet would.

These tests check the harness itself (hack/stack), not the operator: pods run as
local processes through the real Job, ReplicaSet/Deployment, EndpointSlice and
namespace controllers, with kubelet-shaped status, loopback pod IPs, probes and
graceful deletion.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client

from helpers import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = f"harness-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until("default ServiceAccount", lambda: any(
        sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items))
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException:
        pass


def job(name: str, code: str, env: list[client.V1EnvVar] | None = None) -> client.V1Job:
    container = client.V1Container(name="main", image="local/python", env=env,
                                   command=["python", "-c", code])
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never", containers=[container]))))


def job_condition(batch: client.BatchV1Api, ns: str, name: str) -> str | None:
    conds = batch.read_namespaced_job_status(name, ns).status.conditions or []
    return next((c.type for c in conds if c.type in ("Complete", "Failed")
                 and c.status == "True"), None)


def job_pod(core: client.CoreV1Api, ns: str, name: str) -> client.V1Pod:
    return core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items[0]


def pod_processes(uids: set[str]) -> list[int]:
    """Host pids of processes the node agent started for these pod uids."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"FAISS_STACK_POD_UID=") and item.split(b"=", 1)[1].decode() in uids:
                found.append(int(entry))
    return found


def test_a_job_whose_pod_runs_python_succeeds_and_its_output_is_logged(
        api_client: client.ApiClient, ns: str, stack_env: dict[str, str]) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    env = [client.V1EnvVar(name="POD_NAME", value_from=client.V1EnvVarSource(
        field_ref=client.V1ObjectFieldSelector(field_path="metadata.name"))),
        client.V1EnvVar(name="GREETING", value="hello from $(POD_NAME)")]
    batch.create_namespaced_job(ns, job("ok", "import os; print(os.environ['GREETING'])", env))
    assert wait_until("Job ok finished", lambda: job_condition(batch, ns, "ok")) == "Complete"
    pod = job_pod(core, ns, "ok")
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (0, "Completed")
    log = Path(stack_env["FAISS_STACK_DIR"], "pods", f"{ns}_{pod.metadata.name}", "main.log")
    assert log.read_text().strip() == f"hello from {pod.metadata.name}"
    kubectl = subprocess.run(["kubectl", "logs", "-n", ns, pod.metadata.name],
                             capture_output=True, text=True, timeout=30,
                             env={**os.environ, "KUBECONFIG": stack_env["KUBECONFIG"]})
    assert kubectl.stdout.strip() == f"hello from {pod.metadata.name}", kubectl.stderr


def test_a_failing_job_pod_reports_its_exit_code_and_termination_message(
        api_client: client.ApiClient, ns: str) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    code = "open('/dev/termination-log', 'w').write('index build failed: boom'); raise SystemExit(3)"
    batch.create_namespaced_job(ns, job("bad", code))
    assert wait_until("Job bad finished", lambda: job_condition(batch, ns, "bad")) == "Failed"
    pod = job_pod(core, ns, "bad")
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason, term.message) == (3, "Error", "index build failed: boom")


def _http_deployment(name: str, replicas: int, bind: list[str] | None = None
                     ) -> client.V1Deployment:
    labels = {"app": name}
    container = client.V1Container(
        name="web", image="local/python",
        command=["python", "-m", "http.server", "8080", *(
            ["--bind", "$(POD_IP)"] if bind is None else bind)],
        env=[client.V1EnvVar(name="POD_IP", value_from=client.V1EnvVarSource(
            field_ref=client.V1ObjectFieldSelector(field_path="status.podIP")))],
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        readiness_probe=client.V1Probe(http_get=client.V1HTTPGetAction(path="/", port="http"),
                                       period_seconds=1))
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                                              spec=client.V1PodSpec(containers=[container]))))


def _available(apps: client.AppsV1Api, ns: str, name: str, replicas: int) -> bool:
    st = apps.read_namespaced_deployment_status(name, ns).status
    avail = any(c.type == "Available" and c.status == "True" for c in st.conditions or [])
    return avail and st.ready_replicas == replicas


def test_a_deployment_with_an_http_readiness_probe_becomes_available_on_two_loopback_ips(
        api_client: client.ApiClient, ns: str) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    apps.create_namespaced_deployment(ns, _http_deployment("web", 2))
    core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"},
                                  ports=[client.V1ServicePort(port=80, target_port="http")])))
    wait_until("Deployment web Available", lambda: _available(apps, ns, "web", 2))
    pods = core.list_namespaced_pod(ns, label_selector="app=web").items
    ips = sorted(p.status.pod_ip for p in pods)
    assert len(set(ips)) == 2
    assert all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)  # each stack has its own 127.S.0.0/21 range
    assert all(p.status.host_ip == "127.0.0.1" and p.spec.node_name == "faiss-local-node"
               for p in pods)
    session = requests.Session()
    session.trust_env = False
    for ip in ips:
        assert session.get(f"http://{ip}:8080/", timeout=5).status_code == 200

    def slice_ips() -> list[str] | None:
        slices = discovery.list_namespaced_endpoint_slice(
            ns, label_selector="kubernetes.io/service-name=web").items
        got = sorted(a for s in slices for e in s.endpoints or [] if e.conditions.ready
                     for a in e.addresses)
        return got if got == ips else None

    wait_until("EndpointSlice lists both pod IPs", slice_ips, 30)


def test_replicas_that_bind_the_wildcard_address_each_serve_on_their_own_pod_ip(
        api_client: client.ApiClient, ns: str) -> None:
    """Charts bind 0.0.0.0 / '::'; the agent's bind shim maps that to the pod IP."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(ns, _http_deployment("wild", 2, bind=[]))
    wait_until("Deployment wild Available", lambda: _available(apps, ns, "wild", 2))
    ips = {p.status.pod_ip for p in core.list_namespaced_pod(ns, label_selector="app=wild").items}
    assert len(ips) == 2
    session = requests.Session()
    session.trust_env = False
    for ip in ips:
        assert session.get(f"http://{ip}:8080/", timeout=5).status_code == 200


def test_deleting_a_deployments_namespace_leaves_no_process_behind(
        api_client: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    name = f"harness-del-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_until("default ServiceAccount", lambda: any(
        sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items))
    apps.create_namespaced_deployment(name, _http_deployment("web", 2))
    wait_until("Deployment web Available", lambda: _available(apps, name, "web", 2))
    uids = {p.metadata.uid for p in core.list_namespaced_pod(name).items}
    assert pod_processes(uids), "expected the pods' processes to be running"
    core.delete_namespace(name)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(name)
            return False
        except client.ApiException as e:
            return e.status == 404

    wait_until(f"namespace {name} deleted", namespace_gone, 120)
    assert pod_processes(uids) == []


def test_a_pod_sees_secret_configmap_and_downward_api_values_as_env_and_files(
        api_client: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds"), string_data={"key": "s3cr3t"}))
    core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg"), data={"mode": "fast", "extra": "x"}))
    script = ("import os, pathlib;"
              "files = [pathlib.Path(p).read_text() for p in "
              "('/etc/cfg/mode', '/etc/creds/key', '/etc/podinfo/labels')];"
              "print('|'.join([os.environ['SECRET'], os.environ['MODE'], os.environ['CFG_extra'],"
              " os.environ['MEM'], os.environ['NS'], *files]))")
    container: dict[str, Any] = {
        "name": "main", "image": "local/python", "command": ["python", "-c", script],
        "resources": {"limits": {"memory": "64Mi"}},
        "env": [{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "NOPE", "valueFrom": {"configMapKeyRef": {
                    "name": "absent", "key": "x", "optional": True}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                    "resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                         {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
                         {"name": "podinfo", "mountPath": "/etc/podinfo"}]}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "env-check", "labels": {"app": "env-check"}},
           "spec": {"restartPolicy": "Never", "containers": [container], "volumes": [
               {"name": "cfg", "configMap": {"name": "cfg"}},
               {"name": "creds", "secret": {"secretName": "creds"}},
               {"name": "podinfo", "downwardAPI": {"items": [
                   {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}
    core.create_namespaced_pod(ns, pod)
    wait_until("pod env-check finished", lambda: core.read_namespaced_pod_status(
        "env-check", ns).status.phase in ("Succeeded", "Failed"))
    # _preload_content=False: client 36.0.x returns the repr of bytes otherwise
    # (kubernetes-client/python#2596).
    out = core.read_namespaced_pod_log("env-check", ns, _preload_content=False).data
    out = out.decode().strip()
    assert out == f's3cr3t|fast|x|64|{ns}|fast|s3cr3t|app="env-check"'
