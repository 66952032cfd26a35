"""The chart lints, renders with every ci/ values file, and passes kube-score.

helm and kube-score are built from pinned Go modules by hack/build-tools.sh (as CI does
through `make tools`). kube-score's settings and every exclusion, each with its reason,
are in .kube-score.yaml; an exclusion that no render needs any more fails too, so the list
only ever shrinks to what is true.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "faiss-operator"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
CONFIG = yaml.safe_load((ROOT / ".kube-score.yaml").read_text())
GRADE_OK = 10  # kube-score: 10 all OK, 7 almost OK, 5 warning, 1 critical


@cache
def _render(helm: str, values: Path) -> str:
    done = subprocess.run([helm, "template", "faiss-operator", str(CHART), "-n", "faiss-system", "-f", str(values)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{values.name} does not render:\n{done.stderr}"
    return done.stdout


def test_there_is_a_ci_values_file_for_each_supported_configuration():
    assert {p.name for p in CI_VALUES} >= {"default-values.yaml", "ha-off-values.yaml", "monitoring-values.yaml",
                                           "four-horizons-values.yaml", "networkpolicy-values.yaml"}


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_helm_lint_strict_passes(helm, values):
    done = subprocess.run([helm, "lint", "--strict", str(CHART), "-f", str(values)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_every_ci_values_file_renders_to_valid_objects(helm, values):
    docs = [d for d in yaml.safe_load_all(_render(helm, values)) if d]
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc
        if doc["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"].get("namespace"), f"{doc['kind']}/{doc['metadata']['name']} has no namespace"
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "an object is rendered twice"


# -- kube-score -----------------------------------------------------------------------------


def _applies(exclusion: dict, values: Path) -> bool:
    return "values" not in exclusion or values.name in exclusion["values"]


def _findings(kube_score: str, rendered: str) -> dict[str, list[str]]:
    """check id -> messages, for every check graded below OK (no check ignored)."""
    args = [kube_score, "score", "--output-format", "json", "--kubernetes-version", CONFIG["kubernetesVersion"]]
    for check in CONFIG.get("enableOptional", []):
        args += ["--enable-optional-test", check]
    if "ignoreContainerCpuLimit" in CONFIG:
        args.append("--ignore-container-cpu-limit")
    done = subprocess.run([*args, "-"], input=rendered, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1) and done.stdout.strip(), done.stderr
    found: dict[str, list[str]] = {}
    for obj in json.loads(done.stdout):
        for result in obj["checks"]:
            if result["skipped"] or result["grade"] >= GRADE_OK:
                continue
            comments = "; ".join(f"{c.get('path') or ''} {c['summary']}".strip() for c in result.get("comments") or [])
            found.setdefault(result["check"]["id"], []).append(f"{obj['type_meta']['kind']}/{obj['object_name']}: {comments}")
    return found


def test_every_kube_score_exclusion_has_a_reason_and_names_a_real_check(kube_score):
    listed = subprocess.run([kube_score, "list"], capture_output=True, text=True, timeout=60, check=True).stdout
    known = {line.split(",")[0] for line in listed.splitlines() if line}
    for exclusion in CONFIG["exclusions"]:
        assert exclusion["check"] in known, exclusion
        assert len(exclusion.get("reason", "").split()) >= 15, f"{exclusion['check']}: give a real reason"
        assert set(exclusion.get("values", [])) <= {p.name for p in CI_VALUES}, exclusion
    assert len(CONFIG["ignoreContainerCpuLimit"]["reason"].split()) >= 15
    assert set(CONFIG["enableOptional"]) <= known


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_kube_score_finds_nothing_beyond_the_written_exclusions(helm, kube_score, values):
    found = _findings(kube_score, _render(helm, values))
    excluded = {e["check"] for e in CONFIG["exclusions"] if _applies(e, values)}
    unexpected = {check: msgs for check, msgs in found.items() if check not in excluded}
    assert not unexpected, f"kube-score on the chart with {values.name}:\n" + json.dumps(unexpected, indent=2)
    stale = excluded - set(found)
    assert not stale, f"exclusions no longer needed for {values.name} (remove them or narrow `values`): {sorted(stale)}"


def test_the_network_policy_check_is_enforced_where_the_policy_is_on(helm, kube_score):
    values = CHART / "ci" / "networkpolicy-values.yaml"
    assert not any(e["check"] == "pod-networkpolicy" and _applies(e, values) for e in CONFIG["exclusions"])
    assert "pod-networkpolicy" not in _findings(kube_score, _render(helm, values))
