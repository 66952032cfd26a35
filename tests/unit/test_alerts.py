"""The chart's alerting rules: promtool checks and unit-tests them, and the chart ships them.

charts/faiss-operator/files/alerts.yaml is a plain Prometheus rules file; promtool (built
from hack/tools/promtool/go.mod through hack/build-tools.sh, as CI does with `make
tools`) checks it and runs files/alerts_test.yaml against it. templates/prometheusrule.yaml
reads the same file and only replaces the numbers marked ``# threshold: <key>`` with
``metrics.prometheusRule.<key>``: rendered with the default values it must hold exactly the
file's rules, and rendered with other values exactly those numbers must differ.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from faiss_operator import metrics
from indexops_api.status import FaissIndexStatus, Reason

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "faiss-operator"
RULES = CHART / "files" / "alerts.yaml"
RULE_TESTS = CHART / "files" / "alerts_test.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"

THRESHOLD = re.compile(r"[0-9][0-9.eE+-]*(m?)([ \t]*# threshold: ([A-Za-z]+))\b")
OTHER_VALUES = {  # every threshold changed; floats through --set-json (--set makes them strings)
    "buildFailuresForAlert": 5,
    "staleAfterSeconds": 172800,
    "minRecall": 0.95,
    "servingErrorRate": 0.005,
    "versionSkewMinutes": 30,
}


def rules_file() -> dict:
    return yaml.safe_load(RULES.read_text())


def alerts(groups: list[dict]) -> dict[str, dict]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def rendered_groups(helm: Path, *args: str) -> list[dict]:
    done = subprocess.run(
        [str(helm), "template", "t", str(CHART), "-n", "faiss-system", "--show-only", "templates/prometheusrule.yaml",
         "--set", "metrics.prometheusRule.enabled=true", *args],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (doc,) = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    return doc["spec"]["groups"]


def with_thresholds(values: dict) -> list[dict]:
    """The rules file with its marked numbers replaced, as the template is meant to."""
    def number(match: re.Match) -> str:
        value = values[match.group(3)]
        return f"{value:g}{match.group(1)}{match.group(2)}" if isinstance(value, float) else f"{value}{match.group(1)}{match.group(2)}"
    return yaml.safe_load(THRESHOLD.sub(number, RULES.read_text()))["groups"]


def promtool_run(promtool: Path, *args: str, cwd: Path = RULES.parent) -> subprocess.CompletedProcess:
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


# -- promtool ---------------------------------------------------------------------------


def test_promtool_accepts_the_rules_file(promtool):
    done = promtool_run(promtool, "check", "rules", "--lint=all", "--lint-fatal", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts(rules_file()['groups']))} rules found" in done.stdout + done.stderr


def test_promtool_unit_tests_pass(promtool):
    done = promtool_run(promtool, "test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_both_firing_and_not_firing():
    firing, silent = set(), set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = set(alerts(rules_file()["groups"]))
    assert firing == names, f"never tested firing: {names - firing}; unknown: {firing - names}"
    assert silent == names, f"never tested silent: {names - silent}; unknown: {silent - names}"


# -- what every alert carries ------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-") for title in re.findall(r"(?m)^#+ (.+)$", markdown)}


@pytest.mark.parametrize("name", sorted(alerts(rules_file()["groups"])))
def test_every_alert_has_a_severity_a_summary_and_a_runbook_section(name):
    rule = alerts(rules_file()["groups"])[name]
    assert rule["labels"]["severity"] in ("warning", "critical")
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    anchor = f"docs/runbook.md#{name.lower()}"
    assert annotations["runbook_url"] == anchor and annotations["description"].endswith(f"Runbook: {anchor}")
    assert name.lower() in _anchors(RUNBOOK.read_text()), f"docs/runbook.md has no section {name}"


def test_the_runbook_explains_every_condition_reason():
    documented = set(re.findall(r"(?m)^\| `(\w+)`", RUNBOOK.read_text()))
    unused = {Reason.WAITING_FOR_SAMPLES}  # in the enum, carried by no condition (rollout verdicts say it in words)
    assert {r.value for r in Reason} - {r.value for r in unused} <= documented


def test_the_runbook_links_only_to_sections_that_exist():
    text = RUNBOOK.read_text()
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= _anchors(text), links - _anchors(text)


# -- the chart ships the same rules --------------------------------------------------------


def test_every_threshold_marker_is_a_chart_value_and_every_threshold_value_is_used():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["prometheusRule"]
    marked = {m.group(3) for m in THRESHOLD.finditer(RULES.read_text())}
    assert marked == set(defaults) - {"enabled", "labels"}
    markers = re.findall(r"# threshold: [A-Za-z]+", RULES.read_text())  # what the template looks for
    assert len(markers) == len(list(THRESHOLD.finditer(RULES.read_text()))), "a marker without a number right before it"


def test_the_rules_file_holds_the_charts_default_thresholds():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["prometheusRule"]
    for match in THRESHOLD.finditer(RULES.read_text()):
        number = match.group(0).split("#")[0].strip().removesuffix("m")
        assert float(number) == float(defaults[match.group(3)]), match.group(0)


def test_the_rendered_prometheus_rule_holds_exactly_the_rules_file(helm):
    assert rendered_groups(helm) == rules_file()["groups"]


def test_thresholds_from_values_change_exactly_the_marked_numbers(helm, promtool, tmp_path):
    args = [arg for key, value in OTHER_VALUES.items() for arg in ("--set-json", f"metrics.prometheusRule.{key}={value}")]
    groups = rendered_groups(helm, *args)
    assert groups == with_thresholds(OTHER_VALUES)
    assert groups != rules_file()["groups"]
    rendered = alerts(groups)
    assert rendered["FaissServingVersionSkew"]["for"] == "30m"
    assert ">= 5 # threshold: buildFailuresForAlert" in rendered["FaissIndexBuildsFailing"]["expr"]
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump({"groups": groups}))
    done = promtool_run(promtool, "check", "rules", "rendered.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_prometheus_rule_carries_the_extra_labels_and_is_off_by_default(helm):
    done = subprocess.run(
        [str(helm), "template", "t", str(CHART), "-n", "faiss-system", "--set", "metrics.prometheusRule.enabled=true",
         "--set", "metrics.prometheusRule.labels.release=kube-prometheus-stack", "--show-only", "templates/prometheusrule.yaml"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    off = subprocess.run([str(helm), "template", "t", str(CHART), "-n", "faiss-system"], capture_output=True, text=True, timeout=120)
    assert off.returncode == 0, off.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(off.stdout) if d}
    assert not kinds & {"PrometheusRule", "ServiceMonitor", "PodMonitor"}


# -- the rollback counter FaissIndexCanaryRolledBack reads ---------------------------------


def _rollbacks(namespace: str, name: str) -> float | None:
    return REGISTRY.get_sample_value("faiss_operator_rollbacks_total", {"namespace": namespace, "name": name})


def test_the_rollback_counter_is_exported_at_zero_and_counts_rolled_back_events():
    status = FaissIndexStatus()
    metrics.record(status, "alerts-test", "idx", ["BuildSucceeded"])
    assert _rollbacks("alerts-test", "idx") == 0  # present before the first rollback: increase() sees it
    metrics.record(status, "alerts-test", "idx", ["RolledBack"])
    metrics.record(status, "alerts-test", "idx", [])
    assert _rollbacks("alerts-test", "idx") == 1


def test_the_operator_seeds_the_last_success_gauge_from_status_after_a_restart_and_drops_unknown_recall():
    from faiss_operator import metrics
    from indexops_api.status import BuildResult, FaissIndexStatus, LastBuild

    done = LastBuild(job="j", version="v", build_key="k", result=BuildResult.SUCCEEDED, completion_time="2026-11-21T12:00:00Z")
    metrics.record(FaissIndexStatus(recall=0.95, rollout_percent=100, history=[done]), "ns", "restarted", [])
    assert metrics.LAST_SUCCESS.labels("ns", "restarted")._value.get() == 1795262400.0
    metrics.record(FaissIndexStatus(recall=None), "ns", "restarted", [])
    names = {(s.name, tuple(s.labels.values())) for m in metrics.RECALL.collect() for s in m.samples}
    assert ("faiss_operator_serving_recall", ("ns", "restarted")) not in names
