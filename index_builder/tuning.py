"""``spec.tuning``: the cheapest search-time setting that reaches a target recall@k.

HNSW-family indexes trade recall for latency with ``efSearch``, IVF-family ones with
``nprobe``. The builder sweeps the knob upwards on the held-out queries (the same rows
and exact neighbours the validation uses; the rows are not in the index while it is
swept, so a knob that only looks good for queries the graph already contains is not
picked), measuring recall@k and single-query p99 at
each value, and stops after two consecutive values reach the target (larger ones only
cost more). ``choose`` is pure: among the points that reach the target, the lowest
p99, where p99s within 5 % of the best count as a tie and go to the smaller value
(latency noise must not buy a slower setting). When none reaches the target, the
highest recall wins and ``reached`` is false; the operator's minRecall gate decides.

"Reaches" means the point's **lower confidence bound** on recall (``index_builder.confidence``)
is at or above the target, not only its mean: the cheapest of many settings whose mean
just reaches the target is, more often than not, one that was lucky on these queries.

Indexes that re-rank (``k_factor_rf``, FAISS IndexRefine) have a second knob, the re-rank
depth ``kFactor``: for each depth in ``K_FACTOR_VALUES`` the base knob is swept as above;
a deeper re-rank only gets base-knob values up to the cheapest one that reached the target
with a shallower depth (beyond that it can only cost more). A sweep also stops when three
larger values in a row gained less than 0.002 recall: the shortlist, not the base knob,
limits recall there, and only a deeper re-rank helps.
"""

from __future__ import annotations

import logging

import faiss

from index_builder import confidence, measure, params
from index_builder.build import apply_search_parameters, search_knobs
from index_builder.measure import HeldOut
from indexops_api.manifest import TuningPoint, TuningResult

log = logging.getLogger(__name__)

EF_SEARCH_VALUES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
LATENCY_QUERIES = 200
TIE_FRACTION = 0.05
STOP_AFTER_REACHED = 2
K_FACTOR_VALUES = (1, 2, 4, 8, 16, 32, 64)
PLATEAU_POINTS = 3  # stop a sweep when this many larger values added less than PLATEAU_GAIN recall
PLATEAU_GAIN = 0.002


def sweep_values(knob: str, k: int, nlist: int | None = None) -> list[int]:
    """Ascending values to try: efSearch from max(k, 16) to 1024; nprobe powers of two up to nlist."""
    if knob == "efSearch":
        return sorted({max(v, k) for v in EF_SEARCH_VALUES})
    if knob == "nprobe":
        if not nlist:
            raise ValueError("nprobe sweep needs nlist")
        values = {1 << i for i in range(nlist.bit_length()) if (1 << i) <= nlist} | {nlist}
        return sorted(values)
    raise ValueError(f"no sweep for search parameter {knob!r}")


def knob_for(search: dict[str, int]) -> str | None:
    """The search parameter to tune (efSearch or nprobe), None for exact indexes."""
    for name in ("efSearch", "nprobe"):
        if name in search:
            return name
    return None


def bound_of(point: TuningPoint) -> float:
    """What a point must bring to the target: its lower confidence bound, else its mean recall."""
    return point.recall_lower_bound if point.recall_lower_bound is not None else point.recall


def choose(points: list[TuningPoint], target: float) -> tuple[TuningPoint, bool]:
    """The cheapest point whose bound reaches ``target``; else the best recall. Returns (point, reached)."""
    if not points:
        raise ValueError("no tuning points")
    reaching = [p for p in points if bound_of(p) >= target]
    if not reaching:
        best = max(p.recall for p in points)
        return min((p for p in points if p.recall == best), key=lambda p: p.latency_p99_ms), False
    fastest = min(p.latency_p99_ms for p in reaching)
    near = [p for p in reaching if p.latency_p99_ms <= fastest * (1 + TIE_FRACTION)]
    return min(near, key=lambda p: sorted(p.parameters.items())), True


def k_factor_values(search: dict[str, int], k: int, ntotal: int) -> list[int]:
    """Re-rank depths to try (none when the index does not re-rank); ``k * kFactor`` at most ``ntotal``."""
    if params.K_FACTOR not in search:
        return []
    return [f for f in K_FACTOR_VALUES if f == 1 or k * f <= max(ntotal, k)]


def tune(index: faiss.Index, queries: HeldOut, *, target: float, k: int, search: dict[str, int]) -> TuningResult | None:
    """Sweep the index's knob(s) on ``queries``; None when the index has nothing to tune (Flat)."""
    knob = knob_for(search)
    if knob is None:
        return None
    k = min(k, queries.k)
    nlist = search_knobs(index).get("nlist")
    values = sweep_values(knob, k, nlist)
    depths = k_factor_values(search, k, int(index.ntotal))
    points: list[TuningPoint] = []
    for depth in depths or [None]:
        extra = {} if depth is None else {params.K_FACTOR: depth}
        points += _sweep_knob(index, queries, k=k, target=target, search={**search, **extra}, knob=knob,
                              values=values, extra=extra)
        reached = [p.parameters[knob] for p in points if bound_of(p) >= target]
        if reached:  # a deeper re-rank only pays off with a smaller base knob
            values = [v for v in values if v <= min(reached)]
    chosen, reached_target = choose(points, target)
    apply_search_parameters(index, search)
    return TuningResult(target_recall=target, k=k, reached=reached_target, chosen=dict(chosen.parameters),
                        sweep=points, criterion="recallLowerBound", confidence=confidence.CONFIDENCE)


def _sweep_knob(index: faiss.Index, queries: HeldOut, *, k: int, target: float, search: dict[str, int], knob: str,
                values: list[int], extra: dict[str, int]) -> list[TuningPoint]:
    points: list[TuningPoint] = []
    reached_in_a_row = 0
    for value in values:
        setting = {**search, knob: value}
        apply_search_parameters(index, setting)
        _, approx = index.search(queries.vectors, k)
        per_query = confidence.per_query_recall(approx, queries.exact, k)
        recall, bound = float(per_query.mean()), confidence.lower_bound(per_query)
        _, _, p99 = measure.latency_percentiles(measure.single_query_seconds(index, queries.vectors, k, LATENCY_QUERIES))
        points.append(TuningPoint(parameters={knob: value, **extra}, recall=recall, latency_p99_ms=p99,
                                  recall_lower_bound=bound))
        log.info("tuning point", extra={knob: value, **extra, "recallAtK": recall, "recallLowerBound": round(bound, 4),
                                        "p99Ms": round(p99, 4)})
        reached_in_a_row = reached_in_a_row + 1 if bound >= target else 0
        if reached_in_a_row >= STOP_AFTER_REACHED or recall >= 1.0 or _plateau(points):
            break
    return points


def _plateau(points: list[TuningPoint]) -> bool:
    """The last ``PLATEAU_POINTS`` values gained less than ``PLATEAU_GAIN`` recall: the shortlist limits it."""
    if len(points) <= PLATEAU_POINTS:
        return False
    return points[-1].recall - points[-1 - PLATEAU_POINTS].recall < PLATEAU_GAIN
