"""Pure resolution of build- and search-time parameters from the spec and the data size.

Users may leave every parameter unset; the defaults below are what an engineer would
pick without tuning, scaled by the number of vectors ``n`` where that matters. The
resolved values (not the user's partial map) are recorded in the manifest, so a version
always says exactly how it was built and how it must be searched.

Defaults
--------
Flat
    no parameters (exact search).
HNSW
    ``m=32, efConstruction=200, efSearch=64`` (the migration guide's values; good
    recall@10 on typical embeddings at sub-millisecond latency).
IVF (IVF-Flat)
    ``nlist = round(4 * sqrt(n))``, clamped to ``[1, n // 39]``: FAISS's k-means wants at
    least 39 training points per centroid, so small sources get fewer, fuller lists.
    ``nprobe = min(nlist, max(8, 2 * isqrt(nlist)))``: probing ~2*sqrt(nlist) lists keeps
    the scanned fraction large for small indexes (where it costs nothing) and small for
    large ones (nlist=1024 -> 64 lists, 6 %; nlist=65536 -> 512 lists, 0.8 %), since finer
    clusterings need a smaller fraction for the same recall. A user ``nprobe`` larger
    than ``nlist`` is clamped to ``nlist`` (FAISS would do the same silently).
    Training uses at most ``256 * nlist`` sampled rows (FAISS's own k-means cap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from indexops_api.spec import IndexParameters, IndexType

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 64
IVF_MIN_POINTS_PER_CENTROID = 39
IVF_MAX_POINTS_PER_CENTROID = 256
IVF_MIN_NPROBE = 8


@dataclass(frozen=True)
class ResolvedParameters:
    """What the manifest records: camelCase keys, as on the wire of ``spec.parameters``."""

    build: dict[str, int] = field(default_factory=dict)
    search: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> int:
        """A build or search parameter by its wire name (``KeyError`` if not applicable)."""
        if name in self.build:
            return self.build[name]
        return self.search[name]


def default_nlist(n: int) -> int:
    """``round(4 * sqrt(n))`` clamped to ``[1, n // 39]``."""
    upper = max(1, n // IVF_MIN_POINTS_PER_CENTROID)
    return max(1, min(round(4 * math.sqrt(max(n, 0))), upper))


def default_nprobe(nlist: int) -> int:
    """``min(nlist, max(8, 2 * isqrt(nlist)))``."""
    return max(1, min(nlist, max(IVF_MIN_NPROBE, 2 * math.isqrt(nlist))))


def train_sample_size(n: int, nlist: int) -> int:
    """Rows used to train IVF centroids: all of them up to ``256 * nlist``."""
    return min(n, IVF_MAX_POINTS_PER_CENTROID * nlist)


def resolve(index_type: IndexType, params: IndexParameters, n: int) -> ResolvedParameters:
    """Fill unset parameters with the defaults for ``index_type`` and ``n`` vectors."""
    if index_type is IndexType.FLAT:
        return ResolvedParameters()
    if index_type is IndexType.HNSW:
        return ResolvedParameters(
            build={
                "m": params.m if params.m is not None else HNSW_M,
                "efConstruction": params.ef_construction if params.ef_construction is not None else HNSW_EF_CONSTRUCTION,
            },
            search={"efSearch": params.ef_search if params.ef_search is not None else HNSW_EF_SEARCH},
        )
    if index_type is IndexType.IVF:
        nlist = params.nlist if params.nlist is not None else default_nlist(n)
        nprobe = min(params.nprobe, nlist) if params.nprobe is not None else default_nprobe(nlist)
        return ResolvedParameters(build={"nlist": nlist}, search={"nprobe": nprobe})
    raise ValueError(f"unsupported indexType {index_type!r}")


def min_vectors_to_train(index_type: IndexType, resolved: ResolvedParameters) -> int:
    """The fewest vectors the index type can be built from (IVF k-means needs ``nlist``)."""
    if index_type is IndexType.IVF:
        return resolved.build["nlist"]
    return 1
