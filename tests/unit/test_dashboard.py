"""The Grafana dashboard and the alerting rules query only metrics the code defines.

Metric names and labels come from the collectors themselves: the operator's module-level
metrics (faiss_operator.metrics, plus the leader gauge in faiss_operator.main) and the
serving runtime's ``ServingMetrics``. A renamed metric or label fails here instead of
leaving an empty panel or an alert that can never fire. The serving metrics' ``namespace``
and ``name`` labels come from the chart's PodMonitor, which is checked too.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import faiss_operator.main
import faiss_operator.metrics
from index_serving.metrics import ServingMetrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "faiss-operator"
DASHBOARD = json.loads((CHART / "files" / "dashboard.json").read_text())
RULES = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())

# Labels every scraped series gets from its target (Prometheus Operator monitors); the
# serving metrics get namespace and name (the FaissIndex) from the PodMonitor.
TARGET_LABELS = {"namespace", "name", "pod", "instance", "job", "container", "endpoint", "service"}
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created")}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "count_over_time", "delta", "deriv", "exp", "floor", "histogram_quantile", "idelta", "increase", "irate",
    "label_join", "label_replace", "last_over_time", "max_over_time", "min_over_time", "predict_linear", "rate",
    "resets", "round", "scalar", "sort", "sort_desc", "sqrt", "sum_over_time", "time", "timestamp", "vector",
    "sum", "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^{}]*)\}")
MATCHER = re.compile(r"\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*\"(?:[^\"\\]|\\.)*\"\s*,?")


def _collectors() -> list[MetricWrapperBase]:
    found = [v for module in (faiss_operator.metrics, faiss_operator.main) for v in vars(module).values()]
    found += list(vars(ServingMetrics()).values())
    return [c for c in found if isinstance(c, MetricWrapperBase)]


def defined_metrics() -> dict[str, set[str]]:
    """Every series name the code exposes, with its label names."""
    out: dict[str, set[str]] = {}
    for collector in _collectors():
        (family,) = collector.describe()
        labels = set(collector._labelnames)  # noqa: SLF001 (no public accessor)
        for suffix in SUFFIXES[family.type]:
            out[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


METRICS = defined_metrics()


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    out = []

    def walk(panels: list[dict]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
            walk(panel.get("panels", []))

    walk(DASHBOARD["panels"])
    for var in DASHBOARD["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            metric, label = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query).groups()
            out.append((f"variable {var['name']}", f"group by ({label}) ({metric})"))
    return out


def rule_queries() -> list[tuple[str, str]]:
    return [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for g in RULES["groups"] for r in g["rules"]]


def problems(expr: str) -> list[str]:
    """What in one PromQL expression names a metric or label the code does not define."""
    found: list[str] = []
    text = re.sub(r"#[^\n]*", "", expr)  # comments (the threshold markers)
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges: [5m], [$__range]
    selectors = []
    for metric, matchers in SELECTOR.findall(text):
        selectors.append(metric)
        labels = [m.group(1) for m in MATCHER.finditer(matchers)]
        if MATCHER.sub("", matchers).strip():
            found.append(f"unparsed matchers {{{matchers}}}")
        for label in labels:
            if label not in METRICS.get(metric, set()) | TARGET_LABELS:
                found.append(f"{metric} has no label {label!r}")
    text = SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    grouping = [label.strip() for _, labels in LABEL_LIST.findall(text) for label in labels.split(",") if label.strip()]
    text = LABEL_LIST.sub(" ", text)
    names = [n for n in re.findall(r"(?<![\w.$])[a-zA-Z_:][\w:]*", text) if n not in FUNCTIONS | KEYWORDS]
    names += [n for n in selectors if n]
    for name in names:
        if name not in METRICS:
            found.append(f"{name} is not a metric the code defines")
    known = set().union(TARGET_LABELS, *(METRICS.get(n, set()) for n in names))
    found += [f"no metric here has the label {label!r}" for label in grouping if label not in known]
    if not names:
        found.append("names no metric")
    return found


def test_the_code_defines_the_metrics_the_checks_rely_on():
    assert {"faiss_operator_rollbacks_total", "faiss_serving_requests_total", "faiss_serving_search_seconds_bucket",
            "faiss_operator_consecutive_failures", "faiss_operator_leader"} <= set(METRICS)
    assert METRICS["faiss_serving_requests_total"] == {"version", "code"}


@pytest.mark.parametrize("expr", ['rate(faiss_serving_request_total[5m])', 'faiss_operator_serving_recall{versoin="x"}',
                                  'sum by (reason) (faiss_serving_requests_total)', 'vector(1)'])
def test_the_check_catches_renamed_metrics_and_labels(expr):
    assert problems(expr)


@pytest.mark.parametrize(("where", "expr"), dashboard_queries() + rule_queries())
def test_every_query_names_only_defined_metrics_and_labels(where, expr):
    assert not problems(expr), f"{where}: {problems(expr)}\n{expr}"


def test_the_dashboard_covers_builds_versions_rollout_and_serving():
    used = {n for _, expr in dashboard_queries() for n in re.findall(r"faiss_\w+", expr)}
    assert {
        "faiss_operator_builds_started_total", "faiss_operator_builds_finished_total",
        "faiss_operator_build_duration_seconds_bucket", "faiss_operator_serving_recall",
        "faiss_operator_consecutive_failures", "faiss_operator_index_stalled", "faiss_operator_rollbacks_total",
        "faiss_serving_requests_total", "faiss_serving_search_seconds_bucket", "faiss_serving_search_errors_total",
        "faiss_serving_candidate_fallbacks_total", "faiss_serving_fallback_searches_total",
        "faiss_serving_loaded_version_info",
    } <= used
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) and DASHBOARD["uid"] == "faiss-index-operator"


# -- the chart: dashboard ConfigMap, and the monitors that give series their labels -------


def render(helm: str, *args: str) -> list[dict]:
    done = subprocess.run([helm, "template", "t", str(CHART), "-n", "faiss-system", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_dashboard_config_map_holds_the_dashboard_with_the_sidecar_label_and_folder(helm):
    (cm,) = render(helm, "--set", "metrics.grafanaDashboard.enabled=true", "--set", "metrics.grafanaDashboard.folder=Search",
                   "--show-only", "templates/grafana-dashboard.yaml")
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Search"}
    assert json.loads(cm["data"]["faiss-index-operator.json"]) == DASHBOARD


def test_the_monitors_scrape_the_operator_with_its_labels_and_label_serving_pods_by_index(helm):
    docs = {d["kind"]: d for d in render(helm, "--set", "metrics.serviceMonitor.enabled=true",
                                         "--show-only", "templates/servicemonitor.yaml", "--show-only", "templates/service.yaml")}
    service, monitor, pods = docs["Service"], docs["ServiceMonitor"], docs["PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True and endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    from faiss_operator.objects import labels
    from indexops_api import constants as c
    assert pods["spec"]["selector"]["matchLabels"].items() <= labels("idx", "serving").items()
    (endpoint,) = pods["spec"]["podMetricsEndpoints"]
    label = "__meta_kubernetes_pod_label_" + re.sub(r"[^\w]", "_", c.LABEL_INDEX)
    assert {"sourceLabels": [label], "targetLabel": "name", "action": "replace"} in endpoint["relabelings"]
    assert endpoint["port"] == "http"
