"""Status (and every API model) is changed through ``ApiModel.updated``, which validates.

``model_copy(update=...)`` stores whatever it is given: a misspelt key vanishes and a
wrong type lands in status. ``updated`` rejects both, and product code has no unvalidated
``model_copy(update=...)`` left.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from indexops_api.status import BuildResult, FaissIndexStatus, LastBuild

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("faiss_operator", "faissctl", "index_builder", "index_serving", "indexops_api", "indexops_store")
# Files allowed to call model_copy(update=...) and why. Empty: nothing needs it.
ALLOWED: dict[str, str] = {}


def test_an_update_with_a_misspelt_field_name_fails_instead_of_vanishing():
    with pytest.raises(KeyError, match="consecutive_failure"):
        FaissIndexStatus().updated(consecutive_failure=1)


def test_an_update_with_a_camel_case_wire_name_fails_because_updates_use_python_names():
    with pytest.raises(KeyError, match="rolloutPercent"):
        FaissIndexStatus().updated(rolloutPercent=50)


def test_an_update_with_a_value_of_the_wrong_type_fails_validation():
    with pytest.raises(ValidationError):
        FaissIndexStatus().updated(consecutive_failures="many")
    with pytest.raises(ValidationError):
        FaissIndexStatus().updated(last_build="job-1")


def test_an_update_with_valid_fields_returns_a_new_validated_object_and_keeps_the_rest():
    last = LastBuild(job="j", version="v1", build_key="k", result=BuildResult.RUNNING, number=1)
    before = FaissIndexStatus(current_version="v0", last_build=last)
    after = before.updated(consecutive_failures=2, last_build=last.updated(result=BuildResult.SUCCEEDED))
    assert (after.current_version, after.consecutive_failures, after.last_build.result) == ("v0", 2, BuildResult.SUCCEEDED)
    assert before.consecutive_failures == 0 and before.last_build.result == BuildResult.RUNNING


def test_product_code_has_no_unvalidated_model_copy_with_update():
    pattern = re.compile(r"model_copy\(\s*update\s*=")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in ALLOWED
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith(("#", '"', "Unlike"))
    ]
    assert offenders == [], "use ApiModel.updated(...), which validates: " + ", ".join(offenders)
