"""Shared set-up of the security tests that need the local stack (marked ``e2e``).

They run against the same stack as tests/e2e (``make stack-up``; ``make test`` starts it),
reusing the e2e helpers, which read state through kubectl and S3 only.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT / "hack", ROOT / "tests" / "e2e"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import helpers  # noqa: E402
import localstack  # noqa: E402

Cluster = localstack.Cluster
OPERATOR_NAMESPACE = localstack.OPERATOR_NAMESPACE
RELEASE = localstack.RELEASE
OPERATOR_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"

__all__ = ["Cluster", "OPERATOR_ACCOUNT", "OPERATOR_NAMESPACE", "RELEASE", "helpers", "localstack"]
