"""Serving runtime: follows the serving pointer, hot-swaps verified versions, answers kNN.

Use it as a process (``faiss-index-server``, HTTP) or embed ``IndexRuntime`` in an
existing Python service. Either way a version is only served after every file matched
its manifest, and a bad version never replaces a good one.
"""

from index_serving.config import ServingConfig
from index_serving.errors import BadRequest, NoIndexLoaded, VersionRejected
from index_serving.fallback import ExactFallback, Fallback
from index_serving.runtime import IndexRuntime
from index_serving.snapshot import SearchResult, Snapshot

__all__ = ["BadRequest", "ExactFallback", "Fallback", "IndexRuntime", "NoIndexLoaded", "SearchResult", "ServingConfig", "Snapshot", "VersionRejected"]
