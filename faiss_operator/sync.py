"""Drift check: probe the source's cheap fingerprint and pair it with the recorded one.

When a check runs is decided in ``drift`` (pure); ``probe_sync`` does the I/O (the DSN Secret, the database or the
bucket listing) and never raises for a source problem: it returns the error for status.
"""

from __future__ import annotations

from datetime import datetime

from indexops_api.status import FaissIndexStatus
from faiss_operator.artifacts import Artifacts, source_client
from faiss_operator.config import OperatorConfig
from faiss_operator.conditions import parse_instant
from faiss_operator.kube import clients
from faiss_operator.model import SyncObservation


def _secret_value(namespace: str, name: str, key: str) -> str:
    import base64

    secret = clients().core.read_namespaced_secret(name, namespace)
    data = (secret.data or {}).get(key)
    if data is None:
        raise KeyError(f"Secret {namespace}/{name} has no key {key!r}")
    try:
        return base64.b64decode(data).decode()
    except UnicodeDecodeError:  # its message would quote a byte of the value
        raise ValueError(f"Secret {namespace}/{name} key {key!r} is not UTF-8 text (the value is not shown)") from None


def probe_sync(at: Artifacts, status: FaissIndexStatus, namespace: str, now: datetime, config: OperatorConfig | None = None) -> SyncObservation:
    """Compare with the newest built version (the candidate during a canary, else the serving one)."""
    from indexops_store import probe  # libpq only where drift checks run
    from indexops_store.postgres import redact

    version = status.candidate_version or status.current_version
    assert version is not None
    recorded, error = at.manifest(version)
    if recorded is None:
        return SyncObservation(error=f"manifest of {version} unreadable: {error}")
    source = at.spec.source
    try:
        dsn: str | None = None
        if source.postgres is not None:
            ref = source.postgres.dsn_secret
            dsn = _secret_value(namespace, ref.name, ref.key)
        # Only under the source's grant (bucket and prefixes of this namespace), with the operator's limits.
        client = source_client(at.spec, namespace, at.name, config) if source.s3 else None
        # Count the window the build counted: rows ageing out of a sliding window are not drift.
        anchor = parse_instant(recorded.source.window_anchor)
        probed = probe.probe_source(source, at.spec.horizon, anchor, dsn=dsn, s3_client=client)
    except Exception as exc:  # a probe failure is reported in status, never fatal to the loop
        # Last line of defence: whatever raised, no fragment of the DSN leaves the process.
        return SyncObservation(recorded=recorded.source, error=redact(f"{type(exc).__name__}: {exc}", dsn))
    if isinstance(probed, probe.NotProbeable):
        return SyncObservation(recorded=recorded.source, error=probed.message)
    return SyncObservation(recorded=recorded.source, probed=probed)
