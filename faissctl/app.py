"""What every command shares: the injectable I/O (cluster, store, clock, HTTP) and common options.

``App`` is click's context object. ``faissctl`` builds the real one; unit tests pass
``CliRunner().invoke(cli, args, obj=App(connect=fake, ...))``. Connections are opened
lazily, so ``validate`` and ``build`` never need (or import) a Kubernetes client.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

import click

from faissctl.errors import CtlError
from faissctl.kube import Kube, KubeOptions
from faissctl.output import FORMATS, dump

if TYPE_CHECKING:
    from indexops_api.manifest import Manifest


class Store(Protocol):
    """The part of ``indexops_store.ArtifactStore`` faissctl reads."""

    bucket: str

    def list_versions(self, index_prefix: str) -> dict[str, Any]: ...  # version -> VersionListing

    def read_manifest(self, key: str) -> Manifest: ...


@dataclass(frozen=True)
class StorageLocation:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str | None


HttpPost = Callable[[str, bytes, float], tuple[int, bytes]]  # url, body, timeout -> (status, body)


def _connect(options: KubeOptions) -> Kube:
    from faissctl.kube import connect  # noqa: PLC0415 - the kubernetes client is slow to import

    return connect(options)


def _open_store(location: StorageLocation) -> Store:
    from indexops_store.s3 import ArtifactStore, make_client  # noqa: PLC0415 - boto3 is slow to import

    return ArtifactStore(make_client(location.endpoint, location.region), location.bucket)


def _http_post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    from faissctl.bench import http_post  # noqa: PLC0415

    return http_post(url, body, timeout)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class App:
    connect: Callable[[KubeOptions], Kube] = _connect
    open_store: Callable[[StorageLocation], Store] = _open_store
    http_post: HttpPost = _http_post
    now: Callable[[], datetime] = _utcnow
    sleep: Callable[[float], None] = time.sleep
    _kube: dict[KubeOptions, Kube] = field(default_factory=dict)

    def kube(self, options: KubeOptions) -> Kube:
        if options not in self._kube:
            self._kube[options] = self.connect(options)
        return self._kube[options]


def kube_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--kubeconfig``, ``--context``, ``-n/--namespace``, passed to the command as ``kopts``."""

    @click.option("--kubeconfig", metavar="PATH", help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).")
    @click.option("--context", metavar="NAME", help="Kubeconfig context (default: the current context).")
    @click.option("-n", "--namespace", metavar="NS", help="Namespace (default: the context's namespace, else default).")
    @functools.wraps(fn)
    def wrapper(*args: Any, kubeconfig: str | None, context: str | None, namespace: str | None, **kwargs: Any) -> Any:
        return fn(*args, kopts=KubeOptions(kubeconfig, context, namespace), **kwargs)

    return wrapper


output_option = click.option(
    "-o", "--output", "fmt", type=click.Choice(FORMATS), default="human", show_default=True,
    help="human: aligned text; json / yaml: for scripts.",
)


def emit(data: Any, fmt: str, human: Callable[[], str]) -> None:
    """Print ``data`` as JSON/YAML, or the human rendering."""
    click.echo(dump(data, fmt) if fmt != "human" else human(), nl=False)


def note(message: str) -> None:
    """Progress and hints: stderr, so stdout stays parseable."""
    click.echo(message, err=True)


def storage_location(index: dict[str, Any], endpoint_override: str | None = None) -> StorageLocation:
    """Where the index's versions are stored, from ``spec.storage`` (``--s3-endpoint`` wins)."""
    storage = (index.get("spec") or {}).get("storage") or {}
    if not storage.get("bucket"):
        raise CtlError(f"FaissIndex {index.get('metadata', {}).get('name')!r} has no spec.storage.bucket")
    return StorageLocation(
        bucket=storage["bucket"],
        prefix=storage.get("prefix", "faiss-indexes"),
        endpoint=endpoint_override or storage.get("endpoint"),
        region=storage.get("region"),
    )
