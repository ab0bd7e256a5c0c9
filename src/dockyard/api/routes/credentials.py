from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.params import CredentialName
from dockyard.api.routing import api_router
from dockyard.core import credentials
from dockyard.models.schemas import CredentialPublic, CredentialSet

router = api_router(prefix="/infra/credentials", tags=["credentials"], responses=WRITE_RESPONSES)


@router.get("", summary="List provider credentials (tokens masked)")
async def list_credentials(platform: PlatformDep, actor: ActorDep) -> list[CredentialPublic]:
    return await credentials.list_credentials(platform, actor)


@router.put("/{name}", summary="Store or replace a provider token (admins)")
async def set_credential(
    name: CredentialName, body: CredentialSet, platform: PlatformDep, actor: ActorDep
) -> CredentialPublic:
    return await credentials.set_credential(platform, actor, name, body)


@router.delete("/{name}", status_code=204, summary="Forget a provider token (admins)")
async def delete_credential(name: CredentialName, platform: PlatformDep, actor: ActorDep) -> None:
    await credentials.delete_credential(platform, actor, name)
