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
