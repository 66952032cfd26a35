"""Which stored versions are pruned under ``keepVersions``: a table of listing + guards -> pruned ids."""

from __future__ import annotations

import pytest

from faiss_operator.retention import versions_to_prune

from factories import stored

V1, V2, V3, V4, V5 = (f"2026110{d}T000000Z-aaaaaaaa" for d in range(1, 6))  # oldest first


@pytest.mark.parametrize(
    ("listing", "keep", "protected", "pruned"),
    [
        pytest.param(stored(V1, V2), 5, [], [], id="fewer versions than keepVersions prunes nothing"),
        pytest.param(stored(V1, V2, V3, V4, V5), 2, [], [V1, V2, V3], id="the newest keepVersions complete versions are kept"),
        pytest.param(stored(V5, V1, V3, V2, V4), 2, [], [V1, V2, V3], id="newest is by version id, not listing order"),
        pytest.param(stored(V1, V2, V3, V4, V5), 2, [V1], [V2, V3], id="a protected old version is kept beyond keepVersions"),
        pytest.param(stored(V1, V2, V3, V4, V5), 1, [V1, V2, None], [V3, V4], id="several guards are all kept and None is ignored"),
        pytest.param(stored(V1, V2, incomplete=(V3,)), 5, [], [V3], id="an incomplete version is pruned even under keepVersions"),
        pytest.param(stored(V1, V2, incomplete=(V3,)), 5, [V3], [], id="an incomplete version owned by a running build is kept"),
        pytest.param(stored(V4, V5, incomplete=(V1, V2, V3)), 2, [], [V1, V2, V3],
                     id="incomplete versions do not count toward keepVersions"),
        pytest.param(stored(V1, incomplete=(V5,)), 1, [], [V5], id="a newer incomplete version does not displace a complete one"),
        pytest.param(stored(V1, V2), 1, ["20261231T000000Z-bbbbbbbb"], [V1], id="a guard that is not stored changes nothing"),
        pytest.param({}, 1, [V1], [], id="an empty listing prunes nothing"),
    ],
)
def test_versions_beyond_keep_versions_are_pruned_except_guarded_ones(listing, keep, protected, pruned):
    assert versions_to_prune(listing, keep, protected) == pruned
