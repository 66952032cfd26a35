"""A tiny dict-in/dict-out Kubernetes REST client for the local dev/test stack.

Test/dev infrastructure only. The node agent writes pod status with JSON merge
patches and streams raw watch events; plain JSON over `requests` keeps that exact
(no model objects, no strategic-merge surprises) and works with any kubeconfig the
official client can load (client certs or tokens). One requests.Session per thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import requests
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

Obj = dict[str, Any]


class ApiError(Exception):
    """Non-2xx answer; `status` is the HTTP code, `body` the decoded Status if any."""

    def __init__(self, status: int, body: Any, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body}")
        self.status = status
        self.body = body


class Kube:
    """Minimal REST client bound to one API server."""

    def __init__(self, kubeconfig: str | None = None, timeout: float = 30.0) -> None:
        cfg = k8s_client.Configuration()
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.server = cfg.host.rstrip("/")
        self._verify: str | bool = cfg.ssl_ca_cert or cfg.verify_ssl
        self._cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file else None
        self._headers = {}
        token = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if token:
            self._headers["Authorization"] = token if token.startswith("Bearer ") \
                else f"Bearer {token}"
        self.timeout = timeout
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.trust_env = False  # never route through proxies from the environment
            s.verify = self._verify
            s.cert = self._cert
            s.headers.update(self._headers)
            self._local.session = s
        return s

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json", params: dict[str, Any] | None = None,
                timeout: float | None = None) -> Obj:
        data = None if body is None else json.dumps(body)
        resp = self.session.request(method, self.server + path, data=data, params=params,
                                    headers={"Content-Type": content_type},
                                    timeout=timeout or self.timeout)
        if resp.status_code >= 300:
            try:
                detail: Any = resp.json()
            except ValueError:
                detail = resp.text[:500]
            raise ApiError(resp.status_code, detail, f"{method} {path}")
        return resp.json() if resp.content else {}

    def get(self, path: str, **params: Any) -> Obj:
        return self.request("GET", path, params=params or None)

    def get_or_none(self, path: str) -> Obj | None:
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def post(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body)

    def put(self, path: str, body: Obj) -> Obj:
        return self.request("PUT", path, body)

    def merge_patch(self, path: str, body: Obj) -> Obj:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str, body: Obj | None = None) -> Obj:
        return self.request("DELETE", path, body)

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 300
              ) -> Iterator[Obj]:
        """Yield watch events; the caller handles ERROR events (410 Gone: re-list)."""
        params = {"watch": "1", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds)}
        with self.session.get(self.server + path, params=params, stream=True,
                              timeout=(10, timeout_seconds + 30)) as resp:
            if resp.status_code >= 300:
                raise ApiError(resp.status_code, resp.text[:500], f"WATCH {path}")
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)


def pod_path(ns: str, name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/pods/{name}" + (f"/{sub}" if sub else "")
