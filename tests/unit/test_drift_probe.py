"""When the source is probed for drift is a pure decision (``drift.probe_due``), not observe's I/O."""

from __future__ import annotations

from datetime import timedelta

from faiss_operator.conditions import timestamp
from faiss_operator.drift import probe_due

from factories import NOW, job, running, serving, spec

SYNCED = spec(sync={"interval": "10m"})


def test_a_serving_index_is_probed_once_its_interval_has_passed_and_not_before():
    assert probe_due(SYNCED, serving(SYNCED, last_sync_time=timestamp(NOW - timedelta(minutes=10))), (), NOW)
    assert not probe_due(SYNCED, serving(SYNCED, last_sync_time=timestamp(NOW - timedelta(minutes=9))), (), NOW)


def test_an_index_never_probed_is_probed_at_once_but_only_when_a_version_serves_and_sync_is_set():
    assert probe_due(SYNCED, serving(SYNCED), (), NOW)
    assert not probe_due(SYNCED, serving(SYNCED).updated(current_version=None), (), NOW)
    assert not probe_due(spec(), serving(spec()), (), NOW)


def test_no_probe_on_the_pass_where_the_tracked_build_ended_since_it_would_compare_with_the_old_version():
    st = serving(SYNCED, last_build=running(SYNCED, number=2), build_count=2)
    assert not probe_due(SYNCED, st, (job(SYNCED, "Succeeded", number=2),), NOW)
    assert not probe_due(SYNCED, st, (), NOW)  # the Job vanished: it ended too
    assert probe_due(SYNCED, st, (job(SYNCED, "Running", number=2),), NOW)  # still building: the serving version is the one to compare
