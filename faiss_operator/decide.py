"""The reconcile decision: (spec, status, observations, now) -> plan. Pure.

Level-based: the plan is recomputed from what is observed on every pass, so a missed or
duplicated event changes nothing. Status is the operator's memory (which build it started,
which schedule time and rebuild request it handled); Jobs, found by deterministic names,
are the source of truth for builds in flight, so a restart adopts a Job instead of
starting another.

A pass composes the parts, each a pure module: follow the tracked build (``build_outcome``)
-> pin / gate and promote (``promotion``, ``manual``, ``refusal``) -> drift bookkeeping
(``drift``) -> maybe start a build (``triggers``, ``build_jobs``) -> rollout and its one
share (``rollout``, ``indexops_api.rollout_plan``) -> retention -> pointer -> conditions
(``status_view``) -> when to look again (``pacing.requeue_for``).
"""

from __future__ import annotations

from dataclasses import replace

from indexops_api.layout import build_key
from indexops_api.rollout_plan import rollout_share
from indexops_api.status import EventReason
from faiss_operator.adoption import adopt, must_wait_for_storage
from faiss_operator.build_jobs import old_finished_jobs, other_builders_alive, resume_tracked, start_build
from faiss_operator.build_outcome import after_failures, follow_build, recover_on_spec_change
from faiss_operator.drift import record_sync
from faiss_operator.manual import apply_manual
from faiss_operator.model import Event, Observation, Plan
from faiss_operator.pacing import requeue_for
from faiss_operator.promotion import apply_pin, desired_pointer, promote, with_rollout
from faiss_operator.refusal import handle_refusals
from faiss_operator.retention import versions_to_delete
from faiss_operator.rollout import advance_steps
from faiss_operator.sharding import next_stage
from faiss_operator.status_view import invalid_spec_plan, with_conditions
from faiss_operator.triggers import TriggerDecision, choose_trigger


def decide(obs: Observation) -> Plan:
    plan = invalid_spec_plan(obs) if obs.spec is None else _reconcile(obs)
    return replace(plan, requeue=requeue_for(obs.spec, plan, obs.storage_error, obs.now))


def _reconcile(obs: Observation) -> Plan:
    assert obs.spec is not None
    spec, status = obs.spec, obs.status
    events: list[Event] = []
    status = recover_on_spec_change(obs, status)
    status, adopted = adopt(obs, spec, status, build_key(spec))  # a lost status, rebuilt from storage
    events += adopted

    failures_before = status.consecutive_failures
    status, finished = follow_build(obs, status)
    events += finished
    status, pin_events = apply_pin(obs, spec, status)
    events += pin_events
    status, promoted = promote(obs, spec, status)
    events += promoted
    status, manual = apply_manual(obs, status)
    events += manual
    status = handle_refusals(obs, status, events)
    status, retry_events = after_failures(obs, spec, status, failures_before)
    events += retry_events
    status, sync_events = record_sync(obs, spec, status)
    events += sync_events

    key = build_key(spec)
    decision = TriggerDecision() if must_wait_for_storage(obs, status) else choose_trigger(obs, spec, status, key)
    status = status.updated(**decision.updates)
    events += decision.events
    create, delete_jobs = None, []
    if decision.trigger is not None:
        status, create, start_events, delete_jobs = start_build(obs, status, key, decision.trigger, decision.replace_running)
        events += start_events
    delete_jobs += old_finished_jobs(obs, status)
    if create is not None and other_builders_alive(obs, create.name):
        create = replace(create, suspended=True)
        delete_jobs += [j.name for j in obs.jobs  # one build at a time: a stray builder must not block this one
                        if j.state == "Running" and j.name != create.name and not j.terminating and j.name not in delete_jobs]

    if spec.rollout.plan.progressive:
        status = advance_steps(obs, spec, status, events)
    else:
        status = with_rollout(obs, status, spec, events)
    share = rollout_share(spec.rollout.plan, status.current_version, status.candidate_version, status.rollout_step)
    status = status.updated(rollout_percent=share.newest_percent)  # status and pointer: one derivation
    prune = versions_to_delete(obs, spec, status)
    if prune:
        events.append(Event("Normal", EventReason.VERSIONS_PRUNED,
                            f"pruned {len(prune)} version(s) beyond keepVersions={spec.rollout.keep_versions}: {', '.join(prune)}"))
    if obs.versions is not None:
        status = status.updated(stored_versions=len(obs.versions) - len(prune))
    pointer = desired_pointer(obs, status, share)
    status, condition_events = with_conditions(obs, spec, status)
    events += condition_events
    resume = resume_tracked(obs, status, events)
    stage = next_stage(obs, status) if create is None else None  # sharded builds: the Job chain advances
    return Plan(
        create_stage=stage,
        status=status,
        create_job=create,
        write_pointer=pointer if obs.storage_error is None else None,
        ensure_serving=spec.serving.enabled and status.current_version is not None,
        delete_jobs=delete_jobs,
        resume_job=resume,
        prune_versions=prune if obs.storage_error is None else [],
        events=events,
    )


