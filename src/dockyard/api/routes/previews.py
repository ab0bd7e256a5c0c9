"""Preview environments of pull requests: a project's open previews."""

from __future__ import annotations

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.params import ProjectName
from dockyard.api.routing import api_router
from dockyard.core import previews
from dockyard.models.schemas import PreviewPublic

router = api_router(tags=["previews"], responses=WRITE_RESPONSES)


@router.get("/projects/{project}/previews", operation_id="list_previews",
            summary="A project's preview environments (one per open pull request)")
async def list_all(project: ProjectName, platform: PlatformDep, actor: ActorDep
                   ) -> list[PreviewPublic]:
    return await previews.list_previews(platform, actor, project)
