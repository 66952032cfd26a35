"""A sharded build's Job chain as one build: stage states folded, the next stage chosen, objects built."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydantic import ValidationError

from indexops_api import constants as c
from indexops_api.layout import build_key
from indexops_api.shards import merge_topk, shard_of
from indexops_api.status import BuildResult
from faiss_operator.config import OperatorConfig
from faiss_operator.decide import decide
from faiss_operator.model import JobObservation
from faiss_operator.shard_objects import (
    SHARD_COMPONENT, build_fanout_deployment, build_shard_deployment, build_stage_job, sharded_serving_objects, train_job,
)
from faiss_operator.objects import build_job
from faiss_operator.sharding import combine, next_stage, stage_job_name

from factories import job, observation, spec, status_running

CONFIG = OperatorConfig(image="example/faiss:1")


def sharded(**overrides):
    return spec(shards=4, **overrides)


def train(s, state="Succeeded", **fields) -> JobObservation:
    return dataclasses.replace(job(s, state), stage="train", uid="uid-train", trigger="Spec", **fields)


def stage(parent: JobObservation, name: str, state: str, message: str = "") -> JobObservation:
    return JobObservation(name=stage_job_name(parent.name, name), version=parent.version, build_key=parent.build_key,
                          state=state, message=message, number=parent.number, stage=name, parent=parent.name,
                          completion_time=None if state == "Running" else "2026-11-21T12:10:00Z")


@pytest.mark.parametrize(
    ("train_state", "stages", "state", "upcoming"),
    [
        ("Running", {}, "Running", None),
        ("Succeeded", {}, "Running", "shards"),
        ("Succeeded", {"shards": "Running"}, "Running", None),
        ("Succeeded", {"shards": "Succeeded"}, "Running", "finalize"),
        ("Succeeded", {"shards": "Succeeded", "finalize": "Running"}, "Running", None),
        ("Succeeded", {"shards": "Succeeded", "finalize": "Succeeded"}, "Succeeded", None),
        ("Failed", {}, "Failed", None),
        ("Succeeded", {"shards": "Failed"}, "Failed", None),
        ("Succeeded", {"shards": "Succeeded", "finalize": "Failed"}, "Failed", None),
    ],
)
def test_the_stage_jobs_fold_into_one_build_state_and_name_the_next_stage(train_state, stages, state, upcoming):
    s = sharded()
    parent = train(s, train_state)
    folded = combine((parent, *(stage(parent, name, st) for name, st in stages.items())))
    assert len(folded) == 1 and folded[0].name == parent.name
    assert (folded[0].state, folded[0].next_stage) == (state, upcoming)


def test_a_failed_slice_fails_the_build_with_the_stage_and_the_reason():
    s = sharded()
    parent = train(s)
    folded, = combine((parent, stage(parent, "shards", "Failed", "BuildError: slice 2 ran out of memory")))
    assert folded.state == "Failed"
    assert folded.message.startswith("slice stage (Job ") and "slice 2 ran out of memory" in folded.message


def test_decide_asks_for_the_slice_job_once_training_succeeded_and_never_a_second_build():
    s = sharded()
    obs = observation(s, status_running(s), jobs=combine((train(s),)))
    plan = decide(obs)
    assert plan.create_job is None
    assert plan.create_stage is not None
    assert (plan.create_stage.stage, plan.create_stage.parent, plan.create_stage.parent_uid) == ("shards", job(s, "Running").name, "uid-train")
    assert plan.status.last_build.result == BuildResult.RUNNING


def test_next_stage_is_none_while_a_stage_runs_or_once_the_build_is_over():
    s = sharded()
    parent = train(s)
    running = observation(s, status_running(s), jobs=combine((parent, stage(parent, "shards", "Running"))))
    assert next_stage(running, running.status) is None
    done = observation(s, status_running(s), jobs=combine((parent, stage(parent, "shards", "Succeeded"),
                                                           stage(parent, "finalize", "Succeeded"))))
    assert next_stage(done, done.status) is None


def test_the_slice_job_is_an_indexed_job_retrying_each_slice_alone_and_owned_by_the_train_job():
    s = sharded(**{"build.backoffLimit": 2})
    obs = observation(s, status_running(s), jobs=combine((train(s),)))
    create = decide(obs).create_stage
    body = build_stage_job(index="idx", namespace="ns", uid="uid-1", spec=s, stage=create, config=CONFIG)
    assert body["metadata"]["name"] == stage_job_name(create.parent, "shards")
    assert body["metadata"]["ownerReferences"][0] | {} == {
        "apiVersion": "batch/v1", "kind": "Job", "name": create.parent, "uid": "uid-train", "controller": True,
        "blockOwnerDeletion": True}
    js = body["spec"]
    assert (js["completionMode"], js["completions"], js["backoffLimitPerIndex"], js["maxFailedIndexes"]) == ("Indexed", 4, 2, 0)
    assert "backoffLimit" not in js and js["template"]["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e.get("value") for e in js["template"]["spec"]["containers"][0]["env"]}
    assert env["FAISS_BUILD_STAGE"] == "shard"
    assert body["metadata"]["annotations"][c.ANNOTATION_PARENT_JOB] == create.parent


def test_the_tracked_job_of_a_sharded_spec_runs_the_train_stage():
    s = sharded()
    create = decide(observation(s, serving=None)).create_job
    body = train_job(build_job(index="idx", namespace="ns", uid="u", spec=s, job=create, config=CONFIG))
    env = {e["name"]: e.get("value") for e in body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FAISS_BUILD_STAGE"] == "train"
    assert body["metadata"]["annotations"][c.ANNOTATION_BUILD_STAGE] == "train"


def test_sharded_serving_is_one_deployment_per_shard_and_a_fan_out_behind_the_usual_service():
    s = sharded()
    objects = sharded_serving_objects(index="idx", namespace="ns", uid="u", spec=s, config=CONFIG)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds[-2:] == [("Deployment", "idx-serving"), ("Service", "idx-serving")]
    shard2 = build_shard_deployment(index="idx", namespace="ns", uid="u", spec=s, config=CONFIG, shard=2)
    env = {e["name"]: e.get("value") for e in shard2["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["FAISS_SHARD"], env["FAISS_SHARDS"]) == ("2", "4")
    assert shard2["spec"]["template"]["metadata"]["labels"][c.LABEL_COMPONENT] == SHARD_COMPONENT  # not asked as a replica
    fan = build_fanout_deployment(index="idx", namespace="ns", uid="u", spec=s, config=CONFIG)
    env = {e["name"]: e.get("value") for e in fan["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FAISS_SERVING_MODE"] == "fanout"
    assert env["FAISS_SHARD_URLS"].split(",")[3] == "http://idx-serving-shard-3.ns.svc:80"


def test_shards_are_bounded_and_need_a_concrete_type_and_no_tuning():
    with pytest.raises(ValidationError):
        spec(shards=65)
    with pytest.raises(ValidationError):
        spec(shards=0)
    with pytest.raises(ValidationError, match="not Auto"):
        spec(shards=2, indexType="Auto")
    with pytest.raises(ValidationError, match="tuning"):
        spec(shards=2, tuning={"targetRecall": 0.9})


def test_an_unsharded_spec_keeps_its_build_key_and_the_shard_count_changes_it():
    assert build_key(spec()) == build_key(spec(shards=1, shardMerge="Never"))
    assert build_key(spec(shards=2)) != build_key(spec())
    assert build_key(spec(shards=2)) != build_key(spec(shards=2, shardMerge="Never"))


def test_an_id_always_lands_in_the_same_slice_and_slices_are_balanced():
    ids = np.arange(100_000, dtype=np.int64) * 13 + 5
    slices = shard_of(ids, 4)
    assert (slices == shard_of(ids.copy(), 4)).all()
    assert (shard_of(ids[::-1], 4) == slices[::-1]).all()  # depends on the id, not on its position
    counts = np.bincount(slices, minlength=4)
    assert counts.min() > 0.97 * counts.mean()
    assert shard_of(np.array([42], dtype=np.int64), 7)[0] == shard_of(np.array([0, 42], dtype=np.int64), 7)[1]


def test_merge_topk_keeps_the_best_k_across_shards_like_index_shards():
    d, i = merge_topk([np.array([[0.1, 0.5]]), np.array([[0.2, 9.0]])], [np.array([[1, 2]]), np.array([[3, -1]])], 3,
                      larger_is_better=False)
    assert i.tolist() == [[1, 3, 2]] and d.tolist() == [[0.1, 0.2, 0.5]]
    _, i = merge_topk([np.array([[0.9, 0.1]]), np.array([[0.5, 0.4]])], [np.array([[1, 2]]), np.array([[3, 4]])], 2,
                      larger_is_better=True)
    assert i.tolist() == [[1, 3]]


def test_pods_of_the_old_topology_refusing_a_new_shard_layout_do_not_roll_it_back():
    from datetime import timedelta

    from faiss_operator.model import ReplicaReport

    from factories import NOW, serving, version

    base = spec()
    v1, v2 = version(base, NOW - timedelta(days=2)), version(base, NOW - timedelta(days=1))
    st = serving(base, at=NOW - timedelta(days=2)).model_copy(update={"current_version": v2, "shards": 4})
    layout = {v2: "layout: version has 4 shards; it is served by shard pods behind a fan-out"}
    replicas = tuple(ReplicaReport(pod=p, generation=5, stable=v1, refused=layout) for p in ("a", "b"))
    plan = decide(observation(sharded(), st, pointer=pointer_of(v2), replicas=replicas))
    assert plan.status.current_version == v2 and plan.status.shards == 4  # the shard Deployments take over
    broken = tuple(ReplicaReport(pod=p, generation=5, stable=v1, refused={v2: "download: shard-002.faiss missing"})
                   for p in ("a", "b"))
    plan = decide(observation(sharded(), st, pointer=pointer_of(v2), replicas=broken))
    assert plan.status.current_version == v1 and plan.status.rolled_back_version == v2


def pointer_of(stable: str):
    from factories import pointer

    return pointer(stable, generation=5)


def test_a_promoted_sharded_version_records_its_shard_count_for_the_serving_topology():
    from faiss_operator.promotion import serving_fields
    from indexops_api.manifest import ShardFile, Sharding

    from factories import manifest

    m = manifest("v", "k")
    assert serving_fields(observation(spec()), m)["shards"] == 1
    m = m.model_copy(update={"sharding": Sharding(shards=4, trained_state_sha256="0" * 64, merged=False,
                                                  shard_files=[ShardFile(shard=0, index_file="a", ids_file="b", vectors=1)])})
    assert serving_fields(observation(spec()), m)["shards"] == 4
    merged = m.model_copy(update={"sharding": m.sharding.model_copy(update={"merged": True})})
    assert serving_fields(observation(spec()), merged)["shards"] == 1


# -- stale shard objects after a re-shard (faiss_operator.shard_objects / shard_cleanup) -------------------------


def test_shrinking_from_four_shards_to_two_marks_shards_two_and_three_stale() -> None:
    from faiss_operator.shard_objects import stale_shards

    existing = [(f"x-serving-shard-{i}", str(i)) for i in range(4)]
    assert stale_shards(existing, 2) == ["x-serving-shard-2", "x-serving-shard-3"]


def test_going_back_to_one_index_marks_every_shard_object_stale_and_an_unlabelled_one_is_left_alone() -> None:
    from faiss_operator.shard_objects import stale_shards

    assert stale_shards([("a-shard-0", "0"), ("a-shard-1", "1"), ("foreign", None)], 1) == ["a-shard-0", "a-shard-1"]


def test_growing_the_shard_count_marks_nothing_stale() -> None:
    from faiss_operator.shard_objects import stale_shards

    assert stale_shards([(f"s-{i}", str(i)) for i in range(2)], 4) == []


@pytest.mark.parametrize(("desired", "ready", "reports", "serves"), [
    (2, 2, (("v2", None), ("v2", None)), True),
    (2, 1, (("v2", None), ("v2", None)), False),  # still rolling out
    (2, 2, (("v1", None), ("v2", None)), False),  # an old-topology pod still serves v1
    (2, 2, (("v2", None),), False),  # a replica did not answer
    (2, 2, (("v2", None), (None, "timeout")), False),
    (0, 0, (), False),  # scaled to zero: nothing proves the layout serves
])
def test_the_old_layout_is_pruned_only_when_every_serving_replica_is_ready_on_the_current_version(
    desired: int, ready: int, reports: tuple, serves: bool,
) -> None:
    from faiss_operator.shard_objects import new_layout_serves

    assert new_layout_serves(desired=desired, ready=ready, reports=reports, current="v2") is serves


def test_shard_objects_are_selected_by_index_and_shard_component() -> None:
    from faiss_operator.shard_objects import shard_selector

    assert shard_selector("demo") == "faiss.indexops.io/index=demo,app.kubernetes.io/component=serving-shard"
