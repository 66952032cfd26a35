"""Pods on the dev stack authenticate with real, bound service-account tokens under RBAC.

This is what lets the operator's own RBAC (chart Roles) be tested for real: the node
agent mounts a TokenRequest token at the standard in-cluster path, the official
client's in-cluster config picks it up, and the API server enforces RBAC on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from helpers import wait_until

pytestmark = pytest.mark.e2e

# Runs inside the pod: who am I, and may I list secrets? Result → termination message.
PROBE = """
import sys, time
from kubernetes import client, config
config.load_incluster_config()
api = client.ApiClient()
user = client.AuthenticationV1Api(api).create_self_subject_review(
    client.V1SelfSubjectReview()).status.user_info.username
ns = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read()
want_ok = sys.argv[1] == 'expect-ok'
for attempt in range(20):
    try:
        client.CoreV1Api(api).list_namespaced_secret(ns)
        result = 'ok'
    except client.ApiException as e:
        result = str(e.status)
    if result == 'ok' or not want_ok:
        break
    time.sleep(0.5)  # the RoleBinding may take a moment to reach the authorizer cache
open('/dev/termination-log', 'w').write(f'{user} {result}')
"""


@pytest.fixture
def ns(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = f"harness-sa-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_service_account(name, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="reader")))
    wait_until("default ServiceAccount", lambda: any(
        sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items))
    yield name
    core.delete_namespace(name)


def run_probe_pod(core: client.CoreV1Api, ns: str, name: str, mode: str) -> str:
    core.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(service_account_name="reader", restart_policy="Never",
                              containers=[client.V1Container(
                                  name="probe", image="local/python",
                                  command=["python", "-c", PROBE, mode])])))

    def message() -> str | None:
        st = core.read_namespaced_pod_status(name, ns).status
        if st.phase not in ("Succeeded", "Failed"):
            return None
        term = st.container_statuses[0].state.terminated
        return term.message or f"exit {term.exit_code}, no message"

    return wait_until(f"pod {name} finished", message)


def test_a_pods_projected_token_authenticates_and_rbac_denies_then_allows_listing_secrets(
        api_client: client.ApiClient, ns: str) -> None:
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    user = f"system:serviceaccount:{ns}:reader"
    assert run_probe_pod(core, ns, "before", "expect-denied") == f"{user} 403"
    rbac.create_namespaced_role(ns, client.V1Role(
        metadata=client.V1ObjectMeta(name="secret-reader"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list"])]))
    rbac.create_namespaced_role_binding(ns, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="secret-reader"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                  name="secret-reader"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=ns)]))
    assert run_probe_pod(core, ns, "after", "expect-ok") == f"{user} ok"


def test_a_pod_with_automount_disabled_gets_no_service_account_token(
        api_client: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api_client)
    code = ("import os; p = '/var/run/secrets/kubernetes.io/serviceaccount/token';"
            "open('/dev/termination-log', 'w').write(str(os.path.exists(p)))")
    core.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name="no-token"),
        spec=client.V1PodSpec(automount_service_account_token=False, restart_policy="Never",
                              containers=[client.V1Container(name="c", image="local/python",
                                                             command=["python", "-c", code])])))

    def message() -> str | None:
        st = core.read_namespaced_pod_status("no-token", ns).status
        if st.phase not in ("Succeeded", "Failed"):
            return None
        return st.container_statuses[0].state.terminated.message

    assert wait_until("pod no-token finished", message) == "False"
