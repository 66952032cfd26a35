"""Pod status as a kubelet would write it, for the dev/test node agent.

Test/dev infrastructure only. The Job, ReplicaSet/Deployment and EndpointSlice
controllers read phase, conditions and containerStatuses; getting these right
(terminal phases, Ready only when every container and readiness gate is) is what
lets the real controllers drive pods run as local processes.
"""

from __future__ import annotations

from typing import Any

from hack.stack.agent_runtime import Container, now_iso

Obj = dict[str, Any]
OWN_CONDITIONS = ("PodReadyToStartContainers", "PodScheduled", "Initialized",
                  "ContainersReady", "Ready")


def pod_phase(containers: list[Container], restart_policy: str, launched: bool,
              init_failed: bool) -> str:
    """Phase from container states; `launched` = main containers have been started."""
    if init_failed:
        return "Failed"
    if not launched:
        return "Pending"
    done = [c for c in containers if "terminated" in c.state and not will_restart(c, restart_policy)]
    if len(done) == len(containers):
        return "Succeeded" if all(c.exit_code == 0 for c in done) else "Failed"
    return "Running"


def will_restart(c: Container, restart_policy: str) -> bool:
    """Whether a terminated container is going to be started again."""
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return c.exit_code != 0
    return False


class StatusWriter:
    """Builds the status dict; remembers condition transition times between calls."""

    def __init__(self) -> None:
        self._since: dict[str, tuple[str, str]] = {}

    def _cond(self, ctype: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        prev = self._since.get(ctype)
        ts = prev[1] if prev and prev[0] == status else now_iso()
        self._since[ctype] = (status, ts)
        out: Obj = {"type": ctype, "status": status, "lastProbeTime": None,
                    "lastTransitionTime": ts}
        if not ok and reason:
            out["reason"] = reason
        if not ok and message:
            out["message"] = message
        return out

    def build(self, pod: Obj, phase: str, pod_ip: str, host_ip: str, start_time: str,
              init: list[Container], containers: list[Container], initialized: bool,
              sandbox_ready: bool, message: str = "", reason: str = "") -> Obj:
        terminal = phase in ("Succeeded", "Failed")
        unready = [c.name for c in containers if not c.ready]
        containers_ready = not unready and not terminal
        gates = [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]
        existing = pod.get("status", {}).get("conditions") or []
        gate_ok = all(any(c["type"] == g and c["status"] == "True" for c in existing)
                      for g in gates)
        ready_msg = f"containers with unready status: [{' '.join(unready)}]" if unready else ""
        init_pending = [c.name for c in init if c.exit_code != 0]
        conditions = [
            self._cond("PodReadyToStartContainers", sandbox_ready and not terminal),
            self._cond("Initialized", initialized, "ContainersNotInitialized",
                       f"containers with incomplete status: [{' '.join(init_pending)}]"),
            self._cond("Ready", containers_ready and gate_ok,
                       "PodCompleted" if terminal else
                       ("ContainersNotReady" if unready else "ReadinessGatesNotReady"),
                       ready_msg),
            self._cond("ContainersReady", containers_ready,
                       "PodCompleted" if terminal else "ContainersNotReady", ready_msg),
            self._cond("PodScheduled", True),
        ]
        conditions += [c for c in existing if c["type"] not in OWN_CONDITIONS]
        status: Obj = {"phase": phase, "conditions": conditions, "hostIP": host_ip,
                       "hostIPs": [{"ip": host_ip}], "startTime": start_time,
                       "containerStatuses": [c.status() for c in containers],
                       "message": message or None, "reason": reason or None}
        if pod_ip:
            status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
        if init:
            status["initContainerStatuses"] = [c.status() for c in init]
        return status
