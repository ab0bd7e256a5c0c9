from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.deploys import RunnerDep
from dockyard.api.routes.params import ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import services
from dockyard.models.schemas import ServiceCreate, ServicePublic, ServiceUpdate

router = api_router(
    prefix="/projects/{project}/services", tags=["services"], responses=WRITE_RESPONSES
)


@router.get("", summary="List a project's services")
async def list_services(
    project: ProjectName, platform: PlatformDep, actor: ActorDep
) -> list[ServicePublic]:
    return await services.list_services(platform, actor, project)


@router.post("", status_code=201, summary="Create a service")
async def create_service(
    project: ProjectName, body: ServiceCreate, platform: PlatformDep, actor: ActorDep
) -> ServicePublic:
    return await services.create_service(platform, actor, project, body)


@router.get("/{service}", summary="Show a service")
async def get_service(
    project: ProjectName, service: ServiceName, platform: PlatformDep, actor: ActorDep
) -> ServicePublic:
    return await services.get_service(platform, actor, project, service)


@router.patch("/{service}", summary="Change a service")
async def update_service(
    project: ProjectName, service: ServiceName, body: ServiceUpdate,
    platform: PlatformDep, actor: ActorDep,
) -> ServicePublic:
    return await services.update_service(platform, actor, project, service, body)


@router.delete("/{service}", status_code=204,
               summary="Delete an app service: taken off every server, then forgotten")
async def delete_service(
    project: ProjectName, service: ServiceName, platform: PlatformDep, actor: ActorDep,
    runner: RunnerDep,
) -> None:
    await services.delete_service(platform, runner.connect, actor, project, service)
