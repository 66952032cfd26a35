"""One worker thread per pod: the dev/test node agent's pod lifecycle.

Test/dev infrastructure only. The worker does what a kubelet's pod worker does, in
the order the real controllers expect: publish Pending with a pod IP, materialise
volumes, run init containers one by one, start containers, probe them, restart
them per restartPolicy with back-off, report terminal phases, and on deletion
SIGTERM → grace period → SIGKILL → final delete (gracePeriodSeconds=0).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from hack.stack import procs
from hack.stack.agent_env import ConfigError, SourceCache, container_env, expand_argv
from hack.stack.agent_probes import ContainerProbes
from hack.stack.agent_runtime import Container, now_iso
from hack.stack.agent_status import StatusWriter, pod_phase, will_restart
from hack.stack.agent_volumes import Mount, PodVolumes
from hack.stack.kube_rest import ApiError, Kube, pod_path

Obj = dict[str, Any]
log = logging.getLogger("node-agent")
BACKOFF_BASE, BACKOFF_MAX, BACKOFF_RESET = 1.0, 30.0, 60.0  # shorter than a kubelet's
POD_UID_ENV = "FAISS_STACK_POD_UID"


@dataclass
class AgentEnv:
    """What every pod worker needs from the agent."""

    kube: Kube
    node_name: str
    host_ip: str
    pods_dir: Path
    base_env: dict[str, str]  # PATH, KUBERNETES_SERVICE_HOST/PORT, ...
    mark: dict[str, str]  # FAISS_STACK_MARK=<state dir>
    repo_root: str
    allocate_ip: Callable[[str, str | None], str]
    release_ip: Callable[[str], None]
    finished: Callable[[str, bool], None]  # (uid, terminal)
    hosts_file: Callable[[str], Path] | None = None  # namespace -> hosts file with its Services' names


class PodGone(Exception):
    """The pod no longer exists in the API."""


class PodWorker(threading.Thread):
    def __init__(self, env: AgentEnv, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.env, self.pod = env, pod
        self.uid: str = meta["uid"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.dir = env.pods_dir / f"{meta['namespace']}_{meta['name']}"
        self.wake = threading.Event()
        self.gone = self.shutdown = False
        self.pod_ip = ""
        spec = pod["spec"]
        self.policy: str = spec.get("restartPolicy") or "Always"
        self.init = [Container(c, self.dir, init=True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c, self.dir) for c in spec.get("containers") or []]
        self.probes: dict[str, ContainerProbes] = {}
        self.writer = StatusWriter()
        self.start_time = pod.get("status", {}).get("startTime") or now_iso()
        self.initialized = not self.init
        self.launched = self.init_failed = self.sandbox = self.terminating = False
        self.message = ""
        self._published: Obj | None = None
        self.volumes: PodVolumes | None = None

    # ---- called from the watch thread --------------------------------------------
    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.wake.set()

    def vanished(self) -> None:
        self.gone = True
        self.wake.set()

    def stop(self) -> None:
        self.shutdown = True
        self.wake.set()

    # ---- helpers --------------------------------------------------------------------
    @property
    def deleting(self) -> bool:
        return self.gone or self.shutdown or bool(self.pod["metadata"].get("deletionTimestamp"))

    def _sleep(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()

    def publish(self) -> None:
        """Merge-patch the pod status when it changed (lists are replaced whole)."""
        if self.gone or self.shutdown:
            return
        # A pod being deleted ends terminal whatever its restartPolicy (kubelet >= 1.27).
        policy = "Never" if self.terminating else self.policy
        phase = pod_phase(self.containers, policy, self.launched, self.init_failed)
        status = self.writer.build(self.pod, phase, self.pod_ip, self.env.host_ip,
                                   self.start_time, self.init, self.containers,
                                   self.initialized, self.sandbox, self.message)
        if status == self._published:
            return
        ns, name = self.key.split("/")
        try:
            self.pod = self.env.kube.merge_patch(pod_path(ns, name, "status"), {"status": status})
            self._published = status
        except ApiError as e:
            if e.status == 404:
                self.gone = True
                raise PodGone() from e
            log.warning("%s: status update failed: %s", self.key, e)
        except requests.RequestException as e:  # API briefly unreachable: retry next tick
            log.warning("%s: status update failed: %s", self.key, e)

    def _container_config(self, c: Container) -> tuple[list[str], dict[str, str], list[Any]]:
        assert self.volumes is not None
        sources = SourceCache(self.env.kube, self.pod["metadata"]["namespace"])
        base = {**self.env.base_env, "HOSTNAME": self.pod["metadata"]["name"],
                "HOME": str(self.dir / "home")}
        if not self.pod["spec"].get("hostNetwork"):
            base["FAISS_POD_IP"] = self.pod_ip  # read by the bind shim (LD_PRELOAD)
        env = container_env(self.pod, c.spec, sources, self.pod_ip, self.env.host_ip, base)
        mounts = self.volumes.mounts(c.spec, env)
        if self.env.hosts_file is not None and not self.pod["spec"].get("hostNetwork"):
            # Service names (<svc>, <svc>.<ns>[.svc[.cluster.local]]) -> stack Service IPs
            mounts.append(Mount(self.env.hosts_file(self.pod["metadata"]["namespace"]), "/etc/hosts", True))
        return expand_argv(c.spec, env), env, mounts

    def _start(self, c: Container) -> None:
        """Launch c (or record why it cannot start) — never raises ConfigError."""
        try:
            argv, env, mounts = self._container_config(c)
        except (ConfigError, ApiError, requests.RequestException) as e:
            c.set_waiting("CreateContainerConfigError", str(e))
            c.next_start = time.monotonic() + 2
            return
        (self.dir / "home").mkdir(parents=True, exist_ok=True)
        c.launch(argv, env, mounts, c.spec.get("workingDir") or self.env.repo_root,
                 {**self.env.mark, POD_UID_ENV: self.uid})
        self.probes[c.name] = ContainerProbes(c)
        log.info("%s: container %s started (%s)", self.key, c.name, c.container_id or c.state)

    def _kill(self, containers: list[Container], grace: float) -> None:
        pids = [c.proc.pid for c in containers if c.proc is not None and c.running]
        if pids:
            procs.stop_groups(pids, grace, reap=False)
        for c in containers:
            c.collect_killed_exit()

    # ---- lifecycle ------------------------------------------------------------------
    def run(self) -> None:
        terminal = False
        try:
            terminal = self._run()
        except PodGone:
            pass
        except Exception:  # noqa: BLE001 — a worker must never take the agent down
            log.error("%s: worker crashed:\n%s", self.key, traceback.format_exc())
        finally:
            self._kill(self.init + self.containers, 0)
            procs.kill_pids(procs.marked_pids(self.env.mark[procs.MARK_ENV], POD_UID_ENV,
                                              self.uid))
            if self.volumes is not None:
                self.volumes.cleanup()
            self.env.release_ip(self.uid)
            self.env.finished(self.uid, terminal)

    def _run(self) -> bool:
        """Returns True when the pod ended in a terminal phase (not deleted)."""
        if self.pod["spec"].get("hostNetwork"):
            self.pod_ip = self.env.host_ip
        else:
            prev_ip = self.pod.get("status", {}).get("podIP")
            self.pod_ip = self.env.allocate_ip(self.uid, prev_ip)
        if self._lost_by_previous_agent():
            return self._finish_terminal()
        if not self.deleting:
            self.publish()
        self.volumes = PodVolumes(self.pod, self.env.kube, self.dir / "volumes", self.pod_ip,
                                  self.env.host_ip, self.env.pods_dir.parent / "claims")
        while not self.deleting:
            try:
                self.volumes.materialise(force_tokens=True)
                break
            except (ConfigError, ApiError, requests.RequestException, OSError) as e:
                for c in self.init + self.containers:
                    c.set_waiting("ContainerCreating", str(e))
                self.publish()
                self._sleep(2)
        self.sandbox = True
        if not self.deleting and not self._run_init():
            self.publish()
            return self._finish_terminal() if not self.deleting else self._terminate()
        if self.deleting:
            return self._terminate()
        for c in self.containers:
            self._start(c)
        self.launched = True
        return self._supervise()

    def _lost_by_previous_agent(self) -> bool:
        """A restartPolicy=Never pod that an earlier agent already ran cannot be rerun:
        report it Failed like a kubelet that lost its containers."""
        prior = self.pod.get("status", {}).get("containerStatuses") or []
        if self.policy != "Never" or not any(set(s.get("state") or {}) & {"running", "terminated"}
                                             for s in prior):
            return False
        ts = now_iso()
        for c in self.containers:
            c.state = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                      "message": "the node agent restarted; container lost",
                                      "startedAt": ts, "finishedAt": ts}}
        self.launched = self.initialized = True
        return True

    def _run_init(self) -> bool:
        """Run init containers sequentially; False if the pod failed (or is deleting)."""
        for c in self.init:
            while not self.deleting:
                if "waiting" in c.state and time.monotonic() >= c.next_start:
                    self._start(c)
                    self.publish()
                c.collect_exit()
                if "terminated" in c.state:
                    if c.exit_code == 0:
                        break
                    if self.policy == "Never":
                        self.init_failed = True
                        self.message = f"init container {c.name} failed"
                        return False
                    self._schedule_restart(c)
                    self.publish()
                self._sleep(0.3)
            if self.deleting:
                return False
        self.initialized = True
        return True

    def _schedule_restart(self, c: Container) -> None:
        """Restart later with exponential back-off, reset after a long enough run."""
        ran = time.monotonic() - c.started_mono
        c.crash_streak = 1 if ran >= BACKOFF_RESET else c.crash_streak + 1
        delay = min(BACKOFF_BASE * 2 ** (c.crash_streak - 1), BACKOFF_MAX)
        c.prepare_restart()
        c.set_waiting("CrashLoopBackOff", f"back-off {delay:.0f}s restarting failed "
                      f"container={c.name} pod={self.pod['metadata']['name']}")
        c.next_start = time.monotonic() + delay

    def _supervise(self) -> bool:
        last_refresh = time.monotonic()
        while not self.deleting:
            for c in self.containers:
                if c.collect_exit():
                    log.info("%s: container %s exited %s", self.key, c.name, c.exit_code)
                    if will_restart(c, self.policy):
                        self._schedule_restart(c)
                elif c.running:
                    kill_reason = self.probes[c.name].tick(self.pod_ip)
                    if kill_reason:
                        log.info("%s: %s: %s", self.key, c.name, kill_reason)
                        grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
                        self._kill([c], grace)
                        if will_restart(c, self.policy):
                            self._schedule_restart(c)
                elif "waiting" in c.state and time.monotonic() >= c.next_start:
                    self._start(c)
            self.publish()
            if pod_phase(self.containers, self.policy, True, False) in ("Succeeded", "Failed"):
                return self._finish_terminal()
            if self.volumes is not None and time.monotonic() - last_refresh > 30:
                self.volumes.refresh()
                last_refresh = time.monotonic()
            self._sleep(0.5)
        return self._terminate()

    def _finish_terminal(self) -> bool:
        """Pod reached Succeeded/Failed: nothing runs any more; the IP is released."""
        self.publish()
        log.info("%s: pod finished", self.key)
        if self.pod["metadata"].get("deletionTimestamp"):
            self._final_delete()
        return True

    def _terminate(self) -> bool:
        """Graceful deletion (or vanished pod / agent shutdown)."""
        meta = self.pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds",
                               self.pod["spec"].get("terminationGracePeriodSeconds", 30)))
        if self.shutdown:
            grace = min(grace, 5.0)
        elif self.gone:
            grace = min(grace, 2.0)
        log.info("%s: terminating (grace %.0fs)", self.key, grace)
        self.terminating = True
        self._kill(self.init + self.containers, grace)
        for c in self.init + self.containers:
            if "waiting" in c.state:
                ts = now_iso()
                c.state = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                          "startedAt": ts, "finishedAt": ts}}
        if self.shutdown or self.gone:
            return False
        try:
            self.launched = True
            self.publish()
        except PodGone:
            return False
        self._final_delete()
        return False

    def _final_delete(self) -> None:
        ns, name = self.key.split("/")
        for attempt in range(5):
            try:
                self.env.kube.delete(pod_path(ns, name), {
                    "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid}})
                return
            except ApiError as e:
                if e.status in (404, 409):
                    return
                log.warning("%s: final delete failed: %s", self.key, e)
            except requests.RequestException as e:
                log.warning("%s: final delete failed: %s", self.key, e)
            time.sleep(1 + attempt)
