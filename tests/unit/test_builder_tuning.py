"""Tuning picks the cheapest search setting reaching the target recall, from sweeps built by hand."""

from __future__ import annotations

import pytest

from index_builder.tuning import choose, knob_for, sweep_values
from indexops_api.manifest import TuningPoint


def _sweep(*points: tuple[int, float, float], knob: str = "efSearch") -> list[TuningPoint]:
    return [TuningPoint(parameters={knob: v}, recall=r, latency_p99_ms=ms) for v, r, ms in points]


def test_the_fastest_point_reaching_the_target_is_chosen() -> None:
    points = _sweep((16, 0.80, 0.10), (32, 0.91, 0.20), (64, 0.97, 0.35), (128, 0.99, 0.60))
    chosen, reached = choose(points, 0.95)
    assert (chosen.parameters, reached) == ({"efSearch": 64}, True)


def test_a_larger_value_that_measured_faster_wins_when_clearly_faster() -> None:
    points = _sweep((1, 0.96, 0.50), (2, 0.98, 0.30), knob="nprobe")
    assert choose(points, 0.95)[0].parameters == {"nprobe": 2}


def test_latency_within_five_percent_is_a_tie_that_goes_to_the_smaller_value() -> None:
    points = _sweep((32, 0.96, 0.200), (48, 0.97, 0.195))
    assert choose(points, 0.95)[0].parameters == {"efSearch": 32}


def test_an_unreachable_target_picks_the_best_recall_and_says_not_reached() -> None:
    points = _sweep((16, 0.70, 0.1), (32, 0.82, 0.2), (64, 0.85, 0.4), (128, 0.85, 0.3))
    chosen, reached = choose(points, 0.95)
    assert (chosen.parameters, reached) == ({"efSearch": 128}, False)


def test_an_empty_sweep_is_an_error() -> None:
    with pytest.raises(ValueError):
        choose([], 0.9)


def test_efsearch_sweeps_from_k_upwards() -> None:
    assert sweep_values("efSearch", 10)[:3] == [16, 24, 32]
    assert sweep_values("efSearch", 100)[0] == 100 and max(sweep_values("efSearch", 100)) == 1024


def test_nprobe_sweeps_powers_of_two_up_to_nlist() -> None:
    assert sweep_values("nprobe", 10, nlist=20) == [1, 2, 4, 8, 16, 20]
    assert sweep_values("nprobe", 10, nlist=1) == [1]


def test_the_knob_follows_the_index_family() -> None:
    assert knob_for({"efSearch": 64}) == "efSearch"
    assert knob_for({"nprobe": 8}) == "nprobe"
    assert knob_for({}) is None


def test_a_point_whose_mean_reaches_the_target_but_whose_lower_bound_does_not_is_not_chosen() -> None:
    lucky = TuningPoint(parameters={"nprobe": 8}, recall=0.952, latency_p99_ms=0.1, recall_lower_bound=0.941)
    sure = TuningPoint(parameters={"nprobe": 16}, recall=0.968, latency_p99_ms=0.2, recall_lower_bound=0.957)
    assert choose([lucky, sure], 0.95) == (sure, True)


def test_re_rank_depths_are_tried_only_when_the_index_re_ranks_and_stay_within_the_index() -> None:
    from index_builder.tuning import k_factor_values

    assert k_factor_values({"nprobe": 8}, 10, 100_000) == []
    assert k_factor_values({"nprobe": 8, "k_factor_rf": 8}, 10, 100_000) == [1, 2, 4, 8, 16, 32, 64]
    assert k_factor_values({"efSearch": 64, "k_factor_rf": 8}, 10, 100) == [1, 2, 4, 8]
