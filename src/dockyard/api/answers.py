"""The answers to library errors and to anything unexpected, on Starlette alone (the node
agent uses them without FastAPI)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from dockyard.kernel.context import current_request_id
from dockyard.kernel.errors import DockyardError, NotAuthenticated, RateLimited

log = logging.getLogger("dockyard.api")


def error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DockyardError)
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, NotAuthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)


def unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette calls a sync handler in a thread: the exception is passed, not current
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    detail = f"internal error; quote request id {current_request_id()} when reporting it"
    return JSONResponse({"detail": detail}, status_code=500)
