"""``faissctl bench NAME``: QPS and p50/p99 per served version, against the serving Service or --url."""

from __future__ import annotations

import itertools
import sys
import threading
from typing import Any

import click

from faissctl import bench as load
from faissctl.app import App, emit, kube_options, note, output_option
from faissctl.errors import EXIT_FAILED, CtlError
from faissctl.kube import Kube, KubeOptions
from faissctl.output import table
from indexops_api.layout import serving_name

PORT_NAME = "http"  # the serving Service's port name (faiss_operator.objects)
PROBE_TIMEOUT = 3.0
SEARCH_PATH = "/v1/search"


def _round_robin(app: App, urls: list[str], timeout: float) -> load.Post:
    cycle, lock = itertools.cycle(urls), threading.Lock()

    def post(body: bytes) -> tuple[int, bytes]:
        with lock:
            url = next(cycle)
        return app.http_post(url + SEARCH_PATH, body, timeout)

    return post


def _target(app: App, kube: Kube | None, index: dict[str, Any] | None, url: str | None, via: str,
            probe: bytes, timeout: float) -> tuple[load.Post, str]:
    """How to reach serving, and how to describe it: --url, pod endpoints, or the API server's service proxy."""
    if url:
        return _round_robin(app, [url.rstrip("/")], timeout), url
    assert kube is not None and index is not None
    meta = index["metadata"]
    ns, service = meta["namespace"], serving_name(meta["name"])
    if via in ("auto", "endpoints"):
        urls = kube.service_endpoints(ns, service, PORT_NAME)
        if not urls and via == "endpoints":
            raise CtlError(f"service {ns}/{service} has no ready endpoints (is a version serving? `faissctl status {meta['name']}`)")
        if urls:
            try:
                app.http_post(urls[0] + SEARCH_PATH, probe, PROBE_TIMEOUT)
                return _round_robin(app, urls, timeout), f"{len(urls)} pod endpoint(s) of service {ns}/{service}"
            except OSError as exc:
                if via == "endpoints":
                    raise CtlError(f"cannot reach pod endpoint {urls[0]}: {exc}") from None
                note(f"pod endpoints not reachable from here ({exc}); using the API server's service proxy")
    return (lambda body: kube.proxy_post(ns, service, PORT_NAME, SEARCH_PATH, body),
            f"service {ns}/{service} through the API server proxy (latency includes the proxy hop)")


def _render(target: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    head = (f"{params['requests']} requests to {target}: concurrency {params['concurrency']}, "
            f"k={params['k']}, {params['batch']} vector(s) per request, {params['seconds']:.2f}s\n")
    body = table(["VERSION", "ROLE", "REQUESTS", "QPS", "P50", "P99", "ERRORS"],
                 [[r["version"] or "(failed)", r["role"], r["requests"], None if r["qps"] is None else f"{r['qps']:.1f}",
                   f"{r['p50Ms']:.2f} ms", None if r["p99Ms"] is None else f"{r['p99Ms']:.2f} ms", r["errors"]] for r in rows])
    errors = "".join(f"first error: {r['firstError']}\n" for r in rows if r.get("firstError"))
    return head + body + errors


@click.command()
@click.argument("name", required=False)
@click.option("--url", help="Serving base URL (e.g. http://localhost:8080 after kubectl port-forward); NAME is then optional.")
@click.option("--via", type=click.Choice(["auto", "endpoints", "proxy"]), default="auto", show_default=True,
              help="How to reach the Service: pod IPs from its EndpointSlices, or the API server's service proxy "
                   "(works from anywhere with a kubeconfig, needs get on services/proxy). auto: pods, else proxy.")
@click.option("-r", "--requests", "count", type=click.IntRange(1, 1_000_000), default=200, show_default=True)
@click.option("-c", "--concurrency", type=click.IntRange(1, 256), default=4, show_default=True)
@click.option("-k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Neighbours per query.")
@click.option("--batch", type=click.IntRange(1, 1024), default=1, show_default=True, help="Vectors per request.")
@click.option("--dimension", type=click.IntRange(1, 65536), help="Query dimension (default: the index's spec.dimension).")
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True, help="Seconds per request.")
@kube_options
@output_option
@click.pass_obj
def bench(app: App, name: str | None, url: str | None, via: str, count: int, concurrency: int, k: int, batch: int,
          dimension: int | None, timeout: float, kopts: KubeOptions, fmt: str) -> None:
    """Send a small load of random queries (POST /v1/search) and print QPS and p50/p99 per served version."""
    if not name and not url:
        raise click.UsageError("give NAME (its serving Service is used) or --url")
    kube = index = None
    if name:
        kube = app.kube(kopts)
        index = kube.get_index(kopts.namespace or kube.namespace, name)
        if not ((index.get("spec") or {}).get("serving") or {}).get("enabled", True) and not url:
            raise CtlError(f"{name} has serving disabled (spec.serving.enabled: false); benchmark your own server with --url")
    dim = dimension or ((index or {}).get("spec") or {}).get("dimension")
    if not dim:
        raise click.UsageError("--dimension is required with --url and no NAME")
    bodies = load.query_bodies(dim, count + min(10, count), k, batch)
    post, target = _target(app, kube, index, url, via, bodies[0], timeout)
    load.run(post, bodies[count:], min(concurrency, 4))  # warm-up, not measured
    samples, seconds = load.run(post, bodies[:count], concurrency)
    rows = load.summarize(samples, seconds)
    params = {"requests": count, "concurrency": concurrency, "k": k, "batch": batch, "seconds": seconds}
    emit({"target": target, **params, "versions": rows}, fmt, lambda: _render(target, params, rows))
    if all(s.version is None for s in samples):
        sys.exit(EXIT_FAILED)
