"""Stateful services (Postgres, Redis) of a project: create, show, start/stop/restart, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.deploys import RunnerDep
from dockyard.api.routes.params import ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import stateful, stateful_rekey
from dockyard.models import fields
from dockyard.models.stateful_schemas import StatefulAction, StatefulCreate, StatefulPublic

router = api_router(prefix="/projects/{project}/stateful", tags=["stateful services"],
                   responses=WRITE_RESPONSES)


@router.post("", status_code=201, operation_id="create_stateful",
             summary="Create a Postgres or Redis service, placed and started")
async def create(project: ProjectName, body: StatefulCreate, platform: PlatformDep,
                 actor: ActorDep, runner: RunnerDep) -> StatefulPublic:
    return await stateful.create_stateful(platform, runner, actor, project, body)


@router.get("/{service}", operation_id="get_stateful",
            summary="A stateful service: state, server, version, URL (password masked)")
async def info(project: ProjectName, service: ServiceName, platform: PlatformDep,
               actor: ActorDep, runner: RunnerDep, show_secret: Annotated[bool, Query(
                   description="Show the password in the URL (admins)")] = False
               ) -> StatefulPublic:
    return await stateful.stateful_info(platform, runner, actor, project, service, show_secret)


@router.post("/{service}/actions", operation_id="act_on_stateful",
             summary="Start, stop or restart a stateful service's container (data stays)")
async def act(project: ProjectName, service: ServiceName, body: StatefulAction,
              platform: PlatformDep, actor: ActorDep, runner: RunnerDep) -> StatefulPublic:
    return await stateful.stateful_action(platform, runner, actor, project, service, body.action)


@router.post("/{service}/rekey", operation_id="rekey_stateful",
             summary="Give a stateful service a new generated password (it restarts)")
async def rekey(project: ProjectName, service: ServiceName, platform: PlatformDep,
                actor: ActorDep, runner: RunnerDep, redeploy: Annotated[bool, Query(
                    description="Roll the project's apps out again with the new URL")] = False
                ) -> StatefulPublic:
    return await stateful_rekey.rekey_stateful(platform, runner, actor, project, service,
                                               redeploy)


@router.delete("/{service}", status_code=204, operation_id="delete_stateful",
               summary="Delete a stateful service and its data, after a final backup")
async def delete(project: ProjectName, service: ServiceName, platform: PlatformDep,
                 actor: ActorDep, runner: RunnerDep, confirm: Annotated[fields.Name, Query(
                     description="The service's name again")]) -> None:
    await stateful.delete_stateful(platform, runner, actor, project, service, confirm)
