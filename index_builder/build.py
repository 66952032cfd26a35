"""Constructing, training and filling the FAISS index from a (possibly memmapped) matrix.

Every type is built from a FAISS ``index_factory`` string (``params.factory_string`` for
the named types, the user's ``spec.factory`` for experts), so the manifest can record the
exact construction and a person can rebuild it by hand. The index stores positions
0..n-1 only; user ids live in ``ids.npy`` next to it, so every index type works the same
way (no IndexIDMap wrappers) and serving maps positions to ids with one array lookup.
Positions follow the add order of ``index_builder.holdout``: the rows kept for building
first, the validation rows (added after measuring) last.
Re-ranking stages (``...,Refine(SQ8)``, ``...,RFlat``) are put together here rather than by
``index_factory``: FAISS 1.15's factory builds ``HNSW_PQ`` with the L2 metric whatever metric
it is given, and then refuses an inner-product refine stage (see ``construct``).
Cosine is implemented the standard FAISS way: L2-normalise vectors (and, at search time,
queries) and use inner product.

Data is fed in batches converted to contiguous float32 one at a time, so the source
matrix is never copied whole on top of what the index itself holds. Training uses a
seeded sample of the kept rows, so a retried build trains on the same rows and no
validation row is ever seen by k-means, OPQ or the HNSW graph before it is measured.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import faiss
import numpy as np

from index_builder import holdout, params
from index_builder.errors import TooFewVectors
from index_builder.logs import Progress
from index_builder.params import ResolvedParameters
from index_builder.preflight import FactoryInvalid
from indexops_api.spec import IndexParameters, IndexType, Metric

log = logging.getLogger(__name__)

BATCH_BYTES = 64 * 1024 * 1024
# Enough rows for any 8-bit PQ/SQ codebook in a raw factory string (FAISS caps k-means at
# 256 points per centroid itself); IVF factories get 256 per list on top.
FACTORY_TRAIN_ROWS = 256 * 256
_FAISS_LOCATION = re.compile(r"^Error in .*? at \S+:\d+: (Error: )?", re.DOTALL)
_REFINE = re.compile(r"^(?P<base>.+),(?:(?P<flat>RFlat)|Refine\((?P<inner>[^()]+)\))$")


def faiss_metric(metric: Metric) -> int:
    return faiss.METRIC_L2 if metric is Metric.L2 else faiss.METRIC_INNER_PRODUCT


def faiss_message(exc: BaseException) -> str:
    """FAISS's own words without the C++ function signature and source location."""
    return _FAISS_LOCATION.sub("", str(exc).strip()).strip()


def factory_string(index_type: IndexType, resolved: ResolvedParameters, dimension: int = 0) -> str:
    return params.factory_string(index_type, resolved, dimension)


def validate_factory(factory: str, dimension: int, metric: Metric) -> faiss.Index:
    """Construct (empty) the index ``factory`` describes, or raise ``FactoryInvalid`` with FAISS's reason."""
    try:
        return construct(factory, dimension, faiss_metric(metric))
    except RuntimeError as exc:
        raise FactoryInvalid(f"factory {factory!r} for dimension {dimension}: {faiss_message(exc)}") from exc


def construct(factory: str, dimension: int, metric: int) -> faiss.Index:
    """``index_factory``, with a re-ranking stage that scores in the spec's metric whatever the base uses."""
    refine = _REFINE.match(factory)
    if refine is None:
        return faiss.index_factory(dimension, factory, metric)
    base = construct(refine["base"], dimension, metric)
    if refine["flat"]:
        refiner = faiss.IndexFlat(dimension, int(base.metric_type))
    else:
        refiner = faiss.index_factory(dimension, refine["inner"], int(base.metric_type))
    index = faiss.IndexRefine(base, refiner)
    # FAISS builds HNSW over PQ codes with L2 whatever metric it is given (and its graph over
    # inner products ranks poorly: recall@10 0.53 vs 0.96 on normalised sentence embeddings);
    # on normalised (Cosine) vectors L2 order is inner-product order, so the shortlist is right
    # and the re-ranking stage scores it in the spec's metric, which the results then carry.
    refiner.metric_type = metric
    index.metric_type = metric
    return index


def new_index(
    dimension: int, metric: Metric, factory: str, build: dict[str, int], user: IndexParameters | None = None
) -> faiss.Index:
    """An empty index from ``factory`` with build-time knobs applied (efConstruction, no polysemous training)."""
    index = validate_factory(factory, dimension, metric)
    ef_construction = build.get("efConstruction")
    if ef_construction is None and user is not None:
        ef_construction = user.ef_construction
    for part in parts(index):
        if ef_construction is not None and hasattr(part, "hnsw"):
            part.hnsw.efConstruction = ef_construction
        # Polysemous training only serves Hamming-filtered search, which we never use; it
        # costs far more than the PQ training itself.
        if hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False
    return index


def parts(index: faiss.Index) -> list[faiss.Index]:
    """``index`` and every index nested in it (pre-transforms, HNSW storage, IVF quantizer)."""
    found: list[faiss.Index] = []
    stack = [index]
    while stack:
        part = faiss.downcast_index(stack.pop())
        found.append(part)
        if isinstance(part, faiss.IndexPreTransform):
            stack.append(part.index)
        if isinstance(part, faiss.IndexRefine):
            stack += [part.base_index, part.refine_index]
        storage = getattr(part, "storage", None)
        if storage is not None and hasattr(part, "hnsw"):
            stack.append(storage)
        quantizer = getattr(part, "quantizer", None)
        if quantizer is not None and isinstance(part, faiss.IndexIVF):
            stack.append(quantizer)
    return found


def search_knobs(index: faiss.Index) -> dict[str, int]:
    """The search-time parameters ``index`` has, with their current values (efSearch, nprobe, nlist, k_factor_rf)."""
    knobs: dict[str, int] = {}
    top = faiss.downcast_index(index)
    if isinstance(top, faiss.IndexRefine):
        knobs[params.K_FACTOR] = int(top.k_factor)
        top = faiss.downcast_index(top.base_index)
    inner = faiss.downcast_index(top.index) if isinstance(top, faiss.IndexPreTransform) else top
    if hasattr(inner, "hnsw"):
        knobs["efSearch"] = int(inner.hnsw.efSearch)
    if isinstance(inner, faiss.IndexIVF):
        knobs["nprobe"], knobs["nlist"] = int(inner.nprobe), int(inner.nlist)
    return knobs


def factory_search_parameters(index: faiss.Index, user: IndexParameters) -> dict[str, int]:
    """Search parameters for a raw factory index: the user's where they apply, else the type defaults."""
    knobs = search_knobs(index)
    search: dict[str, int] = {}
    if "efSearch" in knobs:
        search["efSearch"] = user.ef_search if user.ef_search is not None else params.HNSW_EF_SEARCH
    if "nprobe" in knobs:
        nlist = knobs["nlist"]
        search["nprobe"] = min(user.nprobe, nlist) if user.nprobe is not None else params.default_nprobe(nlist)
    if params.K_FACTOR in knobs:
        search[params.K_FACTOR] = user.k_factor if user.k_factor is not None else params.K_FACTOR_DEFAULT
    return search


def apply_search_parameters(index: faiss.Index, search: dict[str, int]) -> None:
    """Set efSearch / nprobe (wire names) on an index, whatever wrapper it comes in."""
    space = faiss.ParameterSpace()
    for name, value in search.items():
        space.set_index_parameter(index, name, value)


def prepare(rows: np.ndarray, metric: Metric) -> np.ndarray:
    """Contiguous float32 copy of ``rows``, L2-normalised for Cosine."""
    return _normalised(np.array(rows, dtype=np.float32, order="C", copy=True), metric)


def _normalised(out: np.ndarray, metric: Metric) -> np.ndarray:
    """``out`` (contiguous float32, owned by the caller) L2-normalised in place for Cosine."""
    if metric is Metric.COSINE:
        faiss.normalize_L2(out)
    return out


def batch_rows(dimension: int) -> int:
    return max(1024, BATCH_BYTES // (4 * dimension))


def kept_batches(matrix: np.ndarray, metric: Metric, rows: int, held: np.ndarray) -> Iterator[np.ndarray]:
    """Prepared batches of every row not in ``held``, in source order (index positions 0..n-q-1)."""
    for start, stop, keep in holdout.kept_slices(matrix.shape[0], held, rows):
        if keep.all():
            yield prepare(matrix[start:stop], metric)
        elif keep.any():  # boolean indexing already copies: convert that copy, do not copy it again
            yield _normalised(np.ascontiguousarray(matrix[start:stop][keep], dtype=np.float32), metric)


def training_rows_for(index: faiss.Index, index_type: IndexType | None, resolved: ResolvedParameters, n: int) -> int:
    """Rows to train on: the typed rule, or for raw factories 256 per IVF list / 65536, capped at ``n``."""
    if index_type is not None:
        return params.training_rows(index_type, resolved, n)
    nlist = search_knobs(index).get("nlist", 0)
    return min(n, max(params.IVF_MAX_POINTS_PER_CENTROID * nlist, FACTORY_TRAIN_ROWS))


def min_rows_to_train(index: faiss.Index, index_type: IndexType | None, resolved: ResolvedParameters) -> int:
    """The fewest rows the index can be built from: the typed rule, or one per IVF list of a raw factory."""
    if index_type is not None:
        return params.min_vectors_to_train(index_type, resolved)
    return max(1, search_knobs(index).get("nlist", 1))


def train(index: faiss.Index, matrix: np.ndarray, metric: Metric, rows_wanted: int, seed: int, what: str,
          held: np.ndarray) -> int:
    """Train on a seeded sample of the rows not in ``held`` if the index needs it; returns the rows used."""
    if index.is_trained:
        return 0
    n = matrix.shape[0]
    kept = n - len(held)
    rows = holdout.kept_rows(holdout.sample_rows(kept, max(1, rows_wanted), seed), held)
    sample = prepare(matrix[rows], metric)
    log.info("training", extra={"rows": len(rows), "of": kept, "heldOut": len(held), "factory": what})
    try:
        index.train(sample)
    except RuntimeError as exc:
        message = faiss_message(exc)
        if "Number of training points" in message:
            raise TooFewVectors(
                f"{what}: {message} ({kept} vectors left after holding out {len(held)} validation rows "
                f"of the {n} in the source)"
            ) from exc
        raise
    return len(rows)


def add_kept(index: faiss.Index, matrix: np.ndarray, metric: Metric, held: np.ndarray,
             progress_every: float = 10.0) -> None:
    """Add every row not in ``held``, in source order, in batches."""
    n, dimension = matrix.shape
    kept = n - len(held)
    progress = Progress("add", kept, every_seconds=progress_every)
    for batch in kept_batches(matrix, metric, batch_rows(dimension), held):
        index.add(batch)
        progress.advance(batch.shape[0])
    if index.ntotal != kept:
        raise RuntimeError(f"index holds {index.ntotal} vectors after adding {kept}")


def add_held_out(index: faiss.Index, prepared: np.ndarray, n: int) -> None:
    """Append the (already prepared) validation rows after measuring: the index then holds all ``n``."""
    index.add(prepared)
    if index.ntotal != n:
        raise RuntimeError(f"index holds {index.ntotal} vectors after adding the {prepared.shape[0]} held-out rows, not {n}")
