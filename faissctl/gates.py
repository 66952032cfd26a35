"""Would a stored version pass the index's gates? Pure.

Used by ``pin --previous`` (never roll back to a version the operator would have rejected)
and by ``build`` (report whether a local build would be accepted). The same gates the
operator applies (``indexops_api.gates``), except the vector-count change, which depends
on what is serving.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from indexops_api.gates import gate_failures
from indexops_api.manifest import Manifest
from indexops_api.spec import FaissIndexSpec


def gate_problems(manifest: Manifest, spec: dict[str, Any], *, for_pin: bool = False) -> list[str]:
    """Why ``manifest`` would not serve under ``spec`` (camelCase dict); empty when it passes.

    ``for_pin``: as a rollback target (any index type; see ``indexops_api.gates``).
    """
    try:
        parsed = FaissIndexSpec.model_validate(spec)
    except ValidationError as exc:
        return [f"the index's spec is invalid: {exc.errors()[0]['msg']}"]
    return gate_failures(manifest, parsed, manifest.version, same_type=not for_pin)
