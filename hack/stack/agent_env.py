"""Container environment for pods run by the dev/test node agent, resolved like a kubelet.

Test/dev infrastructure only. The operator's pods read their configuration from env
(secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef, envFrom) and use
`$(VAR)` references in command/args; reproducing the kubelet's rules here keeps the
pod specs the operator writes identical to what a real cluster runs.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from hack.stack.kube_rest import ApiError, Kube

Obj = dict[str, Any]
NODE_ALLOCATABLE = {"cpu": "2", "memory": "24Gi", "ephemeral-storage": "100Gi"}
_SUFFIX = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_QTY = re.compile(r"^([+-]?[0-9]*\.?[0-9]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$")
_KEYED = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """Pod config cannot be resolved yet (missing secret, bad ref): like
    CreateContainerConfigError, the kubelet retries."""


def parse_quantity(q: str | int | float) -> Decimal:
    """Kubernetes resource quantity ('500m', '2Gi', '1e3') as a Decimal."""
    m = _QTY.match(str(q).strip())
    if not m:
        raise ConfigError(f"invalid quantity {q!r}")
    number, suffix = Decimal(m.group(1)), m.group(2)
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    if suffix not in _SUFFIX:
        raise ConfigError(f"invalid quantity suffix in {q!r}")
    return number * Decimal(_SUFFIX[suffix])


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` escapes, unknown references stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    value = lookup(name)
                    out.append(value if value is not None else f"$({name})")
                    i = end + 1
                    continue
            out.append(ch + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def field_value(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    """Value of a downward-API fieldRef path for this pod."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    keyed = _KEYED.match(path)
    if keyed:
        return str(meta.get(keyed.group(1), {}).get(keyed.group(2), ""))
    simple: dict[str, str] = {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"], "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1], {}) or {}
        return "\n".join(f"{k}={_quote(v)}" for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def resource_value(pod: Obj, container_name: str, ref: Obj) -> str:
    """resourceFieldRef: limits fall back to node allocatable, rounded up by divisor."""
    containers = pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
    match = [c for c in containers if c["name"] == (ref.get("containerName") or container_name)]
    if not match:
        raise ConfigError(f"resourceFieldRef: no container {ref.get('containerName')!r}")
    kind, _, resource = ref["resource"].partition(".")
    res = match[0].get("resources", {}) or {}
    raw = (res.get(kind) or {}).get(resource)
    if raw is None:
        raw = NODE_ALLOCATABLE.get(resource, "0") if kind == "limits" else \
            (res.get("limits") or {}).get(resource, "0")
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        raise ConfigError("resourceFieldRef divisor is zero")
    return str(max(0, math.ceil(parse_quantity(raw) / divisor)))


def _decoded(obj: Obj, kind: str) -> dict[str, str]:
    if kind == "secrets":
        return {k: base64.b64decode(v).decode(errors="replace")
                for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


class SourceCache:
    """Secrets/ConfigMaps fetched once per resolution (None = does not exist)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.ns = kube, namespace
        self._cache: dict[tuple[str, str], dict[str, str] | None] = {}

    def get(self, kind: str, name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key not in self._cache:
            try:
                obj = self.kube.get_or_none(f"/api/v1/namespaces/{self.ns}/{kind}/{name}")
            except ApiError as e:
                raise ConfigError(f"cannot read {kind[:-1]} {name!r}: HTTP {e.status}") from e
            self._cache[key] = None if obj is None else _decoded(obj, kind)
        return self._cache[key]

    def key(self, kind: str, ref: Obj) -> str | None:
        """Value of a secretKeyRef/configMapKeyRef; None if optional and missing."""
        data = self.get(kind, ref["name"])
        optional = bool(ref.get("optional"))
        if data is None:
            if optional:
                return None
            raise ConfigError(f'{kind[:-1]} "{ref["name"]}" not found')
        if ref["key"] not in data:
            if optional:
                return None
            raise ConfigError(f'couldn\'t find key {ref["key"]} in {kind[:-1]} '
                              f'{self.ns}/{ref["name"]}')
        return data[ref["key"]]


def container_env(pod: Obj, container: Obj, sources: SourceCache, pod_ip: str, host_ip: str,
                  base: Mapping[str, str]) -> dict[str, str]:
    """Final environment of one container: base (PATH, service vars), envFrom, env."""
    env: dict[str, str] = dict(base)
    for src in container.get("envFrom") or []:
        kind, ref = ("secrets", src["secretRef"]) if "secretRef" in src \
            else ("configmaps", src.get("configMapRef") or {})
        data = sources.get(kind, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind[:-1]} "{ref.get("name")}" not found')
        prefix = src.get("prefix", "")
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env.get)
            continue
        vf = var["valueFrom"]
        value: str | None
        if "secretKeyRef" in vf:
            value = sources.key("secrets", vf["secretKeyRef"])
        elif "configMapKeyRef" in vf:
            value = sources.key("configmaps", vf["configMapKeyRef"])
        elif "fieldRef" in vf:
            value = field_value(pod, vf["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in vf:
            value = resource_value(pod, container["name"], vf["resourceFieldRef"])
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(vf)}")
        if value is not None:
            env[name] = value
    return env


def expand_argv(container: Obj, env: Mapping[str, str]) -> list[str]:
    """command + args with `$(VAR)` expanded against the container env."""
    return [expand(str(a), env.get) for a in
            (container.get("command") or []) + (container.get("args") or [])]
