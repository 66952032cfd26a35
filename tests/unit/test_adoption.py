"""Adoption: a FaissIndex re-applied without status onto storage that holds its versions.

Tables of (what storage holds, spec) -> (what serves, whether a build starts), through the
whole ``decide``; plus the bounded choice of manifests to read.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from factories import NOW, manifest, observation, pointer, spec, utc, version
from indexops_api.layout import build_key
from indexops_api.status import BuildResult, FaissIndexStatus
from faiss_operator.adoption import status_lost
from faiss_operator.adoption_reads import MAX_MANIFESTS, versions_to_read
from faiss_operator.decide import decide
from faiss_operator.model import JobObservation, StoredVersion

S = spec()
CANARY = spec(**{"rollout.percent": 20})
OTHER = spec(**{"parameters.efSearch": 32, "parameters.m": 16})  # another build key
OLD, NEW = utc(2026, 11, 1), utc(2026, 11, 10)
V_OLD, V_NEW = version(S, OLD), version(S, NEW)
V_OTHER = version(OTHER, OLD)


FILES = frozenset({"manifest.json", "index.faiss", "ids.npy"})


def stored(*complete: str, incomplete: tuple[str, ...] = ()) -> dict[str, StoredVersion]:
    """A storage listing: published versions with every file, and ``incomplete`` ones without a manifest."""
    listing = {v: StoredVersion(complete=True, files=FILES) for v in complete}
    listing.update({v: StoredVersion(complete=False, files=frozenset({"index.faiss"})) for v in incomplete})
    return listing


def adoption_pass(s, listing, manifests, ptr=None, **fields):
    """The first pass after a re-apply: empty status, what storage holds."""
    return decide(observation(s, FaissIndexStatus(), versions=listing, pointer=ptr, adoptable=manifests, **fields))


def m(v, s=S, **kw):
    return manifest(v, build_key(s), **kw)


CASES = [
    # (case, spec, listing, manifests, pointer) -> (current, candidate, starts a build)
    ("the pointer's version of the current spec serves and nothing builds",
     S, stored(V_OLD), {V_OLD: m(V_OLD)}, pointer(V_OLD), (V_OLD, None, False)),
    ("a changed spec keeps the old version serving while its build starts",
     S, stored(V_OTHER), {V_OTHER: m(V_OTHER, OTHER)}, pointer(V_OTHER), (V_OTHER, None, True)),
    ("a canary in progress is restored as the candidate, nothing builds",
     CANARY, stored(V_OLD, V_NEW), {V_OLD: m(V_OLD), V_NEW: m(V_NEW)}, pointer(V_OLD, 3, V_NEW, 20), (V_OLD, V_NEW, False)),
    ("a pointer whose version lost its manifest serves nothing and builds",
     S, stored(incomplete=(V_OLD,)), {}, pointer(V_OLD), (None, None, True)),
    ("a version of another dimension never serves; the spec's build starts",
     spec(dimension=16), stored(V_OLD), {V_OLD: m(V_OLD)}, pointer(V_OLD), (None, None, True)),
    ("no pointer but a published build of the current spec: validated and promoted, not rebuilt",
     S, stored(V_OLD), {V_OLD: m(V_OLD)}, None, (None, None, False)),
    ("nothing stored: a new index builds as usual",
     S, {}, {}, None, (None, None, True)),
]


@pytest.mark.parametrize("case,s,listing,manifests,ptr,expected", CASES, ids=[c[0] for c in CASES])
def test_adoption_restores_what_serves_and_builds_only_when_no_version_exists_for_the_build_key(case, s, listing, manifests, ptr, expected):
    plan = adoption_pass(s, listing, manifests, ptr)
    current, candidate, builds = expected
    assert plan.status.current_version == current
    assert plan.status.candidate_version == candidate
    assert (plan.create_job is not None) == builds
    assert plan.write_pointer is None or ptr is None  # an adopted pointer is never rewritten


def test_an_adopted_version_carries_its_measurements_and_serving_time_into_status():
    plan = adoption_pass(S, stored(V_OLD), {V_OLD: m(V_OLD, recall=0.955, vectors=1234)}, pointer(V_OLD, 7))
    st = plan.status
    assert (st.current_version, st.last_good_version, st.recall, st.vectors, st.serving_since) == (V_OLD, V_OLD, 0.955, 1234, "t")
    assert st.promoted_version == V_OLD
    assert st.last_build.version == V_OLD and st.last_build.result == BuildResult.SUCCEEDED and st.last_build.build_key == build_key(S)
    assert plan.ensure_serving and plan.create_job is None
    assert [e.reason.value for e in plan.events].count("Adopted") == 1
    assert "pointer generation 7" in next(e.message for e in plan.events if e.reason.value == "Adopted")


def test_a_published_version_missing_a_listed_file_is_not_adopted():
    listing = {V_OLD: StoredVersion(complete=True, files=frozenset({"manifest.json", "ids.npy"}))}  # index.faiss gone
    plan = adoption_pass(S, listing, {V_OLD: m(V_OLD)}, pointer(V_OLD))
    assert plan.status.current_version is None and plan.create_job is not None


def test_a_published_build_of_a_spec_reverted_in_git_is_validated_and_promoted_not_rebuilt():
    listing = stored(V_OTHER, V_NEW)
    plan = adoption_pass(S, listing, {V_OTHER: m(V_OTHER, OTHER), V_NEW: m(V_NEW)}, pointer(V_OTHER))
    assert plan.status.current_version == V_OTHER and plan.create_job is None
    assert plan.status.last_build.version == V_NEW and plan.status.last_build.result == BuildResult.SUCCEEDED
    nxt = decide(observation(S, plan.status, versions=listing, pointer=pointer(V_OTHER), manifest=m(V_NEW),
                             now=NOW + timedelta(seconds=5)))
    assert nxt.status.current_version == V_NEW and nxt.create_job is None


def test_a_newer_build_of_the_serving_spec_that_the_pointer_never_took_is_not_promoted_again():
    listing = stored(V_OLD, V_NEW)
    plan = adoption_pass(S, listing, {V_OLD: m(V_OLD), V_NEW: m(V_NEW)}, pointer(V_OLD))
    assert plan.status.current_version == V_OLD and plan.status.last_build.version == V_OLD and plan.create_job is None
    nxt = decide(observation(S, plan.status, versions=listing, pointer=pointer(V_OLD), now=NOW + timedelta(seconds=5)))
    assert nxt.status.current_version == V_OLD and nxt.create_job is None and nxt.write_pointer is None


def test_a_running_builder_job_of_the_spec_is_tracked_instead_of_starting_another():
    key = build_key(S)
    running = JobObservation(name=f"idx-build-{key[:8]}-4", version=V_NEW, build_key=key, state="Running", number=4)
    plan = adoption_pass(S, stored(V_OTHER), {V_OTHER: m(V_OTHER, OTHER)}, pointer(V_OTHER), jobs=(running,))
    assert plan.status.current_version == V_OTHER and plan.create_job is None
    assert plan.status.last_build.job == running.name and plan.status.last_build.result == BuildResult.RUNNING
    assert plan.status.build_count == 4


def test_request_annotations_kept_in_git_are_not_acted_on_again_after_adoption():
    plan = adoption_pass(CANARY, stored(V_OLD, V_NEW), {V_OLD: m(V_OLD), V_NEW: m(V_NEW)}, pointer(V_OLD, 3, V_NEW, 20),
                         rebuild_request="2026-11-01T00:00:00Z", abort_request="2026-11-02T00:00:00Z")
    assert plan.create_job is None and plan.status.candidate_version == V_NEW
    assert plan.status.last_handled_rebuild == "2026-11-01T00:00:00Z"


def test_adoption_runs_only_on_an_empty_status():
    serving_status = FaissIndexStatus(current_version=V_OLD, build_count=1)
    assert status_lost(FaissIndexStatus()) and not status_lost(serving_status)
    obs = observation(S, serving_status, versions=stored(V_OLD, V_NEW), pointer=pointer(V_NEW), adoptable={V_NEW: m(V_NEW)})
    assert decide(obs).status.current_version == V_OLD


def test_the_manifests_read_for_adoption_are_bounded_and_skip_versions_without_a_manifest():
    key = build_key(S)
    many = {version(S, utc(2026, 10, d)): StoredVersion(complete=True) for d in range(1, 29)}
    many[V_OTHER] = StoredVersion(complete=True)
    many["20261130T000000Z-" + key[:8]] = StoredVersion(complete=False)
    wanted = versions_to_read(pointer(V_OTHER), many, key)
    assert len(wanted) <= MAX_MANIFESTS and wanted[0] == V_OTHER
    assert wanted[1:] == sorted((v for v in many if v.endswith(key[:8]) and many[v].complete), reverse=True)[:2]
    assert versions_to_read(None, {}, key) == []


def test_an_empty_status_with_storage_unreachable_waits_instead_of_building_what_may_be_published():
    plan = decide(observation(S, FaissIndexStatus(), storage_error="endpoint down", adoptable=None))
    assert plan.status.current_version is None and plan.create_job is None and plan.write_pointer is None
    answered = decide(observation(S, FaissIndexStatus(), versions={}, adoptable={}))
    assert answered.create_job is not None  # storage answered and holds nothing: build
