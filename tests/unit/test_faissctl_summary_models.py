"""``faissctl status`` reads spec and status with the shared models (issue 15 item 4), yet still shows what it cannot fully read."""

from __future__ import annotations

from faissctl_fakes import V3, index, serving_status

from faissctl.summary import read_status, spec_field, summarize
from indexops_api.spec_ops import Build, Sync
from indexops_api.spec import Validation


def test_defaults_shown_for_an_unset_spec_field_are_the_shared_models_defaults() -> None:
    obj = index(status=serving_status(), validation={"minRecall": 0.9}, sync={"policy": "Report"})
    report = summarize(obj)
    assert report["failures"]["limit"] == Build().max_consecutive_failures
    assert report["serving"]["k"] == Validation(min_recall=0.9).k
    assert (report["drift"]["interval"], report["drift"]["policy"]) == (Sync().interval, "Report")


def test_an_invalid_spec_field_is_shown_with_its_default_and_the_rest_as_written() -> None:
    obj = index(status=serving_status(), build={"maxConsecutiveFailures": "many"}, indexType="IVF")
    report = summarize(obj)
    assert report["failures"]["limit"] == Build().max_consecutive_failures
    assert report["specIndexType"] == "IVF" and spec_field(obj["spec"], "dimension") == 8


def test_a_status_field_from_a_newer_operator_is_left_out_and_everything_else_still_shows() -> None:
    raw = serving_status(lastBuild={"job": "j", "version": V3, "buildKey": "k", "result": "Paused"}, futureField={"x": 1})
    raw["conditions"][0]["reason"] = "SomeNewReason"
    st = read_status(raw)
    assert st.last_build is None and st.current_version == V3 and st.recall == 0.9935
    report = summarize(index(status=raw))
    assert report["lastBuild"] is None and report["serving"]["version"] == V3
    assert report["conditions"][0]["reason"] == "SomeNewReason" and report["ready"] == "True"
