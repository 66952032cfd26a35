"""Pure resolution of build- and search-time parameters from the spec and the data size.

Users may leave every parameter unset; the defaults below are what an engineer would
pick without tuning, scaled by the number of vectors ``n`` (and the dimension, for
product quantization) where that matters. The resolved values (not the user's partial
map) are recorded in the manifest, so a version always says exactly how it was built
and how it must be searched.

Defaults
--------
Flat
    no parameters (exact search).
HNSW
    ``m=32, efConstruction=200, efSearch=64`` (the migration guide's values; good
    recall@10 on typical embeddings at sub-millisecond latency).
IVF (IVF-Flat)
    ``nlist = round(4 * sqrt(n))``, clamped to ``[1, n // 64]``: FAISS's k-means wants at
    least 39 training points per centroid, so small sources get fewer, fuller lists; 64 (not
    39) leaves room for the held-out validation rows, so a default never trips the builder's
    own "nlist too large" warning (below ~41k rows the clamp decides).
    ``nprobe = min(nlist, max(8, 2 * isqrt(nlist)))``: probing ~2*sqrt(nlist) lists keeps
    the scanned fraction large for small indexes (where it costs nothing) and small for
    large ones (nlist=1024 -> 64 lists, 6 %; nlist=65536 -> 512 lists, 0.8 %), since finer
    clusterings need a smaller fraction for the same recall. A user ``nprobe`` larger
    than ``nlist`` is clamped to ``nlist`` (FAISS would do the same silently).
    Training uses at most ``256 * nlist`` sampled rows (FAISS's own k-means cap).
IVFPQ
    ``nlist`` and ``nprobe`` as IVF. ``mPq = 8`` bits per code (256 centroids per
    sub-quantizer, FAISS's fast path). ``nSubquantizers`` = the largest divisor of the
    dimension that is at most ``min(dimension // 2, 64)``: every sub-quantizer then
    encodes at least 2 dimensions (1-dimensional sub-vectors waste code bits on
    nothing a scalar quantizer could not do) and codes stay <= 64 bytes at 8 bits, the
    usual ceiling of FAISS's optimised PQ kernels. d=32 -> 16, d=128 -> 64,
    d=100 -> 50, d=768 -> 64; a dimension of 1 (no such divisor) falls back to 1.
OPQ+HNSW
    ``nSubquantizers = 32`` (the migration guide's value) or, when 32 does not divide
    the dimension, the divisor of the dimension nearest to 32 (ties: the smaller, i.e.
    the cheaper code). ``mPq = 8``, ``mHnsw = 16``, ``efConstruction = 200``,
    ``efSearch = 64``. Built as ``OPQ{M}_{d},HNSW{mHnsw}_PQ{M}x{bits}``: an OPQ rotation
    (kept at the full dimension, so no information is dropped before PQ), then an HNSW
    graph over PQ codes.

Encoding (HNSW, IVF)
    ``encoding`` says how the searched vectors are stored: ``Flat`` (float32, ``4*d`` bytes,
    the default), ``SQ8`` (``d`` bytes), ``SQ4`` (``d/2``) or ``FP16`` (``2*d``): FAISS's
    scalar quantizer, one trained range per dimension. Factory strings ``HNSW{m}_SQ8`` /
    ``IVF{nlist},SQ8`` (``SQ4``, ``SQfp16``). Scalar codes lose far less ranking
    information than PQ codes (8 bits per dimension instead of 8 bits per 6-12 dimensions),
    so no re-ranking stage is needed. HNSW over SQ codes trains its ranges on at most
    ``SQ_TRAIN_ROWS`` sampled rows; IVF-SQ trains them with k-means's sample.

Re-ranking (PQ types)
    PQ distances alone cannot rank real embeddings well enough: on 384-d sentence
    embeddings IVFPQ topped out at recall@10 ~0.78 and OPQ+HNSW at ~0.69 whatever
    nprobe / efSearch. So IVFPQ and OPQ+HNSW re-rank by default: the compressed index
    returns a shortlist of ``k * kFactor`` candidates, re-scored with 8-bit scalar codes
    of the full vectors (``refine = SQ8``, ``d`` bytes per vector, FAISS ``IndexRefine``)
    or the exact vectors (``Flat``, ``4*d`` bytes); ``refine = None`` keeps the old,
    smallest index. ``kFactor = 8`` by default; ``spec.tuning`` sweeps it with the base
    knob. Factory strings get FAISS's suffix: ``...,Refine(SQ8)`` / ``...,RFlat``.
    ``kFactor`` is a search-time parameter and is recorded under FAISS's own
    ParameterSpace name, ``k_factor_rf``, so any loader can apply it like efSearch/nprobe.

Training sample (PQ types)
    ``max(256 * nlist, 39 * 2**mPq)`` rows, capped at ``n``: enough for IVF's k-means and
    FAISS's recommended minimum of 39 points per PQ centroid. Training needs at least
    ``max(nlist, 2**mPq)`` vectors (k-means cannot have more centroids than points); OPQ
    at least 256, because FAISS trains the rotation with an internal 8-bit PQ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from indexops_api.spec import Encoding, IndexParameters, IndexType, Refine

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 64
IVF_MIN_POINTS_PER_CENTROID = 39
IVF_DEFAULT_POINTS_PER_LIST = 64  # default nlist keeps this many rows per list (> 39: room for held-out rows)
IVF_MAX_POINTS_PER_CENTROID = 256
IVF_MIN_NPROBE = 8
PQ_BITS = 8
PQ_MAX_SUBQUANTIZERS = 64
PQ_MIN_DIMS_PER_SUBQUANTIZER = 2
OPQ_SUBQUANTIZERS = 32
OPQ_HNSW_M = 16
OPQ_TRAIN_BITS = 8  # FAISS's OPQMatrix trains its rotation with an internal 8-bit PQ
REFINE_DEFAULT = Refine.SQ8
K_FACTOR_DEFAULT = 8
K_FACTOR = "k_factor_rf"  # FAISS ParameterSpace name of IndexRefine.k_factor (spec: parameters.kFactor)

PQ_TYPES = (IndexType.IVFPQ, IndexType.OPQ_HNSW)
ENCODED_TYPES = (IndexType.HNSW, IndexType.IVF)  # types with parameters.encoding
SQ_TRAIN_ROWS = 65_536  # rows an HNSW-over-SQ index trains its per-dimension ranges on
_SQ_FACTORY = {Encoding.SQ8: "SQ8", Encoding.SQ4: "SQ4", Encoding.FP16: "SQfp16"}


@dataclass(frozen=True)
class ResolvedParameters:
    """What the manifest records: camelCase keys, as on the wire of ``spec.parameters``."""

    build: dict[str, int] = field(default_factory=dict)
    search: dict[str, int] = field(default_factory=dict)
    refine: Refine = Refine.NONE  # the re-ranking stage (recorded in the factory string)
    encoding: Encoding = Encoding.FLAT  # how HNSW / IVF store vectors (recorded in the factory string)

    def get(self, name: str) -> int:
        """A build or search parameter by its wire name (``KeyError`` if not applicable)."""
        if name in self.build:
            return self.build[name]
        return self.search[name]


def default_nlist(n: int) -> int:
    """``round(4 * sqrt(n))`` clamped to ``[1, n // 64]``."""
    upper = max(1, n // IVF_DEFAULT_POINTS_PER_LIST)
    return max(1, min(round(4 * math.sqrt(max(n, 0))), upper))


def default_nprobe(nlist: int) -> int:
    """``min(nlist, max(8, 2 * isqrt(nlist)))``."""
    return max(1, min(nlist, max(IVF_MIN_NPROBE, 2 * math.isqrt(nlist))))


def divisors(dimension: int) -> list[int]:
    return [m for m in range(1, dimension + 1) if dimension % m == 0]


def default_ivfpq_subquantizers(dimension: int) -> int:
    """Largest divisor of ``dimension`` <= ``min(dimension // 2, 64)`` (>= 2 dims each); 1 if none."""
    cap = min(dimension // PQ_MIN_DIMS_PER_SUBQUANTIZER, PQ_MAX_SUBQUANTIZERS)
    fitting = [m for m in divisors(dimension) if m <= cap]
    return max(fitting) if fitting else 1


def default_opq_subquantizers(dimension: int) -> int:
    """32 if it divides ``dimension``, else the nearest divisor (ties: the smaller)."""
    return min(divisors(dimension), key=lambda m: (abs(m - OPQ_SUBQUANTIZERS), m))


def train_sample_size(n: int, nlist: int, bits: int | None = None) -> int:
    """Training rows: ``256 * nlist`` for IVF k-means, at least ``39 * 2**bits`` for PQ; capped at ``n``."""
    wanted = IVF_MAX_POINTS_PER_CENTROID * nlist
    if bits is not None:
        wanted = max(wanted, IVF_MIN_POINTS_PER_CENTROID * (1 << bits))
    return min(n, wanted)


def _or(value: int | None, default: int) -> int:
    return value if value is not None else default


def resolve(index_type: IndexType, params: IndexParameters, n: int, dimension: int | None = None) -> ResolvedParameters:
    """Fill unset parameters with the defaults for ``index_type``, ``n`` vectors and ``dimension``.

    Without ``dimension`` a default ``nSubquantizers`` is left out (enough for counting
    the vectors training needs); the build resolves again with it. ``Auto`` resolves to
    nothing here: the choice needs the memory budget and is made by
    ``index_builder.auto`` (which calls back into this function for the chosen type).
    """
    if index_type in (IndexType.FLAT, IndexType.AUTO):
        return ResolvedParameters()
    if index_type is IndexType.HNSW:
        return ResolvedParameters(
            build={"m": _or(params.m, HNSW_M), "efConstruction": _or(params.ef_construction, HNSW_EF_CONSTRUCTION)},
            search={"efSearch": _or(params.ef_search, HNSW_EF_SEARCH)},
            encoding=encoding_of(index_type, params),
        )
    if index_type in (IndexType.IVF, IndexType.IVFPQ):
        nlist = _or(params.nlist, default_nlist(n))
        nprobe = min(params.nprobe, nlist) if params.nprobe is not None else default_nprobe(nlist)
        build = {"nlist": nlist}
        search = {"nprobe": nprobe}
        if index_type is IndexType.IVFPQ:
            build |= _subquantizers(params.n_subquantizers, dimension, default_ivfpq_subquantizers)
            build["mPq"] = _or(params.m_pq, PQ_BITS)
            search |= _k_factor(params)
        return ResolvedParameters(build=build, search=search, refine=refine_of(index_type, params),
                                  encoding=encoding_of(index_type, params))
    if index_type is IndexType.OPQ_HNSW:
        return ResolvedParameters(
            build={
                **_subquantizers(params.n_subquantizers, dimension, default_opq_subquantizers),
                "mPq": _or(params.m_pq, PQ_BITS),
                "mHnsw": _or(params.m_hnsw, OPQ_HNSW_M),
                "efConstruction": _or(params.ef_construction, HNSW_EF_CONSTRUCTION),
            },
            search={"efSearch": _or(params.ef_search, HNSW_EF_SEARCH), **_k_factor(params)},
            refine=refine_of(index_type, params),
        )
    raise ValueError(f"unsupported indexType {index_type!r}")


def refine_of(index_type: IndexType | None, params: IndexParameters) -> Refine:
    """The re-ranking stage: the user's, else SQ8 for the PQ types and none for the others."""
    if index_type not in PQ_TYPES:
        return Refine.NONE
    return params.refine if params.refine is not None else REFINE_DEFAULT


def encoding_of(index_type: IndexType | None, params: IndexParameters) -> Encoding:
    """How the index stores vectors: the user's for HNSW / IVF (default Flat); Flat for the others."""
    if index_type not in ENCODED_TYPES or params.encoding is None:
        return Encoding.FLAT
    return params.encoding


def encoding_bytes_per_vector(encoding: Encoding, dimension: int) -> int:
    """Bytes one stored vector takes: float32, 8-bit, 4-bit or float16 per dimension."""
    return {Encoding.FLAT: 4 * dimension, Encoding.SQ8: dimension, Encoding.SQ4: (dimension + 1) // 2,
            Encoding.FP16: 2 * dimension}[encoding]


def _k_factor(params: IndexParameters) -> dict[str, int]:
    """``{k_factor_rf: kFactor}`` when the PQ type re-ranks, else nothing."""
    if (params.refine if params.refine is not None else REFINE_DEFAULT) is Refine.NONE:
        return {}
    return {K_FACTOR: _or(params.k_factor, K_FACTOR_DEFAULT)}


def refine_suffix(refine: Refine) -> str:
    """FAISS factory suffix of the re-ranking stage."""
    return {Refine.NONE: "", Refine.SQ8: ",Refine(SQ8)", Refine.FLAT: ",RFlat"}[refine]


def refine_bytes_per_vector(refine: Refine, dimension: int) -> int:
    """Bytes per vector the re-ranking codes add (SQ8: one per dimension; Flat: float32)."""
    return {Refine.NONE: 0, Refine.SQ8: dimension, Refine.FLAT: 4 * dimension}[refine]


def _subquantizers(value: int | None, dimension: int | None, default: Callable[[int], int]) -> dict[str, int]:
    """``nSubquantizers``: the user's, else the default for ``dimension`` (left out when unknown)."""
    if value is not None:
        return {"nSubquantizers": value}
    return {"nSubquantizers": default(dimension)} if dimension is not None else {}


def factory_string(index_type: IndexType, resolved: ResolvedParameters, dimension: int) -> str:
    """The ``faiss.index_factory`` string that builds ``index_type`` with ``resolved`` parameters."""
    return _base_factory(index_type, resolved, dimension) + refine_suffix(resolved.refine)


def _base_factory(index_type: IndexType, resolved: ResolvedParameters, dimension: int) -> str:
    b = resolved.build
    if index_type is IndexType.FLAT:
        return "Flat"
    sq = _SQ_FACTORY.get(resolved.encoding)
    if index_type is IndexType.HNSW:
        return f"HNSW{b['m']}_{sq}" if sq else f"HNSW{b['m']},Flat"
    if index_type is IndexType.IVF:
        return f"IVF{b['nlist']},{sq or 'Flat'}"
    if index_type is IndexType.IVFPQ:
        return f"IVF{b['nlist']},PQ{b['nSubquantizers']}x{b['mPq']}"
    if index_type is IndexType.OPQ_HNSW:
        m = b["nSubquantizers"]
        return f"OPQ{m}_{dimension},HNSW{b['mHnsw']}_PQ{m}x{b['mPq']}"
    raise ValueError(f"no factory string for indexType {index_type!r}")


def min_vectors_to_train(index_type: IndexType, resolved: ResolvedParameters) -> int:
    """The fewest vectors the index type can be built from (k-means needs one point per centroid)."""
    if index_type is IndexType.IVF:
        return resolved.build["nlist"]
    if index_type is IndexType.IVFPQ:
        return max(resolved.build["nlist"], 1 << resolved.build["mPq"])
    if index_type is IndexType.OPQ_HNSW:
        return 1 << max(resolved.build["mPq"], OPQ_TRAIN_BITS)
    return 1


def training_rows(index_type: IndexType, resolved: ResolvedParameters, n: int) -> int:
    """Rows sampled to train ``index_type`` (0 for types that need no training)."""
    if index_type is IndexType.IVF:
        return train_sample_size(n, resolved.build["nlist"])
    if index_type is IndexType.IVFPQ:
        return train_sample_size(n, resolved.build["nlist"], resolved.build["mPq"])
    if index_type is IndexType.OPQ_HNSW:
        return train_sample_size(n, 0, max(resolved.build["mPq"], OPQ_TRAIN_BITS))
    if index_type is IndexType.HNSW and resolved.encoding in (Encoding.SQ8, Encoding.SQ4):
        return min(n, SQ_TRAIN_ROWS)
    return 0
