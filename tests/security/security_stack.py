"""Shared set-up of the security tests that need the local stack (marked ``e2e``).

They run against the same stack as tests/e2e (``make stack-up``; ``make test`` starts it),
reusing the e2e helpers, which read state through kubectl and S3 only. The helpers are
loaded from their file under their own module name, so another folder's ``helpers``
module on ``sys.path`` cannot shadow them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "hack") not in sys.path:
    sys.path.insert(0, str(ROOT / "hack"))

import localstack  # noqa: E402  (hack/localstack.py)


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


helpers = _load("e2e_helpers_for_security", ROOT / "tests" / "e2e" / "helpers.py")
Cluster = localstack.Cluster
OPERATOR_NAMESPACE = localstack.OPERATOR_NAMESPACE
RELEASE = localstack.RELEASE
OPERATOR_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"

__all__ = ["Cluster", "OPERATOR_ACCOUNT", "OPERATOR_NAMESPACE", "RELEASE", "helpers", "localstack"]
