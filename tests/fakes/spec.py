"""Honest fakes: each exchange of a fake is checked against the provider's published OpenAPI
document with openapi-core. A request the document refuses is answered with an error; an
answer of the fake that it refuses is a bug of the fake, kept in `violations` for the tests."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from openapi_core import Config, OpenAPI
from openapi_core.contrib.starlette.requests import StarletteOpenAPIRequest
from openapi_core.contrib.starlette.responses import StarletteOpenAPIResponse
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
)
from starlette.requests import Request
from starlette.responses import Response

# <repository root>/../shared/specs, beside the working tree
SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"


def load_spec(relative: str) -> dict[str, Any]:
    path = SPECS / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"the provider's official OpenAPI document {path} is missing; an honest fake "
            "cannot run without it (see shared/specs/README.md)")
    document: dict[str, Any] = json.loads(path.read_text())
    return document


class SpecRequest(StarletteOpenAPIRequest):
    """A request to the fake as if it had been sent to the provider's own server."""

    def __init__(self, request: Request, body: bytes, server_url: str) -> None:
        super().__init__(request, body)
        server = urlsplit(server_url)
        self._host_url = f"{server.scheme}://{server.netloc}"

    @property
    def host_url(self) -> str:
        return self._host_url


def describe(error: Exception) -> str:
    """An openapi-core error with the schema errors behind it."""
    cause = error.__cause__
    details = getattr(cause, "schema_errors", None) or ([cause] if cause else [])
    reasons = "; ".join(getattr(d, "message", str(d)) for d in details)
    return f"{type(error).__name__}: {reasons or error}"


@dataclass
class SpecCheck:
    """Checks requests against `for_requests` and answers against `for_responses` (two
    documents, so a normalisation that only requests need never loosens the answers')."""

    for_requests: dict[str, Any]
    for_responses: dict[str, Any]
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        config = Config(spec_validator_cls=None)
        self._requests = OpenAPI.from_dict(self.for_requests, config=config)
        self._responses = OpenAPI.from_dict(self.for_responses, config=config)
        self.server_url: str = self.for_responses["servers"][0]["url"]
        self._request_validators = [validator(self._requests.spec) for validator in (
            V30RequestParametersValidator, V30RequestBodyValidator)]

    def request(self, request: Request, body: bytes) -> SpecRequest:
        return SpecRequest(request, body, self.server_url)

    def request_errors(self, request: SpecRequest) -> list[str]:
        """What the document refuses in a request: parameters and body (security is the
        fake's own check, see its docstring)."""
        return [describe(error) for validator in self._request_validators
                for error in validator.iter_errors(request)]

    def check_response(self, request: SpecRequest, response: Response) -> None:
        answer = StarletteOpenAPIResponse(response)
        for error in self._responses.iter_response_errors(request, answer):
            self.violations.append(
                f"{request.method.upper()} {request.path} -> {response.status_code}: "
                f"{describe(error)}")


def failure_only_4xx(document: dict[str, Any]) -> dict[str, Any]:
    """A copy where each 4XX answer that is `allOf: [<success shape>, <failure shape>]` is the
    failure shape alone: the success half requires `success: true` and a result, the failure
    half `success: false` and `result: null`, so no answer could satisfy both."""
    fixed = copy.deepcopy(document)
    for operations in fixed["paths"].values():
        for operation in operations.values():
            schema = _json_schema(operation.get("responses", {}).get("4XX", {}))
            parts = schema.get("allOf", [])
            failure = [p for p in parts if p.get("$ref", "").endswith("-common-failure")]
            if len(parts) == 2 and len(failure) == 1:
                schema.clear()
                schema.update(failure[0])
    return fixed


def _json_schema(response: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = response.get("content", {}).get("application/json", {}).get(
        "schema", {})
    return schema
