"""Which storage the operator may touch for a FaissIndex: a pure decision over the chart's grants."""

from __future__ import annotations

import json

import pytest
from factories import spec

from faiss_operator.storage_policy import (
    Access,
    PolicyError,
    Refusal,
    StorageGrant,
    check_index,
    normalize_endpoint,
    parse_grants,
)

MINIO = "https://minio.internal:9000"


def grants(*entries: dict) -> tuple[StorageGrant, ...]:
    return parse_grants(json.dumps(list(entries)))


@pytest.mark.parametrize("raw, normal", [
    (None, ""), ("", ""), ("HTTPS://MinIO.Internal:443/", "https://minio.internal"), ("http://h:80", "http://h"),
    ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"), ("https://h/base/", "https://h/base"),
])
def test_endpoints_compare_by_scheme_host_port_and_path(raw, normal):
    assert normalize_endpoint(raw) == normal


def test_without_grants_only_the_operators_default_endpoint_is_allowed_with_any_bucket():
    default = parse_grants(None, "http://127.0.0.1:9000")
    assert isinstance(check_index(default, "ns", "i", spec(**{"storage.endpoint": "http://127.0.0.1:9000/"})), Access)
    refused = check_index(default, "ns", "i", spec(**{"storage.endpoint": "http://127.0.0.1:9001"}))
    assert isinstance(refused, Refusal) and "http://127.0.0.1:9001" in refused.message
    aws_only = parse_grants("", None)
    assert isinstance(check_index(aws_only, "ns", "i", spec(**{"storage.endpoint": None, "source.s3.endpoint": None})), Access)


@pytest.mark.parametrize("namespace, bucket, allowed", [
    ("team-a", "team-a-indexes", True), ("team-a", "team-b-indexes", False), ("team-a", "shared-x", True), ("team-a", "other", False),
])
def test_bucket_patterns_substitute_the_namespace_and_allow_a_name_prefix(namespace, bucket, allowed):
    g = grants({"endpoint": MINIO, "buckets": ["{namespace}-indexes", "shared-*", "team-a-embeddings", "team-b-embeddings"]})
    s = spec(**{"storage.endpoint": MINIO, "storage.bucket": bucket, "source.s3.bucket": f"{namespace}-embeddings"})
    assert isinstance(check_index(g, namespace, "i", s), Access) is allowed


def test_key_prefixes_cover_the_artifact_folder_and_every_source_key():
    g = grants({"endpoint": MINIO, "prefixes": ["faiss-indexes/{namespace}/", "{namespace}/"]})
    ok = spec(**{"storage.endpoint": MINIO, "source.s3.key": "team-a/{horizon}/v.npy"})
    assert isinstance(check_index(g, "team-a", "i", ok), Access)
    other = spec(**{"storage.endpoint": MINIO, "source.s3.key": "team-b/{horizon}/v.npy"})
    assert "outside the prefixes" in check_index(g, "team-a", "i", other).message
    escaped = spec(**{"storage.endpoint": MINIO, "storage.prefix": "elsewhere", "source.s3.key": "team-a/v.npy"})
    assert isinstance(check_index(g, "team-a", "i", escaped), Refusal)


def test_a_grant_limited_to_namespaces_is_invisible_to_others_and_its_credentials_travel_with_it():
    g = grants({"endpoint": MINIO, "namespaces": ["team-a"], "credentialsSecret": "minio-a"}, {"endpoint": ""})
    access = check_index(g, "team-a", "i", spec(**{"storage.endpoint": MINIO}))
    assert isinstance(access, Access) and access.storage.credentials == "minio-a" and access.source.credentials == "minio-a"
    refused = check_index(g, "team-b", "i", spec(**{"storage.endpoint": MINIO}))
    assert isinstance(refused, Refusal) and "allowed: AWS S3" in refused.message


def test_the_source_endpoint_defaults_to_the_storage_endpoint_and_is_checked_on_its_own():
    g = grants({"endpoint": MINIO}, {"endpoint": "http://src:9000", "buckets": ["emb"]})
    assert isinstance(check_index(g, "ns", "i", spec(**{"storage.endpoint": MINIO})), Access)
    moved = check_index(g, "ns", "i", spec(**{"storage.endpoint": MINIO, "source.s3.endpoint": "http://src:9000"}))
    assert isinstance(moved, Access) and moved.source.endpoint == "http://src:9000"
    elsewhere = check_index(g, "ns", "i", spec(**{"storage.endpoint": MINIO, "source.s3.endpoint": "http://evil:9000"}))
    assert isinstance(elsewhere, Refusal) and elsewhere.message.startswith("spec.source.s3")


@pytest.mark.parametrize("raw", ['{"endpoint": "x"}', '[{"endpoint": "ftp://x"}]', '[{"endpoint": "http://x", "bucket": "typo"}]',
                                 '["http://x"]', '[{"endpoint": "http://x", "buckets": [""]}]'])
def test_unusable_grants_stop_the_operator_with_the_entry_named(raw):
    with pytest.raises(PolicyError, match=r"storage\.(allowed|endpoint)"):
        parse_grants(raw)
