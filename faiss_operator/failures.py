"""What a failed build means for the person reading it: will retrying help, and what to do. Pure.

The builder ends a failed build with a one-line termination message ``<Code>: <message>``
(``index_builder.errors``); the codes are a stable contract. Some name a configuration or
data problem that the same spec and the same source will reproduce on every attempt
(a wrong dimension, denied credentials, a bad factory string): retrying only burns a builder
pod and delays the advice, so the index is Stalled after the first such failure and the
condition says what to fix. Others (an unreachable database, a killed pod, a storage hiccup)
may pass on the next attempt, so they are retried with the usual cooldown. Either way the
remedy is in the Degraded message from the first failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REBUILD_HINT = "then change the spec or request a rebuild (annotation faiss.indexops.io/rebuild-requested-at, `faissctl rebuild NAME`)"


@dataclass(frozen=True)
class FailureClass:
    code: str | None
    heals: bool  # may pass when retried with the same spec and source
    remedy: str


# Retrying the same spec and source fails the same way: fix something first.
_NEEDS_A_FIX: dict[str, str] = {
    "RequestInvalid": "the build request does not validate (operator and builder versions differ?): check the builder image",
    "SourceInvalid": "the source is not readable as (n, d) float vectors: check spec.source (format, columns) and the data",
    "DimensionMismatch": "the source's vectors have another width than spec.dimension: fix spec.dimension or the source",
    "InvalidVectors": "the source holds NaN/Inf values (or zero vectors under Cosine): clean the data",
    "InvalidIds": "the ids do not match the vectors (length, duplicates, negatives): fix the ids",
    "TooFewVectors": "the source has fewer vectors than validation.minVectors or the index type needs: lower them or add data",
    "CredentialsMissing": "the credentials Secret or key named in the spec is missing: create it in this namespace",
    "SourceAuthFailed": "the source rejected the credentials: fix the Secret's value (it is never shown here)",
    "FactoryInvalid": "FAISS rejects the factory string or parameters: fix spec.factory / spec.parameters",
    "VersionConflict": "a version with this id was published by a different spec: request a rebuild to get a new id",
}
# May pass on a later attempt: retried with the cooldown, Stalled after build.maxConsecutiveFailures.
_MAY_HEAL: dict[str, str] = {
    "SourceNotFound": "the source object, table or file does not exist (yet): check spec.source (bucket, key, {horizon}) or wait for it to be written",
    "SourceUnreachable": "the source did not answer: check its endpoint, DNS and NetworkPolicies",
    "StorageError": "artifact storage failed: check spec.storage (endpoint, bucket, credentials) and the storage service",
    "InsufficientMemory": "the builder needs more memory than it has: raise spec.build.resources.limits.memory or pick a smaller index type",
    "BuildError": "FAISS or the builder failed unexpectedly: read the builder log (`kubectl logs job/JOB`)",
}
_CODE = re.compile(r"^([A-Z][A-Za-z]+): ")


def failure_code(message: str | None) -> str | None:
    """The builder's code at the start of a termination message, if it is one."""
    match = _CODE.match(message or "")
    return match.group(1) if match else None


def classify(message: str | None) -> FailureClass:
    """Whether a failed build with this message may pass when retried, and what to do."""
    code = failure_code(message)
    if code in _NEEDS_A_FIX:
        return FailureClass(code, heals=False, remedy=_NEEDS_A_FIX[code])
    if code in _MAY_HEAL:
        return FailureClass(code, heals=True, remedy=_MAY_HEAL[code])
    return FailureClass(code, heals=True, remedy="read the builder Job's pod status and log (`kubectl describe job`, `kubectl logs`)")
