"""The chart grants the operator exactly the API calls its code makes, nothing more."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import yaml

from faiss_operator.permissions import REQUIRED, SOURCE_SECRETS

TEMPLATES = Path(__file__).resolve().parents[2] / "charts" / "faiss-operator" / "templates"
RBAC = TEMPLATES / "rbac.yaml"
SOURCE_SECRETS_RBAC = TEMPLATES / "rbac-source-secrets.yaml"


def _cluster_role_rules(path: Path = RBAC) -> list[dict]:
    text = re.sub(r"(?m)^\{\{-? (if|end)\b.*\}\}$", "", path.read_text())  # whole-file conditionals
    text = re.sub(r"\{\{-?.*?-?\}\}", "placeholder", text)
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    return role["rules"]


def _granted(rules: list[dict]) -> dict[tuple[str, str], frozenset[str]]:
    granted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rule in rules:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] |= set(rule["verbs"])
    return {k: frozenset(v) for k, v in granted.items()}


def test_the_chart_cluster_role_grants_exactly_the_operators_required_permissions():
    assert _granted(_cluster_role_rules()) == REQUIRED


def test_reading_source_secrets_is_a_separate_optional_role_with_get_only():
    text = SOURCE_SECRETS_RBAC.read_text()
    assert text.startswith("{{- if .Values.rbac.readSourceSecrets }}") and text.rstrip().endswith("{{- end }}")
    assert _granted(_cluster_role_rules(SOURCE_SECRETS_RBAC)) == SOURCE_SECRETS


def test_the_main_role_never_reads_secrets_or_uses_wildcards():
    for rule in _cluster_role_rules():
        assert "secrets" not in rule["resources"]
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
