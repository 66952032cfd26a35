"""faissctl's cluster errors: every API or connection failure becomes one readable line and an exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from faissctl.errors import EXIT_FAILED, EXIT_FORBIDDEN, EXIT_NO_CLUSTER, EXIT_NOT_FOUND, CtlError
from faissctl.kube import KubeOptions, connect, explain


def _api_error(status: int, body: dict | None = None, reason: str = "") -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps(body) if body is not None else None
    return exc


def test_a_missing_object_names_the_index_and_namespace() -> None:
    body = {"kind": "Status", "reason": "NotFound", "details": {"name": "nope", "group": "faiss.indexops.io", "kind": "faissindexes"}}
    error = explain(_api_error(404, body), "get faissindex nope", "team-a")
    assert error.exit_code == EXIT_NOT_FOUND
    assert error.message == "get faissindex nope: FaissIndex 'nope' not found in namespace 'team-a'"


def test_a_404_without_an_object_name_means_the_crd_is_not_installed() -> None:
    error = explain(_api_error(404, {"kind": "Status", "message": "the server could not find the requested resource"}), "list faissindexes")
    assert error.exit_code == EXIT_NOT_FOUND
    assert "the FaissIndex API (faissindexes.faiss.indexops.io) is not installed on this cluster" in error.message


def test_rbac_denial_quotes_the_api_server() -> None:
    message = 'faissindexes.faiss.indexops.io "x" is forbidden: User "dev" cannot patch resource "faissindexes"'
    error = explain(_api_error(403, {"message": message}), "patch faissindex x", "default")
    assert error.exit_code == EXIT_FORBIDDEN and error.message == f"patch faissindex x: permission denied by RBAC: {message}"


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [(401, EXIT_NO_CLUSTER, "rejected the credentials"), (422, EXIT_FAILED, "the API server rejected the change: bad pin"),
     (500, EXIT_FAILED, "API error 500: bad pin")],
)
def test_other_api_errors_keep_the_server_message(status: int, code: int, text: str) -> None:
    error = explain(_api_error(status, {"message": "bad pin"}), "patch faissindex x")
    assert error.exit_code == code and text in error.message


def test_an_unreachable_api_server_is_a_no_cluster_error_with_the_root_cause() -> None:
    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    error = explain(MaxRetryError(None, "/apis/faiss.indexops.io/v1alpha1", reason=cause), "get faissindex x")
    assert error.exit_code == EXIT_NO_CLUSTER
    assert error.message.startswith("get faissindex x: cannot reach the Kubernetes API server: ")
    assert "Connection refused" in error.message


def _kubeconfig(path: Path, namespace: str | None = "team-a") -> Path:
    context = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dev", "context": context}, {"name": "prod", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def test_connect_takes_the_namespace_from_the_context_unless_given(tmp_path: Path) -> None:
    config = str(_kubeconfig(tmp_path / "config"))
    assert connect(KubeOptions(kubeconfig=config)).namespace == "team-a"
    assert connect(KubeOptions(kubeconfig=config, namespace="other")).namespace == "other"
    assert connect(KubeOptions(kubeconfig=config, context="prod")).namespace == "default"


def test_connect_names_the_available_contexts_when_one_is_unknown(tmp_path: Path) -> None:
    config = str(_kubeconfig(tmp_path / "config"))
    with pytest.raises(CtlError) as info:
        connect(KubeOptions(kubeconfig=config, context="staging"))
    assert info.value.exit_code == EXIT_NO_CLUSTER
    assert "context 'staging' not found in" in info.value.message and "(contexts: dev, prod)" in info.value.message


def test_connect_without_any_kubeconfig_says_how_to_configure_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(CtlError) as info:
        connect(KubeOptions())
    assert info.value.exit_code == EXIT_NO_CLUSTER
    assert "no Kubernetes cluster configured" in info.value.message and "Set KUBECONFIG, pass --kubeconfig" in info.value.message
