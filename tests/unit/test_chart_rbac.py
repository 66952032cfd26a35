"""The chart grants the operator exactly the API calls its code makes, nothing more."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import yaml

from faiss_operator.permissions import REQUIRED

RBAC = Path(__file__).resolve().parents[2] / "charts" / "faiss-operator" / "templates" / "rbac.yaml"


def _cluster_role_rules() -> list[dict]:
    text = re.sub(r"\{\{-?.*?-?\}\}", "placeholder", RBAC.read_text())
    docs = [d for d in yaml.safe_load_all(text) if d]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    return role["rules"]


def test_the_chart_cluster_role_grants_exactly_the_operators_required_permissions():
    granted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in _cluster_role_rules():
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] |= set(rule["verbs"])
    assert {k: frozenset(v) for k, v in granted.items()} == REQUIRED


def test_the_operator_can_never_read_secrets_or_use_wildcards():
    for rule in _cluster_role_rules():
        assert "secrets" not in rule["resources"]
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
