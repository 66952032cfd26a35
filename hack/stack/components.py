"""The processes that make up the local dev/test stack, and how to tell each is healthy.

Test/dev infrastructure only (see shared/design/LOCAL_CLUSTER.md). Each Component
knows its command line and a readiness probe that returns None when healthy or a
short reason when not, so `up` can wait on it and `status` can report it the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from hack.stack.kube_rest import ApiError, Kube
from hack.stack.stackconf import NODE_NAME, REPO_ROOT, TOOLS_BIN, VENV_BIN, StackPaths

# Controllers we rely on are all in '*'. Node IPAM/lifecycle/taint eviction assume a
# real node fleet. The endpoints/endpointslice controllers can never succeed here:
# pod IPs are loopback addresses, which API validation rejects in Endpoints and IPv4
# EndpointSlices; the node agent publishes FQDN-typed slices instead.
KCM_CONTROLLERS = ("*,-node-ipam-controller,-node-lifecycle-controller,-taint-eviction-controller,"
                   "-endpoints-controller,-endpointslice-controller")


@dataclass
class Ctx:
    """What the components need to know about this stack instance."""

    paths: StackPaths
    ports: dict[str, int]
    _kube: Kube | None = field(default=None, repr=False)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(str(self.paths.kubeconfig), timeout=5)
        return self._kube

    def cert(self, name: str) -> str:
        return str(self.paths.certs / name)


def _http_session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def etcd_argv(c: Ctx) -> list[str]:
    client = f"http://127.0.0.1:{c.ports['etcd_client']}"
    peer = f"http://127.0.0.1:{c.ports['etcd_peer']}"
    return [str(TOOLS_BIN / "etcd"), "--name=faiss-local", f"--data-dir={c.paths.etcd_data}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=faiss-local={peer}", "--unsafe-no-fsync", "--log-level=warn"]


def etcd_ready(c: Ctx) -> str | None:
    try:
        r = _http_session().get(f"http://127.0.0.1:{c.ports['etcd_client']}/health", timeout=2)
    except requests.RequestException as e:
        return f"etcd /health: {type(e).__name__}"
    return None if r.status_code == 200 and '"true"' in r.text else f"etcd /health: {r.text[:80]}"


def apiserver_argv(c: Ctx) -> list[str]:
    return [str(TOOLS_BIN / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{c.ports['etcd_client']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={c.ports['apiserver']}",
            f"--tls-cert-file={c.cert('apiserver.crt')}",
            f"--tls-private-key-file={c.cert('apiserver.key')}",
            f"--client-ca-file={c.cert('ca.crt')}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={c.cert('sa.pub')}",
            f"--service-account-signing-key-file={c.cert('sa.key')}",
            "--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            # The node agent serves container logs on the node's kubelet port.
            f"--kubelet-client-certificate={c.cert('admin.crt')}",
            f"--kubelet-client-key={c.cert('admin.key')}",
            "--kubelet-preferred-address-types=InternalIP", "--v=1"]


def apiserver_ready(c: Ctx) -> str | None:
    s = _http_session()
    s.cert = (c.cert("admin.crt"), c.cert("admin.key"))
    s.verify = c.cert("ca.crt")
    try:
        r = s.get(f"{c.server}/readyz", timeout=3)
        if r.status_code != 200:
            return f"/readyz: HTTP {r.status_code}"
        r = s.get(f"{c.server}/api/v1/namespaces/default", timeout=3)
        return None if r.status_code == 200 else "namespace default not there yet"
    except requests.RequestException as e:
        return f"/readyz: {type(e).__name__}"


def kcm_argv(c: Ctx) -> list[str]:
    return [str(TOOLS_BIN / "kube-controller-manager"), f"--kubeconfig={c.paths.kubeconfig}",
            "--leader-elect=false", "--secure-port=0",
            f"--service-account-private-key-file={c.cert('sa.key')}",
            f"--root-ca-file={c.cert('ca.crt')}",
            f"--cluster-signing-cert-file={c.cert('ca.crt')}",
            f"--cluster-signing-key-file={c.cert('ca.key')}",
            f"--controllers={KCM_CONTROLLERS}", "--use-service-account-credentials=false",
            "--v=1"]


def kcm_ready(c: Ctx) -> str | None:
    """Evidence the controllers run: the default SA and kube-root-ca.crt exist."""
    try:
        if c.kube.get_or_none("/api/v1/namespaces/default/serviceaccounts/default") is None:
            return "ServiceAccount default/default not created yet"
        if c.kube.get_or_none("/api/v1/namespaces/default/configmaps/kube-root-ca.crt") is None:
            return "ConfigMap default/kube-root-ca.crt not published yet"
    except (ApiError, requests.RequestException) as e:
        return f"API: {type(e).__name__}"
    return None


def moto_argv(c: Ctx) -> list[str]:
    return [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(c.ports["s3"])]


def moto_ready(c: Ctx) -> str | None:
    try:
        r = _http_session().get(f"http://127.0.0.1:{c.ports['s3']}/moto-api/", timeout=2)
    except requests.RequestException as e:
        return f"moto: {type(e).__name__}"
    return None if r.status_code < 500 else f"moto: HTTP {r.status_code}"


def agent_argv(c: Ctx) -> list[str]:
    return [sys.executable, "-m", "hack.stack.node_agent", f"--kubeconfig={c.paths.kubeconfig}",
            f"--state-dir={c.paths.root}"]


def agent_ready(c: Ctx, pid: int | None) -> str | None:
    """The Node is Ready and its agent-pid annotation names the running agent."""
    try:
        node = c.kube.get_or_none(f"/api/v1/nodes/{NODE_NAME}")
    except (ApiError, requests.RequestException) as e:
        return f"API: {type(e).__name__}"
    if node is None:
        return f"Node {NODE_NAME} not registered yet"
    if node["metadata"].get("annotations", {}).get("faiss.local/agent-pid") != str(pid):
        return "Node not yet claimed by the running agent"
    ready = [x for x in node.get("status", {}).get("conditions", []) if x["type"] == "Ready"]
    return None if ready and ready[0]["status"] == "True" else "Node not Ready"


@dataclass(frozen=True)
class Component:
    name: str
    argv: Callable[[Ctx], list[str]]
    ready: Callable[[Ctx, int | None], str | None]
    timeout: float
    wait_before_next: bool  # later components need this one healthy first
    stop_grace: float = 10.0
    ports: tuple[str, ...] = ()  # keys of Ctx.ports it listens on: `up` waits until they are free
    in_repo: bool = False  # runs `python -m hack...`: started in the repo root, not the state dir


def _ignore_pid(f: Callable[[Ctx], str | None]) -> Callable[[Ctx, int | None], str | None]:
    return lambda c, _pid: f(c)


COMPONENTS: list[Component] = [
    Component("moto-s3", moto_argv, _ignore_pid(moto_ready), 60, wait_before_next=False, ports=("s3",)),
    Component("etcd", etcd_argv, _ignore_pid(etcd_ready), 60, wait_before_next=True, ports=("etcd_client", "etcd_peer")),
    Component("kube-apiserver", apiserver_argv, _ignore_pid(apiserver_ready), 180, True, ports=("apiserver",)),
    Component("kube-controller-manager", kcm_argv, _ignore_pid(kcm_ready), 120, False),
    Component("node-agent", agent_argv, agent_ready, 60, False, stop_grace=40, in_repo=True),
]
# Stop order: the agent first (it kills pod processes), etcd last but one.
STOP_ORDER = ["node-agent", "kube-controller-manager", "kube-apiserver", "etcd", "moto-s3"]
REQUIRED_TOOLS = ["etcd", "kube-apiserver", "kube-controller-manager", "helm"]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-tools.sh"
