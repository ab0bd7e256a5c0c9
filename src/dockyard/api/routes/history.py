from typing import Annotated

from fastapi import Query

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import COMMON_RESPONSES
from dockyard.api.routing import api_router
from dockyard.core import history
from dockyard.models.fields import ObjectId, Whole
from dockyard.models.schemas import AuditEventPublic

EntityType = Annotated[str, Whole(r"[a-z_]{1,40}", "use a table name such as 'env_vars'")]
router = api_router(prefix="/history", tags=["history"], responses=COMMON_RESPONSES)


@router.get("", summary="Query the audit history, newest first")
async def query_history(
    platform: PlatformDep, actor: ActorDep,
    entity_type: Annotated[EntityType | None, Query()] = None,
    entity_id: Annotated[ObjectId | None, Query()] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEventPublic]:
    return await history.query_history(
        platform, actor, entity_type=entity_type, entity_id=entity_id,
        before_id=before_id, limit=limit,
    )
