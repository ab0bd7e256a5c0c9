"""Routers whose routes carry their whole path and short operationId from the moment they are
declared, so that an app takes the route objects as they are. FastAPI builds a route's
validators when the route is made; an `include_router` has each app build them all again
(0.45-0.64 s of CPU per app, at its first request, measured)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

from dockyard.api.openapi import operation_id

API_PREFIX = "/api/v1"


def api_router(prefix: str = "", *, under: str = API_PREFIX, **options: Any) -> APIRouter:
    """A router of the JSON API: its routes at `under` + `prefix` + their own path."""
    return APIRouter(prefix=under + prefix, generate_unique_id_function=operation_id,
                     **options)


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """The routers' routes on `app`, in order, as they are."""
    for router in routers:
        app.router.routes.extend(router.routes)
