"""Download, verify and load one index version; a version that fails any step is rejected.

Nothing is served that does not match its manifest byte for byte: every listed file is
downloaded to a temporary name, its size and sha256 compared with the manifest, and
only then renamed into the version's cache directory. Files already cached are
re-verified rather than trusted, so a corrupt cache is repaired by a fresh download.
The index is memory-mapped when FAISS supports it for the type (flat codes, IVF lists),
which lets several versions share RAM with the page cache during a canary. Before a
version is handed over it answers a few warm-up searches, so the first real queries do
not pay for page faults and lazy initialisation, and a version whose search crashes is
rejected before it is ever served. The server downloads and hashes in a child process at
a lower CPU priority (``fetch.py``) so a swap does not take CPU from the queries.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np

from index_serving.errors import VersionRejected
from indexops_api.constants import MANIFEST_FILE
from indexops_api.manifest import FileEntry, Manifest
from indexops_api.spec import Metric
from index_serving.fetch import FetchFailed, FetchWorker, fetch_verified
from indexops_store.s3 import ArtifactStore, StorageError, sha256_file

log = logging.getLogger(__name__)

WARMUP_QUERIES = 16
WARMUP_K = 10
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._\-]+$")
# Most mapped first; each step back is a fallback for types/builds that refuse the flag.
_READ_MODES = (
    ("mmap", getattr(faiss, "IO_FLAG_MMAP", 0) | getattr(faiss, "IO_FLAG_MMAP_IFC", 0)),
    ("mmap-ivf", getattr(faiss, "IO_FLAG_MMAP", 0)),
    ("memory", 0),
)


def is_safe_name(name: str) -> bool:
    """A plain file/directory name: no separators, not ``.`` or ``..``."""
    return bool(_SAFE_NAME.fullmatch(name)) and name not in (".", "..")


@dataclass(frozen=True, eq=False)
class LoadedVersion:
    """An immutable, verified, searchable version (search parameters already applied)."""

    version: str
    manifest: Manifest
    index: faiss.Index
    ids: np.ndarray
    directory: Path
    read_mode: str
    load_seconds: float
    loaded_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    warmup_seconds: float = 0.0

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    @property
    def cosine(self) -> bool:
        return self.manifest.metric is Metric.COSINE

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[int]], list[list[float]]]:
        """Top-k ids (mapped through ids.npy) and distances; missing results are dropped."""
        ids, distances = self.search_arrays(queries, k)
        ids_out: list[list[int]] = []
        dist_out: list[list[float]] = []
        for row_ids, row_dist in zip(ids, distances):
            keep = row_ids >= 0
            ids_out.append(row_ids[keep].tolist())
            dist_out.append(row_dist[keep].tolist())
        return ids_out, dist_out

    def search_arrays(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(nq, k) int64 ids mapped through ids.npy (-1 = no result) and float32 distances."""
        if self.cosine:
            queries = np.array(queries, dtype=np.float32, copy=True)
            faiss.normalize_L2(queries)
        distances, positions = self.index.search(queries, k)
        if self.ids.size == 0:
            return np.full(positions.shape, -1, dtype=np.int64), distances
        ids = self.ids.take(positions)  # -1 takes the last id; masked below
        missing = positions < 0
        if missing.any():
            ids[missing] = -1
        return ids, distances


class VersionLoader:
    """Turns a version id into a ``LoadedVersion`` using one store and one cache directory."""

    def __init__(self, store: ArtifactStore, versions_prefix: str, cache_dir: Path, subprocess_fetch: bool = False):
        self.store = store
        # download+verify in a lower-priority child while another version serves (fetch.py)
        self.worker = FetchWorker(store) if subprocess_fetch else None
        self.versions_prefix = versions_prefix.rstrip("/")
        self.cache_dir = cache_dir
        # Called with (version, file) when a cached file is corrupt and fetched again; the
        # runtime counts it (faiss_serving_cache_repairs): a disk that corrupts files must show.
        self.on_cache_repair: Callable[[str, str], None] | None = None

    def directory(self, version: str) -> Path:
        return self.cache_dir / version

    def load(self, version: str, admit: Callable[[Manifest], None] | None = None, low_priority: bool = False) -> LoadedVersion:
        """Fetch, verify, load and warm up; ``admit`` may veto (raise) once the manifest is read.

        ``low_priority``: something is serving, so download and verify in the low-priority
        worker (when enabled); the first version loads at full speed, there is nothing to protect.
        """
        started = time.perf_counter()
        if not is_safe_name(version):
            raise VersionRejected(version, "invalid", f"version id {version!r} is not a safe name")
        manifest = self._manifest(version)
        if manifest.sharding is not None and not manifest.sharding.merged:  # one pod must never serve one shard as the index
            raise VersionRejected(version, "layout", f"version has {manifest.sharding.shards} shards; it is served by "
                                  "shard pods behind a fan-out (index_serving.fanout), not by one pod")
        if admit is not None:
            admit(manifest)  # before downloading: a refused version costs no transfer
        directory = self.directory(version)
        directory.mkdir(parents=True, exist_ok=True)
        self._fetch_all(version, manifest, directory, low_priority)
        index, mode = self._read_index(version, directory / manifest.index_file)
        ids = self._read_ids(version, directory / manifest.ids_file)
        self._check_consistent(version, manifest, index, ids)
        apply_search_parameters(version, index, manifest.search_parameters)
        loaded = warm_up(LoadedVersion(version, manifest, index, ids, directory, mode, time.perf_counter() - started))
        log.info("version loaded", extra={"version": version, "vectors": index.ntotal, "readMode": mode,
                                          "seconds": round(loaded.load_seconds, 3),
                                          "warmupSeconds": round(loaded.warmup_seconds, 3),
                                          "searchParameters": manifest.search_parameters})
        return loaded

    def discard(self, version: str) -> None:
        """Remove a version's cached files (open mmaps stay valid until released)."""
        if is_safe_name(version):
            shutil.rmtree(self.directory(version), ignore_errors=True)

    def _manifest(self, version: str) -> Manifest:
        key = f"{self.versions_prefix}/{version}/{MANIFEST_FILE}"
        try:
            manifest = self.store.read_manifest(key)
        except StorageError as exc:
            raise VersionRejected(version, "manifest", str(exc)) from exc
        if manifest.version != version:
            raise VersionRejected(version, "manifest", f"s3://{self.store.bucket}/{key} describes version {manifest.version}")
        names = {f.name for f in manifest.files}
        for needed in (manifest.index_file, manifest.ids_file):
            if needed not in names:
                raise VersionRejected(version, "manifest", f"manifest does not list {needed} in its files")
        for name in names:
            if not is_safe_name(name) or name == MANIFEST_FILE:
                raise VersionRejected(version, "manifest", f"manifest lists an unsafe file name {name!r}")
        return manifest

    def _cached(self, version: str, entry: FileEntry, directory: Path) -> bool:
        """A cached copy that matches the manifest is kept; a corrupt one is logged, counted and removed."""
        path = directory / entry.name
        if not path.is_file():
            return False
        if path.stat().st_size == entry.size and sha256_file(path) == entry.sha256:
            return True
        log.warning("cached file is corrupt, downloading it again",
                    extra={"version": version, "file": entry.name, "cachedBytes": path.stat().st_size, "manifestBytes": entry.size})
        if self.on_cache_repair is not None:
            self.on_cache_repair(version, entry.name)
        path.unlink(missing_ok=True)
        return False

    def _fetch_all(self, version: str, manifest: Manifest, directory: Path, low_priority: bool) -> None:
        files = [{"key": f"{self.versions_prefix}/{version}/{e.name}", "name": e.name, "size": e.size, "sha256": e.sha256}
                 for e in manifest.files if not self._cached(version, e, directory)]
        if not files:
            return
        try:
            if self.worker is not None and low_priority:
                self.worker.fetch(files, directory)
            else:
                for f in files:
                    fetch_verified(self.store, f["key"], f["name"], f["size"], f["sha256"], directory)
        except FetchFailed as exc:
            raise VersionRejected(version, exc.reason, str(exc)) from exc

    def _read_index(self, version: str, path: Path) -> tuple[faiss.Index, str]:
        last: Exception | None = None
        for mode, flags in _READ_MODES:
            try:
                return faiss.read_index(str(path), flags), mode
            except RuntimeError as exc:
                last = exc
        raise VersionRejected(version, "load", f"faiss cannot read {path.name}: {last}")

    def _read_ids(self, version: str, path: Path) -> np.ndarray:
        try:
            ids = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise VersionRejected(version, "load", f"{path.name} is not a valid .npy: {exc}") from exc
        if ids.ndim != 1 or ids.dtype != np.int64:
            raise VersionRejected(version, "load", f"{path.name} must be 1-D int64, got {ids.dtype} {ids.shape}")
        return ids

    @staticmethod
    def _check_consistent(version: str, manifest: Manifest, index: faiss.Index, ids: np.ndarray) -> None:
        if index.d != manifest.dimension:
            raise VersionRejected(version, "load", f"index dimension {index.d} != manifest dimension {manifest.dimension}")
        if index.ntotal != manifest.vectors or ids.shape[0] != index.ntotal:
            raise VersionRejected(
                version, "load",
                f"index holds {index.ntotal} vectors, ids {ids.shape[0]}, manifest says {manifest.vectors}",
            )


def warm_up(loaded: LoadedVersion, queries: int = WARMUP_QUERIES, k: int = WARMUP_K) -> LoadedVersion:
    """Search random queries once (faults in mmapped pages, checks search works); rejects on error."""
    vectors = np.random.default_rng(0).standard_normal((queries, loaded.dimension)).astype(np.float32)
    started = time.perf_counter()
    try:
        ids, _ = loaded.search(vectors, k)
    except Exception as exc:
        raise VersionRejected(loaded.version, "warmup", f"warm-up search failed: {type(exc).__name__}: {exc}") from exc
    if len(ids) != queries:
        raise VersionRejected(loaded.version, "warmup", f"warm-up search answered {len(ids)} of {queries} queries")
    return replace(loaded, warmup_seconds=time.perf_counter() - started)


def apply_search_parameters(version: str, index: faiss.Index, search: dict[str, int]) -> None:
    """Set the manifest's efSearch / nprobe on any index type and check they took effect.

    ``faiss.ParameterSpace`` reaches through wrappers: an OPQ pre-transform to the HNSW
    behind it (``OPQ+HNSW``), an IVF index's lists (``IVF``, ``IVFPQ``). Reading the values
    back guards against a FAISS build that silently ignores a name: a version searched
    with other parameters than it was validated with would not be the version validated.
    """
    space = faiss.ParameterSpace()
    for name, value in search.items():
        try:
            space.set_index_parameter(index, name, value)
        except RuntimeError as exc:
            raise VersionRejected(
                version, "load", f"cannot apply search parameter {name}={value} to {type(index).__name__}: {exc}"
            ) from exc
    applied = search_parameters_of(index)
    wrong = {name: applied.get(name) for name, value in search.items() if name in _READABLE and applied.get(name) != value}
    if wrong:
        raise VersionRejected(version, "load", f"search parameters {search} not in effect, index has {wrong}")


_READABLE = ("efSearch", "nprobe", "k_factor_rf")


def search_parameters_of(index: faiss.Index) -> dict[str, int]:
    """efSearch / nprobe as the index will use them (through a pre-transform such as OPQ)."""
    inner = faiss.downcast_index(index)
    found: dict[str, int] = {}
    if isinstance(inner, faiss.IndexRefine):  # IVFPQ / OPQ+HNSW re-ranking: k_factor_rf, then the base index
        found["k_factor_rf"] = int(inner.k_factor)
        inner = faiss.downcast_index(inner.base_index)
    while isinstance(inner, faiss.IndexPreTransform):
        inner = faiss.downcast_index(inner.index)
    if hasattr(inner, "hnsw"):
        found["efSearch"] = int(inner.hnsw.efSearch)
    if isinstance(inner, faiss.IndexIVF):
        found["nprobe"] = int(inner.nprobe)
    return found
