"""Deterministic names: S3 keys, version ids, Job and serving object names.

Names derive from the index identity and a digest of the build-relevant spec, so
re-running a decision (after an operator restart, a duplicate event) finds the same
Job instead of creating a second build.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone

from indexops_api.constants import MANIFEST_FILE, POINTER_FILE
from indexops_api.spec import FaissIndexSpec, IndexType

# Spec fields whose change means a different index must be built. Gates (minRecall,
# minVectors) and rollout settings are applied by the operator to an existing manifest,
# so changing them never rebuilds, except minRecall under Auto without tuning (build_key).
BUILD_FIELDS: dict[str, object] = {
    "horizon": True,
    "dimension": True,
    "metric": True,
    "index_type": True,
    "parameters": True,
    "factory": True,
    "tuning": True,
    "source": True,
    "build": {"max_memory"},
    "storage": {"bucket", "prefix", "endpoint"},
    "validation": {"k", "queries"},
    "shards": True,
    "shard_merge": True,
    "auto_shards": True,
}
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
MAX_NAME = 63


def build_key(spec: FaissIndexSpec) -> str:
    """sha256 over the canonical JSON of the build-relevant fields of ``spec``.

    ``Auto`` without ``tuning`` aims at ``validation.minRecall`` when it picks a type
    (``index_builder.auto.target_recall``), so there that gate shapes the build too.
    """
    relevant = spec.model_dump(mode="json", by_alias=True, include=BUILD_FIELDS)
    if not spec.sharded:  # unsharded specs keep the digest they had before shards existed
        relevant.pop("shards", None)
        relevant.pop("shardMerge", None)
    if not spec.auto_shards:
        relevant.pop("autoShards", None)
    else:  # the count follows the serving memory limit: a new limit is a new layout
        limits = (spec.serving.resources.limits or {}) if spec.serving.resources else {}
        relevant["servingMemory"] = limits.get("memory")
    if spec.index_type == IndexType.AUTO and spec.tuning is None:
        relevant["validation"]["minRecall"] = spec.validation.min_recall
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def version_id(created: datetime, key: str) -> str:
    """Sortable, immutable version id: UTC creation time plus the build key prefix."""
    return f"{created.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{key[:8]}"


def _truncate(base: str, suffix: str) -> str:
    """``<base>-<suffix>`` when it fits in 63 characters, else ``<base cut>-<sha256(base)[:8]>-<suffix>``.

    Cutting alone would map two long index names that share their first 40-odd characters to
    one Job or Deployment name, and one tenant's index would adopt (or replace) another's
    objects. The digest of the whole name keeps cut names distinct; names that fit are
    unchanged, so existing objects keep their names.
    """
    whole = f"{base}-{suffix}"
    if len(whole) <= MAX_NAME:
        return whole
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{base[: MAX_NAME - len(suffix) - len(digest) - 2].rstrip('-')}-{digest}-{suffix}"


def is_version_id(name: str) -> bool:
    """Whether a folder under ``versions/`` is named like a version id (``20260101T000000Z-1a2b3c4d``)."""
    return VERSION_PATTERN.fullmatch(name) is not None


def job_name(index: str, key: str, number: int = 1) -> str:
    """``<index>-build-<key8>-<n>``: the n-th build of the index, of spec digest ``key``.

    Deterministic from (index, key, n): an operator that crashed after creating the Job
    derives the same name on restart and adopts the Job instead of starting another.
    """
    return _truncate(index, f"build-{key[:8]}-{number}")


def serving_name(index: str) -> str:
    return _truncate(index, "serving")


def index_prefix(storage_prefix: str, namespace: str, index: str, horizon: str) -> str:
    parts = [p for p in storage_prefix.strip("/").split("/") if p]
    return "/".join(parts + [namespace, index, horizon])


def version_prefix(storage_prefix: str, namespace: str, index: str, horizon: str, version: str) -> str:
    return f"{index_prefix(storage_prefix, namespace, index, horizon)}/versions/{version}"


def manifest_key(storage_prefix: str, namespace: str, index: str, horizon: str, version: str) -> str:
    return f"{version_prefix(storage_prefix, namespace, index, horizon, version)}/{MANIFEST_FILE}"


def pointer_key(storage_prefix: str, namespace: str, index: str, horizon: str) -> str:
    return f"{index_prefix(storage_prefix, namespace, index, horizon)}/{POINTER_FILE}"


def render_location(template: str, horizon: str) -> str:
    """Substitute ``{horizon}`` (the only placeholder) into a source location."""
    return template.replace("{horizon}", horizon)
