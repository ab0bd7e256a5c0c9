"""ASGI middleware that lets through only signed, fresh, first-use requests.

Everything it decides before the app runs comes from the headers: an unsigned, stale or
replayed request, or one declaring a body over its route's cap, is refused without reading a
byte of its body. The body then streams to the app, counted and hashed; if it grows past the
cap or ends with a digest other than the signed one, the app sees a disconnect and the caller
gets 413 or 400 instead of whatever the app would have answered."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.agent import auth
from dockyard.agent.auth import AuthFailure, KeyStore, NonceCache
from dockyard.kernel.context import current_request_id

log = logging.getLogger("dockyard.agent.auth")
PUBLIC_PATHS = frozenset({"/healthz"})
_DISCONNECT: Message = {"type": "http.disconnect"}


@dataclass(frozen=True)
class BodyLimits:
    """The largest body each route takes: `default` for JSON, `uploads` by path."""

    default: int
    uploads: Mapping[str, int]

    def of(self, path: str) -> int:
        return self.uploads.get(path, self.default)


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str


def signed_path(scope: Scope) -> str:
    """The path and query exactly as sent, which is what the client signs."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


def _too_large(limit: int) -> Refusal:
    return Refusal(413, f"request body larger than {limit} bytes")


class CheckedBody:
    """The request body passed on as it arrives, counted and hashed against the signed digest."""

    def __init__(self, receive: Receive, signed_digest: str, limit: int) -> None:
        self._receive = receive
        self._signed_digest = signed_digest
        self._limit = limit
        self._size = 0
        self._digest = hashlib.sha256()
        self.refusal: Refusal | None = None

    async def receive(self) -> Message:
        if self.refusal is not None:
            return _DISCONNECT
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        self._size += len(chunk)
        self._digest.update(chunk)
        if self._size > self._limit:
            self.refusal = _too_large(self._limit)
        elif not message.get("more_body", False) and (
                self._digest.hexdigest() != self._signed_digest):
            self.refusal = Refusal(400, "the request body does not match its signed digest")
        return message if self.refusal is None else _DISCONNECT


class SignatureGate:
    def __init__(self, app: ASGIApp, keys: KeyStore, nonces: NonceCache, limits: BodyLimits,
                 clock: Callable[[], float] = auth.now) -> None:
        self.app = app
        self.keys = keys
        self.nonces = nonces
        self.limits = limits
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        claim = self._check(scope)
        if isinstance(claim, AuthFailure):
            log.warning("agent request refused: %s", claim.value, extra=_context(scope, claim))
            await _answer(send, Refusal(401, f"not authenticated: {claim.value}"))
            return
        limit = self.limits.of(scope["path"])
        declared = Headers(scope=scope).get("content-length", "0")
        if not (declared.isascii() and declared.isdigit()) or int(declared) > limit:
            await _answer(send, _too_large(limit))
            return
        await self._pass_on(scope, CheckedBody(receive, claim.body_sha256, limit), send)

    def _check(self, scope: Scope) -> auth.SignedRequest | AuthFailure:
        headers = dict(Headers(scope=scope).items())
        claim = auth.parse_claim(headers, scope["method"], signed_path(scope))
        if isinstance(claim, AuthFailure):
            return claim
        request, signature = claim
        now = self.clock()
        failure = auth.verify(self.keys.key, request, signature, now, self.nonces.max_age)
        if failure is None and not self.nonces.first_use(request.nonce, now):
            failure = AuthFailure.REPLAYED
        return request if failure is None else failure

    async def _pass_on(self, scope: Scope, body: CheckedBody, send: Send) -> None:
        """Run the app; if the body turned out bad, answer for it (the app's own answer to
        the disconnect it saw, or its error, is dropped)."""
        answered = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal answered
            if body.refusal is None or answered:
                answered = True
                await send(message)

        try:
            await self.app(scope, body.receive, send_unless_refused)
        except Exception:
            if body.refusal is None:
                raise
        if body.refusal is not None and not answered:
            log.warning("agent request body refused: %s", body.refusal.detail,
                        extra={"method": scope["method"], "path": scope["path"],
                               "request_id": current_request_id()})
            await _answer(send, body.refusal)


def _context(scope: Scope, failure: AuthFailure) -> dict[str, str | None]:
    return {"method": scope["method"], "path": scope["path"], "reason": failure.name,
            "request_id": current_request_id()}


async def _answer(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"detail": refusal.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
