"""git over HTTP at a per-service remote, `{base}/git/{project}/{service}.git`: git's own
`git http-backend` answers, streamed both ways. Not part of the JSON API (hidden from the
OpenAPI document); errors are plain text, which git shows to its user."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from dockyard.api.deps import ClientDep, PlatformDep
from dockyard.gitpush.access import CHALLENGE
from dockyard.gitpush.backend import CgiAnswer
from dockyard.gitpush.cgi import GitRequest
from dockyard.gitpush.remote import GitCall, serve_git
from dockyard.kernel.errors import DockyardError, NotAuthenticated, RateLimited
from dockyard.models.fields import Name

router = APIRouter(include_in_schema=False)


@router.api_route("/git/{project}/{service}.git/{rest:path}", methods=["GET", "POST"])
async def git_http(request: Request, project: Annotated[Name, Path()],
                   service: Annotated[Name, Path()], rest: str, platform: PlatformDep,
                   client: ClientDep) -> Response:
    try:
        answer = await serve_git(platform, _call(request, project, service, rest, client),
                                 _body(request))
    except DockyardError as exc:
        return _refusal(exc)
    return CgiResponse(answer)


class CgiResponse(Response):
    """The backend's answer as it comes. Unlike StreamingResponse, it never reads `receive`
    (to notice a disconnect): the request body is still streaming into the backend then."""

    def __init__(self, answer: CgiAnswer) -> None:  # no Content-Length: the body streams
        self.status_code, self.background, self.answer = answer.head.status, None, answer
        self.raw_headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                            for name, value in answer.head.headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        try:
            async for chunk in self.answer.body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.answer.body.aclose()


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body; a client gone mid-body ends it (git then sees a short pack)."""
    with contextlib.suppress(ClientDisconnect):
        async for chunk in request.stream():
            yield chunk


def _call(request: Request, project: str, service: str, rest: str, client: str) -> GitCall:
    headers = request.headers
    git = GitRequest(request.method, rest, request.url.query, headers.get("content-type"),
                     headers.get("content-length"), headers.get("content-encoding"),
                     headers.get("git-protocol"))
    return GitCall(project, service, git, headers.get("authorization"), client,
                   str(request.base_url).rstrip("/"))


def _refusal(exc: DockyardError) -> PlainTextResponse:
    headers = {"WWW-Authenticate": CHALLENGE} if isinstance(exc, NotAuthenticated) else {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return PlainTextResponse(f"{exc.message}\n", status_code=exc.status_code, headers=headers)
