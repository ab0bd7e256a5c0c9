"""Turn library errors into HTTP answers; anything unexpected into a logged, bare 500."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from dockyard.api.answers import error_response, unexpected
from dockyard.kernel.errors import DockyardError
from dockyard.models.schemas import ErrorBody


def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 with where and what, never echoing the input back (it may be secret, or not UTF-8)."""
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(DockyardError, error_response)
    app.add_exception_handler(Exception, unexpected)


def _described(text: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": text}


RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("The request body could not be parsed (not UTF-8 JSON or form data)."),
    401: _described("Missing, invalid or expired credentials."),
    403: _described("Your role may not do this."),
    404: _described("No such object in your workspace."),
    413: _described("The request body is too large."),
    422: _described("The input is not valid; the detail says why."),
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMON_RESPONSES, 409: _described("The change conflicts with an existing object."),
}
LIMITED_RESPONSES: dict[int | str, dict[str, Any]] = {
    **WRITE_RESPONSES, 429: {**_described("Too many attempts."), "headers": RETRY_AFTER},
}
