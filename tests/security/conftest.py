"""Security tests: each reproduces an attack a tenant can make against real parts.

Unit-level tests here are pure; integration-level ones reuse the integration fixtures (a
real S3 API from moto on loopback, a real PostgreSQL from ``tests/conftest.py``), imported
below by package path so the two folders share one definition. The e2e part (``e2e/``)
needs the local stack and runs with the e2e suite. ``make test`` runs all of them.
"""

from __future__ import annotations

from tests.integration.conftest import buckets, fake_aws_env, s3, s3_endpoint

__all__ = ["buckets", "fake_aws_env", "s3", "s3_endpoint"]
