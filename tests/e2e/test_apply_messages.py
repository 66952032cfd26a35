"""What a person reads when `kubectl apply` refuses a bad enum (issue: what people read, item 8).

The API server adds a second line, with a `<nil>` field path, whenever it skips the CRD's CEL
rules because of a blocking schema error. It cannot be removed by a schema change that keeps
the enums (docs/api-reference.md explains why), so the test pins what the user gets: the
first line names the field, the bad value and the allowed ones, and the only other line is
that documented upstream sentence.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hack.localstack import Cluster

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api-reference.md"
UPSTREAM = "some validation rules were not checked because the object was invalid"


def test_a_bad_enum_names_the_field_and_the_allowed_values_and_the_extra_line_is_the_documented_one(stack_env) -> None:
    cluster = Cluster.from_stack()
    cluster.install_operator()
    doc = yaml.safe_load(cluster.sample_manifest(**{"spec.metric": "Euclid"}))
    proc = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert proc.returncode != 0
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    first = next(line for line in lines if "spec.metric" in line)
    assert 'Unsupported value: "Euclid"' in first and '"L2"' in first and '"InnerProduct"' in first and '"Cosine"' in first
    others = [line for line in lines if "spec.metric" not in line and not line.startswith("The FaissIndex")]
    assert all(UPSTREAM in line for line in others), others
    assert UPSTREAM in DOCS.read_text().replace("\n", " "), "the extra line is explained in the API reference"
