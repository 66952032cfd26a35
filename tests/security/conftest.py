"""Security tests: each reproduces an attack a tenant can make against real parts.

Unit-level tests here are pure; integration-level ones reuse the integration fixtures (a
real S3 API from moto on loopback, a real PostgreSQL from ``tests/conftest.py``), loaded
below so the two folders share one definition. The e2e part (``e2e/``) needs the local
stack and runs with the e2e suite. ``make test`` runs all of them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_INTEGRATION))  # s3_harness, exact


def _load(name: str, path: Path):  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_fixtures = _load("_security_integration_fixtures", _INTEGRATION / "conftest.py")
fake_aws_env = _fixtures.fake_aws_env
s3_endpoint = _fixtures.s3_endpoint
s3 = _fixtures.s3
buckets = _fixtures.buckets
