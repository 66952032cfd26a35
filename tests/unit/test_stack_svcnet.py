"""The local stack's stand-in for kube-proxy and cluster DNS (issue 11): names, IPs, routes, proxy.

Pure parts are checked directly; the proxy with real sockets on loopback (no cluster).
"""

from __future__ import annotations

import errno
import socket
import threading

from hack.stack.agent_services import service_routes
from hack.stack.svcnet import Backend, ServiceProxy, ServiceTable, hosts_lines, next_free_ip, parse_service_host

OCTET = 217  # outside 16..215, the ranges real stacks claim


def test_every_cluster_dns_form_of_a_service_name_parses_to_its_namespace_and_name():
    assert parse_service_host("shard-0", "team-a") == ("team-a", "shard-0")
    assert parse_service_host("shard-0.team-b") == ("team-b", "shard-0")
    assert parse_service_host("shard-0.team-b.svc") == ("team-b", "shard-0")
    assert parse_service_host("Shard-0.Team-B.svc.cluster.local.") == ("team-b", "shard-0")


def test_names_that_are_not_service_names_do_not_parse():
    assert parse_service_host("shard-0") is None  # a single label needs the pod's namespace
    for host in ("127.0.0.1", "a.b.c", "x.ns.pod.cluster.local", "a.b.svc.example.com", "a..b", ""):
        assert parse_service_host(host, "ns") is None, host


def test_service_ips_are_allocated_lowest_first_above_the_pod_range_and_never_twice():
    assert next_free_ip(OCTET, set()) == f"127.{OCTET}.8.1"
    taken = {f"127.{OCTET}.8.1", f"127.{OCTET}.8.3"}
    assert next_free_ip(OCTET, taken) == f"127.{OCTET}.8.2"
    full_first_block = {f"127.{OCTET}.8.{lo}" for lo in range(1, 255)}
    assert next_free_ip(OCTET, full_first_block) == f"127.{OCTET}.9.1"


def test_a_namespace_hosts_file_gives_short_names_only_for_its_own_services():
    table = {("a", "web"): "127.9.8.1", ("b", "web"): "127.9.8.2"}
    lines = hosts_lines(table, "a")
    assert lines[0] == "127.9.8.1 web.a.svc.cluster.local web.a.svc web.a web"
    assert lines[1] == "127.9.8.2 web.b.svc.cluster.local web.b.svc web.b"


def test_the_service_table_keeps_ips_across_restarts_and_only_appends_to_a_hosts_file(tmp_path):
    base = tmp_path / "etc-hosts"
    base.write_text("127.0.0.1 localhost")
    table = ServiceTable(tmp_path, OCTET, base)
    first = table.ip_for("a", "web")
    path = table.hosts_file("a")
    before = path.read_text()
    assert before.startswith("127.0.0.1 localhost\n") and f"{first} web.a.svc.cluster.local" in before
    inode = path.stat().st_ino
    second = table.ip_for("b", "db")
    table.refresh_hosts()
    after = path.read_text()
    assert after.startswith(before) and f"{second} db.b.svc.cluster.local db.b.svc db.b\n" in after
    assert path.stat().st_ino == inode  # same file: a bind mount of it sees the new line
    again = ServiceTable(tmp_path, OCTET, base)
    assert (again.ip_for("b", "db"), again.ip_for("a", "web")) == (second, first)


def _pod(name: str, ns: str, ip: str, labels: dict, ready: bool, port: int) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "uid": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _svc(name: str, ns: str, selector: dict, **spec) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "uid": name},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}}


def test_routes_send_a_service_port_to_its_ready_pods_at_the_named_target_port():
    pods = [_pod("p1", "a", "127.9.0.1", {"app": "x"}, True, 8080),
            _pod("p2", "a", "127.9.0.2", {"app": "x"}, False, 8080),
            _pod("p3", "b", "127.9.0.3", {"app": "x"}, True, 8080)]
    services = [_svc("x", "a", {"app": "x"}), _svc("headless", "a", {"app": "x"}, clusterIP="None"),
                _svc("empty", "a", {"app": "none"})]
    ips = {("a", "x"): "127.9.8.1", ("a", "empty"): "127.9.8.2"}
    routes = service_routes(services, pods, lambda ns, n: ips[(ns, n)], "node")
    assert routes == {("127.9.8.1", 80): [Backend("127.9.0.1", 8080)], ("127.9.8.2", 80): []}


def _echo_server(ip: str, tag: bytes) -> tuple[socket.socket, int]:
    srv = socket.create_server((ip, 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(tag + conn.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def _ask(ip: str, port: int) -> bytes:
    with socket.create_connection((ip, port), timeout=5) as s:
        s.sendall(b"?")
        s.shutdown(socket.SHUT_WR)
        return s.recv(100)


def _refused(ip: str, port: int) -> bytes | str:
    try:
        return _ask(ip, port)
    except ConnectionResetError:
        return "reset"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:  # closed by the proxy before this side's half-close: a reset by another name
        if e.errno == errno.ENOTCONN:
            return "reset"
        raise


def test_the_proxy_spreads_connections_over_ready_backends_skips_a_dead_one_and_refuses_with_none():
    one, port_one = _echo_server(f"127.{OCTET}.0.1", b"one")
    two, port_two = _echo_server(f"127.{OCTET}.0.2", b"two")
    dead = socket.create_server((f"127.{OCTET}.0.3", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    proxy = ServiceProxy()
    svc_ip = f"127.{OCTET}.8.1"
    try:
        proxy.set_routes({(svc_ip, 8081): [Backend(f"127.{OCTET}.0.1", port_one), Backend(f"127.{OCTET}.0.3", dead_port),
                                            Backend(f"127.{OCTET}.0.2", port_two)]})
        answers = {_ask(svc_ip, 8081) for _ in range(6)}
        assert answers == {b"one?", b"two?"}
        proxy.set_routes({(svc_ip, 8081): []})
        assert _refused(svc_ip, 8081) in (b"", "reset")  # accepted and closed at once: no endpoint
        proxy.set_routes({})
        assert _refused(svc_ip, 8081) == "refused"  # the Service went away: nothing listens
    finally:
        proxy.close()
        one.close()
        two.close()
