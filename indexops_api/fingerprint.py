"""Has the source changed since a version was built? A pure comparison of two fingerprints.

``recorded`` is the serving version's ``manifest.source`` (written by the builder);
``probed`` is what ``indexops_store.probe`` sees now. Which fields are compared depends on
what identifies the data:

* An ETag on either side makes it an object-store fingerprint: the ETag identifies the
  bytes, hence the rows, so it decides alone. The count is never compared (an S3 probe
  cannot know it from a listing), nor is LastModified (a re-upload of identical bytes is
  not a change); the newest object time is only added to the sentence when the ETag moved.
* Otherwise (PostgreSQL): the row count and the watermark. Watermarks are compared as
  instants, so the same time written with another UTC offset (the session time zone) is
  not drift. A content hash is compared only when both sides have one (probes do not
  compute it).

A different ``uri`` is always drift: the fingerprints describe different data.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from indexops_api.manifest import SourceFingerprint

_DIGEST = re.compile(r"^(sha256:)?([0-9a-f]{12})[0-9a-f]{20,}$")


def describe_drift(recorded: SourceFingerprint, probed: SourceFingerprint) -> str | None:
    """``None`` when the source is unchanged, else what changed, e.g. ``row count 1000 → 1100``."""
    changes: list[str] = []
    if recorded.uri != probed.uri:
        changes.append(f"source {recorded.uri} → {probed.uri}")
    if recorded.etag is not None or probed.etag is not None:
        if recorded.etag != probed.etag:
            changes.append(f"etag {_short(recorded.etag)} → {_short(probed.etag)}")
            if not same_time(recorded.watermark, probed.watermark):
                changes.append(f"newest object {_when(recorded.watermark)} → {_when(probed.watermark)}")
    else:
        if recorded.count != probed.count:
            changes.append(f"row count {recorded.count} → {probed.count}")
        if not same_time(recorded.watermark, probed.watermark):
            changes.append(f"watermark {_when(recorded.watermark)} → {_when(probed.watermark)}")
        if recorded.content_hash and probed.content_hash and recorded.content_hash != probed.content_hash:
            changes.append(f"content hash {_short(recorded.content_hash)} → {_short(probed.content_hash)}")
    return "; ".join(changes) or None


def same_time(a: str | None, b: str | None) -> bool:
    """Equal texts, or ISO times denoting the same instant (``...+02:00`` vs ``...Z``)."""
    if a == b:
        return True
    first, second = _parse(a), _parse(b)
    if first is None or second is None or (first.tzinfo is None) != (second.tzinfo is None):
        return False
    return first == second


def _parse(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _when(text: str | None) -> str:
    """UTC with a ``Z`` when it is an aware ISO time; the text as recorded otherwise."""
    if text is None:
        return "none"
    parsed = _parse(text)
    if parsed is None or parsed.tzinfo is None:
        return text
    return parsed.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _short(value: str | None) -> str:
    """ETags and digests cut to 12 hex digits (S3 ETags lose their quotes)."""
    if value is None:
        return "none"
    bare = value.strip('"')
    match = _DIGEST.match(bare)
    return f"{match.group(1) or ''}{match.group(2)}…" if match else bare
