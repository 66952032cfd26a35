"""The operator's bounded S3 client does everything the operator needs against a real S3 server.

Same calls as the operator makes (conditional pointer writes, manifests, paginated listings,
batch deletes), through ``indexops_store.bounded`` instead of botocore's own HTTP stack.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from s3_harness import Buckets

from indexops_api.pointer import ServingPointer
from indexops_store import ArtifactStore, StorageError, StorageTooLarge, make_client
from indexops_store.bounded import Limits

INDEX = "faiss-indexes/ns/idx/6h"


@pytest.fixture
def bounded(s3_endpoint: str, buckets: Buckets) -> ArtifactStore:
    limits = Limits(max_response_bytes=64 * 1024, call_seconds=10, max_list_pages=5)
    return ArtifactStore(make_client(s3_endpoint, limits=limits), buckets.artifacts, limits=limits)


def _pointer(generation: int) -> ServingPointer:
    return ServingPointer(generation=generation, stable_version="v1", updated_at=datetime.now(timezone.utc).isoformat())


def test_the_pointer_is_written_conditionally_and_read_back_through_the_bounded_client(bounded: ArtifactStore) -> None:
    key = f"{INDEX}/pointer.json"
    assert bounded.read_pointer(key) == (None, None)
    etag = bounded.write_pointer(key, _pointer(1), etag=None)
    with pytest.raises(StorageError) as refused:
        bounded.write_pointer(key, _pointer(2), etag=None)
    assert refused.value.conflict
    bounded.write_pointer(key, _pointer(2), etag=etag)
    assert bounded.read_pointer(key)[0].generation == 2


def test_listing_and_deleting_versions_work_across_pages_within_the_page_cap(s3: Any, bounded: ArtifactStore, buckets: Buckets) -> None:
    for v in range(3):
        for name in ("index.faiss", "manifest.json"):
            s3.put_object(Bucket=buckets.artifacts, Key=f"{INDEX}/versions/v{v}/{name}", Body=b"x")
    assert sorted(bounded.list_versions(INDEX)) == ["v0", "v1", "v2"]
    assert bounded.delete_version(INDEX, "v1") == 2
    assert sorted(bounded.list_versions(INDEX)) == ["v0", "v2"]


def test_an_object_over_the_cap_on_a_real_server_is_refused_and_a_listing_over_the_page_cap_stops(
    s3: Any, bounded: ArtifactStore, buckets: Buckets
) -> None:
    s3.put_object(Bucket=buckets.artifacts, Key=f"{INDEX}/pointer.json", Body=b" " * (65 * 1024))
    with pytest.raises(StorageTooLarge, match="65536-byte cap"):
        bounded.read_pointer(f"{INDEX}/pointer.json")
    for i in range(6):
        s3.put_object(Bucket=buckets.artifacts, Key=f"many/{i}", Body=b"x")
    one_key_pages = ArtifactStore(_one_key_pages(bounded.client), buckets.artifacts, limits=bounded.limits)
    with pytest.raises(StorageTooLarge, match="past 5 pages"):
        list(one_key_pages.iter_objects("many/"))


class _one_key_pages:
    """The same client, with a page size of one key (as a server may choose)."""

    def __init__(self, client: Any):
        self._client = client

    def get_paginator(self, name: str) -> Any:
        paginator = self._client.get_paginator(name)

        class _Paged:
            def paginate(self, **kwargs: Any) -> Any:
                return paginator.paginate(**kwargs, PaginationConfig={"PageSize": 1})

        return _Paged()
