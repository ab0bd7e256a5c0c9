"""Deploy, roll back, follow and list deployments; saved deploy configs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routing import api_router
from dockyard.api.sse import event_stream
from dockyard.core import deploy_targets, deployments, env
from dockyard.deploy.archives import PayloadTooLarge
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import InvalidInput, UnsupportedMediaType
from dockyard.models.deploys import (
    ArchiveCommit,
    DeployConfigCreate,
    DeployConfigPublic,
    DeploymentPublic,
    DeployParams,
    DeployRequest,
    DeployTarget,
    ReleaseVariable,
    RollbackRequest,
)
from dockyard.models.fields import IdPrefix, Name
from dockyard.models.schemas import ErrorBody

router = api_router(prefix="/infra", tags=["deploys"], responses=WRITE_RESPONSES)
JSON_TYPE = "application/json"
ARCHIVE_TYPES = ("application/gzip", "application/x-gzip", "application/x-tar",
                 "application/zip", "application/octet-stream")
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "The deployment's events as Server-Sent Events, until its `done` event.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
DEPLOY_RESPONSES: dict[int | str, dict[str, Any]] = {**SSE_RESPONSE, 415: {
    "model": ErrorBody, "description": "The body is neither JSON nor an archive."}}
DEPLOY_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/DeployRequest"}},
    **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in ARCHIVE_TYPES},
}}}
DeploymentRef = Annotated[IdPrefix, Path(description="Id or its first characters.")]


def get_runner(request: Request) -> DeployRunner:
    runner: DeployRunner = request.app.state.deploys
    return runner


RunnerDep = Annotated[DeployRunner, Depends(get_runner)]


PARAM_FIELDS = tuple(name for name in DeployParams.model_fields
                     if name not in ("command", "build_args"))


def archive_query_parameters() -> list[dict[str, Any]]:
    """The query of an archive upload, described from the models that validate it."""
    target = DeployTarget.model_json_schema()["properties"]
    params = DeployParams.model_json_schema()["properties"]
    described = {"project": target["project"], "service": target["service"],
                 "config_name": target["config_name"],
                 "server": {"type": "array", "items": target["servers"]["anyOf"][0]["items"]},
                 "build_arg": {"type": "array",
                               "items": params["build_args"]["anyOf"][0]["items"]},
                 **{name: params[name] for name in PARAM_FIELDS}}
    described.update(ArchiveCommit.model_json_schema()["properties"])
    return [{"name": name, "in": "query", "required": False,
             "schema": {k: v for k, v in schema.items() if k not in ("default", "title")},
             **({"style": "form", "explode": True} if name in ("server", "build_arg") else {})}
            for name, schema in described.items()]


def _archive_target(request: Request) -> DeployTarget:
    """project, service, server (repeated), config_name and any scalar deploy parameter
    (port, health_path, grace_seconds, ...) from the query of an archive upload."""
    query = request.query_params
    params: dict[str, Any] = {name: query[name] for name in PARAM_FIELDS if name in query}
    if "build_arg" in query:
        params["build_args"] = query.getlist("build_arg")
    try:
        return DeployTarget(project=query.get("project", ""), service=query.get("service", ""),
                            servers=query.getlist("server") or None,
                            config_name=query.get("config_name"),
                            params=DeployParams.model_validate(params))
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput("an archive upload takes project and service (and optional deploy "
                           f"parameters) in the query: {'.'.join(map(str, error['loc']))}: "
                           f"{error['msg']}") from exc


def _archive_commit(request: Request) -> ArchiveCommit | None:
    """The commit (and branch) an uploaded archive is the tree of, from the query."""
    wanted = {name: request.query_params[name] for name in ArchiveCommit.model_fields
              if name in request.query_params}
    try:
        return ArchiveCommit.model_validate(wanted) if wanted else None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from exc


@router.post("/deploy", summary="Deploy an archive, a git ref or an image (streams events)",
             response_class=StreamingResponse, responses=DEPLOY_RESPONSES,
             openapi_extra={**DEPLOY_BODY, "parameters": archive_query_parameters()})
async def deploy(request: Request, platform: PlatformDep, actor: ActorDep, runner: RunnerDep
                 ) -> StreamingResponse:
    """JSON bodies name a git or image source; any archive type streams an upload (tar, tar.gz
    or zip; project, service and deploy parameters then go in the query)."""
    if _media_type(request) in ARCHIVE_TYPES:
        deployment_id = await deployments.start_archive_deploy(
            platform, runner, actor, _archive_target(request), request.stream(),
            _archive_commit(request))
    else:
        body = _json_body(await _small_body(request, platform.settings.max_body_bytes))
        deployment_id = await deployments.start_deploy(platform, runner, actor, body)
    return event_stream(runner.events, deployment_id)


def _media_type(request: Request) -> str:
    """The body's media type, when it is one a deploy takes."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON_TYPE and media_type not in ARCHIVE_TYPES:
        raise UnsupportedMediaType(
            f"send the deploy as {JSON_TYPE} (a git, image or release source) or as an archive "
            f"({', '.join(ARCHIVE_TYPES)}) with project and service in the query")
    return media_type


async def _small_body(request: Request, limit: int) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(limit, what="request body", setting="DOCKYARD_MAX_BODY_BYTES")
    return body


def _json_body(raw: bytes) -> DeployRequest:
    try:
        return DeployRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from exc


@router.post("/deployments/rollback", summary="Roll back to a release (streams events)",
             response_class=StreamingResponse, responses=SSE_RESPONSE)
async def rollback(body: RollbackRequest, platform: PlatformDep, actor: ActorDep,
                   runner: RunnerDep) -> StreamingResponse:
    deployment_id = await deployments.start_rollback(platform, runner, actor, body)
    return event_stream(runner.events, deployment_id)


@router.get("/deployments/history", operation_id="deployment_history",
            summary="Deployments of a service, newest first")
async def history(platform: PlatformDep, actor: ActorDep,
                  project: Annotated[Name, Query()], service: Annotated[Name, Query()],
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[DeploymentPublic]:
    return await deployments.history(platform, actor, project, service, limit)


@router.get("/deployments/{deployment_id}", summary="One deployment (by id or id prefix)")
async def get_deployment(deployment_id: DeploymentRef, platform: PlatformDep, actor: ActorDep
                         ) -> DeploymentPublic:
    return await deployments.get_deployment(platform, actor, deployment_id)


@router.get("/deployments/{deployment_id}/variables", operation_id="deployment_variables",
            summary="The variables a deployment runs with (secrets masked)")
async def variables(deployment_id: DeploymentRef, platform: PlatformDep, actor: ActorDep
                    ) -> list[ReleaseVariable]:
    return await env.release_env(platform, actor, deployment_id)


@router.get("/deployments/{deployment_id}/events", operation_id="deployment_events",
            summary="Replay and follow a deployment",
            response_class=StreamingResponse, responses=SSE_RESPONSE)
async def events(deployment_id: DeploymentRef, platform: PlatformDep, actor: ActorDep,
                 runner: RunnerDep,
                 last_event_id: Annotated[int, Header(ge=0, le=10**9)] = 0) -> StreamingResponse:
    found = await deployments.get_deployment(platform, actor, deployment_id)
    return event_stream(runner.events, found.id, after=last_event_id)


@router.get("/deploy-configs", summary="Saved deploy configs")
async def list_configs(platform: PlatformDep, actor: ActorDep) -> list[DeployConfigPublic]:
    return await deploy_targets.list_configs(platform, actor)


@router.post("/deploy-configs", status_code=201, summary="Save a deploy config")
async def save_config(body: DeployConfigCreate, platform: PlatformDep, actor: ActorDep
                      ) -> DeployConfigPublic:
    return await deploy_targets.save_config(platform, actor, body)
