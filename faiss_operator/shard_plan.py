"""The shard count an ``autoShards`` build's train stage chose, read once per build.

With ``spec.autoShards`` the count is decided where the vector count is known: the train
stage (``index_builder.sharded.choose_shards``) writes it into ``shard-plan.json`` in the
version's prefix. The operator reads that one object when it creates the slice Job (an
Indexed Job needs its ``completions``), i.e. once per build, never on idle passes.
"""

from __future__ import annotations

from faiss_operator.artifacts import store_for
from faiss_operator.config import OperatorConfig
from faiss_operator.model import Observation, StageToCreate
from indexops_api.layout import version_prefix
from indexops_api.shards import MAX_AUTO_SHARDS, PLAN_FILE
from indexops_api.spec import FaissIndexSpec


class PlanUnreadable(RuntimeError):
    """The train stage succeeded but its plan cannot be read or names no valid count."""


def shards_of(plan: dict) -> int:
    """Pure: the planned count, checked (1..64)."""
    count = plan.get("shards")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_AUTO_SHARDS:
        raise PlanUnreadable(f"{PLAN_FILE} names no shard count between 1 and {MAX_AUTO_SHARDS} (got {count!r})")
    return count


def planned_shards(spec: FaissIndexSpec, obs: Observation, stage: StageToCreate, config: OperatorConfig) -> int:
    store = store_for(spec, obs.namespace, obs.name, config)
    key = f"{version_prefix(spec.storage.prefix, obs.namespace, obs.name, spec.horizon, stage.version)}/{PLAN_FILE}"
    plan, _ = store.get_json(key)
    if plan.get("buildKey") != stage.build_key:
        raise PlanUnreadable(f"{key} belongs to another build")
    return shards_of(plan)
