"""Pure ASGI middleware recording every request; `install_request_metrics` wires it into an app."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.core import app_metrics_prom
from dockyard.kernel.metrics import record
from dockyard.kernel.metrics.prometheus import CONTENT_TYPE, HttpMetrics, route_label
from dockyard.kernel.metrics.realip import Network, parse_networks
from dockyard.kernel.metrics.sink import MetricsSink
from dockyard.kernel.queue.manager import QueueManager
from dockyard.kernel.settings import Settings


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, sink: MetricsSink, trusted: tuple[Network, ...]) -> None:
        self.app = app
        self.sink = sink
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        facts = record.begin_request()
        try:
            await self.app(scope, receive, _observing(send, facts))
        except Exception as exc:
            facts.status_code, facts.error = 500, type(exc).__name__
            raise
        finally:
            await self._record(scope, facts)

    async def _record(self, scope: Scope, facts: record.RequestFacts) -> None:
        seconds, route = time.perf_counter() - facts.started, route_label(scope)
        self.sink.counters.observe(scope["method"], route, facts.status_code, seconds)
        if self.sink.submit(record.build_record(scope, facts, self.trusted, route)):
            await self.sink.flush()  # the response has been sent in full by now

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Flush on a timer while the app runs; flush the rest when it shuts down."""
        stop = asyncio.Event()
        flusher = asyncio.create_task(self.sink.flush_periodically(stop))

        async def watching_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                stop.set()
                await flusher
                await self.sink.close()
            return message

        try:
            await self.app(scope, watching_receive, send)
        finally:
            stop.set()


def _observing(send: Send, facts: record.RequestFacts) -> Send:
    async def observing_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            facts.status_code = message["status"]
        elif message["type"] == "http.response.body" and facts.status_code >= 400:
            room = record.ERROR_BODY_LIMIT - len(facts.error_body)
            facts.error_body += message.get("body", b"")[: max(room, 0)]
        await send(message)

    return observing_send


def _manager_factory(app: Starlette, settings: Settings) -> Any:
    def make() -> QueueManager | None:
        platform = getattr(app.state, "platform", None)
        if platform is None:
            return None
        return QueueManager(settings.redis_url, db=platform.db)

    return make


def _token_ok(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    return not token or hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def install_request_metrics(app: Starlette, settings: Settings) -> None:
    """Record every request (when enabled) and serve Prometheus metrics at /metrics."""
    counters = HttpMetrics()
    sink = MetricsSink(_manager_factory(app, settings), counters, settings.request_metrics_batch)
    app.state.request_metrics = sink

    async def prometheus_metrics(request: Request) -> Response:
        if not _token_ok(request, settings.metrics_token.get_secret_value()):
            return Response("send Authorization: Bearer <DOCKYARD_METRICS_TOKEN>\n", 401,
                            {"WWW-Authenticate": "Bearer"}, media_type="text/plain")
        body = await counters.exposition(sink.manager)
        platform = getattr(app.state, "platform", None)
        apps = await app_metrics_prom.exposition(platform) if platform is not None else b""
        return Response(body + apps, media_type=CONTENT_TYPE)

    app.add_route("/metrics", prometheus_metrics, methods=["GET"], include_in_schema=False)
    if settings.request_metrics:
        trusted = parse_networks(settings.trusted_proxies)
        app.add_middleware(RequestMetricsMiddleware, sink=sink, trusted=trusted)
