"""The e2e part of the security suite: the real API server of the local stack.

Reuses the e2e suite's fixtures (``stack_env``, ``kubeconfig``, ``api_client``) and helpers;
``make test`` runs this folder with ``tests/e2e`` while the stack is up.
"""

from __future__ import annotations

from tests.e2e.conftest import api_client, kubeconfig, stack_env

__all__ = ["api_client", "kubeconfig", "stack_env"]
