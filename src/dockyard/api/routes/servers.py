from fastapi import APIRouter

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import COMMON_RESPONSES
from dockyard.api.routes.params import ObjectId
from dockyard.core import servers
from dockyard.models.schemas import ServerPublic

router = APIRouter(prefix="/infra/servers", tags=["servers"], responses=COMMON_RESPONSES)


@router.get("", summary="List the server inventory")
async def list_servers(platform: PlatformDep, actor: ActorDep) -> list[ServerPublic]:
    return await servers.list_servers(platform, actor)


@router.get("/{server_id}", summary="Show a server")
async def get_server(server_id: ObjectId, platform: PlatformDep, actor: ActorDep) -> ServerPublic:
    return await servers.get_server(platform, actor, server_id)
