"""The few Kubernetes API calls faissctl makes, behind one small interface.

``Kube`` is what commands use; ``KubeClient`` implements it with the official client
(kubeconfig with ``--context``, or the pod's service account), and unit tests pass a fake.
Every API error is translated here, once, into a ``CtlError`` that says what to do:
no cluster, no such index, CRD not installed, RBAC denied.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from faissctl.errors import CtlError, forbidden, no_cluster, not_found
from indexops_api.api_status import status_body
from indexops_api.constants import GROUP, PLURAL, VERSION

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TIMEOUT = 15  # seconds per API call
CRD = f"{PLURAL}.{GROUP}"


class Kube(Protocol):
    """What the commands need from the API server (dicts as the API returns them, camelCase)."""

    namespace: str  # the default namespace: -n, else the kubeconfig context's, else "default"

    def get_index(self, namespace: str, name: str) -> dict[str, Any]: ...

    def list_indexes(self, namespace: str | None) -> list[dict[str, Any]]: ...  # None: all namespaces

    def patch_index(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...  # JSON merge patch

    def list_events(self, namespace: str, name: str) -> list[dict[str, Any]]: ...

    def service_endpoints(self, namespace: str, service: str, port_name: str) -> list[str]: ...  # ready pod URLs

    def proxy_post(self, namespace: str, service: str, port_name: str, path: str, body: bytes) -> tuple[int, bytes]: ...


@dataclass(frozen=True)
class KubeOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


def explain(exc: Exception, what: str, namespace: str | None = None) -> CtlError:
    """A readable ``CtlError`` for an API or connection error while doing ``what``."""
    from kubernetes.client.rest import ApiException  # noqa: PLC0415 - keep `validate`/`build` free of the client
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    if isinstance(exc, ApiException):
        body = status_body(exc)
        message = body.get("message") or exc.reason or "error"
        where = f" in namespace {namespace!r}" if namespace else ""
        if exc.status == 404:
            if (body.get("details") or {}).get("name"):
                return not_found(f"{what}: FaissIndex {body['details']['name']!r} not found{where}")
            return not_found(
                f"{what}: the FaissIndex API ({CRD}) is not installed on this cluster; "
                "install the operator's chart (it installs the CRD) or `kubectl apply -f crds/`"
            )
        if exc.status == 403:
            return forbidden(f"{what}: permission denied by RBAC: {message}")
        if exc.status == 401:
            return no_cluster(f"{what}: the API server rejected the credentials of this kubeconfig context ({message})")
        if exc.status == 422:
            return CtlError(f"{what}: the API server rejected the change: {message}")
        return CtlError(f"{what}: API error {exc.status}: {message}")
    if isinstance(exc, HTTPError | OSError):
        return no_cluster(f"{what}: cannot reach the Kubernetes API server: {_root_cause(exc)}")
    return CtlError(f"{what}: {type(exc).__name__}: {exc}")


def _root_cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = reason.reason  # type: ignore[attr-defined]
    return str(reason or exc)


class KubeClient:
    """``Kube`` over the official client; construct with ``connect``."""

    def __init__(self, api: Any, namespace: str, server: str):
        from kubernetes import client  # noqa: PLC0415

        self.api = api
        self.namespace = namespace
        self.server = server
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)

    def _call(self, what: str, namespace: str | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=TIMEOUT, **kwargs)
        except Exception as exc:
            raise explain(exc, what, namespace) from None

    def get_index(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(f"get faissindex {name}", namespace, self.custom.get_namespaced_custom_object,
                          GROUP, VERSION, namespace, PLURAL, name)

    def list_indexes(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            result = self._call("list faissindexes", None, self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        else:
            result = self._call("list faissindexes", namespace, self.custom.list_namespaced_custom_object,
                                GROUP, VERSION, namespace, PLURAL)
        return list(result.get("items", []))

    def patch_index(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        # The generated client sends a dict body as a JSON merge patch only if told to.
        return self._call(f"patch faissindex {name}", namespace, self.custom.patch_namespaced_custom_object,
                          GROUP, VERSION, namespace, PLURAL, name, patch,
                          _content_type="application/merge-patch+json")

    def list_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name},involvedObject.kind=FaissIndex"
        result = self._call("list events", namespace, self.core.list_namespaced_event, namespace, field_selector=selector)
        return [self.api.sanitize_for_serialization(e) for e in result.items]

    def service_endpoints(self, namespace: str, service: str, port_name: str) -> list[str]:
        result = self._call(f"list endpointslices of service {service}", namespace,
                            self.discovery.list_namespaced_endpoint_slice, namespace,
                            label_selector=f"kubernetes.io/service-name={service}")
        urls = []
        for item in result.items:
            port = next((p.port for p in item.ports or [] if p.name == port_name), None)
            for ep in item.endpoints or []:
                if port and (ep.conditions is None or ep.conditions.ready is not False):
                    urls += [f"http://{_host(addr)}:{port}" for addr in ep.addresses]
        return urls

    def proxy_post(self, namespace: str, service: str, port_name: str, path: str, body: bytes) -> tuple[int, bytes]:
        """POST through the API server's service proxy (needs ``get`` on ``services/proxy``)."""
        url = f"/api/v1/namespaces/{namespace}/services/{service}:{port_name}/proxy/{path.lstrip('/')}"
        try:
            raw = self.api.call_api(url, "POST", header_params={"Content-Type": "application/json"}, body=json.loads(body),
                                    auth_settings=["BearerToken"], _preload_content=False, _request_timeout=TIMEOUT)
            return int(raw.status), bytes(raw.data)
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status and status not in (401, 403):  # the server's (or the proxy's) answer, e.g. 503
                text = getattr(exc, "body", "") or ""
                return int(status), text.encode() if isinstance(text, str) else bytes(text)
            raise explain(exc, f"POST {url}", namespace) from None


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def connect(options: KubeOptions) -> KubeClient:
    """Load the kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``) or the in-cluster config."""
    from kubernetes import client, config  # noqa: PLC0415

    path = options.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config")
    in_cluster = not options.kubeconfig and not os.environ.get("KUBECONFIG") and not os.path.exists(path) \
        and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    configuration = client.Configuration()
    namespace = options.namespace
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)
            if namespace is None and IN_CLUSTER_NAMESPACE.exists():
                namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
        else:
            if not os.path.exists(path):
                raise no_cluster(
                    f"no Kubernetes cluster configured: {path} does not exist. Set KUBECONFIG, pass --kubeconfig, "
                    "or run faissctl in a pod"
                )
            contexts, active = config.list_kube_config_contexts(config_file=path)
            chosen = next((c for c in contexts if c.get("name") == options.context), None) if options.context else active
            if chosen is None:
                names = ", ".join(sorted(c.get("name", "?") for c in contexts)) or "none"
                raise no_cluster(f"context {options.context!r} not found in {path} (contexts: {names})")
            config.load_kube_config(config_file=path, context=options.context, client_configuration=configuration)
            if namespace is None:
                namespace = (chosen.get("context") or {}).get("namespace")
    except config.ConfigException as exc:
        raise no_cluster(f"cannot load the Kubernetes configuration from {path}: {exc}") from None
    configuration.retries = 1  # fail fast when the API server is down; the caller says so
    return KubeClient(client.ApiClient(configuration), namespace or "default", configuration.host)

