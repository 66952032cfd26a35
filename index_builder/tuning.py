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
"""

from __future__ import annotations

import logging

import faiss

from index_builder import measure
from index_builder.build import apply_search_parameters, search_knobs
from index_builder.measure import HeldOut
from indexops_api.manifest import TuningPoint, TuningResult

log = logging.getLogger(__name__)

EF_SEARCH_VALUES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
LATENCY_QUERIES = 200
TIE_FRACTION = 0.05
STOP_AFTER_REACHED = 2


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


def choose(points: list[TuningPoint], target: float) -> tuple[TuningPoint, bool]:
    """The cheapest point reaching ``target``; else the best recall. Returns (point, reached)."""
    if not points:
        raise ValueError("no tuning points")
    reaching = [p for p in points if p.recall >= target]
    if not reaching:
        best = max(p.recall for p in points)
        return min((p for p in points if p.recall == best), key=lambda p: p.latency_p99_ms), False
    fastest = min(p.latency_p99_ms for p in reaching)
    near = [p for p in reaching if p.latency_p99_ms <= fastest * (1 + TIE_FRACTION)]
    return min(near, key=lambda p: sorted(p.parameters.items())), True


def tune(index: faiss.Index, queries: HeldOut, *, target: float, k: int, search: dict[str, int]) -> TuningResult | None:
    """Sweep the index's knob on ``queries``; None when the index has nothing to tune (Flat)."""
    knob = knob_for(search)
    if knob is None:
        return None
    k = min(k, queries.k)
    nlist = search_knobs(index).get("nlist")
    points: list[TuningPoint] = []
    reached_in_a_row = 0
    for value in sweep_values(knob, k, nlist):
        setting = {**search, knob: value}
        apply_search_parameters(index, setting)
        _, approx = index.search(queries.vectors, k)
        recall = measure.recall_at_k(approx, queries.exact, k)
        _, _, p99 = measure.latency_percentiles(measure.single_query_seconds(index, queries.vectors, k, LATENCY_QUERIES))
        points.append(TuningPoint(parameters={knob: value}, recall=recall, latency_p99_ms=p99))
        log.info("tuning point", extra={knob: value, "recallAtK": recall, "p99Ms": round(p99, 4)})
        reached_in_a_row = reached_in_a_row + 1 if recall >= target else 0
        if reached_in_a_row >= STOP_AFTER_REACHED or recall >= 1.0:
            break
    chosen, reached = choose(points, target)
    apply_search_parameters(index, search)
    return TuningResult(target_recall=target, k=k, reached=reached, chosen=dict(chosen.parameters), sweep=points)
