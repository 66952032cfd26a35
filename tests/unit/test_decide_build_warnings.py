"""Manifest warnings reach status and Events; the recall lower bound is copied next to the recall."""

from __future__ import annotations

from factories import job, manifest, observation, running, spec

from faiss_operator.decide import decide
from indexops_api.status import EventReason, FaissIndexStatus


def test_a_successful_build_with_manifest_warnings_records_them_in_last_build_and_emits_build_warning_events():
    s = spec()
    j = job(s, "Succeeded")
    warned = manifest(j.version, j.build_key).model_copy(update={"warnings": [
        "nlist=1024 is too large for 10000 training vectors: ...; use nlist <= 256", "FAISS: WARNING something"]})
    plan = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=j, manifest=warned))

    assert plan.status.last_build.warnings == warned.warnings
    events = [e for e in plan.events if e.reason == EventReason.BUILD_WARNING]
    assert [e.type for e in events] == ["Warning", "Warning"]
    assert events[0].message.startswith(f"version {j.version}: nlist=1024 is too large")
    assert plan.status.current_version == j.version  # a warning is not a gate


def test_a_build_without_warnings_emits_no_build_warning_and_the_serving_lower_bound_is_in_status():
    s = spec()
    j = job(s, "Succeeded")
    m = manifest(j.version, j.build_key)
    m = m.model_copy(update={"measurements": m.measurements.model_copy(update={"recall_lower_bound": 0.9612345})})
    plan = decide(observation(s, FaissIndexStatus(last_build=running(s)), job=j, manifest=m))

    assert EventReason.BUILD_WARNING not in [e.reason for e in plan.events]
    assert plan.status.last_build.warnings == []
    assert plan.status.recall == 0.97 and plan.status.recall_lower_bound == 0.961234
