"""``indexType: Auto``: pick the index family and parameters from the data size and memory.

A pure heuristic in the spirit of autofaiss (``get_optimal_index_keys_v2``), checked
against this builder's own memory estimate so that whatever Auto picks also passes
preflight. The ladder, first match wins:

1. fewer than 1,000 vectors -> ``Flat``: exact search is as fast as any index there;
2. target recall >= 0.999 with at most 100,000 vectors, if it fits -> ``Flat``: only
   exact search guarantees it, and brute force over 100k rows is still ~ms per query;
3. ``HNSW`` with the largest ``m`` of 32, 24, 16, 12, 8 that fits: the best
   recall/latency trade-off whenever full vectors plus graph fit in memory;
4. ``HNSW`` over 8-bit scalar codes (``encoding: SQ8``, ``d`` bytes instead of ``4*d``) with
   the largest ``m`` of 32, 16, 8 that fits: a quarter of the vector bytes for about 0.01
   recall on real embeddings (bench/results/builder-minilm.md), and no re-ranking stage;
5. product quantization with SQ8 re-ranking when full vectors do not fit: for each PQ
   code size ``nSubquantizers`` from the largest (a divisor of the dimension, <= min(d/2,
   64)) down, ``OPQ+HNSW`` (mHnsw=16) if it fits, else ``IVFPQ`` (8-byte ids, no graph) if
   it fits, each re-ranking a shortlist with ``d``-byte SQ8 codes (the rung that reaches
   recall 0.95 on real embeddings at ~a quarter of HNSW's memory);
6. the same PQ rungs without re-ranking (``refine: None``) when even SQ8 codes do not
   fit: smallest memory, recall typically 0.6-0.8 on real embeddings;
7. nothing fits -> the smallest IVFPQ, and preflight reports ``InsufficientMemory``.

Unlike autofaiss there is no IVF-Flat (or IVF-SQ8) rung. autofaiss budgets the finished index only;
this budget is the whole build, and IVF training holds ``256 * nlist`` sampled rows: with
the default nlist that sample makes an IVF-Flat build heavier than HNSW m=8 below
~50M vectors (d=128), and above autofaiss's own 1M cut-off flat lists are too slow to
scan. IVFPQ likewise only wins at large n, where an HNSW graph (~140 B/vector) no
longer fits but a PQ code plus an 8-byte id does.

Search-time parameters keep the type defaults; ``spec.tuning`` then tunes them to the
target on held-out queries. The chosen type, factory string and a readable reason go
into ``manifest.auto``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from index_builder import params
from index_builder.params import ResolvedParameters
from index_builder.preflight import estimate_typed, gib
from indexops_api.spec import Encoding, FaissIndexSpec, IndexParameters, IndexType, Refine

FLAT_BELOW = 1_000
EXACT_RECALL = 0.999
EXACT_MAX_VECTORS = 100_000
HNSW_MS = (32, 24, 16, 12, 8)
HNSW_SQ8_MS = (32, 16, 8)


@dataclass(frozen=True)
class Decision:
    index_type: IndexType
    resolved: ResolvedParameters
    factory: str
    reason: str
    estimate_bytes: int


def target_recall(spec: FaissIndexSpec) -> float:
    """``tuning.targetRecall`` when tuning is on, else ``validation.minRecall``."""
    return spec.tuning.target_recall if spec.tuning is not None else spec.validation.min_recall


def pq_subquantizers(dimension: int) -> list[int]:
    """PQ code sizes to try, largest first: divisors of ``dimension`` <= min(d/2, 64) (>= 2 dims each)."""
    cap = min(dimension // params.PQ_MIN_DIMS_PER_SUBQUANTIZER, params.PQ_MAX_SUBQUANTIZERS)
    found = sorted((m for m in params.divisors(dimension) if m <= cap), reverse=True)
    return found or [1]


def _candidates(n: int, dimension: int) -> Iterator[tuple[IndexType, IndexParameters, str]]:
    for m in HNSW_MS:
        yield IndexType.HNSW, IndexParameters(m=m), "HNSW: full vectors and graph fit, the best recall/latency trade-off"
    for m in HNSW_SQ8_MS:
        yield (IndexType.HNSW, IndexParameters(m=m, encoding=Encoding.SQ8),
               f"HNSW over SQ8: full vectors do not fit; {dimension}-byte scalar codes with a graph do")
    for refine, how in ((Refine.SQ8, f" and {dimension}-byte SQ8 codes to re-rank"),
                        (Refine.NONE, " (no room for SQ8 re-ranking codes: expect lower recall)")):
        for m in pq_subquantizers(dimension):
            yield (IndexType.OPQ_HNSW, IndexParameters(n_subquantizers=m, refine=refine),
                   f"OPQ+HNSW: full vectors do not fit; {m}-byte PQ codes with a graph{how} are the largest that do")
            yield (IndexType.IVFPQ, IndexParameters(n_subquantizers=m, refine=refine),
                   f"IVFPQ: full vectors do not fit; {m}-byte PQ codes without a graph{how} are the largest that do")


def choose(*, n: int, dimension: int, budget: int | None, target_recall: float, queries: int, k: int) -> Decision:
    """The index Auto builds for ``n`` vectors of ``dimension`` within ``budget`` bytes (None: unlimited)."""
    limit = "no memory limit" if budget is None else f"memory budget {gib(budget)}"
    facts = f"{n} vectors x {dimension} dims, {limit}, target recall {target_recall:g}"

    def decide(index_type: IndexType, user: IndexParameters, why: str) -> Decision | None:
        resolved = params.resolve(index_type, user, n, dimension)
        if n < params.min_vectors_to_train(index_type, resolved):
            return None
        needed = estimate_typed(index_type, resolved, n=n, dimension=dimension, queries=queries, k=k).total
        if budget is not None and needed > budget:
            return None
        factory = params.factory_string(index_type, resolved, dimension)
        return Decision(index_type, resolved, factory, f"{facts}: {why} (needs ~{gib(needed)})", needed)

    flat = decide(IndexType.FLAT, IndexParameters(), "")
    if n < FLAT_BELOW:
        return _flat(n, dimension, facts, f"Flat: below {FLAT_BELOW} vectors exact search is as fast as any index",
                     queries, k)
    if target_recall >= EXACT_RECALL and n <= EXACT_MAX_VECTORS and flat is not None:
        return _flat(n, dimension, facts, f"Flat: only exact search guarantees recall >= {EXACT_RECALL}", queries, k)
    for index_type, user, why in _candidates(n, dimension):
        decision = decide(index_type, user, why)
        if decision is not None:
            return decision
    smallest = IndexParameters(n_subquantizers=pq_subquantizers(dimension)[-1], refine=Refine.NONE)
    resolved = params.resolve(IndexType.IVFPQ, smallest, n, dimension)
    needed = estimate_typed(IndexType.IVFPQ, resolved, n=n, dimension=dimension, queries=queries, k=k).total
    return Decision(IndexType.IVFPQ, resolved, params.factory_string(IndexType.IVFPQ, resolved, dimension),
                    f"{facts}: nothing fits; the smallest IVFPQ needs ~{gib(needed)}", needed)


def _flat(n: int, dimension: int, facts: str, why: str, queries: int, k: int) -> Decision:
    resolved = ResolvedParameters()
    needed = estimate_typed(IndexType.FLAT, resolved, n=n, dimension=dimension, queries=queries, k=k).total
    return Decision(IndexType.FLAT, resolved, "Flat", f"{facts}: {why} (needs ~{gib(needed)})", needed)
