"""Listing and deleting artifact versions on a real S3 API (moto's server).

Faults S3 would report (a key it refuses to delete, a batch call that fails) are injected
by wrapping the real client; everything else goes to the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3_harness import Buckets, free_port

from indexops_store import ArtifactStore, DeleteIncomplete, StorageError, VersionListing, make_client

pytestmark = pytest.mark.integration

INDEX = "faiss-indexes/team-a/demo/6h"


def _put(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=bucket, Key=item[0], Body=item[1]), objects.items()))


def _keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    return [k for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for k in (o["Key"] for o in page.get("Contents", []))]


def _version(name: str, files: Iterable[str], size: int = 3) -> dict[str, bytes]:
    return {f"{INDEX}/versions/{name}/{f}": b"x" * size for f in files}


class FaultyClient:
    """The real client, except ``delete_objects`` answers as ``fault`` says; calls are recorded."""

    def __init__(self, real: Any, fault: Callable[[int, list[str]], dict[str, Any] | None]):
        self._real, self._fault = real, fault
        self.batches: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def delete_objects(self, **kwargs: Any) -> dict[str, Any]:
        keys = [o["Key"] for o in kwargs["Delete"]["Objects"]]
        self.batches.append(keys)
        injected = self._fault(len(self.batches), keys)
        if injected is not None:
            return injected
        return self._real.delete_objects(**kwargs)


def _no_fault(call: int, keys: list[str]) -> None:
    return None


def test_versions_are_listed_across_pages_with_their_files_sizes_newest_time_and_manifest(
    s3: Any, buckets: Buckets
) -> None:
    shards = [f"shards/{i:05d}.bin" for i in range(1500)]  # two listing pages
    _put(s3, buckets.artifacts, {
        **_version("20260101T000000Z-aaaaaaaa", ["index.faiss", "ids.npy", "manifest.json"], size=10),
        **_version("20260102T000000Z-bbbbbbbb", ["index.faiss"], size=7),  # never committed
        **_version("20260103T000000Z-cccccccc", shards + ["manifest.json"], size=2),
        f"{INDEX}/pointer.json": b"{}",
        f"{INDEX}/versions/stray.txt": b"not in a version folder",
        "faiss-indexes/team-a/demo/6h-old/versions/20250101T000000Z-dddddddd/manifest.json": b"{}",
    })

    listed = ArtifactStore(s3, buckets.artifacts).list_versions(INDEX)

    assert list(listed) == ["20260101T000000Z-aaaaaaaa", "20260102T000000Z-bbbbbbbb", "20260103T000000Z-cccccccc"]
    first, uncommitted, sharded = listed.values()
    assert first.files == {"index.faiss": 10, "ids.npy": 10, "manifest.json": 10}
    assert (first.size_bytes, first.has_manifest) == (30, True)
    assert (uncommitted.files, uncommitted.has_manifest) == ({"index.faiss": 7}, False)
    assert len(sharded.files) == 1501 and sharded.size_bytes == 2 * 1501 and sharded.has_manifest
    stored = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=buckets.artifacts, Prefix=f"{INDEX}/versions/2026010").get("Contents", [])}
    newest_first = max(t for k, t in stored.items() if "aaaaaaaa" in k)
    assert first.last_modified == newest_first


def test_an_index_prefix_with_or_without_slashes_lists_the_same_versions(s3: Any, buckets: Buckets) -> None:
    _put(s3, buckets.artifacts, _version("v1", ["manifest.json"]))
    store = ArtifactStore(s3, buckets.artifacts)

    assert list(store.list_versions(INDEX)) == list(store.list_versions(f"/{INDEX}/")) == ["v1"]


def test_an_index_with_nothing_stored_has_no_versions(s3: Any, buckets: Buckets) -> None:
    assert ArtifactStore(s3, buckets.artifacts).list_versions(INDEX) == {}


def test_files_the_manifest_lists_but_storage_lost_are_reported_missing(s3: Any, buckets: Buckets) -> None:
    _put(s3, buckets.artifacts, _version("v1", ["index.faiss", "ids.npy", "manifest.json"]))
    s3.delete_object(Bucket=buckets.artifacts, Key=f"{INDEX}/versions/v1/index.faiss")

    listing = ArtifactStore(s3, buckets.artifacts).list_versions(INDEX)["v1"]

    assert listing.missing(["index.faiss", "ids.npy"]) == ["index.faiss"]
    assert VersionListing("v2").missing(["index.faiss"]) == ["index.faiss"]


def test_listing_a_missing_bucket_raises_a_readable_not_found_error(s3: Any) -> None:
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist") as raised:
        ArtifactStore(s3, "no-such-bucket-here").list_versions(INDEX)
    assert raised.value.not_found


def test_an_unreachable_endpoint_is_a_storage_error_naming_the_location(fake_aws_env: None) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(StorageError, match=r"s3://art/faiss-indexes/.*storage unreachable"):
        ArtifactStore(client, "art").list_versions(INDEX)


def test_a_prefix_is_deleted_in_batches_of_at_most_1000_and_its_neighbours_survive(s3: Any, buckets: Buckets) -> None:
    doomed = {**_version("v1", [f"part-{i:05d}" for i in range(1200)] + ["manifest.json"]), f"{INDEX}/pointer.json": b"{}"}
    neighbours = {"faiss-indexes/team-a/demo/6h-old/versions/v1/manifest.json": b"{}",
                  "faiss-indexes/team-a/demo/6h.txt": b"a sibling key sharing the prefix text"}
    _put(s3, buckets.artifacts, {**doomed, **neighbours})
    client = FaultyClient(s3, _no_fault)

    deleted = ArtifactStore(client, buckets.artifacts).delete_prefix(INDEX)

    assert deleted == len(doomed) == 1202
    assert [len(b) for b in client.batches] == [1000, 202]
    assert client.batches[0][0] == f"{INDEX}/versions/v1/manifest.json"  # the commit marker goes first
    assert sorted(_keys(s3, buckets.artifacts)) == sorted(neighbours)


def test_deleting_a_prefix_again_or_one_that_holds_nothing_deletes_zero(s3: Any, buckets: Buckets) -> None:
    _put(s3, buckets.artifacts, _version("v1", ["index.faiss", "manifest.json"]))
    store = ArtifactStore(s3, buckets.artifacts)

    assert store.delete_prefix(INDEX) == 2
    assert store.delete_prefix(INDEX) == 0
    assert store.delete_prefix("nothing/here") == 0


@pytest.mark.parametrize("prefix", ["", "/", "//", "  ", " / "])
def test_deleting_the_bucket_root_is_refused_and_nothing_is_deleted(s3: Any, buckets: Buckets, prefix: str) -> None:
    _put(s3, buckets.artifacts, _version("v1", ["manifest.json"]))
    client = FaultyClient(s3, _no_fault)

    with pytest.raises(StorageError, match="refusing to delete prefix .* root of the bucket"):
        ArtifactStore(client, buckets.artifacts).delete_prefix(prefix)
    assert client.batches == []
    assert _keys(s3, buckets.artifacts) == [f"{INDEX}/versions/v1/manifest.json"]


def test_keys_s3_refuses_are_reported_one_by_one_after_every_other_key_is_deleted(s3: Any, buckets: Buckets) -> None:
    _put(s3, buckets.artifacts, _version("v1", [f"part-{i:04d}" for i in range(40)]))
    locked = {f"{INDEX}/versions/v1/part-0007", f"{INDEX}/versions/v1/part-0031"}

    def refuse_locked(call: int, keys: list[str]) -> dict[str, Any]:
        s3.delete_objects(Bucket=buckets.artifacts, Delete={"Objects": [{"Key": k} for k in keys if k not in locked]})
        return {"Errors": [{"Key": k, "Code": "AccessDenied", "Message": "Access Denied"} for k in keys if k in locked]}

    with pytest.raises(DeleteIncomplete) as raised:
        ArtifactStore(FaultyClient(s3, refuse_locked), buckets.artifacts).delete_prefix(INDEX)

    error = raised.value
    assert (error.deleted, error.denied) == (38, True)
    assert error.failed == {k: "AccessDenied: Access Denied" for k in locked}
    assert "could not delete 2 of 40 objects" in str(error) and f"{INDEX}/versions/v1/part-0007" in str(error)
    assert sorted(_keys(s3, buckets.artifacts)) == sorted(locked)


def test_a_delete_that_stops_half_way_leaves_no_version_that_looks_committed(s3: Any, buckets: Buckets) -> None:
    # In key order v2's manifest would come after its part files, in the batch that fails.
    files = [f"part-{i:04d}" for i in range(520)] + ["manifest.json"]
    _put(s3, buckets.artifacts, {**_version("v1", files), **_version("v2", files)})

    def fail_second_batch(call: int, keys: list[str]) -> None:
        if call == 2:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "DeleteObjects")

    with pytest.raises(DeleteIncomplete, match=r"deleted 1000 of 1042 objects .* SlowDown") as raised:
        ArtifactStore(FaultyClient(s3, fail_second_batch), buckets.artifacts).delete_prefix(INDEX)

    assert raised.value.deleted == 1000 and len(raised.value.failed) == 42
    remaining = ArtifactStore(s3, buckets.artifacts).list_versions(INDEX)
    assert list(remaining) == ["v2"] and len(remaining["v2"].files) == 42 and not remaining["v2"].has_manifest


def test_deleting_one_version_removes_its_manifest_first_and_leaves_the_others(s3: Any, buckets: Buckets) -> None:
    _put(s3, buckets.artifacts, {**_version("v1", ["a.faiss", "ids.npy", "manifest.json", "z.npy"]),
                                 **_version("v10", ["manifest.json"]), **_version("v2", ["manifest.json"])})
    client = FaultyClient(s3, _no_fault)

    deleted = ArtifactStore(client, buckets.artifacts).delete_version(INDEX, "v1")

    assert deleted == 4
    assert client.batches[0][0] == f"{INDEX}/versions/v1/manifest.json"
    assert list(ArtifactStore(s3, buckets.artifacts).list_versions(INDEX)) == ["v10", "v2"]


@pytest.mark.parametrize(("index", "version"), [(INDEX, ""), (INDEX, "v1/.."), (INDEX, ".."), ("", "v1"), ("/", "v1")])
def test_a_version_id_that_is_not_one_folder_is_refused(s3: Any, buckets: Buckets, index: str, version: str) -> None:
    _put(s3, buckets.artifacts, _version("v1", ["manifest.json"]))

    with pytest.raises(StorageError, match="refusing to delete"):
        ArtifactStore(s3, buckets.artifacts).delete_version(index, version)
    assert _keys(s3, buckets.artifacts) == [f"{INDEX}/versions/v1/manifest.json"]
