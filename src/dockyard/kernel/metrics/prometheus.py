"""Prometheus exposition: request counts and latency per route, queue depth, breaker state."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from starlette.types import Scope

from dockyard.kernel.queue.breaker import STATE_VALUES
from dockyard.kernel.queue.jobs import DEFAULT_QUEUE
from dockyard.kernel.queue.manager import QueueManager

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BOUNDS = (*(repr(float(bound)) for bound in LATENCY_BUCKETS), "+Inf")  # as Prometheus writes


def route_label(scope: Scope) -> str:
    """The route's full template ('/api/v1/projects/{project}'), never the raw path, so the
    number of series stays bounded. The matched route may know only its part below the
    prefixes of the routers it was included through; the prefix is then taken from the path."""
    template = getattr(scope.get("route"), "path_format", None)
    if not isinstance(template, str):
        return "unmatched"
    params = {name: str(value) for name, value in scope.get("path_params", {}).items()}
    try:
        concrete = template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template
    path: str = scope["path"]
    return path[: len(path) - len(concrete)] + template if path.endswith(concrete) else template


class RequestSeries:
    """Request counts per (method, route, status) and latency histograms per (method, route),
    as plain numbers: one event loop adds to them, so no lock is taken per request (a
    prometheus_client Counter and Histogram take three), and they are turned into metric
    families only when scraped."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.buckets: dict[tuple[str, str], list[int]] = {}  # per bucket, not cumulative
        self.sums: dict[tuple[str, str], float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        buckets = self.buckets.get(key[:2])
        if buckets is None:
            buckets = self.buckets[key[:2]] = [0] * (len(LATENCY_BUCKETS) + 1)
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sums[key[:2]] = self.sums.get(key[:2], 0.0) + seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("dockyard_http_requests", "HTTP requests served.",
                                       labels=["method", "route", "status"])
        for (method, route, status), count in self.counts.items():
            requests.add_metric([method, route, str(status)], count)
        latency = HistogramMetricFamily("dockyard_http_request_duration_seconds",
                                        "Time to serve a request.", labels=["method", "route"])
        for labels, buckets in self.buckets.items():
            latency.add_metric(list(labels), _cumulative(buckets), self.sums[labels])
        yield from (requests, latency)


def _cumulative(buckets: list[int]) -> list[tuple[str, float]]:
    total, result = 0, []
    for bound, count in zip(_BOUNDS, buckets, strict=True):
        total += count
        result.append((bound, float(total)))
    return result


class HttpMetrics:
    """Counters of one app, in a registry of their own (several apps per process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.series = RequestSeries()
        self.registry.register(self.series)
        self.observe = self.series.observe
        self.queue_depth = Gauge(
            "dockyard_queue_depth", "Jobs not yet processed.", ["broker", "queue"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "dockyard_queue_breaker_state", "0 closed, 1 half-open, 2 open.", ["broker"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "dockyard_request_metrics_dropped", "Request records that could not be queued.",
            registry=self.registry,
        )

    async def exposition(self, manager: QueueManager | None) -> bytes:
        if manager is not None:
            await self._sample_queue(manager)
        return generate_latest(self.registry)

    async def _sample_queue(self, manager: QueueManager) -> None:
        try:
            depth = await manager.depth(DEFAULT_QUEUE)
        except Exception:  # a scrape must answer even when the queue cannot
            depth = -1
        self.queue_depth.labels(manager.broker, DEFAULT_QUEUE).set(depth)
        self.breaker_state.labels(manager.broker).set(STATE_VALUES[manager.breaker.state])
