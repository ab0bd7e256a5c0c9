"""ASGI middleware that lets through only signed, fresh, first-use requests."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from tempfile import SpooledTemporaryFile

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.agent import auth
from dockyard.agent.auth import AuthFailure, KeyStore, NonceCache
from dockyard.kernel.context import current_request_id

log = logging.getLogger("dockyard.agent.auth")
_CHUNK = 1024 * 1024
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
PUBLIC_PATHS = frozenset({"/healthz"})


def signed_path(scope: Scope) -> str:
    """The path and query exactly as sent, which is what the client signs."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


class SignatureGate:
    def __init__(self, app: ASGIApp, keys: KeyStore, max_age: int,
                 clock: Callable[[], float] = auth.now) -> None:
        self.app = app
        self.keys = keys
        self.max_age = max_age
        self.clock = clock
        self.nonces = NonceCache(max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        body, digest = await _spool(receive)
        try:
            failure = self._check(scope, digest)
            if failure is not None:
                await _refuse(scope, send, failure)
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            body.close()

    def _check(self, scope: Scope, digest: str) -> AuthFailure | None:
        headers = dict(Headers(scope=scope).items())
        claim = auth.parse_claim(headers, scope["method"], signed_path(scope), digest)
        if isinstance(claim, AuthFailure):
            return claim
        request, signature = claim
        now = self.clock()
        failure = auth.verify(self.keys.key, request, signature, now, self.max_age)
        if failure is None and not self.nonces.first_use(request.nonce, now):
            failure = AuthFailure.REPLAYED
        return failure


async def _spool(receive: Receive) -> tuple[SpooledTemporaryFile[bytes], str]:
    body: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(  # noqa: SIM115 - caller closes
        max_size=_SPOOL_IN_MEMORY
    )
    digest = hashlib.sha256()
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        digest.update(chunk)
        body.write(chunk)
        more = message.get("more_body", False)
    body.seek(0)
    return body, digest.hexdigest()


def _replay(body: SpooledTemporaryFile[bytes], original: Receive) -> Receive:
    """Hand the verified body to the app, then pass on what the server says (disconnects)."""
    finished = False

    async def receive() -> Message:
        nonlocal finished
        if finished:
            return await original()
        chunk = body.read(_CHUNK)
        finished = len(chunk) < _CHUNK
        return {"type": "http.request", "body": chunk, "more_body": not finished}

    return receive


async def _refuse(scope: Scope, send: Send, failure: AuthFailure) -> None:
    log.warning("agent request refused: %s", failure.value, extra={
        "method": scope["method"], "path": scope["path"], "reason": failure.name,
        "request_id": current_request_id(),
    })
    body = json.dumps({"detail": f"not authenticated: {failure.value}"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
