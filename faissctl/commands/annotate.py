"""``rebuild`` / ``promote`` / ``abort``: request-annotations the operator handles once per new value.

faissctl only writes ``metadata.annotations`` (a merge patch); the operator decides and
reports in status and Events. ``rebuild --wait`` then follows the status to the outcome.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from faissctl.app import App, emit, kube_options, note, output_option
from faissctl.errors import EXIT_FAILED, CtlError
from faissctl.kube import Kube, KubeOptions
from faissctl.output import parse_time
from faissctl.watch import Baseline, step
from indexops_api.constants import ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_REBUILD

POLL_SECONDS = 2.0
_DURATION = re.compile(r"^(\d+)(s|m|h)?$")


def parse_timeout(_ctx: Any, _param: Any, value: str) -> float:
    match = _DURATION.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter(f"{value!r} is not a duration like 90s, 20m or 1h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


HANDLED = {ANNOTATION_REBUILD: "lastHandledRebuild", ANNOTATION_PROMOTE: "lastHandledPromote", ANNOTATION_ABORT: "lastHandledAbort"}
FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def request_value(now: datetime, *earlier: str | None) -> str:
    """Now in UTC, in the operator's timestamp format, and later than every ``earlier`` value.

    The operator acts only on a value newer than the last one it handled (so a GitOps sync
    putting an old value back does nothing); a second request within the same second, or
    from a machine whose clock is behind, must still be newer.
    """
    value = now.astimezone(timezone.utc).replace(microsecond=0)
    for previous in earlier:
        when = parse_time(previous)
        if when is not None and when >= value:
            value = when.replace(microsecond=0) + timedelta(seconds=1)
    return f"{value:{FORMAT}}"


def annotate(kube: Kube, ns: str, index: dict[str, Any], annotation: str, app: App) -> str:
    current = ((index.get("metadata") or {}).get("annotations") or {}).get(annotation)
    handled = (index.get("status") or {}).get(HANDLED[annotation])
    value = request_value(app.now(), current, handled)
    kube.patch_index(ns, index["metadata"]["name"], {"metadata": {"annotations": {annotation: value}}})
    return value


def _wait(app: App, kube: Kube, ns: str, name: str, baseline: Baseline, timeout: float) -> dict[str, Any]:
    deadline = app.now() + timedelta(seconds=timeout)
    said = ""
    while True:
        status = kube.get_index(ns, name).get("status") or {}
        state, outcome = step(status, baseline)
        if state != said:
            note(f"{app.now():%H:%M:%S} {state}")
            said = state
        if outcome is not None:
            return {"ok": outcome.ok, "result": outcome.result, "version": outcome.version,
                    "message": outcome.message, "build": outcome.build}
        if app.now() >= deadline:
            raise CtlError(f"timed out after {timeout:.0f}s; last state: {state}. `faissctl status {name}` shows more")
        app.sleep(POLL_SECONDS)


@click.command()
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait for the build to finish and print its outcome (exit 1 if it fails).")
@click.option("--timeout", default="30m", show_default=True, callback=parse_timeout, help="How long --wait waits.")
@kube_options
@output_option
@click.pass_obj
def rebuild(app: App, name: str, wait: bool, timeout: float, kopts: KubeOptions, fmt: str) -> None:
    """Request a rebuild of NAME now (annotation faiss.indexops.io/rebuild-requested-at).

    Works while Stalled or suspended. A running build finishes first; then one build covers the request.
    """
    kube = app.kube(kopts)
    ns = kopts.namespace or kube.namespace
    index = kube.get_index(ns, name)
    baseline_count = int((index.get("status") or {}).get("buildCount") or 0)
    value = annotate(kube, ns, index, ANNOTATION_REBUILD, app)
    data: dict[str, Any] = {"name": name, "namespace": ns, "annotation": ANNOTATION_REBUILD, "requestedAt": value}
    if not wait:
        emit(data, fmt, lambda: f"rebuild of faissindex {ns}/{name} requested at {value}; "
                                f"follow it with `faissctl status {name}` (or use --wait)\n")
        return
    note(f"rebuild of faissindex {ns}/{name} requested at {value}; waiting up to {timeout:.0f}s")
    data.update(_wait(app, kube, ns, name, Baseline(value, baseline_count), timeout))
    emit(data, fmt, lambda: f"{data['message']}\n")
    if not data["ok"]:
        sys.exit(EXIT_FAILED)


def _rollout_request(app: App, name: str, kopts: KubeOptions, fmt: str, annotation: str, verb: str) -> None:
    kube = app.kube(kopts)
    ns = kopts.namespace or kube.namespace
    index = kube.get_index(ns, name)
    status = index.get("status") or {}
    candidate = status.get("candidateVersion")
    if not candidate:
        serving = status.get("currentVersion")
        raise CtlError(f"faissindex {ns}/{name} has no candidate in canary (serving {serving or 'nothing'}); nothing to {verb}")
    value = annotate(kube, ns, index, annotation, app)
    percent = status.get("rolloutPercent")
    outcome = (f"candidate {candidate} (now {percent}% of queries) to serve 100%" if verb == "promote"
               else f"candidate {candidate} (now {percent}% of queries) to be dropped; {status.get('currentVersion')} keeps serving")
    data = {"name": name, "namespace": ns, "annotation": annotation, "requestedAt": value, "candidate": candidate,
            "rolloutPercent": percent, "serving": status.get("currentVersion")}
    emit(data, fmt, lambda: f"{verb} of faissindex {ns}/{name} requested at {value}: {outcome}\n")


@click.command()
@click.argument("name")
@kube_options
@output_option
@click.pass_obj
def promote(app: App, name: str, kopts: KubeOptions, fmt: str) -> None:
    """Promote NAME's canary candidate to 100% now (annotation faiss.indexops.io/promote-requested-at)."""
    _rollout_request(app, name, kopts, fmt, ANNOTATION_PROMOTE, "promote")


@click.command()
@click.argument("name")
@kube_options
@output_option
@click.pass_obj
def abort(app: App, name: str, kopts: KubeOptions, fmt: str) -> None:
    """Abort NAME's canary: drop the candidate, the stable version keeps serving (annotation faiss.indexops.io/abort-requested-at)."""
    _rollout_request(app, name, kopts, fmt, ANNOTATION_ABORT, "abort")
