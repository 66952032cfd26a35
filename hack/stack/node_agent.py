"""Dev/test node agent: plays the kubelet for ONE Node, running pods as local processes.

THIS IS TEST/DEV INFRASTRUCTURE, NOT PART OF THE PRODUCT. The operator and its
workloads must run unchanged on any real cluster; this agent only exists because
the dev machines and CI have no container runtime (see
shared/design/LOCAL_CLUSTER.md). It:

- registers Node `faiss-local-node` (Ready, cpu=2, memory=24Gi, pods=110,
  InternalIP 127.0.0.1), renews its Lease and Ready heartbeat every 10 s;
- binds every unscheduled pod to itself (pods/binding) and runs it: images are
  ignored, each container's command/args run from the project venv inside a private
  mount namespace, each pod gets its own loopback IP 127.S.x.N (S: this stack's claimed range) as status.podIP;
- writes pod status like a kubelet so the real Job, ReplicaSet/Deployment and
  EndpointSlice controllers do the rest, and honours graceful deletion;
- keeps FQDN-typed EndpointSlices for Services (loopback IPs are rejected in
  IPv4 slices; see agent_endpoints.py);
- plays kube-proxy and cluster DNS: each Service gets a stack-local IP with a TCP
  proxy to its ready pods, and its names resolve in pods through a hosts file mounted
  at /etc/hosts (agent_services.py, svcnet.py);
- serves `kubectl logs` from the per-container log files.

Started by `python -m hack.stack.stack up`; runnable alone (from the repo root):
`python -m hack.stack.node_agent --kubeconfig K --state-dir D`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import logging
import os
import platform
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hack.stack import procs
from hack.stack.agent_endpoints import EndpointSliceMirror
from hack.stack.agent_logs import serve_logs
from hack.stack.agent_pod import POD_UID_ENV, AgentEnv, PodWorker
from hack.stack.agent_runtime import build_bind_shim
from hack.stack.agent_services import ServiceNet
from hack.stack.kube_rest import ApiError, Kube, pod_path
from hack.stack.stackconf import MARK_ENV, NODE_NAME, REPO_ROOT, VENV_BIN

Obj = dict[str, Any]
log = logging.getLogger("node-agent")
HOST_IP = "127.0.0.1"
HEARTBEAT_SECONDS = 10
KUBELET_VERSION = "v1.33.13"


RANGE_LOCKS = Path(os.environ.get("FAISS_STACK_IP_LOCK_DIR") or "/tmp/faiss-stack-ip-ranges")


class IpPool:
    """Loopback pod IPs 127.S.0.1-254 (then 127.S.1.x ...), reused once released.

    ``S`` (16..215) is derived from the state directory, whose path differs for every
    checkout (two worktrees' default ``.stack`` included), and *claimed*: the agent holds
    an flock on ``/tmp/faiss-stack-ip-ranges/S.lock`` for its lifetime and moves on to the
    next ``S`` when another stack holds it, so two stacks on one host never share a range
    (before, every default stack used 127.0.0.N and an operator crash-looped on "Address
    already in use"). An address something else listens on is skipped too.
    """

    def __init__(self, octet: int = 0, in_use: Callable[[str], bool] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
        self._octet = octet
        self._in_use = in_use or listening_on

    @staticmethod
    def octet_for(state_dir: Path) -> int:
        return 16 + int(hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest(), 16) % 200

    @staticmethod
    def claim(state_dir: Path, locks: Path = RANGE_LOCKS) -> tuple[int, Any]:
        """The first free range from ``octet_for`` on, and the open lock file that holds it."""
        locks.mkdir(parents=True, exist_ok=True)
        first = IpPool.octet_for(state_dir)
        for step in range(200):
            octet = 16 + (first - 16 + step) % 200
            handle = open(locks / f"{octet}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {state_dir.resolve()}\n")
            handle.flush()
            return octet, handle
        raise RuntimeError(f"every pod IP range under {locks} is claimed by another stack")

    def _candidates(self) -> list[str]:
        return [f"127.{self._octet}.{hi}.{lo}" for hi in range(0, 8) for lo in range(1, 255)]

    def allocate(self, uid: str, preferred: str | None = None) -> str:
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            used = set(self._by_uid.values())
            candidates = self._candidates()
            if preferred in candidates and preferred not in used:
                ip = preferred
            else:
                ip = next((c for c in candidates if c not in used and not self._in_use(c)), "")
            if not ip:
                raise RuntimeError("out of loopback pod IPs")
            self._by_uid[uid] = ip
            return ip

    def release(self, uid: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)


def listening_on(ip: str) -> bool:
    """Whether any TCP socket listens on ``ip`` (read from /proc/net/tcp, no privileges)."""
    wanted = "".join(f"{int(part):02X}" for part in reversed(ip.split(".")))
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(f[1].split(":")[0] == wanted and f[3] == "0A" for f in (line.split() for line in lines) if len(f) > 3)


def micro_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeAgent:
    def __init__(self, kube: Kube, state_dir: Path, node_name: str) -> None:
        self.kube, self.state_dir, self.node_name = kube, state_dir, node_name
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.workers: dict[str, PodWorker] = {}
        self.done: set[str] = set()
        self.final_deleted: set[str] = set()
        octet, self._range_lock = IpPool.claim(state_dir)
        self.ips = IpPool(octet)
        log.info("pod IPs from 127.%d.0.0/21", octet)
        self.mark = os.environ.get(MARK_ENV) or str(state_dir)
        server = urlparse(kube.server)
        self.api_host, self.api_port = server.hostname or HOST_IP, server.port or 443
        self.log_port = 0
        self.slices = EndpointSliceMirror(kube, node_name, self.stop_event)
        self.services = ServiceNet(state_dir, octet, node_name)
        self.slices.observers.append(self.services.sync)
        log.info("Service IPs from 127.%d.8.0/21 (names in %s)", octet, self.services.table.hosts_dir)
        self._since: dict[str, str] = {}
        self.env = AgentEnv(
            kube=kube, node_name=node_name, host_ip=HOST_IP, pods_dir=state_dir / "pods",
            base_env=self._pod_base_env(), mark={MARK_ENV: self.mark},
            repo_root=str(REPO_ROOT), allocate_ip=self.ips.allocate,
            release_ip=self.ips.release, finished=self._finished,
            hosts_file=self.services.hosts_file)

    def _pod_base_env(self) -> dict[str, str]:
        env = {"PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
               "KUBERNETES_SERVICE_HOST": self.api_host,
               "KUBERNETES_SERVICE_PORT": str(self.api_port),
               "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api_port),
               "KUBERNETES_PORT": f"tcp://{self.api_host}:{self.api_port}"}
        shim = build_bind_shim(self.state_dir / "lib")
        if shim is None:
            log.warning("no C compiler: pods binding 0.0.0.0 share ports (bind $(POD_IP))")
        else:
            env["LD_PRELOAD"] = str(shim)  # with FAISS_POD_IP: 0.0.0.0 binds -> pod IP
        return env

    # ---- node ------------------------------------------------------------------------
    def register(self) -> None:
        path = f"/api/v1/nodes/{self.node_name}"
        if self.kube.get_or_none(path) is None:
            try:
                self.kube.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                 "metadata": {"name": self.node_name}})
                log.info("registered Node %s", self.node_name)
            except ApiError as e:
                if e.status != 409:
                    raise
        self.kube.merge_patch(path, {"metadata": {
            "labels": {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "faiss.local/dev-node-agent": "true"},
            "annotations": {"faiss.local/agent-pid": str(os.getpid())}}})
        self.heartbeat()

    def _node_status(self) -> Obj:
        now = iso_now()
        res = {"cpu": "2", "memory": "24Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        conds = [("Ready", "True", "KubeletReady", "dev node agent is posting ready status")]
        conds += [(t, "False", f"KubeletHas{r}", "") for t, r in (
            ("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
            ("PIDPressure", "SufficientPID"))]
        return {"capacity": res, "allocatable": res,
                "conditions": [{"type": t, "status": s, "reason": r, "message": m,
                                "lastHeartbeatTime": now,
                                "lastTransitionTime": self._since.setdefault(t, now)}
                               for t, s, r, m in conds],
                "addresses": [{"type": "InternalIP", "address": HOST_IP},
                              {"type": "Hostname", "address": self.node_name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_port}},
                "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "",
                             "kernelVersion": platform.release(), "osImage": "dev node agent",
                             "containerRuntimeVersion": "localprocess://1",
                             "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                             "operatingSystem": "linux", "architecture": "amd64"}}

    def heartbeat(self) -> None:
        self.kube.merge_patch(f"/api/v1/nodes/{self.node_name}/status",
                              {"status": self._node_status()})
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": 40,
                "renewTime": micro_now()}
        if self.kube.get_or_none(lease_path) is None:
            node = self.kube.get(f"/api/v1/nodes/{self.node_name}")
            self.kube.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.node_name, "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": self.node_name,
                    "uid": node["metadata"]["uid"]}]}, "spec": spec})
        else:
            self.kube.merge_patch(lease_path, {"spec": spec})

    def heartbeat_loop(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception as e:  # noqa: BLE001 — keep beating through API hiccups
                log.warning("heartbeat failed: %s", e)

    # ---- pods ------------------------------------------------------------------------
    def _finished(self, uid: str, terminal: bool) -> None:
        with self.lock:
            self.workers.pop(uid, None)
            self.done.add(uid)

    def is_running(self, ns: str, name: str) -> bool:
        with self.lock:
            return any(w.key == f"{ns}/{name}" for w in self.workers.values())

    def bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            self.kube.post(pod_path(meta["namespace"], meta["name"], "binding"), {
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                             "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name}})
            log.info("bound %s/%s", meta["namespace"], meta["name"])
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("binding %s/%s failed: %s", meta["namespace"], meta["name"], e)

    def dispatch(self, pod: Obj) -> None:
        self.slices.poke()
        meta, spec = pod["metadata"], pod.get("spec", {})
        uid = meta["uid"]
        if not spec.get("nodeName"):
            if not meta.get("deletionTimestamp") and not spec.get("schedulingGates"):
                self.bind(pod)
            return
        if spec["nodeName"] != self.node_name:
            return
        with self.lock:
            worker = self.workers.get(uid)
            if worker is not None:
                worker.update(pod)
                return
            phase = pod.get("status", {}).get("phase")
            if uid in self.done or phase in ("Succeeded", "Failed"):
                if meta.get("deletionTimestamp") and uid not in self.final_deleted:
                    self.final_deleted.add(uid)
                    threading.Thread(target=self._delete_now, args=(pod,), daemon=True).start()
                return
            if self.stop_event.is_set():
                return
            worker = PodWorker(self.env, pod)
            self.workers[uid] = worker
        worker.start()

    def _delete_now(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            self.kube.delete(pod_path(meta["namespace"], meta["name"]), {
                "gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("final delete of %s failed: %s", meta["name"], e)

    def vanished(self, pod: Obj) -> None:
        self.slices.poke()
        with self.lock:
            worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.vanished()

    def watch_loop(self) -> None:
        """List+watch all pods forever; a 410 Gone or broken watch means re-list."""
        while not self.stop_event.is_set():
            try:
                listing = self.kube.get("/api/v1/pods")
                rv = listing["metadata"]["resourceVersion"]
                present = {p["metadata"]["uid"] for p in listing["items"]}
                with self.lock:
                    missing = [w for uid, w in self.workers.items() if uid not in present]
                for w in missing:
                    w.vanished()
                for pod in listing["items"]:
                    self.dispatch(pod)
                while not self.stop_event.is_set():
                    for ev in self.kube.watch("/api/v1/pods", rv, timeout_seconds=240):
                        obj = ev.get("object") or {}
                        if ev["type"] == "ERROR":
                            log.info("watch error %s: re-listing", obj.get("code"))
                            raise _Relist()
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if ev["type"] == "DELETED":
                            self.vanished(obj)
                        elif ev["type"] in ("ADDED", "MODIFIED"):
                            self.dispatch(obj)
            except _Relist:
                continue
            except Exception as e:  # noqa: BLE001 — never stop watching
                log.warning("pod watch failed (%s: %s); re-listing in 1s", type(e).__name__, e)
                self.stop_event.wait(1)

    def shutdown(self) -> None:
        """Stop every pod's processes (grace <= 5 s); API objects are left as they are."""
        self.stop_event.set()
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.stop()
        for w in workers:
            w.join(timeout=15)
        leftovers = [p for p in procs.marked_pids(self.mark)
                     if procs.environ_of(p).get(POD_UID_ENV)]
        procs.kill_pids(leftovers)
        self.services.close()
        log.info("shut down (%d pod workers stopped)", len(workers))


class _Relist(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="dev/test node agent (plays the kubelet)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--state-dir", default=str(REPO_ROOT / ".stack"))
    parser.add_argument("--node-name", default=NODE_NAME)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(threadName)s: %(message)s")
    state_dir = Path(args.state_dir).resolve()
    (state_dir / "pods").mkdir(parents=True, exist_ok=True)
    agent = NodeAgent(Kube(args.kubeconfig), state_dir, args.node_name)
    stale = [p for p in procs.marked_pids(agent.mark) if procs.environ_of(p).get(POD_UID_ENV)]
    if stale:
        log.info("killing %d pod process(es) left by a previous agent", len(stale))
        procs.kill_pids(stale)
    if not Path("/dev/termination-log").exists():
        Path("/dev/termination-log").touch()  # mount point for per-container files
    certs = state_dir / "certs"
    if (certs / "apiserver.crt").exists():
        agent.log_port = serve_logs(agent.env.pods_dir, certs / "apiserver.crt",
                                    certs / "apiserver.key", agent.is_running)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: agent.stop_event.set())
    while not agent.stop_event.is_set():
        try:
            agent.register()
            break
        except Exception as e:  # noqa: BLE001 — API may still be starting
            log.warning("node registration failed: %s; retrying", e)
            agent.stop_event.wait(1)
    threading.Thread(target=agent.heartbeat_loop, name="heartbeat", daemon=True).start()
    threading.Thread(target=agent.watch_loop, name="pod-watch", daemon=True).start()
    threading.Thread(target=agent.slices.run, name="endpointslices", daemon=True).start()
    log.info("node agent running for Node %s (logs on 127.0.0.1:%s)", agent.node_name,
             agent.log_port)
    while not agent.stop_event.wait(1):
        pass
    agent.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
