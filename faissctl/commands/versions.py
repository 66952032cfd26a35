"""``versions NAME`` (what is stored in S3) and ``pin NAME VERSION|--previous`` / ``unpin NAME``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import click
from pydantic import ValidationError

from faissctl.app import App, Store, emit, kube_options, note, output_option, storage_location
from faissctl.errors import CtlError, usage
from faissctl.kube import KubeOptions
from faissctl.output import age, ms, size, table
from faissctl.versions import VersionRow, previous_good, rows
from indexops_api.constants import MANIFEST_FILE
from indexops_api.layout import VERSION_PATTERN, index_prefix
from indexops_api.manifest import Manifest

s3_endpoint_option = click.option(
    "--s3-endpoint", metavar="URL", help="S3 endpoint to use instead of spec.storage.endpoint (credentials: AWS_* variables)."
)


def _prefix(index: dict[str, Any], storage_prefix: str) -> str:
    meta, spec = index["metadata"], index.get("spec") or {}
    return index_prefix(storage_prefix, meta["namespace"], meta["name"], spec.get("horizon", ""))


def read_versions(app: App, index: dict[str, Any], endpoint: str | None) -> tuple[str, dict[str, Any], dict[str, Manifest | str]]:
    """(location, listing, manifests) for the index; manifests map version -> Manifest or error text."""
    location = storage_location(index, endpoint)
    prefix = _prefix(index, location.prefix)
    where = f"s3://{location.bucket}/{prefix}/versions/"
    from indexops_store.s3 import StorageError  # noqa: PLC0415 - boto3 only when S3 is used

    try:
        store: Store = app.open_store(location)
        listing = store.list_versions(prefix)
    except StorageError as exc:
        hint = (" (faissctl takes S3 credentials from the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE)") if "credentials" in str(exc) else ""
        raise CtlError(f"cannot list the stored versions: {exc}{hint}") from None

    def read(version: str) -> Manifest | str:
        try:
            return store.read_manifest(f"{prefix}/versions/{version}/{MANIFEST_FILE}")
        except StorageError as exc:
            return str(exc)

    complete = [v for v, item in listing.items() if item.has_manifest]
    with ThreadPoolExecutor(max_workers=8) as pool:
        manifests = dict(zip(complete, pool.map(read, complete)))
    return where, listing, manifests


def _render(location: str, table_rows: list[VersionRow], now: datetime) -> str:
    body = table(
        ["VERSION", "MARKS", "TYPE", "RECALL", "P99", "VECTORS", "SIZE", "CREATED"],
        [[r.version, ",".join(r.marks), r.index_type, None if r.recall is None else f"{r.recall:.4f}@{r.k}",
          None if r.p99_latency_ms is None else ms(r.p99_latency_ms), r.vectors,
          None if r.size_bytes is None else size(r.size_bytes), f"{age(r.created, now)} ago" if r.created else None]
         for r in table_rows],
    )
    notes = [f"{r.version}: no manifest (an unfinished or failed upload; it never serves)" for r in table_rows if r.stored and not r.complete]
    notes += [f"{r.version}: named in status ({','.join(r.marks)}) but not in storage" for r in table_rows if not r.stored]
    notes += [f"{r.version}: {r.error}" for r in table_rows if r.error]
    return f"Versions in {location}\n" + body + "".join(f"note: {n}\n" for n in notes)


@click.command()
@click.argument("name")
@s3_endpoint_option
@kube_options
@output_option
@click.pass_obj
def versions(app: App, name: str, s3_endpoint: str | None, kopts: KubeOptions, fmt: str) -> None:
    """List the versions stored in S3 for NAME, newest first, marking serving, candidate, last-good and pinned.

    Reads spec.storage (bucket, prefix, endpoint) from the FaissIndex and each version's
    manifest.json; S3 credentials come from the environment (AWS_ACCESS_KEY_ID, ...).
    """
    kube = app.kube(kopts)
    index = kube.get_index(kopts.namespace or kube.namespace, name)
    location, listing, manifests = read_versions(app, index, s3_endpoint)
    table_rows = rows(index, listing, manifests)
    data = {"name": name, "namespace": index["metadata"]["namespace"], "location": location,
            "versions": [r.to_wire() for r in table_rows]}
    now = app.now()
    emit(data, fmt, lambda: _render(location, table_rows, now) if table_rows else f"No versions in {location}\n")


def _pin_report(index: dict[str, Any], requested: str | None) -> dict[str, Any]:
    status = index.get("status") or {}
    return {"name": index["metadata"]["name"], "namespace": index["metadata"]["namespace"],
            "pinnedVersion": requested, "servingVersion": status.get("currentVersion")}


@click.command()
@click.argument("name")
@click.argument("version", required=False)
@click.option("--previous", is_flag=True, help="Pin the newest stored version older than the serving one that passes the gates.")
@s3_endpoint_option
@kube_options
@output_option
@click.pass_obj
def pin(app: App, name: str, version: str | None, previous: bool, s3_endpoint: str | None, kopts: KubeOptions, fmt: str) -> None:
    """Serve exactly VERSION of NAME (spec.rollout.pinnedVersion): a declarative rollback.

    New builds still run and are validated, but are held until `faissctl unpin NAME`.
    """
    if bool(version) == previous:
        raise usage("give exactly one of VERSION or --previous")
    if version and not VERSION_PATTERN.match(version):
        raise usage(f"{version!r} is not a version id (like 20261121T233015Z-97976d84); see `faissctl versions {name}`")
    kube = app.kube(kopts)
    ns = kopts.namespace or kube.namespace
    index = kube.get_index(ns, name)
    if previous:
        _, _, manifests = read_versions(app, index, s3_endpoint)
        try:
            version, skipped = previous_good(index, manifests)
        except ValidationError as exc:
            raise CtlError(f"cannot read the status of {name} (written by another operator version?): "
                           f"{exc.errors()[0]['msg']}; pin one explicitly with `faissctl pin {name} VERSION`") from exc
        for why in skipped:
            note(f"skipped {why}")
        if version is None:
            current = (index.get("status") or {}).get("currentVersion") or "the serving one"
            raise CtlError(f"no stored version of {name} older than {current} passes the gates; "
                           f"pin one explicitly with `faissctl pin {name} VERSION` (list them with `faissctl versions {name}`)")
    updated = kube.patch_index(ns, name, {"spec": {"rollout": {"pinnedVersion": version}}})
    emit(_pin_report(updated, version), fmt,
         lambda: f"faissindex {ns}/{name} pinned to {version}; the operator will serve it at 100% "
                 f"(watch with `faissctl status {name}`)\n")


@click.command()
@click.argument("name")
@kube_options
@output_option
@click.pass_obj
def unpin(app: App, name: str, kopts: KubeOptions, fmt: str) -> None:
    """Remove the pin of NAME: the newest version promoted by rollout serves again and held builds roll out normally."""
    kube = app.kube(kopts)
    ns = kopts.namespace or kube.namespace
    index = kube.get_index(ns, name)
    was = ((index.get("spec") or {}).get("rollout") or {}).get("pinnedVersion")
    updated = kube.patch_index(ns, name, {"spec": {"rollout": {"pinnedVersion": None}}}) if was else index
    message = f"faissindex {ns}/{name} unpinned (was {was})\n" if was else f"faissindex {ns}/{name} was not pinned\n"
    emit(_pin_report(updated, None), fmt, lambda: message)
