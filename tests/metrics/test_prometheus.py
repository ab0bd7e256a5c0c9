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
