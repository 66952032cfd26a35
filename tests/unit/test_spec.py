"""The pydantic spec rejects what the CRD rejects, with messages a person understands."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from indexops_api.layout import job_name, serving_name, version_id
from indexops_api.spec import FaissIndexSpec

from factories import NOW, spec


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"horizon": "0h"}, "horizon"),
        ({"horizon": "6 hours"}, "horizon"),
        ({"dimension": 0}, "dimension"),
        ({"indexType": "Annoy"}, "indexType"),
        ({"metric": "Hamming"}, "metric"),
        ({"rollout.percent": 101}, "percent"),
        ({"validation.minRecall": 1.5}, "minRecall"),
        ({"schedule": "every day"}, "schedule"),
        ({"parameters.nlist": 100}, "nlist does not apply to indexType HNSW"),
        ({"source.file": {"path": "/x.npy"}}, "exactly one of s3, postgres or file"),
        ({"unknownField": 1}, "unknownField"),
        ({"parameters.mHnsw": 16}, "mHnsw does not apply to indexType HNSW"),
        ({"indexType": "IVFPQ", "parameters.nSubquantizers": 3}, "nSubquantizers 3 must divide dimension 8"),
        ({"source.s3.prefix": "p/"}, "exactly one of key or prefix"),
        ({"source.s3.format": "parquet", "source.s3.idsKey": "ids.npy"}, "idsKey applies to a single npy key only"),
        ({"validation.maxP99LatencyMs": 0}, "maxP99LatencyMs"),
    ],
)
def test_invalid_specs_are_rejected_naming_the_field(overrides, expected):
    with pytest.raises(ValidationError) as info:
        spec(**overrides)
    assert expected in str(info.value)


def test_defaults_are_those_of_the_product_contract():
    s = FaissIndexSpec.model_validate(
        {"horizon": "24h", "dimension": 4, "source": {"s3": {"bucket": "abc", "key": "k"}}, "storage": {"bucket": "abc"}}
    )
    assert s.index_type.value == "HNSW" and s.metric.value == "L2"
    assert s.rollout.percent == 100 and s.storage.deletion_policy == "Retain"
    assert s.validation.k == 10


def test_generated_names_fit_kubernetes_limits_for_long_index_names():
    long = "x" * 80
    assert len(job_name(long, "a" * 64)) <= 63
    assert len(serving_name(long)) <= 63
    assert version_id(NOW, "deadbeef00").startswith("20261121T120000Z-deadbeef")
