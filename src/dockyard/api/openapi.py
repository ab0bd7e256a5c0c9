"""The OpenAPI document, corrected where FastAPI's output does not match the wire."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from dockyard.models.deploys import DeployRequest

# Bodies a route reads itself (it also takes archives), so FastAPI cannot see their schema.
RAW_BODY_MODELS: tuple[type[BaseModel], ...] = (DeployRequest,)
SCHEMA_REF = "#/components/schemas/{model}"


def operation_id(route: APIRoute) -> str:
    """A short operationId: the route function's name (`list_projects`), so a generated
    client has `listProjects`, not `listProjectsApiV1ProjectsGet`."""
    return route.name


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` becomes X: a query or header parameter is absent, never null."""
    options = schema.get("anyOf")
    if not options:
        return schema
    concrete = [option for option in options if option.get("type") != "null"]
    if len(concrete) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**concrete[0], **rest}


def _fix_parameters(spec: dict[str, Any]) -> None:
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _without_null(parameter.get("schema", {}))


def _add_raw_body_models(spec: dict[str, Any]) -> None:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in RAW_BODY_MODELS:
        schema = model.model_json_schema(ref_template=SCHEMA_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            _fix_parameters(spec)
            _add_raw_body_models(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
