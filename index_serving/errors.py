"""Typed errors of the serving runtime, mapped to HTTP statuses by the server."""

from __future__ import annotations


class BadRequest(ValueError):
    """The query is malformed (HTTP 400); the message says what to fix."""


class NoIndexLoaded(RuntimeError):
    """No stable version is loaded yet (HTTP 503); embedders should use their fallback."""


class ConfigError(ValueError):
    """Serving configuration is incomplete or malformed."""


class VersionRejected(RuntimeError):
    """A version failed to download, verify or load; it is never served."""

    def __init__(self, version: str, reason: str, message: str):
        super().__init__(f"version {version} rejected ({reason}): {message}")
        self.version = version
        self.reason = reason
