"""Issue 10 item 3: a tenant cannot point the operator's S3 credentials, memory or time anywhere.

Real parts: the operator's own ``observe`` / ``decide`` / ``store_for`` / drift probe, boto3,
and a hostile S3 server on loopback (``hostile_s3.py``). The grants are what the chart passes
in ``FAISS_OPERATOR_STORAGE_ALLOWED``.

Memory: peak RSS of this process (``VmHWM``, reset through ``/proc/self/clear_refs``) while the
operator's store meets a 200 MB object; the bound asserted is 64 MiB over the baseline
(the cap is 4 MiB per answer), against >= 200 MiB when the body is read whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hostile_s3 import HostileS3

from indexops_api.spec import FaissIndexSpec
from indexops_api.status import Reason
from indexops_store import StorageError, StorageTooLarge, StorageUnavailable
from faiss_operator.artifacts import StorageNotAllowed, source_client, store_for
from faiss_operator.config import OperatorConfig
from faiss_operator.decide import decide
from faiss_operator.observe import observe

OPERATOR_KEY_ID = "AKIAOPERATOR00000000"
TENANT_KEY_ID = "AKIAGRANTEDSECRET000"
GRANTED = "http://127.0.0.1:9"  # the platform's S3 (never contacted in these tests)
NOW = datetime(2026, 12, 7, 3, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def operator_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own (ambient) credentials, as the chart's storage.credentialsSecret sets them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OPERATOR_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret-never-leaves")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "FAISS_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hostile() -> Iterator[HostileS3]:
    server = HostileS3().start()
    yield server
    server.stop()


def config(tmp_path: Path, allowed: list[dict], **env: str) -> OperatorConfig:
    return OperatorConfig.from_env({
        "FAISS_OPERATOR_STORAGE_ALLOWED": json.dumps(allowed),
        "FAISS_OPERATOR_S3_CREDENTIALS_DIR": str(tmp_path),
        **env,
    })


def index_body(storage: dict, source: dict | None = None, namespace: str = "team-a") -> dict:
    return {
        "metadata": {"name": "analogs", "namespace": namespace, "uid": "u-1", "generation": 1},
        "spec": {
            "horizon": "6h", "dimension": 8,
            "source": {"s3": source or {"bucket": "team-a-embeddings", "key": "v/{horizon}.npy"}},
            "storage": storage,
        },
    }


def spec_of(body: dict) -> FaissIndexSpec:
    return FaissIndexSpec.model_validate(body["spec"])


def peak_rss_growth(fn) -> tuple[int, BaseException | None]:
    """Bytes the peak RSS of this process rose while ``fn`` ran (and what it raised)."""
    def vm(field: str) -> int:
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
        return int(line.split()[1]) * 1024

    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = vm("VmRSS:")
    raised = None
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 — returned to the test, which asserts on it
        raised = exc
    return vm("VmHWM:") - before, raised


# -- the allowlist: refused before any request ---------------------------------------------------


def test_an_index_on_an_endpoint_the_platform_did_not_grant_is_refused_and_the_endpoint_hears_nothing(tmp_path, hostile):
    cfg = config(tmp_path, [{"endpoint": GRANTED}])
    body = index_body({"bucket": "team-a-indexes", "endpoint": hostile.url})

    obs = observe(body, now=NOW, config=cfg)
    plan = decide(obs)

    degraded = plan.status.condition("Degraded")
    assert degraded.status == "True" and degraded.reason == Reason.STORAGE_NOT_ALLOWED
    assert hostile.url.removeprefix("http://") in degraded.message and "no request was sent" in degraded.message
    assert [e.reason.value for e in plan.events] == ["StorageNotAllowed"]
    assert plan.create_job is None and plan.write_pointer is None
    assert hostile.requests == []


def test_an_s3_source_on_an_ungranted_endpoint_refuses_the_index_although_its_storage_is_granted(tmp_path, hostile):
    cfg = config(tmp_path, [{"endpoint": GRANTED}])
    body = index_body({"bucket": "team-a-indexes", "endpoint": GRANTED},
                      source={"bucket": "team-a-embeddings", "key": "v.npy", "endpoint": hostile.url})

    obs = observe(body, now=NOW, config=cfg)

    assert obs.spec is None and obs.spec_error_reason == Reason.STORAGE_NOT_ALLOWED
    assert "spec.source.s3" in obs.spec_error
    with pytest.raises(StorageNotAllowed):
        source_client(spec_of(body), "team-a", "analogs", cfg)
    assert hostile.requests == []


def test_the_drift_probe_cannot_list_another_teams_bucket_or_prefix(tmp_path, hostile):
    cfg = config(tmp_path, [{"endpoint": hostile.url, "buckets": ["{namespace}-embeddings", "shared"],
                             "prefixes": ["{namespace}/", "faiss-indexes/{namespace}/"]}])
    other_bucket = index_body({"bucket": "shared", "endpoint": hostile.url},
                              source={"bucket": "team-b-embeddings", "prefix": "team-a/"})
    other_prefix = index_body({"bucket": "shared", "endpoint": hostile.url},
                              source={"bucket": "shared", "prefix": "team-b/vectors/"})
    own = index_body({"bucket": "shared", "endpoint": hostile.url}, source={"bucket": "team-a-embeddings", "prefix": "team-a/v/"})

    for body, what in ((other_bucket, "bucket 'team-b-embeddings'"), (other_prefix, "'team-b/vectors/'")):
        with pytest.raises(StorageNotAllowed, match=what):
            source_client(spec_of(body), "team-a", "analogs", cfg)
    assert hostile.requests == []
    # Its own bucket and folder are granted (the client is made; nothing is sent until it is used).
    source_client(spec_of(own), "team-a", "analogs", cfg)
    assert hostile.requests == []


def test_a_granted_endpoint_gets_the_grants_own_credentials_never_the_operators(tmp_path, hostile):
    secret = tmp_path / "team-a-s3"
    secret.mkdir()
    (secret / "AWS_ACCESS_KEY_ID").write_text(TENANT_KEY_ID)
    (secret / "AWS_SECRET_ACCESS_KEY").write_text("granted-secret")
    cfg = config(tmp_path, [{"endpoint": GRANTED}, {"endpoint": hostile.url, "buckets": ["team-a-*"], "credentialsSecret": "team-a-s3"}])
    store = store_for(spec_of(index_body({"bucket": "team-a-indexes", "endpoint": hostile.url})), "team-a", "analogs", cfg)

    with pytest.raises(StorageError, match="not a valid serving pointer"):  # the server answers "{}"
        store.read_pointer("faiss-indexes/team-a/analogs/6h/pointer.json")

    assert hostile.requests and hostile.key_ids() == {TENANT_KEY_ID}


# -- a granted endpoint that misbehaves: bounded size, time and pages -----------------------------


@pytest.mark.parametrize("bucket", ["huge", "huge-unsized"])
def test_a_200_mb_pointer_is_refused_unread_and_operator_memory_stays_bounded(tmp_path, hostile, bucket):
    cfg = config(tmp_path, [{"endpoint": hostile.url}])
    store = store_for(spec_of(index_body({"bucket": bucket, "endpoint": hostile.url})), "team-a", "analogs", cfg)

    started = time.monotonic()
    growth, raised = peak_rss_growth(lambda: store.read_pointer("faiss-indexes/team-a/analogs/6h/pointer.json"))

    assert isinstance(raised, StorageTooLarge), raised
    assert "4194304-byte cap" in str(raised)
    assert growth < 64 * 1024 * 1024, f"peak RSS rose by {growth / 2**20:.0f} MiB"
    assert time.monotonic() - started < cfg.s3_limits.call_seconds + 5


def test_a_200_mb_manifest_is_refused_unread_and_operator_memory_stays_bounded(tmp_path, hostile):
    cfg = config(tmp_path, [{"endpoint": hostile.url}])
    store = store_for(spec_of(index_body({"bucket": "huge", "endpoint": hostile.url})), "team-a", "analogs", cfg)

    growth, raised = peak_rss_growth(lambda: store.read_manifest("faiss-indexes/team-a/analogs/6h/versions/v1/manifest.json"))

    assert isinstance(raised, StorageTooLarge), raised
    assert growth < 64 * 1024 * 1024, f"peak RSS rose by {growth / 2**20:.0f} MiB"


def test_a_never_ending_listing_stops_at_the_page_cap(tmp_path, hostile):
    cfg = config(tmp_path, [{"endpoint": hostile.url}], FAISS_OPERATOR_S3_MAX_LIST_PAGES="20")
    store = store_for(spec_of(index_body({"bucket": "endless", "endpoint": hostile.url})), "team-a", "analogs", cfg)

    with pytest.raises(StorageTooLarge, match="past 20 pages"):
        store.list_versions("faiss-indexes/team-a/analogs/6h")
    assert hostile.list_pages == 21


def test_a_one_byte_per_second_answer_is_abandoned_at_the_call_deadline(tmp_path, hostile):
    cfg = config(tmp_path, [{"endpoint": hostile.url}], FAISS_OPERATOR_S3_CALL_TIMEOUT_SECONDS="3")
    store = store_for(spec_of(index_body({"bucket": "drip", "endpoint": hostile.url})), "team-a", "analogs", cfg)

    for call in (lambda: store.read_pointer("p/pointer.json"), lambda: store.head("p/vectors.npy")):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match=r"no complete answer within 3\.0s"):
            call()
        assert time.monotonic() - started < 3 + 2  # the deadline plus scheduling slack, not 1000 s of drip


def test_a_dripping_listing_shares_one_deadline_across_its_pages(tmp_path, hostile):
    cfg = config(tmp_path, [{"endpoint": hostile.url}], FAISS_OPERATOR_S3_CALL_TIMEOUT_SECONDS="3")
    store = store_for(spec_of(index_body({"bucket": "drip", "endpoint": hostile.url})), "team-a", "analogs", cfg)

    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        list(store.iter_objects("anything/"))
    assert time.monotonic() - started < 3 + 2
