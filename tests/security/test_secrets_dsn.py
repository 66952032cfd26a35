"""No fragment of the Secret behind ``dsnSecret`` leaves the process (real PostgreSQL, real S3 API).

A tenant may point ``dsnSecret`` at any key of any Secret in their namespace (a GitHub token,
a TLS key). libpq's parse error quotes the text (``missing "=" after "<value>"``), and that
message used to reach the termination message, so ``status.lastBuild``, the ``BuildFailed``
Event and the logs, and the drift probe's ``SyncFailed``. The builder's termination message
is the only text the operator copies into status and Events, and the probe's error the only
text of ``SyncFailed``, so both are checked here together with every log record.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.integration.s3_harness import Buckets, build_request, run_builder

from indexops_api.spec import PostgresSource
from indexops_store import postgres as pg_shared
from indexops_store.probe import ProbeError, probe_postgres

pytestmark = [pytest.mark.integration, pytest.mark.security]

TOKEN = "ghp_R3allyS3cretT0kenValue0123456789abcd"
NOT_A_DSN = {
    "a bare token": TOKEN,
    "a token after a key=value": f"host=127.0.0.1 {TOKEN}",
    "a token as an unknown keyword's value": f"host=127.0.0.1 token={TOKEN}",
    "an unterminated quoted value": f"host=127.0.0.1 password='{TOKEN}",
    "another URI scheme": f"https://user:{TOKEN}@example.com/",
    "a malformed postgresql URI": f"postgresql://user:{TOKEN}@[::1/db",
}


def _leaks(text: str) -> bool:
    return TOKEN in text or TOKEN[4:20] in text


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


def _source() -> PostgresSource:
    return PostgresSource.model_validate({"dsnSecret": {"name": "tokens", "key": "github"}, "table": "items"})


@pytest.mark.parametrize("dsn", list(NOT_A_DSN.values()), ids=list(NOT_A_DSN))
def test_a_secret_that_is_not_a_dsn_is_named_never_quoted_by_the_builder(
    dsn: str, s3_endpoint: str, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FAISS_POSTGRES_DSN", dsn)
    source = {"postgres": {"dsnSecret": {"name": "tokens", "key": "github"}, "table": "items"}}
    request = build_request(buckets=buckets, endpoint=s3_endpoint, dimension=8, source=source,
                            validation={"queries": 10, "k": 5})
    with caplog.at_level(logging.DEBUG):
        result = run_builder(request, tmp_path)
    assert result.exit_code == 1
    assert not _leaks(result.termination), result.termination
    assert not _leaks(_logged(caplog))
    assert result.termination.startswith("SourceInvalid: ")
    assert "'tokens'" in result.termination and "'github'" in result.termination
    assert "not shown" in result.termination


@pytest.mark.parametrize("dsn", list(NOT_A_DSN.values()), ids=list(NOT_A_DSN))
def test_a_secret_that_is_not_a_dsn_is_named_never_quoted_by_the_drift_probe(dsn: str) -> None:
    with pytest.raises(ProbeError) as caught:
        probe_postgres(dsn, _source(), connect_timeout=2)
    assert not _leaks(str(caught.value)), str(caught.value)
    assert caught.value.reason == "SourceInvalid"
    assert "'tokens'" in str(caught.value) and "'github'" in str(caught.value)


def test_a_wrong_password_in_a_uri_is_never_echoed_by_builder_or_probe(
    postgres_env: dict[str, str], s3_endpoint: str, buckets: Buckets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from psycopg.conninfo import conninfo_to_dict

    real = conninfo_to_dict(postgres_env["FAISS_POSTGRES_DSN"])
    dsn = f"postgresql://{real['user']}:{TOKEN}@{real['host']}:{real['port']}/{real['dbname']}"
    monkeypatch.setenv("FAISS_POSTGRES_DSN", dsn)
    source = {"postgres": {"dsnSecret": {"name": "tokens", "key": "github"}, "table": "items"}}
    request = build_request(buckets=buckets, endpoint=s3_endpoint, dimension=8, source=source,
                            validation={"queries": 10, "k": 5})
    with caplog.at_level(logging.DEBUG):
        result = run_builder(request, tmp_path)
    assert result.exit_code == 1 and result.termination.startswith("SourceAuthFailed: ")
    assert not _leaks(result.termination) and not _leaks(_logged(caplog))
    with pytest.raises(ProbeError) as caught:
        probe_postgres(dsn, _source(), connect_timeout=5)
    assert caught.value.reason == "SourceAuthFailed" and not _leaks(str(caught.value))


def test_a_bad_dsn_is_described_by_position_and_kind() -> None:
    assert "character 1 has no '='" in (pg_shared.dsn_problem(TOKEN) or "")
    assert "character 16" in (pg_shared.dsn_problem(f"host=127.0.0.1 {TOKEN}") or "")
    assert "unknown keyword" in (pg_shared.dsn_problem(f"token={TOKEN}") or "")
    assert pg_shared.dsn_problem("host=127.0.0.1 dbname=faiss") is None


def test_redaction_removes_every_fragment_of_the_dsn_and_uri_passwords() -> None:
    dsn = f"host=db.example password={TOKEN} dbname=faiss"
    text = f"libpq said: password {TOKEN} rejected; also postgresql://bob:hunter2@db/x and {dsn}"
    cleaned = pg_shared.redact(text, dsn)
    assert TOKEN not in cleaned and "hunter2" not in cleaned
    assert "***" in cleaned
    assert pg_shared.redact("could not translate host name", f"not a dsn {TOKEN}") == "could not translate host name"
