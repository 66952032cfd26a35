"""Pure canary routing: which loaded version answers a query, and which are shadowed.

Routing is a consistent hash of the query key, so one key (a user, a session, a
forecast cell) always sees the same version for a given percent, and raising the
percent only moves keys from stable to candidate, never back. sha256 is used rather
than Python's ``hash()`` because the latter is salted per process: every replica must
route a key the same way.
"""

from __future__ import annotations

import hashlib
import uuid


def route_bucket(key: str) -> int:
    """The key's bucket in 0..99."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 100


def goes_to_candidate(key: str, candidate_percent: int) -> bool:
    """True iff ``int(sha256(key)) % 100 < candidate_percent``."""
    return candidate_percent > 0 and route_bucket(key) < candidate_percent


def goes_to_shadow(key: str, shadow_percent: int) -> bool:
    """True for about ``shadow_percent``% of keys, deterministically per key.

    Salted differently from canary routing on purpose: shadowing samples the
    stable-routed keys, which are exactly the keys whose routing bucket is at or above
    the candidate percent; the same bucket would never pick one of them when the shadow
    percent is at or below the candidate percent.
    """
    return shadow_percent > 0 and route_bucket(f"shadow:{key}") < shadow_percent


def request_key(key: str | None) -> str:
    """The caller's key, or a random request id when the caller does not care."""
    return key if key else uuid.uuid4().hex
