"""Entry point of ``faissctl`` and of the kubectl plugin ``kubectl-faiss`` (``kubectl faiss ...``)."""

from __future__ import annotations

import os
import sys

import click

from faissctl import __version__
from faissctl.app import App
from faissctl.commands.annotate import abort, promote, rebuild
from faissctl.commands.bench import bench
from faissctl.commands.local import build, validate
from faissctl.commands.query import query
from faissctl.commands.status import status
from faissctl.commands.versions import pin, unpin, versions

EPILOG = """\b
Exit codes: 0 ok; 1 failed (build failed, problems found, timeout, storage error);
2 bad arguments; 3 no such FaissIndex or CRD not installed; 4 no cluster / unreachable;
5 denied by RBAC. Docs: docs/faissctl.md"""


class OrderedGroup(click.Group):
    """Commands in the order a newcomer needs them, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=OrderedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EPILOG)
@click.version_option(__version__, "--version", prog_name="faissctl")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Inspect and operate FaissIndex resources: what serves, what builds, stored versions,
    rebuild / promote / abort / pin, offline validation, local builds and a quick benchmark."""
    ctx.ensure_object(App)


for command in (status, versions, rebuild, promote, abort, pin, unpin, validate, build, bench, query):
    cli.add_command(command)


def prog_name(argv0: str) -> str:
    """``kubectl faiss`` when run as the kubectl plugin, so help and errors show what the user typed."""
    return "kubectl faiss" if os.path.basename(argv0).startswith("kubectl-faiss") else "faissctl"


def main() -> None:
    try:
        cli.main(prog_name=prog_name(sys.argv[0]))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
