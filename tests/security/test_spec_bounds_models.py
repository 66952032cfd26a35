"""Unbounded spec fields are refused by the models the CRD is generated from (pure).

The same constraints reach the API server through the generated CRD (proven against the
real API server in ``e2e/test_spec_bounds_api_server.py``); here the models, the operator's
parsing of durations, and the chart-level image allowlist are checked without a cluster.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from faiss_operator.config import OperatorConfig
from faiss_operator.images import image_refusal
from indexops_api.spec import FaissIndexSpec, PostgresSource, SecretKeyRef, TimeWindow
from indexops_api.spec_ops import duration_seconds
from indexops_store.postgres import base_select

pytestmark = pytest.mark.security

REPO = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "horizon": "6h", "dimension": 8,
    "source": {"s3": {"bucket": "vectors", "key": "x.npy"}},
    "storage": {"bucket": "indexes"},
}


def _spec(**changes: Any) -> dict[str, Any]:
    body = {**BASE, **changes}
    return body


UNBOUNDED = {
    "sync.interval of one second": _spec(sync={"interval": "1s"}),
    "sync.interval of 9 seconds": _spec(sync={"interval": "9s"}),
    "a duration with unbounded digits": _spec(sync={"interval": "9999999999d"}),
    "a rollout pause with unbounded digits": _spec(rollout={"steps": [{"percent": 10, "pause": "9999999999d"}]}),
    "an ftp storage endpoint": _spec(storage={"bucket": "indexes", "endpoint": "ftp://x"}),
    "an ftp source endpoint": _spec(source={"s3": {"bucket": "vectors", "key": "x.npy", "endpoint": "ftp://x"}}),
    "credentials in the endpoint": _spec(storage={"bucket": "indexes", "endpoint": "https://key:secret@s3.example.com"}),
    "a 300-character endpoint": _spec(storage={"bucket": "indexes", "endpoint": "https://" + "a" * 300 + ".com"}),
    "memory: lots": _spec(build={"resources": {"limits": {"memory": "lots"}}}),
    "a negative cpu": _spec(serving={"resources": {"requests": {"cpu": "-1"}}}),
    "an unknown resource name": _spec(build={"resources": {"requests": {"bananas": "1"}}}),
    "an image with spaces": _spec(build={"image": "evil image; rm -rf /"}),
}

BOUNDED = {
    "sync.interval of one minute": _spec(sync={"interval": "1m"}),
    "sync.interval of 10 seconds": _spec(sync={"interval": "10s"}),
    "an http endpoint with a port and path": _spec(storage={"bucket": "indexes", "endpoint": "http://127.0.0.1:9000/s3"}),
    "kubernetes quantities": _spec(build={"resources": {"requests": {"cpu": "500m", "memory": "1.5Gi"},
                                                        "limits": {"memory": "2G", "nvidia.com/gpu": "1"}}}),
    "an image with a digest": _spec(serving={"image": "registry.example.com/faiss/serve:1.2@sha256:" + "a" * 64}),
}


@pytest.mark.parametrize("body", list(UNBOUNDED.values()), ids=list(UNBOUNDED))
def test_an_unbounded_field_is_refused_with_a_message_naming_it(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        FaissIndexSpec.model_validate(body)
    assert caught.value.errors()[0]["loc"], str(caught.value)


@pytest.mark.parametrize("body", list(BOUNDED.values()), ids=list(BOUNDED))
def test_a_reasonable_value_is_still_accepted(body: dict[str, Any]) -> None:
    FaissIndexSpec.model_validate(body)


def test_the_generated_crd_carries_the_bounds_to_the_api_server() -> None:
    crd = yaml.safe_load((REPO / "crds" / "faiss.indexops.io_faissindexes.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "|[1-9][0-9]{1,5}s)" in spec["sync"]["properties"]["interval"]["pattern"]
    assert spec["storage"]["properties"]["endpoint"]["maxLength"] <= 512
    assert spec["source"]["properties"]["s3"]["properties"]["endpoint"]["pattern"].startswith("^https?://")
    limits = spec["build"]["properties"]["resources"]["properties"]["limits"]
    assert "pattern" in limits["additionalProperties"] and limits["maxProperties"] == 8
    assert "{0,5}" in spec["rollout"]["properties"]["steps"]["items"]["properties"]["pause"]["pattern"]


def test_a_huge_duration_stored_before_the_bound_cannot_overflow_the_operator() -> None:
    seconds = duration_seconds("9999999999d")
    assert datetime.now(timezone.utc) + timedelta(seconds=seconds)  # no OverflowError
    window = TimeWindow.model_construct(column="created_at", last="9999999999d")
    source = PostgresSource.model_construct(dsn_secret=SecretKeyRef(name="pg"), table="items", query=None, id_column="id",
                                            vector_column="embedding", vector_format="float4[]", window=window,
                                            batch_size=100)
    assert base_select(source, datetime(2026, 12, 1, tzinfo=timezone.utc)).as_string(None)


def test_images_outside_the_allowlist_are_refused_naming_each_field() -> None:
    spec = FaissIndexSpec.model_validate(_spec(build={"image": "evil.example.com/miner:1"},
                                               serving={"image": "registry.example.com/faiss/serve:2"}))
    allowed = ("registry.example.com/faiss/*",)
    message = image_refusal(spec, allowed, default_image="ghcr.io/x/op:1")
    assert message is not None and "spec.build.image 'evil.example.com/miner:1'" in message
    assert "spec.serving.image" not in message
    assert image_refusal(spec, (), default_image="ghcr.io/x/op:1") is None  # off by default


def test_the_operators_own_image_is_always_allowed() -> None:
    spec = FaissIndexSpec.model_validate(_spec(build={"image": "ghcr.io/x/op:1"}))
    assert image_refusal(spec, ("registry.example.com/*",), default_image="ghcr.io/x/op:1") is None


def test_the_allowlist_is_read_from_the_environment_the_chart_sets() -> None:
    config = OperatorConfig.from_env({"FAISS_OPERATOR_ALLOWED_IMAGES": "a.example.com/*, b.example.com/x:1,"})
    assert config.allowed_images == ("a.example.com/*", "b.example.com/x:1")
    assert OperatorConfig.from_env({}).allowed_images == ()


def test_the_chart_documents_and_passes_the_allowlist() -> None:
    chart = REPO / "charts" / "faiss-operator"
    assert "## @param allowedImages" in (chart / "values.yaml").read_text()
    assert yaml.safe_load((chart / "values.yaml").read_text())["allowedImages"] == []
    assert "FAISS_OPERATOR_ALLOWED_IMAGES" in (chart / "templates" / "deployment.yaml").read_text()


def test_the_operator_refuses_a_disallowed_image_with_a_degraded_condition_and_creates_nothing() -> None:
    from faiss_operator.decide import decide
    from faiss_operator.observe import observe

    body = {"metadata": {"name": "weather", "namespace": "team-a", "uid": "u1", "generation": 3},
            "spec": _spec(build={"image": "evil.example.com/miner:1"})}
    config = OperatorConfig(image="ghcr.io/x/op:1", allowed_images=("registry.example.com/faiss/*",))
    plan = decide(observe(body, now=datetime(2026, 12, 1, tzinfo=timezone.utc), config=config))
    degraded = plan.status.condition("Degraded")
    assert degraded is not None and degraded.status == "True" and degraded.reason == "InvalidSpec"
    assert "image not allowed: spec.build.image 'evil.example.com/miner:1'" in degraded.message
    assert plan.create_job is None and not plan.prune_versions and not plan.ensure_serving and plan.write_pointer is None
    assert [e.reason.value for e in plan.events] == ["InvalidSpec"]
