"""The rollout as one plan of steps, and the one place its share of queries is derived. Pure.

The spec offers two ways to say how a validated version rolls out: ``rollout.steps``
(progressive, each step gated by online analysis, passing the last promotes) and
``rollout.percent`` (a fixed share). When the spec is parsed, both become a ``RolloutPlan``:

- ``steps`` -> those steps, ``progressive``: analysis advances them;
- ``percent < 100`` -> one step at that percent that holds (no pause, no analysis): the
  candidate keeps that share until the spec changes or a promote is requested;
- ``percent == 100`` -> no steps: a validated version is promoted at once.

``rollout_share`` is the only function that turns a plan and the status's versions into
shares: ``status.rolloutPercent`` and the serving pointer are both written from it, so
"no candidate" means one thing everywhere (the newest version, the stable one, receives
100%; the pointer routes 0% to a candidate it does not have).
"""

from __future__ import annotations

from typing import Protocol, Sequence

from indexops_api.base import ApiModel


class PlanStep(ApiModel):
    percent: int
    pause: str | None = None  # None: a holding step (``rollout.percent``): it never advances by itself


class RolloutPlan(ApiModel):
    steps: tuple[PlanStep, ...] = ()
    progressive: bool = False  # the steps are gated by online analysis and passing the last one promotes
    shadow_percent: int = 0  # share of stable-routed queries also run on the candidate (progressive only)

    @property
    def at_once(self) -> bool:
        """A validated version is promoted to 100% without a candidate phase."""
        return not self.steps

    def step_percent(self, step: int | None) -> int:
        """The candidate's share at ``step`` (a holding plan has one step; an unknown step means the first)."""
        index = step if self.progressive and step is not None and 0 <= step < len(self.steps) else 0
        return self.steps[index].percent


class _Step(Protocol):
    percent: int
    pause: str


def plan_of(percent: int, steps: Sequence[_Step], shadow_percent: int) -> RolloutPlan:
    """The plan ``rollout.percent`` / ``rollout.steps`` describe (steps win, as documented)."""
    if steps:
        return RolloutPlan(steps=tuple(PlanStep(percent=s.percent, pause=s.pause) for s in steps), progressive=True,
                           shadow_percent=shadow_percent)
    if percent >= 100:
        return RolloutPlan()
    return RolloutPlan(steps=(PlanStep(percent=percent),))


class Share(ApiModel):
    """Who receives which share of queries, as status and the pointer state it."""

    candidate_percent: int = 0  # routed to the candidate; 0 without one
    shadow_percent: int = 0  # of stable-routed queries, also run on the candidate; 0 without one
    newest_percent: int | None = None  # ``status.rolloutPercent``: the newest version's share; None while nothing serves


def rollout_share(plan: RolloutPlan, current: str | None, candidate: str | None, step: int | None) -> Share:
    """The one derivation of the rollout's shares from the plan and the versions in status."""
    if current is None:
        return Share()
    if candidate is None or plan.at_once:
        return Share(newest_percent=100)  # the stable version is the newest: it receives everything
    percent = plan.step_percent(step)
    return Share(candidate_percent=percent, shadow_percent=plan.shadow_percent, newest_percent=percent)
