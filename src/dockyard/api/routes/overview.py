"""The workspace at a glance: projects, services, live releases, states and request rates."""

from __future__ import annotations

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import COMMON_RESPONSES
from dockyard.api.routing import api_router
from dockyard.core import overview as overviews
from dockyard.models.overview import Overview

router = api_router(tags=["projects"], responses=COMMON_RESPONSES)


@router.get("/overview", operation_id="overview",
            summary="Every project's services with their live release, state and request rate")
async def overview(platform: PlatformDep, actor: ActorDep) -> Overview:
    return await overviews.overview(platform, actor)
