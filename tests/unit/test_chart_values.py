"""Chart values: every value is documented and in the schema, and bad values fail readably.

Helm checks values.schema.json on install, upgrade, lint and template; cross-field rules
that a schema cannot say well (leader election with replicas, the merged FaissIndex specs)
are one ``fail`` in templates/deployment.yaml that lists every problem. Both are exercised
here through the real ``helm template`` (built by hack/build-tools.sh).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "faiss-operator"
VALUES = CHART / "values.yaml"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def template(helm: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm, "template", "t", str(CHART), "-n", "faiss-system", *args], capture_output=True, text=True, timeout=120)


# -- documentation: a ## @param for every value, and a schema entry for every @param ------


def _params() -> dict[str, str]:
    return dict(re.findall(r"(?m)^## @param (\S+) (.+)$", VALUES.read_text()))


def _paths(node, prefix: str = "", leaves_only: bool = False) -> list[str]:
    """Key paths of values.yaml; a list, a scalar or an empty map is a leaf."""
    out = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        container = isinstance(value, dict) and bool(value)
        if not (leaves_only and container):
            out.append(path)
        if container:
            out += _paths(value, f"{path}.", leaves_only)
    return out


def _covered(path: str, params: dict[str, str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:i]) in params for i in range(1, len(parts) + 1))


def _schema_node(path: str) -> dict | None:
    node = SCHEMA
    for part in path.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


def test_every_value_has_a_param_line_with_a_description():
    values = yaml.safe_load(VALUES.read_text())
    params = _params()
    undocumented = [p for p in _paths(values, leaves_only=True) if not _covered(p, params)]
    assert not undocumented, f"values without a '## @param' line: {undocumented}"
    assert all(len(text.split()) >= 3 for text in params.values())


def test_every_param_line_names_an_existing_value_that_the_schema_describes():
    values = yaml.safe_load(VALUES.read_text())
    paths = set(_paths(values))
    params = _params()
    assert not set(params) - paths, f"@param lines for values that do not exist: {set(params) - paths}"
    missing = [p for p in params if _schema_node(p) is None]
    assert not missing, f"values.schema.json lacks: {missing}"


def test_the_schema_is_draft_07_and_closed_wherever_the_chart_owns_the_keys():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["additionalProperties"] is False
    for path in ("image", "crd", "leaderElection", "serviceAccount", "builder.serviceAccount", "networkPolicy",
                 "networkPolicy.apiServer", "metrics", "metrics.serviceMonitor", "metrics.prometheusRule",
                 "metrics.grafanaDashboard", "tests", "podDisruptionBudget"):
        assert _schema_node(path)["additionalProperties"] is False, path


def test_the_faissindex_fields_the_schema_accepts_are_exactly_the_crds_spec_fields():
    crd = yaml.safe_load((ROOT / "crds" / "faiss.indexops.io_faissindexes.yaml").read_text())
    spec_fields = set(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])
    assert set(_schema_node("faissIndexDefaults")["propertyNames"]["enum"]) == spec_fields
    entry = SCHEMA["properties"]["faissIndexes"]["items"]
    assert set(entry["propertyNames"]["enum"]) == spec_fields | {"name", "namespace", "labels", "annotations"}


def test_the_monitoring_values_are_exactly_the_agreed_keys_and_defaults():
    metrics = yaml.safe_load(VALUES.read_text())["metrics"]
    assert metrics == {
        "serviceMonitor": {"enabled": False, "interval": "30s", "labels": {}},
        "prometheusRule": {"enabled": False, "labels": {}, "buildFailuresForAlert": 3, "staleAfterSeconds": 86400,
                           "minRecall": 0.9, "servingErrorRate": 0.01, "versionSkewMinutes": 15},
        "grafanaDashboard": {"enabled": False, "labels": {"grafana_dashboard": "1"}, "folder": ""},
    }


# -- bad values fail `helm template` with a message that names the value ------------------

SCHEMA_CASES = [
    ("zero replicas", ["--set", "replicaCount=0"], "at '/replicaCount': minimum: got 0, want 1"),
    ("replicas as text", ["--set-string", "replicaCount=two"], "at '/replicaCount': got string, want integer"),
    ("unknown log level", ["--set", "logLevel=verbose"], "at '/logLevel': value must be one of 'debug', 'info', 'warning', 'error'"),
    ("unknown pull policy", ["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy': value must be one of"),
    ("lease too short", ["--set", "leaderElection.leaseDurationSeconds=2"], "at '/leaderElection/leaseDurationSeconds': minimum: got 2, want 3"),
    ("misspelt top-level key", ["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
    ("misspelt nested key", ["--set", "leaderElection.enable=true"], "additional properties 'enable' not allowed"),
    ("flag as text", ["--set-string", "networkPolicy.enabled=yes"], "at '/networkPolicy/enabled': got string, want boolean"),
    ("recall above 1", ["--set-json", "metrics.prometheusRule.minRecall=1.5"], "at '/metrics/prometheusRule/minRecall': maximum: got 1.5, want 1"),
    ("fraction given as text", ["--set", "metrics.prometheusRule.servingErrorRate=0.05"], "at '/metrics/prometheusRule/servingErrorRate': got string, want number"),
    ("interval without unit", ["--set", "metrics.serviceMonitor.interval=30"], "at '/metrics/serviceMonitor/interval'"),
    ("address without prefix length", ["--set-json", 'networkPolicy.apiServer.cidrs=["10.0.0.1"]'],
     "at '/networkPolicy/apiServer/cidrs/0': '10.0.0.1' does not match pattern"),
    ("port out of range", ["--set-json", "networkPolicy.servingPorts=[70000]"], "at '/networkPolicy/servingPorts/0': maximum: got 70,000, want 65,535"),
    ("index without name", ["--set-json", 'faissIndexes=[{"horizon":"6h"}]'], "at '/faissIndexes/0': missing property 'name'"),
    ("index name not a DNS label", ["--set-json", 'faissIndexes=[{"name":"Analogs_6h"}]'], "at '/faissIndexes/0/name': 'Analogs_6h' does not match pattern"),
    ("misspelt spec field", ["--set-json", 'faissIndexes=[{"name":"a","horizn":"6h"}]'], "invalid propertyName 'horizn'"),
    ("bad horizon", ["--set-json", 'faissIndexes=[{"name":"a","horizon":"6 hours"}]'], "at '/faissIndexes/0/horizon': '6 hours' does not match pattern"),
    ("metadata in the defaults", ["--set", "faissIndexDefaults.name=x"], "invalid propertyName 'name'"),
]


@pytest.mark.parametrize("case, args, message", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_a_bad_value_is_rejected_by_the_schema_naming_the_value(helm, case, args, message):
    done = template(helm, *args)
    assert done.returncode != 0, f"{case}: rendered anyway"
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr, done.stderr


DEFAULTS = ["--set-json", 'faissIndexDefaults={"dimension":8,"source":{"s3":{"bucket":"b","key":"k"}},"storage":{"bucket":"i"}}']

FAIL_CASES = [
    ("several replicas without election", ["--set", "replicaCount=2", "--set", "leaderElection.enabled=false"],
     ["replicaCount=2 needs leaderElection.enabled=true"]),
    ("budget that blocks every drain", ["--set", "replicaCount=2", "--set", "podDisruptionBudget.minAvailable=2"],
     ["podDisruptionBudget.minAvailable=2 must be lower than replicaCount=2"]),
    ("chart-created account named default", ["--set", "serving.serviceAccount.create=true", "--set", "serving.serviceAccount.name=default"],
     ["serving.serviceAccount.name=default cannot be combined with serving.serviceAccount.create=true"]),
    ("index without required spec fields", ["--set-json", 'faissIndexes=[{"name":"a","horizon":"6h"}]'],
     ["faissIndexes[0] (a): spec.dimension is not set", "faissIndexes[0] (a): spec.source is not set", "faissIndexes[0] (a): spec.storage is not set"]),
    ("index listed twice", [*DEFAULTS, "--set-json", 'faissIndexes=[{"name":"a","horizon":"6h"},{"name":"a","horizon":"12h"}]'],
     ["faissIndexes[1]: faiss-system/a is listed twice"]),
]


@pytest.mark.parametrize("case, args, messages", FAIL_CASES, ids=[c[0] for c in FAIL_CASES])
def test_inconsistent_values_fail_with_one_message_listing_every_problem(helm, case, args, messages):
    done = template(helm, *args)
    assert done.returncode != 0, f"{case}: rendered anyway"
    assert "invalid values:" in done.stderr
    for message in messages:
        assert f"- {message}" in done.stderr, done.stderr


def test_two_problems_in_one_render_are_both_listed(helm):
    done = template(helm, "--set", "replicaCount=3", "--set", "leaderElection.enabled=false",
                    "--set-json", 'faissIndexes=[{"name":"a"}]')
    assert done.returncode != 0
    assert "replicaCount=3 needs leaderElection.enabled=true" in done.stderr
    assert "faissIndexes[0] (a): spec.horizon is not set" in done.stderr
