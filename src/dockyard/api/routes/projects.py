from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.deploys import RunnerDep
from dockyard.api.routes.params import ProjectName
from dockyard.api.routing import api_router
from dockyard.core import deployments, projects
from dockyard.models.schemas import AppRedeploy, ProjectCreate, ProjectPublic, ProjectUpdate

router = api_router(prefix="/projects", tags=["projects"], responses=WRITE_RESPONSES)


@router.get("", summary="List projects")
async def list_projects(platform: PlatformDep, actor: ActorDep) -> list[ProjectPublic]:
    return await projects.list_projects(platform, actor)


@router.post("", status_code=201, summary="Create a project")
async def create_project(
    body: ProjectCreate, platform: PlatformDep, actor: ActorDep
) -> ProjectPublic:
    return await projects.create_project(platform, actor, body)


@router.get("/{project}", summary="Show a project")
async def get_project(
    project: ProjectName, platform: PlatformDep, actor: ActorDep
) -> ProjectPublic:
    return await projects.get_project(platform, actor, project)


@router.patch("/{project}", summary="Rename or describe a project")
async def update_project(
    project: ProjectName, body: ProjectUpdate, platform: PlatformDep, actor: ActorDep
) -> ProjectPublic:
    return await projects.update_project(platform, actor, project, body)


@router.delete("/{project}", status_code=204, summary=(
    "Delete a project: its apps taken off every server, then its services forgotten"))
async def delete_project(project: ProjectName, platform: PlatformDep, actor: ActorDep,
                         runner: RunnerDep) -> None:
    await projects.delete_project(platform, runner.connect, actor, project)


@router.post("/{project}/redeploy", summary=(
    "Roll out every app of the project again with today's variables and stateful services"))
async def redeploy_project(project: ProjectName, platform: PlatformDep, actor: ActorDep,
                           runner: RunnerDep) -> list[AppRedeploy]:
    return await deployments.redeploy_project_apps(platform, runner, actor, project)
