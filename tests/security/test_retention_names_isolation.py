"""One tenant's index cannot prune another's artifacts, nor share its Job or Deployment names.

Retention: a tenant sets ``storage.prefix`` freely, so their index's folder can lie under
another index's ``versions/`` (prefix ``<ns>/<victim>/6h/versions`` + their own namespace,
name and horizon). That folder has no manifest; "incomplete, so prune it" deleted it. The
listing and the deletes run against a real S3 API here, in the operator's order: list,
decide (``versions_to_prune``), delete each.

Names: objects are named ``<index>-<suffix>`` cut to 63 characters; two long index names
sharing their first 44-55 characters used to get one name, so one index adopted the other's
Job and overwrote its Deployment.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from tests.integration.s3_harness import Buckets

from faiss_operator.model import StoredVersion
from faiss_operator.retention import versions_to_prune
from indexops_api.layout import MAX_NAME, index_prefix, job_name, serving_name
from indexops_store.s3 import ArtifactStore

pytestmark = pytest.mark.security

V1, V2, V3 = "20261101T000000Z-aaaaaaaa", "20261102T000000Z-bbbbbbbb", "20261103T000000Z-cccccccc"


def _put(s3: Any, bucket: str, keys: list[str]) -> None:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


@pytest.mark.integration
def test_retention_never_prunes_another_index_nested_under_versions(s3: Any, buckets: Buckets) -> None:
    victim = index_prefix("faiss-indexes", "team-a", "weather", "6h")
    # The other tenant's storage.prefix is the victim's versions/ folder.
    intruder = index_prefix(f"{victim}/versions", "team-b", "alerts", "6h")
    _put(s3, buckets.artifacts, [f"{victim}/versions/{v}/{f}" for v in (V1, V2, V3) for f in ("index.faiss", "manifest.json")]
         + [f"{intruder}/versions/{V1}/index.faiss", f"{intruder}/versions/{V1}/manifest.json", f"{intruder}/pointer.json"])
    store = ArtifactStore(s3, buckets.artifacts)

    listing = store.list_versions(victim)
    versions = {v: StoredVersion(complete=i.has_manifest, files=frozenset(i.files)) for v, i in listing.items()}
    for version in versions_to_prune(versions, keep=2, protected=[V3]):
        store.delete_version(victim, version)

    assert _keys(s3, buckets.artifacts, intruder) == sorted(
        [f"{intruder}/pointer.json", f"{intruder}/versions/{V1}/index.faiss", f"{intruder}/versions/{V1}/manifest.json"])
    assert {k.split("/")[5] for k in _keys(s3, buckets.artifacts, f"{victim}/versions/{V2[:2]}")} == {V2, V3}


@pytest.mark.parametrize("folder", ["team-b", "tmp", "20261101t000000z-aaaaaaaa", "20261101T000000Z-aaaaaaaa-x", ".."])
def test_a_folder_not_named_like_a_version_id_is_never_pruned(folder: str) -> None:
    versions = {V1: StoredVersion(complete=True), folder: StoredVersion(complete=False)}
    assert versions_to_prune(versions, keep=1, protected=[]) == []


def test_an_incomplete_folder_named_like_a_version_id_is_still_pruned() -> None:
    versions = {V1: StoredVersion(complete=True), V2: StoredVersion(complete=False)}
    assert versions_to_prune(versions, keep=1, protected=[]) == [V2]


@pytest.mark.parametrize("shared", [44, 47, 50, 55, 60])
def test_long_index_names_sharing_a_prefix_get_distinct_job_and_serving_names(shared: int) -> None:
    common = ("weather-analog-" + string.ascii_lowercase * 3)[:shared]
    first, second = f"{common}-a1", f"{common}-b2"
    key = "0123456789abcdef" * 4
    assert job_name(first, key) != job_name(second, key)
    assert serving_name(first) != serving_name(second)
    for name in (job_name(first, key, 12), job_name(second, key), serving_name(first), serving_name(second)):
        assert len(name) <= MAX_NAME and not name.startswith("-") and "--" not in name


def test_a_name_that_fits_is_unchanged() -> None:
    key = "0123456789abcdef" * 4
    assert job_name("weather", key, 3) == "weather-build-01234567-3"
    assert serving_name("weather") == "weather-serving"


def test_a_cut_name_is_deterministic_across_restarts() -> None:
    name = "x" * 60
    assert serving_name(name) == serving_name(name) and job_name(name, "f" * 64) == job_name(name, "f" * 64)
