"""Prometheus exposition at /metrics."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Account


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_request_counts_latency_queue_depth_and_breaker_state(
    client: httpx.AsyncClient, owner: Account
) -> None:
    for _ in range(3):
        await client.get("/api/v1/projects", headers=owner.headers)
    await client.get("/api/v1/projects/nope", headers=owner.headers)
    answer = await client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    listing = (("method", "GET"), ("route", "/api/v1/projects"), ("status", "200"))
    assert found[("dockyard_http_requests_total", listing)] == 3
    missing = (("method", "GET"), ("route", "/api/v1/projects/{project}"), ("status", "404"))
    assert found[("dockyard_http_requests_total", missing)] == 1
    buckets = (("le", "+Inf"), ("method", "GET"), ("route", "/api/v1/projects"))
    assert found[("dockyard_http_request_duration_seconds_bucket", buckets)] == 3
    assert found[("dockyard_queue_depth", (("broker", "default"), ("queue", "default")))] >= 0
    assert found[("dockyard_queue_breaker_state", (("broker", "default"),))] == 0


def test_request_series_expose_what_prometheus_client_would() -> None:
    """The lock-free series against prometheus_client's own Counter and Histogram, fed the
    same observations (bucket edges included: `le` counts values up to and including it)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from dockyard.kernel.metrics.prometheus import LATENCY_BUCKETS, HttpMetrics

    ours = HttpMetrics()
    registry = CollectorRegistry()
    counter = Counter("dockyard_http_requests", "HTTP requests served.",
                      ["method", "route", "status"], registry=registry)
    histogram = Histogram("dockyard_http_request_duration_seconds", "Time to serve a request.",
                          ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)
    observations = [("GET", "/a", 200, 0.001), ("GET", "/a", 200, 0.0011), ("GET", "/a", 404, 7),
                    ("PUT", "/b", 500, 11.0), ("GET", "/a", 200, 0.0)]
    for method, route, status, seconds in observations:
        ours.observe(method, route, status, seconds)
        counter.labels(method, route, str(status)).inc()
        histogram.labels(method, route).observe(seconds)
    expected = {k: v for k, v in samples(generate_latest(registry).decode()).items()
                if not k[0].endswith("_created")}
    found = samples(generate_latest(ours.registry).decode())
    assert {k: v for k, v in found.items() if k[0].startswith("dockyard_http")} == expected
