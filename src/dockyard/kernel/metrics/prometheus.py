"""Prometheus exposition: request counts and latency per route, queue depth, breaker state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import Scope

from dockyard.kernel.queue.breaker import STATE_VALUES
from dockyard.kernel.queue.jobs import DEFAULT_QUEUE
from dockyard.kernel.queue.manager import QueueManager

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


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


class HttpMetrics:
    """Counters of one app, in a registry of their own (several apps per process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "dockyard_http_requests", "HTTP requests served.", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dockyard_http_request_duration_seconds", "Time to serve a request.",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
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

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

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
