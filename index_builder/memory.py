"""Where a built index's serving memory goes, from FAISS's own arrays (``manifest.memory``).

``measurements.memoryBytes`` used to be the index file's size. For the types served from
RAM that is close, but it says nothing about *where* the bytes go, and a user choosing
between HNSW, OPQ+HNSW with re-ranking and IVFPQ needs exactly that: PQ codes are small,
the graph over them is not, re-ranking codes cost ``d`` bytes per vector. So after the
build the index is walked part by part and each FAISS array is counted by its length:

* ``codes``: the vectors or codes the index searches (IndexFlat, PQ / SQ codes, IVF lists);
* ``graph``: HNSW neighbour lists, offsets and levels;
* ``refine``: the re-ranking index of an IndexRefine (SQ8 codes or exact vectors);
* ``ids``: IVF list ids (8 bytes per vector) plus the ``ids.npy`` array serving loads to
  map positions to ids;
* ``other``: coarse centroids, PQ/SQ codebooks and ranges, OPQ rotations.

The sum is what a serving replica holds for the version after load (the bench compares it
with the RSS a process gains by loading the file: ``bench/builder_bench.py``).
"""

from __future__ import annotations

import faiss

from indexops_api.manifest import MemoryBreakdown


def breakdown(index: faiss.Index, ids: int) -> MemoryBreakdown:
    """Bytes per role of ``index`` (all its nested parts) plus ``ids`` 8-byte ids loaded next to it."""
    counts = {"codes": 0, "graph": 0, "refine": 0, "ids": 8 * ids, "other": 0}
    _walk(index, "codes", counts)
    total = sum(counts.values())
    n = max(1, int(index.ntotal))
    return MemoryBreakdown(**counts, total=total, bytes_per_vector=round(total / n, 2))


def _walk(index: faiss.Index, role: str, counts: dict[str, int]) -> None:
    part = faiss.downcast_index(index)
    if isinstance(part, faiss.IndexRefine):
        _walk(part.base_index, role, counts)
        _walk(part.refine_index, "refine", counts)
        return
    if isinstance(part, faiss.IndexPreTransform):
        for i in range(part.chain.size()):
            transform = faiss.downcast_VectorTransform(part.chain.at(i))
            if isinstance(transform, faiss.LinearTransform):
                counts["other"] += 4 * (transform.A.size() + transform.b.size())
        _walk(part.index, role, counts)
        return
    if hasattr(part, "hnsw"):
        hnsw = part.hnsw
        counts["graph"] += 4 * hnsw.neighbors.size() + 8 * hnsw.offsets.size() + 4 * hnsw.levels.size()
        _walk(part.storage, role, counts)
        return
    if isinstance(part, faiss.IndexIVF):
        _walk(part.quantizer, "other", counts)
        stored = int(part.invlists.compute_ntotal())
        counts[role] += stored * int(part.code_size)
        counts["ids"] += 8 * stored
        counts["other"] += _codebooks(part)
        return
    counts[role] += int(part.ntotal) * int(part.sa_code_size())
    counts["other"] += _codebooks(part)


def _codebooks(part: faiss.Index) -> int:
    """PQ centroids and SQ ranges a code index carries besides its codes."""
    total = 0
    pq = getattr(part, "pq", None)
    if pq is not None:
        total += 4 * pq.centroids.size()
    sq = getattr(part, "sq", None)
    if sq is not None:
        total += 4 * sq.trained.size()
    table = getattr(part, "precomputed_table", None)  # IVFPQ's distance tables (nlist x M x 2**bits floats)
    if table is not None:
        total += 4 * table.size()
    return total
