"""The Argo CD health check and actions of FaissIndex, run by a real Lua interpreter.

The scripts and their fixtures live in Argo CD's layout under
deploy/argocd/resource_customizations/faiss.indexops.io/FaissIndex/. They run in
hack/tools/luatest: gopher-lua (the interpreter Argo CD embeds) set up like Argo CD runs
scripts from argocd-cm (no string/math library, a safe os library, one-second deadline,
empty-map restoration on action results). The binary is built through
hack/build-tools.sh, so CI builds it the same way (`make tools`).
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from faiss_operator.conditions import parse_time
from indexops_api import constants as c
from indexops_api.status import ConditionType, Reason

ROOT = Path(__file__).resolve().parents[2]
KIND_DIR = ROOT / "deploy" / "argocd" / "resource_customizations" / "faiss.indexops.io" / "FaissIndex"
ACTIONS_DIR = KIND_DIR / "actions"
HEALTH_LUA = KIND_DIR / "health.lua"
DISCOVERY_LUA = ACTIONS_DIR / "discovery.lua"
ACTION_NAMES = sorted(p.parent.name for p in ACTIONS_DIR.glob("*/action.lua"))
CM_PATCH = ROOT / "deploy" / "argocd" / "argocd-cm-patch.yaml"
NOW = "2026-01-02T03:04:05Z"  # luatest's default clock, used by the fixtures

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=None)
def _parsed(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)


def load(path: Path) -> dict:
    return copy.deepcopy(_parsed(path))


HEALTH_TESTS = load(KIND_DIR / "health_test.yaml")["tests"]
ACTION_FIXTURES = load(ACTIONS_DIR / "action_test.yaml")
DISCOVERY_TESTS = ACTION_FIXTURES["discoveryTests"]
ACTION_TESTS = ACTION_FIXTURES["actionTests"]


def run_fixtures(luatest: Path, *extra: str, directory: Path = KIND_DIR) -> tuple[int, dict, str]:
    done = subprocess.run([str(luatest), "-json", *extra, str(directory)], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, report, done.stderr


@pytest.fixture(scope="session")
def report(luatest: Path) -> dict:
    """luatest's verdict on every fixture, keyed by (suite, action, inputPath)."""
    rc, report, stderr = run_fixtures(luatest)
    assert rc in (0, 1), f"luatest could not run the fixtures:\n{stderr}"
    return {(case["suite"], case.get("action", ""), case["inputPath"]): case for case in report["cases"]}


def evaluate(luatest: Path, kind: str, script: Path, objects: list[dict], now: str = NOW) -> list[dict]:
    """Run one script on many objects in one luatest process."""
    done = subprocess.run(
        [str(luatest), "eval", "-kind", kind, "-script", str(script), "-now", now],
        input=json.dumps(objects), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def explain(case: dict) -> str:
    lines = [f"{case['suite']} {case.get('action', '')} {case['inputPath']}:"]
    if case.get("error"):
        lines.append(f"  Lua error: {case['error']}")
    lines += [f"  {d}" for d in case.get("diff") or []]
    return "\n".join(lines)


# ---- the fixtures ------------------------------------------------------------------------


@pytest.mark.parametrize("test", HEALTH_TESTS, ids=[t["inputPath"].split("/")[-1] for t in HEALTH_TESTS])
def test_every_argocd_health_fixture_matches_what_health_lua_returns(report: dict, test: dict) -> None:
    case = report[("health", "", test["inputPath"])]
    assert case["ok"], explain(case)
    assert case["actual"] == test["healthStatus"]


@pytest.mark.parametrize("test", DISCOVERY_TESTS, ids=[t["inputPath"].split("/")[-1] for t in DISCOVERY_TESTS])
def test_every_argocd_discovery_fixture_matches_the_actions_discovery_lua_offers(report: dict, test: dict) -> None:
    case = report[("discovery", "", test["inputPath"])]
    assert case["ok"], explain(case)
    assert sorted(a["name"] for a in case["actual"]) == ACTION_NAMES


@pytest.mark.parametrize(
    "test", ACTION_TESTS, ids=[f"{t['action']}-{t['inputPath'].split('/')[-1]}" for t in ACTION_TESTS]
)
def test_every_argocd_action_fixture_matches_what_the_action_returns(report: dict, test: dict) -> None:
    case = report[("action", test["action"], test["inputPath"])]
    assert case["ok"], explain(case)


def test_luatest_passes_all_fixtures_with_the_scripts_taken_from_the_committed_argocd_cm_patch(luatest: Path) -> None:
    """What users install (the ConfigMap) is what the fixtures test, not just the .lua files."""
    rc, report, stderr = run_fixtures(luatest, "-argocd-cm", str(CM_PATCH))
    assert rc == 0, stderr
    assert len(report["cases"]) == len(HEALTH_TESTS) + len(DISCOVERY_TESTS) + len(ACTION_TESTS)


def test_the_health_fixtures_cover_every_health_status_and_at_least_eight_situations() -> None:
    statuses = {t["healthStatus"]["status"] for t in HEALTH_TESTS}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}
    assert len(HEALTH_TESTS) >= 8
    for test in HEALTH_TESTS:  # Argo CD's naming: <status>_<situation>.yaml
        assert Path(test["inputPath"]).name.startswith(test["healthStatus"]["status"].lower() + "_"), test["inputPath"]


def test_every_action_has_fixtures_for_what_it_does_and_every_discovery_input_is_a_real_faissindex() -> None:
    assert set(ACTION_NAMES) == {"rebuild", "promote", "abort", "pin-previous", "unpin"}
    for name in ACTION_NAMES:
        tests = [t for t in ACTION_TESTS if t["action"] == name]
        assert any("expectedOutputPath" in t for t in tests), f"{name}: no input -> output fixture"
        if name != "rebuild":
            assert any("expectedErrorMessage" in t for t in tests), f"{name}: no fixture for when it does not apply"
    for test in DISCOVERY_TESTS:
        obj = load(ACTIONS_DIR / test["inputPath"])
        assert (obj["apiVersion"], obj["kind"]) == (c.API_VERSION, c.KIND)


# ---- every condition reason has a decided health -----------------------------------------

# For each reason the operator can put on a condition: the condition it appears on, its
# status there, and the Argo CD health that must follow (on an otherwise serving index).
# A new Reason fails test_every_condition_reason_the_operator_can_emit_has_a_decided_argocd_health
# until someone decides here (and in docs/argocd.md) what Argo CD should show.
REASON_HEALTH: dict[Reason, tuple[ConditionType, str, str]] = {
    Reason.SERVING: (ConditionType.READY, "True", "Healthy"),
    Reason.PINNED: (ConditionType.READY, "True", "Healthy"),
    Reason.SERVING_DISABLED: (ConditionType.READY, "True", "Healthy"),
    Reason.NO_VERSION: (ConditionType.READY, "False", "Progressing"),
    Reason.SERVING_UNAVAILABLE: (ConditionType.READY, "False", "Progressing"),
    Reason.REPLICAS_CONVERGING: (ConditionType.PROGRESSING, "True", "Progressing"),
    Reason.BUILDING: (ConditionType.PROGRESSING, "True", "Progressing"),
    Reason.ROLLING_OUT: (ConditionType.PROGRESSING, "True", "Progressing"),
    # Declared for rollout steps waiting for enough traffic; not on a condition yet.
    Reason.WAITING_FOR_SAMPLES: (ConditionType.PROGRESSING, "True", "Progressing"),
    Reason.IDLE: (ConditionType.PROGRESSING, "False", "Healthy"),
    Reason.WAITING_FOR_RETRY: (ConditionType.PROGRESSING, "False", "Healthy"),  # with Degraded=True in practice: see below
    Reason.SUSPENDED: (ConditionType.PROGRESSING, "False", "Suspended"),
    Reason.AS_EXPECTED: (ConditionType.DEGRADED, "False", "Healthy"),
    Reason.BUILD_FAILED: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.VALIDATION_FAILED: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.MANIFEST_INVALID: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.INVALID_SPEC: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.STORAGE_NOT_ALLOWED: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.STORAGE_ERROR: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.STORAGE_UNAVAILABLE: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.DISRUPTED: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.SOURCE_DRIFT: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.SYNC_FAILED: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.ARTIFACTS_MISSING: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.PINNED_VERSION_MISSING: (ConditionType.DEGRADED, "True", "Degraded"),
    Reason.TOO_MANY_FAILURES: (ConditionType.STALLED, "True", "Degraded"),
    Reason.CONFIGURATION_ERROR: (ConditionType.STALLED, "True", "Degraded"),
    # A canary taken out of rotation (failed analysis step, or a manual abort): stays until
    # the next build, like a failed build.
    Reason.ROLLED_BACK: (ConditionType.DEGRADED, "True", "Degraded"),
}

# Reasons Argo CD should not turn Degraded while a build runs: the build repairs them.
REPAIRED_BY_A_BUILD = {Reason.SOURCE_DRIFT, Reason.ARTIFACTS_MISSING}


def serving_index() -> dict:
    return load(KIND_DIR / "testdata" / "healthy_serving.yaml")


def with_condition(obj: dict, ctype: str, status: str, reason: str, message: str = "details") -> dict:
    obj = copy.deepcopy(obj)
    for cond in obj["status"]["conditions"]:
        if cond["type"] == ctype:
            cond.update(status=status, reason=reason, message=message)
    return obj


def test_every_condition_reason_the_operator_can_emit_has_a_decided_argocd_health(luatest: Path) -> None:
    missing = sorted(r.value for r in Reason if r not in REASON_HEALTH)
    assert not missing, f"decide the Argo CD health of these reasons (REASON_HEALTH, health.lua, docs/argocd.md): {missing}"
    objects = [with_condition(serving_index(), ctype.value, status, reason.value) for reason, (ctype, status, _) in REASON_HEALTH.items()]
    results = evaluate(luatest, "health", HEALTH_LUA, objects)
    wrong = {
        reason.value: result.get("result") or result.get("error")
        for (reason, (_, _, expected)), result in zip(REASON_HEALTH.items(), results)
        if (result.get("result") or {}).get("status") != expected
    }
    assert not wrong, wrong


def test_degraded_reasons_show_degraded_while_a_build_runs_unless_the_build_repairs_them(luatest: Path) -> None:
    building = with_condition(serving_index(), "Progressing", "True", "Building", "Job x is building version y (Drift)")
    degraded_reasons = [r for r, (t, s, _) in REASON_HEALTH.items() if t == ConditionType.DEGRADED and s == "True"]
    objects = [with_condition(building, "Degraded", "True", r.value, "what went wrong") for r in degraded_reasons]
    results = evaluate(luatest, "health", HEALTH_LUA, objects)
    for reason, result in zip(degraded_reasons, results):
        expected = "Progressing" if reason in REPAIRED_BY_A_BUILD else "Degraded"
        assert result["result"]["status"] == expected, (reason, result)
        assert f"{reason.value}: what went wrong" in result["result"]["message"]


def test_unknown_reasons_from_a_newer_operator_fall_back_to_the_condition_status(luatest: Path) -> None:
    cases = {
        ("Ready", "True"): "Healthy", ("Ready", "False"): "Progressing", ("Ready", "Unknown"): "Progressing",
        ("Progressing", "True"): "Progressing", ("Progressing", "False"): "Healthy",
        ("Degraded", "True"): "Degraded", ("Degraded", "False"): "Healthy",
        ("Stalled", "True"): "Degraded", ("Stalled", "False"): "Healthy",
    }
    objects = [with_condition(serving_index(), t, s, "SomeFutureReason") for t, s in cases]
    results = evaluate(luatest, "health", HEALTH_LUA, objects)
    got = {key: r["result"]["status"] for key, r in zip(cases, results)}
    assert got == cases


def test_health_lua_returns_a_valid_status_for_any_combination_of_conditions(luatest: Path) -> None:
    base = serving_index()
    reasons = [r.value for r in Reason] + ["SomeFutureReason"]
    objects = [
        with_condition(base, t.value, s, r) for t in ConditionType for s in ("True", "False", "Unknown") for r in reasons
    ]
    bare = copy.deepcopy(base)
    for key in list(bare["status"]):
        if key not in ("conditions", "observedGeneration"):
            del bare["status"][key]
    for cond in bare["status"]["conditions"]:
        del cond["message"]
        del cond["reason"]
    objects += [bare, {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": {"name": "x"}, "spec": {}, "status": {}}]
    for obj, result in zip(objects, evaluate(luatest, "health", HEALTH_LUA, objects)):
        assert "error" not in result, (result, obj["status"])
        assert result["result"]["status"] in {"Healthy", "Progressing", "Degraded", "Suspended"}, result
        assert result["result"]["message"]


# ---- actions -----------------------------------------------------------------------------


def all_testdata_objects() -> list[dict]:
    paths = sorted(KIND_DIR.glob("testdata/*.yaml")) + sorted(ACTIONS_DIR.glob("testdata/*.yaml"))
    return [load(p) for p in paths]


def test_an_action_is_offered_exactly_when_running_it_changes_the_object(luatest: Path) -> None:
    objects = all_testdata_objects()
    later = "2026-02-03T04:05:06Z"  # not the fixtures' clock: a request annotation set at NOW is not new then
    offered = evaluate(luatest, "discovery", DISCOVERY_LUA, objects, now=later)
    outcomes = {name: evaluate(luatest, "action", ACTIONS_DIR / name / "action.lua", objects, now=later) for name in ACTION_NAMES}
    for i, obj in enumerate(objects):
        where = f"{obj['metadata']['name']} ({obj.get('status', {}).get('phase', 'no status')})"
        actions = {a["name"]: a for a in offered[i]["result"]}
        assert sorted(actions) == ACTION_NAMES
        for name in ACTION_NAMES:
            outcome = outcomes[name][i]
            if actions[name]["disabled"]:
                assert "error" in outcome, f"{name} is disabled for {where} but runs: {outcome.get('patch')}"
            else:
                assert "error" not in outcome, f"{name} is offered for {where} but fails: {outcome['error']}"
                assert outcome["patch"], f"{name} is offered for {where} but changes nothing"


def test_actions_patch_only_the_annotation_or_spec_field_they_are_for(report: dict) -> None:
    annotation = {"rebuild": c.ANNOTATION_REBUILD, "promote": c.ANNOTATION_PROMOTE, "abort": c.ANNOTATION_ABORT}
    checked = set()
    for test in ACTION_TESTS:
        if "expectedOutputPath" not in test:
            continue
        case = report[("action", test["action"], test["inputPath"])]
        name, patch = test["action"], case["patch"]
        if name in annotation:
            assert patch == {"metadata": {"annotations": {annotation[name]: NOW}}}, (name, patch)
        elif name == "pin-previous":
            assert list(patch) == ["spec"] and list(patch["spec"]) == ["rollout"], patch
            assert list(patch["spec"]["rollout"]) == ["pinnedVersion"], patch
        elif name == "unpin":
            assert patch in ({"spec": {"rollout": {"pinnedVersion": None}}}, {"spec": {"rollout": None}}), patch
        checked.add(name)
    assert checked == set(ACTION_NAMES)


def test_request_annotations_carry_the_utc_time_of_the_click_in_the_operators_format(luatest: Path) -> None:
    objects = [load(ACTIONS_DIR / "testdata" / "canary.yaml")]
    for name, key in (("rebuild", c.ANNOTATION_REBUILD), ("promote", c.ANNOTATION_PROMOTE), ("abort", c.ANNOTATION_ABORT)):
        for now, utc in (("2026-03-29T01:59:59Z", "2026-03-29T01:59:59Z"), ("2027-12-31T23:00:00+02:00", "2027-12-31T21:00:00Z")):
            [result] = evaluate(luatest, "action", ACTIONS_DIR / name / "action.lua", objects, now=now)
            value = result["result"]["metadata"]["annotations"][key]
            assert value == utc, (name, now, value)
            assert parse_time(value) is not None  # the form faiss_operator.conditions reads and writes


def test_pin_previous_never_moves_forward_nor_pins_the_current_or_candidate_version(luatest: Path) -> None:
    objects = all_testdata_objects()
    results = evaluate(luatest, "action", ACTIONS_DIR / "pin-previous" / "action.lua", objects)
    for obj, result in zip(objects, results):
        if "error" in result:
            continue
        status = obj["status"]
        pinned = result["result"]["spec"]["rollout"]["pinnedVersion"]
        assert pinned not in (status.get("currentVersion"), status.get("candidateVersion"))
        assert pinned < status["currentVersion"]  # version ids sort by build time
        earlier = {b["version"] for b in status.get("history", []) if b["result"] == "Succeeded"} | {status.get("lastGoodVersion")}
        assert pinned in earlier


# ---- the runner behaves like Argo CD ------------------------------------------------------


def test_luatest_fails_with_a_readable_diff_when_a_fixture_does_not_match(luatest: Path, tmp_path: Path) -> None:
    broken = tmp_path / "faiss.indexops.io" / "FaissIndex"
    shutil.copytree(KIND_DIR, broken)
    health_test = broken / "health_test.yaml"
    health_test.write_text(health_test.read_text().replace("status: Suspended", "status: Healthy", 1))
    action_test = broken / "actions" / "testdata" / "serving_rebuildRequested.yaml"
    action_test.write_text(action_test.read_text().replace(NOW, "2026-01-02T03:04:06Z"))
    rc, report, stderr = run_fixtures(luatest, directory=broken)
    assert rc == 1
    assert report["failed"] == 2
    assert "FAIL  health" in stderr and '.status: expected "Healthy", got "Suspended"' in stderr
    assert f'.metadata.annotations["{c.ANNOTATION_REBUILD}"]: expected "2026-01-02T03:04:06Z", got "{NOW}"' in stderr


def test_luatest_runs_scripts_in_argo_cds_sandbox(luatest: Path, tmp_path: Path) -> None:
    """No string/math/io library, os limited to time and date, emptied maps restored."""
    obj = serving_index()
    probes = {
        "string.format": 'return {status = string.format("%s", "Healthy"), message = ""}',
        "method on a string": 'return {status = ("Healthy"):lower(), message = ""}',
        "math.floor": "return {status = 'Healthy', message = tostring(math.floor(1.5))}",
        "io.open": "io.open('/etc/passwd')\nreturn {status = 'Healthy', message = ''}",
        "os.execute": "os.execute('true')\nreturn {status = 'Healthy', message = ''}",
    }
    for what, script in probes.items():
        path = tmp_path / "probe.lua"
        path.write_text(script)
        [result] = evaluate(luatest, "health", path, [obj])
        assert "error" in result, f"{what} must not be available to Argo CD scripts"
    path.write_text('return {status = "Fine", message = os.date("!%Y-%m-%dT%TZ")}')
    [result] = evaluate(luatest, "health", path, [obj])
    assert result["result"] == {"status": "Unknown", "message": "Lua returned an invalid health status"}
    path.write_text("obj.metadata.labels = {}\nreturn obj")  # Lua cannot encode an empty map...
    [result] = evaluate(luatest, "action", path, [obj])
    assert result["result"]["metadata"]["labels"] == obj["metadata"]["labels"]  # ...so Argo CD keeps the old one
    assert result["patch"] == {}


def test_every_fixture_object_is_a_faissindex_the_operator_accepts_except_the_invalid_spec_one() -> None:
    from faiss_operator.observe import parse_spec
    from indexops_api.status import FaissIndexStatus

    for path in sorted(KIND_DIR.glob("testdata/*.yaml")) + sorted(ACTIONS_DIR.glob("testdata/*.yaml")):
        obj = load(path)
        assert (obj["apiVersion"], obj["kind"]) == (c.API_VERSION, c.KIND), path.name
        if "status" in obj:
            FaissIndexStatus.model_validate(obj["status"])
        spec, error = parse_spec(obj["spec"])
        if path.name == "degraded_invalidSpec.yaml":
            degraded = next(x for x in obj["status"]["conditions"] if x["type"] == "Degraded")
            assert spec is None and error == degraded["message"], error
        else:
            assert spec is not None, f"{path.name}: {error}"
