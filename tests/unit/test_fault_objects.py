"""The builder Job and the spec as issue 17 needs them: disruptions, readable exits, no overlap, no junk zones."""

from __future__ import annotations

import zoneinfo

import pytest
from pydantic import ValidationError

from indexops_api.layout import build_key, job_name, version_id
from faiss_operator.config import OperatorConfig
from faiss_operator.model import JobToCreate
from faiss_operator.objects import build_job

from factories import NOW, spec


def _job(suspended: bool = False) -> dict:
    s = spec()
    key = build_key(s)
    create = JobToCreate(job_name("idx", key), version_id(NOW, key), key, 1, "Spec", suspended=suspended)
    return build_job(index="idx", namespace="ns", uid="u1", spec=s, job=create, config=OperatorConfig())


def test_an_evicted_builder_pod_is_replaced_without_counting_toward_the_backoff_limit():
    job_spec = _job()["spec"]
    assert job_spec["podFailurePolicy"] == {
        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}],
    }
    assert job_spec["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy requires it


def test_the_builder_message_is_only_what_it_wrote_never_a_log_line():
    container = _job()["spec"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePolicy"] == "File"


@pytest.mark.parametrize("suspended", [False, True])
def test_a_build_waiting_for_a_replaced_one_is_created_suspended(suspended):
    assert _job(suspended)["spec"]["suspend"] is suspended


@pytest.mark.parametrize("zone", ["NaN", "nan", "null", "1", "", " UTC", "Europe/../etc", "europe/berlin"])
def test_junk_time_zones_are_refused_by_the_schema_pattern(zone):
    with pytest.raises(ValidationError, match="timeZone|time_zone|pattern"):
        spec(schedule="0 * * * *", timeZone=zone)


@pytest.mark.parametrize("zone", ["None", "Infinity", "Mars/Olympus_Mons"])
def test_well_shaped_but_unknown_zones_are_refused_by_name(zone):
    with pytest.raises(ValidationError, match="not a known IANA time zone"):
        spec(schedule="0 * * * *", timeZone=zone)


def test_every_iana_zone_passes_the_schema_pattern():
    refused = []
    for zone in sorted(zoneinfo.available_timezones() - {"localtime", "Factory"}):
        try:
            spec(schedule="0 * * * *", timeZone=zone)
        except ValidationError:
            refused.append(zone)
    assert refused == []
