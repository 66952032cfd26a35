"""Issue 15 item 4: every ``/v1/status`` (replica, shard pod, fan-out) is one typed model in indexops_api.

Serving builds each document from ``indexops_api.replica``; the fan-out parses its shards'
documents with the same ``ShardStatus`` model, and the operator parses a fan-out's document
with ``ReplicaStatus`` (``faiss_operator.replicas.parse_report``), so a field renamed on one
side fails here instead of reading as "nothing loaded".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from faiss_operator.replicas import parse_report
from index_serving.fanout import FanOut, refusals, usable
from index_serving.runtime import IndexRuntime
from index_serving.shards import ShardRuntime
from indexops_api.replica import FanoutStatus, ReplicaStatus, ShardStatus
from test_serving_runtime import MemoryStore

V1, V2 = "20261120T000000Z-aaaaaaaa", "20261121T000000Z-bbbbbbbb"
POINTER = "p/ns/idx/6h/pointer.json"


def shard_report(shard: int, loaded: list[str], failures: list[dict] | None = None) -> ShardStatus:
    return ShardStatus.model_validate({"ready": bool(loaded), "shard": shard, "shards": 2, "loaded": loaded,
                                       "failures": failures or []})


def test_a_replica_status_document_parses_with_typed_versions_queue_and_memory(tmp_path: Path) -> None:
    runtime = IndexRuntime(MemoryStore(), POINTER, tmp_path, poll_seconds=60.0)  # type: ignore[arg-type]
    report = ReplicaStatus.model_validate(runtime.status())
    assert report.shadow_queue is not None and report.shadow_queue.capacity > 0 and report.versions == []
    assert ReplicaStatus.model_validate(report.to_json_dict()) == report


def test_a_shard_pods_status_is_a_shard_status_and_still_a_replica_status(tmp_path: Path) -> None:
    runtime = ShardRuntime(MemoryStore(), POINTER, tmp_path, poll_seconds=60.0, shard=1, shards=2)  # type: ignore[arg-type]
    body = runtime.status()
    shard = ShardStatus.model_validate(body)
    assert (shard.shard, shard.shards, shard.loaded, shard.previous_version) == (1, 2, [], None)
    assert ReplicaStatus.model_validate(body).ready is False


def test_the_fan_out_uses_a_version_only_when_every_shard_reports_it_loaded() -> None:
    both = [shard_report(0, [V1, V2]), shard_report(1, [V1])]
    assert usable(V1, both) and not usable(V2, both)
    assert not usable(V1, [shard_report(0, [V1]), None]) and not usable(V1, [])


def test_the_fan_out_reports_a_shards_refusal_with_the_shard_named() -> None:
    refused = shard_report(1, [V1], failures=[{"version": V2, "reason": "download", "message": "checksum mismatch"}])
    assert refusals([shard_report(0, [V1]), refused]) == {V2: ("download", "shard 1: checksum mismatch")}


def test_a_shard_answer_without_its_shard_fields_is_not_a_shard_status() -> None:
    with pytest.raises(ValidationError, match="shard"):
        ShardStatus.model_validate({"ready": True, "loaded": [V1]})


def test_the_fan_outs_status_is_a_fanout_status_the_operator_reads_as_a_replica_report() -> None:
    fan = FanOut(MemoryStore(), POINTER, "p/ns/idx/6h/versions", ["http://s0:8080", "http://s1:8080"])  # type: ignore[arg-type]
    body = fan.status()
    parsed = FanoutStatus.model_validate(body)
    assert parsed.mode == "fanout" and [s.url for s in parsed.shards] == ["http://s0:8080", "http://s1:8080"]
    assert all(s.loaded is None and s.error is None for s in parsed.shards)
    report = parse_report("fanout-0", body)
    assert report.error is None and report.stable is None and report.versions == {}
