"""The e2e part of the security suite: the real API server of the local stack.

Reuses the e2e suite's fixtures (``stack_env``, ``kubeconfig``, ``api_client``) and helpers;
``make test`` runs this folder with ``tests/e2e`` while the stack is up.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_E2E = Path(__file__).resolve().parents[2] / "e2e"
sys.path.insert(0, str(_E2E))  # helpers, localstack (via helpers)

_spec = importlib.util.spec_from_file_location("_security_e2e_fixtures", _E2E / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures
_spec.loader.exec_module(_fixtures)

stack_env = _fixtures.stack_env
kubeconfig = _fixtures.kubeconfig
api_client = _fixtures.api_client
