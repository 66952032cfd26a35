"""``rollout.percent`` and ``rollout.steps`` are one plan, and one function derives every share from it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from indexops_api.rollout_plan import PlanStep, RolloutPlan, Share, rollout_share
from faiss_operator.decide import decide

from factories import NOW, finished, job, manifest, observation, pointer, running, serving, spec, version

STEPS = [{"percent": 10, "pause": "5m"}, {"percent": 50, "pause": "10m"}]


def test_percent_100_is_a_plan_without_steps_that_promotes_at_once():
    plan = spec().rollout.plan
    assert plan == RolloutPlan() and plan.at_once


def test_percent_below_100_is_a_one_step_plan_that_holds_without_analysis():
    plan = spec(**{"rollout.percent": 30}).rollout.plan
    assert plan == RolloutPlan(steps=(PlanStep(percent=30),)) and not plan.progressive and not plan.at_once


def test_steps_win_over_percent_and_are_gated_by_analysis_with_the_shadow_share():
    plan = spec(**{"rollout.percent": 30, "rollout.steps": STEPS, "rollout.analysis": {"shadowPercent": 7}}).rollout.plan
    assert plan.steps == (PlanStep(percent=10, pause="5m"), PlanStep(percent=50, pause="10m"))
    assert plan.progressive and plan.shadow_percent == 7


@pytest.mark.parametrize(
    ("overrides", "current", "candidate", "step", "share"),
    [
        pytest.param({}, None, None, None, Share(), id="nothing serves: no share at all"),
        pytest.param({}, "v1", None, None, Share(newest_percent=100), id="no candidate: the stable version gets 100, the pointer 0"),
        pytest.param({"rollout.percent": 30}, "v1", None, None, Share(newest_percent=100), id="no candidate under a held percent"),
        pytest.param({"rollout.percent": 30}, "v1", "v2", None, Share(candidate_percent=30, newest_percent=30),
                     id="a held canary: its percent, no shadowing"),
        pytest.param({"rollout.steps": STEPS}, "v1", "v2", 1, Share(candidate_percent=50, shadow_percent=10, newest_percent=50),
                     id="a progressive canary: its step's percent and the shadow share"),
        pytest.param({"rollout.steps": STEPS}, "v1", None, None, Share(newest_percent=100), id="after a rollback: no candidate, no shadow"),
    ],
)
def test_the_share_of_each_version_comes_from_the_plan_and_the_versions_in_status(overrides, current, candidate, step, share):
    assert rollout_share(spec(**overrides).rollout.plan, current, candidate, step) == share


@pytest.mark.parametrize("overrides", [{"rollout.percent": 30}, {"rollout.steps": STEPS}], ids=["held percent", "steps"])
def test_status_rollout_percent_and_the_pointer_state_the_same_candidate_share(overrides):
    s = spec(**overrides)
    old = spec(**{"parameters": {"efSearch": 32}})
    status = serving(old).updated(last_build=running(s, number=2), build_count=2)
    j = job(s, "Succeeded", number=2)
    plan = decide(observation(s, status, job=j, manifest=manifest(j.version, j.build_key), pointer=pointer(status.current_version)))
    assert plan.status.candidate_version == j.version
    assert plan.write_pointer is not None
    assert plan.write_pointer.candidate_percent == plan.status.rollout_percent == s.rollout.plan.steps[0].percent


def test_without_a_candidate_status_says_100_and_the_pointer_routes_0_to_no_candidate():
    s = spec(**{"rollout.percent": 30})
    st = serving(s)
    plan = decide(observation(s, st, pointer=pointer(st.current_version, candidate=None, percent=0)))
    assert plan.status.rollout_percent == 100
    assert plan.write_pointer is None  # the stored pointer (candidate None, 0%) already says the same


def test_a_held_canary_is_promoted_when_the_plan_becomes_at_once():
    held = spec(**{"rollout.percent": 30})
    v2 = version(held, NOW - timedelta(minutes=1))
    st = serving(spec(**{"parameters": {"efSearch": 32}}), candidate_version=v2, rollout_percent=30,
                 last_build=finished(held, number=2, at=NOW - timedelta(minutes=1)), build_count=2)
    plan = decide(observation(spec(), st, pointer=pointer(st.current_version, generation=2, candidate=v2, percent=30)))
    assert (plan.status.current_version, plan.status.candidate_version, plan.status.rollout_percent) == (v2, None, 100)
    assert plan.write_pointer is not None and plan.write_pointer.candidate_percent == 0
