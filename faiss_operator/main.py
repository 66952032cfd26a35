"""Console entry point ``faiss-operator``: JSON logs, /metrics, then kopf with /healthz."""

from __future__ import annotations

import logging

import click
import kopf
from prometheus_client import start_http_server

from faiss_operator.config import OperatorConfig


@click.command()
@click.option("--namespace", envvar="FAISS_OPERATOR_NAMESPACE", default=None, help="Watch one namespace (default: all).")
@click.option("--log-level", envvar="FAISS_OPERATOR_LOG_LEVEL", default="info", show_default=True)
def main(namespace: str | None, log_level: str) -> None:
    """Run the faiss-index-operator (kopf) against the current cluster."""
    config = OperatorConfig.from_env()
    kopf.configure(log_format=kopf.LogFormat.JSON, verbose=log_level.lower() == "debug")
    logging.getLogger().setLevel(log_level.upper())
    if log_level.lower() != "debug":
        # kopf logs every watch-event handler call at INFO; our own log lines say what happened.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # liveness probes
    start_http_server(config.port + 1, addr=config.bind_host)  # /metrics on port+1
    import faiss_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        standalone=True,  # a single replica until leader election lands (chart: Recreate)
        clusterwide=not namespace,
        namespaces=[namespace] if namespace else [],
        liveness_endpoint=f"http://{config.bind_host}:{config.port}/healthz",
    )


if __name__ == "__main__":  # pragma: no cover
    main()
