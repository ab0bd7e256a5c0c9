"""The agent's HTTP layer: Starlette routes, typed with pydantic TypeAdapters.

A route declares its path and query parameters (`path`, `query`) and its JSON body type; they
are validated before the handler runs, every error at once, and refused as FastAPI refused
them (422, `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`; loc starts with "path",
"query" or "body"). The handler gets a `Call`: the parsed values, the request, and the
agent's parts, passed explicitly. Its return value is validated against its return annotation
and answered as JSON (a `Response` is answered as it is; a route without a body answers none).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast, get_type_hints

from pydantic import TypeAdapter, ValidationError
from starlette.background import BackgroundTasks
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

T = TypeVar("T")
P = TypeVar("P")
REQUIRED: Any = object()
Errors = list[dict[str, Any]]
Where = Literal["path", "query"]


class InvalidRequest(Exception):
    """The request's parameters or body did not validate: answered 422 with `errors`."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("invalid request")
        self.errors = errors


@dataclass(frozen=True, eq=False)
class Param(Generic[T]):
    """One path or query parameter: where it is, its name, its type and default."""

    where: Where
    name: str
    adapter: TypeAdapter[T]
    default: Any = REQUIRED
    many: bool = False  # a query parameter given any number of times, as a list


def path(name: str, kind: Any) -> Param[Any]:
    return Param("path", name, TypeAdapter(kind))


def query(name: str, kind: Any, default: Any = REQUIRED, *, many: bool = False) -> Param[Any]:
    return Param("query", name, TypeAdapter(kind), default, many)


@dataclass
class Call(Generic[P]):
    """What a handler gets: the request, the agent's parts and the validated values."""

    request: Request
    parts: P
    values: dict[Param[Any], Any]
    body_value: Any = None
    background: BackgroundTasks = field(default_factory=BackgroundTasks)

    def __getitem__(self, param: Param[T]) -> T:
        return cast(T, self.values[param])

    def body(self, kind: type[T]) -> T:
        assert isinstance(self.body_value, kind)
        return self.body_value


Handler = Callable[[Call[P]], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint(Generic[P]):
    method: str
    path: str
    handler: Handler[P]
    status: int
    params: tuple[Param[Any], ...]
    body: TypeAdapter[Any] | None
    returns: TypeAdapter[Any] | None


def _missing(loc: tuple[Any, ...]) -> dict[str, Any]:
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}


def _validated(adapter: TypeAdapter[Any], value: Any, loc: tuple[Any, ...]
               ) -> tuple[Any, Errors]:
    try:
        return adapter.validate_python(value, from_attributes=True), []
    except ValidationError as exc:
        return None, [{**e, "loc": (*loc, *e["loc"])} for e in exc.errors(include_url=False)]


def _raw(param: Param[Any], request: Request) -> Any:
    if param.where == "path":
        return request.path_params.get(param.name)
    if param.many:
        return request.query_params.getlist(param.name) or None
    return request.query_params.get(param.name)


def _parameter(param: Param[Any], request: Request) -> tuple[Any, Errors]:
    """Its value (its default, unvalidated, when absent) and the errors found."""
    value, loc = _raw(param, request), (param.where, param.name)
    if value is None:
        return (None, [_missing(loc)]) if param.default is REQUIRED else (param.default, [])
    return _validated(param.adapter, value, loc)


def _is_json(content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/")
                                          and kind.endswith("+json"))


async def _body(adapter: TypeAdapter[Any], request: Request) -> tuple[Any, Errors]:
    """A JSON body (other content types are validated as bytes, and fail), as FastAPI read it."""
    try:
        raw = await request.body()
        data = json.loads(raw) if raw and _is_json(request.headers.get("content-type")) else raw
    except json.JSONDecodeError as exc:
        return None, [{"type": "json_invalid", "loc": ("body", exc.pos),
                       "msg": "JSON decode error", "input": {}, "ctx": {"error": exc.msg}}]
    except Exception as exc:
        raise HTTPException(400, "There was an error parsing the body") from exc
    return (None, [_missing(("body",))]) if not raw else _validated(adapter, data, ("body",))


async def _call(endpoint: Endpoint[P], parts: P, request: Request) -> Call[P]:
    """Path, then query, then body, as FastAPI checked them; all errors raised together."""
    values, errors = {}, []
    for param in endpoint.params:
        values[param], found = _parameter(param, request)
        errors += found
    body, found = (None, []) if endpoint.body is None else await _body(endpoint.body, request)
    if errors + found:
        raise InvalidRequest(errors + found)
    return Call(request, parts, values, body)


def _answer(endpoint: Endpoint[Any], result: Any, background: BackgroundTasks) -> Response:
    if isinstance(result, Response):
        result.background = result.background or background
        return result
    if endpoint.returns is None:
        return Response(b"" if endpoint.status in (204, 304) else b"null", endpoint.status,
                        media_type="application/json", background=background)
    value = endpoint.returns.validate_python(result, from_attributes=True)
    content = b"" if endpoint.status in (204, 304) else endpoint.returns.dump_json(value)
    return Response(content, endpoint.status, media_type="application/json",
                    background=background)


def _route(endpoint: Endpoint[P], parts: P) -> Route:
    async def run(request: Request) -> Response:
        call = await _call(endpoint, parts, request)
        return _answer(endpoint, await endpoint.handler(call), call.background)

    route = Route(endpoint.path, run, methods=[endpoint.method])
    route.methods = {endpoint.method}  # no implicit HEAD: 405, as before
    return route


def _returns(handler: Handler[Any]) -> TypeAdapter[Any] | None:
    kind = get_type_hints(handler)["return"]
    if kind is type(None) or (isinstance(kind, type) and issubclass(kind, Response)):
        return None
    return TypeAdapter(kind)


class Routes(Generic[P]):
    """Endpoints declared with `get`, `post`, `put`, `delete`; `bind` makes Starlette routes
    that hand each handler the same parts."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint[P]] = []

    def add(self, method: str, path: str, *, status: int = 200,
            params: tuple[Param[Any], ...] = (), body: Any = None
            ) -> Callable[[Handler[P]], Handler[P]]:
        def declare(handler: Handler[P]) -> Handler[P]:
            adapter = None if body is None else TypeAdapter(body)
            self.endpoints.append(Endpoint(method, path, handler, status, params, adapter,
                                           _returns(handler)))
            return handler

        return declare

    def get(self, path: str, **options: Any) -> Callable[[Handler[P]], Handler[P]]:
        return self.add("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler[P]], Handler[P]]:
        return self.add("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler[P]], Handler[P]]:
        return self.add("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler[P]], Handler[P]]:
        return self.add("DELETE", path, **options)

    def bind(self, parts: P) -> list[Route]:
        return [_route(endpoint, parts) for endpoint in self.endpoints]


def invalid_request(request: Request, exc: Exception) -> Response:
    """422 with where and what, never echoing the input back (it may be secret)."""
    assert isinstance(exc, InvalidRequest)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors]
    return JSONResponse({"detail": detail}, status_code=422)


def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (404, 405, a body that did not parse) as `{"detail": ...}`."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
