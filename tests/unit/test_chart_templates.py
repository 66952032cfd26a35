"""What the chart renders: FaissIndexes from values, disruption budget, NetworkPolicy, the
`helm test` hook and the NOTES runbook, through the real ``helm template``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "faiss-operator"
FOUR_HORIZONS = CHART / "ci" / "four-horizons-values.yaml"
NETWORK_POLICY = CHART / "ci" / "networkpolicy-values.yaml"
DEFAULTS = {"dimension": 8, "indexType": "HNSW", "suspend": True, "parameters": {"m": 16, "efSearch": 64},
            "source": {"s3": {"bucket": "emb", "key": "v/{horizon}.npy"}}, "storage": {"bucket": "idx"},
            "validation": {"minRecall": 0.9, "k": 10, "queries": 100}}


def run(helm: str, *args: str) -> str:
    done = subprocess.run([helm, "template", "rel", str(CHART), "-n", "faiss-system", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(helm: str, *args: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(run(helm, *args)) if d]


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def indexes(helm: str, entries: list[dict], defaults: dict = DEFAULTS) -> dict[str, dict]:
    docs = render(helm, "--set-json", f"faissIndexDefaults={json.dumps(defaults)}", "--set-json", f"faissIndexes={json.dumps(entries)}")
    return {d["metadata"]["name"]: d for d in of_kind(docs, "FaissIndex")}


# -- faissIndexes ---------------------------------------------------------------------------


def test_the_four_horizons_values_stamp_out_four_indexes_from_one_block_of_defaults(helm):
    docs = render(helm, "-f", str(FOUR_HORIZONS))
    fis = {d["metadata"]["name"]: d for d in of_kind(docs, "FaissIndex")}
    assert sorted(fis) == ["analogs-12h", "analogs-24h", "analogs-48h", "analogs-6h"]
    defaults = yaml.safe_load(FOUR_HORIZONS.read_text())["faissIndexDefaults"]
    for name, fi in fis.items():
        assert fi["apiVersion"] == "faiss.indexops.io/v1alpha1" and fi["metadata"]["namespace"] == "faiss-system"
        assert fi["spec"]["horizon"] == name.removeprefix("analogs-")
        expected = {**defaults, "horizon": fi["spec"]["horizon"]}
        if name == "analogs-48h":
            expected["parameters"] = {**defaults["parameters"], "efSearch": 96}
        assert fi["spec"] == expected


def test_an_entry_is_deep_merged_over_the_defaults(helm):
    fi = indexes(helm, [{"name": "a", "horizon": "6h", "parameters": {"efSearch": 128}, "validation": {"minRecall": 0.95}}])["a"]
    assert fi["spec"]["parameters"] == {"m": 16, "efSearch": 128}
    assert fi["spec"]["validation"] == {"minRecall": 0.95, "k": 10, "queries": 100}
    assert fi["spec"]["source"] == DEFAULTS["source"] and fi["spec"]["dimension"] == 8


def test_false_zero_and_null_in_an_entry_override_the_defaults(helm):
    # sprig's mergeOverwrite would keep suspend: true and k: 10 here; the chart's merge does not.
    fi = indexes(helm, [{"name": "a", "horizon": "6h", "suspend": False, "validation": {"queries": 0, "k": None}, "parameters": None}])["a"]
    assert fi["spec"]["suspend"] is False
    assert fi["spec"]["validation"] == {"minRecall": 0.9, "queries": 0}
    assert "parameters" not in fi["spec"]


def test_a_list_or_scalar_in_an_entry_replaces_the_default_whole(helm):
    defaults = {**DEFAULTS, "rollout": {"steps": [{"percent": 10}, {"percent": 50}]}}
    fi = indexes(helm, [{"name": "a", "horizon": "6h", "rollout": {"steps": [{"percent": 25}]}, "source": {"s3": {"key": "other.npy"}}}], defaults)["a"]
    assert fi["spec"]["rollout"] == {"steps": [{"percent": 25}]}
    assert fi["spec"]["source"] == {"s3": {"bucket": "emb", "key": "other.npy"}}


def test_entries_do_not_leak_into_each_other_or_into_the_defaults(helm):
    fis = indexes(helm, [{"name": "a", "horizon": "6h", "parameters": {"efSearch": 200}}, {"name": "b", "horizon": "12h"}])
    assert fis["a"]["spec"]["parameters"]["efSearch"] == 200
    assert fis["b"]["spec"]["parameters"]["efSearch"] == 64


def test_metadata_keys_are_metadata_and_the_namespace_defaults_to_the_release(helm):
    fis = indexes(helm, [
        {"name": "a", "horizon": "6h"},
        {"name": "b", "horizon": "6h", "namespace": "team-b", "labels": {"team": "b"}, "annotations": {"note": "x"}},
    ])
    assert fis["a"]["metadata"]["namespace"] == "faiss-system" and fis["b"]["metadata"]["namespace"] == "team-b"
    assert fis["b"]["metadata"]["labels"]["team"] == "b"
    assert fis["b"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "rel"
    assert fis["b"]["metadata"]["annotations"]["note"] == "x"
    assert fis["b"]["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "SkipDryRunOnMissingResource=true"
    for fi in fis.values():
        assert not {"name", "namespace", "labels", "annotations"} & set(fi["spec"])


def test_no_faissindexes_by_default(helm):
    assert not of_kind(render(helm), "FaissIndex")


# -- operator Deployment, Service, budget -------------------------------------------------


def test_a_disruption_budget_keeps_one_operator_only_with_several_replicas(helm):
    pdb = of_kind(render(helm), "PodDisruptionBudget")
    assert len(pdb) == 1 and pdb[0]["spec"]["minAvailable"] == 1
    dep = of_kind(render(helm), "Deployment")[0]
    assert pdb[0]["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert not of_kind(render(helm, "--set", "replicaCount=1"), "PodDisruptionBudget")
    assert not of_kind(render(helm, "--set", "podDisruptionBudget.enabled=false"), "PodDisruptionBudget")
    assert of_kind(render(helm, "--set", "replicaCount=3", "--set", "podDisruptionBudget.minAvailable=2"), "PodDisruptionBudget")[0]["spec"]["minAvailable"] == 2


def test_the_metrics_service_selects_every_operator_replica_and_no_other_pod(helm):
    docs = render(helm)
    svc = next(d for d in of_kind(docs, "Service") if d["metadata"]["name"] == "rel-faiss-operator-metrics")
    pod_labels = of_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in svc["spec"]["selector"].items())
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"health": 8080, "metrics": 8081}
    test_pod = of_kind(docs, "Pod")[0]
    assert not all(test_pod["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())


def test_readiness_means_serving_metrics_which_followers_do_too_and_differs_from_liveness(helm):
    container = of_kind(render(helm), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}


# -- NetworkPolicy ----------------------------------------------------------------------------


def test_no_network_policy_by_default(helm):
    assert not of_kind(render(helm), "NetworkPolicy")


def test_the_network_policy_allows_only_dns_api_server_s3_and_serving_pods_out(helm):
    docs = render(helm, "-f", str(NETWORK_POLICY))
    policy = next(d for d in of_kind(docs, "NetworkPolicy") if "helm.sh/hook" not in d["metadata"].get("annotations", {}))
    dep = of_kind(docs, "Deployment")[0]
    assert policy["spec"]["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = policy["spec"]["ingress"]
    assert {p["port"] for p in ingress["ports"]} == {"health", "metrics"}
    assert {"kubernetes.io/metadata.name": "monitoring"} in [p.get("namespaceSelector", {}).get("matchLabels") for p in ingress["from"]]
    assert {"app.kubernetes.io/name": "faiss-operator-test", "app.kubernetes.io/instance": "rel"} in [
        p.get("podSelector", {}).get("matchLabels") for p in ingress["from"]]
    dns, api, s3, serving, postgres = policy["spec"]["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert [p["port"] for p in api["ports"]] == [443, 6443]
    assert [t["ipBlock"]["cidr"] for t in api["to"]] == ["10.0.0.1/32", "192.168.10.0/28"]
    assert [p["port"] for p in s3["ports"]] == [443, 9000] and s3["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert [p["port"] for p in serving["ports"]] == [8080, 9090]
    assert serving["to"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "app.kubernetes.io/part-of": "faiss-index-operator", "app.kubernetes.io/managed-by": "faiss-operator",
        "app.kubernetes.io/component": "serving"}}}]
    assert postgres["ports"] == [{"port": 5432, "protocol": "TCP"}]


def test_the_serving_pod_labels_the_policy_selects_are_the_ones_the_operator_sets():
    from faiss_operator.objects import labels

    assert {"app.kubernetes.io/part-of": "faiss-index-operator", "app.kubernetes.io/managed-by": "faiss-operator",
            "app.kubernetes.io/component": "serving"}.items() <= labels("idx", "serving").items()


def test_without_addresses_the_api_server_and_s3_rules_allow_their_ports_anywhere(helm):
    policy = of_kind(render(helm, "--set", "networkPolicy.enabled=true", "--set", "tests.enabled=false"), "NetworkPolicy")
    [policy] = policy
    _, api, s3, _ = policy["spec"]["egress"]
    assert "to" not in api and "to" not in s3
    assert "from" not in policy["spec"]["ingress"][0]


# -- helm test and NOTES ---------------------------------------------------------------------


def test_the_helm_test_hook_checks_every_replica_through_the_metrics_service(helm):
    docs = render(helm)
    pod = of_kind(docs, "Pod")[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"  # logs stay readable
    # `helm test --logs` reads pod logs by hook name: the pod must be the only test hook.
    hooks = [d for d in docs if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    assert hooks == [pod]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SERVICE"] == "rel-faiss-operator-metrics" and env["NAMESPACE"] == "faiss-system"
    script = container["command"][2]
    compile(script, "operator_health_check.py", "exec")
    assert "/healthz" in script and "faiss_operator_leader" in script
    role = next(d for d in of_kind(docs, "Role") if d["metadata"]["name"] == "rel-faiss-operator-test")
    assert role["rules"] == [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]}]
    assert not of_kind(render(helm, "--set", "tests.enabled=false"), "Pod")


def notes(helm: str, tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` prints it (its body is the define faiss-operator.notes)."""
    assert (CHART / "templates" / "NOTES.txt").read_text().strip() == '{{ include "faiss-operator.notes" . }}'
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-notes.yaml").write_text('notes: {{ include "faiss-operator.notes" . | toJson }}\n')
    done = subprocess.run([helm, "template", "rel", str(chart), "-n", "faiss-system", "--show-only", "templates/zz-notes.yaml", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["notes"]


def test_the_notes_are_a_runbook_naming_the_lease_the_leaders_logs_and_the_indexes(helm, tmp_path):
    text = notes(helm, tmp_path)
    assert "kubectl get lease -n faiss-system rel-faiss-operator-leader" in text
    assert re.search(r"kubectl logs -n faiss-system \"\$\(kubectl get lease -n faiss-system rel-faiss-operator-leader", text)
    assert "helm test rel -n faiss-system" in text
    assert "kubectl get fi -A" in text and "kubectl describe fi" in text
    assert "deploy/" not in text  # with two replicas that may be the follower
    text = notes(helm, tmp_path, "-f", str(FOUR_HORIZONS))
    assert "kubectl get fi -n faiss-system analogs-48h" in text
    text = notes(helm, tmp_path, "-f", str(CHART / "ci" / "ha-off-values.yaml"))
    assert "lease" not in text and "kubectl logs -n faiss-system deploy/rel-faiss-operator" in text
