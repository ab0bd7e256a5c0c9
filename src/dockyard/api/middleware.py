"""Pure ASGI middleware: correlation ids and request body limits."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.kernel.context import bind_request_id

REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Accept a safe incoming X-Request-ID or make one; bind it for logs; echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = bind_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Answer 413 for bodies over `max_bytes`, whether declared up front or streamed.

    A body without Content-Length is read here first (it is small by definition, or it is
    refused) and replayed to the app, so the app never sees a partial body."""

    def __init__(self, app: ASGIApp, max_bytes: int,
                 streamed: Mapping[str, int] | None = None) -> None:
        """`streamed` maps paths (or prefixes ending in '/') whose route reads (and limits)
        its body as a stream to the largest body they accept; those bodies are never buffered
        here."""
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = dict(streamed or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = self._streamed_limit(scope["path"])
        limit = self.max_bytes if streamed is None else streamed
        declared = Headers(scope=scope).get("content-length")
        if declared is not None or streamed is not None:
            if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
                await self._reject(send, limit)
                return
            await self.app(scope, receive, send)
            return
        body = await self._read_within_limit(receive)
        if body is None:
            await self._reject(send, self.max_bytes)
            return
        await self.app(scope, _replay(body, receive), send)

    def _streamed_limit(self, path: str) -> int | None:
        """The limit of a streamed path; a key ending in '/' covers every path under it."""
        for key, limit in self.streamed.items():
            if path == key or (key.endswith("/") and path.startswith(key)):
                return limit
        return None

    async def _read_within_limit(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return None
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _reject(self, send: Send, limit: int) -> None:
        detail = f"request body is larger than {limit} bytes"
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
