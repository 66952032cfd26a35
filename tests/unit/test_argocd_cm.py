"""The argocd-cm patch (hack/argocd_cm.py) and docs/argocd.md stay true to the scripts and
to what the operator writes on a FaissIndex."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kopf
import pytest
import yaml

from hack import argocd_cm
from indexops_api import constants as c

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "argocd.md"
KIND_DIR = ROOT / "deploy" / "argocd" / "resource_customizations" / "faiss.indexops.io" / "FaissIndex"
KEY = "faiss.indexops.io_FaissIndex"



def test_the_committed_argocd_cm_patch_is_what_the_generator_makes_of_the_lua_files() -> None:
    committed = argocd_cm.COMMITTED.read_text()
    assert committed == argocd_cm.render(), "deploy/argocd/argocd-cm-patch.yaml is stale: run python hack/argocd_cm.py --write"
    assert argocd_cm.main(["--check"]) == 0


def test_the_argocd_cm_patch_carries_every_script_verbatim_under_argo_cds_keys() -> None:
    data = yaml.safe_load(argocd_cm.COMMITTED.read_text())["data"]
    assert data[f"resource.customizations.health.{KEY}"] == (KIND_DIR / "health.lua").read_text()
    actions = yaml.safe_load(data[f"resource.customizations.actions.{KEY}"])
    assert set(actions) == {"discovery.lua", "definitions"}
    assert actions["discovery.lua"] == (KIND_DIR / "actions" / "discovery.lua").read_text()
    files = {p.parent.name: p.read_text() for p in (KIND_DIR / "actions").glob("*/action.lua")}
    assert {d["name"]: d["action.lua"] for d in actions["definitions"]} == files
    ignore = yaml.safe_load(data[f"resource.customizations.ignoreDifferences.{KEY}"])
    assert ignore == {"jsonPointers": [f"/metadata/annotations/{a.replace('/', '~1')}" for a in argocd_cm.OPERATOR_ANNOTATIONS]}


def test_the_helm_values_output_holds_the_same_argocd_cm_keys() -> None:
    values = yaml.safe_load(argocd_cm.render("helm-values"))
    patch = yaml.safe_load(argocd_cm.render())
    assert values == {"configs": {"cm": patch["data"]}}


def test_kubectl_merges_the_patch_into_an_existing_argocd_cm_and_keeps_its_other_settings(tmp_path: Path) -> None:
    assert shutil.which("kubectl"), "kubectl is a prerequisite of the tests (README; .ci/run checks it)"
    existing = tmp_path / "argocd-cm.yaml"
    existing.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": "argocd", "labels": {"app.kubernetes.io/part-of": "argocd"}},
        "data": {"url": "https://argocd.example.com", "resource.customizations.health.apps_Deployment": "hs = {}\nreturn hs\n"},
    }))
    done = subprocess.run(
        ["kubectl", "patch", "--local", "-f", str(existing), "--patch-file", str(argocd_cm.COMMITTED), "-o", "yaml"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    merged = yaml.safe_load(done.stdout)["data"]
    wanted = yaml.safe_load(argocd_cm.COMMITTED.read_text())["data"]
    assert {k: merged[k] for k in wanted} == wanted
    assert merged["url"] == "https://argocd.example.com" and "resource.customizations.health.apps_Deployment" in merged


def operator_metadata() -> dict[str, set[str]]:
    """What the operator's kopf settings make it write into metadata, derived from
    faiss_operator.handlers.configure() and its registered handlers."""
    from faiss_operator import handlers

    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    p = settings.persistence
    diffbase = set(p.diffbase_storage.make_keys(p.diffbase_storage.key))
    marker = {f"{p.progress_storage.prefix}/kopf-managed", f"{p.diffbase_storage.prefix}/kopf-managed"}
    changing = kopf.get_default_registry()._changing.get_all_handlers()
    progress = {k for h in changing for k in p.progress_storage.make_keys(h.id)}
    touch = set(p.progress_storage.make_keys(p.progress_storage.touch_key))
    return {"persistent": diffbase | marker, "while deleting": progress | touch, "finalizer": {p.finalizer}}


def test_docs_list_every_annotation_and_the_finalizer_the_operator_writes_and_the_generator_ignores_the_lasting_ones() -> None:
    written = operator_metadata()
    doc = DOC.read_text()
    for kind, names in written.items():
        for name in names:
            assert f"`{name}`" in doc, f"docs/argocd.md does not list the {kind} metadata {name}"
    assert written["finalizer"] == {f"{c.GROUP}/finalizer"}
    assert set(argocd_cm.OPERATOR_ANNOTATIONS) == written["persistent"]
    assert all(name.startswith(f"{c.GROUP}/") for names in written.values() for name in names)


def test_docs_name_every_argocd_cm_key_action_annotation_and_health_fixture() -> None:
    doc = DOC.read_text()
    for key in yaml.safe_load(argocd_cm.render())["data"]:
        assert key in doc, key
    for action in (KIND_DIR / "actions").glob("*/action.lua"):
        assert f"`{action.parent.name}`" in doc, action.parent.name
    for annotation in (c.ANNOTATION_REBUILD, c.ANNOTATION_PROMOTE, c.ANNOTATION_ABORT):
        assert f"`{annotation}`" in doc, annotation
    for fixture in (KIND_DIR / "testdata").glob("*.yaml"):
        assert fixture.name in doc, f"the decision table in docs/argocd.md does not show {fixture.name}"
