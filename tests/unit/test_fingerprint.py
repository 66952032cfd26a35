"""Drift is described from two fingerprints: what the builder recorded and what a probe sees now."""

from __future__ import annotations

from typing import Any

import pytest

from indexops_api.fingerprint import describe_drift, same_time
from indexops_api.manifest import SourceFingerprint

PG = "postgres://db:5432/emb/items"
S3 = "s3://emb/6h/"
MD5_A = '"0123456789abcdef0123456789abcdef"'
MD5_B = '"fedcba9876543210fedcba9876543210"'
SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64


def _fp(uri: str = PG, count: int = 1000, **fields: Any) -> SourceFingerprint:
    return SourceFingerprint(uri=uri, count=count, **fields)


UNCHANGED = [
    pytest.param(_fp(), _fp(), id="postgres without window: same count"),
    pytest.param(_fp(watermark="2026-11-01T00:00:00+00:00"), _fp(watermark="2026-11-01T00:00:00+00:00"),
                 id="postgres: same count and watermark"),
    pytest.param(_fp(watermark="2026-11-01T02:00:00+02:00"), _fp(watermark="2026-11-01T00:00:00+00:00"),
                 id="the same instant in another session time zone"),
    pytest.param(_fp(watermark="2026-11-01T00:00:00Z"), _fp(watermark="2026-11-01T00:00:00+00:00"),
                 id="Z and +00:00 are the same instant"),
    pytest.param(_fp(content_hash=SHA_A), _fp(), id="a content hash only the builder computed is not compared"),
    pytest.param(_fp(S3, 5000, etag=SHA_A, last_modified="2026-11-01T00:00:00+00:00",
                     watermark="2026-11-01T00:00:00+00:00"),
                 _fp(S3, 0, etag=SHA_A, last_modified="2026-11-01T00:00:00+00:00", watermark="2026-11-01T00:00:00+00:00"),
                 id="s3: same etag, the probe's unknown count is not compared"),
    pytest.param(_fp(S3, 5000, etag=MD5_A, watermark="2026-11-01T00:00:00+00:00"),
                 _fp(S3, 0, etag=MD5_A, watermark="2026-11-03T00:00:00+00:00"),
                 id="s3: identical bytes uploaded again are not a change"),
]


@pytest.mark.parametrize(("recorded", "probed"), UNCHANGED)
def test_an_unchanged_source_has_no_drift(recorded: SourceFingerprint, probed: SourceFingerprint) -> None:
    assert describe_drift(recorded, probed) is None


CHANGED = [
    pytest.param(_fp(), _fp(count=1100), "row count 1000 → 1100", id="rows added"),
    pytest.param(_fp(), _fp(count=0), "row count 1000 → 0", id="every row deleted"),
    pytest.param(
        _fp(watermark="2026-11-01T00:00:00+00:00"), _fp(count=1100, watermark="2026-11-02T06:30:00+00:00"),
        "row count 1000 → 1100; watermark 2026-11-01T00:00:00Z → 2026-11-02T06:30:00Z", id="rows added in the window",
    ),
    pytest.param(
        _fp(watermark="2026-11-01T00:00:00+00:00"), _fp(watermark="2026-11-01T03:00:00+01:00"),
        "watermark 2026-11-01T00:00:00Z → 2026-11-01T02:00:00Z", id="same count, newer rows (shown in UTC)",
    ),
    pytest.param(_fp(watermark="2026-11-01T00:00:00+00:00"), _fp(count=0, watermark=None),
                 "row count 1000 → 0; watermark 2026-11-01T00:00:00Z → none", id="the window emptied"),
    pytest.param(_fp(watermark="2026-11-01T00:00:00"), _fp(watermark="2026-11-01T00:00:00+00:00"),
                 "watermark 2026-11-01T00:00:00 → 2026-11-01T00:00:00Z", id="naive and aware times are not comparable"),
    pytest.param(_fp(watermark="batch-7"), _fp(watermark="batch-8"), "watermark batch-7 → batch-8",
                 id="a watermark that is not a time is compared as text"),
    pytest.param(_fp(content_hash=SHA_A), _fp(content_hash=SHA_B),
                 "content hash sha256:aaaaaaaaaaaa… → sha256:bbbbbbbbbbbb…", id="both sides hashed the content"),
    pytest.param(_fp(S3, 5000, etag=MD5_A, watermark="2026-11-01T00:00:00+00:00"),
                 _fp(S3, 0, etag=MD5_B, watermark="2026-11-02T00:00:00+00:00"),
                 "etag 0123456789ab… → fedcba987654…; newest object 2026-11-01T00:00:00Z → 2026-11-02T00:00:00Z",
                 id="s3: an object was replaced"),
    pytest.param(_fp(S3, 5000, etag=SHA_A, watermark="2026-11-01T00:00:00+00:00"),
                 _fp(S3, 0, etag=SHA_B, watermark="2026-11-01T00:00:00+00:00"),
                 "etag sha256:aaaaaaaaaaaa… → sha256:bbbbbbbbbbbb…",
                 id="s3: an object was deleted from the prefix (newest time unchanged)"),
    pytest.param(_fp(S3, 5000, etag='"abc-3"'), _fp(S3, 0, etag='"abd-3"'), "etag abc-3 → abd-3",
                 id="s3: multipart etags are shown whole"),
    pytest.param(_fp(S3, 5000, etag=MD5_A), _fp(S3, 5000), "etag 0123456789ab… → none",
                 id="an etag on one side only is a change, counts aside"),
    pytest.param(_fp(), _fp("postgres://db:5432/emb/other"), "source postgres://db:5432/emb/items → postgres://db:5432/emb/other",
                 id="a different source"),
]


@pytest.mark.parametrize(("recorded", "probed", "sentence"), CHANGED)
def test_a_changed_source_is_described_in_one_sentence(
    recorded: SourceFingerprint, probed: SourceFingerprint, sentence: str
) -> None:
    assert describe_drift(recorded, probed) == sentence


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (None, None, True),
        ("2026-11-01T00:00:00+00:00", None, False),
        ("2026-11-01T00:00:00.500000+00:00", "2026-11-01T00:00:00.5Z", True),
        ("2026-11-01T00:00:00", "2026-11-01T00:00:00", True),
        ("2026-11-01T00:00:00", "2026-11-01T01:00:00", False),
        ("not a time", "not a time", True),
    ],
)
def test_times_are_the_same_when_they_denote_the_same_instant(a: str | None, b: str | None, same: bool) -> None:
    assert same_time(a, b) is same
