"""Errors a person can act on, with exit codes a script can branch on.

Every failure faissctl expects (no cluster, no such index, CRD missing, RBAC denied,
storage unreachable, bad arguments) becomes a ``CtlError``: click prints
``Error: <message>`` on stderr and exits with the code below, never a traceback.
"""

from __future__ import annotations

import click

EXIT_FAILED = 1  # the operation ran and failed (build failed, validation problems, storage error, timeout)
EXIT_USAGE = 2  # bad arguments (click's own usage errors use 2 as well)
EXIT_NOT_FOUND = 3  # no such FaissIndex, or the FaissIndex CRD is not installed
EXIT_NO_CLUSTER = 4  # no kubeconfig / context, API server unreachable, credentials rejected
EXIT_FORBIDDEN = 5  # RBAC denied the call


class CtlError(click.ClickException):
    """A failure with a readable message and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


def not_found(message: str) -> CtlError:
    return CtlError(message, EXIT_NOT_FOUND)


def no_cluster(message: str) -> CtlError:
    return CtlError(message, EXIT_NO_CLUSTER)


def forbidden(message: str) -> CtlError:
    return CtlError(message, EXIT_FORBIDDEN)


def usage(message: str) -> CtlError:
    return CtlError(message, EXIT_USAGE)
