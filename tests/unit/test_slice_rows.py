"""Which source rows each slice of a sharded build reads: pure rules, no I/O."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from index_builder.sharded import plan_slices
from index_builder.source_postgres import data_query, slice_stats_query
from index_builder.source_slice import overlaps
from indexops_api.shards import row_ranges
from indexops_api.spec import PostgresSource


@pytest.mark.parametrize(("n", "shards"), [(10, 3), (1_000_000, 4), (7, 7), (5, 8), (0, 2), (1_000_003, 64)])
def test_row_ranges_are_contiguous_disjoint_complete_and_differ_in_size_by_at_most_one(n: int, shards: int) -> None:
    ranges = row_ranges(n, shards)
    assert len(ranges) == shards
    assert ranges[0][0] == 0
    for (first, rows), (after, _) in zip(ranges, ranges[1:]):
        assert first + rows == after
    assert sum(rows for _, rows in ranges) == n
    assert max(r for _, r in ranges) - min(r for _, r in ranges) <= 1


def test_row_ranges_refuse_a_shard_count_below_one() -> None:
    with pytest.raises(ValueError):
        row_ranges(10, 0)


def test_a_slice_overlapping_three_objects_reads_the_tail_the_middle_and_the_head() -> None:
    assert overlaps([5, 7, 4], 3, 10) == [(0, 3, 2), (1, 0, 7), (2, 0, 1)]


def test_a_slice_inside_one_part_reads_only_that_part() -> None:
    assert overlaps([500, 500, 500], 600, 200) == [(1, 100, 200)]


def test_an_empty_slice_reads_nothing() -> None:
    assert overlaps([5, 5], 4, 0) == []


def test_the_plan_names_each_slices_first_id_and_the_next_slices_first_id_as_its_end() -> None:
    ids = np.arange(10, dtype=np.int64) * 10
    plan = plan_slices(ids, 3)
    assert [(p["firstRow"], p["rows"], p["firstId"], p["endId"]) for p in plan] == [
        (0, 3, 0, 30), (3, 3, 30, 60), (6, 4, 60, None)]


def _pg(**fields: Any) -> PostgresSource:
    return PostgresSource.model_validate({"dsnSecret": {"name": "pg"}, **fields})


def test_a_postgres_slice_selects_its_id_range_around_the_same_select_ordered_by_id() -> None:
    query = data_query(_pg(table="items", idColumn="item_id"), (30, 60)).as_string(None)
    assert query == ('SELECT * FROM (SELECT "item_id", "embedding" FROM "items") AS sliced '
                     'WHERE "sliced"."item_id" >= 30 AND "sliced"."item_id" < 60 ORDER BY "sliced"."item_id"')


def test_the_last_postgres_slice_has_no_upper_bound_and_is_counted_like_it_is_read() -> None:
    pg = _pg(query="SELECT a AS id, b AS embedding FROM t")
    assert data_query(pg, (60, None)).as_string(None).endswith('WHERE "sliced"."id" >= 60 ORDER BY "sliced"."id"')
    assert slice_stats_query(pg, (60, None)).as_string(None) == (
        'SELECT count(*), NULL FROM (SELECT "src"."id", "src"."embedding" FROM (SELECT a AS id, b AS embedding FROM t)'
        ' AS src) AS sliced WHERE "sliced"."id" >= 60')


# -- autoShards: the shard count from the serving memory budget ---------------------------------------------------

GIB = 2**30


def test_an_index_that_fits_a_serving_pod_twice_stays_one_shard() -> None:
    from indexops_api.shards import auto_shard_count

    count, reason = auto_shard_count(1 * GIB, 1_000_000, 4 * GIB)
    assert count == 1
    assert "1000000 vectors" in reason and "4.00 GiB" in reason and "1 shard(s)" in reason


def test_ten_gib_on_eight_gib_pods_needs_three_shards_for_two_versions_beside_the_fixed_part() -> None:
    from indexops_api.shards import auto_shard_count

    count, _ = auto_shard_count(10 * GIB, 30_000_000, 8 * GIB)
    assert count == 3  # 2 x 10 GiB / 3 = 6.67 GiB <= 8 GiB - 160 MiB; 2 shards (10 GiB) would not fit
    assert 2 * 10 * GIB / count + 160 * 2**20 <= 8 * GIB < 2 * 10 * GIB / (count - 1) + 160 * 2**20


def test_an_index_too_big_even_for_64_shards_gets_64_and_the_reason_says_it_does_not_fit() -> None:
    from indexops_api.shards import auto_shard_count

    count, reason = auto_shard_count(1024 * GIB, 10**9, 4 * GIB)
    assert count == 64 and "do not fit" in reason


def test_a_serving_limit_below_the_fixed_part_gets_the_maximum_and_says_why() -> None:
    from indexops_api.shards import auto_shard_count

    count, reason = auto_shard_count(GIB, 10, 100 * 2**20)
    assert count == 64 and "no room" in reason


def _spec(**fields: Any) -> Any:
    from indexops_api.spec import FaissIndexSpec

    body = {"horizon": "6h", "dimension": 8, "indexType": "HNSW", "source": {"file": {"path": "/v.npy"}},
            "storage": {"bucket": "artifacts"}, **fields}
    return FaissIndexSpec.model_validate(body)


def test_auto_shards_and_a_fixed_shard_count_are_refused_together() -> None:
    with pytest.raises(ValueError, match="set shards or autoShards, not both"):
        _spec(shards=4, autoShards=True)


def test_auto_shards_needs_a_concrete_type_like_any_sharded_spec() -> None:
    with pytest.raises(ValueError, match="concrete indexType"):
        _spec(indexType="Auto", autoShards=True)
    assert _spec(autoShards=True).sharded and not _spec().sharded


def test_auto_shards_is_part_of_the_build_key_with_the_serving_memory_limit_and_unsharded_keys_are_unchanged() -> None:
    from indexops_api.layout import build_key

    plain, auto = build_key(_spec()), build_key(_spec(autoShards=True))
    assert plain == build_key(_spec(autoShards=False)) and plain != auto
    bigger = _spec(autoShards=True, serving={"resources": {"limits": {"memory": "64Gi"}}})
    assert build_key(bigger) != auto


def test_the_operator_takes_the_planned_count_only_when_it_is_a_valid_shard_count() -> None:
    from faiss_operator.shard_plan import PlanUnreadable, shards_of

    assert shards_of({"shards": 3}) == 3
    for bad in ({}, {"shards": 0}, {"shards": 65}, {"shards": "4"}, {"shards": True}):
        with pytest.raises(PlanUnreadable):
            shards_of(bad)


def test_a_windowed_postgres_slice_starts_its_window_at_the_train_stages_snapshot_time() -> None:
    from datetime import datetime, timezone

    pg = _pg(table="items", window={"column": "created_at", "last": "48h"})
    anchor = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    query = data_query(pg, (0, 10), anchor).as_string(None)
    assert "'2026-12-05 12:00:00+00:00'::timestamptz" in query and "now()" not in query
    assert "now()" not in slice_stats_query(pg, (0, 10), anchor).as_string(None)
