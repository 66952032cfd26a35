"""One rule for "the previous version" (issue 15 item 5): Python, faissctl and the Argo CD Lua agree.

The same fixtures (tests/unit/fixtures/previous_version.json, Kubernetes objects with the
expected answer) go to ``indexops_api.previous``, to ``faissctl pin --previous``'s chooser
(with storage holding every version status names, all passing the gates) and, through the
real gopher-lua runner (``luatest eval``), to Argo CD's ``pin-previous`` action and to
``discovery.lua`` (which offers the action exactly when there is something to pin).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from faissctl.versions import previous_good
from faissctl_fakes import index, manifest
from indexops_api.previous import excluded, known_good, previous_version
from indexops_api.status import FaissIndexStatus

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "previous_version.json").read_text())["cases"]
ACTIONS = ROOT / "deploy" / "argocd" / "resource_customizations" / "faiss.indexops.io" / "FaissIndex" / "actions"
IDS = [c["name"] for c in FIXTURES]


def pinned(case: dict) -> str | None:
    return (case["object"]["spec"].get("rollout") or {}).get("pinnedVersion")


def status(case: dict) -> FaissIndexStatus:
    return FaissIndexStatus.model_validate(case["object"]["status"])


def lua(luatest: str, kind: str, script: Path) -> list[dict]:
    objects = [c["object"] for c in FIXTURES]
    done = subprocess.run([luatest, "eval", "-kind", kind, "-script", str(script)], input=json.dumps(objects),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("case", FIXTURES, ids=IDS)
def test_the_shared_rule_picks_the_expected_previous_version(case: dict) -> None:
    assert previous_version(status(case), pinned(case)) == case["expected"]


@pytest.mark.parametrize("case", FIXTURES, ids=IDS)
def test_faissctl_pin_previous_picks_the_same_version_when_storage_holds_what_status_names(case: dict) -> None:
    obj = index(status=case["object"]["status"], rollout=case["object"]["spec"]["rollout"])
    stored = {v: manifest(v) for v in known_good(status(case)) | {case["object"]["status"].get("currentVersion") or ""} if v}
    chosen, skipped = previous_good(obj, stored)
    assert chosen == case["expected"], skipped


def test_argo_cd_pin_previous_pins_the_same_version_or_fails_on_every_fixture(luatest: str) -> None:
    results = lua(luatest, "action", ACTIONS / "pin-previous" / "action.lua")
    got = [r["result"]["spec"]["rollout"]["pinnedVersion"] if "result" in r else None for r in results]
    assert got == [c["expected"] for c in FIXTURES]
    for case, result in zip(FIXTURES, results):
        if case["expected"] is None:
            assert "no earlier good version to pin" in result["error"], case["name"]
        else:
            assert result["patch"] == {"spec": {"rollout": {"pinnedVersion": case["expected"]}}}, case["name"]


def test_argo_cd_offers_pin_previous_exactly_when_the_rule_finds_a_version(luatest: str) -> None:
    results = lua(luatest, "discovery", ACTIONS / "discovery.lua")
    offered = [next(a for a in r["result"] if a["name"] == "pin-previous")["disabled"] is False for r in results]
    assert offered == [c["expected"] is not None for c in FIXTURES]


def test_the_fixtures_exercise_every_exclusion_of_the_rule() -> None:
    reasons = {excluded(status(c), pinned(c), v) for c in FIXTURES for v in known_good(status(c))}
    reasons |= {excluded(status(c), pinned(c), "20200101T000000Z-00000000") for c in FIXTURES}
    prefixes = {r.split(" ")[0] for r in reasons if r}
    assert prefixes >= {"nothing", "not", "it", "spec.rollout.pinnedVersion", "rejected"}
    assert None in reasons and any(c["expected"] is None for c in FIXTURES) and any(c["expected"] for c in FIXTURES)


def test_the_two_lua_copies_of_the_rule_are_identical() -> None:
    def pin_target(path: Path) -> str:
        text = path.read_text()
        start = text.index("local function pin_target(o)")
        return text[start:text.index("\nend\n", start)]

    assert pin_target(ACTIONS / "discovery.lua") == pin_target(ACTIONS / "pin-previous" / "action.lua")
