"""`faissctl bench`: a small query load, summarized per served version, over a fake transport."""

from __future__ import annotations

import json
from typing import Any

from faissctl_fakes import V3, V4, FakeKube, index, invoke, make_app, serving_status

from faissctl.bench import Sample, percentile, query_bodies, run, summarize


def test_query_bodies_match_the_serving_request_format() -> None:
    from index_serving.request import parse_search_request  # the server's own parser accepts them

    bodies = query_bodies(dimension=8, count=3, k=5, batch=2, seed=1)
    parsed = [parse_search_request(b) for b in bodies]
    assert [p.vectors.shape for p in parsed] == [(2, 8)] * 3 and {p.k for p in parsed} == {5}
    assert len({p.key for p in parsed}) == 3, "each request has its own routing key"


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile([3.0], 99)) == (50.0, 99.0, 3.0)


def test_samples_are_summarized_per_version_stable_first_with_a_row_for_failures() -> None:
    samples = [Sample(0.002, V4, "candidate")] * 2 + [Sample(0.001, V3, "stable")] * 8 + [Sample(0.5, None, None, "HTTP 503: no index")]
    rows = summarize(samples, wall_seconds=2.0)
    assert [(r["version"], r["role"], r["requests"], r["qps"]) for r in rows] == [
        (V3, "stable", 8, 4.0), (V4, "candidate", 2, 1.0), (None, None, 1, None)]
    assert rows[0]["p50Ms"] == 1.0 and rows[2]["errors"] == 1 and rows[2]["firstError"] == "HTTP 503: no index"


def test_run_sends_every_body_and_records_transport_errors() -> None:
    def post(body: bytes) -> tuple[int, bytes]:
        if b"fail" in body:
            raise ConnectionError("refused")
        return 200, json.dumps({"version": V3, "role": "stable"}).encode()

    samples, seconds = run(post, [b"ok", b"fail", b"ok"], concurrency=2)
    assert [s.version for s in samples] == [V3, None, V3] and samples[1].error == "refused" and seconds >= 0


def _answer(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    key = json.loads(body)["key"]
    version, role = (V4, "candidate") if int(key, 16) % 5 == 0 else (V3, "stable")
    return 200, json.dumps({"version": version, "role": role, "ids": [[1]], "distances": [[0.0]]}).encode()


def test_bench_with_url_prints_one_row_per_served_version() -> None:
    calls: list[str] = []

    def post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        calls.append(url)
        return _answer(url, body, timeout)

    result = invoke(make_app(http_post=post), "bench", "--url", "http://localhost:8080/", "--dimension", "8", "-r", "50")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("50 requests to http://localhost:8080/: concurrency 4, k=10, 1 vector(s) per request")
    assert lines[1].split() == ["VERSION", "ROLE", "REQUESTS", "QPS", "P50", "P99", "ERRORS"]
    assert lines[2].split()[:2] == [V3, "stable"] and lines[3].split()[:2] == [V4, "candidate"]
    assert set(calls) == {"http://localhost:8080/v1/search"} and len(calls) == 60, "50 measured + 10 warm-up"


def test_bench_by_name_uses_the_index_dimension_and_pod_endpoints() -> None:
    kube = FakeKube(endpoints=["http://10.0.0.5:8080", "http://10.0.0.6:8080"]).add(index(status=serving_status()))
    seen: list[Any] = []

    def post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        seen.append((url, len(json.loads(body)["vectors"][0])))
        return _answer(url, body, timeout)

    data = json.loads(invoke(make_app(kube, http_post=post), "bench", "weather", "-r", "20", "-o", "json").stdout)
    assert {u for u, _ in seen} == {"http://10.0.0.5:8080/v1/search", "http://10.0.0.6:8080/v1/search"}
    assert {d for _, d in seen} == {8}
    assert data["target"] == "2 pod endpoint(s) of service default/weather-serving"
    assert sum(v["requests"] for v in data["versions"]) == 20


def test_bench_falls_back_to_the_api_server_proxy_when_pods_are_unreachable() -> None:
    kube = FakeKube(endpoints=["http://10.0.0.5:8080"]).add(index(status=serving_status()))

    def unreachable(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        raise ConnectionError("timed out")

    result = invoke(make_app(kube, http_post=unreachable), "bench", "weather", "-r", "5")
    assert result.exit_code == 0, result.output
    assert "using the API server's service proxy" in result.stderr and len(kube.proxied) == 10
    assert "through the API server proxy" in result.stdout


def test_bench_needs_a_name_or_url_and_exits_1_when_every_request_fails() -> None:
    assert invoke(make_app(), "bench").exit_code == 2
    assert "--dimension is required" in invoke(make_app(), "bench", "--url", "http://x").stderr
    failing = invoke(make_app(http_post=lambda u, b, t: (503, b'{"error": "no stable index version loaded yet"}')),
                     "bench", "--url", "http://x", "--dimension", "4", "-r", "3")
    assert failing.exit_code == 1 and "first error: HTTP 503: no stable index version loaded yet" in failing.stdout


def test_bench_refuses_an_index_without_operator_managed_serving() -> None:
    kube = FakeKube().add(index(status=serving_status(), serving={"enabled": False}))
    result = invoke(make_app(kube), "bench", "weather")
    assert result.exit_code == 1 and "serving disabled" in result.stderr
