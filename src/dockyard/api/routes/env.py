from typing import Annotated

from fastapi import Query

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.params import EnvKeyPath, ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import env
from dockyard.models.schemas import EnvPatch, EnvVarItem, EnvVarPublic, EnvVarSet

router = api_router(
    prefix="/projects/{project}/services/{service}/env", tags=["env"], responses=WRITE_RESPONSES
)


@router.get("", summary="List a service's variables and those injected (secrets masked)")
async def list_env(
    project: ProjectName, service: ServiceName, platform: PlatformDep, actor: ActorDep,
    show_secret: Annotated[bool, Query(description=(
        "Show the passwords in injected URLs (admins)."))] = False,
) -> list[EnvVarPublic]:
    return await env.list_env(platform, actor, project, service, show_secret)


@router.patch("", summary="Set and unset several variables at once, atomically")
async def patch_env(
    project: ProjectName, service: ServiceName, body: EnvPatch,
    platform: PlatformDep, actor: ActorDep,
) -> list[EnvVarPublic]:
    return await env.patch_env(platform, actor, project, service, body)


@router.put("/{key}", summary="Set one variable")
async def set_env(
    project: ProjectName, service: ServiceName, key: EnvKeyPath, body: EnvVarSet,
    platform: PlatformDep, actor: ActorDep,
) -> EnvVarPublic:
    item = EnvVarItem(key=key, **body.model_dump())
    return await env.set_env(platform, actor, project, service, item)


@router.delete("/{key}", status_code=204, summary="Unset one variable")
async def unset_env(
    project: ProjectName, service: ServiceName, key: EnvKeyPath,
    platform: PlatformDep, actor: ActorDep,
) -> None:
    await env.unset_env(platform, actor, project, service, key)
