"""`faissctl versions`, `pin` and `unpin`: stored versions with their roles, and declarative rollback."""

from __future__ import annotations

import json

from faissctl_fakes import V1, V2, V3, V4, FakeKube, FakeStore, index, invoke, make_app, manifest, serving_status

from faissctl.versions import previous_good
from indexops_api.spec import IndexType


def _kube(**status: object) -> FakeKube:
    return FakeKube().add(index(status=serving_status(**status)))


def test_versions_lists_newest_first_with_roles_recall_vectors_size_and_age() -> None:
    store = FakeStore({V1: manifest(V1, recall=0.95), V2: manifest(V2), V3: manifest(V3, recall=0.9935)}, incomplete=[V4])
    kube = _kube(lastGoodVersion=V2, candidateVersion=None)
    kube.objects[("default", "weather")]["spec"]["rollout"] = {"pinnedVersion": V3}
    app = make_app(kube, store)
    result = invoke(app, "versions", "weather")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Versions in s3://idx/faiss-indexes/default/weather/6h/versions/"
    assert lines[1].split() == ["VERSION", "MARKS", "TYPE", "RECALL", "P99", "VECTORS", "SIZE", "CREATED"]
    assert [line.split()[0] for line in lines[2:6]] == [V4, V3, V2, V1]
    assert lines[3].split()[1:5] == ["serving,pinned", "HNSW", "0.9935@10", "0.400"]
    assert lines[4].split()[1:4] == ["last-good", "HNSW", "0.9700@10"]
    assert "1.2 KiB" in lines[3] and "12h ago" in lines[3]
    assert f"note: {V4}: no manifest" in result.stdout
    assert store.opened[0].endpoint == "http://s3.local:9000" and store.prefixes == ["faiss-indexes/default/weather/6h"]


def test_versions_json_has_one_entry_per_version_and_the_location() -> None:
    store = FakeStore({V2: manifest(V2), V3: "access denied to s3://idx/...: check the storage credentials"})
    data = json.loads(invoke(make_app(_kube(), store), "versions", "weather", "-o", "json").stdout)
    assert data["location"].startswith("s3://idx/") and [v["version"] for v in data["versions"]] == [V3, V2]
    assert data["versions"][0]["marks"] == ["serving", "last-good"] and "access denied" in data["versions"][0]["error"]
    assert data["versions"][1]["recall"] == 0.97 and data["versions"][1]["createdAt"] == "2026-11-20T06:00:00Z"


def test_versions_flags_a_serving_version_missing_from_storage_and_honours_s3_endpoint() -> None:
    store = FakeStore({V2: manifest(V2)})
    app = make_app(_kube(), store)
    out = invoke(app, "versions", "weather", "--s3-endpoint", "http://other:9000").stdout
    assert f"note: {V3}: named in status (serving,last-good) but not in storage" in out
    assert store.opened[0].endpoint == "http://other:9000"


def test_pin_sets_spec_rollout_pinned_version_with_a_merge_patch() -> None:
    kube = _kube()
    result = invoke(make_app(kube), "pin", "weather", V2)
    assert result.exit_code == 0, result.output
    assert kube.patches == [("default", "weather", {"spec": {"rollout": {"pinnedVersion": V2}}})]
    assert f"pinned to {V2}" in result.stdout


def test_pin_refuses_a_malformed_version_and_needs_exactly_one_of_version_or_previous() -> None:
    kube = _kube()
    for args, message in ((["weather", "v2"], "is not a version id"), (["weather"], "exactly one of VERSION or --previous"),
                          (["weather", V2, "--previous"], "exactly one of VERSION or --previous")):
        result = invoke(make_app(kube), "pin", *args)
        assert result.exit_code == 2 and message in result.stderr
    assert kube.patches == []


def test_pin_previous_picks_the_newest_older_version_that_passes_the_gates() -> None:
    status = serving_status(currentVersion=V4, history=[{"job": "j", "version": V3, "buildKey": "k", "result": "ValidationFailed"}])
    kube = FakeKube().add(index(status=status))
    store = FakeStore({V1: manifest(V1), V2: manifest(V2, recall=0.5), V3: manifest(V3), V4: manifest(V4)})
    result = invoke(make_app(kube, store), "pin", "weather", "--previous", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pinnedVersion"] == V1
    assert kube.patches[-1][2] == {"spec": {"rollout": {"pinnedVersion": V1}}}
    assert f"skipped {V3}: rejected by the operator" in result.stderr
    assert f"skipped {V2}: recall@10 0.5000 < minRecall 0.9000" in result.stderr


def test_pin_previous_with_nothing_suitable_fails_without_patching_and_says_how_to_pin_explicitly() -> None:
    kube = _kube()
    store = FakeStore({V2: manifest(V2, checks_pass=False), V3: manifest(V3)})
    result = invoke(make_app(kube, store), "pin", "weather", "--previous")
    assert result.exit_code == 1 and "no stored version of weather older than" in result.stderr
    assert "check ids-unique failed: 2 duplicate ids" in result.stderr and kube.patches == []
    assert "faissctl pin weather VERSION" in result.stderr


def test_pin_previous_after_a_migration_rolls_back_to_the_previous_index_type() -> None:
    status = serving_status(currentVersion=V4)
    kube = FakeKube().add(index(status=status))
    kube.objects[("default", "weather")]["spec"]["indexType"] = "IVF"  # migrated HNSW -> IVF; V4 is IVF
    ivf = manifest(V4).model_copy(update={"index_type": IndexType.IVF})
    store = FakeStore({V3: manifest(V3), V4: ivf})
    result = invoke(make_app(kube, store), "pin", "weather", "--previous", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pinnedVersion"] == V3, "the HNSW version from before the migration"


def test_previous_good_needs_a_serving_version() -> None:
    assert previous_good(index(), {V1: manifest(V1)}) == (None, ["nothing serves yet, so there is no previous version"])


def test_unpin_sets_the_pin_to_null_and_is_a_no_op_when_not_pinned() -> None:
    kube = _kube()
    kube.objects[("default", "weather")]["spec"]["rollout"] = {"pinnedVersion": V2, "percent": 100}
    result = invoke(make_app(kube), "unpin", "weather")
    assert result.exit_code == 0 and f"unpinned (was {V2})" in result.stdout
    assert kube.patches == [("default", "weather", {"spec": {"rollout": {"pinnedVersion": None}}})]
    assert kube.objects[("default", "weather")]["spec"]["rollout"] == {"percent": 100}
    again = invoke(make_app(kube), "unpin", "weather")
    assert again.exit_code == 0 and "was not pinned" in again.stdout and len(kube.patches) == 1


def test_a_storage_error_is_one_line_that_says_where_credentials_come_from() -> None:
    from indexops_store.s3 import StorageError

    class NoCredentials(FakeStore):
        def list_versions(self, index_prefix: str) -> dict:
            raise StorageError("s3://idx/faiss-indexes/default/weather/6h/versions/: storage unreachable: Unable to locate credentials")

    result = invoke(make_app(_kube(), NoCredentials()), "versions", "weather")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("Error: cannot list the stored versions: s3://idx/faiss-indexes/default/weather/6h/versions/: ")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE" in result.stderr
