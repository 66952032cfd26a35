"""What a builder Job's state is, and why it failed, from the Job and its pods. Pure.

One definition of "finished" for every caller (``observe`` and the deletion finalizer):
a Job is finished only when it carries the terminal ``Complete`` or ``Failed`` condition.
Counting ``status.failed`` is wrong with ``backoffLimit > 0`` (a Job retrying its pod has
``failed: 1`` and a live pod), and since Kubernetes 1.31 the controller first sets
``FailureTarget`` / ``SuccessCriteriaMet`` and adds the terminal condition only once every
pod has terminated, so a Job without it may still have a builder writing to storage.

Why it failed comes from the builder's termination message (``<Code>: <message>``, written
on purpose) or, when it wrote none, from what Kubernetes recorded: the pod's
``DisruptionTarget`` condition (evicted, preempted, drained), the container's terminated
state (``OOMKilled``, a signal such as SIGKILL as exit 137), or the pod being gone. A
disruption is not the build's fault: ``decide`` retries it without counting it.

Inputs are plain dicts as the API server serialises them (camelCase), so tables of
states can be tested without a cluster.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any, Literal

JobState = Literal["Running", "Succeeded", "Failed"]
Obj = dict[str, Any]


@dataclass(frozen=True)
class Failure:
    message: str
    disrupted: bool = False  # the pod was taken away (evicted, preempted, deleted): not the build's fault


def _true_conditions(obj: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in ((obj.get("status") or {}).get("conditions") or []) if c.get("status") == "True"}


def job_state(job: Obj) -> JobState:
    """Running until the Job carries a terminal condition (its pods are then gone)."""
    conditions = _true_conditions(job)
    if "Complete" in conditions:
        return "Succeeded"
    if "Failed" in conditions:
        return "Failed"
    return "Running"


def is_finished(job: Obj) -> bool:
    return job_state(job) != "Running"


def _signal_name(code: int) -> str | None:
    if code <= 128:
        return None
    try:
        return signal.Signals(code - 128).name
    except ValueError:
        return None


def _written_message(text: str) -> str:
    """The builder's own message; a log line (``FallbackToLogsOnError``) is not one."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return "" if last.startswith("{") else last


def _memory_limit(pod: Obj, container: str) -> str | None:
    for spec in (pod.get("spec") or {}).get("containers") or []:
        if spec.get("name") == container:
            return ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    return None


def _terminated(pod: Obj) -> tuple[str, Obj] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if term is not None and term.get("exitCode", 0) != 0:
            return cs.get("name", ""), term
    return None


def pod_failure(pod: Obj) -> Failure | None:
    """Why this builder pod failed, or None when it did not (yet)."""
    name = (pod.get("metadata") or {}).get("name", "?")
    disruption = _true_conditions(pod).get("DisruptionTarget")
    if disruption is not None:
        why = disruption.get("message") or disruption.get("reason") or "disrupted"
        return Failure(f"builder pod {name} was disrupted ({disruption.get('reason', 'DisruptionTarget')}: {why}); "
                       "retried without counting as a failed build", disrupted=True)
    found = _terminated(pod)
    deleted = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    if found is None:
        if deleted:
            return Failure(f"builder pod {name} was deleted before it finished", disrupted=True)
        return None
    container, term = found
    written = _written_message(term.get("message", ""))
    if written:
        return Failure(f"builder pod {name} was deleted while it ran: {written}", disrupted=True) if deleted else Failure(written)
    code, reason = int(term.get("exitCode", 0)), term.get("reason") or "Error"
    sig = term.get("signal")
    sig_name = _signal_name(code) if not sig else (_signal_name(128 + int(sig)) or f"signal {sig}")
    if reason == "OOMKilled":
        limit = _memory_limit(pod, container)
        return Failure(f"OOMKilled: the builder exceeded its memory limit{f' ({limit})' if limit else ''} (exit {code}); "
                       "raise spec.build.resources.limits.memory or pick a smaller index type")
    if deleted:
        how = f" ({sig_name}, exit {code})" if sig_name else f" (exit {code})"
        return Failure(f"builder pod {name} was deleted while it ran{how}", disrupted=True)
    if sig_name:
        return Failure(f"builder killed by {sig_name} (exit {code}, {reason}) without writing a termination message")
    return Failure(f"builder exited with code {code} ({reason}) without writing a termination message")


def job_failure(job: Obj, pods: list[Obj]) -> Failure:
    """Why a Failed Job failed: its newest failed pod, else the Job's own condition."""
    ordered = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    found = next((f for f in (pod_failure(p) for p in ordered) if f is not None), None)
    condition = _true_conditions(job).get("Failed") or {}
    reason = condition.get("reason") or "Failed"
    if found is None:
        if not pods:
            found = Failure("the builder pod is gone (deleted, evicted or its node lost) and left no exit status; "
                            "retried without counting as a failed build", disrupted=True)
        else:
            found = Failure(f"{reason}: {condition.get('message') or 'the Job failed'}")
    if reason == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return Failure(f"build exceeded activeDeadlineSeconds ({deadline}s): {found.message}")
    return found
