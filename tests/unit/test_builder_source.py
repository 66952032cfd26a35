"""Locating the source is pure: templates are rendered and the endpoint picked by precedence."""

from __future__ import annotations

from typing import Any

from index_builder.source import locate
from indexops_api.spec import FaissIndexSpec


def _spec(source: dict[str, Any], storage_endpoint: str | None = None) -> FaissIndexSpec:
    storage: dict[str, Any] = {"bucket": "artifacts"}
    if storage_endpoint:
        storage["endpoint"] = storage_endpoint
    return FaissIndexSpec.model_validate({"horizon": "24h", "dimension": 8, "source": source, "storage": storage})


def test_s3_keys_get_the_horizon_substituted() -> None:
    loc = locate(_spec({"s3": {"bucket": "emb", "key": "daily/{horizon}/x.npy", "idsKey": "daily/{horizon}/ids.npy"}}), {})
    assert (loc.bucket, loc.vectors, loc.ids) == ("emb", "daily/24h/x.npy", "daily/24h/ids.npy")
    assert loc.uri(loc.vectors) == "s3://emb/daily/24h/x.npy"


def test_the_source_endpoint_wins_over_storage_which_wins_over_the_environment() -> None:
    env = {"FAISS_S3_ENDPOINT_URL": "http://env:9000"}
    own = {"s3": {"bucket": "emb", "key": "x.npy", "endpoint": "http://source:9000"}}
    plain = {"s3": {"bucket": "emb", "key": "x.npy"}}
    assert locate(_spec(own, "http://storage:9000"), env).endpoint == "http://source:9000"
    assert locate(_spec(plain, "http://storage:9000"), env).endpoint == "http://storage:9000"
    assert locate(_spec(plain), env).endpoint == "http://env:9000"
    assert locate(_spec(plain), {}).endpoint is None


def test_file_sources_have_no_bucket_and_their_path_is_the_uri() -> None:
    loc = locate(_spec({"file": {"path": "/data/{horizon}.npy"}}), {})
    assert (loc.bucket, loc.vectors, loc.ids, loc.uri(loc.vectors)) == (None, "/data/24h.npy", None, "/data/24h.npy")
