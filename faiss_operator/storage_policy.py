"""Which S3 endpoints, buckets and keys the operator may touch for a FaissIndex. Pure.

The operator reads pointers, manifests and listings, writes pointers and deletes versions
with credentials the platform team gave it; a tenant chooses ``storage.endpoint``,
``storage.bucket`` and ``source.s3`` in a spec. Without a check, a spec naming a server of
the tenant's choosing receives the operator's signed requests (its access key id) and its
answers are read by the operator; a spec naming another team's bucket makes the operator
list it. So the platform declares in Helm values (``storage.allowed``) what may be used,
with which credentials, and every index is checked against that *before* a client exists:
a refusal becomes the ``StorageNotAllowed`` condition and no request is sent anywhere.

A grant: one endpoint (``""`` = AWS S3), bucket patterns (exact names or ``prefix*``),
optional key prefixes, optional namespaces, and the credentials to use there (``operator``
= the operator's own, else a Secret mounted into the operator pod). ``{namespace}`` in a
bucket pattern or key prefix stands for the FaissIndex's namespace, which is how one grant
gives every team its own bucket or folder and nobody else's.

Default (no ``storage.allowed``): one grant for the operator's default endpoint
(``storage.endpoint``, AWS when empty), any bucket, the operator's credentials: a tenant can
no longer send the operator's credentials to a server of their own, while a single-endpoint
install works as before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from indexops_api.layout import index_prefix, render_location
from indexops_api.spec import FaissIndexSpec

OPERATOR_CREDENTIALS = "operator"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class PolicyError(ValueError):
    """The declared grants themselves are unusable (bad Helm values): the operator refuses to start."""


def normalize_endpoint(url: str | None) -> str:
    """``HTTPS://Host:443/`` → ``https://host``; ``None`` / ``""`` → ``""`` (AWS S3)."""
    if not url:
        return ""
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) endpoint URL: {url!r}")
    port = parts.port if parts.port not in (None, _DEFAULT_PORTS[parts.scheme]) else None
    host = parts.hostname.lower() + (f":{port}" if port else "")
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{host}{path}"


def describe_endpoint(endpoint: str) -> str:
    return endpoint or "AWS S3"


@dataclass(frozen=True)
class StorageGrant:
    endpoint: str  # normalized; "" = AWS S3
    buckets: tuple[str, ...] = ("*",)
    prefixes: tuple[str, ...] = ()  # () = any key
    namespaces: tuple[str, ...] = ()  # () = FaissIndexes of every watched namespace
    credentials: str = OPERATOR_CREDENTIALS  # or the name of a Secret mounted into the operator pod

    def bucket_allowed(self, bucket: str, namespace: str) -> bool:
        return any(_matches(p.replace("{namespace}", namespace), bucket) for p in self.buckets)

    def keys_allowed(self, keys: Sequence[str], namespace: str) -> bool:
        if not self.prefixes:
            return True
        allowed = [p.replace("{namespace}", namespace) for p in self.prefixes]
        return all(any(k.startswith(p) for p in allowed) for k in keys)


def _matches(pattern: str, bucket: str) -> bool:
    if pattern.endswith("*"):
        return bucket.startswith(pattern[:-1])
    return bucket == pattern


@dataclass(frozen=True)
class Refusal:
    """Why the operator will not touch an index's storage; ``message`` is for the condition."""

    message: str


@dataclass(frozen=True)
class Access:
    """What the operator may use for one FaissIndex: its artifact storage and, for S3 sources, the source."""

    storage: StorageGrant
    storage_endpoint: str | None  # as written (None: AWS)
    source: StorageGrant | None = None
    source_endpoint: str | None = None


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{what} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def parse_grants(raw: str | None, default_endpoint: str | None = None) -> tuple[StorageGrant, ...]:
    """Grants from the chart's JSON (``storage.allowed``), or the single-endpoint default when unset/empty."""
    entries = json.loads(raw) if raw and raw.strip() else []
    if not isinstance(entries, list):
        raise PolicyError(f"storage.allowed must be a list, got {type(entries).__name__}")
    if not entries:
        try:
            return (StorageGrant(endpoint=normalize_endpoint(default_endpoint)),)
        except ValueError as exc:
            raise PolicyError(f"storage.endpoint: {exc}") from None
    grants = []
    for i, entry in enumerate(entries):
        where = f"storage.allowed[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where} must be a mapping, got {entry!r}")
        unknown = set(entry) - {"endpoint", "buckets", "prefixes", "namespaces", "credentialsSecret"}
        if unknown:
            raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
        try:
            endpoint = normalize_endpoint(entry.get("endpoint") or None)
        except ValueError as exc:
            raise PolicyError(f"{where}.endpoint: {exc}") from None
        buckets = _strings(entry.get("buckets"), f"{where}.buckets") or ("*",)
        grants.append(StorageGrant(
            endpoint=endpoint,
            buckets=buckets,
            prefixes=_strings(entry.get("prefixes"), f"{where}.prefixes"),
            namespaces=_strings(entry.get("namespaces"), f"{where}.namespaces"),
            credentials=entry.get("credentialsSecret") or OPERATOR_CREDENTIALS,
        ))
    return tuple(grants)


def allow(
    grants: Sequence[StorageGrant], namespace: str, endpoint: str | None, bucket: str, keys: Sequence[str], field: str
) -> StorageGrant | Refusal:
    """The first grant covering (endpoint, bucket, every key) for this namespace, or why none does."""
    try:
        wanted = normalize_endpoint(endpoint)
    except ValueError as exc:
        return Refusal(f"{field}.endpoint: {exc}")
    here = [g for g in grants if g.endpoint == wanted and (not g.namespaces or namespace in g.namespaces)]
    if not here:
        known = sorted({describe_endpoint(g.endpoint) for g in grants if not g.namespaces or namespace in g.namespaces})
        return Refusal(
            f"{field}: endpoint {describe_endpoint(wanted)} is not one the operator may use for namespace {namespace} "
            f"(allowed: {', '.join(known) or 'none'}; set by the platform in the chart's storage.allowed); "
            "no request was sent to it"
        )
    in_bucket = [g for g in here if g.bucket_allowed(bucket, namespace)]
    if not in_bucket:
        return Refusal(
            f"{field}: bucket {bucket!r} on {describe_endpoint(wanted)} is not one the operator may use for namespace "
            f"{namespace} (the chart's storage.allowed); no request was sent"
        )
    for grant in in_bucket:
        if grant.keys_allowed(keys, namespace):
            return grant
    return Refusal(
        f"{field}: keys {', '.join(repr(k) for k in keys)} in bucket {bucket!r} are outside the prefixes the operator "
        f"may use for namespace {namespace} (the chart's storage.allowed); no request was sent"
    )


def check_index(
    grants: Sequence[StorageGrant], namespace: str, name: str, spec: FaissIndexSpec, default_endpoint: str | None = None
) -> Access | Refusal:
    """Check the artifact storage and an S3 source of one FaissIndex; nothing is contacted."""
    storage_endpoint = spec.storage.endpoint or default_endpoint or None
    folder = index_prefix(spec.storage.prefix, namespace, name, spec.horizon).rstrip("/") + "/"
    storage = allow(grants, namespace, storage_endpoint, spec.storage.bucket, [folder], "spec.storage")
    if isinstance(storage, Refusal):
        return storage
    s3 = spec.source.s3
    if s3 is None:
        return Access(storage=storage, storage_endpoint=storage_endpoint)
    source_endpoint = s3.endpoint or storage_endpoint
    keys = [render_location(k, spec.horizon) for k in (s3.key, s3.prefix, s3.ids_key) if k]
    source = allow(grants, namespace, source_endpoint, s3.bucket, keys, "spec.source.s3")
    if isinstance(source, Refusal):
        return source
    return Access(storage=storage, storage_endpoint=storage_endpoint, source=source, source_endpoint=source_endpoint)
