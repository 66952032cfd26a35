"""Serving runtime: follows the serving pointer, hot-swaps verified versions, answers kNN.

Use it as a process (``faiss-index-server``, HTTP) or embed ``IndexRuntime`` in an
existing Python service. Either way a version is only served after every file matched
its manifest, and a bad version never replaces a good one.

The names below are imported on first use, so a light submodule (the low-priority
fetch process, ``python -m index_serving.fetch``) starts without loading FAISS.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ServingConfig": "index_serving.config",
    "BadRequest": "index_serving.errors",
    "NoIndexLoaded": "index_serving.errors",
    "VersionRejected": "index_serving.errors",
    "ExactFallback": "index_serving.fallback",
    "Fallback": "index_serving.fallback",
    "IndexRuntime": "index_serving.runtime",
    "SearchResult": "index_serving.snapshot",
    "Snapshot": "index_serving.snapshot",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'index_serving' has no attribute {name!r}")
