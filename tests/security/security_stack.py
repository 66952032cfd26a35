"""Shared set-up of the security tests that need the local stack (marked ``e2e``).

They run against the same stack as tests/e2e (``make stack-up``; ``make test`` starts it),
reusing the e2e helpers, which read state through kubectl and S3 only. The helpers are
imported by their package path (``tests.e2e.helpers``, the repo root is on pytest's
``pythonpath``), so another folder's ``helpers`` module on ``sys.path`` cannot shadow them.
"""

from __future__ import annotations

from hack import localstack
from tests.e2e import helpers

Cluster = localstack.Cluster
OPERATOR_NAMESPACE = localstack.OPERATOR_NAMESPACE
RELEASE = localstack.RELEASE
OPERATOR_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"

__all__ = ["Cluster", "OPERATOR_ACCOUNT", "OPERATOR_NAMESPACE", "RELEASE", "helpers", "localstack"]
