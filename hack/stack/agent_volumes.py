"""Pod volumes for the dev/test node agent, materialised as directories on the host.

Test/dev infrastructure only. Secrets, ConfigMaps, the downward API and projected
service-account tokens (obtained through the TokenRequest API, bound to the pod, so
RBAC is real) are written into a per-pod directory; the container runtime module
then bind-mounts them at their mountPath inside the container's private mount
namespace. `refresh()` rewrites them (tokens before they expire, changed
ConfigMaps/Secrets) like the kubelet's periodic volume sync.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hack.stack.agent_env import ConfigError, expand, field_value, resource_value
from hack.stack.kube_rest import ApiError, Kube

Obj = dict[str, Any]
READ_ONLY_TYPES = ("secret", "configMap", "downwardAPI", "projected")


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class PodVolumes:
    """All volumes of one pod, under `root/<volume name>`."""

    def __init__(self, pod: Obj, kube: Kube, root: Path, pod_ip: str, host_ip: str,
                 claims_root: Path) -> None:
        self.pod, self.kube, self.root, self.claims_root = pod, kube, root, claims_root
        self.pod_ip, self.host_ip = pod_ip, host_ip
        self.ns = pod["metadata"]["namespace"]
        self.paths: dict[str, Path] = {}
        self.kinds: dict[str, str] = {}
        self._token_expiry: dict[Path, float] = {}
        self._objects: dict[tuple[str, str], Obj | None] = {}

    # ---- sources -------------------------------------------------------------
    def _object(self, kind: str, name: str) -> Obj | None:
        key = (kind, name)
        if key not in self._objects:
            try:
                self._objects[key] = self.kube.get_or_none(
                    f"/api/v1/namespaces/{self.ns}/{kind}/{name}")
            except ApiError as e:
                raise ConfigError(f"cannot read {kind[:-1]} {name}: HTTP {e.status}") from e
        return self._objects[key]

    def _data(self, kind: str, src: Obj, vol: str) -> dict[str, bytes] | None:
        name = src.get("secretName") or src.get("name") or ""
        obj = self._object(kind, name)
        if obj is None:
            if src.get("optional"):
                return None
            raise ConfigError(f'MountVolume.SetUp failed for volume "{vol}": '
                              f'{kind[:-1]} "{name}" not found')
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()} \
            if kind == "secrets" else {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        if kind == "configmaps":
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def _key_files(self, kind: str, src: Obj, vol: str, default_mode: int
                   ) -> list[tuple[str, bytes, int]]:
        data = self._data(kind, src, vol)
        if data is None:
            return []
        items = src.get("items")
        if not items:
            return [(k, v, default_mode) for k, v in data.items()]
        out = []
        for item in items:
            if item["key"] not in data:
                if src.get("optional"):
                    continue
                raise ConfigError(f'volume "{vol}": key {item["key"]} not found')
            out.append((item["path"], data[item["key"]], item.get("mode", default_mode)))
        return out

    def _downward_files(self, src: Obj, default_mode: int) -> list[tuple[str, bytes, int]]:
        out = []
        for item in src.get("items") or []:
            if "fieldRef" in item:
                value = field_value(self.pod, item["fieldRef"]["fieldPath"], self.pod_ip,
                                    self.host_ip)
            else:
                value = resource_value(self.pod, "", item["resourceFieldRef"])
            out.append((item["path"], value.encode(), item.get("mode", default_mode)))
        return out

    def _token(self, src: Obj) -> tuple[bytes, float]:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        sa = spec.get("serviceAccountName") or "default"
        ttl = int(src.get("expirationSeconds") or 3600)
        req: Obj = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": ttl, "boundObjectRef": {
                        "apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                        "uid": meta["uid"]}}}
        if src.get("audience"):
            req["spec"]["audiences"] = [src["audience"]]
        try:
            resp = self.kube.post(f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token", req)
        except ApiError as e:
            raise ConfigError(f"TokenRequest for serviceaccount {sa}: HTTP {e.status}: "
                              f"{(e.body or {}).get('message', '') if isinstance(e.body, dict) else e.body}") from e
        exp = dt.datetime.fromisoformat(resp["status"]["expirationTimestamp"].replace("Z", "+00:00"))
        lifetime = exp.timestamp() - time.time()
        # Refresh at 80% of the lifetime, as the kubelet does.
        return resp["status"]["token"].encode(), time.time() + 0.8 * min(lifetime, ttl)

    # ---- materialising -----------------------------------------------------------
    def _files(self, vol: Obj, force_tokens: bool) -> list[tuple[str, bytes, int]] | None:
        """Files of a volume; None for directory-backed volumes (emptyDir/hostPath)."""
        name = vol["name"]
        if "secret" in vol:
            s = vol["secret"]
            return self._key_files("secrets", s, name, s.get("defaultMode", 0o644))
        if "configMap" in vol:
            c = vol["configMap"]
            return self._key_files("configmaps", c, name, c.get("defaultMode", 0o644))
        if "downwardAPI" in vol:
            d = vol["downwardAPI"]
            return self._downward_files(d, d.get("defaultMode", 0o644))
        if "projected" in vol:
            p = vol["projected"]
            mode = p.get("defaultMode", 0o644)
            files: list[tuple[str, bytes, int]] = []
            for src in p.get("sources") or []:
                if "secret" in src:
                    files += self._key_files("secrets", src["secret"], name, mode)
                elif "configMap" in src:
                    files += self._key_files("configmaps", src["configMap"], name, mode)
                elif "downwardAPI" in src:
                    files += self._downward_files(src["downwardAPI"], mode)
                elif "serviceAccountToken" in src:
                    tok = src["serviceAccountToken"]
                    target = self.root / name / tok["path"]
                    if not force_tokens and self._token_expiry.get(target, 0) > time.time():
                        files.append((tok["path"], target.read_bytes(), mode))
                        continue
                    token, refresh_at = self._token(tok)
                    self._token_expiry[target] = refresh_at
                    files.append((tok["path"], token, mode))
                else:
                    raise ConfigError(f'volume "{name}": projected source {sorted(src)} '
                                      "is not supported by the dev node agent")
            return files
        return None

    def materialise(self, force_tokens: bool = False) -> None:
        """(Re)write every volume; raises ConfigError when one cannot be built."""
        self._objects.clear()
        for vol in self.pod["spec"].get("volumes") or []:
            name = vol["name"]
            kind = next((k for k in vol if k != "name"), "?")
            if kind == "hostPath":
                hp = vol["hostPath"]
                path = Path(hp["path"])
                if hp.get("type") == "DirectoryOrCreate":
                    path.mkdir(parents=True, exist_ok=True)
                elif hp.get("type") == "FileOrCreate" and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                if not path.exists():
                    raise ConfigError(f'hostPath volume "{name}": {path} does not exist')
                self.paths[name], self.kinds[name] = path, kind
                continue
            if kind == "persistentVolumeClaim":
                # No provisioner: a claim is a host dir that outlives pods (the PVC
                # object itself stays Pending). Enough for StatefulSet-style reuse.
                path = self.claims_root / self.ns / vol["persistentVolumeClaim"]["claimName"]
                path.mkdir(parents=True, exist_ok=True)
                self.paths[name], self.kinds[name] = path, kind
                continue
            target = self.root / name
            if kind in ("emptyDir", "ephemeral"):
                target.mkdir(parents=True, exist_ok=True)
                self.paths[name], self.kinds[name] = target, kind
                continue
            files = self._files(vol, force_tokens) if kind in READ_ONLY_TYPES else None
            if files is None:
                raise ConfigError(f'volume "{name}": type {kind} is not supported by the '
                                  "dev node agent (emptyDir, ephemeral, hostPath, "
                                  "persistentVolumeClaim, secret, configMap, downwardAPI, "
                                  "projected are)")
            target.mkdir(parents=True, exist_ok=True)
            wanted = set()
            for rel, data, mode in files:
                path = target / rel
                wanted.add(path)
                if not path.exists() or path.read_bytes() != data:
                    _write_atomic(path, data, mode)
            for old in [p for p in target.rglob("*") if p.is_file() and p not in wanted]:
                old.unlink(missing_ok=True)
            self.paths[name], self.kinds[name] = target, kind

    def refresh(self) -> None:
        """Periodic resync; errors leave the previous content in place."""
        try:
            self.materialise()
        except (ConfigError, ApiError, OSError):
            pass

    def mounts(self, container: Obj, env: dict[str, str]) -> list[Mount]:
        """Bind mounts for one container, parents before children."""
        out = []
        for vm in container.get("volumeMounts") or []:
            name = vm["name"]
            if name not in self.paths:
                raise ConfigError(f'volumeMount "{name}": no such volume in the pod')
            src = self.paths[name]
            sub = vm.get("subPath") or expand(vm.get("subPathExpr", ""), env.get)
            if sub:
                src = src / sub
                if not src.exists():
                    src.mkdir(parents=True, exist_ok=True)
            ro = bool(vm.get("readOnly")) or self.kinds[name] in READ_ONLY_TYPES or (
                self.kinds[name] == "persistentVolumeClaim" and bool(next(
                    v for v in self.pod["spec"]["volumes"] if v["name"] == name
                )["persistentVolumeClaim"].get("readOnly")))
            out.append(Mount(src, vm["mountPath"], ro))
        return sorted(out, key=lambda m: m.target.rstrip("/").count("/"))

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
