"""``faissctl status [NAME]``: what serves, what builds, what is wrong, what happened."""

from __future__ import annotations

import click

from faissctl.app import App, emit, kube_options, output_option
from faissctl.errors import usage
from faissctl.kube import KubeOptions
from faissctl.status_text import render, render_list
from faissctl.summary import EVENT_LIMIT, hints, summarize


@click.command()
@click.argument("name", required=False)
@click.option("-A", "--all-namespaces", is_flag=True, help="Every FaissIndex in every namespace (no NAME).")
@click.option("--events", "event_limit", type=click.IntRange(0, 1000), default=EVENT_LIMIT, show_default=True,
              help="How many recent Events to show for NAME.")
@kube_options
@output_option
@click.pass_obj
def status(app: App, name: str | None, all_namespaces: bool, event_limit: int, kopts: KubeOptions, fmt: str) -> None:
    """Show one FaissIndex in detail, or every FaissIndex in the namespace as a table.

    For NAME: the serving version (since when, recall, p99, vectors, rollout, candidate,
    pin), the last build and its trigger, failures and Stalled, the next scheduled build,
    drift, every condition with its reason and message, and the latest Events.
    """
    if name and all_namespaces:
        raise usage("NAME and -A/--all-namespaces cannot be combined")
    kube = app.kube(kopts)
    now = app.now()
    if name:
        ns = kopts.namespace or kube.namespace
        obj = kube.get_index(ns, name)
        events = kube.list_events(ns, name) if event_limit else []
        report = summarize(obj, events, event_limit)
        emit(report, fmt, lambda: render(report, now, hints(report)))
        return
    ns = None if all_namespaces else (kopts.namespace or kube.namespace)
    items = sorted(kube.list_indexes(ns), key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    reports = [summarize(o) for o in items]
    if fmt != "human":
        emit({"items": reports}, fmt, str)
    elif not reports:
        where = "any namespace" if ns is None else f"namespace {ns!r}"
        click.echo(f"No FaissIndex found in {where}.", err=True)
    else:
        click.echo(render_list(reports, now, all_namespaces), nl=False)
