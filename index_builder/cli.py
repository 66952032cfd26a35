"""``faiss-index-builder``: the builder Job's entry point.

The process contract with the operator is deliberately small: exit code 0 means the
version's manifest exists (written now or by an earlier attempt of the same build);
exit code 1 means nothing was published, and the Kubernetes termination message holds
``<Code>: <readable message>`` for the operator to copy into status and Events.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from index_builder import logs, pipeline, sharded
from index_builder.errors import BuildError, BuildFailure, RequestInvalid
from indexops_api.build_request import BuildRequest
from indexops_api.constants import ENV_BUILD_REQUEST, ENV_TERMINATION_MESSAGE_PATH

log = logging.getLogger("index_builder")

ENV_TERMINATION_PATH = ENV_TERMINATION_MESSAGE_PATH
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


def load_request(path: Path | None, env: dict[str, str]) -> BuildRequest:
    """The BuildRequest from ``--request FILE`` or the ``FAISS_BUILD_REQUEST`` env var."""
    if path is not None:
        try:
            text, origin = path.read_text(), str(path)
        except OSError as exc:
            raise RequestInvalid(f"cannot read build request {path}: {exc}") from exc
    elif env.get(ENV_BUILD_REQUEST):
        text, origin = env[ENV_BUILD_REQUEST], f"${ENV_BUILD_REQUEST}"
    else:
        raise RequestInvalid(f"no build request: set {ENV_BUILD_REQUEST} or pass --request FILE")
    try:
        return BuildRequest.model_validate(json.loads(text))
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError are ValueErrors
        detail = _validation_summary(exc) if isinstance(exc, ValidationError) else str(exc)
        raise RequestInvalid(f"build request from {origin} is invalid: {detail}") from exc


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())


def write_termination_message(line: str, env: dict[str, str]) -> None:
    """Best effort: outside Kubernetes the default path is usually not writable."""
    path = env.get(ENV_TERMINATION_PATH) or DEFAULT_TERMINATION_PATH
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(line)
    except OSError:
        pass


def execute(request_path: Path | None, workdir: Path | None, env: dict[str, str]) -> int:
    """Run one build; returns the process exit code."""
    try:
        request = load_request(request_path, env)
        if request.spec.sharded:
            outcome = sharded.run_stage(request, env, workdir)
            if outcome is None:  # a train or slice stage: its files are in the version's staging area
                log.info("stage finished", extra={"stage": env.get(sharded.ENV_STAGE)})
                return 0
        else:
            outcome = pipeline.run(request, env, workdir)
    except BuildFailure as failure:
        line = failure.termination_message()
        log.error("build failed", extra={"code": failure.code, "reason": failure.message})
        write_termination_message(line, env)
        return 1
    except Exception as exc:  # a bug or an unforeseen library error: still report it readably
        failure = BuildError(f"unexpected {type(exc).__name__}: {exc}")
        log.exception("build failed unexpectedly", extra={"code": failure.code})
        write_termination_message(failure.termination_message(), env)
        return 1
    log.info(
        "version published" if not outcome.already_published else "version was already published",
        extra={"manifest": outcome.manifest_uri, "recallAtK": outcome.manifest.measurements.recall_at_k},
    )
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--request", "request_path", type=click.Path(path_type=Path, dir_okay=False),
    help=f"BuildRequest JSON file (default: the {ENV_BUILD_REQUEST} environment variable).",
)
@click.option(
    "--workdir", type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Scratch directory for downloads and index files (default: $TMPDIR).",
)
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def main(request_path: Path | None, workdir: Path | None, log_level: str) -> None:
    """Build, measure and publish one FAISS index version described by a BuildRequest.

    Exit 0: the version's manifest.json exists. Exit 1: nothing was published; the
    reason is logged and written as '<Code>: <message>' to $TERMINATION_MESSAGE_PATH
    (default /dev/termination-log).
    """
    logs.configure(log_level)
    sys.exit(execute(request_path, workdir, dict(os.environ)))
