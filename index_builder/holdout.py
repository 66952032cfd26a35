"""Which source rows are held out of the index while it is measured, and where rows end up.

Recall measured with queries the index already contains is optimistic: an HNSW search
that reaches the query's own node lands next to exactly its nearest neighbours, and an
IVF query sits in the list its own vector helped train. (At 200k x 384 text embeddings,
HNSW measured 0.977 with the query rows indexed, 0.900 on truly unseen queries.) So the
builder samples the validation rows first, trains and fills the index with every *other*
row, measures and tunes on the sampled rows, and only then appends them, so the
published index still holds every vector.

The index stores positions, not ids (see ``index_builder.build``), so this order is the
published layout: positions ``0 .. n-q-1`` are the kept rows in source order, positions
``n-q .. n-1`` the held-out rows in source order; ``ids.npy`` is written in that order.

Pure numpy, no FAISS: every function here is a rule about row numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from index_builder.errors import TooFewVectors

MAX_FRACTION = 0.5  # never measure an index built from fewer than half the rows it will serve


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted distinct row numbers in ``0..n-1``, reproducible from ``seed``."""
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)


def holdout_size(n: int, wanted: int, keep: int = 1, *, name: str = "source") -> int:
    """``wanted`` queries, at most half the rows, leaving at least ``keep`` rows to train and index."""
    size = min(wanted, int(n * MAX_FRACTION), n - max(1, keep))
    if size < 1:
        needed = max(2, max(1, keep) + 1)
        raise TooFewVectors(
            f"{name}: contains {n} vectors; recall is measured on source rows held out of the index "
            f"while at least {max(1, keep)} remain to build it, which needs at least {needed} vectors"
        )
    return size


def holdout_rows(n: int, wanted: int, seed: int, keep: int = 1, *, name: str = "source") -> np.ndarray:
    """The sorted source rows held out for validation and tuning (a retried build picks the same)."""
    return sample_rows(n, holdout_size(n, wanted, keep, name=name), seed)


def kept_rows(positions: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Source row of each position among the kept rows (the rows not in sorted ``held``).

    The ``p``-th kept row is ``p`` plus the number of held rows before it; ``held[j] - j``
    is the number of kept rows before the ``j``-th held row, so that count is a search.
    """
    positions = np.asarray(positions, dtype=np.int64)
    shifted = np.asarray(held, dtype=np.int64) - np.arange(len(held), dtype=np.int64)
    return positions + np.searchsorted(shifted, positions, side="right")


def kept_slices(n: int, held: np.ndarray, rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, keep)`` per block of ``rows`` source rows; ``keep`` masks out held rows in it."""
    held = np.asarray(held, dtype=np.int64)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        keep = np.ones(stop - start, dtype=bool)
        lo, hi = np.searchsorted(held, [start, stop])
        keep[held[lo:hi] - start] = False
        yield start, stop, keep


def index_order(values: np.ndarray, held: np.ndarray) -> np.ndarray:
    """``values`` (one per source row) in index position order: kept rows, then held rows."""
    keep = np.ones(values.shape[0], dtype=bool)
    keep[held] = False
    return np.concatenate([values[keep], values[held]])
