"""``faissctl query NAME``: one search against a FaissIndex's serving replicas, retried on another replica.

The pod endpoints of the serving Service are searched directly (``search_client``): a
replica that is being killed or restarted costs a retry, not an error. With ``--url`` a
single server is asked (no retry target).
"""

from __future__ import annotations

import json
import click

from faissctl.app import App, emit, kube_options, note, output_option
from faissctl.errors import CtlError
from faissctl.kube import KubeOptions
from faissctl.search_client import NoReplicaAnswered, ReplicaSearch
from indexops_api.layout import serving_name

PORT_NAME = "http"  # the serving Service's port name (faiss_operator.objects)


def _vector(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter("give comma-separated numbers, e.g. 0.1,0.2,0.3") from None
    if not values:
        raise click.BadParameter("the vector is empty")
    return values


@click.command()
@click.argument("name", required=False)
@click.option("--vector", "text", required=True, help="Query vector, comma-separated (its length is the index's dimension).")
@click.option("-k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Neighbours to return.")
@click.option("--key", help="Routing key (the same key always goes to the same version during a canary).")
@click.option("--url", help="One serving base URL instead of the Service's pod endpoints.")
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=5.0, show_default=True, help="Seconds per attempt.")
@click.option("--attempts", type=click.IntRange(1, 16), default=3, show_default=True, help="Replicas tried at most.")
@kube_options
@output_option
@click.pass_obj
def query(app: App, name: str | None, text: str, k: int, key: str | None, url: str | None, timeout: float, attempts: int,
          kopts: KubeOptions, fmt: str) -> None:
    """Search NAME's serving replicas for the k nearest neighbours of --vector (retried on another replica)."""
    if not name and not url:
        raise click.UsageError("give NAME (its serving pods are asked) or --url")
    if url:
        urls = [url]
    else:
        kube = app.kube(kopts)
        ns = kopts.namespace or kube.namespace
        urls = kube.service_endpoints(ns, serving_name(name), PORT_NAME)
        if not urls:
            raise CtlError(f"service {ns}/{serving_name(name)} has no ready endpoints (is a version serving? `faissctl status {name}`)")
    body = {"vectors": [_vector(text)], "k": k, **({"key": key} if key else {})}
    client = ReplicaSearch(urls, app.http_post, timeout=timeout, attempts=attempts, deadline=timeout * attempts)
    try:
        answer = client.search(json.dumps(body).encode())
    except NoReplicaAnswered as exc:
        raise CtlError(str(exc)) from None
    for failed in answer.tried:
        note(f"retried on another replica: {failed}")
    try:
        data = json.loads(answer.body)
    except ValueError:
        data = {"error": answer.body.decode(errors="replace")[:500]}
    if answer.status != 200:
        raise CtlError(f"{answer.url} answered HTTP {answer.status}: {data.get('error', data)}")
    emit({"replica": answer.url, "retried": answer.tried, **data}, fmt, lambda: _render(answer.url, data))


def _render(url: str, data: dict) -> str:
    lines = [f"answered by {url}: version {data.get('version')} ({data.get('role')})", "ID\tDISTANCE"]
    for ids, dists in zip(data.get("ids") or [], data.get("distances") or []):
        lines += [f"{i}\t{d:.6g}" for i, d in zip(ids, dists)]
    return "\n".join(lines) + "\n"
