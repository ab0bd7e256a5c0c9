from typing import Annotated

from fastapi import Query

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.params import ObjectId
from dockyard.api.routing import api_router
from dockyard.core import agents, disk_cleanups, reconcile, servers
from dockyard.models import fields
from dockyard.models.disk import DiskCleanup
from dockyard.models.reconcile import ServerEventPublic
from dockyard.models.schemas import AgentKeyPublic, ServerAdopt, ServerPublic

router = api_router(prefix="/infra", tags=["servers"], responses=WRITE_RESPONSES)


@router.get("/servers", operation_id="list_servers",
            summary="List the server inventory with agent status and version")
async def list_servers(platform: PlatformDep, actor: ActorDep) -> list[ServerPublic]:
    return await servers.list_servers(platform, actor)


@router.post("/servers", status_code=201, operation_id="adopt_server",
             summary="Add a server that runs an agent (admins)")
async def adopt_server(body: ServerAdopt, platform: PlatformDep, actor: ActorDep) -> ServerPublic:
    return await servers.adopt_server(platform, actor, body)


@router.get("/servers/{server_id}", operation_id="get_server", summary="Show a server")
async def get_server(server_id: ObjectId, platform: PlatformDep, actor: ActorDep) -> ServerPublic:
    return await servers.get_server(platform, actor, server_id)


@router.post("/servers/{server_id}/check", operation_id="check_server",
             summary="Ask the server's agent now")
async def check_server(
    server_id: ObjectId, platform: PlatformDep, actor: ActorDep
) -> ServerPublic:
    return await agents.check_server(platform, actor, server_id)


@router.get("/servers/{server_id}/events", operation_id="server_events",
            summary="What the reconciler corrected on the server, oldest first")
async def server_events(
    server_id: ObjectId, platform: PlatformDep, actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ServerEventPublic]:
    return await reconcile.server_events(platform, actor, server_id, limit)


@router.post("/servers/{server_id}/pin", operation_id="pin_server",
             summary="Pin the agent's certificate: the given fingerprint, or the one it "
                     "presents now (admins)")
async def pin_server(
    server_id: ObjectId, platform: PlatformDep, actor: ActorDep,
    fingerprint: Annotated[fields.Fingerprint | None, Query()] = None,
) -> ServerPublic:
    return await servers.pin_server(platform, actor, server_id, fingerprint)


@router.post("/servers/{server_id}/prune", operation_id="prune_server",
             summary="Have the server's agent clean its disk now: stopped containers, old "
                     "release images, dangling images and old build cache")
async def prune_server(server_id: ObjectId, platform: PlatformDep, actor: ActorDep
                       ) -> DiskCleanup:
    return await disk_cleanups.prune_server(platform, actor, server_id)


@router.post("/servers/{server_id}/drain", operation_id="drain_server",
             summary="Move its services' traffic and DNS to their other servers (admins)")
async def drain_server(server_id: ObjectId, platform: PlatformDep, actor: ActorDep
                       ) -> ServerPublic:
    return await servers.drain_server(platform, actor, server_id)


@router.post("/servers/{server_id}/undrain", operation_id="undrain_server",
             summary="Let a drained server take its services' traffic again (admins)")
async def undrain_server(server_id: ObjectId, platform: PlatformDep, actor: ActorDep
                         ) -> ServerPublic:
    return await servers.undrain_server(platform, actor, server_id)


@router.delete("/servers/{server_id}", status_code=204, operation_id="remove_server",
               summary="Forget a server (admins)")
async def remove_server(server_id: ObjectId, platform: PlatformDep, actor: ActorDep) -> None:
    await servers.remove_server(platform, actor, server_id)


@router.get("/agent-key", operation_id="agent_key",
            summary="The key to install on a new server's agent (admins)")
async def agent_key(platform: PlatformDep, actor: ActorDep) -> AgentKeyPublic:
    return await agents.install_key(platform, actor)
