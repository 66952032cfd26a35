"""Typed build failures, each with the short code the operator reads back.

A builder Job reports failure through its exit code and a one-line Kubernetes
termination message ``<Code>: <message>``. The operator turns the code into a status
reason and an Event, so codes are part of the contract: they are stable, few, and each
names one thing a person can go and fix (the data, the bucket, the spec).
"""

from __future__ import annotations

MAX_TERMINATION_BYTES = 4096


class BuildFailure(Exception):
    """Base of every expected failure; ``code`` is the machine-readable reason."""

    code = "BuildError"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def termination_message(self) -> str:
        return termination_line(self.code, self.message)


class RequestInvalid(BuildFailure):
    """The build request (env JSON or --request file) is missing or does not validate."""

    code = "RequestInvalid"


class SourceNotFound(BuildFailure):
    """The source object, bucket or file does not exist."""

    code = "SourceNotFound"


class SourceInvalid(BuildFailure):
    """The source exists but is not a readable (n, d) float matrix in .npy format."""

    code = "SourceInvalid"


class DimensionMismatch(BuildFailure):
    """The matrix has a different number of columns than ``spec.dimension``."""

    code = "DimensionMismatch"


class InvalidVectors(BuildFailure):
    """NaN/Inf values, or zero vectors under the Cosine metric."""

    code = "InvalidVectors"


class TooFewVectors(BuildFailure):
    """Fewer vectors than ``validation.minVectors`` or than the index type needs to train."""

    code = "TooFewVectors"


class InvalidIds(BuildFailure):
    """The ids array does not match the vectors (length, dtype, duplicates, negatives)."""

    code = "InvalidIds"


class StorageFailure(BuildFailure):
    """Artifact storage is unreachable, denies access, or its bucket is missing."""

    code = "StorageError"


class VersionConflict(BuildFailure):
    """A manifest for this version already exists with a different build key."""

    code = "VersionConflict"


class BuildError(BuildFailure):
    """FAISS failed while training, adding or searching, or an unexpected bug."""

    code = "BuildError"


def termination_line(code: str, message: str) -> str:
    """``<Code>: <message>`` on one line, at most 4 KiB of UTF-8."""
    line = f"{code}: {' '.join(message.split())}"
    encoded = line.encode("utf-8")
    if len(encoded) <= MAX_TERMINATION_BYTES:
        return line
    cut = encoded[: MAX_TERMINATION_BYTES - 3].decode("utf-8", errors="ignore")
    return cut + "..."
