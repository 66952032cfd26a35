"""Property: any FaissIndex a tenant can write is refused readably or handled readably.

Hypothesis generates specs mixing valid values with hostile ones (unbounded durations,
foreign URL schemes, SQL that escapes, free-form quantities, wrong types, huge numbers) and
sends each to the real API server as a server-side dry run (fast: validated, defaulted,
never stored). For each one:

* refused: the message is readable (no Go ``<nil>``, struct or map dumps) and names a field;
* accepted: the operator's own parsing of the defaulted object either accepts it or gives a
  readable ``InvalidSpec`` message, and never raises anything else.

Then a few accepted specs, of different shapes, are created for real with the operator
running: each reaches a status whose conditions are readable, and the operator neither
restarts nor logs a traceback. ``FUZZ_EXAMPLES`` (default 500) sets the number of specs.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from pydantic import ValidationError
from support import readable

from faiss_operator.observe import parse_spec
from tests.e2e.helpers import index_status, lifecycle_namespace
from hack.localstack import OPERATOR_NAMESPACE, RELEASE, Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.e2e_serial]  # counts tracebacks in the whole operator log: runs alone

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
REAL = 6  # accepted specs created for real and reconciled
GROUP, VERSION, PLURAL = "faiss.indexops.io", "v1alpha1", "faissindexes"

# Input is echoed in both sides' messages ("Invalid value: ..."), so generated text avoids the
# characters of the Go renderings the readability check looks for.
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="<&[{"), max_size=40)
hostile_text = st.one_of(text, st.sampled_from([
    "", " ", "null", "%s%s%n", "$(id)", "../../etc/passwd", "a" * 300, "9" * 30, "-1", "0x10",
    "ftp://x", "http://user:pass@host", "http://" + "a" * 300, "file:///etc/passwd", "javascript:alert(1)",
]))
duration = st.one_of(st.sampled_from(["1s", "9s", "10s", "1m", "5m", "6h", "24h", "2d", "0m", "9999999999d", "1y", "m"]),
                     st.from_regex(r"\A[0-9]{1,12}[smhdx]\Z"), hostile_text)
quantity = st.one_of(st.sampled_from(["500m", "1", "2Gi", "1.5Gi", "lots", "-1", "1e3", "1e999", "Infinity", ""]), hostile_text)
endpoint = st.one_of(st.sampled_from(["http://127.0.0.1:1", "https://s3.example.com", "ftp://x", "http://k:s@x",
                                      "http://[::1]:9000", "https://"]), hostile_text)
number = st.one_of(st.integers(-10, 70000), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                   hostile_text, st.none())
sql = st.one_of(st.sampled_from([
    "select id, embedding from items",
    "select 1; COMMIT; DELETE FROM victim",
    "select id, embedding from items) AS src; DROP TABLE victim; --",
    "with d as (delete from victim returning *) select * from d",
    "select $$;$$, id, embedding from items",
    "select 'it''s', id, embedding from items -- trailing",
    "/* unterminated",
]), hostile_text)
resources = st.fixed_dictionaries({}, optional={
    "requests": st.dictionaries(st.sampled_from(["cpu", "memory", "bananas", "nvidia.com/gpu", "hugepages-2Mi"]), quantity, max_size=3),
    "limits": st.dictionaries(st.sampled_from(["cpu", "memory", "ephemeral-storage", ""]), quantity, max_size=3),
})

# A valid spec of one of the three source kinds...
VALID_SOURCES = [
    {"s3": {"bucket": "faiss-demo-embeddings", "key": "fuzz/{horizon}/vectors.npy"}},
    {"postgres": {"dsnSecret": {"name": "pg"}, "table": "items"}},
    {"postgres": {"dsnSecret": {"name": "pg"}, "query": "select id, embedding from items"}},
    {"file": {"path": "/data/vectors.npy"}},
]
valid_specs = st.fixed_dictionaries({
    "horizon": st.sampled_from(["6h", "24h", "48h"]),
    "dimension": st.integers(1, 64),
    "indexType": st.sampled_from(["Flat", "HNSW"]),
    "source": st.sampled_from(VALID_SOURCES),
    "storage": st.just({"bucket": "faiss-demo-indexes", "prefix": "fuzz"}),
    "sync": st.sampled_from([{"interval": "10m"}, {"interval": "1h", "policy": "Report"}]),
})
# ... with up to three fields replaced by hostile values.
HOSTILE: dict[str, Any] = {
    "horizon": duration,
    "dimension": number,
    "metric": st.sampled_from(["L2", "InnerProduct", "Cosine", "Hamming"]),
    "indexType": st.sampled_from(["Flat", "IVF", "IVFPQ", "HNSW", "OPQ+HNSW", "Auto", "LSH"]),
    "parameters": st.fixed_dictionaries({}, optional={"m": number, "efSearch": number, "nlist": number}),
    "factory": hostile_text,
    "schedule": st.one_of(st.sampled_from(["*/5 * * * *", "@hourly", "61 * * * *", "* * *"]), hostile_text),
    "timeZone": st.one_of(st.sampled_from(["UTC", "Europe/Berlin", "Mars/Olympus"]), hostile_text),
    "source": st.one_of(
        st.fixed_dictionaries({"s3": st.fixed_dictionaries(
            {"bucket": st.one_of(st.just("faiss-demo-embeddings"), hostile_text)},
            optional={"key": hostile_text, "prefix": hostile_text, "endpoint": endpoint,
                      "format": st.sampled_from(["npy", "parquet", "csv"])})}),
        st.fixed_dictionaries({"postgres": st.fixed_dictionaries(
            {"dsnSecret": st.fixed_dictionaries({"name": st.one_of(st.just("pg"), hostile_text)}, optional={"key": hostile_text})},
            optional={"query": sql, "table": st.one_of(st.just("items"), hostile_text),
                      "window": st.fixed_dictionaries({"column": st.just("ts"), "last": duration}), "batchSize": number})}),
        st.fixed_dictionaries({"file": st.fixed_dictionaries({"path": hostile_text})}),
        st.just({}),
    ),
    "storage": st.fixed_dictionaries({"bucket": st.one_of(st.just("faiss-demo-indexes"), hostile_text)},
                                     optional={"endpoint": endpoint, "prefix": hostile_text,
                                               "deletionPolicy": st.sampled_from(["Retain", "Delete", "Purge"])}),
    "sync": st.fixed_dictionaries({}, optional={"interval": duration, "policy": st.sampled_from(["Rebuild", "Report", "x"])}),
    "rollout": st.fixed_dictionaries({}, optional={
        "percent": number, "keepVersions": number, "pinnedVersion": hostile_text,
        "steps": st.lists(st.fixed_dictionaries({"percent": number, "pause": duration}), max_size=3)}),
    "validation": st.fixed_dictionaries({}, optional={"minRecall": number, "k": number, "minVectors": number}),
    "build": st.fixed_dictionaries({}, optional={"image": hostile_text, "resources": resources, "activeDeadlineSeconds": number}),
    "serving": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "replicas": number, "image": hostile_text,
                                                   "resources": resources, "port": number}),
}
overrides = st.lists(st.sampled_from(sorted(HOSTILE)), max_size=3, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: HOSTILE[k] for k in keys}))
specs = st.builds(lambda base, changed: {**base, **changed}, valid_specs, overrides)


def _doc(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "FaissIndex", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def _message(exc: client.ApiException) -> str:
    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (TypeError, ValueError):
        return str(exc.body)


@pytest.fixture(scope="module")
def cluster(stack_env: dict[str, str]) -> Cluster:
    c = Cluster.from_stack()
    c.install_operator()
    c.ensure_bucket("faiss-demo-embeddings")
    c.ensure_bucket("faiss-demo-indexes")
    return c


@pytest.fixture(scope="module")
def namespace(cluster: Cluster):
    namespaces = lifecycle_namespace(cluster, "fuzz")
    yield next(namespaces)
    next(namespaces, None)


def _operator_health(cluster: Cluster) -> tuple[int, list[str]]:
    """(total container restarts, the log lines with a traceback) over the operator's pods."""
    pods = cluster.get_json("pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    restarts = sum(cs.get("restartCount", 0) for p in pods for cs in p["status"].get("containerStatuses", []))
    tracebacks = []
    for pod in pods:
        logs = cluster.kubectl("logs", "-n", OPERATOR_NAMESPACE, pod["metadata"]["name"], "--all-containers", check=False)
        tracebacks += [line for line in logs.stdout.splitlines() if "Traceback" in line]
    return restarts, tracebacks


def test_generated_specs_are_refused_readably_or_handled_readably(cluster: Cluster, api_client: client.ApiClient,
                                                                   namespace: str) -> None:
    api = client.CustomObjectsApi(api_client)
    outcome = {"refused": 0, "accepted": 0, "invalid_for_operator": 0}
    accepted: dict[str, dict[str, Any]] = {}  # one per shape (source kind x operator verdict)
    health_before = _operator_health(cluster)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec=specs)
    def apply_dry_run(spec: dict[str, Any]) -> None:
        name = f"fuzz-{uuid.uuid4().hex[:8]}"
        try:
            stored = api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _doc(name, namespace, spec),
                                                         dry_run="All")
        except client.ApiException as exc:
            message = _message(exc)
            assert exc.status in (400, 422), (exc.status, message)
            assert readable(message) and "spec" in message, message
            outcome["refused"] += 1
            return
        outcome["accepted"] += 1
        try:
            parsed, error = parse_spec(stored["spec"])
        except Exception as exc:  # noqa: BLE001 - the property: the operator's parsing never raises
            raise AssertionError(f"the operator's spec parsing raised {type(exc).__name__}: {exc} for {spec}") from exc
        if parsed is None:
            assert error and readable(error), error
            outcome["invalid_for_operator"] += 1
        kind = next(iter(spec["source"]), "none")
        accepted.setdefault(f"{kind}/{'ok' if parsed else 'invalid'}", spec)

    apply_dry_run()
    assert outcome["refused"] + outcome["accepted"] >= EXAMPLES, outcome
    assert outcome["refused"] > 0 and outcome["accepted"] > 0, outcome
    print(f"fuzz outcome: {outcome}; shapes created for real: {sorted(accepted)}")

    names = []
    for shape, spec in list(accepted.items())[:REAL]:
        name = f"fuzz-{shape.replace('/', '-')}-{uuid.uuid4().hex[:4]}"[:50]
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _doc(name, namespace, spec))
        names.append(name)
    deadline = time.monotonic() + 120
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            st_ = index_status(cluster, namespace, name)
            conditions = st_.get("conditions") or []
            if st_.get("observedGeneration") and conditions:
                for cond in conditions:
                    assert cond.get("reason") and readable(cond.get("message", "") or cond["reason"]), (name, cond)
                pending.discard(name)
        time.sleep(1)
    assert not pending, f"no readable status within 120 s: {sorted(pending)}"
    for name in names:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    restarts, tracebacks = _operator_health(cluster)
    assert restarts == health_before[0], "the operator restarted during the fuzz run"
    new = [line[:3000] for line in tracebacks if line not in health_before[1]]
    assert not new, "the operator logged a traceback during the fuzz run:\n" + "\n".join(new)
