"""Pure shard arithmetic shared by the builder and the serving fan-out.

Two rules must be identical wherever they are used, so they live in one place:

* **Which slice a row belongs to.** Builds use ``row_ranges``: slice ``s`` holds the
  contiguous source rows ``[s*n//N, (s+1)*n//N)`` in source order (objects in key order,
  Parquet row groups in file order, PostgreSQL rows in id order), so a slice pod reads
  only its share of the source (ranged GETs, row groups, an id range). The manifest
  records the rule and every slice's first row and row count. ``shard_of`` (the
  id-hash rule of older manifests, kept so they still read) hashes the row's id (splitmix64's
  finaliser, a fixed public mixing function) and takes it modulo the shard count. It
  depends on the id alone, not on the row's position, the batch or the pod, so a rebuild
  puts every id in the same slice and an id never appears in two slices.
* **How per-shard top-k answers combine.** ``merge_topk`` concatenates the shards'
  candidates and keeps the best ``k`` by distance, the way FAISS's ``IndexShards`` does:
  ascending for L2, descending for inner product / cosine. The builder measures recall
  of exactly the merge the fan-out serves.

Only numpy; no I/O.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def mix64(ids: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of each int64 id, as uint64 (wrapping arithmetic)."""
    x = np.asarray(ids, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def shard_of(ids: np.ndarray, shards: int) -> np.ndarray:
    """The slice (0..shards-1) of every id; stable across rebuilds and processes."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    return (mix64(ids) % np.uint64(shards)).astype(np.int64)


RULE_ROWS = "contiguous row ranges in source order"
RULE_HASH = "splitmix64(id) mod shards"


def row_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    """``(first_row, rows)`` of every slice: contiguous, disjoint, complete, sizes differ by at most one."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    bounds = [s * n // shards for s in range(shards + 1)]
    return [(bounds[s], bounds[s + 1] - bounds[s]) for s in range(shards)]


PLAN_FILE = "shard-plan.json"  # the train stage's plan in the version's prefix (builder writes, operator reads)
SERVING_OVERHEAD_BYTES = 160 * 2**20  # a shard pod's fixed part (measured ~135 MB, bench/results/scale.md) + margin
SWAP_HEADROOM = 2.0  # a hot swap or canary holds two versions of a shard at once
MAX_AUTO_SHARDS = 64


def auto_shard_count(index_bytes: int, vectors: int, serving_memory: int) -> tuple[int, str]:
    """The fewest shards whose part fits a serving pod twice beside its fixed overhead, and why.

    ``index_bytes``: the whole index's estimated memory (type and parameters x vectors).
    Capped at 64; the reason says so when even 64 shards do not fit.
    """
    room = serving_memory - SERVING_OVERHEAD_BYTES
    need = SWAP_HEADROOM * index_bytes
    gib = 2**30
    if room <= 0:
        return MAX_AUTO_SHARDS, (f"serving memory limit {serving_memory / gib:.2f} GiB leaves no room beside the "
                                 f"{SERVING_OVERHEAD_BYTES / gib:.2f} GiB fixed part; using the maximum of {MAX_AUTO_SHARDS}")
    count = max(1, -(-int(need) // int(room)))
    what = (f"{vectors} vectors need ~{index_bytes / gib:.2f} GiB; {SWAP_HEADROOM:g} x index / shards + "
            f"{SERVING_OVERHEAD_BYTES / gib:.2f} GiB must fit the serving memory limit {serving_memory / gib:.2f} GiB")
    if count > MAX_AUTO_SHARDS:
        return MAX_AUTO_SHARDS, f"{what}: even {MAX_AUTO_SHARDS} shards do not fit; using {MAX_AUTO_SHARDS}"
    return count, f"{what}: {count} shard(s)"


def merge_topk(
    distances: list[np.ndarray], ids: list[np.ndarray], k: int, *, larger_is_better: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` of several (queries, k_i) answers; missing results are id -1 and sort last.

    Ties keep shard order (a stable sort), so the merge is deterministic.
    """
    if not distances:
        raise ValueError("merge_topk needs at least one shard answer")
    d = np.concatenate([np.asarray(x, dtype=np.float64) for x in distances], axis=1)
    i = np.concatenate([np.asarray(x, dtype=np.int64) for x in ids], axis=1)
    worst = -np.inf if larger_is_better else np.inf
    d = np.where(i < 0, worst, d)
    order = np.argsort(-d if larger_is_better else d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)
