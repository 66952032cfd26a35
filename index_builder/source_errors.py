"""Failure codes that only database-backed sources produce.

They complete ``index_builder.errors`` (same ``BuildFailure`` base, same ``<Code>:
<message>`` termination line) and are kept here so the source modules own them; each
names a different thing to fix: the Secret, the network path, or the role.
"""

from __future__ import annotations

from index_builder.errors import BuildFailure


class CredentialsMissing(BuildFailure):
    """The connection string (``FAISS_POSTGRES_DSN`` from the dsnSecret) is not set."""

    code = "CredentialsMissing"


class SourceUnreachable(BuildFailure):
    """The database cannot be reached: connection refused, DNS, timeout, connection lost."""

    code = "SourceUnreachable"


class SourceAuthFailed(BuildFailure):
    """The database rejected the credentials, or the role may not read the source."""

    code = "SourceAuthFailed"
