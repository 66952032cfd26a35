"""A release pins the image by digest in the chart (docs/release.md).

With `image.digest` set, every container the chart renders and the image the operator
gives its builder and serving pods (FAISS_OPERATOR_IMAGE) are `repository@sha256:…`, so a
chart version deploys the same bytes wherever the image is mirrored; without it, the tag.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "faiss-operator"
DIGEST = "sha256:" + "ab" * 32


def images(helm: str, *args: str) -> set[str]:
    done = subprocess.run([helm, "template", "rel", str(CHART), "-n", "faiss-system", "--set", "tests.enabled=true", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = set()
    for doc in filter(None, yaml.safe_load_all(done.stdout)):
        spec = doc.get("spec", {}).get("template", {}).get("spec") or (doc.get("spec") if doc["kind"] == "Pod" else None) or {}
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            found.add(container["image"])
            found |= {e["value"] for e in container.get("env", []) if e["name"] == "FAISS_OPERATOR_IMAGE"}
    return found


def test_a_pinned_digest_is_what_every_pod_and_the_operator_s_workloads_run(helm):
    assert images(helm, "--set", "image.repository=mirror.internal/faiss", "--set", f"image.digest={DIGEST}") == {
        f"mirror.internal/faiss@{DIGEST}"}


def test_without_a_digest_the_tag_defaults_to_the_chart_app_version(helm):
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert images(helm, "--set", "image.repository=mirror.internal/faiss") == {f"mirror.internal/faiss:{app_version}"}


def test_a_digest_that_is_not_sha256_is_refused_by_the_schema(helm):
    done = subprocess.run([helm, "template", "rel", str(CHART), "--set", "image.digest=latest"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "digest" in done.stderr
