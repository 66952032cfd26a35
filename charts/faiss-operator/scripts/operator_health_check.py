# `helm test` (templates/tests/test-operator-health.yaml), run with the operator image's
# Python: every operator replica, found through the metrics Service's EndpointSlices,
# answers /healthz and serves /metrics, and exactly one of them leads
# (faiss_operator_leader 1). Retries until TIMEOUT_SECONDS: a rollout or takeover may be
# under way. Prints one line per replica; exits non-zero with the reason.
import os
import sys
import time
import urllib.request

from kubernetes import client, config


def replicas(namespace, service):
    """(address, {port name: port}) of the ready endpoints of the Service."""
    slices = client.DiscoveryV1Api().list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}").items
    found = []
    for s in slices:
        ports = {p.name: p.port for p in s.ports or []}
        for ep in s.endpoints or []:
            if ep.conditions is None or ep.conditions.ready is not False:
                found += [(a, ports) for a in ep.addresses]
    return found


def get(address, port, path):
    host = f"[{address}]" if ":" in address else address
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as resp:
        return resp.status, resp.read().decode()


def check(namespace, service):
    found = replicas(namespace, service)
    if not found:
        return False, [f"no ready endpoint behind Service {namespace}/{service}"]
    lines, leaders, ok = [], 0, True
    for address, ports in sorted(found):
        try:
            health, _ = get(address, ports["health"], "/healthz")
            _, metrics = get(address, ports["metrics"], "/metrics")
            gauge = next((float(l.split()[1]) for l in metrics.splitlines() if l.startswith("faiss_operator_leader ")), None)
        except Exception as exc:  # report every replica, then fail
            ok = False
            lines.append(f"{address}: {exc}")
            continue
        leaders += gauge == 1.0
        role = {1.0: "leader", 0.0: "standby"}.get(gauge, "no faiss_operator_leader metric")
        lines.append(f"{address}: /healthz {health}, {role}")
        ok = ok and health == 200 and gauge is not None
    if leaders != 1:
        ok = False
        lines.append(f"{leaders} replicas report faiss_operator_leader 1, expected exactly one")
    return ok, lines


def main():
    namespace, service = os.environ["NAMESPACE"], os.environ["SERVICE"]
    deadline = time.monotonic() + float(os.environ.get("TIMEOUT_SECONDS", "90"))
    config.load_incluster_config()
    while True:
        try:
            ok, lines = check(namespace, service)
        except client.ApiException as exc:  # e.g. the RoleBinding is not in effect yet
            ok, lines = False, [f"listing EndpointSlices: HTTP {exc.status} {exc.reason}"]
        if ok or time.monotonic() > deadline:
            break
        time.sleep(3)
    print("\n".join(lines), flush=True)
    print("PASS: the operator is healthy" if ok else "FAIL: the operator is not healthy", flush=True)
    sys.exit(0 if ok else 1)


main()
