"""The Kubernetes API server's ``Status`` object, as carried by a client error's body."""

from __future__ import annotations

import json
from typing import Any


def status_body(exc: Any) -> dict[str, Any]:
    """The ``Status`` in ``exc.body`` (e.g. a kubernetes ``ApiException``), or {} when it is not one."""
    try:
        body = json.loads(getattr(exc, "body", None) or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}
