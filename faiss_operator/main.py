"""Console entry point ``faiss-operator``: JSON logs, /metrics, leader election, then kopf.

Only the replica that holds the leader Lease (``leader.py``) runs kopf, so only it runs
handlers; kopf's own peering is therefore off (``standalone=True``). A follower blocks
until it acquires the Lease and meanwhile answers its liveness probe from a small standby
server on the port where kopf serves ``/healthz`` once it runs. Losing the Lease exits the
process at once with code 1, so the pod restarts as a follower and never acts without the
Lease. On SIGTERM kopf stops, its reconcile threads finish, then the Lease is released so a
follower takes over at its next poll instead of waiting for the Lease to expire.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

import click
import kopf
import kubernetes
from aiohttp import web
from prometheus_client import Gauge, start_http_server

from faiss_operator.config import OperatorConfig, watched_namespaces
from faiss_operator.kube import clients
from faiss_operator.leader import KubeLeaseApi, LeaderElector, Timings, new_identity

LEADER = Gauge("faiss_operator_leader", "1 while this replica holds the leader Lease and reconciles")
log = logging.getLogger("faiss_operator.main")


def _elector(config: OperatorConfig) -> LeaderElector:
    timings = Timings(config.lease_duration_seconds)
    coordination = kubernetes.client.CoordinationV1Api(clients().core.api_client)
    # Each request must end well before the renew deadline, so a hung call cannot keep
    # a leader that has stopped renewing acting past it.
    api = KubeLeaseApi(coordination, config.lease_namespace, config.lease_name, request_timeout=max(1.0, timings.lease_duration / 6))
    return LeaderElector(api, new_identity(config.pod_name), timings)


def _exit_lost(reason: str) -> None:
    """Leadership lost: stop acting now. No cleanup; the pod restarts as a follower."""
    log.error("lost leadership, exiting: %s", reason)
    logging.shutdown()
    os._exit(1)


async def _standby_health(config: OperatorConfig, elector: LeaderElector) -> web.AppRunner:
    """/healthz while following: kopf's liveness endpoint exists only once kopf runs."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "standby", "identity": elector.identity})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.bind_host, config.port).start()
    return runner


async def _stand_by(config: OperatorConfig, elector: LeaderElector, stop: asyncio.Event) -> bool:
    """Block until this replica leads (True) or it is asked to stop first (False)."""
    runner = await _standby_health(config, elector)
    give_up = threading.Event()
    acquiring = asyncio.ensure_future(asyncio.to_thread(elector.acquire, give_up))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        give_up.set()
        stopping.cancel()
        leading = await acquiring
        await runner.cleanup()  # frees the port for kopf's /healthz
    if leading and stop.is_set():  # acquired just as we were told to stop
        elector.release()
        return False
    return leading


async def _resignal_once_kopf_handles_signals(ready: asyncio.Event, stop: asyncio.Event) -> None:
    """A signal that came while kopf was starting reached our handler, not kopf's: resend it.

    (kopf's own ``stop_flag`` would do, but then a signal leaves its flag waiter pending and
    kopf waits 5 s for that "hung" task before it stops, delaying the takeover.)
    """
    await ready.wait()
    if stop.is_set():
        os.kill(os.getpid(), signal.SIGTERM)


@click.command()
@click.option(
    "--namespace", "namespaces", multiple=True,
    help="Watch this namespace; repeat for several (default: FAISS_OPERATOR_NAMESPACES, else all namespaces).",
)
@click.option("--log-level", envvar="FAISS_OPERATOR_LOG_LEVEL", default="info", show_default=True)
@click.option(
    "--leader-election/--no-leader-election", default=None,
    help="Run only while holding the leader Lease (default: FAISS_OPERATOR_LEADER_ELECTION, else on). "
         "Turn off only for a single local operator.",
)
def main(namespaces: tuple[str, ...], log_level: str, leader_election: bool | None) -> None:
    """Run the faiss-index-operator (kopf) against the current cluster."""
    config = OperatorConfig.from_env()
    watched = watched_namespaces(*namespaces) or config.namespaces
    elect = config.leader_election if leader_election is None else leader_election
    kopf.configure(log_format=kopf.LogFormat.JSON, verbose=log_level.lower() == "debug")
    logging.getLogger().setLevel(log_level.upper())
    if log_level.lower() != "debug":
        # kopf logs every watch-event handler call at INFO; our own log lines say what happened.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # liveness probes
    LEADER.set(0)
    start_http_server(config.port + 1, addr=config.bind_host)  # /metrics on port+1
    import faiss_operator.handlers  # noqa: F401  (registers the handlers; imported early for a fast takeover)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()  # SIGTERM/SIGINT before kopf handles signals itself
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    elector: LeaderElector | None = None
    if elect:
        elector = _elector(config)
        if not loop.run_until_complete(_stand_by(config, elector, stop)):
            log.info("stopped while standing by; never acted")
            loop.close()
            return
        elector.start_renewing(_exit_lost)
    else:
        log.warning("leader election is off: run exactly one replica of this operator")
    LEADER.set(1)

    ready = asyncio.Event()
    resignal = loop.create_task(_resignal_once_kopf_handles_signals(ready, stop))
    try:
        kopf.run(
            loop=loop,
            ready_flag=ready,
            standalone=True,  # the Lease, not kopf's peering, decides who acts
            # Exactly the watched namespaces (kopf's --namespace per entry): a namespaced
            # install has Roles there and nothing cluster-wide to list or watch with.
            clusterwide=not watched,
            namespaces=list(watched),
            liveness_endpoint=f"http://{config.bind_host}:{config.port}/healthz",
        )
    finally:
        resignal.cancel()
        loop.run_until_complete(loop.shutdown_default_executor())  # reconcile threads are done
        loop.close()
        LEADER.set(0)
        if elector is not None:
            elector.release()

if __name__ == "__main__":  # pragma: no cover
    main()
